//! `archiver challenge`: ask one hoster to prove, now, that it still holds a shard it was given,
//! and judge the proof from the manifest alone. Wiring only; the protocol is in `prover`, the
//! hoster call and clock in `archiver::audit`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use archiver::audit::{challenge_shard, parse_hoster_key, ChallengeOutcome};
use rand::seq::SliceRandom;

use crate::config_file::ConfigFile;

/// Which shard to challenge.
#[derive(Clone, Copy, Debug, Default)]
pub struct Target {
    pub segment: Option<u64>,
    pub shard: Option<u32>,
}

/// Challenges `hoster` once. Returns the outcome (the caller decides the exit code).
pub async fn challenge(
    config: &Path,
    hoster: &str,
    target: Target,
    samples: u16,
    deadline_ms: Option<u64>,
) -> Result<ChallengeOutcome> {
    let loaded = ConfigFile::load(config)?;
    // Unless given, the deadline the audits measured for this hoster (read-only: an audit may
    // be running), else the fixed default.
    let deadline_ms = match deadline_ms {
        Some(d) => d,
        None => archiver::audit::AuditLog::open_read_only(&loaded.archive.data_dir)
            .context("open audit store")?
            .map(|log| log.measured_deadline_ms(hoster))
            .transpose()
            .context("read audit history")?
            .flatten()
            .unwrap_or(archiver::audit::CHALLENGE_DEADLINE_MS_DEFAULT),
    };
    let entry = loaded
        .archive
        .hosters
        .iter()
        .find(|h| h.name == hoster)
        .with_context(|| format!("no hoster named {hoster} in {}", config.display()))?;
    let hoster_key = parse_hoster_key(entry.public_key.as_deref().with_context(|| {
        format!(
            "hoster {hoster} has no `public_key` in {}: copy the `hoster id` line `archiver hoster` prints (or `key=` in --hoster)",
            config.display()
        )
    })?)
    .map_err(|e| anyhow::anyhow!("hoster {hoster}: public_key: {e}"))?;
    // No block is read: the history cache stays empty.
    let view = loaded.into_read_only(0)?;
    let store = view.store();
    let dispersed = store.dispersed_next().context("read dispersal watermark")?;
    let mut held = Vec::new();
    for segment in 0..dispersed {
        if target.segment.is_some_and(|s| s != segment) {
            continue;
        }
        let Some(placement) = store.placement(segment).context("read placement")? else {
            continue;
        };
        for (i, h) in placement.hosters.iter().enumerate() {
            if h.as_deref() == Some(hoster) && target.shard.is_none_or(|s| s as usize == i) {
                held.push((segment, i as u32, placement.version(i)));
            }
        }
    }
    let Some(&(segment, shard, version)) = held.choose(&mut rand::thread_rng()) else {
        bail!(
            "hoster {hoster} holds no dispersed shard{}",
            match (target.segment, target.shard) {
                (Some(s), Some(i)) => format!(" {i} of segment {s}"),
                (Some(s), None) => format!(" of segment {s}"),
                _ => String::new(),
            }
        );
    };
    let manifest = store
        .manifest(segment)
        .context("read manifest")?
        .with_context(|| format!("segment {segment} has no manifest"))?;
    let host = view
        .remote()
        .hosters()
        .get(hoster)
        .with_context(|| format!("hoster {hoster} not reachable by name"))?
        .clone();
    Ok(challenge_shard(
        view.remote().key(),
        &manifest,
        shard,
        version,
        &host,
        &hoster_key,
        samples,
        deadline_ms,
    )
    .await)
}

/// Prints an outcome as text or JSON.
pub fn print(o: &ChallengeOutcome, json: bool) {
    if json {
        let v = serde_json::json!({
            "hoster": o.hoster,
            "segment": o.segment,
            "shard": o.shard,
            "samples": o.samples,
            "passed": o.passed(),
            "verdict": match &o.verdict { Ok(()) => "pass".to_string(), Err(e) => e.clone() },
            "latencyMs": o.latency_ms,
            "proofBytes": o.proof_bytes,
            "proofBytesPerSample": o.proof_bytes as f64 / f64::from(o.samples.max(1)),
            "deadlineMs": o.deadline_ms,
        });
        println!("{v}");
    } else {
        println!(
            "{} hoster {} segment {} shard {}: {} samples, {:.2} ms (deadline {} ms), {} proof bytes ({:.0} per sample){}",
            if o.passed() { "PASS" } else { "FAIL" },
            o.hoster,
            o.segment,
            o.shard,
            o.samples,
            o.latency_ms,
            o.deadline_ms,
            o.proof_bytes,
            o.proof_bytes as f64 / f64::from(o.samples.max(1)),
            match &o.verdict {
                Ok(()) => String::new(),
                Err(e) => format!(": {e}"),
            }
        );
    }
}

/// Consecutive random draws without a challengeable shard before an audit gives up.
const AUDIT_MISSES_MAX: u32 = 1_000;

