//! Nonce-bound storage challenges: a verifier names a shard and a fresh nonce, the hoster answers with
//! sampled chunks, their Merkle paths to the shard's root and an ed25519 signature (`specs/challenge.md`).
//!
//! No I/O and no clock: the caller reads chunks for [`respond`] and measures the elapsed time it hands
//! to [`verify`]. The verifier needs only manifest data (root and shard length), never the shard.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rs_merkle::MerkleTree;

use crate::merkle::{Blake3Hasher, ChunkTreeBuilder, Hash32, CHUNK_BYTES};

/// Most samples one challenge may ask for. 64 samples catch a hoster missing 10 % of a shard with
/// probability 1 − 0.9^64 ≈ 99.9 %, so more buys little, while it caps a response at ~129 KiB
/// (see [`RESPONSE_BYTES_MAX`]) that a verifier must be willing to buffer from an untrusted peer.
pub const SAMPLES_MAX: u16 = 64;

/// Longest Merkle path (hashes) a sample may carry. 32 levels cover 2^32 chunks = a 4 TiB shard, far
/// beyond any shard the archiver writes, and keep one sample within 2 KiB plus 11 bytes of framing.
pub const PATH_HASHES_MAX: usize = 32;

/// Most chunks a challengeable shard may have: the most a [`PATH_HASHES_MAX`]-level path can prove.
pub const CHUNK_COUNT_MAX: u64 = 1 << PATH_HASHES_MAX;

// The 2 KiB-per-sample proof budget holds even at full depth: a full chunk plus a 32-hash path.
const _: () = assert!(CHUNK_BYTES + 32 * PATH_HASHES_MAX <= 2048);

/// Magic opening an encoded challenge, so a challenge is never mistaken for another message.
pub const CHALLENGE_MAGIC: [u8; 4] = *b"PACH";

/// Magic opening an encoded response.
pub const RESPONSE_MAGIC: [u8; 4] = *b"PARS";

/// Encoded challenge: magic 4 ‖ nonce 32 ‖ timestamp_ms u64 ‖ segment u64 ‖ shard u32 ‖ samples u16.
pub const CHALLENGE_BYTES: usize = 4 + 32 + 8 + 8 + 4 + 2;

/// Per-sample framing in a response: index u64 ‖ chunk length u16 ‖ path length u8.
const SAMPLE_HEADER_BYTES: usize = 8 + 2 + 1;

/// Response bytes outside the samples: magic ‖ challenge ‖ hoster id ‖ count u16 … digest ‖ signature.
const RESPONSE_FIXED_BYTES: usize = 4 + CHALLENGE_BYTES + 32 + 2 + 32 + 64;

/// Largest well-formed response (SAMPLES_MAX full chunks with full-depth paths): 131,968 bytes.
/// Decoding refuses anything longer before looking inside it.
pub const RESPONSE_BYTES_MAX: usize = RESPONSE_FIXED_BYTES
    + SAMPLES_MAX as usize * (SAMPLE_HEADER_BYTES + CHUNK_BYTES + 32 * PATH_HASHES_MAX);

/// BLAKE3 derive_key context for the challenged chunk indices.
pub const INDEX_CONTEXT: &str = "poa-archiver 2026-11 v1 storage challenge indices";

/// BLAKE3 derive_key context for the digest a hoster signs.
pub const DIGEST_CONTEXT: &str = "poa-archiver 2026-11 v1 storage challenge response digest";

/// Why a challenge or response was refused. Each variant names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("response answers another nonce (replayed or misrouted)")]
    WrongNonce,
    #[error("response answers a challenge with another {field}")]
    ChallengeMismatch { field: &'static str },
    #[error("response comes from another hoster id")]
    WrongHoster,
    #[error("response carries {got} samples, challenge asked for {expected}")]
    SampleCount { expected: u16, got: usize },
    #[error("sample {position} is chunk {got}, challenge derives chunk {expected}")]
    IndexMismatch {
        position: usize,
        expected: u64,
        got: u64,
    },
    #[error("chunk {index} is {got} bytes, the shard's chunk {index} has {expected}")]
    ChunkLength {
        index: u64,
        expected: usize,
        got: usize,
    },
    #[error("chunk {index} and its path do not hash to the shard root")]
    ChunkNotInTree { index: u64 },
    #[error("hoster cannot read chunk {index}")]
    ChunkUnavailable { index: u64 },
    #[error("response digest does not match its contents")]
    DigestMismatch,
    #[error("signature does not verify under the hoster's public key")]
    BadSignature,
    #[error("response took {elapsed_ms} ms, deadline {deadline_ms} ms")]
    Late { elapsed_ms: u64, deadline_ms: u64 },
    #[error("shard has no chunks to challenge")]
    EmptyShard,
    #[error("shard has {chunk_count} chunks, more than a challenge can prove")]
    ShardTooLarge { chunk_count: u64 },
    #[error("malformed {what}: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("message of {bytes} bytes exceeds {max}")]
    TooLarge { bytes: usize, max: usize },
}

