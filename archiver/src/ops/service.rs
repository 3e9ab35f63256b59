//! The operations service: one loop that keeps an archive current (maintenance) and healthy
//! (health probes, audits, repair to k+m, drains, orphan GC). `node`, `follow` and `serve` run it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use tokio::sync::Notify;

use crate::archive::Disperser;
use crate::audit::ChallengeOutcome;
use crate::metrics::ArchiveMetrics;

mod report;
mod watch;

use super::auditor::Auditor;
use super::clock::Clock;
use super::control::{
    exchange, measured_deadlines, rebalance_done, saved_sweeps, unmark, Control, Report,
};
use super::gc::{collect_orphans, GcReport};
use super::health::{HealthPolicy, HealthTracker};
use super::maintenance::{maintain_once, ScrubCursor};
use super::rebalance::plan_moves;
use super::repair::{
    survey, PlanInput, RepairBudget, RepairJob, RepairScheduler, REPAIR_BYTES_PER_SEC_DEFAULT,
};
use super::sweep::Sweeps;

/// How often the loop runs when nothing wakes it: short enough that pruning resumes within
/// seconds once hosters return, long enough not to spin on dead hosters.
pub const MAINTENANCE_TICK_MS: u64 = 1_000;
/// One challenge per this interval by default: a 1,000-segment archive at 4+2 has each shard
/// challenged about every 100 minutes, at ≤ 1 MiB of hoster reads per challenge.
pub const AUDIT_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Orphan GC runs this often (and soon after a repair or a hoster's return): listing every
/// hoster's keys is cheap next to an hour of dispersal, and orphans only cost space.
pub const GC_INTERVAL_MS_DEFAULT: u64 = 3_600_000;
/// Challenge outcomes kept while the audit store is held by another process (`repair`): a
/// bound on memory, the oldest are dropped (they were logged).
pub const PENDING_OUTCOMES_MAX: usize = 1_024;

/// Knobs of the service: the config file's `[ops]` table (`[ops.health]` for the health bounds),
/// every key optional.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsOptions {
    /// Verified segments kept as local files for fast reads (`--keep-local-segments`).
    pub keep_local_segments: u64,
    pub health: HealthPolicy,
    /// One storage challenge per this interval; 0 disables audits.
    pub audit_interval_ms: u64,
    /// Repair traffic bound (bytes read to rebuild plus bytes written, per second).
    pub repair_bytes_per_sec: u64,
    pub gc_interval_ms: u64,
    /// Seeds the auditor's and the scheduler's RNG (a seed replays their decisions); 0 (the
    /// default) draws a fresh one per run.
    #[serde(skip)]
    pub seed: u64,
}

impl Default for OpsOptions {
    fn default() -> Self {
        Self {
            keep_local_segments: 2,
            health: HealthPolicy::default(),
            audit_interval_ms: AUDIT_INTERVAL_MS_DEFAULT,
            repair_bytes_per_sec: REPAIR_BYTES_PER_SEC_DEFAULT,
            gc_interval_ms: GC_INTERVAL_MS_DEFAULT,
            seed: 0,
        }
    }
}

impl OpsOptions {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The first knob that cannot work: (field, why).
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.repair_bytes_per_sec == 0 {
            return Err((
                "repair_bytes_per_sec",
                "must be at least 1: 0 would never repair",
            ));
        }
        if self.health.probe_interval_ms == 0 {
            return Err(("health.probe_interval_ms", "must be at least 1"));
        }
        if self.health.probe_interval_ms > self.health.lost_after_ms {
            return Err((
                "health.probe_interval_ms",
                "must not exceed lost_after_ms: a loss would be seen a probe late",
            ));
        }
        if self.health.challenge_failures_max == 0 {
            return Err(("health.challenge_failures_max", "must be at least 1"));
        }
        Ok(())
    }
}

