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
pub const MANIFEST_VERSION: u16 = 1;
pub const MANIFEST_FIXED_BYTES: usize = 232;
pub const PLACEMENT_MAGIC: [u8; 4] = *b"PAPL";
pub const PLACEMENT_VERSION: u16 = 1;
pub const PLACEMENT_FIXED_BYTES: usize = 24;
pub const METADATA_MAGIC: [u8; 4] = *b"PAMR";
pub const HEAD_MAGIC: [u8; 4] = *b"PAHD";
pub const METADATA_VERSION: u16 = 1;
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
}

impl Manifest {
    pub fn shards_total(&self) -> usize {
        self.data_shards as usize + self.parity_shards as usize
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
        for root in &self.shard_roots {
            out.extend_from_slice(root);
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
        if version != MANIFEST_VERSION {
            return Err(bad(format!("unsupported version {version}")));
        }
        let (k, m) = (b[6], b[7]);
        let n = k as usize + m as usize;
        if k == 0 || m == 0 {
            return Err(bad(format!("invalid shard counts {k}+{m}")));
        }
        if b.len() != MANIFEST_FIXED_BYTES + 32 * n {
            return Err(bad(format!(
                "{} bytes, expected {} for {k}+{m} shards",
                b.len(),
                MANIFEST_FIXED_BYTES + 32 * n
            )));
        }
        if b[170..172] != [0, 0] {
            return Err(bad("reserved bytes are not zero".into()));
        }
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
}

impl Placement {
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
        if b.len() != PLACEMENT_FIXED_BYTES + HOSTER_NAME_BYTES_MAX * n {
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
        Ok(Self {
            segment,
            generation: u32_at(b, 16),
            hosters,
        })
    }
}

fn seal(key: &MasterKey, magic: [u8; 4], aad_id: u64, plain: &[u8]) -> Result<Vec<u8>> {
    use rand::RngCore;
    let meta_key = key.metadata_key();
    let cipher = Aes256Gcm::new_from_slice(meta_key.as_ref())
        .map_err(|_| ArchiveError::Codec("metadata key length".into()))?;
    let mut nonce = [0u8; 12];
    // Random nonces: a placement record is rewritten under the same key after every repair.
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let mut out = Vec::with_capacity(METADATA_HEADER_BYTES + plain.len() + TAG_BYTES);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&METADATA_VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
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
        return Err(corrupt(format!("unsupported version {}", u16_at(b, 4))));
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

/// Encrypts a manifest and its placement for replication to every hoster.
pub fn seal_metadata(
    key: &MasterKey,
    manifest: &Manifest,
    placement: &Placement,
) -> Result<Vec<u8>> {
    let m = manifest.encode();
    let mut plain = Vec::with_capacity(4 + m.len() + 64);
    plain.extend_from_slice(&(m.len() as u32).to_le_bytes());
    plain.extend_from_slice(&m);
    plain.extend_from_slice(&placement.encode());
    seal(key, METADATA_MAGIC, manifest.segment, &plain)
}

/// Decrypts and decodes a replicated metadata record of `segment`.
pub fn open_metadata(key: &MasterKey, segment: u64, b: &[u8]) -> Result<(Manifest, Placement)> {
    let plain = open(
        key,
        METADATA_MAGIC,
        segment,
        b,
        &format!("metadata record of segment {segment}"),
    )?;
    decode_metadata(segment, &plain)
}

/// Decodes the plaintext of a metadata record (manifest length u32 ‖ manifest ‖ placement); public
/// so the fuzz targets reach it past the AEAD.
pub fn decode_metadata(segment: u64, plain: &[u8]) -> Result<(Manifest, Placement)> {
    let truncated = || ArchiveError::ManifestCorrupt {
        segment,
        reason: "metadata record truncated".into(),
    };
    if plain.len() < 4 {
        return Err(truncated());
    }
    let m_len = u32_at(plain, 0) as usize;
    if plain.len() - 4 < m_len {
        return Err(truncated());
    }
    let manifest = Manifest::decode(segment, &plain[4..4 + m_len])?;
    let placement = Placement::decode(segment, &plain[4 + m_len..])?;
    Ok((manifest, placement))
}

/// The head record: the last dispersed segment and its manifest hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub last_segment: u64,
    pub manifest_hash: [u8; 32],
}

/// AAD id for the head record (not a segment).
const HEAD_AAD_ID: u64 = u64::MAX;

pub fn seal_head(key: &MasterKey, head: &Head) -> Result<Vec<u8>> {
    let mut plain = head.last_segment.to_le_bytes().to_vec();
    plain.extend_from_slice(&head.manifest_hash);
    seal(key, HEAD_MAGIC, HEAD_AAD_ID, &plain)
}

pub fn open_head(key: &MasterKey, b: &[u8]) -> Result<Head> {
    decode_head(&open(key, HEAD_MAGIC, HEAD_AAD_ID, b, "head record")?)
}

/// Decodes the plaintext of a head record (last segment u64 ‖ manifest hash).
pub fn decode_head(plain: &[u8]) -> Result<Head> {
    if plain.len() != 40 {
        return Err(ArchiveError::ManifestCorrupt {
            segment: HEAD_AAD_ID,
            reason: "head record has the wrong length".into(),
        });
    }
    Ok(Head {
        last_segment: u64_at(plain, 0),
        manifest_hash: hash_at(plain, 8),
    })
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
        (m.segment_bytes, m.payload_bytes) = (u64::MAX, u64::MAX);
        let err = Manifest::decode(3, &m.encode()).unwrap_err().to_string();
        assert!(err.contains("shard size does not match"), "{err}");
    }

    #[test]
    fn manifest_round_trip_and_garbling() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(bytes.len(), MANIFEST_FIXED_BYTES + 96);
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
        };
        let sealed = seal_metadata(&key, &m, &p).unwrap();
        let (m2, p2) = open_metadata(&key, 3, &sealed).unwrap();
        assert_eq!((m2, p2), (m.clone(), p));
        let other = MasterKey::from_bytes([8; 32]);
        assert!(matches!(
            open_metadata(&other, 3, &sealed),
            Err(ArchiveError::WrongMasterKey { .. })
        ));
        // A record moved to another segment's key does not open.
        assert!(open_metadata(&key, 4, &sealed).is_err());
        let head = Head {
            last_segment: 9,
            manifest_hash: m.hash(),
        };
        assert_eq!(
            open_head(&key, &seal_head(&key, &head).unwrap()).unwrap(),
            head
        );
    }

    /// Test vector from specs/manifest.md: the manifest hash of `sample()`.
    #[test]
    fn spec_test_vector() {
        assert_eq!(hex::encode(sample().hash()), SPEC_SAMPLE_MANIFEST_HASH);
    }

    const SPEC_SAMPLE_MANIFEST_HASH: &str =
        "25f7ba67b6f02b7d29dde59b906f94addc829126014a05a83b8d40d96ef955d9";
}
