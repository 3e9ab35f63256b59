//! Storage proofs for archive shards: the Merkle tree over a shard's fixed-size chunks (whose root the
//! manifest records) and nonce-bound challenges that a hoster answers with sampled chunks, their paths
//! to that root and an ed25519 signature (`specs/challenge.md`).
//!
//! The library does no I/O: bytes and roots in, roots and verdicts out. Callers read chunks and keep
//! the clocks.

pub mod challenge;
pub mod merkle;

pub use challenge::{
    challenged_indices, respond, response_digest, verify, Challenge, ChallengeError, Response,
    Sample, ShardTree, CHALLENGE_BYTES, RESPONSE_BYTES_MAX, SAMPLES_MAX,
};
pub use merkle::{merkle_root, shard_root, Blake3Hasher, ChunkTreeBuilder, Hash32, CHUNK_BYTES};
