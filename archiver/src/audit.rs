//! The verifier side of storage challenges: challenge one hoster for one shard it was given, with
//! a fresh nonce, and judge the answer against the manifest alone (specs/challenge.md). The
//! protocol itself (derivation, encoding, verification) is the `prover` crate's; this module adds
//! the hoster call, the clock and the archive's facts (root, length, storage key).

use std::sync::Arc;
use std::time::Instant;

use ed25519_dalek::VerifyingKey;
use prover::challenge::{verify, Challenge, Response};

use crate::hosters::ShardHost;
use crate::keys::MasterKey;
use crate::manifest::Manifest;

/// Samples per challenge by default: a hoster missing 10 % of a shard is caught with probability
/// 1 − 0.9^16 ≈ 81 % per challenge, ≈ 99.9 % over four; each sample costs ~1.5 KiB of proof.
pub const CHALLENGE_SAMPLES_DEFAULT: u16 = 16;
/// Default response deadline: a local disk answers in single milliseconds per sample, while
/// fetching a 16 MiB shard from elsewhere over a WAN takes seconds; 1 s sits well between.
pub const CHALLENGE_DEADLINE_MS_DEFAULT: u64 = 1_000;

/// What one challenge showed.
#[derive(Clone, Debug)]
pub struct ChallengeOutcome {
    pub hoster: String,
    pub segment: u64,
    pub shard: u32,
    pub samples: u16,
    pub latency_ms: f64,
    /// Encoded response length (0 when there was none).
    pub proof_bytes: usize,
    /// `Ok` when the proof verified; otherwise why not (the verdict).
    pub verdict: Result<(), String>,
}

impl ChallengeOutcome {
    pub fn passed(&self) -> bool {
        self.verdict.is_ok()
    }
}

/// Parses a hoster's challenge identity (hex ed25519 public key, optional `0x`).
pub fn parse_hoster_key(hex_key: &str) -> Result<VerifyingKey, String> {
    let raw = hex::decode(hex_key.trim_start_matches("0x")).map_err(|e| e.to_string())?;
    let bytes: [u8; 32] = raw
        .as_slice()
        .try_into()
        .map_err(|_| format!("{} bytes, an ed25519 public key is 32", raw.len()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| e.to_string())
}

/// Challenges `hoster` for shard `shard` of the segment `manifest` describes.
pub async fn challenge_shard(
    key: &MasterKey,
    manifest: &Manifest,
    shard: u32,
    hoster: &Arc<dyn ShardHost>,
    hoster_key: &VerifyingKey,
    samples: u16,
    deadline_ms: u64,
) -> ChallengeOutcome {
    let challenge = Challenge {
        nonce: rand::random(),
        timestamp_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        segment: manifest.segment,
        shard,
        samples,
    };
    let mut outcome = ChallengeOutcome {
        hoster: hoster.name().to_string(),
        segment: manifest.segment,
        shard,
        samples,
        latency_ms: 0.0,
        proof_bytes: 0,
        verdict: Ok(()),
    };
    let Some(root) = manifest.shard_roots.get(shard as usize).copied() else {
        outcome.verdict = Err(format!("segment {} has no shard {shard}", manifest.segment));
        return outcome;
    };
    let storage_key =
        key.shard_storage_key(manifest.segment, &manifest.segment_hash, shard as usize);
    let started = Instant::now();
    let answer = hoster.prove(&storage_key, &challenge.encode()).await;
    let elapsed = started.elapsed();
    outcome.latency_ms = elapsed.as_secs_f64() * 1e3;
    let bytes = match answer {
        Ok(b) => b,
        Err(e) => {
            outcome.verdict = Err(format!("no proof: {e}"));
            return outcome;
        }
    };
    outcome.proof_bytes = bytes.len();
    outcome.verdict = Response::decode(&bytes)
        .and_then(|response| {
            verify(
                &challenge,
                &response,
                hoster_key,
                &hoster_key.to_bytes(),
                root,
                manifest.shard_bytes,
                elapsed.as_millis() as u64,
                deadline_ms,
            )
        })
        .map_err(|e| e.to_string());
    outcome
}
