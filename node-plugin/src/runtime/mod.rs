//! The reference chain's runtime, speaking Substrate: `UncheckedExtrinsic` v4 with
//! `MultiAddress`/`MultiSignature` (ed25519, sr25519) and the standard signed extensions
//! ([`extrinsic`]), calls routed by pallet and call index with Substrate's events and errors
//! ([`types`]), storage in Substrate's key layout ([`storage`]), block execution and pool
//! validation ([`executive`]), V14 metadata and the runtime version ([`metadata`]). Pallets:
//! System 0, Timestamp 1, Balances 2, Aura 3. No fees (the tip is burned).
//!
//! Deterministic, so a syncing node that replays archived blocks reaches the authoring node's
//! state root bit for bit. The state root stays a flat hash (see [`state_root`]).

pub mod executive;
pub mod extrinsic;
pub mod metadata;
pub mod primitives;
pub mod storage;
pub mod types;

use std::collections::BTreeMap;

use ed25519_dalek::{SigningKey, VerifyingKey};
use parity_scale_codec::{Decode, Encode};

use crate::consensus::dev_signing_key;
use crate::substrate::{blake2_256, Hash, METADATA_KEY, RUNTIME_VERSION_KEY};

pub use executive::{BlockError, ValidTransaction};
pub use extrinsic::{InvalidTransaction, SignedExtra, UncheckedExtrinsic};
pub use primitives::{AccountId32, Era, MultiSignature, Signer};
pub use storage::Changes;
pub use types::{AccountInfo, RuntimeCall, RuntimeEvent};

/// Format of the reference chain's runtime, recorded in the chain spec: 1 was the
/// pre-Substrate runtime (its own transfer format, `acct:` keys); 2 is this one. A node
/// database or archive of another format is refused by name.
pub const RUNTIME_FORMAT: u32 = 2;
/// Spec version (`CheckSpecVersion` signs it).
pub const SPEC_VERSION: u32 = 100;
/// Transaction version (`CheckTxVersion` signs it).
pub const TRANSACTION_VERSION: u32 = 1;
/// Block hashes the runtime keeps (`System.BlockHash`): a mortal transaction's birth block
/// must be among them. Small, because the flat state root hashes the whole state per block.
pub const BLOCK_HASH_COUNT: u32 = 256;
/// Least balance an account may hold (`transfer_keep_alive` keeps the sender at or above it; a
/// new account needs it): 0.001 token at 12 decimals.
pub const EXISTENTIAL_DEPOSIT: u128 = 1_000_000_000;
/// Least time between two blocks' timestamps. The slot length is a node setting
/// (`--block-time-ms`, 0 in tests), not a chain parameter, so the runtime only asks for
/// increasing timestamps.
pub const MINIMUM_PERIOD_MS: u64 = 1;
/// Balance of each endowed account at genesis (1,000,000,000 tokens at 12 decimals).
pub const ENDOWMENT: u128 = 1_000_000_000_000_000_000_000;
/// Substrate's well-known development accounts (`//Alice`.. in polkadot.js and
/// substrate-interface keyrings; sr25519 Alice..Ferdie, ed25519 Alice and Bob, and the dev
/// phrase's own ed25519 key, since substrate-interface derives no ed25519 paths), endowed at
/// genesis so clients can sign with their stock keyrings.
pub const WELL_KNOWN_DEV_ACCOUNTS: [(&str, [u8; 32]); 9] = [
    (
        "sr25519 //Alice",
        hex32("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"),
    ),
    (
        "sr25519 //Bob",
        hex32("8eaf04151687736326c9fea17e25fc5287613693c912909cb226aa4794f26a48"),
    ),
    (
        "sr25519 //Charlie",
        hex32("90b5ab205c6974c9ea841be688864633dc9ca8a357843eeacf2314649965fe22"),
    ),
    (
        "sr25519 //Dave",
        hex32("306721211d5404bd9da88e0204360a1a9ab8b87c66c1bc2fcdd37f3c2222cc20"),
    ),
    (
        "sr25519 //Eve",
        hex32("e659a7a1628cdd93febc04a4e0646ea20e9f5f0ce097d9a05290d4a9e054df4e"),
    ),
    (
        "sr25519 //Ferdie",
        hex32("1cbd2d43530a44705ad088af313e18f80b53ef16b36177cd4b77b846f2a5f07c"),
    ),
    (
        "ed25519 //Alice",
        hex32("88dc3417d5058ec4b4503e0c12ea1a0a89be200fe98922423d4334014fa6b0ee"),
    ),
    (
        "ed25519 //Bob",
        hex32("d17c2d7823ebf260fd138f2d7e27d114c0145d968b5ff5006125f2414fadae69"),
    ),
    (
        "ed25519 dev phrase (no derivation path)",
        hex32("345071da55e5dccefaaa440339415ef9f2663338a38f7da0df21be5ab4e055ef"),
    ),
];
/// Placeholder Substrate writes for the genesis block's own hash (`hash69`): the genesis state
/// cannot hold the hash of the header that commits to it; block 1 overwrites it.
const GENESIS_HASH_PLACEHOLDER: Hash = [0x69; 32];

