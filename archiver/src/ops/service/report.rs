//! What the service publishes: block heights, the repair queue and the redundancy left, into
//! the status and the Prometheus families.

use crate::metrics::HeightStatus;

use super::super::repair::RepairJob;
use super::OpsService;

impl OpsService {
    /// `archiver_block_height{status}` from the store: the last block archived, sealed,
    /// dispersed and verified, and the watermark below which the node may prune.
    pub(super) fn publish_heights(&self, watermark: u64) -> crate::Result<()> {
        let Some(m) = &self.metrics else {
            return Ok(());
        };
        let store = self.disperser.store();
        let last_of = |next_segment: u64| -> crate::Result<Option<u64>> {
            Ok(match next_segment.checked_sub(1) {
                Some(s) => store.sealed(s)?.map(|s| s.last_number),
                None => None,
            })
        };
        if let Some((last, _)) = store.log_head()?.last {
            m.set_height(HeightStatus::Archived, last);
        }
        let sealed = store.sealed_all()?.last().map(|s| s.last_number);
        let heights = [
            (HeightStatus::Sealed, sealed),
            (HeightStatus::Dispersed, last_of(store.dispersed_next()?)?),
            (HeightStatus::Verified, last_of(store.verified_next()?)?),
            (HeightStatus::Pruned, watermark.checked_sub(1)),
        ];
        for (status, height) in heights {
            if let Some(h) = height {
                m.set_height(status, h);
            }
        }
        Ok(())
    }

    pub(super) fn publish_queue(&self, jobs: &[RepairJob]) {
        let queue_bytes = jobs.iter().map(|j| j.bytes).sum();
        let sweeping = self.sweeps.hosters();
        if let Some(m) = &self.metrics {
            m.set_repair_queue(jobs.len() as u64, queue_bytes);
            m.set_sweeps(sweeping.len() as u64);
        }
        let draining = self.control.drains.clone();
        self.handle.update(|s| {
            s.sweeping = sweeping;
            s.draining = draining;
            s.repair_queue_segments = jobs.len() as u64;
            s.repair_queue_bytes = queue_bytes;
        });
    }

    /// Segments by redundancy left (`repair::survey`), and those below k, into the status and
    /// the families.
    pub(super) fn publish_redundancy(&self, by_left: Vec<u64>, unreadable: u64) {
        if let Some(m) = &self.metrics {
            m.set_redundancy(&by_left);
            m.set_unreadable(unreadable);
        }
        self.handle.update(|s| {
            s.segments_by_redundancy = by_left;
            s.segments_unreadable = unreadable;
        });
    }
}
