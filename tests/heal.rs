//! The archive heals itself over real sockets: a node archiving to 7 hoster processes (4+2 plus a
//! spare). One hoster is SIGKILLed for good: with no command typed, every segment is back to k+m
//! (detection time and time to full redundancy per GiB lost are printed). Another hoster's files
//! rot while it runs: audits find it and its shards are rebuilt. A new hoster is added and the
//! shards rebalanced onto it; GC removes the orphan part of a failed upload and nothing else; a
//! live hoster is drained to empty and removed; nothing is lost (`repair --verify` finds nothing
//! to do and a fresh machine restores everything). `/metrics` is scraped before, during and
//! after.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use archiver_cli::cluster::{start_hosters, write_cluster_config, HosterProcess};
use archiver_cli::config_file::ConfigFile;
use common::{archiver, rot_shard_log, text, EXE};

const SEGMENT_BYTES: u64 = 256 * 1024;
/// Health bounds of this test: a hoster is lost after 3 s (the default is about a minute, see
/// `archiver::ops::health`), challenges every 20 ms, GC every 1.5 s.
fn fast_ops(config: &Path) {
    let mut file = ConfigFile::load(config).unwrap().file;
    let ops = &mut file.archive.ops;
    ops.audit_interval_ms = 20;
    ops.gc_interval_ms = 1_500;
    ops.health.lost_after_ms = 3_000;
    ops.health.probe_interval_ms = 200;
    file.replace(config).unwrap();
}
const WAIT: Duration = Duration::from_secs(240);

/// The node, SIGTERM'd on drop, with its metrics address.
struct NodeProcess {
    child: Child,
    metrics: String,
}