const fn hex32(s: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not lower-case hex"),
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(b[2 * i]) << 4 | nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// The development account `index` of the chain named by `seed` (ed25519: the load generator
/// signs thousands of transfers per second with these).
pub fn dev_account(seed: &str, index: u32) -> SigningKey {
    dev_signing_key("poa-account", seed, index)
}

/// [`dev_account`] as an extrinsic signer.
pub fn dev_signer(seed: &str, index: u32) -> Signer {
    Signer::Ed25519(dev_account(seed, index))
}

/// The accounts endowed at genesis: `accounts` development accounts, then the well-known ones.
pub fn endowed_accounts(seed: &str, accounts: u32) -> Vec<AccountId32> {
    let mut out: Vec<AccountId32> = (0..accounts)
        .map(|i| AccountId32(dev_account(seed, i).verifying_key().to_bytes()))
        .collect();
    out.extend(WELL_KNOWN_DEV_ACCOUNTS.iter().map(|(_, k)| AccountId32(*k)));
    out
}

/// The genesis state as key/value pairs: endowed accounts, the Aura authority set, the
/// genesis-hash placeholders, and the runtime version and metadata under the archive's
/// reserved keys.
pub fn genesis_state(
    seed: &str,
    chain: &str,
    authorities: &[VerifyingKey],
    accounts: u32,
) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state = BTreeMap::new();
    for who in endowed_accounts(seed, accounts) {
        let mut info = executive::new_account();
        info.data.free = ENDOWMENT;
        state.insert(storage::account_key(&who), info.encode());
    }
    let set: Vec<types::AuraPublic> = authorities
        .iter()
        .map(|k| types::AuraPublic(types::Ed25519Public(k.to_bytes())))
        .collect();
    state.insert(storage::aura_authorities_key(), set.encode());
    state.insert(
        storage::block_hash_key(0),
        GENESIS_HASH_PLACEHOLDER.encode(),
    );
    state.insert(
        storage::parent_hash_key(),
        GENESIS_HASH_PLACEHOLDER.encode(),
    );
    state.insert(
        RUNTIME_VERSION_KEY.to_vec(),
        metadata::runtime_version_json(chain)
            .to_string()
            .into_bytes(),
    );
    state.insert(METADATA_KEY.to_vec(), metadata::metadata_bytes(chain));
    state
}

