//! A deterministic, seeded synthetic Substrate PoA chain for demos, tests and benchmarks.
//!
//! The blocks have the shape of an Aura + GRANDPA chain: hash-linked headers whose hash is
//! BLAKE2b-256 of the SCALE header, an Aura `PreRuntime` slot and `Seal` in the digest, a
//! timestamp-like first extrinsic, then random "signed" extrinsics of incompressible bytes, and a
//! GRANDPA (`FRNK`) justification every [`JUSTIFICATION_PERIOD`] blocks.
//!
//! Two properties the rest of the project relies on:
//! - **Determinism.** For a given marker, block N is a pure function of `(seed, N, parent_hash)`:
//!   its random bytes come from an RNG seeded by `(seed, N)` only, so a generator rebuilt with
//!   [`SyntheticChain::resume`] after a crash produces the very same blocks.
//! - **A marker in every block.** The caller's marker bytes are copied into one extrinsic of
//!   every block, so tests can search hosters' disks for it and prove no plaintext leaked.
//!
//! Numbering: the chain starts at the genesis block, number 0, whose parent hash is all zeroes
//! (as in Substrate). Unlike a real genesis block it has a body (with the marker) like every
//! other block, so "the marker is in every block" has no exception.

use parity_scale_codec::{Compact, Encode};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::substrate::{
    blake2_256, extrinsics_root_of_encoded, Commit, Digest, DigestItem, GrandpaJustification, Hash,
    Header, Justifications, Precommit, SignedPrecommit, AURA_ENGINE_ID, GRANDPA_ENGINE_ID,
};

/// Number of the first block [`SyntheticChain::new`] produces: the genesis block, as in Substrate.
pub const GENESIS_NUMBER: u64 = 0;

/// Parent hash of the genesis block (Substrate's convention: all zeroes).
pub const GENESIS_PARENT_HASH: Hash = [0; 32];

/// Aura slot length in milliseconds; 6 s is the common Substrate PoA setting (TFChain uses it).
pub const SLOT_DURATION_MS: u64 = 6_000;

/// Aura slot of the genesis block: about mid-2023 in 6 s slots, so timestamps look real.
pub const GENESIS_SLOT: u64 = 281_000_000;

/// Every this many blocks the chain skips one slot, standing in for an authority that was
/// offline: real PoA slot numbers are not contiguous, and consumers must not assume they are.
pub const MISSED_SLOT_PERIOD: u64 = 50;

/// A `FRNK` justification is attached to every block whose number is a multiple of this (except
/// genesis, which GRANDPA never justifies). Real chains keep one every 512 blocks (TFChain);
/// a short period makes small test chains exercise justifications too.
pub const JUSTIFICATION_PERIOD: u64 = 8;

/// Number of GRANDPA voters signing each justification: a small PoA authority set.
pub const GRANDPA_AUTHORITIES: usize = 4;

/// Fewest random extrinsics after the timestamp one.
pub const MIN_RANDOM_EXTRINSICS: usize = 2;

/// Most random extrinsics after the timestamp one. With [`MIN_RANDOM_EXTRINSICS`] this averages
/// 9.5 extrinsics of ~2.1 KiB, i.e. blocks of about 20 KiB, a busy but ordinary PoA block.
pub const MAX_RANDOM_EXTRINSICS: usize = 17;

/// Smallest random extrinsic, about a plain balance transfer with its signature.
pub const MIN_EXTRINSIC_LEN: usize = 100;

/// Largest random extrinsic (batches, contract calls), before the marker may enlarge one.
pub const MAX_EXTRINSIC_LEN: usize = 4_096;

/// Length of an Aura seal: an sr25519/ed25519 signature is 64 bytes.
const SIGNATURE_LEN: usize = 64;

/// First byte of a signed version-4 extrinsic (`0b1000_0000 | 4`), so random extrinsics start
/// like real signed ones.
const SIGNED_EXTRINSIC_V4: u8 = 0x84;

/// First bytes of the timestamp inherent: unsigned v4 extrinsic (`0x04`), then the reference
/// runtime's Timestamp pallet index and `set`'s call index; the `Compact<u64>` moment in
/// milliseconds follows, so the inherent decodes as the runtime's own.
const TIMESTAMP_CALL_PREFIX: [u8; 3] = [0x04, crate::runtime::types::TIMESTAMP_PALLET_INDEX, 0x00];

/// Domain separator for per-block RNG seeds, so they cannot collide with other uses of the seed.
const BLOCK_SEED_DOMAIN: &[u8] = b"node-plugin/synthetic/block/v1";

/// Domain separator for the GRANDPA authority ids derived from the seed.
const AUTHORITY_DOMAIN: &[u8] = b"node-plugin/synthetic/authority/v1";

