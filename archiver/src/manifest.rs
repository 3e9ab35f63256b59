//! Manifests (the immutable, hash-chained description of a dispersed segment), placement records
//! (where each shard lives now; changes on repair) and their encrypted replicas on the hosters.
//! Byte layouts: specs/manifest.md.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};

use crate::config::HOSTER_NAME_BYTES_MAX;
use crate::error::{ArchiveError, Result};
use crate::keys::MasterKey;
use crate::record::{hash_at, u16_at, u32_at, u64_at};

pub const MANIFEST_MAGIC: [u8; 4] = *b"PAMF";
/// 2: segment keys and shard names bind every encoding parameter (`keys::EncodingParams`).
pub const MANIFEST_VERSION: u16 = 2;
/// The fixed part; the shard roots (32 · n) and the part hashes (32 · n · parts per shard) follow.
pub const MANIFEST_FIXED_BYTES: usize = 240;
/// Parts per shard a manifest may describe: hosters name parts with a u16 index.
pub const PARTS_PER_SHARD_MAX: u64 = 1 << 16;
pub const PLACEMENT_MAGIC: [u8; 4] = *b"PAPL";
/// 2: a storage-key version per shard follows the hoster names.
pub const PLACEMENT_VERSION: u16 = 2;
pub const PLACEMENT_FIXED_BYTES: usize = 24;
/// An encrypted manifest record on the hosters.
pub const METADATA_MAGIC: [u8; 4] = *b"PAMR";
/// An encrypted placement record (one per generation).
pub const PLACEMENT_RECORD_MAGIC: [u8; 4] = *b"PAPR";
pub const HEAD_MAGIC: [u8; 4] = *b"PAHD";
/// 2: write-once records (manifest, placement per generation, head per segment) sealed with a
/// nonce derived from their content.
pub const METADATA_VERSION: u16 = 2;
/// magic 4 + version 2 + reserved 2 + nonce 12; the ciphertext and a 16-byte tag follow.
pub const METADATA_HEADER_BYTES: usize = 20;
pub const TAG_BYTES: usize = 16;
/// AES-256-GCM.
pub const CIPHER_AES_256_GCM: u8 = 1;
/// Segment stored as it is.
pub const COMPRESSION_NONE: u8 = 0;
/// Segment compressed with zstd before encryption.
pub const COMPRESSION_ZSTD: u8 = 1;

/// Everything needed to find, check and decode one segment, and to chain it to its predecessor.
/// Never changes once written: its hash is part of the next manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub segment: u64,
    pub data_shards: u8,
    pub parity_shards: u8,
    pub first_number: u64,
    pub last_number: u64,
    pub first_hash: [u8; 32],
    pub last_hash: [u8; 32],
    /// Merkle root (rs_merkle, BLAKE3) over the block hashes in order: proves one block's inclusion.
    pub blocks_root: [u8; 32],
    /// BLAKE3 of the sealed segment file (the plaintext).
    pub segment_hash: [u8; 32],
    pub segment_bytes: u64,
    pub cipher: u8,
    pub compression: u8,
    /// Bytes encrypted into frames: `segment_bytes`, or the compressed length.
    pub payload_bytes: u64,
    pub frame_plain_bytes: u32,
    pub piece_bytes: u32,
    pub chunk_bytes: u32,
    pub shard_bytes: u64,
    /// Hash of the previous segment's manifest ([0; 32] for segment 0).
    pub prev_manifest_hash: [u8; 32],
    /// Merkle root of each shard's chunk tree, data shards first.
    pub shard_roots: Vec<[u8; 32]>,
    /// Bytes of one stored part of a shard (the unit hosters store and return).
    pub part_bytes: u32,
    /// BLAKE3 of every part of every shard, shard-major (`parts_per_shard` per shard): a damaged
    /// part is found and replaced on its own, so rot spread over every shard is survived as long
    /// as no part-stripe loses more than m parts.
    pub part_hashes: Vec<[u8; 32]>,
}