/// The state root: BLAKE2b-256 of the SCALE encoding of all (key, value) pairs in key order.
///
/// Substrate commits with a Merkle-Patricia trie; the reference chain's state is a few hundred
/// entries, so a flat hash over the sorted pairs commits to exactly the same content (every
/// entry, the reserved runtime version and metadata included: any change changes the root)
/// without a trie implementation. Recomputed per block: O(state), not O(changes).
pub fn state_root(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> Hash {
    let mut enc = Vec::with_capacity(state.len() * 64);
    parity_scale_codec::Compact(state.len() as u32).encode_to(&mut enc);
    for (k, v) in state {
        k.encode_to(&mut enc);
        v.encode_to(&mut enc);
    }
    blake2_256(&enc)
}

/// Authorities recorded in a state (`Aura.Authorities`), if well-formed.
pub fn authorities_in(state: &BTreeMap<Vec<u8>, Vec<u8>>) -> Option<Vec<VerifyingKey>> {
    let raw = state.get(&storage::aura_authorities_key())?;
    let set = Vec::<types::AuraPublic>::decode(&mut &raw[..]).ok()?;
    set.iter()
        .map(|k| VerifyingKey::from_bytes(&(k.0).0).ok())
        .collect()
}

/// A signed balance transfer (immortal, no tip): what the load generator, the CLI and tests
/// submit. `keep_alive` picks `transfer_keep_alive` over `transfer_allow_death`.
pub fn signed_transfer(
    signer: &Signer,
    genesis: Hash,
    dest: AccountId32,
    value: u128,
    nonce: u32,
    keep_alive: bool,
) -> Vec<u8> {
    let dest = primitives::MultiAddress::Id(dest);
    let call = RuntimeCall::Balances(if keep_alive {
        types::balances::Call::transfer_keep_alive { dest, value }
    } else {
        types::balances::Call::transfer_allow_death { dest, value }
    });
    let extra = SignedExtra {
        era: Era::Immortal,
        nonce,
        tip: 0,
        metadata_hash: extrinsic::Mode::Disabled,
    };
    let additional = extrinsic::AdditionalSigned {
        spec_version: SPEC_VERSION,
        transaction_version: TRANSACTION_VERSION,
        genesis_hash: genesis,
        birth_hash: genesis,
    };
    UncheckedExtrinsic::new_signed(call, signer, extra, &additional).to_bytes()
}

/// The chain state held in memory (mirrors the node's RocksDB state column).
#[derive(Clone, Debug, Default)]
pub struct State {
    pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl State {
    pub fn account(&self, who: &AccountId32) -> AccountInfo {
        self.entries
            .get(&storage::account_key(who))
            .and_then(|v| AccountInfo::decode(&mut &v[..]).ok())
            .unwrap_or_default()
    }

    pub fn root(&self) -> Hash {
        state_root(&self.entries)
    }

    /// Applies a block's changes (deletions included). Returns what undoes them: each changed
    /// key with its value before (`None`: it was absent).
    pub fn apply_changes(&mut self, changes: &Changes) -> Changes {
        let mut undo = Vec::with_capacity(changes.len());
        for (k, v) in changes {
            let old = match v {
                Some(v) => self.entries.insert(k.clone(), v.clone()),
                None => self.entries.remove(k),
            };
            undo.push((k.clone(), old));
        }
        undo
    }

    /// Executes block `number` (on `parent_hash`) and applies it; nothing changes on error.
    /// Returns the changes and what undoes them.
    pub fn execute_block(
        &mut self,
        number: u32,
        parent_hash: Hash,
        digest: &crate::substrate::Digest,
        extrinsics: &[Vec<u8>],
    ) -> Result<(Changes, Changes), BlockError> {
        let changes =
            executive::execute_block(&self.entries, number, parent_hash, digest, extrinsics)?;
        let undo = self.apply_changes(&changes);
        Ok((changes, undo))
    }

    /// The events block execution left (`System.Events`).
    pub fn events(&self) -> Vec<types::EventRecord> {
        self.entries
            .get(&storage::events_key())
            .and_then(|v| Vec::<types::EventRecord>::decode(&mut &v[..]).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