/// `archiver audit`: challenges random (segment, shard) pairs across every hoster with a known
/// identity, `rounds` times or every `every_ms` until interrupted; records each outcome and marks
/// failed shards for `archiver repair`. Returns (rounds, failures).
pub async fn audit(
    config: &Path,
    rounds: Option<u64>,
    every_ms: Option<u64>,
    samples: u16,
    deadline_ms: Option<u64>,
) -> Result<(u64, u64)> {
    let loaded = ConfigFile::load(config)?;
    let data_dir = loaded.archive.data_dir.clone();
    let open_log = || archiver::audit::AuditLog::open(&data_dir).context("open audit store");
    // Back-to-back rounds keep the audit store open; a continuous audit opens it per result so
    // that `repair` can clear marks in between.
    let mut log = Some(open_log()?);
    let mut keys = std::collections::HashMap::new();
    for e in &loaded.archive.hosters {
        match e.public_key.as_deref().map(parse_hoster_key) {
            Some(Ok(k)) => {
                keys.insert(e.name.clone(), k);
            }
            Some(Err(err)) => bail!("hoster {}: public_key: {err}", e.name),
            None => tracing::warn!(hoster = %e.name, "no public_key in the config: not audited"),
        }
    }
    if keys.is_empty() {
        bail!(
            "no hoster in {} has a public_key: nothing can be audited",
            config.display()
        );
    }
    // Deadlines: given, or measured from each hoster's own passing latencies.
    let mut deadlines = std::collections::HashMap::new();
    for name in keys.keys() {
        let measured = log
            .as_ref()
            .context("audit store")?
            .measured_deadline_ms(name)
            .context("read audit history")?;
        let d = deadline_ms
            .or(measured)
            .unwrap_or(archiver::audit::CHALLENGE_DEADLINE_MS_DEFAULT);
        deadlines.insert(name.clone(), d);
    }
    if every_ms.is_some() {
        log = None;
    }
    // No block is read: the history cache stays empty.
    let view = loaded.into_read_only(0)?;
    let (store, hosters) = (view.store(), view.remote().hosters());
    let (mut done, mut failed) = (0u64, 0u64);
    // Draws that found no challengeable shard; many in a row means none exists.
    let mut misses = 0u32;
    let started = std::time::Instant::now();
    // Ctrl-C is watched for the whole audit: a signal arriving mid-challenge must still end it
    // (a `ctrl_c()` future made afresh at each pause would miss it, and tokio's handler keeps
    // the default action from ending the process).
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    loop {
        if *stop.borrow() {
            break;
        }
        if misses > AUDIT_MISSES_MAX {
            bail!("no dispersed shard is held by a hoster with a public_key");
        }
        if rounds.is_some_and(|r| done >= r) {
            break;
        }
        view.catch_up().context("refresh archive store")?;
        let dispersed = store.dispersed_next().context("read dispersal watermark")?;
        if dispersed == 0 {
            bail!("nothing dispersed yet: no shard to challenge");
        }
        let segment = rand::Rng::gen_range(&mut rand::thread_rng(), 0..dispersed);
        let (Some(placement), Some(manifest)) = (
            store.placement(segment).context("read placement")?,
            store.manifest(segment).context("read manifest")?,
        ) else {
            misses += 1;
            continue;
        };
        let candidates: Vec<(u32, String)> = placement
            .hosters
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                h.clone()
                    .filter(|h| keys.contains_key(h))
                    .map(|h| (i as u32, h))
            })
            .collect();
        let Some((shard, name)) = candidates.choose(&mut rand::thread_rng()).cloned() else {
            misses += 1;
            continue;
        };
        let (Some(host), Some(key)) = (hosters.get(&name), keys.get(&name)) else {
            misses += 1;
            continue;
        };
        misses = 0;
        let outcome = challenge_shard(
            view.remote().key(),
            &manifest,
            shard,
            placement.version(shard as usize),
            host,
            key,
            samples,
            deadlines
                .get(&name)
                .copied()
                .unwrap_or(archiver::audit::CHALLENGE_DEADLINE_MS_DEFAULT),
        )
        .await;
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        match &log {
            Some(l) => l.record(&outcome, at_ms).context("record audit result")?,
            // A continuous audit outlives a long `repair` holding the store: the result is
            // printed below if it failed, and the audit goes on.
            None => {
                if let Err(e) = open_log()
                    .and_then(|l| l.record(&outcome, at_ms).context("record audit result"))
                {
                    tracing::warn!(error = %format!("{e:#}"), "audit result not recorded");
                }
            }
        }
        done += 1;
        if !outcome.passed() {
            failed += 1;
            print(&outcome, false);
        }
        if let Some(ms) = every_ms {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(ms)) => {}
                _ = stop.changed() => break,
            }
        }
    }
    watcher.abort();
    let secs = started.elapsed().as_secs_f64();
    let mut d: Vec<_> = deadlines.into_iter().collect();
    d.sort();
    println!(
        "deadlines (ms): {}",
        d.iter()
            .map(|(h, ms)| format!("{h} {ms}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "audited {done} shards in {secs:.2} s ({:.0} rounds/s): {failed} failed{}",
        done as f64 / secs.max(1e-9),
        if failed > 0 {
            " (marked for `archiver repair`)"
        } else {
            ""
        }
    );
    match log {
        Some(l) => print_audit_summary(&l)?,
        // The audit is done; a store held by a long `repair` only costs the table.
        None => match open_log() {
            Ok(l) => print_audit_summary(&l)?,
            Err(e) => tracing::warn!(error = %format!("{e:#}"), "per-hoster table not printed"),
        },
    }
    Ok((done, failed))
}

/// Per-hoster audit table (also part of `archiver status`).
pub fn print_audit_summary(log: &archiver::audit::AuditLog) -> Result<()> {
    let rows = log.summary().context("read audit results")?;
    if rows.is_empty() {
        return Ok(());
    }
    println!("storage audits:");
    for r in rows {
        println!(
            "  {:<12} pass {:>6}  fail {:>4}  latency p50 {:.2} ms  p99 {:.2} ms{}",
            r.hoster,
            r.passed,
            r.failed,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.last_failure
                .map(|f| format!("  last failure: {f}"))
                .unwrap_or_default()
        );
    }
    let marked = log.marked().context("read repair marks")?;
    if !marked.is_empty() {
        println!("  {} shard(s) marked for repair", marked.len());
    }
    Ok(())
}