impl Manifest {
    /// What the segment key and shard names bind besides the segment id and content hash.
    pub fn encoding_params(&self) -> crate::keys::EncodingParams {
        crate::keys::EncodingParams {
            format_version: MANIFEST_VERSION,
            cipher: self.cipher,
            compression: self.compression,
            data_shards: self.data_shards,
            parity_shards: self.parity_shards,
            frame_plain_bytes: self.frame_plain_bytes,
            piece_bytes: self.piece_bytes,
            payload_bytes: self.payload_bytes,
            segment_bytes: self.segment_bytes,
        }
    }

    /// The key this segment's shard `i` is stored under, as first dispersed (version 0).
    pub fn shard_storage_key(&self, key: &crate::keys::MasterKey, shard: usize) -> Vec<u8> {
        self.shard_storage_key_at(key, shard, 0)
    }

    /// The key of storage-key version `version` of shard `i` (see `Placement::versions`).
    pub fn shard_storage_key_at(
        &self,
        key: &crate::keys::MasterKey,
        shard: usize,
        version: u32,
    ) -> Vec<u8> {
        key.shard_storage_key(
            self.segment,
            &self.segment_hash,
            &self.encoding_params(),
            shard,
            version,
        )
    }

    pub fn shards_total(&self) -> usize {
        self.data_shards as usize + self.parity_shards as usize
    }

    /// Parts each shard is stored in.
    pub fn parts_per_shard(&self) -> usize {
        parts_per_shard(self.shard_bytes, self.part_bytes) as usize
    }

    /// The expected hash of part `part` of shard `shard`.
    pub fn part_hash(&self, shard: usize, part: usize) -> Option<&[u8; 32]> {
        self.part_hashes.get(
            shard
                .checked_mul(self.parts_per_shard())?
                .checked_add(part)?,
        )
    }