/// What the service last saw (for status, metrics and tests).
#[derive(Clone, Debug, Default)]
pub struct OpsStatus {
    pub passes: u64,
    pub last_error: Option<String>,
    pub watermark: u64,
    /// Hosters whose shards are being rebuilt elsewhere, and those answering probes.
    pub lost: Vec<String>,
    pub up: BTreeMap<String, bool>,
    pub draining: Vec<String>,
    /// Hosters whose every shard is being checked.
    pub sweeping: Vec<String>,
    pub repair_queue_segments: u64,
    pub repair_queue_bytes: u64,
    pub repaired_shards: u64,
    pub repaired_bytes: u64,
    /// Segments by how many more shards each may lose (index = redundancy left).
    pub segments_by_redundancy: Vec<u64>,
    /// Segments with fewer than k shards on hosters that answer.
    pub segments_unreadable: u64,
    pub challenges_passed: u64,
    pub challenges_failed: u64,
    pub last_gc: Option<GcReport>,
    pub gc_deleted_shards: u64,
    /// Health events, oldest first (bounded): what was lost or came back, and when (ms).
    pub events: Vec<(u64, String)>,
}

/// How soon GC follows moved shards (orphans only cost space; listing every hoster is not free).
pub const GC_AFTER_CHANGE_MS: u64 = 60_000;
/// A segment whose repair made no progress (no eligible hoster, a read failing) is tried again
/// after this long, so it never holds the budget from segments that can be repaired.
pub const REPAIR_RETRY_MS: u64 = 30_000;
/// Mixed into the seed for the scheduler, so it and the auditor draw different sequences.
const SCHEDULER_SEED_SALT: u64 = 0x5eed;

/// Shards a rebalance moves per pass at most: a bounded share of each pass.
pub const REBALANCE_MOVES_PER_PASS: usize = 16;

/// Health events kept in [`OpsStatus::events`].
const EVENTS_KEPT: usize = 64;

/// Shared view of a running service.
#[derive(Clone, Debug, Default)]
pub struct OpsHandle {
    pub watermark: Arc<AtomicU64>,
    pub status: Arc<Mutex<OpsStatus>>,
    wake: Arc<Notify>,
}

impl OpsHandle {
    /// Asks for a pass now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn status(&self) -> OpsStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Observes every status update (metrics, tests).
    fn update(&self, f: impl FnOnce(&mut OpsStatus)) {
        if let Ok(mut s) = self.status.lock() {
            f(&mut s);
        }
    }
}

/// The service's state between passes.
pub struct OpsService {
    disperser: Disperser,
    data_dir: PathBuf,
    clock: Arc<dyn Clock>,
    opts: OpsOptions,
    health: HealthTracker,
    auditor: Auditor,
    scheduler: RepairScheduler,
    budget: RepairBudget,
    scrub: ScrubCursor,
    sweeps: Sweeps,
    handle: OpsHandle,
    /// Shards to rebuild that no audit marked (found missing on a hoster that came back, or
    /// held by a hoster that keeps failing challenges), until they are written to the audit
    /// store as marks, which survive a restart.
    suspect: BTreeSet<(u64, usize, String)>,
    outcomes: Vec<(u64, ChallengeOutcome)>,
    last_probe_ms: Option<u64>,
    last_audit_ms: Option<u64>,
    gc_due_ms: u64,
    metrics: Option<ArchiveMetrics>,
    /// What the audit store asked for at the last successful exchange (kept when it is busy).
    control: Control,
    /// Segments whose last repair made no progress, and when to try them again (ms).
    retry_after_ms: BTreeMap<u64, u64>,
}

impl std::fmt::Debug for OpsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsService")
            .field("opts", &self.opts)
            .finish()
    }
}

