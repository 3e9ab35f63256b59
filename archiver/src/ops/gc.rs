//! Orphan GC: deletes shards no placement names (uploads that failed half-way, shards a repair
//! superseded, copies left on a hoster that came back after its shards were moved), and never a
//! shard that the local placement names, nor a newer version of any shard (which a placement an
//! interrupted repair published may name).

use std::collections::{BTreeMap, BTreeSet};

use crate::archive::Disperser;
use crate::error::Result;
use crate::remote::timed;

/// What one GC pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// (hoster, orphan shards deleted, hoster keys deleted)
    pub deleted: Vec<(String, u64, u64)>,
    /// Hoster keys found that a placement names (kept; one per part on 0-db).
    pub kept: u64,
    /// (hoster, why) hosters not collected this pass.
    pub skipped: Vec<(String, String)>,
    /// Why the whole pass did nothing, if it did nothing.
    pub not_run: Option<String>,
}

impl GcReport {
    pub fn shards_deleted(&self) -> u64 {
        self.deleted.iter().map(|(_, s, _)| s).sum()
    }
}

/// Versions past a shard's local one whose names GC keeps on every hoster: a repair interrupted
/// after publishing its placement but before recording it locally (a crash) leaves shards under
/// the next version that the hosters' newest placement names and a restore would follow; a few
/// such crashes in a row stay covered.
pub const VERSIONS_AHEAD_KEPT: u32 = 8;

/// What GC must keep: per hoster, the names the local placement puts there; and, on any
/// hoster, the names of every shard's next `VERSIONS_AHEAD_KEPT` versions. Needs no network, so
/// an unreachable hoster cannot hide a placement from it. Err(why) when the local records are
/// incomplete (then nothing is collected).
fn named_shards(disperser: &Disperser) -> Result<std::result::Result<Named, String>> {
    let store = disperser.store();
    let key = disperser.remote().key().clone();
    let mut named = Named::default();
    for segment in 0..store.dispersed_next()? {
        let (Some(manifest), Some(p)) = (store.manifest(segment)?, store.placement(segment)?)
        else {
            return Ok(Err(format!(
                "segment {segment} is dispersed but its records are missing"
            )));
        };
        for (i, holder) in p.hosters.iter().enumerate() {
            let version = p.version(i);
            if let Some(h) = holder {
                let name = manifest.shard_storage_key_at(&key, i, version);
                named.placed.entry(h.clone()).or_default().insert(name);
            }
            for ahead in 1..=VERSIONS_AHEAD_KEPT {
                let name = manifest.shard_storage_key_at(&key, i, version.saturating_add(ahead));
                named.ahead.insert(name);
            }
        }
    }
    Ok(Ok(named))
}

#[derive(Default)]
struct Named {
    placed: BTreeMap<String, BTreeSet<Vec<u8>>>,
    ahead: BTreeSet<Vec<u8>>,
}

/// Walks one hoster's shard keys batch by batch (never holding its whole listing), deleting
/// those not kept. Returns (orphan shards, hoster keys) deleted; `kept` counts the keys kept.
async fn collect_on(
    host: &dyn crate::hosters::ShardHost,
    keep: &BTreeSet<Vec<u8>>,
    ahead: &BTreeSet<Vec<u8>>,
    kept: &mut u64,
) -> std::result::Result<(u64, u64), crate::hosters::HostError> {
    let (mut shards, mut keys) = (BTreeSet::new(), 0u64);
    let mut cursor: Option<Vec<u8>> = None;
    while let Some((next, batch)) = timed(host.scan_shards(cursor.clone())).await? {
        let mut orphans = Vec::new();
        for (storage_key, raw) in batch {
            if keep.contains(&storage_key) || ahead.contains(&storage_key) {
                *kept += 1;
            } else {
                shards.insert(storage_key);
                orphans.push(raw);
            }
        }
        timed(host.delete_shard_keys(&orphans)).await?;
        keys += orphans.len() as u64;
        if cursor.as_ref() == Some(&next) {
            break;
        }
        cursor = Some(next);
    }
    Ok((shards.len() as u64, keys))
}

/// Deletes every orphan shard on every reachable hoster. Runs with dispersal and repair held
/// off, and not at all while a sealed segment awaits dispersal (its shards may already be on
/// hosters without a placement naming them).
pub async fn collect_orphans(disperser: &Disperser) -> Result<GcReport> {
    let _no_upload_in_flight = disperser.exclusive().await;
    let mut report = GcReport::default();
    if !disperser.pending_dispersal()?.is_empty() {
        report.not_run = Some("a sealed segment awaits dispersal".into());
        return Ok(report);
    }
    let named = match named_shards(disperser)? {
        Ok(n) => n,
        Err(why) => {
            report.not_run = Some(why);
            return Ok(report);
        }
    };
    let empty = BTreeSet::new();
    for host in disperser.hosters().all() {
        let keep = named.placed.get(host.name()).unwrap_or(&empty);
        match collect_on(host.as_ref(), keep, &named.ahead, &mut report.kept).await {
            Ok((0, _)) => {}
            Ok((shards, keys)) => {
                tracing::info!(hoster = host.name(), shards, "orphan shards deleted");
                report.deleted.push((host.name().to_string(), shards, keys));
            }
            Err(e) => report
                .skipped
                .push((host.name().to_string(), e.to_string())),
        }
    }
    Ok(report)
}