    pub fn block_count(&self) -> u64 {
        self.last_number - self.first_number + 1
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MANIFEST_FIXED_BYTES + 32 * self.shard_roots.len());
        out.extend_from_slice(&MANIFEST_MAGIC);
        out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
        out.push(self.data_shards);
        out.push(self.parity_shards);
        out.extend_from_slice(&self.segment.to_le_bytes());
        out.extend_from_slice(&self.first_number.to_le_bytes());
        out.extend_from_slice(&self.last_number.to_le_bytes());
        out.extend_from_slice(&self.first_hash);
        out.extend_from_slice(&self.last_hash);
        out.extend_from_slice(&self.blocks_root);
        out.extend_from_slice(&self.segment_hash);
        out.extend_from_slice(&self.segment_bytes.to_le_bytes());
        out.push(self.cipher);
        out.push(self.compression);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&self.frame_plain_bytes.to_le_bytes());
        out.extend_from_slice(&self.piece_bytes.to_le_bytes());
        out.extend_from_slice(&self.chunk_bytes.to_le_bytes());
        out.extend_from_slice(&self.shard_bytes.to_le_bytes());
        out.extend_from_slice(&self.prev_manifest_hash);
        out.extend_from_slice(&self.payload_bytes.to_le_bytes());
        out.extend_from_slice(&self.part_bytes.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        for root in &self.shard_roots {
            out.extend_from_slice(root);
        }
        for hash in &self.part_hashes {
            out.extend_from_slice(hash);
        }
        out
    }

    /// The manifest's identity in the chain: BLAKE3 of its encoding.
    pub fn hash(&self) -> [u8; 32] {
        *blake3::hash(&self.encode()).as_bytes()
    }

    /// Decodes and checks internal consistency. `segment` is the id the caller expects, for messages.
    pub fn decode(segment: u64, b: &[u8]) -> Result<Self> {
        let bad = |reason: String| ArchiveError::ManifestCorrupt { segment, reason };
        if b.len() < MANIFEST_FIXED_BYTES {
            return Err(bad(format!(
                "{} bytes, shorter than the {MANIFEST_FIXED_BYTES}-byte fixed part",
                b.len()
            )));
        }
        if b[0..4] != MANIFEST_MAGIC {
            return Err(bad("bad magic".into()));
        }
        let version = u16_at(b, 4);
        if version == 1 {
            // Version 1 segments were encrypted under keys that bind only (segment, content
            // hash); reading them would need the old derivation, which is gone on purpose.
            return Err(bad(
                "version 1 manifest: written before segment keys bound the \
                 encoding parameters (2026-11); this release cannot read it. Re-archive \
                 the history into a new archive from a node that still holds it"
                    .into(),
            ));
        }
        if version != MANIFEST_VERSION {
            return Err(bad(format!("unsupported version {version}")));
        }
        let (k, m) = (b[6], b[7]);
        let n = k as usize + m as usize;
        if k == 0 || m == 0 {
            return Err(bad(format!("invalid shard counts {k}+{m}")));
        }
        let part_bytes = u32_at(b, 232);
        let parts = parts_per_shard(u64_at(b, 184), part_bytes);
        if part_bytes == 0 || parts > PARTS_PER_SHARD_MAX {
            return Err(bad(format!(
                "part size {part_bytes} gives {parts} parts per shard"
            )));
        }
        let expected = MANIFEST_FIXED_BYTES + 32 * n * (1 + parts as usize);
        if b.len() != expected {
            return Err(bad(format!(
                "{} bytes, expected {expected} for {k}+{m} shards of {parts} parts",
                b.len()
            )));
        }
        if b[170..172] != [0, 0] || b[236..240] != [0; 4] {
            return Err(bad("reserved bytes are not zero".into()));
        }
        let hashes_at = MANIFEST_FIXED_BYTES + 32 * n;
        let manifest = Self {
            data_shards: k,
            parity_shards: m,
            segment: u64_at(b, 8),
            first_number: u64_at(b, 16),
            last_number: u64_at(b, 24),
            first_hash: hash_at(b, 32),
            last_hash: hash_at(b, 64),
            blocks_root: hash_at(b, 96),
            segment_hash: hash_at(b, 128),
            segment_bytes: u64_at(b, 160),
            cipher: b[168],
            compression: b[169],
            payload_bytes: u64_at(b, 224),
            frame_plain_bytes: u32_at(b, 172),
            piece_bytes: u32_at(b, 176),
            chunk_bytes: u32_at(b, 180),
            shard_bytes: u64_at(b, 184),
            prev_manifest_hash: hash_at(b, 192),
            shard_roots: (0..n)
                .map(|i| hash_at(b, MANIFEST_FIXED_BYTES + 32 * i))
                .collect(),
            part_bytes,
            part_hashes: (0..n * parts as usize)
                .map(|i| hash_at(b, hashes_at + 32 * i))
                .collect(),
        };
        if manifest.segment != segment {
            return Err(bad(format!("it describes segment {}", manifest.segment)));
        }
        manifest.check_consistency().map_err(bad)?;
        Ok(manifest)
    }

    fn check_consistency(&self) -> std::result::Result<(), String> {
        if self.last_number < self.first_number {
            return Err("last block precedes first block".into());
        }
        if self.cipher != CIPHER_AES_256_GCM {
            return Err(format!("unknown cipher id {}", self.cipher));
        }
        // Checked: both sizes are read from the record, and a sum past u32 is just inconsistent.
        if self.frame_plain_bytes == 0
            || self.frame_plain_bytes.checked_add(TAG_BYTES as u32) != Some(self.piece_bytes)
        {
            return Err("frame and piece sizes disagree".into());
        }
        if self.chunk_bytes == 0 || !self.piece_bytes.is_multiple_of(self.chunk_bytes) {
            return Err("piece size is not a multiple of the chunk size".into());
        }
        if !self.part_bytes.is_multiple_of(self.chunk_bytes) {
            return Err("part size is not a multiple of the chunk size".into());
        }
        match self.compression {
            COMPRESSION_NONE if self.payload_bytes != self.segment_bytes => {
                return Err("payload size differs from the segment size without compression".into())
            }
            COMPRESSION_NONE | COMPRESSION_ZSTD => {}
            other => return Err(format!("unknown compression id {other}")),
        }
        let frames = frame_count(self.payload_bytes, self.frame_plain_bytes);
        let stripes = frames.div_ceil(self.data_shards as u64);
        if stripes.checked_mul(u64::from(self.piece_bytes)) != Some(self.shard_bytes) {
            return Err("shard size does not match the segment size".into());
        }
        Ok(())
    }
}