/// One generated block, with what a follower would learn about it from a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticBlock {
    /// Block number (the header's `Compact<u32>` number, widened).
    pub number: u64,
    /// BLAKE2b-256 of the SCALE-encoded header.
    pub hash: Hash,
    /// The parent's hash (the header's `parent_hash`).
    pub parent_hash: Hash,
    /// SCALE-encoded [`crate::substrate::Block`].
    pub block: Vec<u8>,
    /// SCALE-encoded [`Justifications`] with one `FRNK` entry, on every
    /// [`JUSTIFICATION_PERIOD`]th block; `None` on the others.
    pub justification: Option<Vec<u8>>,
}

/// A generator of a deterministic synthetic chain; see the module documentation.
#[derive(Clone, Debug)]
pub struct SyntheticChain {
    seed: u64,
    marker: Vec<u8>,
    next_number: u64,
    parent_hash: Hash,
    /// GRANDPA voter public keys: fixed for the chain, derived from the seed.
    authorities: [[u8; 32]; GRANDPA_AUTHORITIES],
}

impl SyntheticChain {
    /// A chain starting at the genesis block (number [`GENESIS_NUMBER`], parent all zeroes).
    pub fn new(seed: u64, marker: &[u8]) -> Self {
        Self::resume(seed, marker, GENESIS_NUMBER, GENESIS_PARENT_HASH)
    }

    /// Continues a chain after a restart: the next block is `next_number` with parent
    /// `parent_hash` (the hash of the last block kept). With the same seed and marker, the
    /// blocks are identical to those the original generator produced.
    pub fn resume(seed: u64, marker: &[u8], next_number: u64, parent_hash: Hash) -> Self {
        let authorities = std::array::from_fn(|i| {
            let mut input = Vec::with_capacity(AUTHORITY_DOMAIN.len() + 16);
            input.extend_from_slice(AUTHORITY_DOMAIN);
            input.extend_from_slice(&seed.to_le_bytes());
            input.extend_from_slice(&(i as u64).to_le_bytes());
            blake2_256(&input)
        });
        Self {
            seed,
            marker: marker.to_vec(),
            next_number,
            parent_hash,
            authorities,
        }
    }

    /// Number of the block the next call to [`Self::next_block`] produces.
    pub fn next_number(&self) -> u64 {
        self.next_number
    }

    /// Hash of the last block produced (or the parent given to [`Self::resume`]).
    pub fn parent_hash(&self) -> Hash {
        self.parent_hash
    }

    /// Produces the next block and advances the chain.
    ///
    /// # Panics
    /// If the block number no longer fits Substrate's `u32` block numbers (after 4.29 billion
    /// blocks, about 80 TiB of synthetic data; a caller asking for that has a bug).
    pub fn next_block(&mut self) -> SyntheticBlock {
        let number = self.next_number;
        let header_number =
            u32::try_from(number).expect("synthetic block number exceeds Substrate's u32 range");
        let mut rng = StdRng::from_seed(block_seed(self.seed, number));

        let slot = GENESIS_SLOT + number + number / MISSED_SLOT_PERIOD;
        // Build the body directly as the SCALE encoding of `Vec<Vec<u8>>`: it is both the block's
        // tail and the input of the extrinsics root, so it is written and hashed once, not
        // encoded into per-extrinsic vectors and copied again.
        let random_count = rng.gen_range(MIN_RANDOM_EXTRINSICS..=MAX_RANDOM_EXTRINSICS);
        let marker_at = rng.gen_range(0..random_count);
        let lens: Vec<usize> = (0..random_count)
            .map(|i| {
                let len = rng.gen_range(MIN_EXTRINSIC_LEN..=MAX_EXTRINSIC_LEN);
                if i == marker_at {
                    // Room for the v4 byte and the whole marker, however long it is.
                    len.max(self.marker.len() + 1)
                } else {
                    len
                }
            })
            .collect();
        let body_capacity = 64 + lens.iter().map(|len| len + 5).sum::<usize>();
        let mut body = Vec::with_capacity(body_capacity);
        compact_len(random_count + 1).encode_to(&mut body);

        let mut timestamp = TIMESTAMP_CALL_PREFIX.to_vec();
        Compact(slot * SLOT_DURATION_MS).encode_to(&mut timestamp);
        timestamp.encode_to(&mut body);

        for (i, &len) in lens.iter().enumerate() {
            compact_len(len).encode_to(&mut body);
            let start = body.len();
            body.resize(start + len, 0);
            let extrinsic = &mut body[start..];
            extrinsic[0] = SIGNED_EXTRINSIC_V4;
            rng.fill_bytes(&mut extrinsic[1..]);
            if i == marker_at && !self.marker.is_empty() {
                let offset = rng.gen_range(1..=len - self.marker.len());
                extrinsic[offset..offset + self.marker.len()].copy_from_slice(&self.marker);
            }
        }

        let mut seal = vec![0u8; SIGNATURE_LEN];
        rng.fill_bytes(&mut seal);
        let mut state_root = [0u8; 32];
        rng.fill_bytes(&mut state_root);
        let header = Header {
            parent_hash: self.parent_hash,
            number: header_number,
            state_root,
            extrinsics_root: extrinsics_root_of_encoded(&body),
            digest: Digest {
                logs: vec![
                    DigestItem::PreRuntime(AURA_ENGINE_ID, slot.to_le_bytes().to_vec()),
                    DigestItem::Seal(AURA_ENGINE_ID, seal),
                ],
            },
        };
        let mut block = header.encode();
        let hash = blake2_256(&block);
        block.extend_from_slice(&body);

        let justification = (number != GENESIS_NUMBER
            && number.is_multiple_of(JUSTIFICATION_PERIOD))
        .then(|| self.justification(&mut rng, number, header_number, hash));

        let produced = SyntheticBlock {
            number,
            hash,
            parent_hash: self.parent_hash,
            block,
            justification,
        };
        self.parent_hash = hash;
        self.next_number += 1;
        produced
    }