fn malformed(what: &'static str, reason: impl Into<String>) -> ChallengeError {
    ChallengeError::Malformed {
        what,
        reason: reason.into(),
    }
}

/// What a verifier asks: "prove you hold shard `shard` of segment `segment`, now".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    /// Fresh random bytes per challenge: the only thing a hoster cannot have seen before.
    pub nonce: [u8; 32],
    /// Verifier's clock when issued (unix ms); bound into indices and digest, checked by the caller.
    pub timestamp_ms: u64,
    pub segment: u64,
    pub shard: u32,
    /// Chunks to sample, 1..=[`SAMPLES_MAX`].
    pub samples: u16,
}

impl Challenge {
    /// Fixed-width little-endian layout of [`CHALLENGE_BYTES`] bytes.
    pub fn encode(&self) -> [u8; CHALLENGE_BYTES] {
        let mut out = [0u8; CHALLENGE_BYTES];
        out[0..4].copy_from_slice(&CHALLENGE_MAGIC);
        out[4..36].copy_from_slice(&self.nonce);
        out[36..44].copy_from_slice(&self.timestamp_ms.to_le_bytes());
        out[44..52].copy_from_slice(&self.segment.to_le_bytes());
        out[52..56].copy_from_slice(&self.shard.to_le_bytes());
        out[56..58].copy_from_slice(&self.samples.to_le_bytes());
        out
    }

    /// Parses untrusted bytes: exact length, magic, and a sample count in 1..=SAMPLES_MAX.
    pub fn decode(bytes: &[u8]) -> Result<Self, ChallengeError> {
        if bytes.len() != CHALLENGE_BYTES {
            return Err(malformed(
                "challenge",
                format!("{} bytes, expected {CHALLENGE_BYTES}", bytes.len()),
            ));
        }
        let mut reader = Reader::new(bytes);
        if reader.array::<4>("challenge magic")? != CHALLENGE_MAGIC {
            return Err(malformed("challenge magic", "not PACH"));
        }
        let challenge = Challenge {
            nonce: reader.array("challenge nonce")?,
            timestamp_ms: u64::from_le_bytes(reader.array("challenge timestamp")?),
            segment: u64::from_le_bytes(reader.array("challenge segment")?),
            shard: u32::from_le_bytes(reader.array("challenge shard")?),
            samples: u16::from_le_bytes(reader.array("challenge samples")?),
        };
        challenge.check_samples()?;
        Ok(challenge)
    }

    fn check_samples(&self) -> Result<(), ChallengeError> {
        if self.samples == 0 || self.samples > SAMPLES_MAX {
            return Err(malformed(
                "challenge samples",
                format!("{}, must be 1..={SAMPLES_MAX}", self.samples),
            ));
        }
        Ok(())
    }
}

/// The chunk indices `challenge` asks `hoster_id` for, in a shard of `chunk_count` chunks.
///
/// BLAKE3-DK([`INDEX_CONTEXT`], challenge encoding ‖ hoster id ‖ chunk_count u64) as an XOF, read
/// 8 bytes (u64 LE) at a time; a value in the top `2^64 mod chunk_count` is skipped (rejection
/// sampling, so no index is favoured), the rest reduced modulo `chunk_count`. Samples are
/// independent, so an index may repeat: detection is then exactly 1 − (1 − lost)^samples. An empty
/// shard yields no indices.
pub fn challenged_indices(challenge: &Challenge, hoster_id: &Hash32, chunk_count: u64) -> Vec<u64> {
    if chunk_count == 0 {
        return Vec::new();
    }
    let mut hasher = blake3::Hasher::new_derive_key(INDEX_CONTEXT);
    hasher.update(&challenge.encode());
    hasher.update(hoster_id);
    hasher.update(&chunk_count.to_le_bytes());
    let mut stream = hasher.finalize_xof();
    // Largest multiple of chunk_count that fits in 2^64: draws at or above it are rejected.
    let span = 1u128 << 64;
    let accept_below = span - span % u128::from(chunk_count);
    let mut indices = Vec::with_capacity(usize::from(challenge.samples));
    while indices.len() < usize::from(challenge.samples) {
        let mut word = [0u8; 8];
        stream.fill(&mut word);
        let draw = u64::from_le_bytes(word);
        if u128::from(draw) < accept_below {
            indices.push(draw % chunk_count);
        }
    }
    indices
}

/// A shard's Merkle tree, built once from its leaves so that answering a challenge costs only the
/// sampled chunk reads.
#[derive(Clone)]
pub struct ShardTree {
    tree: MerkleTree<Blake3Hasher>,
    chunk_count: u64,
}

impl std::fmt::Debug for ShardTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardTree")
            .field("chunk_count", &self.chunk_count)
            .finish_non_exhaustive()
    }
}