/// Parts a shard of `shard_bytes` is stored in (at least one, as hosters store empty values too).
pub fn parts_per_shard(shard_bytes: u64, part_bytes: u32) -> u64 {
    shard_bytes.div_ceil(u64::from(part_bytes.max(1))).max(1)
}

/// Number of AEAD frames a segment of `segment_bytes` is cut into (at least one).
pub fn frame_count(segment_bytes: u64, frame_plain_bytes: u32) -> u64 {
    segment_bytes.div_ceil(frame_plain_bytes as u64).max(1)
}

/// Where each shard of a segment lives now. Rewritten, with a higher generation, on repair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub segment: u64,
    pub generation: u32,
    /// Hoster name per shard index; `None` = not stored anywhere (under-replicated).
    pub hosters: Vec<Option<String>>,
    /// Storage-key version per shard: 0 when dispersed, incremented by every rebuild of that
    /// shard, so a rebuilt shard never needs the write-once name of a damaged earlier copy (it
    /// may go back to the same hoster under a new name).
    pub versions: Vec<u32>,
}

impl Placement {
    /// A placement of `n` shards, none stored yet.
    pub fn empty(segment: u64, n: usize) -> Self {
        Self {
            segment,
            generation: 0,
            hosters: vec![None; n],
            versions: vec![0; n],
        }
    }

    /// The storage-key version of shard `i`.
    pub fn version(&self, i: usize) -> u32 {
        self.versions.get(i).copied().unwrap_or(0)
    }

    pub fn placed(&self) -> usize {
        self.hosters.iter().filter(|h| h.is_some()).count()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PLACEMENT_FIXED_BYTES + 32 * self.hosters.len());
        out.extend_from_slice(&PLACEMENT_MAGIC);
        out.extend_from_slice(&PLACEMENT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.hosters.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.segment.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        for h in &self.hosters {
            let mut name = [0u8; HOSTER_NAME_BYTES_MAX];
            if let Some(h) = h {
                let bytes = h.as_bytes();
                let n = bytes.len().min(HOSTER_NAME_BYTES_MAX);
                name[..n].copy_from_slice(&bytes[..n]);
            }
            out.extend_from_slice(&name);
        }
        for i in 0..self.hosters.len() {
            out.extend_from_slice(&self.version(i).to_le_bytes());
        }
        out
    }

    pub fn decode(segment: u64, b: &[u8]) -> Result<Self> {
        let bad = |reason: String| ArchiveError::PlacementCorrupt { segment, reason };
        if b.len() < PLACEMENT_FIXED_BYTES || b[0..4] != PLACEMENT_MAGIC {
            return Err(bad("bad magic or truncated".into()));
        }
        if u16_at(b, 4) != PLACEMENT_VERSION {
            return Err(bad(format!("unsupported version {}", u16_at(b, 4))));
        }
        let n = u16_at(b, 6) as usize;
        if b.len() != PLACEMENT_FIXED_BYTES + (HOSTER_NAME_BYTES_MAX + 4) * n {
            return Err(bad(format!("{} bytes for {n} shards", b.len())));
        }
        let got = u64_at(b, 8);
        if got != segment {
            return Err(bad(format!("it describes segment {got}")));
        }
        let mut hosters = Vec::with_capacity(n);
        for i in 0..n {
            let raw =
                &b[PLACEMENT_FIXED_BYTES + HOSTER_NAME_BYTES_MAX * i..][..HOSTER_NAME_BYTES_MAX];
            let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
            if end == 0 {
                hosters.push(None);
            } else {
                let name = std::str::from_utf8(&raw[..end])
                    .map_err(|_| bad(format!("hoster name of shard {i} is not UTF-8")))?;
                hosters.push(Some(name.to_string()));
            }
        }
        let versions_at = PLACEMENT_FIXED_BYTES + HOSTER_NAME_BYTES_MAX * n;
        Ok(Self {
            segment,
            generation: u32_at(b, 16),
            hosters,
            versions: (0..n).map(|i| u32_at(b, versions_at + 4 * i)).collect(),
        })
    }
}

