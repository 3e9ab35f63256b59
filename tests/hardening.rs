//! Pruned history must not be losable, over real TCP with hoster processes: an anonymous client
//! can neither read, overwrite nor delete anything of the archive; metadata deleted on the hosters
//! by their owner is found and re-published by `repair`, after which a restore from the config
//! alone is byte-identical; a segment that cannot be rebuilt does not stop a restore, which names
//! it and exits non-zero.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;

use archiver_cli::cluster::{start_hosters, write_cluster_config, HosterProcess};
use archiver_cli::config_file::{open_archive, ConfigFile};
use archiver_cli::ingest::ingest_synthetic;
use common::{archiver, text, EXE};

const MIB: u64 = 1024 * 1024;
const NAMESPACE: &str = "poa-archive";

/// A plain RESP connection, as any client that reaches the port has.
struct Resp(BufReader<TcpStream>);

impl Resp {
    fn connect(address: &str) -> Self {
        Self(BufReader::new(TcpStream::connect(address).unwrap()))
    }

    /// Sends one command; returns its reply's first line (a status, an error, or a bulk header
    /// with the bulk's bytes after a newline).
    fn call(&mut self, args: &[&[u8]]) -> String {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        self.0.get_mut().write_all(&req).unwrap();
        let mut line = String::new();
        self.0.read_line(&mut line).unwrap();
        if let Some(len) = line
            .strip_prefix('$')
            .and_then(|l| l.trim().parse::<usize>().ok())
        {
            let mut body = vec![0u8; len + 2];
            std::io::Read::read_exact(&mut self.0, &mut body).unwrap();
            line.push_str(&String::from_utf8_lossy(&body[..len]));
        }
        line
    }
}

