//! The archive as the hosters hold it: replicated metadata (head, manifests, placements) and shard
//! reads. This is all a fresh machine with only the config needs to rebuild and verify history.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio::task::JoinSet;

use crate::codec;
use crate::error::{ArchiveError, Result};
use crate::hosters::{HostError, HostResult, HosterSet, ShardHost};
use crate::keys::MasterKey;
use crate::manifest::{open_head, open_metadata, Head, Manifest, Placement};

/// Upper bound on any one hoster call made through the trait: a hoster that hangs must cost one
/// timeout, not a stalled restore. The 0-db client has shorter per-request timeouts of its own.
pub const HOSTER_CALL_TIMEOUT_MS: u64 = 60_000;
/// Manifest records fetched at once while loading the chain: small values, latency-bound.
pub const METADATA_FETCH_CONCURRENCY: usize = 32;
/// Once one hoster answered a metadata read (even "not found"), the others get this much longer: a
/// hoster that hangs must not stall every manifest read for a full call timeout.
pub const METADATA_GRACE_MS: u64 = 1_000;
/// A shard read still running after this long gets a hedge: the next candidate shard is read too,
/// and whichever k verify first win. Loopback and LAN reads of an 8 MiB shard take milliseconds.
pub const SHARD_HEDGE_AFTER_MS: u64 = 1_500;

/// Next finished task; once `answered`, waits at most `METADATA_GRACE_MS` (None = give up).
async fn next_with_grace<T: 'static>(
    set: &mut JoinSet<T>,
    answered: bool,
) -> Option<std::result::Result<T, tokio::task::JoinError>> {
    if !answered {
        return set.join_next().await;
    }
    match tokio::time::timeout(Duration::from_millis(METADATA_GRACE_MS), set.join_next()).await {
        Ok(next) => next,
        Err(_) => {
            set.abort_all();
            None
        }
    }
}

pub(crate) async fn timed<T>(
    fut: impl std::future::Future<Output = HostResult<T>>,
) -> HostResult<T> {
    match tokio::time::timeout(Duration::from_millis(HOSTER_CALL_TIMEOUT_MS), fut).await {
        Ok(r) => r,
        Err(_) => Err(HostError::Injected(format!(
            "no answer within {HOSTER_CALL_TIMEOUT_MS} ms"
        ))),
    }
}

/// A segment's verified manifest with the freshest placement found.
#[derive(Clone, Debug)]
pub struct SegmentMeta {
    pub manifest: Manifest,
    pub placement: Placement,
}

/// Which shard a read used, or why it could not.
#[derive(Clone, Debug, Default)]
pub struct ReadReport {
    /// (shard index, hoster, what went wrong) for every shard that failed.
    pub failures: Vec<(usize, String, String)>,
    pub shards_read: usize,
    pub reconstructed: bool,
}

/// Reads the archive from its hosters.
#[derive(Clone, Debug)]
pub struct RemoteArchive {
    key: Arc<MasterKey>,
    hosters: HosterSet,
}

impl RemoteArchive {
    pub fn new(key: Arc<MasterKey>, hosters: HosterSet) -> Self {
        Self { key, hosters }
    }

    pub fn hosters(&self) -> &HosterSet {
        &self.hosters
    }

    pub fn key(&self) -> &Arc<MasterKey> {
        &self.key
    }

    /// The freshest head record any reachable hoster has.
    pub async fn head(&self) -> Result<Head> {
        let key = self.key.head_storage_key();
        let mut set = JoinSet::new();
        for h in self.hosters.all() {
            let h = h.clone();
            let key = key.clone();
            set.spawn(async move { timed(h.get_meta(&key)).await });
        }
        let (mut reachable, mut best, mut wrong_key) = (0usize, None::<Head>, None);
        while let Some(res) = next_with_grace(&mut set, reachable > 0).await {
            let Ok(Ok(value)) = res else { continue };
            reachable += 1;
            let Some(bytes) = value else { continue };
            match open_head(&self.key, &bytes) {
                Ok(head) => {
                    if best.is_none_or(|b| head.last_segment > b.last_segment) {
                        best = Some(head);
                    }
                }
                Err(e) => wrong_key = Some(e),
            }
        }
        match (best, wrong_key) {
            (Some(head), _) => Ok(head),
            (None, Some(e)) => Err(e),
            // Nothing under this master key's head name anywhere: a wrong key, or an empty archive.
            (None, None) => Err(ArchiveError::NoMetadata {
                reachable,
                total: self.hosters.len(),
            }),
        }
    }