/// Nonce of a record: keyed BLAKE3 over its header, AAD id and plaintext (a synthetic IV). The same
/// record always seals to the same bytes; different records get different nonces.
fn synthetic_nonce(key: &MasterKey, header: &[u8], aad_id: u64, plain: &[u8]) -> [u8; 12] {
    let nonce_key = key.metadata_nonce_key();
    let mut hasher = blake3::Hasher::new_keyed(&nonce_key);
    hasher.update(header);
    hasher.update(&aad_id.to_le_bytes());
    hasher.update(plain);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&hasher.finalize().as_bytes()[..12]);
    nonce
}

fn seal(key: &MasterKey, magic: [u8; 4], aad_id: u64, plain: &[u8]) -> Result<Vec<u8>> {
    let meta_key = key.metadata_key();
    let cipher = Aes256Gcm::new_from_slice(meta_key.as_ref())
        .map_err(|_| ArchiveError::Codec("metadata key length".into()))?;
    let mut out = Vec::with_capacity(METADATA_HEADER_BYTES + plain.len() + TAG_BYTES);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&METADATA_VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    let nonce = synthetic_nonce(key, &out[..8], aad_id, plain);
    out.extend_from_slice(&nonce);
    let mut aad = out[..8].to_vec();
    aad.extend_from_slice(&aad_id.to_le_bytes());
    out.extend_from_slice(plain);
    let tag = cipher
        .encrypt_inout_detached(
            &Nonce::from(nonce),
            &aad,
            (&mut out[METADATA_HEADER_BYTES..]).into(),
        )
        .map_err(|_| ArchiveError::Codec("metadata encryption".into()))?;
    out.extend_from_slice(tag.as_slice());
    Ok(out)
}

fn open(key: &MasterKey, magic: [u8; 4], aad_id: u64, b: &[u8], what: &str) -> Result<Vec<u8>> {
    let corrupt = |reason: String| ArchiveError::ManifestCorrupt {
        segment: aad_id,
        reason: format!("{what}: {reason}"),
    };
    if b.len() < METADATA_HEADER_BYTES + TAG_BYTES || b[0..4] != magic {
        return Err(corrupt("bad magic or truncated".into()));
    }
    if u16_at(b, 4) != METADATA_VERSION {
        return Err(corrupt(format!(
            "unsupported version {} (this release reads version {METADATA_VERSION})",
            u16_at(b, 4)
        )));
    }
    let meta_key = key.metadata_key();
    let cipher = Aes256Gcm::new_from_slice(meta_key.as_ref())
        .map_err(|_| ArchiveError::Codec("metadata key length".into()))?;
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&b[8..20]);
    let mut aad = b[..8].to_vec();
    aad.extend_from_slice(&aad_id.to_le_bytes());
    let body_end = b.len() - TAG_BYTES;
    let mut plain = b[METADATA_HEADER_BYTES..body_end].to_vec();
    let tag = Tag::try_from(&b[body_end..]).map_err(|_| corrupt("tag length".into()))?;
    cipher
        .decrypt_inout_detached(&Nonce::from(nonce), &aad, plain.as_mut_slice().into(), &tag)
        .map_err(|_| ArchiveError::WrongMasterKey {
            what: format!("{what} does not authenticate: wrong master key or tampered record"),
        })?;
    Ok(plain)
}

/// Encrypts a manifest for replication to every hoster (written once, under
/// `MasterKey::manifest_storage_key`).
pub fn seal_manifest_record(key: &MasterKey, manifest: &Manifest) -> Result<Vec<u8>> {
    seal(key, METADATA_MAGIC, manifest.segment, &manifest.encode())
}