impl ShardTree {
    /// From leaf hashes (`BLAKE3(chunk)`, e.g. [`ChunkTreeBuilder::finish_leaves`]).
    pub fn from_leaves(leaves: Vec<Hash32>) -> Self {
        Self {
            tree: MerkleTree::from_leaves(&leaves),
            chunk_count: leaves.len() as u64,
        }
    }

    /// From a whole shard held in memory.
    pub fn from_shard(bytes: &[u8]) -> Self {
        let mut builder = ChunkTreeBuilder::with_capacity(bytes.len());
        builder.update(bytes);
        Self::from_leaves(builder.finish_leaves())
    }

    /// Same value as [`crate::shard_root`]; `[0; 32]` for an empty shard.
    pub fn root(&self) -> Hash32 {
        self.tree.root().unwrap_or([0; 32])
    }

    pub fn chunk_count(&self) -> u64 {
        self.chunk_count
    }

    /// Sibling hashes from leaf `index` up to the root (none where a lone node is promoted).
    pub fn path(&self, index: u64) -> Option<Vec<Hash32>> {
        if index >= self.chunk_count {
            return None;
        }
        let index = usize::try_from(index).ok()?;
        Some(self.tree.proof(&[index]).proof_hashes().to_vec())
    }
}

/// One answered sample: the chunk's bytes and its Merkle path (one path per sample rather than an
/// rs_merkle multi-proof: with ≤ 64 samples over thousands of chunks paths rarely share nodes, so a
/// multi-proof saves little, and per-sample paths keep duplicates and verification trivial).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub index: u64,
    pub chunk: Vec<u8>,
    pub path: Vec<Hash32>,
}

/// A hoster's signed answer to one challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The challenge answered, in full, so a replay to another nonce is recognised as such.
    pub challenge: Challenge,
    pub hoster_id: Hash32,
    /// One per challenged index, in derivation order.
    pub samples: Vec<Sample>,
    /// [`response_digest`] of the above.
    pub digest: Hash32,
    /// ed25519 over `digest`.
    pub signature: [u8; 64],
}

