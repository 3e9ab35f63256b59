//! Watching the hosters: probes, audit rounds and sweep steps, and what their findings set off
//! (a lost hoster avoided, a returned one reconciled, a failed sample answered with a sweep).

use std::collections::BTreeMap;

use crate::remote::timed;

use super::super::health::HealthEvent;
use super::super::sweep::SweepDepth;
use super::{OpsService, EVENTS_KEPT, PENDING_OUTCOMES_MAX};

impl OpsService {
    /// Probes, one audit round and sweep steps, each when due.
    pub(super) async fn watch(&mut self, now: u64) -> crate::Result<()> {
        let probe_due = self
            .last_probe_ms
            .is_none_or(|t| now.saturating_sub(t) >= self.opts.health.probe_interval_ms);
        if probe_due {
            self.last_probe_ms = Some(now);
            self.probe(now).await;
        }
        let audit_due = self.opts.audit_interval_ms > 0
            && self
                .last_audit_ms
                .is_none_or(|t| now.saturating_sub(t) >= self.opts.audit_interval_ms);
        if audit_due {
            self.last_audit_ms = Some(now);
            self.audit(now).await?;
        }
        if !self.sweeps.is_empty() {
            let found = self
                .sweeps
                .step(&self.disperser, &mut self.budget, now)
                .await?;
            for (segment, shard, hoster) in found {
                tracing::warn!(
                    hoster,
                    segment,
                    shard,
                    "shard missing or rotten: marked for repair"
                );
                self.suspect.insert((segment, shard, hoster));
            }
        }
        Ok(())
    }

    /// Pings every hoster; acts on what changed.
    pub(super) async fn probe(&mut self, now: u64) {
        // Stored bytes double as the probe: one NSINFO per hoster.
        let pings = self.disperser.hosters().all().iter().map(|h| {
            let h = h.clone();
            async move { (h.name().to_string(), timed(h.stored_bytes()).await.ok()) }
        });
        let results = futures::future::join_all(pings).await;
        let mut up = BTreeMap::new();
        for (name, bytes) in results {
            let ok = bytes.is_some();
            if let Some(m) = &self.metrics {
                m.hoster_up(&name, ok);
                if let Some(b) = bytes {
                    m.hoster_bytes(&name, b);
                }
            }
            up.insert(name.clone(), ok);
            if let Some(event) = self.health.record_probe(&name, ok, now) {
                self.on_event(event, now).await;
            }
        }
        let lost = self.health.lost();
        self.handle.update(|s| {
            s.up = up;
            s.lost = lost;
        });
    }

    pub(super) async fn on_event(&mut self, event: HealthEvent, now: u64) {
        match &event {
            HealthEvent::Lost { hoster, .. } => {
                tracing::warn!(hoster, "hoster lost: rebuilding its shards elsewhere");
            }
            HealthEvent::Returned { hoster } => {
                // Not trusted blindly: every shard a placement still names on it must be there
                // (stale copies of shards moved meanwhile are orphans, left to GC).
                tracing::info!(hoster, "hoster answers again: reconciling its shards");
                self.sweeps.start(hoster, SweepDepth::Presence);
                self.gc_soon(now);
            }
            HealthEvent::Untrusted { hoster, failures } => {
                tracing::warn!(
                    hoster,
                    failures,
                    "hoster fails challenges: checking all its shards"
                );
                self.sweeps.start(hoster, SweepDepth::Content);
            }
        }
        self.handle.update(|s| {
            s.events.push((now, event.to_string()));
            let excess = s.events.len().saturating_sub(EVENTS_KEPT);
            s.events.drain(..excess);
        });
    }

    /// One audit round; its outcome feeds health and is recorded with the next store write.
    pub(super) async fn audit(&mut self, now: u64) -> crate::Result<()> {
        if !self.auditor.audits_anything() {
            return Ok(());
        }
        let mut skip = self.health.lost();
        skip.extend(self.control.drains.iter().cloned());
        let outcome = self
            .auditor
            .round(
                self.disperser.store(),
                self.disperser.remote().key(),
                self.disperser.hosters(),
                &skip,
            )
            .await?;
        let Some(outcome) = outcome else {
            return Ok(());
        };
        // No answer from a hoster that is down is the probes' business (it may come back),
        // not evidence against what it holds.
        let down = self
            .disperser
            .hosters()
            .get(&outcome.hoster)
            .is_some_and(|h| h.is_down());
        if outcome.evidence.is_none() && down {
            return Ok(());
        }
        if outcome.evidence.is_some() {
            // A sample failed: rot may be anywhere on that disk, so every shard is read.
            self.sweeps.start(&outcome.hoster, SweepDepth::Content);
        }
        if !outcome.passed() {
            tracing::warn!(hoster = %outcome.hoster, segment = outcome.segment, shard = outcome.shard,
                verdict = ?outcome.verdict, "challenge failed: shard marked for repair");
        }
        let passed = outcome.passed();
        if let Some(m) = &self.metrics {
            m.challenge(&outcome.hoster, passed, outcome.latency_ms / 1e3);
        }
        self.handle.update(|s| {
            if passed {
                s.challenges_passed += 1;
            } else {
                s.challenges_failed += 1;
            }
        });
        if let Some(event) = self.health.record_challenge(&outcome.hoster, passed) {
            self.on_event(event, now).await;
        }
        self.outcomes.push((now, outcome));
        let excess = self.outcomes.len().saturating_sub(PENDING_OUTCOMES_MAX);
        self.outcomes.drain(..excess);
        Ok(())
    }
}
