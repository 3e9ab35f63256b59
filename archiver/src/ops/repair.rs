//! The repair scheduler: which segments to rebuild first (least redundancy left), which shards
//! of each, and how fast (a byte budget refilled by the injected clock). Planning is pure over
//! the store and the health view; ties are broken by the seeded RNG, so a seed replays it.

use std::collections::BTreeSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::Result;
use crate::store::Store;

/// Repair traffic allowed per second by default (bytes read to rebuild plus bytes written):
/// about a third of one gigabit link, so healing never starves dispersal or reads, yet a lost
/// 1 TB hoster at 4+2 is rebuilt in well under a day.
pub const REPAIR_BYTES_PER_SEC_DEFAULT: u64 = 40 * 1024 * 1024;

/// The budget may bank at most this many seconds of traffic: a burst after a quiet spell stays
/// bounded.
pub const REPAIR_BURST_SECS: u64 = 2;

/// One segment to rebuild.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepairJob {
    pub segment: u64,
    /// Shards to rebuild (their hoster is lost or draining, or an audit marked them).
    pub shards: Vec<usize>,
    /// How many more shards the segment may lose and still be read (m − unavailable; negative
    /// means it cannot be rebuilt from the hosters that answer).
    pub redundancy_left: i64,
    /// Traffic of the job: k shards read once plus the rebuilt shards written.
    pub bytes: u64,
    /// Bytes of one shard of the segment.
    pub shard_bytes: u64,
}

/// Why a shard is to be rebuilt, as the plan's input.
#[derive(Clone, Debug, Default)]
pub struct PlanInput {
    /// Hosters whose shards must move and cannot be read (lost).
    pub lost: BTreeSet<String>,
    /// Hosters whose shards must move but can still be read (draining).
    pub draining: BTreeSet<String>,
    /// (segment, shard) marked by audits.
    pub marked: BTreeSet<(u64, usize)>,
    /// The configured hosters; a placement naming another (removed from the config) counts
    /// its shard as lost. Empty: every name counts as configured.
    pub configured: BTreeSet<String>,
}

impl PlanInput {
    /// Nothing to rebuild unless a placement names an unconfigured hoster.
    pub fn is_empty(&self) -> bool {
        self.lost.is_empty() && self.draining.is_empty() && self.marked.is_empty()
    }

    /// Whether a shard on `hoster` is gone (lost, or its hoster no longer configured).
    pub fn is_gone(&self, hoster: &str) -> bool {
        self.lost.contains(hoster)
            || (!self.configured.is_empty() && !self.configured.contains(hoster))
    }
}

/// Orders repairs; seeded so that ties (equal redundancy) are broken the same way each run.
#[derive(Debug)]
pub struct RepairScheduler {
    rng: StdRng,
}

impl RepairScheduler {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Every dispersed segment with a shard to rebuild, least redundancy left first; segments
    /// that cannot be rebuilt from the hosters that answer (fewer than k readable shards) are
    /// left out, so they never hold the budget from those that can.
    pub fn plan(&mut self, store: &Store, input: &PlanInput) -> Result<Vec<RepairJob>> {
        Ok(self.order(survey(store, input)?.jobs))
    }

    /// `jobs` least redundancy left first, ties in seeded order.
    pub fn order(&mut self, jobs: Vec<RepairJob>) -> Vec<RepairJob> {
        let mut keyed: Vec<(i64, u64, RepairJob)> = jobs
            .into_iter()
            .map(|j| (j.redundancy_left, self.rng.gen::<u64>(), j))
            .collect();
        keyed.sort_by_key(|(left, tie, _)| (*left, *tie));
        keyed.into_iter().map(|(_, _, j)| j).collect()
    }
}

/// What one scan of the placements found.
#[derive(Clone, Debug, Default)]
pub struct Survey {
    /// Segments with a shard to rebuild that can be rebuilt, in segment order.
    pub jobs: Vec<RepairJob>,
    /// Segments by how many more shards each may lose (index = redundancy left).
    pub by_left: Vec<u64>,
    /// Segments with fewer than k shards on hosters that answer.
    pub unreadable: u64,
}

/// Scans every dispersed segment once: what to rebuild, and the redundancy left, counting
/// shards on lost or unconfigured hosters and marked ones as gone.
pub fn survey(store: &Store, input: &PlanInput) -> Result<Survey> {
    let mut out = Survey::default();
    for segment in 0..store.dispersed_next()? {
        let (Some(manifest), Some(placement)) =
            (store.manifest(segment)?, store.placement(segment)?)
        else {
            continue;
        };
        let (mut shards, mut unreadable) = (Vec::new(), 0i64);
        for (i, holder) in placement.hosters.iter().enumerate() {
            let lost = holder.as_ref().is_none_or(|h| input.is_gone(h));
            let marked = input.marked.contains(&(segment, i));
            let draining = holder.as_ref().is_some_and(|h| input.draining.contains(h));
            if lost || marked {
                unreadable += 1;
            }
            if lost || marked || draining {
                shards.push(i);
            }
        }
        let redundancy_left = i64::from(manifest.parity_shards) - unreadable;
        let Ok(left) = usize::try_from(redundancy_left) else {
            out.unreadable += 1;
            continue;
        };
        if out.by_left.len() <= left {
            out.by_left.resize(left + 1, 0);
        }
        out.by_left[left] += 1;
        if shards.is_empty() {
            continue;
        }
        out.jobs.push(RepairJob {
            segment,
            shard_bytes: manifest.shard_bytes,
            bytes: (u64::from(manifest.data_shards) + shards.len() as u64) * manifest.shard_bytes,
            redundancy_left,
            shards,
        });
    }
    Ok(out)
}

/// A token bucket of repair bytes, refilled by the clock.
#[derive(Clone, Debug)]
pub struct RepairBudget {
    bytes_per_sec: u64,
    available: u64,
    last_ms: u64,
}

impl RepairBudget {
    /// Starts full (one burst), so the first lost segments are rebuilt at once.
    pub fn new(bytes_per_sec: u64, now_ms: u64) -> Self {
        Self {
            bytes_per_sec,
            available: bytes_per_sec.saturating_mul(REPAIR_BURST_SECS),
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.last_ms = self.last_ms.max(now_ms);
        let add = u128::from(self.bytes_per_sec) * u128::from(elapsed) / 1_000;
        let cap = self.bytes_per_sec.saturating_mul(REPAIR_BURST_SECS);
        self.available = (u128::from(self.available) + add).min(u128::from(cap)) as u64;
    }

    /// Takes `bytes` if the budget allows at `now_ms`. A job larger than a whole burst runs
    /// once the bucket is full (and empties it), so no job waits forever.
    pub fn try_take(&mut self, bytes: u64, now_ms: u64) -> bool {
        self.refill(now_ms);
        let cap = self.bytes_per_sec.saturating_mul(REPAIR_BURST_SECS);
        let need = bytes.min(cap);
        if self.available < need {
            return false;
        }
        self.available -= need;
        true
    }

    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refills_with_time_and_caps_bursts() {
        let mut b = RepairBudget::new(1_000, 0);
        assert!(b.try_take(1_500, 0));
        assert!(!b.try_take(1_000, 0), "500 left");
        assert!(!b.try_take(1_000, 400), "900 left");
        assert!(b.try_take(1_000, 500), "1,000 after half a second");
        assert!(
            b.try_take(10_000, 60_000),
            "a job over one burst runs once the bucket is full"
        );
        assert!(!b.try_take(1, 60_000));
    }
}
