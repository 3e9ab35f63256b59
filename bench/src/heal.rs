//! `archiver bench --heal`: how fast the archive notices a lost hoster and gets back to k+m.
//! Seven embedded hoster processes (4+2 plus a spare) hold --mib MiB; the operations service runs
//! with the configured health bounds (defaults unless --lost-after-ms), one hoster is SIGKILLed,
//! and the bench prints the detection time and the rebuild throughput of the lost shard data,
//! beside the read and write limits of the same hosters measured in the same run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use archiver::ops::{HealthPolicy, OpsOptions, OpsService, SystemClock};
use archiver_cli::{cluster, ingest};

/// Goals of the issue: detection within a minute at defaults, rebuild ≥ 100 MB/s.
const DETECTION_GOAL_S: f64 = 60.0;
const REBUILD_GOAL_MB_S: f64 = 100.0;
/// Pause between service passes while waiting: the service's own tick.
const PASS_PAUSE_MS: u64 = 100;
/// Give up after this long (a hoster must be lost and rebuilt well within it).
const BENCH_TIMEOUT_S: u64 = 600;

/// The hoster holding the most shard bytes, and those bytes.
fn victim(archive: &archiver::Archive) -> Result<(String, u64)> {
    let store = archive.store();
    let mut held: BTreeMap<String, u64> = BTreeMap::new();
    for segment in 0..store.dispersed_next()? {
        let (Some(m), Some(p)) = (store.manifest(segment)?, store.placement(segment)?) else {
            continue;
        };
        for h in p.hosters.iter().flatten() {
            *held.entry(h.clone()).or_default() += m.shard_bytes;
        }
    }
    held.into_iter()
        .max_by_key(|(_, b)| *b)
        .context("nothing dispersed")
}

/// MB/s of reading every shard of every segment back (the rebuild's read side) and of writing
/// them again under fresh names (its write side), over the same hosters.
async fn hoster_limits(archive: &archiver::Archive) -> Result<(f64, f64)> {
    let store = archive.store();
    let remote = archive.remote();
    let (mut read, mut bytes) = (Duration::ZERO, 0u64);
    let mut write = Duration::ZERO;
    for segment in 0..store.dispersed_next()? {
        let meta = remote.segment_meta(segment).await?;
        let t = Instant::now();
        let fetched = remote.fetch_parts(&meta, true).await?;
        read += t.elapsed();
        let shards: Vec<Vec<u8>> = fetched.shards.into_iter().flatten().collect();
        bytes += shards.iter().map(|s| s.len() as u64).sum::<u64>();
        let t = Instant::now();
        let writes = shards.iter().enumerate().map(|(i, s)| {
            let host = remote.hosters().all()[i % remote.hosters().len()].clone();
            let name = blake3::hash(&[segment.to_le_bytes(), (i as u64).to_le_bytes()].concat());
            async move { host.put_shard(&name.as_bytes()[..24], s).await }
        });
        futures::future::try_join_all(writes).await?;
        write += t.elapsed();
        // The written copies are the bench's own orphans: gone before the service's GC sees them.
        for (i, s) in shards.iter().enumerate() {
            let host = remote.hosters().all()[i % remote.hosters().len()].clone();
            let name = blake3::hash(&[segment.to_le_bytes(), (i as u64).to_le_bytes()].concat());
            let parts = zdb_backend::large_part_count_with(
                s.len() as u64,
                archiver::hosters::SHARD_PART_BYTES,
            );
            let keys: Vec<Vec<u8>> = (0..parts)
                .map(|p| zdb_backend::large_part_key(&name.as_bytes()[..24], p as u16))
                .collect();
            host.delete_shard_keys(&keys).await?;
        }
    }
    let mb = bytes as f64 / 1e6;
    Ok((mb / read.as_secs_f64(), mb / write.as_secs_f64()))
}

