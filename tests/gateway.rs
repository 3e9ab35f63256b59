//! The stateless history gateway over real sockets: a reference node archives to 6 embedded
//! hoster processes (small segments, retention 40, so it prunes continuously); two
//! `archiver rpc --stateless` replicas, started from a copy of the config alone (no data
//! directory), serve the node's pruned blocks byte for byte while it keeps archiving; a block
//! produced after they started shows up on both once its segment is dispersed; with a hoster
//! SIGKILLed they still serve (one replica has no segment cache, so every read goes to the
//! hosters) and still follow; `archiver mount --stateless` shows the node's bytes for a pruned
//! block. Prints the catalog build time per segment and each replica's RSS while serving.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use archiver_cli::cluster::{start_hosters, write_cluster_config};
use common::{call, wait_for, Proc, EXE};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::{HttpClient, HttpClientBuilder};
use serde_json::{json, Value};

/// Small segments: one seals every couple of seconds at the node's pace below.
const SEGMENT_BYTES: u64 = 64 * 1024;
const RETENTION: u64 = 40;
/// Blocks the node must have pruned before the replicas start.
const PRUNED_MIN: u64 = 300;
/// A replica's RSS while serving stays below this (RocksDB catalog, one segment cache of 8 MiB).
const REPLICA_RSS_MAX_MIB: u64 = 256;

/// A stateless RPC replica: its address and the catalog line it printed.
struct Replica {
    proc: Proc,
    client: HttpClient,
    cataloged: String,
}

impl Replica {
    fn start(config: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Self {
        let mut args = vec![
            "rpc",
            "--stateless",
            "--listen",
            "127.0.0.1:0",
            "--poll-interval-ms",
            "200",
        ];
        args.extend_from_slice(extra);
        let proc = Proc::start(config, &args, env);
        let cataloged = proc.line("cataloged ", 120);
        let addr = proc.line("rpc listening on ", 60);
        Self {
            proc,
            client: client(&addr),
            cataloged,
        }
    }
}

fn client(addr: &str) -> HttpClient {
    HttpClientBuilder::default()
        .request_timeout(Duration::from_secs(60))
        .build(format!("http://{addr}"))
        .unwrap()
}

/// `chain_getBlockHash`, `chain_getHeader` and `chain_getBlock` of block `n` on every replica
/// equal the node's, as JSON values and as serialized text.
async fn same_block(node: &HttpClient, replicas: &[&Replica], n: u64) {
    let hash = call(node, "chain_getBlockHash", vec![json!(n)]).await;
    assert!(hash.is_string(), "node has no block {n}: {hash}");
    let header = call(node, "chain_getHeader", vec![hash.clone()]).await;
    let block = call(node, "chain_getBlock", vec![hash.clone()]).await;
    for (i, r) in replicas.iter().enumerate() {
        let c = &r.client;
        let got = [
            call(c, "chain_getBlockHash", vec![json!(n)]).await,
            call(c, "chain_getHeader", vec![hash.clone()]).await,
            call(c, "chain_getBlock", vec![hash.clone()]).await,
        ];
        for (want, got) in [&hash, &header, &block].into_iter().zip(&got) {
            assert_eq!(want.to_string(), got.to_string(), "replica {i}, block {n}");
        }
    }
}

async fn node_status(node: &HttpClient) -> Value {
    call(node, "archiver_status", vec![]).await["node"].clone()
}

/// Waits until block `n` is served by every replica (its segment dispersed and cataloged).
async fn visible_on_all(replicas: &[&Replica], n: u64, what: &str) {
    for r in replicas {
        // Not archived yet is an error ("block not found"), not null.
        wait_for(what, 180, || async {
            r.client
                .request::<Value, _>("chain_getBlockHash", jsonrpsee::rpc_params![n])
                .await
                .is_ok_and(|h| h.is_string())
                .then_some(())
        })
        .await;
    }
}

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024
}

/// The catalog line's figures: (segments, blocks, ms per segment, cache directory).
fn catalog_figures(line: &str) -> (u64, u64, f64, PathBuf) {
    // "N segments (M blocks) from the hosters in S s (X ms per segment) into DIR"
    let words: Vec<&str> = line.split_whitespace().collect();
    let segments = words[0].parse().unwrap();
    let blocks = words[2].trim_start_matches('(').parse().unwrap();
    let at = words.iter().position(|w| *w == "ms").unwrap();
    let ms = words[at - 1].trim_start_matches('(').parse().unwrap();
    let dir = line.rsplit_once(" into ").unwrap().1;
    (segments, blocks, ms, PathBuf::from(dir))
}

