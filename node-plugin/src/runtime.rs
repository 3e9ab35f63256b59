//! The reference chain's runtime: signed balance transfers over accounts (balance, nonce), the
//! genesis state (endowed dev accounts, the authority set, the runtime version) and the state
//! root that every header commits to. Deterministic, so a syncing node that replays the archived
//! blocks reaches the authoring node's state root bit for bit.

use std::collections::BTreeMap;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use parity_scale_codec::{Decode, Encode};

use crate::consensus::dev_signing_key;
use crate::substrate::{blake2_256, Hash};

/// First byte of every transfer extrinsic: Substrate's "signed, format 4" marker.
pub const TRANSFER_VERSION: u8 = 0x84;
/// Encoded transfer length: version 1 + from 32 + signature 64 + to 32 + amount 16 + nonce 8.
pub const TRANSFER_BYTES: usize = 153;
/// State key prefix of an account record (`acct:` ‖ public key → balance u128 ‖ nonce u64, LE).
pub const ACCOUNT_PREFIX: &[u8] = b"acct:";
/// State key of the authority set (SCALE `Vec<[u8; 32]>`), fixed at genesis.
pub const AUTHORITIES_KEY: &[u8] = b":authorities";
/// State key of the runtime versions (SCALE `Vec<(u64 first block, Vec<u8> JSON)>`): archived
/// with the history so old blocks are served with the version they were made under.
pub const RUNTIME_VERSIONS_KEY: &[u8] = b":runtime_versions";
/// Domain of the transfer signature, so a transfer signature means nothing anywhere else.
const TRANSFER_SIGNING_DOMAIN: &[u8] = b"poa-archiver transfer v1";
/// Balance of each endowed development account at genesis.
pub const ENDOWMENT: u128 = 1_000_000_000_000_000_000_000;

/// Why a transfer is not valid: each names the sender (hex) or the field at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransferError {
    #[error("malformed transfer: {0}")]
    Malformed(String),
    #[error("bad signature from 0x{from}")]
    BadSignature { from: String },
    #[error("stale or future nonce from 0x{from}: got {got}, expected {expected}")]
    BadNonce {
        from: String,
        got: u64,
        expected: u64,
    },
    #[error("0x{from} cannot pay {amount}: balance {balance}")]
    InsufficientBalance {
        from: String,
        amount: u128,
        balance: u128,
    },
    #[error("transfer of zero or to self from 0x{from}")]
    Pointless { from: String },
}

/// A signed balance transfer (the chain's only extrinsic).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Transfer {
    pub version: u8,
    pub from: [u8; 32],
    pub signature: [u8; 64],
    pub to: [u8; 32],
    pub amount: u128,
    pub nonce: u64,
}

fn signing_payload(genesis: &Hash, to: &[u8; 32], amount: u128, nonce: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(TRANSFER_SIGNING_DOMAIN.len() + 32 + 32 + 24);
    m.extend_from_slice(TRANSFER_SIGNING_DOMAIN);
    m.extend_from_slice(genesis);
    m.extend_from_slice(to);
    m.extend_from_slice(&amount.to_le_bytes());
    m.extend_from_slice(&nonce.to_le_bytes());
    m
}

impl Transfer {
    /// A transfer signed by `key`, valid on the chain with `genesis` hash only.
    pub fn signed(
        key: &SigningKey,
        genesis: &Hash,
        to: [u8; 32],
        amount: u128,
        nonce: u64,
    ) -> Self {
        let signature = key
            .sign(&signing_payload(genesis, &to, amount, nonce))
            .to_bytes();
        Self {
            version: TRANSFER_VERSION,
            from: key.verifying_key().to_bytes(),
            signature,
            to,
            amount,
            nonce,
        }
    }

    /// Decodes an extrinsic (its own bytes, without the outer length prefix).
    pub fn decode_exact(bytes: &[u8]) -> Result<Self, TransferError> {
        if bytes.len() != TRANSFER_BYTES {
            return Err(TransferError::Malformed(format!(
                "{} bytes, a transfer is {TRANSFER_BYTES}",
                bytes.len()
            )));
        }
        if bytes[0] != TRANSFER_VERSION {
            return Err(TransferError::Malformed(format!(
                "version byte 0x{:02x}, expected 0x{TRANSFER_VERSION:02x}",
                bytes[0]
            )));
        }
        Self::decode(&mut &bytes[..]).map_err(|e| TransferError::Malformed(e.to_string()))
    }

    fn sender_hex(&self) -> String {
        hex::encode(self.from)
    }

    /// Checks the signature (stateless part of validity).
    pub fn check_signature(&self, genesis: &Hash) -> Result<(), TransferError> {
        let bad = || TransferError::BadSignature {
            from: self.sender_hex(),
        };
        let key = VerifyingKey::from_bytes(&self.from).map_err(|_| bad())?;
        key.verify(
            &signing_payload(genesis, &self.to, self.amount, self.nonce),
            &Signature::from_bytes(&self.signature),
        )
        .map_err(|_| bad())
    }
}

