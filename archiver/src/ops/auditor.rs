//! The auditor: challenges random shards on hosters with a known identity. Its RNG (the shard
//! drawn, the challenge nonce) is seeded and its clock injected, so a seed replays its decisions.

use std::collections::BTreeMap;
use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::audit::{challenge_shard_at, ChallengeOutcome, ShardTarget};
use crate::error::Result;
use crate::hosters::HosterSet;
use crate::keys::MasterKey;
use crate::store::Store;

use super::clock::Clock;

/// Draws without a challengeable shard before a round gives up: the archive may hold nothing
/// on hosters with a known identity (yet).
pub const AUDIT_DRAWS_MAX: u32 = 64;

/// One shard the auditor chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPick {
    pub segment: u64,
    pub shard: u32,
    pub version: u32,
    pub hoster: String,
}

/// Challenges one random (segment, shard) per round.
#[derive(Debug)]
pub struct Auditor {
    rng: StdRng,
    clock: Arc<dyn Clock>,
    keys: BTreeMap<String, VerifyingKey>,
    deadlines_ms: BTreeMap<String, u64>,
    samples: u16,
}

impl Auditor {
    /// `keys`: the hosters' challenge identities (hosters without one are not audited).
    pub fn new(seed: u64, clock: Arc<dyn Clock>, keys: BTreeMap<String, VerifyingKey>) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            clock,
            keys,
            deadlines_ms: BTreeMap::new(),
            samples: crate::audit::CHALLENGE_SAMPLES_DEFAULT,
        }
    }

    /// The deadline `hoster`'s answers are held to (else `CHALLENGE_DEADLINE_MS_DEFAULT`).
    pub fn set_deadline_ms(&mut self, hoster: &str, ms: u64) {
        self.deadlines_ms.insert(hoster.to_string(), ms);
    }

    pub fn audits_anything(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Draws a dispersed shard held by an audited hoster, skipping hosters in `skip` (lost or
    /// draining: their shards are being moved anyway).
    pub fn pick(&mut self, store: &Store, skip: &[String]) -> Result<Option<AuditPick>> {
        let dispersed = store.dispersed_next()?;
        if dispersed == 0 || self.keys.is_empty() {
            return Ok(None);
        }
        for _ in 0..AUDIT_DRAWS_MAX {
            let segment = self.rng.gen_range(0..dispersed);
            let Some(placement) = store.placement(segment)? else {
                continue;
            };
            let candidates: Vec<(u32, &String)> = placement
                .hosters
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.as_ref().map(|h| (i as u32, h)))
                .filter(|(_, h)| self.keys.contains_key(*h) && !skip.contains(h))
                .collect();
            if candidates.is_empty() {
                continue;
            }
            let (shard, hoster) = candidates[self.rng.gen_range(0..candidates.len())];
            return Ok(Some(AuditPick {
                segment,
                shard,
                version: placement.version(shard as usize),
                hoster: hoster.clone(),
            }));
        }
        Ok(None)
    }

    /// One round: pick, challenge, judge. `None` when nothing can be challenged.
    pub async fn round(
        &mut self,
        store: &Store,
        key: &MasterKey,
        hosters: &HosterSet,
        skip: &[String],
    ) -> Result<Option<ChallengeOutcome>> {
        let Some(pick) = self.pick(store, skip)? else {
            return Ok(None);
        };
        let (Some(manifest), Some(host), Some(hoster_key)) = (
            store.manifest(pick.segment)?,
            hosters.get(&pick.hoster),
            self.keys.get(&pick.hoster),
        ) else {
            return Ok(None);
        };
        let nonce: [u8; 32] = self.rng.gen();
        let deadline_ms = self
            .deadlines_ms
            .get(&pick.hoster)
            .copied()
            .unwrap_or(crate::audit::CHALLENGE_DEADLINE_MS_DEFAULT);
        let target = ShardTarget {
            manifest: &manifest,
            shard: pick.shard,
            version: pick.version,
        };
        let outcome = challenge_shard_at(
            key,
            target,
            host,
            hoster_key,
            (nonce, self.clock.now_ms()),
            self.samples,
            deadline_ms,
        )
        .await;
        Ok(Some(outcome))
    }
}
