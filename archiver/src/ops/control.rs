//! The service's exchange with the audit store (`<data>/audit`): challenge results and repair
//! marks out; marks, drain and rebalance requests in. The store is opened once per pass, on a
//! blocking thread and without waiting, so `archiver audit`, `repair` and `hosters` can use it in
//! between and a busy store never stalls the runtime (the work waits for the next pass).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::audit::{AuditLog, ChallengeOutcome};

/// What the audit store asks for.
#[derive(Clone, Debug, Default)]
pub struct Control {
    /// (segment, shard, hoster) to rebuild.
    pub marks: Vec<(u64, usize, String)>,
    pub drains: Vec<String>,
    pub rebalance: bool,
}

/// Outcomes recorded at (time ms).
pub type Outcomes = Vec<(u64, ChallengeOutcome)>;

/// What the service hands the store each pass.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub outcomes: Outcomes,
    /// (segment, shard, hoster) to mark for repair.
    pub marks: Vec<(u64, usize, String)>,
    /// Sweeps in progress, to resume after a restart.
    pub sweeps: Vec<(String, u8, u64)>,
}

fn exchange_now(dir: &Path, report: &Report) -> crate::Result<Control> {
    let log = AuditLog::open_once(dir)?;
    for (at, o) in &report.outcomes {
        log.record(o, *at)?;
    }
    log.mark(&report.marks)?;
    log.put_sweeps(&report.sweeps)?;
    Ok(Control {
        marks: log.marked()?,
        drains: log.drains()?,
        rebalance: log.rebalance_requested()?,
    })
}

/// Records `report`, then reads what is asked for. On failure (busy store) the outcomes come
/// back, to be recorded next pass.
pub async fn exchange(dir: PathBuf, report: Report) -> Result<Control, (String, Outcomes)> {
    let done = tokio::task::spawn_blocking(move || {
        let r = exchange_now(&dir, &report);
        (r, report.outcomes)
    })
    .await;
    match done {
        Ok((Ok(control), _)) => Ok(control),
        Ok((Err(e), outcomes)) => Err((e.to_string(), outcomes)),
        Err(e) => Err((e.to_string(), Vec::new())),
    }
}

/// The sweeps a previous run left unfinished.
pub fn saved_sweeps(dir: &Path) -> Vec<(String, u8, u64)> {
    match AuditLog::open_read_only(dir) {
        Ok(Some(log)) => log.sweeps().unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Clears the marks of shards stored again.
pub async fn unmark(dir: PathBuf, shards: Vec<(u64, usize)>) -> crate::Result<()> {
    tokio::task::spawn_blocking(move || {
        let log = AuditLog::open_once(&dir)?;
        shards.iter().try_for_each(|(s, i)| log.unmark(*s, *i))
    })
    .await
    .map_err(|e| crate::ArchiveError::Task(e.to_string()))?
}

/// Withdraws a finished rebalance request.
pub async fn rebalance_done(dir: PathBuf) -> crate::Result<()> {
    tokio::task::spawn_blocking(move || AuditLog::open_once(&dir)?.withdraw_rebalance())
        .await
        .map_err(|e| crate::ArchiveError::Task(e.to_string()))?
}

/// Each hoster's deadline measured from its recorded passes (see
/// `AuditLog::measured_deadline_ms`); hosters without enough history are left out.
pub fn measured_deadlines(dir: &Path, hosters: &[String]) -> BTreeMap<String, u64> {
    let Ok(Some(log)) = AuditLog::open_read_only(dir) else {
        return BTreeMap::new();
    };
    hosters
        .iter()
        .filter_map(|h| Some((h.clone(), log.measured_deadline_ms(h).ok()??)))
        .collect()
}
