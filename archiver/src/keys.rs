//! Key material: the archive's master key and the keys derived from it (BLAKE3 derive_key).
//!
//! Only the master key is configured; every segment key, storage key and metadata key is derived so a
//! fresh machine holding the config alone can find and open the whole archive. All key bytes are
//! zeroized on drop.

use zeroize::Zeroizing;

use crate::error::{ArchiveError, Result};

/// Context strings for BLAKE3 derive_key: globally unique, hard-coded, versioned (BLAKE3's rules).
/// v2: the segment key also binds every encoding parameter (`EncodingParams`); v1 bound only the
/// segment id and content hash.
const CONTEXT_SEGMENT_KEY: &str = "poa-archiver 2026-11 v2 segment encryption key";
const CONTEXT_STORAGE_KEY: &str = "poa-archiver 2026-11 v1 hoster storage key names";
const CONTEXT_METADATA_KEY: &str = "poa-archiver 2026-11 v1 metadata encryption key";
const CONTEXT_METADATA_NONCE_KEY: &str = "poa-archiver 2026-11 v2 metadata nonce key";
const CONTEXT_KEY_CHECK: &str = "poa-archiver 2026-11 v1 master key check value";

/// Length of the opaque keys under which hosters store shards and metadata: long enough to never
/// collide, short because 0-db keeps every key in memory.
pub const STORAGE_KEY_BYTES: usize = 24;

/// Everything besides the plaintext that changes a segment's ciphertext. Bound into the segment
/// key (and the shard storage keys), so a segment re-encoded with any parameter changed (another
/// compression, k, frame size, format) gets another key: no (key, nonce) pair ever encrypts two
/// different plaintexts, although nonces are frame indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodingParams {
    /// The manifest format version the segment is encoded for.
    pub format_version: u16,
    pub cipher: u8,
    pub compression: u8,
    pub data_shards: u8,
    pub parity_shards: u8,
    pub frame_plain_bytes: u32,
    pub piece_bytes: u32,
    pub payload_bytes: u64,
    pub segment_bytes: u64,
}

/// Bytes of `EncodingParams::encode`.
pub const ENCODING_PARAMS_BYTES: usize = 32;

impl EncodingParams {
    /// Fixed little-endian layout (specs/manifest.md, *Key derivation*).
    pub fn encode(&self) -> [u8; ENCODING_PARAMS_BYTES] {
        let mut b = [0u8; ENCODING_PARAMS_BYTES];
        b[0..2].copy_from_slice(&self.format_version.to_le_bytes());
        b[2] = self.cipher;
        b[3] = self.compression;
        b[4] = self.data_shards;
        b[5] = self.parity_shards;
        b[6..8].copy_from_slice(&[0, 0]);
        b[8..12].copy_from_slice(&self.frame_plain_bytes.to_le_bytes());
        b[12..16].copy_from_slice(&self.piece_bytes.to_le_bytes());
        b[16..24].copy_from_slice(&self.payload_bytes.to_le_bytes());
        b[24..32].copy_from_slice(&self.segment_bytes.to_le_bytes());
        b
    }
}

