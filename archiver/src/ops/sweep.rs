//! Sweeps: every shard placed on one hoster checked, a window of segments per pass. A hoster
//! that came back is swept for presence (its shards all there, whole); one whose answers failed
//! a challenge is swept for content (each shard read and checked against its root), since a
//! failed sample means rot may be anywhere on its disk.

use std::collections::BTreeMap;

use crate::archive::Disperser;
use crate::codec;
use crate::remote::timed;

use super::repair::RepairBudget;

/// Segments one sweep step covers per pass: bounded work between the loop's other duties.
pub const SWEEP_SEGMENTS_PER_PASS: u64 = 64;

/// How deep a sweep looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SweepDepth {
    /// LENGTH of every part: cheap, finds shards lost whole.
    Presence,
    /// Every byte read and checked against the shard's root: finds rot.
    Content,
}

impl SweepDepth {
    fn code(self) -> u8 {
        match self {
            Self::Presence => 0,
            Self::Content => 1,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            0 => Self::Presence,
            _ => Self::Content,
        }
    }
}

/// The sweeps in progress: hoster → (next segment, depth).
#[derive(Clone, Debug, Default)]
pub struct Sweeps {
    active: BTreeMap<String, (u64, SweepDepth)>,
}

impl Sweeps {
    /// Starts sweeping `hoster` from segment 0; a deeper request restarts a shallower sweep.
    pub fn start(&mut self, hoster: &str, depth: SweepDepth) {
        match self.active.get(hoster) {
            Some((_, d)) if *d >= depth => {}
            _ => {
                self.active.insert(hoster.to_string(), (0, depth));
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// The sweeps as the audit store keeps them: (hoster, depth code, next segment).
    pub fn snapshot(&self) -> Vec<(String, u8, u64)> {
        self.active
            .iter()
            .map(|(h, (next, depth))| (h.clone(), depth.code(), *next))
            .collect()
    }

    /// Sweeps from [`snapshot`](Self::snapshot) (unknown depth codes are read as content).
    pub fn restore(saved: &[(String, u8, u64)]) -> Self {
        let active = saved
            .iter()
            .map(|(h, code, next)| (h.clone(), (*next, SweepDepth::from_code(*code))))
            .collect();
        Self { active }
    }

    /// Hosters being swept.
    pub fn hosters(&self) -> Vec<String> {
        self.active.keys().cloned().collect()
    }

    /// One step of every sweep, within `budget` (content reads count against it). Returns the
    /// shards found missing or rotten: (segment, shard, hoster).
    pub async fn step(
        &mut self,
        disperser: &Disperser,
        budget: &mut RepairBudget,
        now_ms: u64,
    ) -> crate::Result<Vec<(u64, usize, String)>> {
        let mut bad = Vec::new();
        let dispersed = disperser.store().dispersed_next()?;
        let mut done = Vec::new();
        for (hoster, (next, depth)) in &mut self.active {
            let end = (*next + SWEEP_SEGMENTS_PER_PASS).min(dispersed);
            while *next < end {
                let found = check_segment(disperser, hoster, *next, *depth, budget, now_ms).await?;
                let Some(found) = found else {
                    break;
                };
                bad.extend(found.into_iter().map(|i| (*next, i, hoster.clone())));
                *next += 1;
            }
            if *next >= dispersed {
                tracing::info!(hoster, ?depth, "sweep done");
                done.push(hoster.clone());
            }
        }
        for h in done {
            self.active.remove(&h);
        }
        Ok(bad)
    }
}

/// The shards of `segment` on `hoster` that fail the check; None when the budget ran out or the
/// hoster did not answer (the step ends there and resumes at this segment).
async fn check_segment(
    disperser: &Disperser,
    hoster: &str,
    segment: u64,
    depth: SweepDepth,
    budget: &mut RepairBudget,
    now_ms: u64,
) -> crate::Result<Option<Vec<usize>>> {
    let store = disperser.store();
    let (Some(m), Some(p)) = (store.manifest(segment)?, store.placement(segment)?) else {
        return Ok(Some(Vec::new()));
    };
    let Some(host) = disperser.hosters().get(hoster) else {
        return Ok(Some(Vec::new()));
    };
    let key = disperser.remote().key();
    let mut bad = Vec::new();
    for (i, h) in p.hosters.iter().enumerate() {
        if h.as_deref() != Some(hoster) {
            continue;
        }
        let name = m.shard_storage_key_at(key, i, p.version(i));
        // A hoster that errs is not judged: the segment is looked at again next pass.
        let ok = match depth {
            SweepDepth::Presence => match timed(host.has_shard(&name, m.shard_bytes)).await {
                Ok(present) => present,
                Err(_) => return Ok(None),
            },
            SweepDepth::Content => {
                if !budget.try_take(m.shard_bytes, now_ms) {
                    return Ok(None);
                }
                match timed(host.get_shard(&name, m.shard_bytes)).await {
                    Ok(Some(bytes)) => codec::damaged_parts(&m, i, &bytes, &[]).is_empty(),
                    Ok(None) => false,
                    Err(_) => return Ok(None),
                }
            }
        };
        if !ok {
            bad.push(i);
        }
    }
    Ok(Some(bad))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_survive_a_restart_through_the_audit_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut sweeps = Sweeps::default();
        sweeps.start("h1", SweepDepth::Presence);
        sweeps.start("h2", SweepDepth::Content);
        sweeps.start("h1", SweepDepth::Content);
        sweeps.start("h2", SweepDepth::Presence);
        if let Some(entry) = sweeps.active.get_mut("h2") {
            entry.0 = 17;
        }
        let log = crate::audit::AuditLog::open(dir.path()).unwrap();
        log.put_sweeps(&sweeps.snapshot()).unwrap();
        drop(log);
        let log = crate::audit::AuditLog::open(dir.path()).unwrap();
        let restored = Sweeps::restore(&log.sweeps().unwrap());
        assert_eq!(restored.active, sweeps.active);
        assert_eq!(
            restored.active.get("h1"),
            Some(&(0, SweepDepth::Content)),
            "a deeper request restarts a shallower sweep"
        );
        assert_eq!(restored.active.get("h2"), Some(&(17, SweepDepth::Content)));
        log.put_sweeps(&[]).unwrap();
        assert!(
            log.sweeps().unwrap().is_empty(),
            "a finished sweep is forgotten"
        );
    }
}
