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
    deadline_ms: u64,
) -> Result<ChallengeOutcome> {
    let loaded = ConfigFile::load(config)?;
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
    let scratch = tempfile::tempdir().context("create secondary store directory")?;
    let store =
        archiver::store::Store::open_secondary(&loaded.archive.data_dir.join("db"), scratch.path())
            .context("open archive store (read-only)")?;
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
                held.push((segment, i as u32));
            }
        }
    }
    let Some(&(segment, shard)) = held.choose(&mut rand::thread_rng()) else {
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
    let hosters = loaded.hoster_set();
    let host = hosters
        .get(hoster)
        .with_context(|| format!("hoster {hoster} not reachable by name"))?
        .clone();
    Ok(challenge_shard(
        &loaded.key,
        &manifest,
        shard,
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
        });
        println!("{v}");
    } else {
        println!(
            "{} hoster {} segment {} shard {}: {} samples, {:.2} ms, {} proof bytes ({:.0} per sample){}",
            if o.passed() { "PASS" } else { "FAIL" },
            o.hoster,
            o.segment,
            o.shard,
            o.samples,
            o.latency_ms,
            o.proof_bytes,
            o.proof_bytes as f64 / f64::from(o.samples.max(1)),
            match &o.verdict {
                Ok(()) => String::new(),
                Err(e) => format!(": {e}"),
            }
        );
    }
}