impl OpsService {
    /// `hoster_keys`: challenge identities of the hosters to audit; `data_dir`: where the audit
    /// store (results, repair marks, drain requests) lives.
    pub fn new(
        disperser: Disperser,
        data_dir: PathBuf,
        hoster_keys: BTreeMap<String, VerifyingKey>,
        opts: OpsOptions,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let now = clock.now_ms();
        let seed = match opts.seed {
            0 => rand::random(),
            s => s,
        };
        let names = disperser
            .hosters()
            .all()
            .iter()
            .map(|h| h.name().to_string());
        let names: Vec<String> = names.collect();
        let health = HealthTracker::new(opts.health.clone(), names.iter().cloned());
        let mut auditor = Auditor::new(seed, clock.clone(), hoster_keys);
        for (hoster, ms) in measured_deadlines(&data_dir, &names) {
            auditor.set_deadline_ms(&hoster, ms);
        }
        // A sweep a previous run did not finish goes on where it stopped.
        let sweeps = Sweeps::restore(&saved_sweeps(&data_dir));
        let initial = disperser.safe_prune_watermark().unwrap_or(0);
        let handle = OpsHandle::default();
        handle.watermark.store(initial, Ordering::SeqCst);
        Self {
            auditor,
            scheduler: RepairScheduler::new(seed ^ SCHEDULER_SEED_SALT),
            budget: RepairBudget::new(opts.repair_bytes_per_sec, now),
            gc_due_ms: now.saturating_add(opts.gc_interval_ms),
            disperser,
            data_dir,
            clock,
            opts,
            health,
            scrub: ScrubCursor::default(),
            sweeps,
            handle,
            suspect: BTreeSet::new(),
            outcomes: Vec::new(),
            last_probe_ms: None,
            last_audit_ms: None,
            metrics: None,
            control: Control::default(),
            retry_after_ms: BTreeMap::new(),
        }
    }

    /// The service for `archive` as its config describes it: audits every hoster with a
    /// `public_key` (one that does not parse is logged and not audited), the audit store in its
    /// data directory.
    pub fn for_archive(archive: &crate::Archive, opts: OpsOptions, clock: Arc<dyn Clock>) -> Self {
        let (keys, bad) = crate::audit::hoster_keys(&archive.config().hosters);
        for (name, why) in bad {
            tracing::warn!(hoster = %name, error = %why, "public_key does not parse: not audited");
        }
        let data_dir = archive.config().data_dir.clone();
        Self::new(archive.disperser(), data_dir, keys, opts, clock)
    }

