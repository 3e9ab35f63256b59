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

/// Passed challenges of a hoster needed before its deadline is derived from its own latency.
pub const DEADLINE_HISTORY_MIN: usize = 20;
/// Measured deadline = this × the hoster's p99 passing latency: room for load spikes, while a
/// hoster fetching the shard from elsewhere (a WAN round trip plus a shard transfer) is still
/// far beyond it.
pub const DEADLINE_LATENCY_FACTOR: f64 = 8.0;
/// Lower bound of a measured deadline: scheduler and network jitter on a quiet loopback.
pub const DEADLINE_FLOOR_MS: u64 = 50;
/// How long a writer of the audit store waits for a continuous audit to release it: that audit
/// holds it for one write (milliseconds) per round.
pub const AUDIT_STORE_LOCK_WAIT_MS: u64 = 5_000;

/// What one challenge showed.
#[derive(Clone, Debug)]
pub struct ChallengeOutcome {
    pub hoster: String,
    pub segment: u64,
    pub shard: u32,
    pub samples: u16,
    pub latency_ms: f64,
    /// The deadline the response was held to.
    pub deadline_ms: u64,
    /// Encoded response length (0 when there was none).
    pub proof_bytes: usize,
    /// `Ok` when the proof verified; otherwise why not (the verdict).
    pub verdict: Result<(), String>,
    /// When a response came back and failed: the encoded challenge and the hoster's response as
    /// received. The response is signed with the hoster's key over the challenge, so together
    /// they let anyone re-run the verification: attributable evidence, not just our word.
    pub evidence: Option<(Vec<u8>, Vec<u8>)>,
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

/// The challenge identities the config gives: name → key for every hoster with a `public_key`,
/// and (name, why) for keys that do not parse (such a hoster is not audited).
pub fn hoster_keys(
    entries: &[crate::config::HosterEntry],
) -> (
    std::collections::BTreeMap<String, VerifyingKey>,
    Vec<(String, String)>,
) {
    let (mut keys, mut bad) = (std::collections::BTreeMap::new(), Vec::new());
    for e in entries {
        match e.public_key.as_deref().map(parse_hoster_key) {
            Some(Ok(k)) => {
                keys.insert(e.name.clone(), k);
            }
            Some(Err(why)) => bad.push((e.name.clone(), why)),
            None => {}
        }
    }
    (keys, bad)
}

/// Challenges `hoster` for shard `shard` (stored under storage-key version `version`, see
/// `Placement::versions`) of the segment `manifest` describes.
#[allow(clippy::too_many_arguments)]
pub async fn challenge_shard(
    key: &MasterKey,
    manifest: &Manifest,
    shard: u32,
    version: u32,
    hoster: &Arc<dyn ShardHost>,
    hoster_key: &VerifyingKey,
    samples: u16,
    deadline_ms: u64,
) -> ChallengeOutcome {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let target = ShardTarget {
        manifest,
        shard,
        version,
    };
    challenge_shard_at(
        key,
        target,
        hoster,
        hoster_key,
        (rand::random(), now_ms),
        samples,
        deadline_ms,
    )
    .await
}

/// One shard of one segment, as a challenge names it.
#[derive(Clone, Copy, Debug)]
pub struct ShardTarget<'a> {
    pub manifest: &'a Manifest,
    pub shard: u32,
    /// Its storage-key version (see `Placement::versions`).
    pub version: u32,
}