impl NodeProcess {
    fn start(config: &Path, data: &Path) -> Self {
        let mut child = Command::new(EXE)
            .arg("--config")
            .arg(config)
            .args(["node", "--rpc", "127.0.0.1:0", "--block-time-ms", "0"])
            .args(["--transfers-per-block", "40", "--retention", "200"])
            .args(["--metrics", "127.0.0.1:0", "--data"])
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let metrics = loop {
            let line = lines
                .next()
                .expect("node exited before serving metrics")
                .unwrap();
            if let Some(a) = line.strip_prefix("metrics on http://") {
                break a.trim_end_matches("/metrics").to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, metrics }
    }

    fn stop(mut self) {
        // SAFETY-free SIGTERM through the kill command: the node shuts down cleanly.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One scrape of `/metrics`, as (series, value) pairs.
fn scrape(addr: &str) -> Vec<(String, f64)> {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body.lines()
        .filter(|l| l.starts_with("archiver_"))
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn value(m: &[(String, f64)], series: &str) -> f64 {
    m.iter().find(|(k, _)| k == series).map_or(0.0, |(_, v)| *v)
}

/// Scrapes until `done` holds, returning that scrape; panics naming `what` after `WAIT`.
fn wait_metrics(
    addr: &str,
    what: &str,
    done: impl Fn(&[(String, f64)]) -> bool,
) -> Vec<(String, f64)> {
    let until = Instant::now() + WAIT;
    loop {
        let m = scrape(addr);
        if done(&m) {
            return m;
        }
        assert!(
            Instant::now() < until,
            "{what}: not reached; last scrape {m:?}"
        );
        // Polling a remote process: there is nothing to wait on but its next scrape.
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Segments at full redundancy (m = 2 more losses allowed) and none below.
fn fully_redundant(m: &[(String, f64)]) -> Option<f64> {
    let full = value(m, "archiver_segments{redundancy_left=\"2\"}");
    let less = value(m, "archiver_segments{redundancy_left=\"1\"}")
        + value(m, "archiver_segments{redundancy_left=\"0\"}")
        + value(m, "archiver_segments_unreadable");
    (full > 0.0 && less == 0.0).then_some(full)
}

/// A fresh machine (config alone, empty data dir) restores every dispersed block.
fn restore_everything(config: &Path, dir: &Path) -> String {
    let fresh = dir.join(format!("fresh-{}", rand_suffix()));
    std::fs::create_dir_all(&fresh).unwrap();
    let loaded = ConfigFile::load(config).unwrap();
    let mut file = loaded.file.clone();
    file.archive.data_dir = fresh.join("data");
    let fresh_config = fresh.join("archiver.toml");
    file.write_new(&fresh_config).unwrap();
    let out = fresh.join("restored");
    let o = archiver(&fresh_config, &["restore", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(!t.contains("LOST"), "{t}");
    t
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Writes part 0 of `key`'s shard onto `h` as a failed upload leaves it.
async fn plant_orphan(h: &archiver::HosterEntry, key: &[u8]) -> zdb_backend::ZdbClient {
    let c = zdb_backend::ZdbClient::new(
        zdb_backend::HosterConfig {
            address: h.address.clone(),
            namespace: h.namespace.clone(),
            password: h.password.clone(),
            admin_password: None,
        },
        zdb_backend::ClientOptions::default(),
    );
    c.set(
        &zdb_backend::large_part_key(key, 0),
        b"the first part of an upload that failed",
    )
    .await
    .unwrap();
    c
}

/// Starts one more hoster process named `name`.
fn extra_hoster(dir: &Path, name: &str) -> HosterProcess {
    let mut h = start_hosters(Path::new(EXE), &dir.join(name), 1, 1)
        .unwrap()
        .remove(0);
    h.name = name.to_string();
    h.domain = "site-x".into();
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_heals_itself_and_hosters_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let mut hosters = start_hosters(Path::new(EXE), &dir.path().join("hosters"), 7, 3).unwrap();
    let config = write_cluster_config(dir.path(), &hosters, 4, 2, SEGMENT_BYTES).unwrap();
    fast_ops(&config);
    let data = dir.path().join("node");
    let node = NodeProcess::start(&config, &data);

    // Before: every hoster up, segments dispersed at full redundancy.
    let before = wait_metrics(&node.metrics, "40 segments verified at k+m", |m| {
        fully_redundant(m).is_some_and(|n| n >= 40.0)
            && (0..7).all(|i| value(m, &format!("archiver_hoster_up{{hoster=\"h{i}\"}}")) == 1.0)
    });
    let lost_bytes = value(&before, "archiver_hoster_bytes{hoster=\"h0\"}");
    assert!(lost_bytes > 0.0, "h0 holds shards: {before:?}");

    // 1. h0 is SIGKILLed for good, mid-run.
    hosters[0].kill().unwrap();
    let killed = Instant::now();
    let during = wait_metrics(&node.metrics, "loss detected", |m| {
        value(m, "archiver_hoster_up{hoster=\"h0\"}") == 0.0
            && (value(m, "archiver_repair_queue_segments") > 0.0
                || value(m, "archiver_repaired_shards_total") > 0.0)
    });
    let detection = killed.elapsed();
    let after = wait_metrics(&node.metrics, "every segment back to k+m", |m| {
        fully_redundant(m).is_some() && value(m, "archiver_repaired_shards_total") > 0.0
    });
    let healed = killed.elapsed();
    let gib = lost_bytes / f64::from(1u32 << 30);
    println!(
        "lost hoster: detected after {:.1} s, full redundancy after {:.1} s; {:.2} MiB lost: \
         {:.0} s to full redundancy per GiB lost, {:.0} s of it rebuilding",
        detection.as_secs_f64(),
        healed.as_secs_f64(),
        lost_bytes / 1048576.0,
        healed.as_secs_f64() / gib,
        (healed - detection).as_secs_f64() / gib
    );
    assert!(value(&during, "archiver_hoster_up{hoster=\"h0\"}") == 0.0);
    assert!(value(&after, "archiver_repaired_bytes_total") > 0.0);

    // 2. h1's disk rots while it runs: audits find it and its shards are rebuilt.
    let repaired_before = value(&after, "archiver_repaired_shards_total");
    rot_shard_log(&hosters[1].data_dir);
    wait_metrics(&node.metrics, "rot found and repaired", |m| {
        value(
            m,
            "archiver_challenges_total{hoster=\"h1\",result=\"fail\"}",
        ) > 0.0
            && value(m, "archiver_repaired_shards_total") > repaired_before
            // One failed sample has every shard on h1 read and checked (a sweep).
            && value(m, "archiver_hoster_sweeps") == 0.0
            && value(m, "archiver_repair_queue_segments") == 0.0
            && fully_redundant(m).is_some()
    });

    // 3. The lost hoster leaves the config; a new one joins.
    let o = archiver(&config, &["hosters", "remove", "h0"]);
    assert!(o.status.success(), "{}", text(&o));
    let h7 = extra_hoster(dir.path(), "h7");
    let spec = format!(
        "h7={},domain=site-x,key={}",
        h7.address,
        h7.public_key.clone().unwrap()
    );
    let o = Command::new(EXE)
        .arg("--config")
        .arg(&config)
        .args(["hosters", "add", &spec])
        .env("ARCHIVER_HOSTER_ADMIN_PASSWORD", &h7.admin_password)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    node.stop();
    let node = NodeProcess::start(&config, &data);

    // 4. A rebalance spreads the shards evenly over the 7 hosters, h7 included (within two:
    //    the node keeps dispersing new segments meanwhile).
    let o = archiver(&config, &["hosters", "rebalance", "--timeout-secs", "240"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = archiver(&config, &["hosters", "list"]);
    let listing = String::from_utf8_lossy(&o.stdout).into_owned();
    let placed: Vec<u64> = listing
        .lines()
        .filter_map(|l| l.split(" placed=").nth(1)?.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(placed.len(), 7, "{listing}");
    let (lo, hi) = (placed.iter().min().unwrap(), placed.iter().max().unwrap());
    assert!(hi - lo <= 2 && *lo > 0, "balanced: {listing}");
    // 5. A failed upload's orphan on the new hoster: GC removes it and nothing else.
    let key = ConfigFile::load(&config).unwrap().key;
    let (manifest, placement) = {
        let view = ConfigFile::load(&config)
            .unwrap()
            .into_read_only(1)
            .unwrap();
        let store = view.store();
        let without_h7 = (0..store.dispersed_next().unwrap())
            .map(|s| store.placement(s).unwrap().unwrap())
            .find(|p| !p.hosters.iter().flatten().any(|n| n == "h7"))
            .unwrap();
        (
            store.manifest(without_h7.segment).unwrap().unwrap(),
            without_h7,
        )
    };
    assert!(!placement.hosters.iter().flatten().any(|n| n == "h7"));
    let orphan = manifest.shard_storage_key_at(&key, 0, 0);
    let loaded = ConfigFile::load(&config).unwrap();
    let entry = loaded
        .archive
        .hosters
        .iter()
        .find(|h| h.name == "h7")
        .unwrap();
    let client = plant_orphan(entry, &orphan).await;
    let part = zdb_backend::large_part_key(&orphan, 0);
    let until = Instant::now() + WAIT;
    while client.get(&part).await.unwrap().is_some() {
        assert!(Instant::now() < until, "the orphan was never collected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let gc = scrape(&node.metrics);
    assert!(
        value(&gc, "archiver_gc_deleted_shards_total") >= 1.0,
        "{gc:?}"
    );

    // 6. A live hoster is drained to empty, then removed.
    let o = archiver(
        &config,
        &["hosters", "drain", "h2", "--timeout-secs", "240"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("drained h2"),
        "{}",
        text(&o)
    );
    let o = archiver(&config, &["hosters", "list"]);
    let listing = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        listing.contains("h7 ") && !listing.contains("h0 "),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("h2 ") && l.ends_with("placed=0 stored=0")),
        "{listing}"
    );
    let o = archiver(&config, &["hosters", "remove", "h2"]);
    assert!(o.status.success(), "{}", text(&o));

    let end = wait_metrics(&node.metrics, "full redundancy after the drain", |m| {
        fully_redundant(m).is_some()
            && value(m, "archiver_repair_queue_segments") == 0.0
            && value(m, "archiver_hoster_sweeps") == 0.0
    });
    println!(
        "after: {:?}",
        end.iter()
            .filter(|(k, _)| k.starts_with("archiver_segments"))
            .collect::<Vec<_>>()
    );
    node.stop();

    // Nothing was lost: every shard where its placement says, matching its root, and a fresh
    // machine restores the whole history from the hosters.
    let o = archiver(&config, &["repair", "--verify"]);
    let t = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success() && t.contains("repaired 0 shards; still under-replicated: 0"),
        "{}",
        text(&o)
    );
    restore_everything(&config, dir.path());
    drop(h7);
}
