//! Merkle roots over shard chunks and over lists of hashes (rs_merkle with a BLAKE3 hasher).
//!
//! One tree serves two purposes: its root is the shard's checksum (verified on every read) and it is
//! what storage challenges prove against, so every shard byte is hashed exactly once.

use rs_merkle::{Hasher, MerkleTree};

/// A 32-byte BLAKE3 digest.
pub type Hash32 = [u8; 32];

/// Bytes per Merkle leaf of a shard. Small enough that one challenged sample (the chunk plus a path of
/// log2(chunks) × 32 bytes) stays under 2 KiB, large enough that a 16 MiB shard has only 16 Ki leaves,
/// so building its tree costs little next to hashing its bytes.
pub const CHUNK_BYTES: usize = 1024;

/// rs_merkle hasher: leaves and inner nodes are plain BLAKE3; a lone node is promoted unchanged.
#[derive(Clone, Debug)]
pub struct Blake3Hasher;

impl Hasher for Blake3Hasher {
    type Hash = Hash32;

    fn hash(data: &[u8]) -> Hash32 {
        *blake3::hash(data).as_bytes()
    }
}

/// Root over already-hashed leaves (e.g. a segment's block hashes). The empty list has root `[0; 32]`.
pub fn merkle_root(leaves: &[Hash32]) -> Hash32 {
    if leaves.is_empty() {
        return [0; 32];
    }
    MerkleTree::<Blake3Hasher>::from_leaves(leaves)
        .root()
        .unwrap_or([0; 32])
}

/// Merkle path proving `leaves[index]` under [`merkle_root`]`(leaves)` (rs_merkle proof hashes,
/// bottom-up). Empty when `index` is out of range.
pub fn inclusion_proof(leaves: &[Hash32], index: usize) -> Vec<Hash32> {
    if index >= leaves.len() {
        return Vec::new();
    }
    MerkleTree::<Blake3Hasher>::from_leaves(leaves)
        .proof(&[index])
        .proof_hashes()
        .to_vec()
}

/// Checks an [`inclusion_proof`]: `leaf` is entry `index` of a list of `leaves_len` hashes whose
/// root is `root`.
pub fn verify_inclusion(
    root: &Hash32,
    leaf: &Hash32,
    index: usize,
    leaves_len: usize,
    proof: &[Hash32],
) -> bool {
    index < leaves_len
        && rs_merkle::MerkleProof::<Blake3Hasher>::new(proof.to_vec()).verify(
            *root,
            &[index],
            &[*leaf],
            leaves_len,
        )
}

/// Root of a whole shard held in memory. Same value as feeding it through [`ChunkTreeBuilder`].
pub fn shard_root(bytes: &[u8]) -> Hash32 {
    let mut builder = ChunkTreeBuilder::new();
    builder.update(bytes);
    builder.finish()
}

/// Incremental shard tree: feed the shard's bytes in any pieces, get the root of its chunk tree.
///
/// Leaves are `BLAKE3(chunk)` of consecutive `CHUNK_BYTES` chunks; a final short chunk is hashed as
/// it is. An empty shard has root `[0; 32]`.
#[derive(Debug, Default)]
pub struct ChunkTreeBuilder {
    leaves: Vec<Hash32>,
    partial: Vec<u8>,
}

impl ChunkTreeBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Pre-sizes the leaf list for a shard of `shard_bytes` bytes.
    pub fn with_capacity(shard_bytes: usize) -> Self {
        Self {
            leaves: Vec::with_capacity(shard_bytes.div_ceil(CHUNK_BYTES)),
            partial: Vec::new(),
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        if !self.partial.is_empty() {
            let take = (CHUNK_BYTES - self.partial.len()).min(data.len());
            self.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.partial.len() == CHUNK_BYTES {
                self.leaves.push(Blake3Hasher::hash(&self.partial));
                self.partial.clear();
            }
        }
        let mut chunks = data.chunks_exact(CHUNK_BYTES);
        for chunk in &mut chunks {
            self.leaves.push(Blake3Hasher::hash(chunk));
        }
        self.partial.extend_from_slice(chunks.remainder());
    }

    /// Number of leaves so far (a trailing partial chunk not included).
    pub fn leaves_len(&self) -> usize {
        self.leaves.len()
    }

    /// The leaf hashes, for keeping a tree to answer challenges from.
    pub fn finish_leaves(mut self) -> Vec<Hash32> {
        if !self.partial.is_empty() {
            self.leaves.push(Blake3Hasher::hash(&self.partial));
        }
        self.leaves
    }

    pub fn finish(self) -> Hash32 {
        merkle_root(&self.finish_leaves())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn inclusion_proofs_verify_and_reject_other_leaves() {
        let leaves: Vec<Hash32> = (0..37u8).map(|i| [i; 32]).collect();
        let root = merkle_root(&leaves);
        for i in [0usize, 1, 17, 36] {
            let proof = inclusion_proof(&leaves, i);
            assert!(verify_inclusion(&root, &leaves[i], i, leaves.len(), &proof));
            assert!(!verify_inclusion(&root, &[99; 32], i, leaves.len(), &proof));
            // The same leaf claimed at another position fails.
            let other = if i == 0 { 1 } else { i - 1 };
            assert!(!verify_inclusion(
                &root,
                &leaves[i],
                other,
                leaves.len(),
                &proof
            ));
        }
        assert!(inclusion_proof(&leaves, 37).is_empty());
    }

    #[test]
    fn incremental_equals_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = shard_root(&data);
        let mut builder = ChunkTreeBuilder::new();
        for piece in data.chunks(333) {
            builder.update(piece);
        }
        assert_eq!(builder.finish(), whole);
        assert_ne!(whole, shard_root(&data[..9_999]));
    }

    #[test]
    fn tree_root_matches_hand_computation() {
        // Three chunks: root = H(H(H(c0) || H(c1)) || H(c2)) since the lone third node is promoted.
        let data = vec![1u8; CHUNK_BYTES * 2 + 10];
        let l0 = *blake3::hash(&data[..CHUNK_BYTES]).as_bytes();
        let l1 = *blake3::hash(&data[CHUNK_BYTES..2 * CHUNK_BYTES]).as_bytes();
        let l2 = *blake3::hash(&data[2 * CHUNK_BYTES..]).as_bytes();
        let n01 = *blake3::hash(&[l0, l1].concat()).as_bytes();
        let root = *blake3::hash(&[n01, l2].concat()).as_bytes();
        assert_eq!(shard_root(&data), root);
    }

    #[test]
    fn empty_root_is_zero() {
        assert_eq!(shard_root(&[]), [0; 32]);
        assert_eq!(merkle_root(&[]), [0; 32]);
        let one = [5u8; 32];
        assert_eq!(merkle_root(&[one]), one);
    }

    #[test]
    fn flipped_bit_changes_root() {
        let mut data = vec![9u8; CHUNK_BYTES * 20];
        let before = shard_root(&data);
        data[CHUNK_BYTES * 13 + 5] ^= 0x10;
        assert_ne!(shard_root(&data), before);
    }
}