/// Unmounts however the test ends.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_replicas_serve_pruned_history_and_follow_the_writer() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut hosters = start_hosters(Path::new(EXE), dir.path(), 6, 3).unwrap();
    let node_dir = dir.path().join("node");
    std::fs::create_dir_all(&node_dir).unwrap();
    let node_cfg = write_cluster_config(&node_dir, &hosters, 4, 2, SEGMENT_BYTES).unwrap();
    let node_data = dir.path().join("node-db");
    let node = Proc::start(
        &node_cfg,
        &[
            "node",
            "--data",
            node_data.to_str().unwrap(),
            "--rpc",
            "127.0.0.1:0",
            "--block-time-ms",
            "25",
            "--justification-period",
            "4",
            "--retention",
            &RETENTION.to_string(),
            "--transfers-per-block",
            "3",
            "--keep-local-segments",
            "1",
        ],
        &[],
    );
    let nc = client(&node.line("rpc listening on ", 120));
    let pruned = wait_for("the node to prune", 300, || async {
        let s = node_status(&nc).await;
        let p = s["prunedBelow"].as_u64().unwrap();
        (p >= PRUNED_MIN).then_some(p)
    })
    .await;

    // The gateway machine holds the config alone: its relative data_dir names nothing there.
    let gw_dir = dir.path().join("gateway-machine");
    std::fs::create_dir_all(&gw_dir).unwrap();
    let gw_cfg = gw_dir.join("archiver.toml");
    std::fs::copy(&node_cfg, &gw_cfg).unwrap();
    let xdg = dir.path().join("xdg-cache");
    let mut a = Replica::start(&gw_cfg, &["--cache-mib", "8"], &[("XDG_CACHE_HOME", &xdg)]);
    let b_cache = dir.path().join("replica-b-catalog");
    // No segment cache: every read of a block goes to the hosters.
    let mut b = Replica::start(
        &gw_cfg,
        &["--cache-mib", "0", "--cache-dir", b_cache.to_str().unwrap()],
        &[],
    );
    let (segments, blocks, ms_per_segment, a_dir) = catalog_figures(&a.cataloged);
    assert!(segments >= 3 && blocks >= pruned, "{}", a.cataloged);
    assert!(a_dir.starts_with(&xdg), "{}", a_dir.display());
    let mode = std::fs::metadata(&a_dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "{}", a_dir.display());
    assert_eq!(catalog_figures(&b.cataloged).3, b_cache);
    println!(
        "catalog build: {segments} segments, {blocks} blocks, {ms_per_segment:.1} ms per segment \
         (replica b: {})",
        b.cataloged
    );

    // Pruned blocks, byte for byte, while the node keeps archiving.
    let replicas = [&a, &b];
    for n in [0, 1, 7, pruned / 3, pruned / 2, pruned - 1] {
        same_block(&nc, &replicas, n).await;
    }
    let mut rss = Vec::new();
    for r in replicas {
        rss.push(rss_mib(r.proc.id()));
    }
    println!("replica RSS while serving: {rss:?} MiB");
    assert!(rss.iter().all(|&m| m < REPLICA_RSS_MAX_MIB), "{rss:?} MiB");

    // A block produced after the replicas started: visible on both once its segment disperses.
    let later = node_status(&nc).await["best"].as_u64().unwrap() + 1;
    visible_on_all(&replicas, later, "a later block on both replicas").await;
    same_block(&nc, &replicas, later).await;

    // One hoster SIGKILLed: pruned blocks still come back (b rebuilds each from the hosters),
    // and segments dispersed to the five left are followed.
    hosters[0].kill().unwrap();
    for n in [2, pruned / 4, pruned - 2, later] {
        same_block(&nc, &replicas, n).await;
    }
    let after_kill = node_status(&nc).await["best"].as_u64().unwrap() + 1;
    visible_on_all(
        &replicas,
        after_kill,
        "a block dispersed with a hoster down",
    )
    .await;
    same_block(&nc, &replicas, after_kill).await;

    // The stateless mount shows the node's bytes for a pruned block.
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut mount = Proc::start(
        &gw_cfg,
        &[
            "mount",
            "--stateless",
            "--cache-mib",
            "4",
            mnt.to_str().unwrap(),
        ],
        &[("XDG_CACHE_HOME", &xdg)],
    );
    let _unmount = Unmount(mnt.clone());
    mount.line("cataloged ", 120);
    mount.line("mounted at ", 60);
    let n = pruned / 2;
    let hash = call(&nc, "chain_getBlockHash", vec![json!(n)]).await;
    let signed = call(&nc, "chain_getBlock", vec![hash.clone()]).await;
    let (bytes, _) = node_plugin::rpc::signed_block_from_json(&signed).unwrap();
    let leaf = mnt.join(format!("blocks/000/{:03}", (n / 1000) % 1000));
    let scale = std::fs::read(leaf.join(format!("{n:09}.scale"))).unwrap();
    assert!(
        scale == bytes,
        "block {n}: the mount's bytes differ from the node's"
    );
    let shown: Value =
        serde_json::from_slice(&std::fs::read(leaf.join(format!("{n:09}.json"))).unwrap()).unwrap();
    assert_eq!(shown["hash"], hash);
    assert_eq!(
        std::fs::read(mnt.join("by-hash").join(hash.as_str().unwrap())).unwrap(),
        bytes
    );
    mount.terminate();

    // Stateless indeed: nothing was created where the config's data_dir points, and a default
    // catalog directory goes away with its replica; a kept one stays.
    assert!(!gw_dir.join("node").exists());
    a.proc.terminate();
    b.proc.terminate();
    assert!(!a_dir.exists(), "{}", a_dir.display());
    assert!(b_cache.join("catalog").is_dir());
}