/// Passes the service from the kill until every segment is back to k+m: (time to detection,
/// time spent in passes after it).
async fn heal_after_kill(ops: &mut OpsService, victim: &str) -> Result<(Duration, Duration)> {
    let killed = Instant::now();
    let (mut detected, mut rebuild) = (None, Duration::ZERO);
    loop {
        let pass = Instant::now();
        ops.pass().await;
        let status = ops.handle().status();
        if detected.is_none() && status.lost.iter().any(|h| h == victim) {
            detected = Some(killed.elapsed());
        }
        if let Some(detection) = detected {
            rebuild += pass.elapsed();
            let full = status
                .segments_by_redundancy
                .iter()
                .rev()
                .skip(1)
                .all(|&n| n == 0);
            if status.repair_queue_segments == 0 && full && status.repaired_shards > 0 {
                return Ok((detection, rebuild));
            }
        }
        if killed.elapsed() > Duration::from_secs(BENCH_TIMEOUT_S) {
            bail!("not back to k+m after {BENCH_TIMEOUT_S} s: {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(PASS_PAUSE_MS)).await;
    }
}

pub async fn run(mib: u64, dir: Option<PathBuf>, lost_after_ms: Option<u64>) -> Result<()> {
    let tmp = tempfile::tempdir().context("create bench directory")?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    let mut c = cluster::start_cluster(&dir, 7, 3, 4, 2).await?;
    ingest::ingest_synthetic(
        &mut c.archive,
        1,
        None,
        Some(mib << 20),
        true,
        true,
        |_, _| {},
    )
    .await?;
    let (victim, lost_bytes) = victim(&c.archive)?;
    let (read_mb_s, write_mb_s) = hoster_limits(&c.archive).await?;
    let mut health = HealthPolicy::default();
    if let Some(ms) = lost_after_ms {
        health.lost_after_ms = ms;
    }
    let opts = OpsOptions {
        health: health.clone(),
        // Detection by probes alone; repair unbounded, to measure what it can do.
        audit_interval_ms: 0,
        repair_bytes_per_sec: u64::MAX / 4,
        ..OpsOptions::default()
    };
    let data_dir = c.archive.config().data_dir.clone();
    let mut ops = OpsService::new(
        c.archive.disperser(),
        data_dir,
        BTreeMap::new(),
        opts,
        Arc::new(SystemClock::new()),
    );
    ops.pass().await;
    let index = c
        .hosters
        .iter()
        .position(|h| h.name == victim)
        .context("victim")?;
    c.hosters[index].kill()?;
    let (detection, rebuild) = heal_after_kill(&mut ops, &victim).await?;
    let detection = detection.as_secs_f64();
    let rebuild_mb_s = lost_bytes as f64 / 1e6 / rebuild.as_secs_f64();
    println!(
        "heal: 7 hosters, 4+2, {mib} MiB archived; {victim} SIGKILLed holding {:.1} MB of shards",
        lost_bytes as f64 / 1e6
    );
    println!(
        "  detection         {detection:6.1} s   (lost after {} ms, probes every {} ms; goal <= {DETECTION_GOAL_S} s: {}; 0-stor_v2: 900 s + a 600 s sweep)",
        health.lost_after_ms,
        health.probe_interval_ms,
        if detection <= DETECTION_GOAL_S { "met" } else { "MISSED" }
    );
    println!(
        "  rebuild           {rebuild_mb_s:6.1} MB/s of lost shard data in {:.2} s (goal >= {REBUILD_GOAL_MB_S}: {})",
        rebuild.as_secs_f64(),
        if rebuild_mb_s >= REBUILD_GOAL_MB_S { "met" } else { "MISSED" }
    );
    // A rebuilt shard costs k shard reads and one write: that is its ceiling on these hosters.
    let ceiling = 1.0 / (4.0 / read_mb_s + 1.0 / write_mb_s);
    println!(
        "  limits (same run) read {read_mb_s:.0} MB/s, write {write_mb_s:.0} MB/s -> rebuild ceiling {ceiling:.0} MB/s; rebuild = {:.2} x ceiling",
        rebuild_mb_s / ceiling
    );
    Ok(())
}