/// The owner of a hoster (admin password) deleting keys outside the archiver: worm is lifted
/// first, as only an admin can.
fn owner_delete(h: &HosterProcess, namespace: &str, keys: &[Vec<u8>]) {
    let mut c = Resp::connect(&h.address);
    assert!(c
        .call(&[b"AUTH", h.admin_password.as_bytes()])
        .starts_with("+OK"));
    let ns = namespace.as_bytes();
    assert!(c.call(&[b"NSSET", ns, b"worm", b"0"]).starts_with("+OK"));
    let sel = c.call(&[b"SELECT", ns, h.namespace_password.as_bytes()]);
    assert!(sel.starts_with("+OK"), "{sel}");
    for k in keys {
        c.call(&[b"DEL", k]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosters_refuse_strangers_metadata_heals_and_restore_survives_a_lost_segment() {
    let dir = tempfile::tempdir().unwrap();
    let hosters = start_hosters(Path::new(EXE), &dir.path().join("hosters"), 6, 3).unwrap();
    let config = write_cluster_config(dir.path(), &hosters, 4, 2, MIB).unwrap();
    let archive = open_archive(&config).unwrap();
    assert!(archive.prepare_hosters().await.is_empty());
    let mut archive = archive;
    ingest_synthetic(&mut archive, 7, None, Some(6 * MIB), true, true, |_, _| {})
        .await
        .unwrap();
    let segments = archive.store().dispersed_next().unwrap();
    assert!(segments >= 5, "{segments} segments");
    let manifest = archive.store().manifest(1).unwrap().unwrap();
    let placement = archive.store().placement(1).unwrap().unwrap();
    let first_manifest = archive.store().manifest(0).unwrap().unwrap();
    // The CLI commands below open the archive themselves.
    drop(archive);
    let loaded = ConfigFile::load(&config).unwrap();
    let key = &loaded.key;

    // 1. A stranger (no password) reaches every port and gets nothing.
    let some_shard = zdb_backend::large_part_key(&first_manifest.shard_storage_key(key, 0), 0);
    for h in &hosters {
        let mut c = Resp::connect(&h.address);
        for ns in [NAMESPACE.to_string(), format!("{NAMESPACE}-meta")] {
            let ns = ns.as_bytes();
            let sel = c.call(&[b"SELECT", ns]);
            assert!(
                sel.starts_with('-'),
                "{}: SELECT without password: {sel}",
                h.name
            );
            let worm = c.call(&[b"NSSET", ns, b"worm", b"0"]);
            assert!(
                worm.starts_with('-'),
                "{}: NSSET by a stranger: {worm}",
                h.name
            );
            let del = c.call(&[b"NSDEL", ns]);
            assert!(
                del.starts_with('-'),
                "{}: NSDEL by a stranger: {del}",
                h.name
            );
            let pw = c.call(&[b"NSSET", ns, b"password", b"mine"]);
            assert!(pw.starts_with('-'), "{}: NSSET password: {pw}", h.name);
        }
        // Still in the default namespace: the archive's keys are not there.
        let get = c.call(&[b"GET", &some_shard]);
        assert!(get.starts_with("$-1"), "{}: GET: {get}", h.name);
        let del = c.call(&[b"DEL", &some_shard]);
        assert!(del.starts_with('-'), "{}: DEL: {del}", h.name);
    }
    let o = archiver(&config, &["verify"]);
    assert!(o.status.success(), "{}", text(&o));

    // 2. The owners delete metadata (segment 0's manifest everywhere, every head record, and the
    //    placement of segment 1) outside the archiver: a fresh machine cannot restore ...
    let meta_ns = format!("{NAMESPACE}-meta");
    let mut gone: Vec<Vec<u8>> = vec![key.manifest_storage_key(0), key.placement_storage_key(1, 0)];
    gone.extend((0..segments).map(|s| key.head_storage_key(s)));
    for h in &hosters {
        owner_delete(h, &meta_ns, &gone);
    }
    let before = dir.path().join("before-repair");
    let o = archiver(&config, &["restore", "--out", before.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", text(&o));
    // ... `repair` finds every missing record and writes it again ...
    let o = archiver(&config, &["repair"]);
    assert!(o.status.success(), "{}", text(&o));
    let expected = 6 * (segments + 2);
    assert!(
        text(&o).contains(&format!("{expected} re-published")),
        "{}",
        text(&o)
    );
    // ... after which a restore from the config alone is byte-identical.
    let out = dir.path().join("after-repair");
    let o = archiver(&config, &["restore", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let local = loaded.archive.layout().segments();
    for s in 0..segments {
        let name = archiver::log::segment_file_name(s);
        assert_eq!(
            std::fs::read(out.join("segments").join(&name)).unwrap(),
            std::fs::read(local.join(&name)).unwrap(),
            "segment {s}"
        );
    }

    // 3. Segment 1 loses m+1 shards: the restore writes every other segment, names segment 1
    //    and its blocks, and exits non-zero.
    let parts = zdb_backend::large_part_count_with(
        manifest.shard_bytes,
        archiver::hosters::SHARD_PART_BYTES,
    );
    for shard in 0..3 {
        let holder = placement.hosters[shard].clone().unwrap();
        let h = hosters.iter().find(|h| h.name == holder).unwrap();
        let keys: Vec<Vec<u8>> = (0..parts)
            .map(|p| zdb_backend::large_part_key(&manifest.shard_storage_key(key, shard), p as u16))
            .collect();
        owner_delete(h, NAMESPACE, &keys);
    }
    let lost_out = dir.path().join("one-lost");
    let o = archiver(&config, &["restore", "--out", lost_out.to_str().unwrap()]);
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(
        t.contains(&format!(
            "LOST segment 1 (blocks {}..={})",
            manifest.first_number, manifest.last_number
        )),
        "{t}"
    );
    for s in (0..segments).filter(|&s| s != 1) {
        let name = archiver::log::segment_file_name(s);
        assert_eq!(
            std::fs::read(lost_out.join("segments").join(&name)).unwrap(),
            std::fs::read(local.join(&name)).unwrap(),
            "segment {s}"
        );
    }
    assert!(!lost_out
        .join("segments")
        .join(archiver::log::segment_file_name(1))
        .exists());
    // `status` and `repair` agree that segment 1 is short.
    let o = archiver(&config, &["repair"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("segment 1:"), "{}", text(&o));
    let o = archiver(&config, &["status", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let short: Vec<u64> = status["under_replicated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u[0].as_u64().unwrap())
        .collect();
    assert_eq!(short, vec![1], "{status}");
}

/// Flips `bytes` at `offsets` in `file` in place (the hoster keeps running on it).
fn flip_in_place(file: &Path, offsets: &[u64]) {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    for &at in offsets {
        let mut b = [0u8; 1];
        f.seek(SeekFrom::Start(at)).unwrap();
        f.read_exact(&mut b).unwrap();
        b[0] ^= 0x20;
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&b).unwrap();
    }
    f.sync_all().unwrap();
}

/// Rot at rest on every hoster: every shard of segment 1 damaged in a different 64 KiB part, plus
/// seeded random flips in the stored shards of every other segment (never more than m damaged
/// parts in one part-stripe). A fresh restore is byte-identical; `repair --verify` brings every
/// segment back to k+m; then any 2 hosters may die.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rot_spread_over_every_hoster_is_restored_and_repaired() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let mut hosters = start_hosters(Path::new(EXE), &dir.path().join("hosters"), 7, 3).unwrap();
    let config = write_cluster_config(dir.path(), &hosters, 4, 2, 2 * MIB).unwrap();
    let mut archive = open_archive(&config).unwrap();
    assert!(archive.prepare_hosters().await.is_empty());
    ingest_synthetic(&mut archive, 9, None, Some(8 * MIB), true, true, |_, _| {})
        .await
        .unwrap();
    let segments = archive.store().dispersed_next().unwrap();
    assert!(segments >= 4, "{segments}");
    let remote = archive.remote().clone();
    let part = archiver::hosters::SHARD_PART_BYTES;
    let ns_dir = format!("ns-{}", hex::encode(NAMESPACE));
    let files: Vec<Vec<u8>> = hosters
        .iter()
        .map(|h| std::fs::read(h.data_dir.join(&ns_dir).join("data")).unwrap())
        .collect();
    // (hoster index, needle) for every flip, chosen from the shards as stored: 64 bytes found
    // exactly once in the holder's file (zero padding repeats, so it is never a needle).
    let unique =
        |file: &[u8], needle: &[u8]| file.windows(64).filter(|w| *w == needle).count() == 1;
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut flips: Vec<(usize, Vec<u8>)> = Vec::new();
    for segment in 0..segments {
        let meta = remote.segment_meta(segment).await.unwrap();
        let (shards, _) = remote.fetch_shards(&meta, true).await.unwrap();
        let parts = meta.manifest.parts_per_shard();
        let mut per_stripe = vec![0usize; parts];
        for (i, shard) in shards.iter().enumerate() {
            let shard = shard.as_ref().unwrap();
            let holder = meta.placement.hosters[i].clone().unwrap();
            let h = hosters.iter().position(|h| h.name == holder).unwrap();
            let wanted = if segment == 1 { 1 } else { 2 };
            let mut done = 0;
            for attempt in 0..200 {
                if done == wanted {
                    break;
                }
                let p = if segment == 1 && attempt < 20 {
                    i % parts
                } else {
                    rng.gen_range(0..parts)
                };
                if per_stripe[p] == 2 {
                    continue;
                }
                let len = shard.len().min((p + 1) * part) - p * part;
                let at = p * part + rng.gen_range(0..len - 64);
                let needle = &shard[at..at + 64];
                if !unique(&files[h], needle) {
                    continue;
                }
                per_stripe[p] += 1;
                done += 1;
                flips.push((h, needle.to_vec()));
            }
        }
    }
    let ns_dir = format!("ns-{}", hex::encode(NAMESPACE));
    // The CLI commands below open the archive themselves.
    drop(archive);
    let mut flipped = 0;
    for (h, hoster) in hosters.iter().enumerate() {
        let file = hoster.data_dir.join(&ns_dir).join("data");
        let bytes = std::fs::read(&file).unwrap();
        let offsets: Vec<u64> = flips
            .iter()
            .filter(|(on, _)| *on == h)
            .map(|(_, needle)| {
                let at = bytes.windows(64).position(|w| w == needle).unwrap();
                (at + 32) as u64
            })
            .collect();
        flipped += offsets.len();
        flip_in_place(&file, &offsets);
    }
    assert_eq!(flipped, flips.len());
    assert!(flipped >= 6 + 2 * 6, "{flipped} flips");
    println!(
        "{flipped} bytes flipped in stored shards over {} hosters",
        hosters.len()
    );

    let loaded = ConfigFile::load(&config).unwrap();
    let local = loaded.archive.layout().segments();
    let same_as_local = |out: &Path| {
        for s in 0..segments {
            let name = archiver::log::segment_file_name(s);
            assert_eq!(
                std::fs::read(out.join("segments").join(&name)).unwrap(),
                std::fs::read(local.join(&name)).unwrap(),
                "segment {s}"
            );
        }
    };
    let out = dir.path().join("restored-rotten");
    let o = archiver(&config, &["restore", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    same_as_local(&out);

    let o = archiver(&config, &["repair", "--verify"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    let repaired = t
        .split("repaired ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap();
    assert!(repaired >= 6, "{t}");
    println!("repair --verify rebuilt {repaired} shards");
    let o = archiver(&config, &["repair", "--verify"]);
    assert!(
        o.status.success() && text(&o).contains("repaired 0 shards"),
        "{}",
        text(&o)
    );
    // Back to k+m: two hosters may die.
    hosters[0].kill().unwrap();
    hosters[3].kill().unwrap();
    let out = dir.path().join("restored-two-down");
    let o = archiver(&config, &["restore", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    same_as_local(&out);
}

/// Resident and peak resident memory of a process, KiB (`VmRSS`, `VmHWM`).
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// 200 concurrent history-RPC reads, each of a block in a different pruned segment: rebuilds are
/// bounded (`HISTORY_REBUILDS_MAX`), so the server's peak RSS stays near its idle RSS instead of
/// growing with one rebuilt segment per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_rpc_memory_stays_bounded_under_200_reads_of_pruned_segments() {
    use jsonrpsee::core::client::ClientT;
    const SEGMENT_BYTES: u64 = 512 * 1024;
    const READS: u64 = 200;
    /// Peak RSS allowed above the idle server. Measured: 11 MiB with rebuilds bounded, 51 MiB
    /// with them unbounded (one rebuild of shards + plaintext per request in flight).
    const PEAK_ABOVE_IDLE_KIB_MAX: u64 = 32 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let hosters = start_hosters(Path::new(EXE), &dir.path().join("hosters"), 6, 3).unwrap();
    let config = write_cluster_config(dir.path(), &hosters, 4, 2, SEGMENT_BYTES).unwrap();
    let mut archive = open_archive(&config).unwrap();
    assert!(archive.prepare_hosters().await.is_empty());
    ingest_synthetic(
        &mut archive,
        3,
        None,
        Some((READS + 2) * SEGMENT_BYTES),
        true,
        true,
        |_, _| {},
    )
    .await
    .unwrap();
    let segments = archive.store().dispersed_next().unwrap();
    assert!(segments >= READS, "{segments}");
    let firsts: Vec<u64> = (0..READS)
        .map(|s| archive.store().sealed(s).unwrap().unwrap().first_number)
        .collect();
    drop(archive);
    let o = archiver(&config, &["prune"]);
    assert!(o.status.success(), "{}", text(&o));

    let mut rpc = Command::new(EXE)
        .arg("--config")
        .arg(&config)
        .args(["rpc", "--listen", "127.0.0.1:0", "--cache-mib", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(rpc.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("rpc listening on ")
        .unwrap()
        .to_string();
    let client = jsonrpsee::http_client::HttpClientBuilder::default()
        .request_timeout(std::time::Duration::from_secs(120))
        .max_concurrent_requests(READS as usize)
        .build(format!("http://{addr}"))
        .unwrap();
    let mut hashes = Vec::new();
    for n in &firsts {
        let h: serde_json::Value = client
            .request("chain_getBlockHash", jsonrpsee::rpc_params![n])
            .await
            .unwrap();
        hashes.push(h);
    }
    let (idle, _) = rss_kib(rpc.id());
    let reads = hashes.iter().map(|h| {
        let client = client.clone();
        let h = h.clone();
        async move {
            client
                .request::<serde_json::Value, _>("chain_getBlock", jsonrpsee::rpc_params![h])
                .await
        }
    });
    let answers = futures::future::join_all(reads).await;
    let (after, peak) = rss_kib(rpc.id());
    let _ = rpc.kill();
    let _ = rpc.wait();
    for (a, n) in answers.iter().zip(&firsts) {
        let block = a.as_ref().unwrap_or_else(|e| panic!("block {n}: {e}"));
        let number = block["block"]["header"]["number"].as_str().unwrap();
        assert_eq!(u64::from_str_radix(&number[2..], 16).unwrap(), *n);
    }
    println!(
        "history RPC, {READS} concurrent reads of {READS} pruned segments: RSS idle {} MiB, \
         after {} MiB, peak {} MiB (bound: idle + {} MiB)",
        idle / 1024,
        after / 1024,
        peak / 1024,
        PEAK_ABOVE_IDLE_KIB_MAX / 1024
    );
    assert!(
        peak < idle + PEAK_ABOVE_IDLE_KIB_MAX,
        "peak {peak} KiB, idle {idle} KiB"
    );
}
