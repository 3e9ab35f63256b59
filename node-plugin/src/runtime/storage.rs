//! The runtime's storage: Substrate's key layout (`twox128(pallet) ‖ twox128(item) ‖
//! hasher(key)`) for each item it keeps, and the overlay a block executes against (reads fall
//! through to the state before the block; a dispatch writes into a layer it can roll back).

use std::collections::BTreeMap;

use parity_scale_codec::{Decode, Encode};

use super::primitives::{blake2_128_concat_key, twox_64_concat_key, value_key, AccountId32};
use super::types::AccountInfo;
use crate::substrate::Hash;

/// State entries a block changed: `None` deletes the key.
pub type Changes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// `System.Account` entry of `account` (`Blake2_128Concat`).
pub fn account_key(account: &AccountId32) -> Vec<u8> {
    blake2_128_concat_key("System", "Account", &account.0)
}

/// `System.BlockHash` entry of block `number` (`Twox64Concat` over the `u32`).
pub fn block_hash_key(number: u32) -> Vec<u8> {
    twox_64_concat_key("System", "BlockHash", &number.encode())
}

/// `System.Number`: the block being (or last) executed.
pub fn number_key() -> Vec<u8> {
    value_key("System", "Number")
}

/// `System.ParentHash`.
pub fn parent_hash_key() -> Vec<u8> {
    value_key("System", "ParentHash")
}

/// `System.Digest`: the block's digest items put in before the runtime ran (Aura's slot).
pub fn digest_key() -> Vec<u8> {
    value_key("System", "Digest")
}

/// `System.Events`: this block's `Vec<EventRecord>`.
pub fn events_key() -> Vec<u8> {
    value_key("System", "Events")
}

/// `Timestamp.Now`: the block's timestamp in milliseconds.
pub fn timestamp_now_key() -> Vec<u8> {
    value_key("Timestamp", "Now")
}

/// `Aura.Authorities`: the authority set (ed25519 public keys, slot order).
pub fn aura_authorities_key() -> Vec<u8> {
    value_key("Aura", "Authorities")
}

/// A block's view of the state: the state before it plus its writes, with one transactional
/// layer for a dispatch (rolled back when the dispatch fails).
#[derive(Debug)]
pub struct Overlay<'a> {
    base: &'a BTreeMap<Vec<u8>, Vec<u8>>,
    committed: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    layer: Option<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl<'a> Overlay<'a> {
    pub fn new(base: &'a BTreeMap<Vec<u8>, Vec<u8>>) -> Self {
        Self {
            base,
            committed: BTreeMap::new(),
            layer: None,
        }
    }

    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let written = self
            .layer
            .as_ref()
            .and_then(|l| l.get(key))
            .or_else(|| self.committed.get(key));
        match written {
            Some(v) => v.as_deref(),
            None => self.base.get(key).map(Vec::as_slice),
        }
    }

    fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        match &mut self.layer {
            Some(l) => l.insert(key, value),
            None => self.committed.insert(key, value),
        };
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.write(key, Some(value));
    }

    pub fn kill(&mut self, key: Vec<u8>) {
        self.write(key, None);
    }

    /// Opens the dispatch layer (a second one is a bug: the layer is flat).
    pub fn begin(&mut self) {
        debug_assert!(self.layer.is_none(), "nested dispatch layer");
        self.layer = Some(BTreeMap::new());
    }

    pub fn commit(&mut self) {
        if let Some(l) = self.layer.take() {
            self.committed.extend(l);
        }
    }

    pub fn rollback(&mut self) {
        self.layer = None;
    }

    /// The writes that change the state before the block, in key order.
    pub fn into_changes(mut self) -> Changes {
        self.commit();
        let base = self.base;
        self.committed
            .into_iter()
            .filter(|(k, v)| base.get(k) != v.as_ref())
            .collect()
    }

    /// A SCALE value, `None` when absent or undecodable (the runtime wrote it: a decode
    /// failure would be a runtime bug, and the state root still commits to the bytes).
    pub fn get_decoded<T: Decode>(&self, key: &[u8]) -> Option<T> {
        self.get(key).and_then(|mut b| T::decode(&mut b).ok())
    }

    pub fn account(&self, who: &AccountId32) -> AccountInfo {
        self.get_decoded(&account_key(who)).unwrap_or_default()
    }

    pub fn put_account(&mut self, who: &AccountId32, info: &AccountInfo) {
        self.put(account_key(who), info.encode());
    }

    pub fn block_hash(&self, number: u32) -> Option<Hash> {
        self.get(&block_hash_key(number))
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
    }
}