/// The 256-bit master key from which everything else is derived.
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn generate() -> Self {
        use rand::RngCore;
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self(key)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Parses 64 hex digits (an optional `0x` prefix is accepted).
    pub fn from_hex(text: &str) -> Result<Self> {
        let text = text.trim();
        let text = text.strip_prefix("0x").unwrap_or(text);
        let bad = |reason: &str| ArchiveError::Config {
            field: "master_key".into(),
            reason: reason.into(),
        };
        if text.len() != 64 {
            return Err(bad("must be 64 hex digits (32 bytes)"));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, key.as_mut()).map_err(|_| bad("is not valid hex"))?;
        Ok(Self(key))
    }

    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0.as_ref()))
    }

    fn derive(&self, context: &str, material: &[&[u8]]) -> Zeroizing<[u8; 32]> {
        let mut hasher = blake3::Hasher::new_derive_key(context);
        hasher.update(self.0.as_ref());
        for part in material {
            hasher.update(part);
        }
        Zeroizing::new(*hasher.finalize().as_bytes())
    }

    /// The AES-256-GCM key of one segment: bound to its id, its plaintext hash and every encoding
    /// parameter, so two different plaintexts (another segment, other contents after a data
    /// directory is rebuilt, or the same segment encoded differently) never share a key.
    pub fn segment_key(
        &self,
        segment: u64,
        segment_hash: &[u8; 32],
        params: &EncodingParams,
    ) -> Zeroizing<[u8; 32]> {
        self.derive(
            CONTEXT_SEGMENT_KEY,
            &[&segment.to_le_bytes(), segment_hash, &params.encode()],
        )
    }

    /// The AES-256-GCM key of the manifest and placement records replicated to hosters.
    pub fn metadata_key(&self) -> Zeroizing<[u8; 32]> {
        self.derive(CONTEXT_METADATA_KEY, &[])
    }

    /// Key of the keyed hash that derives a metadata record's nonce from its content: sealing is
    /// deterministic, so a retried publish writes identical bytes into write-once namespaces, and
    /// two different records get different nonces (a nonce repeats only with the content).
    pub fn metadata_nonce_key(&self) -> Zeroizing<[u8; 32]> {
        self.derive(CONTEXT_METADATA_NONCE_KEY, &[])
    }

    /// A value stored locally at init to detect a config whose key is not this archive's.
    pub fn check_value(&self) -> [u8; 32] {
        *self.derive(CONTEXT_KEY_CHECK, &[])
    }

    fn storage_name(&self, material: &[&[u8]]) -> Vec<u8> {
        let key = self.derive(CONTEXT_STORAGE_KEY, &[]);
        let mut hasher = blake3::Hasher::new_keyed(&key);
        for part in material {
            hasher.update(part);
        }
        hasher.finalize().as_bytes()[..STORAGE_KEY_BYTES].to_vec()
    }

    /// The key a shard is stored under. Opaque to the hoster: it reveals neither segment nor index.
    /// Bound to the encoding parameters too, so a re-encoding never collides with an earlier
    /// upload in a write-once namespace.
    pub fn shard_storage_key(
        &self,
        segment: u64,
        segment_hash: &[u8; 32],
        params: &EncodingParams,
        shard: usize,
        version: u32,
    ) -> Vec<u8> {
        let shard = (shard as u64).to_le_bytes();
        let (segment, params) = (segment.to_le_bytes(), params.encode());
        let mut material: Vec<&[u8]> = vec![b"shard", &segment, segment_hash, &params, &shard];
        // Version 0 (as dispersed) adds nothing; a rebuilt shard's name adds its version.
        let version = version.to_le_bytes();
        if version != [0; 4] {
            material.extend([b"v".as_slice(), &version]);
        }
        self.storage_name(&material)
    }

    /// The key a segment's encrypted manifest record is stored under (written once).
    pub fn manifest_storage_key(&self, segment: u64) -> Vec<u8> {
        self.storage_name(&[b"manifest-v2", &segment.to_le_bytes()])
    }

    /// The key of one generation of a segment's placement record: a repair writes the next
    /// generation under a new key, so no record is ever overwritten.
    pub fn placement_storage_key(&self, segment: u64, generation: u32) -> Vec<u8> {
        self.storage_name(&[
            b"placement",
            &segment.to_le_bytes(),
            &generation.to_le_bytes(),
        ])
    }

    /// The key of the head record written when `segment` was dispersed (one per segment, written
    /// once): the newest one present names the archive's last segment.
    pub fn head_storage_key(&self, segment: u64) -> Vec<u8> {
        self.storage_name(&[b"head-v2", &segment.to_le_bytes()])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_errors() {
        let key = MasterKey::generate();
        let again = MasterKey::from_hex(&key.to_hex()).unwrap();
        assert_eq!(key.check_value(), again.check_value());
        assert!(MasterKey::from_hex("abcd").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
    }

    pub(crate) const PARAMS: EncodingParams = EncodingParams {
        format_version: 2,
        cipher: 1,
        compression: 0,
        data_shards: 4,
        parity_shards: 2,
        frame_plain_bytes: 262_128,
        piece_bytes: 262_144,
        payload_bytes: 1_000_000,
        segment_bytes: 1_000_000,
    };

    #[test]
    fn derived_keys_differ() {
        let key = MasterKey::from_bytes([7; 32]);
        let h = [1u8; 32];
        let p = &PARAMS;
        assert_ne!(*key.segment_key(1, &h, p), *key.segment_key(2, &h, p));
        assert_ne!(*key.segment_key(1, &h, p), *key.segment_key(1, &[2; 32], p));
        assert_ne!(
            key.shard_storage_key(1, &h, p, 0, 0),
            key.shard_storage_key(1, &h, p, 1, 0)
        );
        assert_eq!(
            key.shard_storage_key(1, &h, p, 0, 0).len(),
            STORAGE_KEY_BYTES
        );
        assert_ne!(
            key.shard_storage_key(1, &h, p, 0, 0),
            key.shard_storage_key(1, &h, p, 0, 1)
        );
        let other = MasterKey::from_bytes([8; 32]);
        assert_ne!(key.head_storage_key(0), other.head_storage_key(0));
        assert_ne!(key.head_storage_key(0), key.head_storage_key(1));
        assert_ne!(
            key.placement_storage_key(1, 0),
            key.placement_storage_key(1, 1)
        );
    }

    /// Test vector from specs/manifest.md (*Key derivation*): master key 07×32, segment 1,
    /// content hash 01×32, `PARAMS`.
    #[test]
    fn spec_segment_key_vector() {
        let key = MasterKey::from_bytes([7; 32]);
        assert_eq!(
            hex::encode(PARAMS.encode()),
            SPEC_PARAMS_HEX,
            "encoding parameters layout"
        );
        assert_eq!(
            hex::encode(*key.segment_key(1, &[1; 32], &PARAMS)),
            SPEC_SEGMENT_KEY_HEX
        );
    }

    const SPEC_PARAMS_HEX: &str =
        "0200010004020000f0ff03000000040040420f000000000040420f0000000000";
    const SPEC_SEGMENT_KEY_HEX: &str =
        "125e74c197dc73bbd0dc12f0178c3e0e3b49a855f0e3c93871c9ec99b69734b6";

    /// Every parameter that changes the ciphertext changes the segment key and the shard names:
    /// one case per parameter.
    #[test]
    fn every_encoding_parameter_changes_the_keys() {
        let key = MasterKey::from_bytes([7; 32]);
        let h = [1u8; 32];
        let base = PARAMS;
        let changed: [(&str, EncodingParams); 9] = [
            (
                "format version",
                EncodingParams {
                    format_version: 3,
                    ..base
                },
            ),
            ("cipher", EncodingParams { cipher: 2, ..base }),
            (
                "compression",
                EncodingParams {
                    compression: 1,
                    ..base
                },
            ),
            (
                "k",
                EncodingParams {
                    data_shards: 5,
                    ..base
                },
            ),
            (
                "m",
                EncodingParams {
                    parity_shards: 3,
                    ..base
                },
            ),
            (
                "frame size",
                EncodingParams {
                    frame_plain_bytes: 1_008,
                    ..base
                },
            ),
            (
                "piece size",
                EncodingParams {
                    piece_bytes: 1_024,
                    ..base
                },
            ),
            (
                "payload length",
                EncodingParams {
                    payload_bytes: 999_999,
                    ..base
                },
            ),
            (
                "segment length",
                EncodingParams {
                    segment_bytes: 2_000_000,
                    ..base
                },
            ),
        ];
        let base_key = *key.segment_key(1, &h, &base);
        let base_name = key.shard_storage_key(1, &h, &base, 0, 0);
        for (what, params) in changed {
            assert_ne!(params.encode(), base.encode(), "{what}: encoding");
            assert_ne!(
                *key.segment_key(1, &h, &params),
                base_key,
                "{what}: segment key"
            );
            assert_ne!(
                key.shard_storage_key(1, &h, &params, 0, 0),
                base_name,
                "{what}: shard name"
            );
        }
    }
}