    /// A SCALE `Justifications` holding one GRANDPA justification in which every authority
    /// precommits to this block (random bytes stand in for the Ed25519 signatures).
    fn justification(
        &self,
        rng: &mut StdRng,
        number: u64,
        target_number: u32,
        hash: Hash,
    ) -> Vec<u8> {
        let precommits = self
            .authorities
            .iter()
            .map(|id| {
                let mut signature = [0u8; SIGNATURE_LEN];
                rng.fill_bytes(&mut signature);
                SignedPrecommit {
                    precommit: Precommit {
                        target_hash: hash,
                        target_number,
                    },
                    signature,
                    id: *id,
                }
            })
            .collect();
        let grandpa = GrandpaJustification {
            // GRANDPA runs about one round per block on a healthy chain.
            round: number,
            commit: Commit {
                target_hash: hash,
                target_number,
                precommits,
            },
            votes_ancestries: Vec::new(),
        };
        Justifications(vec![(GRANDPA_ENGINE_ID, grandpa.encode())]).encode()
    }
}

/// An endless stream of blocks: `chain.take(n)` generates `n` blocks.
impl Iterator for SyntheticChain {
    type Item = SyntheticBlock;

    fn next(&mut self) -> Option<SyntheticBlock> {
        Some(self.next_block())
    }
}

/// The 32-byte RNG seed of block `number`: it depends on nothing else, which is what makes
/// generation resumable.
fn block_seed(seed: u64, number: u64) -> [u8; 32] {
    let mut input = [0u8; BLOCK_SEED_DOMAIN.len() + 16];
    input[..BLOCK_SEED_DOMAIN.len()].copy_from_slice(BLOCK_SEED_DOMAIN);
    input[BLOCK_SEED_DOMAIN.len()..BLOCK_SEED_DOMAIN.len() + 8]
        .copy_from_slice(&seed.to_le_bytes());
    input[BLOCK_SEED_DOMAIN.len() + 8..].copy_from_slice(&number.to_le_bytes());
    blake2_256(&input)
}