/// [`challenge_shard`] with the nonce and timestamp given `(nonce, timestamp_ms)`: the
/// operations layer draws them from its seeded RNG and injected clock, so a seed replays an
/// audit's every decision.
pub async fn challenge_shard_at(
    key: &MasterKey,
    target: ShardTarget<'_>,
    hoster: &Arc<dyn ShardHost>,
    hoster_key: &VerifyingKey,
    (nonce, timestamp_ms): ([u8; 32], u64),
    samples: u16,
    deadline_ms: u64,
) -> ChallengeOutcome {
    let ShardTarget {
        manifest,
        shard,
        version,
    } = target;
    let challenge = Challenge {
        nonce,
        timestamp_ms,
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
        deadline_ms,
        proof_bytes: 0,
        verdict: Ok(()),
        evidence: None,
    };
    let Some(root) = manifest.shard_roots.get(shard as usize).copied() else {
        outcome.verdict = Err(format!("segment {} has no shard {shard}", manifest.segment));
        return outcome;
    };
    let storage_key = manifest.shard_storage_key_at(key, shard as usize, version);
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
    if outcome.verdict.is_err() {
        outcome.evidence = Some((challenge.encode().to_vec(), bytes));
    }
    outcome
}

/// One recorded challenge (what `archiver audit` keeps).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    pub at_ms: u64,
    pub hoster: String,
    pub segment: u64,
    pub shard: u32,
    pub samples: u16,
    pub passed: bool,
    pub latency_ms: f64,
    pub proof_bytes: usize,
    pub verdict: String,
    /// Failed answers only: the challenge and the signed response, hex (see
    /// `ChallengeOutcome::evidence`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_hex: Option<String>,
}

/// Per-hoster audit figures for `archiver status`.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct HosterAudit {
    pub hoster: String,
    pub passed: u64,
    pub failed: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub last_failure: Option<String>,
}

/// Audit results and shards marked for repair, in their own RocksDB beside the archive's (so an
/// audit can run while a node or follower holds the archive's store).
pub struct AuditLog {
    db: rocksdb::DB,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

/// RocksDB's refusal when another process holds the store's LOCK file.
fn is_lock_held(e: &rocksdb::Error) -> bool {
    let text = e.to_string();
    text.contains("lock file") || text.contains("Resource temporarily unavailable")
}

const RESULT_PREFIX: u8 = b'r';
const MARK_PREFIX: u8 = b'm';
/// `d` ‖ hoster name → request time (ms, u64 BE): hosters to drain.
const DRAIN_PREFIX: u8 = b'd';
/// `b` → request time (ms, u64 BE): a rebalance is asked for (until the service finishes it).
const REBALANCE_KEY: &[u8] = b"b";
/// `s` ‖ hoster name → depth u8 ‖ next segment u64 BE: sweeps in progress (they outlive a restart).
const SWEEP_PREFIX: u8 = b's';

impl AuditLog {
    /// Opens (creating) the audit store under the archive's data directory. A continuous audit
    /// (`--every`) holds it only while it writes a result, so another writer (`repair`) waits
    /// up to `AUDIT_STORE_LOCK_WAIT_MS` for it instead of failing at once.
    pub fn open(data_dir: &std::path::Path) -> crate::Result<Self> {
        Self::open_waiting(data_dir, AUDIT_STORE_LOCK_WAIT_MS)
    }

    /// [`open`](Self::open) without waiting for another holder: the operations service tries
    /// once per pass and does not stall its runtime.
    pub fn open_once(data_dir: &std::path::Path) -> crate::Result<Self> {
        Self::open_waiting(data_dir, 0)
    }

    fn open_waiting(data_dir: &std::path::Path, wait_ms: u64) -> crate::Result<Self> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        // A continuous audit opens the store once per result: keep RocksDB's info logs few.
        opts.set_keep_log_file_num(4);
        let path = crate::config::DataDir::new(data_dir).audit();
        let waited = Instant::now();
        loop {
            match rocksdb::DB::open(&opts, &path) {
                Ok(db) => return Ok(Self { db }),
                Err(e)
                    if is_lock_held(&e) && waited.elapsed().as_millis() < u128::from(wait_ms) =>
                {
                    // Retry, not sync-by-sleep: the other process gives no signal to wait on.
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) if is_lock_held(&e) => {
                    return Err(crate::ArchiveError::db(
                        "open audit store (held by another `archiver audit --rounds` or `repair`)",
                    )(e))
                }
                Err(e) => return Err(crate::ArchiveError::db("open audit store")(e)),
            }
        }
    }

