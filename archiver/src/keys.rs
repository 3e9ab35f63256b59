//! Key material: the archive's master key and the keys derived from it (BLAKE3 derive_key).
//!
//! Only the master key is configured; every segment key, storage key and metadata key is derived so a
//! fresh machine holding the config alone can find and open the whole archive. All key bytes are
//! zeroized on drop.

use zeroize::Zeroizing;

use crate::error::{ArchiveError, Result};

/// Context strings for BLAKE3 derive_key: globally unique, hard-coded, versioned (BLAKE3's rules).
const CONTEXT_SEGMENT_KEY: &str = "poa-archiver 2026-11 v1 segment encryption key";
const CONTEXT_STORAGE_KEY: &str = "poa-archiver 2026-11 v1 hoster storage key names";
const CONTEXT_METADATA_KEY: &str = "poa-archiver 2026-11 v1 metadata encryption key";
const CONTEXT_KEY_CHECK: &str = "poa-archiver 2026-11 v1 master key check value";

/// Length of the opaque keys under which hosters store shards and metadata: long enough to never
/// collide, short because 0-db keeps every key in memory.
pub const STORAGE_KEY_BYTES: usize = 24;

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

    /// The AES-256-GCM key of one segment: bound to its id and its plaintext hash, so two different
    /// segments never share a key even if a data directory is rebuilt with other contents.
    pub fn segment_key(&self, segment: u64, segment_hash: &[u8; 32]) -> Zeroizing<[u8; 32]> {
        self.derive(CONTEXT_SEGMENT_KEY, &[&segment.to_le_bytes(), segment_hash])
    }

    /// The AES-256-GCM key of the manifest and placement records replicated to hosters.
    pub fn metadata_key(&self) -> Zeroizing<[u8; 32]> {
        self.derive(CONTEXT_METADATA_KEY, &[])
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
    pub fn shard_storage_key(
        &self,
        segment: u64,
        segment_hash: &[u8; 32],
        shard: usize,
    ) -> Vec<u8> {
        self.storage_name(&[
            b"shard",
            &segment.to_le_bytes(),
            segment_hash,
            &(shard as u64).to_le_bytes(),
        ])
    }

    /// The key a segment's encrypted manifest + placement record is stored under.
    pub fn manifest_storage_key(&self, segment: u64) -> Vec<u8> {
        self.storage_name(&[b"manifest", &segment.to_le_bytes()])
    }

    /// The key of the encrypted head record (last dispersed segment).
    pub fn head_storage_key(&self) -> Vec<u8> {
        self.storage_name(&[b"head"])
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

    #[test]
    fn derived_keys_differ() {
        let key = MasterKey::from_bytes([7; 32]);
        let h = [1u8; 32];
        assert_ne!(*key.segment_key(1, &h), *key.segment_key(2, &h));
        assert_ne!(*key.segment_key(1, &h), *key.segment_key(1, &[2; 32]));
        assert_ne!(
            key.shard_storage_key(1, &h, 0),
            key.shard_storage_key(1, &h, 1)
        );
        assert_eq!(key.shard_storage_key(1, &h, 0).len(), STORAGE_KEY_BYTES);
        let other = MasterKey::from_bytes([8; 32]);
        assert_ne!(key.head_storage_key(), other.head_storage_key());
    }
}