/// SCALE length prefix for a collection of `len` items or bytes.
fn compact_len(len: usize) -> Compact<u32> {
    // Lengths here are bounded by a block's size (a few KiB, or the caller's marker), far
    // below u32::MAX; saturating keeps this total without a panic path.
    Compact(u32::try_from(len).unwrap_or(u32::MAX))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::substrate::{extrinsics_root, Block, ChainFormatError, GrandpaJustification};

    const MARKER: &[u8] = b"SYNTHETIC-PLAINTEXT-MARKER-7f3a";

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn blocks_decode_and_hashes_link() {
        let mut chain = SyntheticChain::new(1, MARKER);
        let mut parent = GENESIS_PARENT_HASH;
        let mut last_slot = None;
        for (expected_number, produced) in (0u64..40).zip(chain.by_ref()) {
            assert_eq!(produced.number, expected_number);
            assert_eq!(produced.parent_hash, parent);
            let block = Block::from_bytes(&produced.block).unwrap();
            assert_eq!(u64::from(block.header.number), expected_number);
            assert_eq!(block.header.parent_hash, parent);
            // The hash field is BLAKE2b-256 of the header bytes as found in `block`.
            let header_len = block.header.encode().len();
            assert_eq!(produced.hash, blake2_256(&produced.block[..header_len]));
            assert_eq!(produced.hash, block.hash());
            block.check_extrinsics_root().unwrap();
            assert_eq!(
                block.header.extrinsics_root,
                extrinsics_root(&block.extrinsics)
            );
            // Aura: slots strictly increase; the timestamp inherent comes first.
            let slot = block.header.digest.aura_slot().unwrap();
            assert!(last_slot.is_none_or(|last| slot > last));
            last_slot = Some(slot);
            assert!(block.extrinsics[0].starts_with(&TIMESTAMP_CALL_PREFIX));
            let inherent =
                crate::runtime::UncheckedExtrinsic::from_bytes(&block.extrinsics[0]).unwrap();
            assert!(matches!(
                inherent.function,
                crate::runtime::RuntimeCall::Timestamp(_)
            ));
            assert!(block.extrinsics.len() > MIN_RANDOM_EXTRINSICS);
            assert!(matches!(
                block.header.digest.logs.last(),
                Some(DigestItem::Seal(AURA_ENGINE_ID, seal)) if seal.len() == SIGNATURE_LEN
            ));
            parent = produced.hash;
        }
        assert_eq!(chain.next_number(), 40);
        assert_eq!(chain.parent_hash(), parent);
    }

    #[test]
    fn justifications_every_period_target_the_block() {
        for produced in SyntheticChain::new(2, MARKER).take(33) {
            let expected =
                produced.number != 0 && produced.number.is_multiple_of(JUSTIFICATION_PERIOD);
            assert_eq!(
                produced.justification.is_some(),
                expected,
                "block {}",
                produced.number
            );
            if let Some(bytes) = produced.justification {
                let justifications = Justifications::from_bytes(&bytes).unwrap();
                let grandpa = GrandpaJustification::from_bytes(
                    justifications.get(GRANDPA_ENGINE_ID).unwrap(),
                )
                .unwrap();
                assert_eq!(grandpa.commit.target_hash, produced.hash);
                assert_eq!(u64::from(grandpa.commit.target_number), produced.number);
                assert_eq!(grandpa.commit.precommits.len(), GRANDPA_AUTHORITIES);
            }
        }
    }

    #[test]
    fn same_seed_same_chain_other_seed_other_chain() {
        let a: Vec<_> = SyntheticChain::new(42, MARKER).take(20).collect();
        let b: Vec<_> = SyntheticChain::new(42, MARKER).take(20).collect();
        let c: Vec<_> = SyntheticChain::new(43, MARKER).take(20).collect();
        assert_eq!(a, b);
        assert!(a.iter().zip(&c).all(|(x, y)| x.block != y.block));
    }

    #[test]
    fn resume_reproduces_the_chain() {
        let original: Vec<_> = SyntheticChain::new(7, MARKER).take(30).collect();
        let resumed: Vec<_> = SyntheticChain::resume(7, MARKER, 17, original[16].hash)
            .take(13)
            .collect();
        assert_eq!(&original[17..], &resumed[..]);
    }

    #[test]
    fn marker_in_every_block() {
        for produced in SyntheticChain::new(3, MARKER).take(200) {
            assert!(
                contains(&produced.block, MARKER),
                "block {}",
                produced.number
            );
        }
        // A marker longer than any random extrinsic still fits, whole.
        let long_marker = vec![b'M'; MAX_EXTRINSIC_LEN + 10];
        for produced in SyntheticChain::new(4, &long_marker).take(5) {
            assert!(contains(&produced.block, &long_marker));
            Block::from_bytes(&produced.block).unwrap();
        }
        // An empty marker is allowed (nothing to find).
        Block::from_bytes(&SyntheticChain::new(5, b"").next_block().block).unwrap();
    }

    #[test]
    fn average_block_is_about_20_kib() {
        const BLOCKS: usize = 400;
        let total: usize = SyntheticChain::new(9, MARKER)
            .take(BLOCKS)
            .map(|b| b.block.len())
            .sum();
        let average = total / BLOCKS;
        assert!(
            (17 * 1024..=23 * 1024).contains(&average),
            "average {average} B"
        );
    }

    #[test]
    fn every_truncation_and_corruption_is_an_error_not_a_panic() {
        let produced = SyntheticChain::new(11, MARKER).nth(8).unwrap();
        let bytes = &produced.block;
        for len in 0..bytes.len() {
            assert!(matches!(
                Block::from_bytes(&bytes[..len]),
                Err(ChainFormatError::Decode { what: "block", .. })
            ));
        }
        let justification = produced.justification.unwrap();
        for len in 0..justification.len() {
            assert!(Justifications::from_bytes(&justification[..len]).is_err());
        }
        let mut extended = bytes.clone();
        extended.push(0);
        assert!(matches!(
            Block::from_bytes(&extended),
            Err(ChainFormatError::TrailingBytes {
                what: "block",
                extra: 1
            })
        ));
        // Flipping bytes may still decode, but must never panic.
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..2_000 {
            let mut corrupt = bytes.clone();
            let at = rng.gen_range(0..corrupt.len());
            corrupt[at] ^= rng.gen_range(1..=u8::MAX);
            let _ = Block::from_bytes(&corrupt);
        }
    }
}