    /// Fetches one segment's metadata from every reachable hoster and keeps the valid record with
    /// the highest placement generation. Errors when no hoster has it.
    pub async fn segment_meta(&self, segment: u64) -> Result<SegmentMeta> {
        self.segment_meta_opt(segment)
            .await?
            .ok_or_else(|| ArchiveError::ManifestChain {
                segment,
                reason: "no reachable hoster holds its manifest".into(),
            })
    }

    /// Like [`segment_meta`](Self::segment_meta), but `None` when every hoster that answered has
    /// no record for this segment.
    pub async fn segment_meta_opt(&self, segment: u64) -> Result<Option<SegmentMeta>> {
        let key = self.key.manifest_storage_key(segment);
        let mut set = JoinSet::new();
        for h in self.hosters.all() {
            if h.is_down() {
                continue;
            }
            let h = h.clone();
            let key = key.clone();
            set.spawn(async move { timed(h.get_meta(&key)).await });
        }
        let mut best: Option<SegmentMeta> = None;
        let mut last_err = None;
        let mut answered = false;
        while let Some(res) = next_with_grace(&mut set, answered).await {
            let Ok(Ok(value)) = res else { continue };
            answered = true;
            let Some(bytes) = value else { continue };
            match open_metadata(&self.key, segment, &bytes) {
                Ok((manifest, placement)) => {
                    if best.as_ref().is_some_and(|b| b.manifest != manifest) {
                        // Two authentic but different manifests cannot both be right; the chain
                        // check decides which one is part of the history.
                        tracing::warn!(segment, "hosters disagree on a manifest");
                    }
                    if best
                        .as_ref()
                        .is_none_or(|b| placement.generation > b.placement.generation)
                    {
                        best = Some(SegmentMeta {
                            manifest,
                            placement,
                        });
                    }
                }
                Err(e) => last_err = Some(e),
            }
        }
        match (best, last_err) {
            (Some(b), _) => Ok(Some(b)),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }

    /// Loads and verifies the whole manifest chain: each manifest's `prev_manifest_hash` is its
    /// predecessor's hash, block ranges follow each other, and the last one is the head's.
    pub async fn manifest_chain(&self) -> Result<Vec<SegmentMeta>> {
        let head = self.head().await?;
        let metas: Vec<Result<SegmentMeta>> = stream::iter(0..=head.last_segment)
            .map(|s| self.segment_meta(s))
            .buffered(METADATA_FETCH_CONCURRENCY)
            .collect()
            .await;
        let mut chain: Vec<SegmentMeta> = Vec::with_capacity(metas.len());
        for meta in metas {
            let meta = meta?;
            verify_link(chain.last().map(|m| &m.manifest), &meta.manifest)?;
            chain.push(meta);
        }
        if let Some(last) = chain.last() {
            if last.manifest.hash() != head.manifest_hash {
                return Err(ArchiveError::ManifestChain {
                    segment: last.manifest.segment,
                    reason: "the manifest is not the one the head record names".into(),
                });
            }
        }
        // The freshest head may sit only on hosters that are down or failed just now: manifests
        // beyond it are found by probing, so a restore is never silently short.
        loop {
            let next = chain.len() as u64;
            let Some(meta) = self.segment_meta_opt(next).await? else {
                break;
            };
            verify_link(chain.last().map(|m| &m.manifest), &meta.manifest)?;
            chain.push(meta);
        }
        Ok(chain)
    }

    /// Reads, verifies and decodes one segment, returning its plaintext. Reads data shards
    /// first (no decoding needed) from hosters not known to be down, all in parallel; a shard that
    /// is missing, fails, or fails its Merkle root is replaced by the next candidate.
    pub async fn read_segment(&self, meta: &SegmentMeta) -> Result<(Vec<u8>, ReadReport)> {
        let (shards, report) = self.fetch_shards(meta, false).await?;
        let manifest = meta.manifest.clone();
        let key = self.key.clone();
        let k = manifest.data_shards as usize;
        let mut shards = shards;
        let plaintext = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
            if shards[..k].iter().any(Option::is_none) {
                codec::reconstruct(&manifest, &mut shards, true)?;
            }
            let mut data: Vec<Vec<u8>> = shards
                .into_iter()
                .take(k)
                .map(|s| s.unwrap_or_default())
                .collect();
            codec::decode_segment(&key, &manifest, &mut data)
        })
        .await
        .map_err(|e| ArchiveError::Task(e.to_string()))??;
        Ok((plaintext, report))
    }

    /// Fetches verified shards: at least k (`all` = false) or every obtainable one (`all` = true).
    pub async fn fetch_shards(
        &self,
        meta: &SegmentMeta,
        all: bool,
    ) -> Result<(Vec<Option<Vec<u8>>>, ReadReport)> {
        let m = &meta.manifest;
        let n = m.shards_total();
        let k = m.data_shards as usize;
        let want = if all { n } else { k };
        // Candidates: data shards first, then parity; shards on hosters known to be down last.
        let mut candidates: Vec<(usize, Arc<dyn ShardHost>)> = Vec::new();
        let mut report = ReadReport::default();
        for i in 0..n {
            match meta.placement.hosters.get(i).cloned().flatten() {
                Some(name) => match self.hosters.get(&name) {
                    Some(h) => candidates.push((i, h.clone())),
                    None => report
                        .failures
                        .push((i, name, "hoster not in the config".into())),
                },
                None => {
                    report
                        .failures
                        .push((i, "-".into(), "not placed (under-replicated)".into()))
                }
            }
        }
        candidates.sort_by_key(|(i, h)| (h.is_down(), *i));
        let mut next = 0usize;
        let mut shards: Vec<Option<Vec<u8>>> = vec![None; n];
        let mut good = 0usize;
        let mut set = JoinSet::new();
        let launch = |set: &mut JoinSet<_>, i: usize, h: Arc<dyn ShardHost>| {
            let key = self.key.shard_storage_key(m.segment, &m.segment_hash, i);
            let manifest = m.clone();
            set.spawn(async move {
                let res = timed(h.get_shard(&key, manifest.shard_bytes)).await;
                let verdict = match res {
                    Ok(Some(bytes)) => {
                        // Hash off the async workers: an 8 MiB shard is milliseconds of CPU.
                        let checked = tokio::task::spawn_blocking(move || {
                            let ok = codec::shard_matches(&manifest, i, &bytes);
                            (ok, bytes)
                        })
                        .await;
                        match checked {
                            Ok((true, bytes)) => Ok(bytes),
                            Ok((false, _)) => Err("fails its Merkle checksum".to_string()),
                            Err(e) => Err(format!("verification task: {e}")),
                        }
                    }
                    Ok(None) => Err("missing".to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (i, h.name().to_string(), verdict)
            });
        };
        while next < candidates.len() && set.len() < want {
            let (i, h) = candidates[next].clone();
            launch(&mut set, i, h);
            next += 1;
        }
        loop {
            let res = match tokio::time::timeout(
                Duration::from_millis(SHARD_HEDGE_AFTER_MS),
                set.join_next(),
            )
            .await
            {
                Ok(Some(res)) => res,
                Ok(None) => break,
                Err(_) => {
                    // Slow or hung hoster: hedge with the next candidate, keep the slow read.
                    if next < candidates.len() {
                        let (i, h) = candidates[next].clone();
                        tracing::debug!(
                            segment = m.segment,
                            shard = i,
                            "hedging a slow shard read"
                        );
                        launch(&mut set, i, h);
                        next += 1;
                    }
                    continue;
                }
            };
            let (i, hoster, verdict) = res.map_err(|e| ArchiveError::Task(e.to_string()))?;
            match verdict {
                Ok(bytes) => {
                    shards[i] = Some(bytes);
                    good += 1;
                    report.shards_read += 1;
                }
                Err(reason) => {
                    tracing::warn!(segment = m.segment, shard = i, %hoster, %reason, "shard unusable");
                    report.failures.push((i, hoster, reason));
                    if next < candidates.len() {
                        let (i, h) = candidates[next].clone();
                        launch(&mut set, i, h);
                        next += 1;
                    }
                }
            }
            if good >= want {
                set.abort_all();
                break;
            }
        }
        if good < k {
            let detail = report
                .failures
                .iter()
                .map(|(i, h, r)| format!("shard {i} on {h}: {r}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ArchiveError::NotEnoughShards {
                segment: m.segment,
                available: good,
                needed: k,
                detail,
            });
        }
        report.reconstructed = shards[..k].iter().any(Option::is_none);
        Ok((shards, report))
    }
}

/// Checks that `next` follows `prev` in the manifest chain.
pub fn verify_link(prev: Option<&Manifest>, next: &Manifest) -> Result<()> {
    let broken = |reason: String| {
        Err(ArchiveError::ManifestChain {
            segment: next.segment,
            reason,
        })
    };
    match prev {
        None => {
            if next.segment != 0 || next.prev_manifest_hash != [0; 32] {
                return broken("the first manifest must be segment 0 with no predecessor".into());
            }
        }
        Some(p) => {
            if next.segment != p.segment + 1 {
                return broken(format!("follows segment {}", p.segment));
            }
            if next.prev_manifest_hash != p.hash() {
                return broken(format!(
                    "previous-manifest hash does not match segment {}'s manifest",
                    p.segment
                ));
            }
            if next.first_number != p.last_number + 1 {
                return broken(format!(
                    "starts at block {} but segment {} ends at block {}",
                    next.first_number, p.segment, p.last_number
                ));
            }
        }
    }
    Ok(())
}
