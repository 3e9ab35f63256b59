//! Storage proofs for archive shards: the Merkle tree over a shard's fixed-size chunks (whose root the
//! manifest records) and, in a later issue, nonce-bound challenges that a hoster answers with sampled
//! chunks and their paths to that root.
//!
//! The library does no I/O: bytes and roots in, roots and verdicts out. The challenge protocol itself
//! (`specs/challenge.md`) is not implemented yet; nothing here pretends to answer a challenge.

pub mod merkle;

pub use merkle::{merkle_root, shard_root, Blake3Hasher, ChunkTreeBuilder, Hash32, CHUNK_BYTES};