impl Response {
    /// Layout (little-endian): magic `PARS` ‖ challenge (58) ‖ hoster id (32) ‖ count u16 ‖ per sample
    /// { index u64 ‖ chunk length u16 ‖ path length u8 ‖ chunk ‖ path hashes } ‖ digest (32) ‖
    /// signature (64). A response holding out-of-range counts or lengths encodes to bytes that
    /// [`Response::decode`] refuses (lengths saturate rather than wrap).
    pub fn encode(&self) -> Vec<u8> {
        let body: usize = self
            .samples
            .iter()
            .map(|s| SAMPLE_HEADER_BYTES + s.chunk.len() + 32 * s.path.len())
            .sum();
        let mut out = Vec::with_capacity(RESPONSE_FIXED_BYTES + body);
        out.extend_from_slice(&RESPONSE_MAGIC);
        out.extend_from_slice(&self.challenge.encode());
        out.extend_from_slice(&self.hoster_id);
        let count = u16::try_from(self.samples.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        for sample in &self.samples {
            out.extend_from_slice(&sample.index.to_le_bytes());
            let chunk_len = u16::try_from(sample.chunk.len()).unwrap_or(u16::MAX);
            out.extend_from_slice(&chunk_len.to_le_bytes());
            out.push(u8::try_from(sample.path.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(&sample.chunk);
            for hash in &sample.path {
                out.extend_from_slice(hash);
            }
        }
        out.extend_from_slice(&self.digest);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses untrusted bytes; refuses oversized input before reading it, counts that disagree with
    /// the embedded challenge, lengths out of range and trailing bytes. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, ChallengeError> {
        if bytes.len() > RESPONSE_BYTES_MAX {
            return Err(ChallengeError::TooLarge {
                bytes: bytes.len(),
                max: RESPONSE_BYTES_MAX,
            });
        }
        let mut reader = Reader::new(bytes);
        if reader.array::<4>("response magic")? != RESPONSE_MAGIC {
            return Err(malformed("response magic", "not PARS"));
        }
        let challenge = Challenge::decode(reader.take(CHALLENGE_BYTES, "response challenge")?)?;
        let hoster_id = reader.array("response hoster id")?;
        let count = u16::from_le_bytes(reader.array("response sample count")?);
        if count != challenge.samples {
            return Err(malformed(
                "response sample count",
                format!("{count}, challenge asks for {}", challenge.samples),
            ));
        }
        let mut samples = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let index = u64::from_le_bytes(reader.array("sample index")?);
            let chunk_len = usize::from(u16::from_le_bytes(reader.array("sample chunk length")?));
            if chunk_len == 0 || chunk_len > CHUNK_BYTES {
                return Err(malformed(
                    "sample chunk length",
                    format!("{chunk_len}, must be 1..={CHUNK_BYTES}"),
                ));
            }
            let path_len = usize::from(reader.array::<1>("sample path length")?[0]);
            if path_len > PATH_HASHES_MAX {
                return Err(malformed(
                    "sample path length",
                    format!("{path_len} hashes, at most {PATH_HASHES_MAX}"),
                ));
            }
            let chunk = reader.take(chunk_len, "sample chunk")?.to_vec();
            let mut path = Vec::with_capacity(path_len);
            for _ in 0..path_len {
                path.push(reader.array("sample path hash")?);
            }
            samples.push(Sample { index, chunk, path });
        }
        let digest = reader.array("response digest")?;
        let signature = reader.array("response signature")?;
        if reader.remaining() != 0 {
            return Err(malformed(
                "response",
                format!("{} trailing bytes", reader.remaining()),
            ));
        }
        Ok(Response {
            challenge,
            hoster_id,
            samples,
            digest,
            signature,
        })
    }
}

/// The digest a hoster signs: BLAKE3-DK([`DIGEST_CONTEXT`], challenge encoding ‖ hoster id ‖
/// count u16 ‖ per sample { index u64 ‖ chunk length u16 ‖ chunk }). Paths are left out: they are
/// checked against the root, so they cannot be altered without failing anyway.
pub fn response_digest(challenge: &Challenge, hoster_id: &Hash32, samples: &[Sample]) -> Hash32 {
    let mut hasher = blake3::Hasher::new_derive_key(DIGEST_CONTEXT);
    hasher.update(&challenge.encode());
    hasher.update(hoster_id);
    let count = u16::try_from(samples.len()).unwrap_or(u16::MAX);
    hasher.update(&count.to_le_bytes());
    for sample in samples {
        hasher.update(&sample.index.to_le_bytes());
        let chunk_len = u16::try_from(sample.chunk.len()).unwrap_or(u16::MAX);
        hasher.update(&chunk_len.to_le_bytes());
        hasher.update(&sample.chunk);
    }
    *hasher.finalize().as_bytes()
}

/// Hoster side: answers `challenge` from `tree` (its shard's tree) and `chunk` (reads chunk i; `None`
/// if it cannot). Chunks are not checked against the tree here: judging them is the verifier's job.
pub fn respond(
    challenge: &Challenge,
    tree: &ShardTree,
    chunk: impl Fn(u64) -> Option<Vec<u8>>,
    hoster_id: &Hash32,
    signing_key: &SigningKey,
) -> Result<Response, ChallengeError> {
    challenge.check_samples()?;
    check_chunk_count(tree.chunk_count())?;
    let indices = challenged_indices(challenge, hoster_id, tree.chunk_count());
    let mut samples = Vec::with_capacity(indices.len());
    for index in indices {
        let bytes = chunk(index).ok_or(ChallengeError::ChunkUnavailable { index })?;
        if bytes.is_empty() || bytes.len() > CHUNK_BYTES {
            return Err(malformed(
                "chunk",
                format!(
                    "chunk {index} read as {} bytes, must be 1..={CHUNK_BYTES}",
                    bytes.len()
                ),
            ));
        }
        let path = tree
            .path(index)
            .ok_or(ChallengeError::ChunkUnavailable { index })?;
        samples.push(Sample {
            index,
            chunk: bytes,
            path,
        });
    }
    let digest = response_digest(challenge, hoster_id, &samples);
    let signature = signing_key.sign(&digest).to_bytes();
    Ok(Response {
        challenge: *challenge,
        hoster_id: *hoster_id,
        samples,
        digest,
        signature,
    })
}

/// Verifier side: accepts `response` only if it answers exactly `challenge` for `hoster_id`, in time,
/// with the derived chunks, each proven into `shard_root` (a shard of `shard_bytes` bytes), and is
/// signed by `hoster_public_key`. Steps in the order of `specs/challenge.md`; cheap checks first.
#[allow(clippy::too_many_arguments)] // the brief's flat signature: manifest facts and clock readings
pub fn verify(
    challenge: &Challenge,
    response: &Response,
    hoster_public_key: &VerifyingKey,
    hoster_id: &Hash32,
    shard_root: Hash32,
    shard_bytes: u64,
    elapsed_ms: u64,
    deadline_ms: u64,
) -> Result<(), ChallengeError> {
    challenge.check_samples()?;
    let answered = &response.challenge;
    if answered.nonce != challenge.nonce {
        return Err(ChallengeError::WrongNonce);
    }
    for (field, same) in [
        ("timestamp", answered.timestamp_ms == challenge.timestamp_ms),
        ("segment", answered.segment == challenge.segment),
        ("shard", answered.shard == challenge.shard),
        ("sample count", answered.samples == challenge.samples),
    ] {
        if !same {
            return Err(ChallengeError::ChallengeMismatch { field });
        }
    }
    if response.hoster_id != *hoster_id {
        return Err(ChallengeError::WrongHoster);
    }
    if elapsed_ms > deadline_ms {
        return Err(ChallengeError::Late {
            elapsed_ms,
            deadline_ms,
        });
    }
    let chunk_count = shard_bytes.div_ceil(CHUNK_BYTES as u64);
    check_chunk_count(chunk_count)?;
    if response.samples.len() != usize::from(challenge.samples) {
        return Err(ChallengeError::SampleCount {
            expected: challenge.samples,
            got: response.samples.len(),
        });
    }
    let expected = challenged_indices(challenge, hoster_id, chunk_count);
    let last_chunk_bytes = shard_bytes - (chunk_count - 1) * CHUNK_BYTES as u64;
    for (position, (sample, &index)) in response.samples.iter().zip(&expected).enumerate() {
        if sample.index != index {
            return Err(ChallengeError::IndexMismatch {
                position,
                expected: index,
                got: sample.index,
            });
        }
        // Lossless: both lengths are at most CHUNK_BYTES.
        let expected_len = if index == chunk_count - 1 {
            last_chunk_bytes as usize
        } else {
            CHUNK_BYTES
        };
        if sample.chunk.len() != expected_len {
            return Err(ChallengeError::ChunkLength {
                index,
                expected: expected_len,
                got: sample.chunk.len(),
            });
        }
        let leaf = *blake3::hash(&sample.chunk).as_bytes();
        if root_from_path(leaf, index, chunk_count, &sample.path) != Some(shard_root) {
            return Err(ChallengeError::ChunkNotInTree { index });
        }
    }
    if response_digest(challenge, hoster_id, &response.samples) != response.digest {
        return Err(ChallengeError::DigestMismatch);
    }
    let signature = Signature::from_bytes(&response.signature);
    hoster_public_key
        .verify_strict(&response.digest, &signature)
        .map_err(|_| ChallengeError::BadSignature)
}

fn check_chunk_count(chunk_count: u64) -> Result<(), ChallengeError> {
    if chunk_count == 0 {
        return Err(ChallengeError::EmptyShard);
    }
    if chunk_count > CHUNK_COUNT_MAX {
        return Err(ChallengeError::ShardTooLarge { chunk_count });
    }
    Ok(())
}

/// Folds `path` onto `leaf` the way rs_merkle builds the tree (left ‖ right; a lone last node is
/// promoted without a sibling). `None` if the path is too short or too long: exactly one canonical
/// path exists per leaf, so a response cannot pad itself with extra hashes.
fn root_from_path(leaf: Hash32, mut index: u64, mut width: u64, path: &[Hash32]) -> Option<Hash32> {
    let mut node = leaf;
    let mut siblings = path.iter();
    while width > 1 {
        let is_right = index % 2 == 1;
        if is_right || index + 1 < width {
            let sibling = siblings.next()?;
            let mut hasher = blake3::Hasher::new();
            if is_right {
                hasher.update(sibling).update(&node);
            } else {
                hasher.update(&node).update(sibling);
            }
            node = *hasher.finalize().as_bytes();
        }
        index /= 2;
        width = width.div_ceil(2);
    }
    if siblings.next().is_some() {
        return None;
    }
    Some(node)
}

/// Bounds-checked cursor over untrusted bytes; every read names what it was reading.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], ChallengeError> {
        if self.bytes.len() < len {
            return Err(malformed(
                what,
                format!("truncated: need {len} bytes, {} left", self.bytes.len()),
            ));
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ChallengeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn remaining(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::merkle::shard_root;

    const HOSTER_ID: Hash32 = [0xAB; 32];
    const DEADLINE_MS: u64 = 5_000;

    fn vector_challenge() -> Challenge {
        let mut nonce = [0u8; 32];
        for (i, byte) in nonce.iter_mut().enumerate() {
            *byte = i as u8;
        }
        Challenge {
            nonce,
            timestamp_ms: 1_795_000_000_000,
            segment: 42,
            shard: 3,
            samples: 8,
        }
    }

    fn challenge_with(seed: u64, samples: u16) -> Challenge {
        Challenge {
            nonce: *blake3::hash(&seed.to_le_bytes()).as_bytes(),
            timestamp_ms: 1_795_000_000_000 + seed,
            segment: 7,
            shard: 2,
            samples,
        }
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    /// Deterministic pseudo-random shard of `len` bytes.
    fn shard(len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        blake3::Hasher::new()
            .update(b"test shard")
            .finalize_xof()
            .fill(&mut out);
        out
    }

    fn reader(bytes: &[u8]) -> impl Fn(u64) -> Option<Vec<u8>> + '_ {
        move |i| {
            let start = usize::try_from(i).ok()? * CHUNK_BYTES;
            let end = (start + CHUNK_BYTES).min(bytes.len());
            bytes.get(start..end).map(<[u8]>::to_vec)
        }
    }

    struct Setup {
        bytes: Vec<u8>,
        tree: ShardTree,
    }

    fn setup(len: usize) -> Setup {
        let bytes = shard(len);
        let tree = ShardTree::from_shard(&bytes);
        Setup { bytes, tree }
    }

    fn check(s: &Setup, challenge: &Challenge, response: &Response) -> Result<(), ChallengeError> {
        verify(
            challenge,
            response,
            &key().verifying_key(),
            &HOSTER_ID,
            s.tree.root(),
            s.bytes.len() as u64,
            100,
            DEADLINE_MS,
        )
    }

    #[test]
    fn challenge_vector() {
        let encoded = vector_challenge().encode();
        assert_eq!(
            hex(&encoded),
            "50414348000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\
             005e56eea10100002a00000000000000030000000800"
        );
        assert_eq!(Challenge::decode(&encoded).unwrap(), vector_challenge());
    }

    #[test]
    fn index_vector() {
        let indices = challenged_indices(&vector_challenge(), &HOSTER_ID, 1000);
        assert_eq!(indices, VECTOR_INDICES);
        // Independent recomputation of the first draw straight from BLAKE3.
        let mut input = vector_challenge().encode().to_vec();
        input.extend_from_slice(&HOSTER_ID);
        input.extend_from_slice(&1000u64.to_le_bytes());
        let mut word = [0u8; 8];
        blake3::Hasher::new_derive_key(INDEX_CONTEXT)
            .update(&input)
            .finalize_xof()
            .fill(&mut word);
        assert_eq!(u64::from_le_bytes(word) % 1000, indices[0]);
    }

    const VECTOR_INDICES: [u64; 8] = [972, 109, 487, 447, 765, 995, 717, 234];

    #[test]
    fn digest_vector() {
        let mut challenge = vector_challenge();
        challenge.samples = 2;
        let samples = [
            Sample {
                index: 5,
                chunk: vec![0x5A; CHUNK_BYTES],
                path: Vec::new(),
            },
            Sample {
                index: 999,
                chunk: b"tail".to_vec(),
                path: vec![[1; 32]],
            },
        ];
        assert_eq!(
            hex(&response_digest(&challenge, &HOSTER_ID, &samples)),
            "c80cc04cd9dc6ae3506913fd4ba035736b7ffc51d7a2da4007fbafb3c1f09df7"
        );
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn tree_matches_shard_root_and_rs_merkle_proofs() {
        for len in [1, CHUNK_BYTES, CHUNK_BYTES * 3 + 10, CHUNK_BYTES * 1000 - 1] {
            let s = setup(len);
            assert_eq!(s.tree.root(), shard_root(&s.bytes));
            let count = s.tree.chunk_count();
            for index in [0, count / 2, count - 1] {
                let path = s.tree.path(index).unwrap();
                let leaf = *blake3::hash(&reader(&s.bytes)(index).unwrap()).as_bytes();
                assert_eq!(
                    root_from_path(leaf, index, count, &path),
                    Some(s.tree.root())
                );
                let proof = rs_merkle::MerkleProof::<Blake3Hasher>::new(path.clone());
                assert!(proof.verify(s.tree.root(), &[index as usize], &[leaf], count as usize));
                let mut padded = path.clone();
                padded.push([0; 32]);
                assert_eq!(root_from_path(leaf, index, count, &padded), None);
            }
            assert_eq!(s.tree.path(count), None);
        }
    }

    #[test]
    fn honest_response_verifies_and_round_trips() {
        let s = setup(CHUNK_BYTES * 1000 - 300);
        for seed in 0..50 {
            let challenge = challenge_with(seed, 16);
            let response =
                respond(&challenge, &s.tree, reader(&s.bytes), &HOSTER_ID, &key()).unwrap();
            check(&s, &challenge, &response).unwrap();
            let decoded = Response::decode(&response.encode()).unwrap();
            assert_eq!(decoded, response);
            check(&s, &challenge, &decoded).unwrap();
        }
        // A one-chunk shard (short last chunk, empty path) and the largest sample count.
        let tiny = setup(10);
        let challenge = challenge_with(1, SAMPLES_MAX);
        let response = respond(
            &challenge,
            &tiny.tree,
            reader(&tiny.bytes),
            &HOSTER_ID,
            &key(),
        )
        .unwrap();
        check(&tiny, &challenge, &response).unwrap();
        assert!(response
            .samples
            .iter()
            .all(|s| s.index == 0 && s.path.is_empty()));
    }

    #[test]
    fn proof_bytes_per_sample_within_budget() {
        // 16 MiB shard: 16 Ki chunks, 14-level paths → 1,024 + 14 × 32 = 1,472 bytes (+ 11 framing).
        let s = setup(16 << 20);
        let challenge = challenge_with(3, 8);
        let response = respond(&challenge, &s.tree, reader(&s.bytes), &HOSTER_ID, &key()).unwrap();
        let per_sample = (response.encode().len() - RESPONSE_FIXED_BYTES) / 8;
        assert_eq!(per_sample, SAMPLE_HEADER_BYTES + CHUNK_BYTES + 14 * 32);
        assert!(per_sample <= 2048);
    }

    #[test]
    fn lossy_hoster_fails_at_predicted_rate() {
        const ROUNDS: u64 = 2_000;
        const SAMPLES: u16 = 8;
        let s = setup(CHUNK_BYTES * 1000);
        // Exactly 10 % of chunks lost: half unreadable, half silently corrupted.
        let lossy = |i: u64| {
            if i % 10 != 3 {
                return reader(&s.bytes)(i);
            }
            if i % 20 == 3 {
                return None;
            }
            let mut chunk = reader(&s.bytes)(i)?;
            chunk[17] ^= 0x01;
            Some(chunk)
        };
        let mut failures = 0u64;
        for seed in 0..ROUNDS {
            let challenge = challenge_with(seed, SAMPLES);
            let outcome = respond(&challenge, &s.tree, lossy, &HOSTER_ID, &key())
                .and_then(|response| check(&s, &challenge, &response));
            if outcome.is_err() {
                failures += 1;
            }
        }
        let p = 1.0 - 0.9f64.powi(i32::from(SAMPLES));
        let sigma = (p * (1.0 - p) / ROUNDS as f64).sqrt();
        let observed = failures as f64 / ROUNDS as f64;
        println!("lossy hoster: observed failure rate {observed}, predicted {p}");
        assert!(
            (observed - p).abs() <= 4.0 * sigma,
            "observed {observed}, predicted {p} ± {}",
            4.0 * sigma
        );
    }

    #[test]
    fn replayed_response_fails() {
        let s = setup(CHUNK_BYTES * 300);
        let old = challenge_with(1, 8);
        let response = respond(&old, &s.tree, reader(&s.bytes), &HOSTER_ID, &key()).unwrap();
        let new = challenge_with(2, 8);
        assert_eq!(check(&s, &new, &response), Err(ChallengeError::WrongNonce));
        // Rewriting the embedded challenge does not help: indices and digest no longer match.
        let mut rewritten = response.clone();
        rewritten.challenge = new;
        assert!(matches!(
            check(&s, &new, &rewritten),
            Err(ChallengeError::IndexMismatch { .. } | ChallengeError::DigestMismatch)
        ));
        let mut other = old;
        other.segment += 1;
        assert_eq!(
            check(&s, &other, &response),
            Err(ChallengeError::ChallengeMismatch { field: "segment" })
        );
    }

    #[test]
    fn bit_flipped_chunk_fails() {
        let s = setup(CHUNK_BYTES * 300);
        let challenge = challenge_with(4, 8);
        let mut response =
            respond(&challenge, &s.tree, reader(&s.bytes), &HOSTER_ID, &key()).unwrap();
        let index = response.samples[3].index;
        response.samples[3].chunk[100] ^= 0x40;
        assert_eq!(
            check(&s, &challenge, &response),
            Err(ChallengeError::ChunkNotInTree { index })
        );
    }

    #[test]
    fn every_flipped_response_byte_fails() {
        let s = setup(CHUNK_BYTES * 40 + 7);
        let challenge = challenge_with(5, 4);
        let response = respond(&challenge, &s.tree, reader(&s.bytes), &HOSTER_ID, &key()).unwrap();
        let encoded = response.encode();
        for position in 0..encoded.len() {
            let mut bytes = encoded.clone();
            bytes[position] ^= 1 << (position % 8);
            if let Ok(decoded) = Response::decode(&bytes) {
                assert!(check(&s, &challenge, &decoded).is_err(), "byte {position}");
            }
        }
    }

    #[test]
    fn late_response_fails() {
        let s = setup(CHUNK_BYTES * 10);
        let challenge = challenge_with(6, 8);
        let response = respond(&challenge, &s.tree, reader(&s.bytes), &HOSTER_ID, &key()).unwrap();
        let outcome = verify(
            &challenge,
            &response,
            &key().verifying_key(),
            &HOSTER_ID,
            s.tree.root(),
            s.bytes.len() as u64,
            DEADLINE_MS + 1,
            DEADLINE_MS,
        );
        assert_eq!(
            outcome,
            Err(ChallengeError::Late {
                elapsed_ms: DEADLINE_MS + 1,
                deadline_ms: DEADLINE_MS
            })
        );
    }

    #[test]
    fn wrong_key_or_hoster_fails() {
        let s = setup(CHUNK_BYTES * 10);
        let challenge = challenge_with(7, 8);
        let response = respond(&challenge, &s.tree, reader(&s.bytes), &HOSTER_ID, &key()).unwrap();
        let other_key = SigningKey::from_bytes(&[8u8; 32]).verifying_key();
        let outcome = verify(
            &challenge,
            &response,
            &other_key,
            &HOSTER_ID,
            s.tree.root(),
            s.bytes.len() as u64,
            0,
            DEADLINE_MS,
        );
        assert_eq!(outcome, Err(ChallengeError::BadSignature));
        let outcome = verify(
            &challenge,
            &response,
            &key().verifying_key(),
            &[0xCD; 32],
            s.tree.root(),
            s.bytes.len() as u64,
            0,
            DEADLINE_MS,
        );
        assert_eq!(outcome, Err(ChallengeError::WrongHoster));
    }

    #[test]
    fn malformed_challenge_bytes_give_errors() {
        let encoded = vector_challenge().encode();
        for len in 0..CHALLENGE_BYTES {
            assert!(matches!(
                Challenge::decode(&encoded[..len]),
                Err(ChallengeError::Malformed {
                    what: "challenge",
                    ..
                })
            ));
        }
        let mut long = encoded.to_vec();
        long.push(0);
        assert!(Challenge::decode(&long).is_err());
        let mut bad_magic = encoded;
        bad_magic[0] = b'X';
        assert!(Challenge::decode(&bad_magic).is_err());
        for samples in [0, SAMPLES_MAX + 1, u16::MAX] {
            let mut c = vector_challenge();
            c.samples = samples;
            assert!(matches!(
                Challenge::decode(&c.encode()),
                Err(ChallengeError::Malformed {
                    what: "challenge samples",
                    ..
                })
            ));
        }
    }

    #[test]
    fn malformed_response_bytes_give_errors() {
        let s = setup(CHUNK_BYTES * 100 + 1);
        let challenge = challenge_with(8, 8);
        let response = respond(&challenge, &s.tree, reader(&s.bytes), &HOSTER_ID, &key()).unwrap();
        let encoded = response.encode();
        for len in 0..encoded.len() {
            assert!(Response::decode(&encoded[..len]).is_err(), "prefix {len}");
        }
        let mut trailing = encoded.clone();
        trailing.push(0);
        assert!(matches!(
            Response::decode(&trailing),
            Err(ChallengeError::Malformed {
                what: "response",
                ..
            })
        ));
        let oversized = vec![0u8; RESPONSE_BYTES_MAX + 1];
        assert_eq!(
            Response::decode(&oversized),
            Err(ChallengeError::TooLarge {
                bytes: RESPONSE_BYTES_MAX + 1,
                max: RESPONSE_BYTES_MAX
            })
        );
        // Count disagreeing with the embedded challenge.
        let mut fewer = response.clone();
        fewer.samples.pop();
        assert!(matches!(
            Response::decode(&fewer.encode()),
            Err(ChallengeError::Malformed {
                what: "response sample count",
                ..
            })
        ));
        assert_eq!(
            check(&s, &challenge, &fewer),
            Err(ChallengeError::SampleCount {
                expected: 8,
                got: 7
            })
        );
        // Oversized chunk and path lengths.
        let mut big_chunk = response.clone();
        big_chunk.samples[0].chunk = vec![0; CHUNK_BYTES + 1];
        assert!(matches!(
            Response::decode(&big_chunk.encode()),
            Err(ChallengeError::Malformed {
                what: "sample chunk length",
                ..
            })
        ));
        let mut long_path = response.clone();
        long_path.samples[0].path = vec![[0; 32]; PATH_HASHES_MAX + 1];
        assert!(matches!(
            Response::decode(&long_path.encode()),
            Err(ChallengeError::Malformed {
                what: "sample path length",
                ..
            })
        ));
        // Garbage of every small length never panics.
        for len in 0..300 {
            let garbage: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            assert!(Response::decode(&garbage).is_err());
        }
    }

    #[test]
    fn respond_refuses_what_it_cannot_answer() {
        let empty = ShardTree::from_leaves(Vec::new());
        let challenge = challenge_with(9, 8);
        assert_eq!(
            respond(&challenge, &empty, |_| None, &HOSTER_ID, &key()),
            Err(ChallengeError::EmptyShard)
        );
        assert!(challenged_indices(&challenge, &HOSTER_ID, 0).is_empty());
        let s = setup(CHUNK_BYTES * 10);
        assert!(matches!(
            respond(&challenge, &s.tree, |_| None, &HOSTER_ID, &key()),
            Err(ChallengeError::ChunkUnavailable { .. })
        ));
        let mut zero = challenge;
        zero.samples = 0;
        assert!(respond(&zero, &s.tree, reader(&s.bytes), &HOSTER_ID, &key()).is_err());
    }

    #[test]
    fn indices_are_in_range_and_depend_on_every_input() {
        let base = challenged_indices(&vector_challenge(), &HOSTER_ID, 1000);
        for count in [1, 2, 3, 1000, 1 << 20, CHUNK_COUNT_MAX] {
            let indices = challenged_indices(&vector_challenge(), &HOSTER_ID, count);
            assert_eq!(indices.len(), 8);
            assert!(indices.iter().all(|&i| i < count));
        }
        assert_ne!(
            challenged_indices(&vector_challenge(), &[0; 32], 1000),
            base
        );
        let mut c = vector_challenge();
        c.timestamp_ms += 1;
        assert_ne!(challenged_indices(&c, &HOSTER_ID, 1000), base);
        let mut c = vector_challenge();
        c.shard += 1;
        assert_ne!(challenged_indices(&c, &HOSTER_ID, 1000), base);
    }
}