/// Decrypts and decodes a replicated manifest record of `segment`.
pub fn open_manifest_record(key: &MasterKey, segment: u64, b: &[u8]) -> Result<Manifest> {
    let plain = open(
        key,
        METADATA_MAGIC,
        segment,
        b,
        &format!("manifest record of segment {segment}"),
    )?;
    let manifest = Manifest::decode(segment, &plain)?;
    if manifest.segment != segment {
        return Err(ArchiveError::ManifestCorrupt {
            segment,
            reason: format!("record describes segment {}", manifest.segment),
        });
    }
    Ok(manifest)
}

/// Encrypts one generation of a placement (under `MasterKey::placement_storage_key`).
pub fn seal_placement_record(key: &MasterKey, placement: &Placement) -> Result<Vec<u8>> {
    seal(
        key,
        PLACEMENT_RECORD_MAGIC,
        placement.segment,
        &placement.encode(),
    )
}

/// Decrypts a placement record found under generation `generation` of `segment`.
pub fn open_placement_record(
    key: &MasterKey,
    segment: u64,
    generation: u32,
    b: &[u8],
) -> Result<Placement> {
    let plain = open(
        key,
        PLACEMENT_RECORD_MAGIC,
        segment,
        b,
        &format!("placement record of segment {segment}"),
    )?;
    let placement = Placement::decode(segment, &plain)?;
    if placement.generation != generation {
        return Err(ArchiveError::PlacementCorrupt {
            segment,
            reason: format!(
                "generation {} found under generation {generation}'s name",
                placement.generation
            ),
        });
    }
    Ok(placement)
}

/// The head record written with a segment: it was the last dispersed one, with this manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub last_segment: u64,
    pub manifest_hash: [u8; 32],
}

/// AAD id for head records (not a segment): the segment is inside the authenticated plaintext.
const HEAD_AAD_ID: u64 = u64::MAX;

pub fn seal_head(key: &MasterKey, head: &Head) -> Result<Vec<u8>> {
    let mut plain = head.last_segment.to_le_bytes().to_vec();
    plain.extend_from_slice(&head.manifest_hash);
    seal(key, HEAD_MAGIC, HEAD_AAD_ID, &plain)
}