    /// Publishes what the service sees as Prometheus families (heights, redundancy, repair
    /// queue, hoster health and bytes, challenges, GC).
    pub fn with_metrics(mut self, metrics: ArchiveMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn handle(&self) -> OpsHandle {
        self.handle.clone()
    }

    pub fn health(&self) -> &HealthTracker {
        &self.health
    }

    /// Runs passes until the task is aborted: on every wake, else every `MAINTENANCE_TICK_MS`.
    pub fn spawn(
        mut self,
        rt: &tokio::runtime::Handle,
    ) -> (tokio::task::JoinHandle<()>, OpsHandle) {
        let handle = self.handle.clone();
        let task = rt.spawn(async move {
            loop {
                self.pass().await;
                let wake = self.handle.wake.clone();
                let _ = tokio::time::timeout(
                    Duration::from_millis(MAINTENANCE_TICK_MS),
                    wake.notified(),
                )
                .await;
            }
        });
        (task, handle)
    }

    /// One pass: what the audit store asks for (so drained and lost hosters are avoided before
    /// anything is placed), maintenance, then healing. Errors are logged and kept in the status.
    pub async fn pass(&mut self) {
        self.sync_control().await;
        self.avoid();
        let report = maintain_once(
            &self.disperser,
            Some((&mut self.scrub, self.clock.now_ms())),
            self.opts.keep_local_segments,
        )
        .await;
        let mut errors = report.errors;
        if let Some(w) = report.watermark {
            self.handle.watermark.store(w, Ordering::SeqCst);
        }
        if let Err(e) = self.heal().await {
            errors.push(format!("heal: {e}"));
        }
        let watermark = self.handle.watermark.load(Ordering::SeqCst);
        if let Err(e) = self.publish_heights(watermark) {
            errors.push(format!("read heights: {e}"));
        }
        self.handle.update(|s| {
            s.passes += 1;
            s.last_error = errors.into_iter().next();
            s.watermark = watermark;
        });
    }

    /// Brings GC forward after shards moved (a repair, a return, a rebalance): within
    /// `GC_AFTER_CHANGE_MS` (or the GC interval if shorter), so a long heal lists the hosters
    /// once, not once per pass.
    fn gc_soon(&mut self, now: u64) {
        let soon = now.saturating_add(GC_AFTER_CHANGE_MS.min(self.opts.gc_interval_ms));
        self.gc_due_ms = self.gc_due_ms.min(soon);
    }

    /// No new shard on a lost or draining hoster.
    fn avoid(&self) {
        let mut avoided = self.health.lost();
        avoided.extend(self.control.drains.iter().cloned());
        self.disperser.set_avoided(avoided);
    }

    /// Records pending results and marks, reads marks and requests; a busy store keeps the
    /// last known requests and the pending results for the next pass.
    async fn sync_control(&mut self) {
        let report = Report {
            outcomes: std::mem::take(&mut self.outcomes),
            marks: self.suspect.iter().cloned().collect(),
            sweeps: self.sweeps.snapshot(),
        };
        match exchange(self.data_dir.clone(), report).await {
            Ok(control) => {
                self.suspect.clear();
                self.control = control;
            }
            Err((why, outcomes)) => {
                tracing::debug!(error = %why, "audit store busy; exchanged next pass");
                self.outcomes = outcomes;
                let excess = self.outcomes.len().saturating_sub(PENDING_OUTCOMES_MAX);
                self.outcomes.drain(..excess);
            }
        }
    }

    /// Probes, audits, sweeps, repairs, rebalances and collects orphans, each when due.
    async fn heal(&mut self) -> crate::Result<()> {
        let now = self.clock.now_ms();
        self.watch(now).await?;
        self.drop_stale_marks().await?;
        let input = self.plan_input();
        let found = survey(self.disperser.store(), &input)?;
        let (by_left, unreadable) = (found.by_left, found.unreadable);
        let jobs: Vec<RepairJob> = self
            .scheduler
            .order(found.jobs)
            .into_iter()
            .filter(|j| {
                self.retry_after_ms
                    .get(&j.segment)
                    .is_none_or(|&t| t <= now)
            })
            .collect();
        self.publish_queue(&jobs);
        let repaired = self.run_jobs(&jobs, now).await;
        if repaired.is_empty() {
            self.publish_redundancy(by_left, unreadable);
        } else {
            if let Err(e) = unmark(self.data_dir.clone(), repaired).await {
                tracing::debug!(error = %e, "marks cleared next pass");
            }
            self.gc_soon(now);
            // Placements changed: count again from what the repairs left.
            let after = survey(self.disperser.store(), &input)?;
            self.publish_redundancy(after.by_left, after.unreadable);
        }
        if self.control.rebalance && jobs.is_empty() && input.is_empty() && self.sweeps.is_empty() {
            self.rebalance_step(now).await?;
        }
        if now >= self.gc_due_ms {
            self.gc_due_ms = now.saturating_add(self.opts.gc_interval_ms);
            self.collect().await?;
        }
        Ok(())
    }

    /// What the scheduler plans from: lost, draining and unconfigured hosters, and marks.
    fn plan_input(&self) -> PlanInput {
        PlanInput {
            lost: self.health.lost().into_iter().collect(),
            draining: self.control.drains.iter().cloned().collect(),
            marked: self
                .control
                .marks
                .iter()
                .chain(self.suspect.iter())
                .map(|(s, i, _)| (*s, *i))
                .collect(),
            configured: self.health.hosters().map(str::to_string).collect(),
        }
    }

    /// Clears marks naming a hoster that no longer holds the shard (it moved since, by a drain,
    /// a rebalance or another repair): rebuilding it again would only churn.
    async fn drop_stale_marks(&mut self) -> crate::Result<()> {
        let store = self.disperser.store().clone();
        let holds = |s: u64, i: usize, h: &str| -> crate::Result<bool> {
            Ok(store
                .placement(s)?
                .and_then(|p| p.hosters.get(i).cloned().flatten())
                .is_some_and(|holder| holder == h))
        };
        let mut stale = Vec::new();
        for (s, i, h) in &self.control.marks {
            if !holds(*s, *i, h)? {
                stale.push((*s, *i));
            }
        }
        if stale.is_empty() {
            return Ok(());
        }
        self.control
            .marks
            .retain(|(s, i, _)| !stale.contains(&(*s, *i)));
        unmark(self.data_dir.clone(), stale).await
    }

    /// One orphan GC pass over the reachable hosters.
    async fn collect(&mut self) -> crate::Result<()> {
        let report = collect_orphans(&self.disperser).await?;
        if let Some(m) = &self.metrics {
            m.gc_deleted(report.shards_deleted());
        }
        self.handle.update(|s| {
            s.gc_deleted_shards += report.shards_deleted();
            s.last_gc = Some(report);
        });
        Ok(())
    }

    /// Runs jobs in order while the repair budget allows. Returns the shards stored again; a
    /// segment whose repair made no progress waits `REPAIR_RETRY_MS` before its next try.
    async fn run_jobs(&mut self, jobs: &[RepairJob], now: u64) -> Vec<(u64, usize)> {
        let batch: Vec<&RepairJob> = jobs
            .iter()
            .take_while(|job| self.budget.try_take(job.bytes, now))
            .collect();
        if batch.is_empty() {
            return Vec::new();
        }
        let work: Vec<(u64, Vec<usize>)> = batch
            .iter()
            .map(|j| (j.segment, j.shards.clone()))
            .collect();
        let shard_bytes: BTreeMap<u64, u64> =
            batch.iter().map(|j| (j.segment, j.shard_bytes)).collect();
        let mut done = Vec::new();
        for (segment, result) in self.disperser.repair_many(&work).await {
            let repaired = result.unwrap_or_else(|e| {
                tracing::warn!(segment, error = %e, "repair failed; retried later");
                Vec::new()
            });
            if repaired.is_empty() {
                self.retry_after_ms
                    .insert(segment, now.saturating_add(REPAIR_RETRY_MS));
                continue;
            }
            self.retry_after_ms.remove(&segment);
            let bytes = shard_bytes.get(&segment).copied().unwrap_or(0) * repaired.len() as u64;
            if let Some(m) = &self.metrics {
                m.repaired(repaired.len() as u64, bytes);
            }
            self.handle.update(|s| {
                s.repaired_shards += repaired.len() as u64;
                s.repaired_bytes += bytes;
            });
            for (i, hoster) in repaired {
                tracing::info!(segment, shard = i, hoster, "shard rebuilt");
                self.suspect
                    .retain(|(s, shard, _)| (*s, *shard) != (segment, i));
                self.control
                    .marks
                    .retain(|(s, shard, _)| (*s, *shard) != (segment, i));
                done.push((segment, i));
            }
        }
        done
    }

    /// Moves up to `REBALANCE_MOVES_PER_PASS` shards toward an even spread over the hosters that
    /// answer and are not drained (within the repair budget); withdraws the request when nothing is left to move.
    async fn rebalance_step(&mut self, now: u64) -> crate::Result<()> {
        let usable: Vec<String> = self
            .disperser
            .hosters()
            .all()
            .iter()
            .map(|h| h.name().to_string())
            .filter(|h| self.health.is_up(h) && !self.control.drains.contains(h))
            .collect();
        let moves = plan_moves(self.disperser.store(), &usable, REBALANCE_MOVES_PER_PASS)?;
        if moves.is_empty() {
            rebalance_done(self.data_dir.clone()).await?;
            self.control.rebalance = false;
            self.gc_soon(now);
            tracing::info!("rebalance done");
            return Ok(());
        }
        for mv in moves {
            let bytes = match self.disperser.store().manifest(mv.segment)? {
                Some(m) => 2 * m.shard_bytes,
                None => continue,
            };
            if !self.budget.try_take(bytes, now) {
                break;
            }
            match self
                .disperser
                .move_shard(mv.segment, mv.shard, &mv.to)
                .await
            {
                Ok(()) => {
                    tracing::info!(segment = mv.segment, shard = mv.shard, from = %mv.from, to = %mv.to, "shard moved")
                }
                Err(e) => {
                    tracing::warn!(segment = mv.segment, error = %e, "shard not moved; planned again next pass")
                }
            }
        }
        Ok(())
    }
}