/// An account record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub balance: u128,
    pub nonce: u64,
}

impl Account {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24);
        v.extend_from_slice(&self.balance.to_le_bytes());
        v.extend_from_slice(&self.nonce.to_le_bytes());
        v
    }
    pub fn decode(b: &[u8]) -> Option<Self> {
        let balance = u128::from_le_bytes(b.get(0..16)?.try_into().ok()?);
        let nonce = u64::from_le_bytes(b.get(16..24)?.try_into().ok()?);
        (b.len() == 24).then_some(Self { balance, nonce })
    }
}

pub fn account_key(public: &[u8; 32]) -> Vec<u8> {
    let mut k = ACCOUNT_PREFIX.to_vec();
    k.extend_from_slice(public);
    k
}

/// The development account `index` of the chain named by `seed` (for load and tests).
pub fn dev_account(seed: &str, index: u32) -> SigningKey {
    dev_signing_key("poa-account", seed, index)
}

/// The runtime version that `state_getRuntimeVersion` reports, as Substrate's JSON.
pub fn runtime_version_json(chain: &str) -> serde_json::Value {
    serde_json::json!({
        "specName": chain,
        "implName": "poa-archiver-reference",
        "authoringVersion": 1,
        "specVersion": 1,
        "implVersion": 1,
        "apis": [],
        "transactionVersion": 1,
        "stateVersion": 1
    })
}

/// The genesis state as key/value pairs.
pub fn genesis_state(
    seed: &str,
    chain: &str,
    authorities: &[VerifyingKey],
    accounts: u32,
) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state = BTreeMap::new();
    for i in 0..accounts {
        let public = dev_account(seed, i).verifying_key().to_bytes();
        state.insert(
            account_key(&public),
            Account {
                balance: ENDOWMENT,
                nonce: 0,
            }
            .encode(),
        );
    }
    let set: Vec<[u8; 32]> = authorities.iter().map(VerifyingKey::to_bytes).collect();
    state.insert(AUTHORITIES_KEY.to_vec(), set.encode());
    let versions: Vec<(u64, Vec<u8>)> =
        vec![(0, runtime_version_json(chain).to_string().into_bytes())];
    state.insert(RUNTIME_VERSIONS_KEY.to_vec(), versions.encode());
    state
}

