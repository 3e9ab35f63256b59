//! Time for the operations layer behind a trait, so tests drive health, audits and the repair
//! budget from a manual clock and a seed replays every decision.

use std::sync::atomic::{AtomicU64, Ordering};

/// Milliseconds since the UNIX epoch (a challenge carries wall time; durations are differences).
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> u64;
}

/// The machine's clock, monotonic: wall time when created plus the monotonic time since, so a
/// wall-clock step (NTP, an operator) neither stops the service's timers nor fires them all.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    start: std::time::Instant,
    wall_at_start_ms: u64,
}

impl SystemClock {
    pub fn new() -> Self {
        Self {
            start: std::time::Instant::now(),
            wall_at_start_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        self.wall_at_start_ms
            .saturating_add(self.start.elapsed().as_millis() as u64)
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        Self(AtomicU64::new(start_ms))
    }

    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
