//! Keeping the archive current: disperse sealed segments, read them back and verify them,
//! scrub the hosters' metadata, publish the prune watermark, drop verified local files and
//! backfill the state-history index.

use crate::archive::Disperser;
use crate::error::Result;

/// Segments whose metadata one scrub checks on every hoster: the whole archive is covered over
/// (segments / this) scrubs, each a few small reads per record and hoster.
pub const METADATA_SCRUB_SEGMENTS_PER_PASS: u64 = 64;
/// How often metadata is scrubbed (missing manifest, placement and head records are written
/// again): often enough that an owner's deletion is healed within minutes, rarely enough that
/// the reads cost nothing next to dispersal.
pub const METADATA_SCRUB_INTERVAL_MS: u64 = 60_000;

/// Backfill steps (each `state_index::BACKFILL_STEP_BYTES` of records) one pass runs: ~64 MiB of
/// records a pass catches an existing archive up at that rate per tick without holding the pass
/// (and healing after it) for long.
pub const BACKFILL_STEPS_PER_PASS: usize = 16;

/// Where the next metadata scrub starts, and when the last one ran (ms, the service's clock).
#[derive(Debug, Default)]
pub struct ScrubCursor {
    next: u64,
    last_ms: Option<u64>,
}

impl ScrubCursor {
    /// One scrub window if the interval passed by `now_ms`; a window past the end starts over
    /// at 0.
    pub async fn step(&mut self, disperser: &Disperser, now_ms: u64) -> Result<()> {
        let due = self
            .last_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= METADATA_SCRUB_INTERVAL_MS);
        if !due {
            return Ok(());
        }
        self.last_ms = Some(now_ms);
        let window = self.next..self.next + METADATA_SCRUB_SEGMENTS_PER_PASS;
        let report = disperser.scrub_metadata(window).await?;
        if !report.republished.is_empty() || !report.damaged.is_empty() {
            tracing::warn!(
                republished = report.republished.len(),
                damaged = report.damaged.len(),
                "metadata scrub found records missing or damaged on hosters"
            );
        }
        self.next = if report.segments_checked < METADATA_SCRUB_SEGMENTS_PER_PASS {
            0
        } else {
            self.next + METADATA_SCRUB_SEGMENTS_PER_PASS
        };
        Ok(())
    }
}

/// What one maintenance pass reached.
#[derive(Clone, Debug, Default)]
pub struct MaintenanceReport {
    /// First block the archive does not vouch for yet (see `Disperser::safe_prune_watermark`).
    pub watermark: Option<u64>,
    /// The state index's `indexed_next` after this pass's backfill.
    pub indexed_next: Option<u64>,
    /// The first failing step's error; later steps still ran.
    pub errors: Vec<String>,
}

/// Disperse → verify → scrub (when due at the given time) → watermark → prune local files below the verified
/// segments, keeping the newest `keep_local_segments` → backfill the state index (at most
/// `BACKFILL_STEPS_PER_PASS` steps). A failing step is reported and the next
/// ones still run; the watermark only reflects what was verified.
pub async fn maintain_once(
    disperser: &Disperser,
    scrub: Option<(&mut ScrubCursor, u64)>,
    keep_local_segments: u64,
) -> MaintenanceReport {
    let mut report = MaintenanceReport::default();
    if let Err(e) = disperser.disperse_pending().await {
        tracing::warn!(error = %e, "dispersal stalled; pruning waits");
        report.errors.push(format!("disperse: {e}"));
    }
    if let Err(e) = disperser.verify_dispersed().await {
        tracing::warn!(error = %e, "read-back verification failed; pruning waits");
        report.errors.push(format!("verify: {e}"));
    }
    if let Some((scrub, now_ms)) = scrub {
        if let Err(e) = scrub.step(disperser, now_ms).await {
            tracing::warn!(error = %e, "metadata scrub failed");
            report.errors.push(format!("metadata scrub: {e}"));
        }
    }
    match disperser.safe_prune_watermark() {
        Ok(w) => report.watermark = Some(w),
        Err(e) => report.errors.push(format!("watermark: {e}")),
    }
    if let Err(e) = disperser.prune_local_segments(keep_local_segments) {
        report.errors.push(format!("prune local segments: {e}"));
    }
    match disperser
        .backfill_state_index(BACKFILL_STEPS_PER_PASS)
        .await
    {
        Ok(progress) => report.indexed_next = Some(progress.indexed_next),
        Err(e) => {
            tracing::warn!(error = %e, "state index backfill stalled");
            report.errors.push(format!("state index backfill: {e}"));
        }
    }
    report
}