/// Opens the head record stored under `segment`'s head name.
pub fn open_head(key: &MasterKey, segment: u64, b: &[u8]) -> Result<Head> {
    let plain = open(key, HEAD_MAGIC, HEAD_AAD_ID, b, "head record")?;
    if plain.len() != 40 {
        return Err(ArchiveError::ManifestCorrupt {
            segment,
            reason: "head record has the wrong length".into(),
        });
    }
    let head = Head {
        last_segment: u64_at(&plain, 0),
        manifest_hash: hash_at(&plain, 8),
    };
    if head.last_segment != segment {
        return Err(ArchiveError::ManifestCorrupt {
            segment,
            reason: format!("head record names segment {}", head.last_segment),
        });
    }
    Ok(head)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        Manifest {
            segment: 3,
            data_shards: 2,
            parity_shards: 1,
            first_number: 100,
            last_number: 199,
            first_hash: [1; 32],
            last_hash: [2; 32],
            blocks_root: [3; 32],
            segment_hash: [4; 32],
            segment_bytes: 1000,
            cipher: CIPHER_AES_256_GCM,
            compression: COMPRESSION_NONE,
            payload_bytes: 1000,
            frame_plain_bytes: 1008,
            piece_bytes: 1024,
            chunk_bytes: 1024,
            shard_bytes: 1024,
            prev_manifest_hash: [5; 32],
            shard_roots: vec![[6; 32], [7; 32], [8; 32]],
            part_bytes: 1024,
            part_hashes: vec![[9; 32], [10; 32], [11; 32]],
        }
    }

    /// Found by the `manifest` fuzz target: sizes whose sum or product leaves u32/u64 are refused
    /// as inconsistent instead of overflowing.
    #[test]
    fn sizes_past_the_integer_range_are_refused() {
        let mut m = sample();
        m.frame_plain_bytes = u32::MAX - 1;
        m.piece_bytes = 14;
        let err = Manifest::decode(3, &m.encode()).unwrap_err().to_string();
        assert!(err.contains("frame and piece sizes disagree"), "{err}");
        let mut m = sample();
        (m.frame_plain_bytes, m.piece_bytes, m.chunk_bytes) = (1, 17, 17);
        // One part per shard, a multiple of the chunk size, so the part checks pass.
        m.part_bytes = 17 * 61;
        (m.segment_bytes, m.payload_bytes) = (u64::MAX, u64::MAX);
        let err = Manifest::decode(3, &m.encode()).unwrap_err().to_string();
        assert!(err.contains("shard size does not match"), "{err}");
    }

    #[test]
    fn manifest_round_trip_and_garbling() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(bytes.len(), MANIFEST_FIXED_BYTES + 96 + 96);
        assert_eq!(Manifest::decode(3, &bytes).unwrap(), m);
        assert!(Manifest::decode(4, &bytes).is_err());
        for cut in 0..bytes.len() {
            assert!(Manifest::decode(3, &bytes[..cut]).is_err());
        }
        let mut bad = bytes.clone();
        bad[176] ^= 1; // piece size
        let err = Manifest::decode(3, &bad).unwrap_err().to_string();
        assert!(err.contains("segment 3"), "{err}");
    }

    #[test]
    fn placement_round_trip() {
        let p = Placement {
            segment: 3,
            generation: 2,
            hosters: vec![Some("h1".into()), None, Some("h3".into())],
            versions: vec![0, 0, 7],
        };
        assert_eq!(Placement::decode(3, &p.encode()).unwrap(), p);
        assert_eq!(p.placed(), 2);
    }

    #[test]
    fn metadata_seal_open_and_wrong_key() {
        let key = MasterKey::from_bytes([9; 32]);
        let m = sample();
        let p = Placement {
            segment: 3,
            generation: 0,
            hosters: vec![Some("a".into()), Some("b".into()), Some("c".into())],
            versions: vec![0, 1, 0],
        };
        let sealed = seal_manifest_record(&key, &m).unwrap();
        assert_eq!(open_manifest_record(&key, 3, &sealed).unwrap(), m);
        // Deterministic: a retried publish writes identical bytes into a write-once namespace.
        assert_eq!(seal_manifest_record(&key, &m).unwrap(), sealed);
        let placed = seal_placement_record(&key, &p).unwrap();
        assert_eq!(open_placement_record(&key, 3, 0, &placed).unwrap(), p);
        let moved = Placement {
            generation: 1,
            ..p.clone()
        };
        let placed_1 = seal_placement_record(&key, &moved).unwrap();
        // Another record: another nonce (the nonce repeats only with the content).
        assert_ne!(placed[8..20], placed_1[8..20]);
        assert!(open_placement_record(&key, 3, 0, &placed_1).is_err());
        let other = MasterKey::from_bytes([8; 32]);
        assert!(matches!(
            open_manifest_record(&other, 3, &sealed),
            Err(ArchiveError::WrongMasterKey { .. })
        ));
        // A record moved to another segment's key does not open.
        assert!(open_manifest_record(&key, 4, &sealed).is_err());
        assert!(open_placement_record(&key, 4, 0, &placed).is_err());
        let head = Head {
            last_segment: 9,
            manifest_hash: m.hash(),
        };
        let sealed_head = seal_head(&key, &head).unwrap();
        assert_eq!(open_head(&key, 9, &sealed_head).unwrap(), head);
        assert!(open_head(&key, 8, &sealed_head).is_err());
    }

    /// Test vector from specs/manifest.md: the manifest hash of `sample()`.
    #[test]
    fn spec_test_vector() {
        assert_eq!(hex::encode(sample().hash()), SPEC_SAMPLE_MANIFEST_HASH);
    }

    const SPEC_SAMPLE_MANIFEST_HASH: &str =
        "efb6e755a95b2b3f2b3bd57fcdb40bd17c12de44e3de78efa1012f29b83364f2";
}