    /// Opens the audit store read-only, beside a running audit (RocksDB's read-only mode takes
    /// no lock); None when no audit ever ran. For `status`.
    pub fn open_read_only(data_dir: &std::path::Path) -> crate::Result<Option<Self>> {
        let path = crate::config::DataDir::new(data_dir).audit();
        if !path.exists() {
            return Ok(None);
        }
        let db = rocksdb::DB::open_for_read_only(&rocksdb::Options::default(), &path, false)
            .map_err(crate::ArchiveError::db("open audit store read-only"))?;
        Ok(Some(Self { db }))
    }

    /// Opens an existing audit store, or None when no audit ever ran.
    pub fn open_existing(data_dir: &std::path::Path) -> crate::Result<Option<Self>> {
        if !crate::config::DataDir::new(data_dir).audit().exists() {
            return Ok(None);
        }
        Self::open(data_dir).map(Some)
    }

    /// Records an outcome; a failed one also marks its shard for repair.
    pub fn record(&self, o: &ChallengeOutcome, at_ms: u64) -> crate::Result<()> {
        let rec = AuditRecord {
            at_ms,
            hoster: o.hoster.clone(),
            segment: o.segment,
            shard: o.shard,
            samples: o.samples,
            passed: o.passed(),
            latency_ms: o.latency_ms,
            proof_bytes: o.proof_bytes,
            verdict: match &o.verdict {
                Ok(()) => "pass".into(),
                Err(e) => e.clone(),
            },
            challenge_hex: o.evidence.as_ref().map(|(c, _)| hex::encode(c)),
            response_hex: o.evidence.as_ref().map(|(_, r)| hex::encode(r)),
        };
        let mut key = vec![RESULT_PREFIX];
        key.extend_from_slice(&at_ms.to_be_bytes());
        key.extend_from_slice(o.hoster.as_bytes());
        let value =
            serde_json::to_vec(&rec).map_err(|e| crate::ArchiveError::Codec(e.to_string()))?;
        let mut batch = rocksdb::WriteBatch::default();
        batch.put(key, value);
        if !rec.passed {
            batch.put(mark_key(o.segment, o.shard), o.hoster.as_bytes());
        }
        self.db
            .write(batch)
            .map_err(crate::ArchiveError::db("record audit"))
    }