/// The state root: BLAKE2b-256 of the SCALE encoding of all (key, value) pairs in key order.
///
/// Substrate commits with a Merkle-Patricia trie; the reference chain's state is a few hundred
/// entries, so a flat hash over the sorted pairs commits to exactly the same content (any change
/// changes the root) without a trie implementation. Recomputed per block: O(state), not O(changes).
pub fn state_root(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> Hash {
    let mut enc = Vec::with_capacity(state.len() * 64);
    parity_scale_codec::Compact(state.len() as u32).encode_to(&mut enc);
    for (k, v) in state {
        k.encode_to(&mut enc);
        v.encode_to(&mut enc);
    }
    blake2_256(&enc)
}

/// Authorities recorded in a state (genesis), if well-formed.
pub fn authorities_in(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> Option<Vec<VerifyingKey>> {
    let raw = state.get(AUTHORITIES_KEY)?;
    let set = Vec::<[u8; 32]>::decode(&mut &raw[..]).ok()?;
    set.iter()
        .map(|k| VerifyingKey::from_bytes(k).ok())
        .collect()
}

/// Runtime versions recorded in a state: (first block, JSON).
pub fn runtime_versions_in(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<(u64, Vec<u8>)> {
    state
        .get(RUNTIME_VERSIONS_KEY)
        .and_then(|raw| Vec::<(u64, Vec<u8>)>::decode(&mut &raw[..]).ok())
        .unwrap_or_default()
}

/// Checks a transfer against its sender's account with `pending` earlier transfers by the same
/// sender not applied yet (nonce `pending.0` ahead, `pending.1` already spent).
fn check_against(
    acct: &Account,
    genesis: &Hash,
    t: &Transfer,
    pending: (u64, u128),
) -> Result<(), TransferError> {
    if t.amount == 0 || t.from == t.to {
        return Err(TransferError::Pointless {
            from: t.sender_hex(),
        });
    }
    t.check_signature(genesis)?;
    let expected = acct.nonce + pending.0;
    if t.nonce != expected {
        return Err(TransferError::BadNonce {
            from: t.sender_hex(),
            got: t.nonce,
            expected,
        });
    }
    let available = acct.balance.saturating_sub(pending.1);
    if available < t.amount {
        return Err(TransferError::InsufficientBalance {
            from: t.sender_hex(),
            amount: t.amount,
            balance: available,
        });
    }
    Ok(())
}

/// The chain state held in memory (mirrors the node's RocksDB state column).
#[derive(Clone, Debug, Default)]
pub struct State {
    pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl State {
    pub fn account(&self, public: &[u8; 32]) -> Account {
        self.entries
            .get(&account_key(public))
            .and_then(|v| Account::decode(v))
            .unwrap_or_default()
    }

    pub fn root(&self) -> Hash {
        state_root(&self.entries)
    }

    /// Checks a transfer against this state with `pending` earlier transfers by the same sender
    /// not applied yet (nonce `pending.0` ahead, `pending.1` already spent).
    pub fn check_transfer(
        &self,
        genesis: &Hash,
        t: &Transfer,
        pending: (u64, u128),
    ) -> Result<(), TransferError> {
        check_against(&self.account(&t.from), genesis, t, pending)
    }

    /// Executes a block's extrinsics in order. Any invalid extrinsic fails the whole block (a
    /// block is valid or not; nothing is half-applied). Returns the changed entries.
    pub fn apply_block(
        &mut self,
        genesis: &Hash,
        extrinsics: &[Vec<u8>],
    ) -> Result<crate::chain_db::StateChanges, (usize, TransferError)> {
        let mut touched: BTreeMap<Vec<u8>, Account> = BTreeMap::new();
        for (i, x) in extrinsics.iter().enumerate() {
            let t = Transfer::decode_exact(x).map_err(|e| (i, e))?;
            let get = |touched: &BTreeMap<Vec<u8>, Account>, k: &[u8; 32]| {
                touched
                    .get(&account_key(k))
                    .copied()
                    .unwrap_or_else(|| self.account(k))
            };
            let from = get(&touched, &t.from);
            check_against(&from, genesis, &t, (0, 0)).map_err(|e| (i, e))?;
            touched.insert(
                account_key(&t.from),
                Account {
                    balance: from.balance - t.amount,
                    nonce: from.nonce + 1,
                },
            );
            let to = get(&touched, &t.to);
            touched.insert(
                account_key(&t.to),
                Account {
                    balance: to.balance.saturating_add(t.amount),
                    nonce: to.nonce,
                },
            );
        }
        let changes: Vec<(Vec<u8>, Vec<u8>)> =
            touched.into_iter().map(|(k, a)| (k, a.encode())).collect();
        for (k, v) in &changes {
            self.entries.insert(k.clone(), v.clone());
        }
        Ok(changes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::consensus::Authorities;

    fn state() -> State {
        let a = Authorities::dev("t", 4);
        State {
            entries: genesis_state("t", "poa-dev", a.public_keys(), 4),
        }
    }

    #[test]
    fn transfers_apply_and_invalid_ones_are_named() {
        let mut s = state();
        let g = [7; 32];
        let (alice, bob) = (dev_account("t", 0), dev_account("t", 1));
        let bob_pk = bob.verifying_key().to_bytes();
        let t1 = Transfer::signed(&alice, &g, bob_pk, 10, 0).encode();
        assert_eq!(t1.len(), TRANSFER_BYTES);
        let t2 = Transfer::signed(&alice, &g, bob_pk, 5, 1).encode();
        let root0 = s.root();
        let changes = s.apply_block(&g, &[t1.clone(), t2]).unwrap();
        assert_eq!(changes.len(), 2);
        assert_ne!(s.root(), root0);
        let a = s.account(&alice.verifying_key().to_bytes());
        assert_eq!((a.balance, a.nonce), (ENDOWMENT - 15, 2));
        assert_eq!(s.account(&bob_pk).balance, ENDOWMENT + 15);
        // Replay of t1: stale nonce.
        let err = s.clone().apply_block(&g, &[t1]).unwrap_err();
        assert!(matches!(
            err.1,
            TransferError::BadNonce {
                got: 0,
                expected: 2,
                ..
            }
        ));
        // Wrong chain (genesis): bad signature.
        let t = Transfer::signed(&alice, &[8; 32], bob_pk, 1, 2).encode();
        assert!(matches!(
            s.clone().apply_block(&g, &[t]).unwrap_err().1,
            TransferError::BadSignature { .. }
        ));
        // Overspend.
        let t = Transfer::signed(&bob, &g, [1; 32], ENDOWMENT * 2, 0).encode();
        assert!(matches!(
            s.clone().apply_block(&g, &[t]).unwrap_err().1,
            TransferError::InsufficientBalance { .. }
        ));
        // Garbage.
        assert!(matches!(
            s.clone().apply_block(&g, &[vec![0x84; 10]]).unwrap_err().1,
            TransferError::Malformed(_)
        ));
    }

    #[test]
    fn genesis_records_authorities_and_version() {
        let s = state();
        assert_eq!(authorities_in(&s.entries).unwrap().len(), 4);
        assert_eq!(runtime_versions_in(&s.entries).len(), 1);
        assert_eq!(s.root(), state().root());
    }
}
