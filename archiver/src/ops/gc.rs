//! Orphan GC: deletes shards no placement names (uploads that failed half-way, shards a repair
//! superseded, copies left on a hoster that came back after its shards were moved), and never a
//! shard that a placement, local or on the hosters, still names.

use std::collections::{BTreeMap, BTreeSet};

use crate::archive::Disperser;
use crate::error::Result;
use crate::remote::timed;

/// What one GC pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// (hoster, orphan shards deleted, hoster keys deleted)
    pub deleted: Vec<(String, u64, u64)>,
    /// Shards found that a placement names (kept).
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

/// Storage keys each hoster must keep: every shard the local placement or the newest placement
/// on the hosters names there (an interrupted repair may have published a generation the local
/// store never recorded; a restore would follow it).
async fn named_shards(disperser: &Disperser) -> Result<BTreeMap<String, BTreeSet<Vec<u8>>>> {
    let store = disperser.store();
    let key = disperser.remote().key().clone();
    let mut named: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for segment in 0..store.dispersed_next()? {
        let Some(manifest) = store.manifest(segment)? else {
            continue;
        };
        let mut placements: Vec<_> = store.placement(segment)?.into_iter().collect();
        if let Ok(Some(meta)) = disperser.remote().segment_meta_opt(segment).await {
            if meta.manifest == manifest {
                placements.push(meta.placement);
            }
        }
        for p in &placements {
            for (i, holder) in p.hosters.iter().enumerate() {
                if let Some(h) = holder {
                    let name = manifest.shard_storage_key_at(&key, i, p.version(i));
                    named.entry(h.clone()).or_default().insert(name);
                }
            }
        }
    }
    Ok(named)
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
    let named = named_shards(disperser).await?;
    let empty = BTreeSet::new();
    for host in disperser.hosters().all() {
        let listing = match timed(host.list_shards()).await {
            Ok(l) => l,
            Err(e) => {
                report
                    .skipped
                    .push((host.name().to_string(), e.to_string()));
                continue;
            }
        };
        let keep = named.get(host.name()).unwrap_or(&empty);
        let (mut shards, mut keys) = (0u64, 0u64);
        for (storage_key, parts) in listing {
            if keep.contains(&storage_key) {
                report.kept += 1;
                continue;
            }
            if let Err(e) = timed(host.delete_shard_keys(&parts)).await {
                report
                    .skipped
                    .push((host.name().to_string(), e.to_string()));
                break;
            }
            shards += 1;
            keys += parts.len() as u64;
        }
        if shards > 0 {
            tracing::info!(hoster = host.name(), shards, "orphan shards deleted");
            report.deleted.push((host.name().to_string(), shards, keys));
        }
    }
    Ok(report)
}