    /// Marks shards for repair without a challenge (a hoster that fails challenges over and
    /// over, or came back without them): (segment, shard, hoster).
    pub fn mark(&self, shards: &[(u64, usize, String)]) -> crate::Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        for (segment, shard, hoster) in shards {
            batch.put(mark_key(*segment, *shard as u32), hoster.as_bytes());
        }
        self.db
            .write(batch)
            .map_err(crate::ArchiveError::db("record repair marks"))
    }

    /// Asks the operations service to move every shard off `hoster` (and place nothing new on
    /// it) until the request is withdrawn (`hosters remove` withdraws it).
    pub fn request_drain(&self, hoster: &str, at_ms: u64) -> crate::Result<()> {
        let mut key = vec![DRAIN_PREFIX];
        key.extend_from_slice(hoster.as_bytes());
        self.db
            .put(key, at_ms.to_be_bytes())
            .map_err(crate::ArchiveError::db("record drain request"))
    }

    pub fn withdraw_drain(&self, hoster: &str) -> crate::Result<()> {
        let mut key = vec![DRAIN_PREFIX];
        key.extend_from_slice(hoster.as_bytes());
        self.db
            .delete(key)
            .map_err(crate::ArchiveError::db("withdraw drain request"))
    }

    /// Asks the operations service to spread shards evenly over the usable hosters; the service
    /// withdraws the request once no move is left.
    pub fn request_rebalance(&self, at_ms: u64) -> crate::Result<()> {
        self.db
            .put(REBALANCE_KEY, at_ms.to_be_bytes())
            .map_err(crate::ArchiveError::db("record rebalance request"))
    }

    pub fn withdraw_rebalance(&self) -> crate::Result<()> {
        self.db
            .delete(REBALANCE_KEY)
            .map_err(crate::ArchiveError::db("withdraw rebalance request"))
    }

    pub fn rebalance_requested(&self) -> crate::Result<bool> {
        self.db
            .get(REBALANCE_KEY)
            .map(|v| v.is_some())
            .map_err(crate::ArchiveError::db("read rebalance request"))
    }

    /// Replaces the recorded sweeps with `sweeps` (hoster, depth, next segment).
    pub fn put_sweeps(&self, sweeps: &[(String, u8, u64)]) -> crate::Result<()> {
        let mut batch = rocksdb::WriteBatch::default();
        for (hoster, _, _) in self.sweeps()? {
            let mut key = vec![SWEEP_PREFIX];
            key.extend_from_slice(hoster.as_bytes());
            batch.delete(key);
        }
        for (hoster, depth, next) in sweeps {
            let mut key = vec![SWEEP_PREFIX];
            key.extend_from_slice(hoster.as_bytes());
            let mut value = vec![*depth];
            value.extend_from_slice(&next.to_be_bytes());
            batch.put(key, value);
        }
        self.db
            .write(batch)
            .map_err(crate::ArchiveError::db("record sweeps"))
    }

    /// Sweeps in progress: (hoster, depth, next segment); malformed entries are skipped.
    pub fn sweeps(&self) -> crate::Result<Vec<(String, u8, u64)>> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator([SWEEP_PREFIX]) {
            let (k, v) = item.map_err(crate::ArchiveError::db("read sweeps"))?;
            if k.first() != Some(&SWEEP_PREFIX) {
                break;
            }
            if let (Some(&depth), Some(next)) = (v.first(), v.get(1..9)) {
                let next = u64::from_be_bytes(next.try_into().unwrap_or_default());
                out.push((String::from_utf8_lossy(&k[1..]).into_owned(), depth, next));
            }
        }
        Ok(out)
    }

    /// Hosters being drained.
    pub fn drains(&self) -> crate::Result<Vec<String>> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator([DRAIN_PREFIX]) {
            let (k, _) = item.map_err(crate::ArchiveError::db("read drain requests"))?;
            if k.first() != Some(&DRAIN_PREFIX) {
                break;
            }
            out.push(String::from_utf8_lossy(&k[1..]).into_owned());
        }
        Ok(out)
    }

    /// Shards that failed a challenge and are not repaired yet: (segment, shard, hoster).
    pub fn marked(&self) -> crate::Result<Vec<(u64, usize, String)>> {
        let mut out = Vec::new();
        for item in self.db.prefix_iterator([MARK_PREFIX]) {
            let (k, v) = item.map_err(crate::ArchiveError::db("read repair marks"))?;
            if k.first() != Some(&MARK_PREFIX) {
                break;
            }
            if k.len() == 13 {
                let segment = u64::from_be_bytes(k[1..9].try_into().unwrap_or_default());
                let shard = u32::from_be_bytes(k[9..13].try_into().unwrap_or_default());
                out.push((
                    segment,
                    shard as usize,
                    String::from_utf8_lossy(&v).into_owned(),
                ));
            }
        }
        Ok(out)
    }

    /// Clears a repair mark (the shard was rebuilt elsewhere).
    pub fn unmark(&self, segment: u64, shard: usize) -> crate::Result<()> {
        self.db
            .delete(mark_key(segment, shard as u32))
            .map_err(crate::ArchiveError::db("clear repair mark"))
    }

    /// The deadline measured for `hoster`: [`DEADLINE_LATENCY_FACTOR`] × its p99 latency over its
    /// passed challenges, within [`DEADLINE_FLOOR_MS`]..=[`CHALLENGE_DEADLINE_MS_DEFAULT`]; None
    /// until it has [`DEADLINE_HISTORY_MIN`] passes.
    pub fn measured_deadline_ms(&self, hoster: &str) -> crate::Result<Option<u64>> {
        let mut lat = Vec::new();
        for item in self.db.prefix_iterator([RESULT_PREFIX]) {
            let (k, v) = item.map_err(crate::ArchiveError::db("read audit"))?;
            if k.first() != Some(&RESULT_PREFIX) {
                break;
            }
            if let Ok(rec) = serde_json::from_slice::<AuditRecord>(&v) {
                if rec.passed && rec.hoster == hoster {
                    lat.push(rec.latency_ms);
                }
            }
        }
        if lat.len() < DEADLINE_HISTORY_MIN {
            return Ok(None);
        }
        lat.sort_by(f64::total_cmp);
        let p99 = lat[(lat.len() - 1) * 99 / 100];
        Ok(Some(
            ((p99 * DEADLINE_LATENCY_FACTOR).ceil() as u64)
                .clamp(DEADLINE_FLOOR_MS, CHALLENGE_DEADLINE_MS_DEFAULT),
        ))
    }

    /// The most recent failed challenges, newest first, at most `limit`, each with its evidence
    /// (challenge and signed response) when the hoster answered at all.
    pub fn failures(&self, limit: usize) -> crate::Result<Vec<AuditRecord>> {
        let mut out = Vec::new();
        let mode = rocksdb::IteratorMode::From(&[RESULT_PREFIX + 1], rocksdb::Direction::Reverse);
        for item in self.db.iterator(mode) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(crate::ArchiveError::db("read audit"))?;
            if k.first() != Some(&RESULT_PREFIX) {
                if k.first() > Some(&RESULT_PREFIX) {
                    continue;
                }
                break;
            }
            if let Ok(rec) = serde_json::from_slice::<AuditRecord>(&v) {
                if !rec.passed {
                    out.push(rec);
                }
            }
        }
        Ok(out)
    }

    /// Pass/fail counts and latency percentiles per hoster, over every recorded challenge.
    pub fn summary(&self) -> crate::Result<Vec<HosterAudit>> {
        let mut by: std::collections::BTreeMap<String, (HosterAudit, Vec<f64>)> =
            Default::default();
        for item in self.db.prefix_iterator([RESULT_PREFIX]) {
            let (k, v) = item.map_err(crate::ArchiveError::db("read audit"))?;
            if k.first() != Some(&RESULT_PREFIX) {
                break;
            }
            let Ok(rec) = serde_json::from_slice::<AuditRecord>(&v) else {
                continue;
            };
            let entry = by.entry(rec.hoster.clone()).or_insert_with(|| {
                (
                    HosterAudit {
                        hoster: rec.hoster.clone(),
                        ..Default::default()
                    },
                    Vec::new(),
                )
            });
            if rec.passed {
                entry.0.passed += 1;
            } else {
                entry.0.failed += 1;
                entry.0.last_failure = Some(format!(
                    "segment {} shard {}: {}",
                    rec.segment, rec.shard, rec.verdict
                ));
            }
            entry.1.push(rec.latency_ms);
        }
        Ok(by
            .into_values()
            .map(|(mut a, mut lat)| {
                lat.sort_by(f64::total_cmp);
                let pick = |p: f64| {
                    lat.get(((lat.len().max(1) - 1) as f64 * p).round() as usize)
                        .copied()
                        .unwrap_or(0.0)
                };
                a.latency_p50_ms = pick(0.5);
                a.latency_p99_ms = pick(0.99);
                a
            })
            .collect())
    }
}

fn mark_key(segment: u64, shard: u32) -> Vec<u8> {
    let mut k = vec![MARK_PREFIX];
    k.extend_from_slice(&segment.to_be_bytes());
    k.extend_from_slice(&shard.to_be_bytes());
    k
}
