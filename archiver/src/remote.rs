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
use crate::manifest::{
    open_head, open_manifest_record, open_placement_record, Head, Manifest, Placement,
};

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

    /// The newest head record any reachable hoster has (head records are write-once, one per
    /// dispersed segment; each hoster is searched by galloping, then bisecting).
    pub async fn head(&self) -> Result<Head> {
        let mut set = JoinSet::new();
        for h in self.hosters.all() {
            let (h, key) = (h.clone(), self.key.clone());
            set.spawn(async move { newest_head_on(&key, h.as_ref()).await });
        }
        let (mut reachable, mut best, mut wrong_key) = (0usize, None::<Head>, None);
        while let Some(res) = next_with_grace(&mut set, reachable > 0).await {
            let Ok(Ok((found, err))) = res else { continue };
            reachable += 1;
            if let Some(head) = found {
                if best.is_none_or(|b| head.last_segment > b.last_segment) {
                    best = Some(head);
                }
            }
            wrong_key = wrong_key.or(err);
        }
        match (best, wrong_key) {
            (Some(head), _) => Ok(head),
            (None, Some(e)) => Err(e),
            // Nothing under this master key's head names anywhere: a wrong key, or an empty archive.
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
        let mut set = JoinSet::new();
        for h in self.hosters.all() {
            if h.is_down() {
                continue;
            }
            let (h, key) = (h.clone(), self.key.clone());
            set.spawn(async move { records_on(&key, h.as_ref(), segment).await });
        }
        let mut found = HosterRecords::default();
        let mut answered = false;
        while let Some(res) = next_with_grace(&mut set, answered).await {
            let Ok(Ok(records)) = res else { continue };
            answered = true;
            found.merge(records, segment);
        }
        match (found.manifest, found.placement, found.error) {
            (Some(manifest), Some(placement), _) => Ok(Some(SegmentMeta {
                manifest,
                placement,
            })),
            (Some(_), None, err) => Err(err.unwrap_or(ArchiveError::PlacementCorrupt {
                segment,
                reason: "its manifest is on the hosters but no placement record is".into(),
            })),
            (None, _, Some(e)) => Err(e),
            (None, _, None) => Ok(None),
        }
    }

    /// Loads and verifies the whole manifest chain: each manifest's `prev_manifest_hash` is its
    /// predecessor's hash, block ranges follow each other, and the last one is the head's. A
    /// segment whose metadata no hoster holds is an error naming it.
    pub async fn manifest_chain(&self) -> Result<Vec<SegmentMeta>> {
        let scan = self.manifest_scan().await?;
        if let Some((segment, reason)) = scan.missing.first() {
            return Err(ArchiveError::ManifestChain {
                segment: *segment,
                reason: reason.clone(),
            });
        }
        Ok(scan.metas)
    }

    /// The manifest chain as far as the hosters hold it: every segment up to the newest head (and
    /// past it while manifests are found), with the segments whose metadata every reachable hoster
    /// was asked for and none held, so a restore can go on past them and name them.
    pub async fn manifest_scan(&self) -> Result<ChainScan> {
        let head = self.head().await?;
        let metas: Vec<Result<Option<SegmentMeta>>> = stream::iter(0..=head.last_segment)
            .map(|s| self.segment_meta_opt(s))
            .buffered(METADATA_FETCH_CONCURRENCY)
            .collect()
            .await;
        let mut scan = ChainScan::default();
        for (segment, meta) in (0..).zip(metas) {
            match meta {
                Ok(Some(meta)) => scan.push(meta)?,
                Ok(None) => scan.missing.push((
                    segment,
                    "every reachable hoster was asked and none holds its metadata".into(),
                )),
                Err(e) => scan.missing.push((segment, e.to_string())),
            }
        }
        if let Some(last) = scan.metas.last() {
            if last.manifest.segment == head.last_segment
                && last.manifest.hash() != head.manifest_hash
            {
                return Err(ArchiveError::ManifestChain {
                    segment: last.manifest.segment,
                    reason: "the manifest is not the one the head record names".into(),
                });
            }
        }
        // The freshest head may sit only on hosters that are down or failed just now: manifests
        // beyond it are found by probing, so a restore is never silently short.
        loop {
            let next = head.last_segment.max(scan.next_segment().saturating_sub(1)) + 1;
            let Some(meta) = self.segment_meta_opt(next).await? else {
                break;
            };
            scan.push(meta)?;
        }
        Ok(scan)
    }

    /// Reads, verifies and decodes one segment, returning its plaintext. Reads data shards
    /// first (no decoding needed) from hosters not known to be down, all in parallel; a shard that
    /// is missing or fails is replaced by the next candidate, and a shard with damaged parts
    /// still gives its intact ones: each part-stripe is rebuilt from any k intact parts.
    pub async fn read_segment(&self, meta: &SegmentMeta) -> Result<(Vec<u8>, ReadReport)> {
        let fetched = self.fetch_parts(meta, false).await?;
        let manifest = meta.manifest.clone();
        let key = self.key.clone();
        let k = manifest.data_shards as usize;
        let FetchedParts {
            mut shards,
            damaged,
            report,
        } = fetched;
        let plaintext = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
            let partial = damaged[..k].iter().any(|d| !d.is_empty());
            if partial || shards[..k].iter().any(Option::is_none) {
                codec::reconstruct_parts(&manifest, &mut shards, &damaged, true)?;
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
    /// A shard read with damaged parts has them rebuilt from the other shards' parts, so every
    /// `Some` is a whole shard matching its root.
    pub async fn fetch_shards(
        &self,
        meta: &SegmentMeta,
        all: bool,
    ) -> Result<(Vec<Option<Vec<u8>>>, ReadReport)> {
        let FetchedParts {
            mut shards,
            damaged,
            report,
        } = self.fetch_parts(meta, all).await?;
        if damaged.iter().all(Vec::is_empty) {
            return Ok((shards, report));
        }
        let manifest = meta.manifest.clone();
        let shards = tokio::task::spawn_blocking(move || -> Result<Vec<Option<Vec<u8>>>> {
            let read: Vec<bool> = shards.iter().map(Option::is_some).collect();
            codec::reconstruct_parts(&manifest, &mut shards, &damaged, false)?;
            for (i, s) in shards.iter_mut().enumerate() {
                let whole = s
                    .as_ref()
                    .is_some_and(|s| codec::shard_matches(&manifest, i, s));
                if !read[i] || !whole {
                    *s = None;
                }
            }
            Ok(shards)
        })
        .await
        .map_err(|e| ArchiveError::Task(e.to_string()))??;
        Ok((shards, report))
    }

    /// Fetches shards until every part-stripe has k intact parts (`all` = false) or every
    /// obtainable shard was read (`all` = true). A shard failing its root is checked part by part
    /// against the manifest's part hashes and kept with its damaged parts listed.
    pub async fn fetch_parts(&self, meta: &SegmentMeta, all: bool) -> Result<FetchedParts> {
        let m = &meta.manifest;
        let (n, k, parts) = (
            m.shards_total(),
            m.data_shards as usize,
            m.parts_per_shard(),
        );
        let (mut candidates, mut report) = self.candidates(meta);
        candidates.sort_by_key(|(i, _, h)| (h.is_down(), *i));
        let mut fetched = FetchedParts {
            shards: vec![None; n],
            damaged: vec![Vec::new(); n],
            report: ReadReport::default(),
        };
        let mut coverage = vec![0usize; parts];
        let covered = |c: &[usize]| c.iter().all(|&c| c >= k);
        let mut next = 0usize;
        let mut set = JoinSet::new();
        while next < candidates.len() && set.len() < if all { n } else { k } {
            spawn_fetch(&mut set, &self.key, m, candidates[next].clone());
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
                        tracing::debug!(segment = m.segment, "hedging a slow shard read");
                        spawn_fetch(&mut set, &self.key, m, candidates[next].clone());
                        next += 1;
                    }
                    continue;
                }
            };
            let (i, hoster, verdict) = res.map_err(|e| ArchiveError::Task(e.to_string()))?;
            let whole = match verdict {
                Ok((bytes, damaged)) => {
                    for (p, c) in coverage.iter_mut().enumerate() {
                        *c += usize::from(!damaged.contains(&p));
                    }
                    if !damaged.is_empty() {
                        report.failures.push((
                            i,
                            hoster,
                            format!(
                                "{} of {parts} parts damaged; the others used",
                                damaged.len()
                            ),
                        ));
                    }
                    report.shards_read += 1;
                    let whole = damaged.is_empty();
                    fetched.shards[i] = Some(bytes);
                    fetched.damaged[i] = damaged;
                    whole
                }
                Err(reason) => {
                    tracing::warn!(segment = m.segment, shard = i, %hoster, %reason, "shard unusable");
                    report.failures.push((i, hoster, reason));
                    false
                }
            };
            if !whole && next < candidates.len() {
                spawn_fetch(&mut set, &self.key, m, candidates[next].clone());
                next += 1;
            }
            if !all && covered(&coverage) {
                set.abort_all();
                break;
            }
        }
        if !covered(&coverage) {
            let detail = report
                .failures
                .iter()
                .map(|(i, h, r)| format!("shard {i} on {h}: {r}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ArchiveError::NotEnoughShards {
                segment: m.segment,
                available: coverage.iter().copied().min().unwrap_or(0),
                needed: k,
                detail,
            });
        }
        report.reconstructed =
            (0..k).any(|i| fetched.shards[i].is_none() || !fetched.damaged[i].is_empty());
        fetched.report = report;
        Ok(fetched)
    }

    /// The shards a read may try, with the hoster holding each; shards with no usable hoster are
    /// reported as failures.
    fn candidates(&self, meta: &SegmentMeta) -> (Vec<Candidate>, ReadReport) {
        let mut candidates = Vec::new();
        let mut report = ReadReport::default();
        for i in 0..meta.manifest.shards_total() {
            match meta.placement.hosters.get(i).cloned().flatten() {
                Some(name) => match self.hosters.get(&name) {
                    Some(h) => candidates.push((i, meta.placement.version(i), h.clone())),
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
        (candidates, report)
    }
}

/// Shards of one segment as read: `damaged[i]` lists the parts of `shards[i]` that failed their
/// hash (empty for a shard matching its root).
#[derive(Debug)]
pub struct FetchedParts {
    pub shards: Vec<Option<Vec<u8>>>,
    pub damaged: Vec<Vec<usize>>,
    pub report: ReadReport,
}

/// A shard index, its storage-key version and the hoster said to hold it.
type Candidate = (usize, u32, Arc<dyn ShardHost>);

/// What one shard read gave: its bytes with the damaged parts, or why it gave nothing usable.
type ShardVerdict = std::result::Result<(Vec<u8>, Vec<usize>), String>;

/// Reads shard `i` from `h` and checks it: the whole root first (one pass when intact), then
/// part by part when the root fails.
fn spawn_fetch(
    set: &mut JoinSet<(usize, String, ShardVerdict)>,
    key: &MasterKey,
    m: &Manifest,
    (i, version, h): Candidate,
) {
    let storage_key = m.shard_storage_key_at(key, i, version);
    let manifest = m.clone();
    set.spawn(async move {
        let res = timed(h.get_shard_parts(&storage_key, manifest.shard_bytes)).await;
        let verdict = match res {
            Ok(Some((bytes, unreadable))) => {
                // Hash off the async workers: an 8 MiB shard is milliseconds of CPU.
                // The part hashes are in the authenticated manifest, so they check the shard as
                // surely as its Merkle root, at a third of the cost (BLAKE3 over 64 KiB parts
                // runs wide; the 1 KiB-leaf tree does not).
                let checked = tokio::task::spawn_blocking(move || {
                    let damaged = codec::damaged_parts(&manifest, i, &bytes, &unreadable);
                    if damaged.len() == manifest.parts_per_shard() {
                        return Err("fails its Merkle checksum and every part hash".to_string());
                    }
                    Ok((bytes, damaged))
                })
                .await;
                checked.unwrap_or_else(|e| Err(format!("verification task: {e}")))
            }
            Ok(None) => Err("missing".to_string()),
            Err(e) => Err(e.to_string()),
        };
        (i, h.name().to_string(), verdict)
    });
}

/// Head records probed on one hoster before its search gives up: 2^40 segments is beyond any
/// archive, and a hoster cannot make a reader loop.
const HEAD_PROBES_MAX: u32 = 80;
/// Placement generations probed per segment and hoster: each repair adds one.
const PLACEMENT_GENERATIONS_MAX: u32 = 4096;

/// Reads and authenticates `segment`'s head record on one hoster: `Ok(None)` when it is absent
/// or does not authenticate (the error is kept for the caller's verdict).
async fn head_at(
    key: &MasterKey,
    h: &dyn ShardHost,
    segment: u64,
    err: &mut Option<ArchiveError>,
) -> HostResult<Option<Head>> {
    let Some(bytes) = timed(h.get_meta(&key.head_storage_key(segment))).await? else {
        return Ok(None);
    };
    match open_head(key, segment, &bytes) {
        Ok(head) => Ok(Some(head)),
        Err(e) => {
            *err = Some(e);
            Ok(None)
        }
    }
}

/// The newest head record on one hoster, found by galloping over the per-segment head names and
/// bisecting: about 2 log2(segments) small reads.
async fn newest_head_on(
    key: &MasterKey,
    h: &dyn ShardHost,
) -> HostResult<(Option<Head>, Option<ArchiveError>)> {
    let mut err = None;
    let Some(mut best) = head_at(key, h, 0, &mut err).await? else {
        return Ok((None, err));
    };
    let (mut lo, mut hi, mut step, mut probes) = (0u64, None::<u64>, 1u64, 0u32);
    while probes < HEAD_PROBES_MAX {
        probes += 1;
        let probe = match hi {
            None => lo.saturating_add(step),
            Some(hi) if hi - lo > 1 => lo + (hi - lo) / 2,
            Some(_) => break,
        };
        match head_at(key, h, probe, &mut err).await? {
            Some(head) => {
                (lo, best) = (probe, head);
                step = step.saturating_mul(2);
            }
            None => hi = Some(probe),
        }
    }
    Ok((Some(best), None))
}

/// What one hoster holds of a segment's metadata.
#[derive(Default)]
struct HosterRecords {
    manifest: Option<Manifest>,
    placement: Option<Placement>,
    error: Option<ArchiveError>,
}

impl HosterRecords {
    fn merge(&mut self, other: HosterRecords, segment: u64) {
        if let (Some(mine), Some(theirs)) = (&self.manifest, &other.manifest) {
            if mine != theirs {
                // Two authentic but different manifests cannot both be right; the chain check
                // decides which one is part of the history.
                tracing::warn!(segment, "hosters disagree on a manifest");
            }
        }
        self.manifest = self.manifest.take().or(other.manifest);
        if other.placement.as_ref().is_some_and(|p| {
            self.placement
                .as_ref()
                .is_none_or(|b| p.generation > b.generation)
        }) {
            self.placement = other.placement;
        }
        self.error = self.error.take().or(other.error);
    }
}

/// One hoster's manifest record of `segment` and its newest placement generation (generations
/// are read upward until one is missing).
async fn records_on(key: &MasterKey, h: &dyn ShardHost, segment: u64) -> HostResult<HosterRecords> {
    let mut out = HosterRecords::default();
    if let Some(bytes) = timed(h.get_meta(&key.manifest_storage_key(segment))).await? {
        match open_manifest_record(key, segment, &bytes) {
            Ok(m) => out.manifest = Some(m),
            Err(e) => out.error = Some(e),
        }
    }
    for generation in 0..PLACEMENT_GENERATIONS_MAX {
        let name = key.placement_storage_key(segment, generation);
        let Some(bytes) = timed(h.get_meta(&name)).await? else {
            break;
        };
        match open_placement_record(key, segment, generation, &bytes) {
            Ok(p) => out.placement = Some(p),
            Err(e) => out.error = Some(e),
        }
    }
    Ok(out)
}

/// The manifest chain found on the hosters, with the segments none of them holds.
#[derive(Clone, Debug, Default)]
pub struct ChainScan {
    /// Segments found, in order, each linked to its predecessor when that one was found too.
    pub metas: Vec<SegmentMeta>,
    /// (segment, why) for every segment whose metadata could not be had.
    pub missing: Vec<(u64, String)>,
}

impl ChainScan {
    fn next_segment(&self) -> u64 {
        let found = self.metas.last().map_or(0, |m| m.manifest.segment + 1);
        let lost = self.missing.last().map_or(0, |(s, _)| s + 1);
        found.max(lost)
    }

    fn push(&mut self, meta: SegmentMeta) -> Result<()> {
        let prev = self
            .metas
            .last()
            .filter(|p| p.manifest.segment + 1 == meta.manifest.segment);
        if prev.is_some() || meta.manifest.segment == 0 {
            verify_link(prev.map(|m| &m.manifest), &meta.manifest)?;
        }
        self.metas.push(meta);
        Ok(())
    }

    /// The block range a missing segment held, as far as its neighbours tell.
    pub fn missing_blocks(&self, segment: u64) -> (Option<u64>, Option<u64>) {
        let before = self
            .metas
            .iter()
            .rev()
            .find(|m| m.manifest.segment < segment)
            .map(|m| m.manifest.last_number + 1);
        let after = self
            .metas
            .iter()
            .find(|m| m.manifest.segment > segment)
            .map(|m| m.manifest.first_number.saturating_sub(1));
        (before.or(Some(0).filter(|_| segment == 0)), after)
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
