//! Runtime unit tests: extrinsic bytes against hand-made and published vectors, validity
//! rejections by name, dispatch outcomes and their events, storage keys, and the metadata.
#![allow(clippy::unwrap_used)]

use parity_scale_codec::{Compact, Decode, Encode};

use super::executive::{build_block, execute_block, BlockError};
use super::extrinsic::{
    extrinsic_hash, signing_payload, AdditionalSigned, InvalidTransaction, Mode, SignedExtra,
    UncheckedExtrinsic,
};
use super::primitives::{AccountId32, Address, Era, MultiAddress, Signer};
use super::storage::{account_key, Changes};
use super::types::{
    balances, system, timestamp, DispatchError, ModuleError, RuntimeCall, RuntimeEvent,
};
use super::*;
use crate::substrate::{Digest, Hash};

/// The genesis hash the test chain's transactions are signed for (block 1's parent).
const GENESIS: Hash = [7; 32];

fn genesis() -> State {
    let auth = crate::consensus::Authorities::dev("t", 4);
    State {
        entries: genesis_state("t", "poa-dev", auth.public_keys(), 4),
    }
}

fn alice() -> Signer {
    dev_signer("t", 0)
}

fn sr() -> Signer {
    Signer::sr25519_from_seed(&[0x5a; 32]).unwrap()
}

fn transfer_call(dest: AccountId32, value: u128, keep_alive: bool) -> RuntimeCall {
    let dest = MultiAddress::Id(dest);
    RuntimeCall::Balances(if keep_alive {
        balances::Call::transfer_keep_alive { dest, value }
    } else {
        balances::Call::transfer_allow_death { dest, value }
    })
}

fn extra(era: Era, nonce: u32, tip: u128) -> SignedExtra {
    SignedExtra {
        era,
        nonce,
        tip,
        metadata_hash: Mode::Disabled,
    }
}

fn additional(birth_hash: Hash) -> AdditionalSigned {
    AdditionalSigned {
        spec_version: SPEC_VERSION,
        transaction_version: TRANSACTION_VERSION,
        genesis_hash: GENESIS,
        birth_hash,
    }
}

fn signed(signer: &Signer, call: RuntimeCall, e: SignedExtra, birth_hash: Hash) -> Vec<u8> {
    UncheckedExtrinsic::new_signed(call, signer, e, &additional(birth_hash)).to_bytes()
}

/// A chain of test blocks: block hashes are made up (`[n; 32]`), block 1's parent is GENESIS.
struct Chain {
    state: State,
    number: u32,
}

impl Chain {
    fn new() -> Self {
        Self {
            state: genesis(),
            number: 0,
        }
    }

    fn parent_hash(&self) -> Hash {
        if self.number == 0 {
            GENESIS
        } else {
            [self.number as u8; 32]
        }
    }

    /// Executes the next block (a timestamp inherent, then `xts`); applied only when valid.
    fn block(&mut self, xts: &[Vec<u8>]) -> Result<Changes, BlockError> {
        let number = self.number + 1;
        let inherent =
            UncheckedExtrinsic::new_unsigned(RuntimeCall::Timestamp(timestamp::Call::set {
                now: u64::from(number) * 6000,
            }))
            .to_bytes();
        let mut all = vec![inherent];
        all.extend_from_slice(xts);
        let changes = execute_block(
            &self.state.entries,
            number,
            self.parent_hash(),
            &Digest::default(),
            &all,
        )?;
        self.state.apply_changes(&changes);
        self.number = number;
        Ok(changes)
    }

    fn invalid(&mut self, xt: Vec<u8>) -> InvalidTransaction {
        match self.block(&[xt]) {
            Err(BlockError::Extrinsic { index: 1, error }) => error,
            other => panic!("expected an invalid extrinsic, got {other:?}"),
        }
    }

    fn events(&self) -> Vec<RuntimeEvent> {
        self.state.events().into_iter().map(|r| r.event).collect()
    }
}

#[test]
fn signed_transfer_bytes_match_a_hand_made_encoding() {
    let signer = alice();
    let from = signer.account();
    let dest = AccountId32([0xbb; 32]);
    let bytes = signed(
        &signer,
        transfer_call(dest, 1_000_000_000_000, true),
        extra(Era::Immortal, 5, 0),
        GENESIS,
    );
    // call: Balances (2) . transfer_keep_alive (3), MultiAddress::Id (0), dest, Compact value
    let mut call = vec![2u8, 3, 0];
    call.extend_from_slice(&dest.0);
    call.extend_from_slice(&Compact(1_000_000_000_000u128).encode());
    // extra: era immortal, Compact nonce 5, Compact tip 0, metadata hash mode 0
    let extra_bytes = [0x00u8, 5 << 2, 0x00, 0x00];
    let mut expected = vec![0x84u8, 0x00];
    expected.extend_from_slice(&from.0);
    expected.push(0x00); // MultiSignature::Ed25519
    let sig_at = expected.len();
    expected.extend_from_slice(&bytes[sig_at..sig_at + 64]);
    expected.extend_from_slice(&extra_bytes);
    expected.extend_from_slice(&call);
    assert_eq!(bytes, expected);
    // The signature covers call ‖ extra ‖ spec ‖ tx version ‖ genesis ‖ birth hash ‖ None.
    let mut payload = call.clone();
    payload.extend_from_slice(&extra_bytes);
    payload.extend_from_slice(&SPEC_VERSION.to_le_bytes());
    payload.extend_from_slice(&TRANSACTION_VERSION.to_le_bytes());
    payload.extend_from_slice(&GENESIS);
    payload.extend_from_slice(&GENESIS);
    payload.push(0x00);
    let key = ed25519_dalek::VerifyingKey::from_bytes(&from.0).unwrap();
    let sig = ed25519_dalek::Signature::from_bytes(&bytes[sig_at..sig_at + 64].try_into().unwrap());
    key.verify_strict(&payload, &sig).unwrap();
    let decoded = UncheckedExtrinsic::from_bytes(&bytes).unwrap();
    assert_eq!(decoded.to_bytes(), bytes);
    // Clients send it length-prefixed; the hash covers the prefix.
    let prefixed = bytes.encode();
    assert_eq!(extrinsic::strip_length_prefix(&prefixed), &bytes[..]);
    assert_eq!(
        extrinsic_hash(&bytes),
        crate::substrate::blake2_256(&prefixed)
    );
}

#[test]
fn long_payloads_are_signed_as_their_hash() {
    let call = RuntimeCall::System(system::Call::remark {
        remark: vec![1; 300],
    });
    let e = extra(Era::Immortal, 0, 0);
    let payload = signing_payload(&call, &e, &additional(GENESIS));
    let raw = (call.clone(), e_tuple(&e), additional_tuple()).encode();
    assert!(raw.len() > 256);
    assert_eq!(payload, crate::substrate::blake2_256(&raw).to_vec());
    let mut chain = Chain::new();
    chain.block(&[signed(&alice(), call, e, GENESIS)]).unwrap();
}

fn e_tuple(e: &SignedExtra) -> impl Encode {
    (e.era, Compact(e.nonce), Compact(e.tip), 0u8)
}

fn additional_tuple() -> impl Encode {
    (
        SPEC_VERSION,
        TRANSACTION_VERSION,
        GENESIS,
        GENESIS,
        None::<[u8; 32]>,
    )
}

/// The sr25519 transfer published in `specs/chain.md` (signed once: sr25519 signatures are
/// randomised, so the vector is checked by decoding and verifying, not by re-signing).
const SPEC_SR25519_TRANSFER_HEX: &str = concat!(
    "84009eda665dd261ad54955ad987dbb02c116100953d1f841b81a54912f01f3bc057",
    "0156c4f2cdc95709c315edaa21f8139d5f99c4e54c752e72c357c8d386d9a8343dce901df89d62ebd308466798f9d7f63c78123b0a20a973a29089faba01981c88",
    "a5020c0000",
    "020300bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb070010a5d4e8",
);

#[test]
fn published_sr25519_transfer_decodes_and_verifies() {
    let signer = sr();
    let call = transfer_call(AccountId32([0xbb; 32]), 1_000_000_000_000, true);
    let e = extra(Era::mortal(64, 42), 3, 0);
    let bytes = hex::decode(SPEC_SR25519_TRANSFER_HEX).unwrap();
    let x = UncheckedExtrinsic::from_bytes(&bytes).unwrap();
    assert_eq!(x.to_bytes(), bytes);
    assert_eq!(x.function, call);
    let sig = x.signature.unwrap();
    assert_eq!(sig.address, Address::Id(signer.account()));
    assert_eq!(sig.extra, e);
    assert_eq!(sig.signature.scheme(), "sr25519");
    let payload = signing_payload(&call, &e, &additional([0x42; 32]));
    assert!(sig.signature.verify(&payload, &signer.account()));
    assert!(!sig.signature.verify(&payload, &alice().account()));
}

#[test]
fn transfers_apply_with_events_and_bump_nonces() {
    let mut chain = Chain::new();
    let (a, s) = (alice(), sr());
    let fresh = AccountId32([0xcc; 32]);
    // sr25519 senders need an account: alice endows it.
    let x1 = signed(
        &a,
        transfer_call(s.account(), 10 * EXISTENTIAL_DEPOSIT, false),
        extra(Era::Immortal, 0, 0),
        GENESIS,
    );
    let x2 = signed(
        &s,
        transfer_call(fresh, 2 * EXISTENTIAL_DEPOSIT, true),
        extra(Era::Immortal, 0, 5),
        GENESIS,
    );
    let changes = chain.block(&[x1, x2]).unwrap();
    assert!(changes
        .iter()
        .any(|(k, v)| *k == account_key(&fresh) && v.is_some()));
    let ev = chain.events();
    assert_eq!(
        ev[1..4],
        [
            RuntimeEvent::System(system::Event::NewAccount {
                account: s.account()
            }),
            RuntimeEvent::Balances(balances::Event::Endowed {
                account: s.account(),
                free_balance: 10 * EXISTENTIAL_DEPOSIT
            }),
            RuntimeEvent::Balances(balances::Event::Transfer {
                from: a.account(),
                to: s.account(),
                amount: 10 * EXISTENTIAL_DEPOSIT
            }),
        ]
    );
    assert!(matches!(
        ev[4],
        RuntimeEvent::System(system::Event::ExtrinsicSuccess { .. })
    ));
    // The tip is burned (Withdraw) before the transfer.
    assert_eq!(
        ev[5],
        RuntimeEvent::Balances(balances::Event::Withdraw {
            who: s.account(),
            amount: 5
        })
    );
    assert!(matches!(
        ev.last(),
        Some(RuntimeEvent::System(system::Event::ExtrinsicSuccess { .. }))
    ));
    let sender = chain.state.account(&s.account());
    assert_eq!(
        (sender.nonce, sender.data.free),
        (1, 8 * EXISTENTIAL_DEPOSIT - 5)
    );
    assert_eq!(
        chain.state.account(&fresh).data.free,
        2 * EXISTENTIAL_DEPOSIT
    );
    assert_eq!(chain.state.account(&a.account()).nonce, 1);
}

#[test]
fn dispatch_errors_fail_the_extrinsic_not_the_block_and_still_bump_the_nonce() {
    let mut chain = Chain::new();
    let a = alice();
    let bob = dev_signer("t", 1).account();
    let keep_alive_violation = signed(
        &a,
        transfer_call(bob, ENDOWMENT, true),
        extra(Era::Immortal, 0, 0),
        GENESIS,
    );
    let overspend = signed(
        &a,
        transfer_call(bob, ENDOWMENT * 2, false),
        extra(Era::Immortal, 1, 0),
        GENESIS,
    );
    let dust = signed(
        &a,
        transfer_call(AccountId32([0xdd; 32]), EXISTENTIAL_DEPOSIT - 1, false),
        extra(Era::Immortal, 2, 0),
        GENESIS,
    );
    let set_time = signed(
        &a,
        RuntimeCall::Timestamp(timestamp::Call::set { now: 1 }),
        extra(Era::Immortal, 3, 0),
        GENESIS,
    );
    chain
        .block(&[keep_alive_violation, overspend, dust, set_time])
        .unwrap();
    let failures: Vec<DispatchError> = chain
        .events()
        .into_iter()
        .filter_map(|e| match e {
            RuntimeEvent::System(system::Event::ExtrinsicFailed { dispatch_error, .. }) => {
                Some(dispatch_error)
            }
            _ => None,
        })
        .collect();
    let module = |e: balances::Error| {
        DispatchError::Module(ModuleError {
            index: 2,
            error: [e as u8, 0, 0, 0],
        })
    };
    assert_eq!(
        failures,
        [
            module(balances::Error::Expendability),
            module(balances::Error::InsufficientBalance),
            module(balances::Error::ExistentialDeposit),
            DispatchError::BadOrigin,
        ]
    );
    let acct = chain.state.account(&a.account());
    assert_eq!((acct.nonce, acct.data.free), (4, ENDOWMENT));
}

#[test]
fn allow_death_reaps_the_sender_and_deletes_its_account() {
    let mut chain = Chain::new();
    let a = alice();
    let bob = dev_signer("t", 1).account();
    let all_but_dust = ENDOWMENT - 7;
    let x = signed(
        &a,
        transfer_call(bob, all_but_dust, false),
        extra(Era::Immortal, 0, 0),
        GENESIS,
    );
    let changes = chain.block(&[x]).unwrap();
    assert!(
        changes.contains(&(account_key(&a.account()), None)),
        "deleted"
    );
    let ev = chain.events();
    assert!(
        ev.contains(&RuntimeEvent::Balances(balances::Event::DustLost {
            account: a.account(),
            amount: 7
        }))
    );
    assert!(
        ev.contains(&RuntimeEvent::System(system::Event::KilledAccount {
            account: a.account()
        }))
    );
    // A reaped account cannot send: it does not exist.
    let again = signed(
        &a,
        transfer_call(bob, 1, false),
        extra(Era::Immortal, 1, 0),
        GENESIS,
    );
    assert!(matches!(
        chain.invalid(again),
        InvalidTransaction::Payment { .. }
    ));
}

#[test]
fn invalid_extrinsics_are_named_and_invalidate_the_block() {
    let mut chain = Chain::new();
    let a = alice();
    let bob = dev_signer("t", 1).account();
    let call = || transfer_call(bob, 1, true);
    chain
        .block(&[signed(&a, call(), extra(Era::Immortal, 0, 0), GENESIS)])
        .unwrap();
    let before = chain.state.root();
    assert!(matches!(
        chain.invalid(signed(&a, call(), extra(Era::Immortal, 0, 0), GENESIS)),
        InvalidTransaction::Stale {
            got: 0,
            expected: 1,
            ..
        }
    ));
    assert!(matches!(
        chain.invalid(signed(&a, call(), extra(Era::Immortal, 9, 0), GENESIS)),
        InvalidTransaction::Future {
            got: 9,
            expected: 1,
            ..
        }
    ));
    // Signed for another chain (genesis), or with another signer's key.
    let other_chain = UncheckedExtrinsic::new_signed(
        call(),
        &a,
        extra(Era::Immortal, 1, 0),
        &AdditionalSigned {
            genesis_hash: [8; 32],
            birth_hash: [8; 32],
            ..additional(GENESIS)
        },
    );
    assert!(matches!(
        chain.invalid(other_chain.to_bytes()),
        InvalidTransaction::BadProof {
            scheme: "ed25519",
            ..
        }
    ));
    let mut forged =
        UncheckedExtrinsic::from_bytes(&signed(&sr(), call(), extra(Era::Immortal, 1, 0), GENESIS))
            .unwrap();
    forged.signature.as_mut().unwrap().address = Address::Id(a.account());
    assert!(matches!(
        chain.invalid(forged.to_bytes()),
        InvalidTransaction::BadProof {
            scheme: "sr25519",
            ..
        }
    ));
    // A sender with no account cannot pay (even nothing: accounts must exist to transact).
    assert!(matches!(
        chain.invalid(signed(&sr(), call(), extra(Era::Immortal, 0, 0), GENESIS)),
        InvalidTransaction::Payment { .. }
    ));
    let mut by_index =
        UncheckedExtrinsic::from_bytes(&signed(&a, call(), extra(Era::Immortal, 1, 0), GENESIS))
            .unwrap();
    by_index.signature.as_mut().unwrap().address = MultiAddress::Index(());
    assert!(
        matches!(chain.invalid(by_index.to_bytes()), InvalidTransaction::Unsupported(m) if m.contains("Index"))
    );
    let mut with_hash = extra(Era::Immortal, 1, 0);
    with_hash.metadata_hash = Mode::Enabled;
    assert!(
        matches!(chain.invalid(signed(&a, call(), with_hash, GENESIS)), InvalidTransaction::Unsupported(m) if m.contains("CheckMetadataHash"))
    );
    assert!(matches!(
        chain.invalid(vec![0x84, 0, 1]),
        InvalidTransaction::Malformed(_)
    ));
    // Unsigned extrinsics other than the first timestamp are not inherents.
    let remark = UncheckedExtrinsic::new_unsigned(RuntimeCall::System(system::Call::remark {
        remark: vec![],
    }));
    assert!(matches!(
        chain.invalid(remark.to_bytes()),
        InvalidTransaction::BadInherent(_)
    ));
    let late_time =
        UncheckedExtrinsic::new_unsigned(RuntimeCall::Timestamp(timestamp::Call::set {
            now: u64::MAX,
        }));
    assert!(matches!(
        chain.invalid(late_time.to_bytes()),
        InvalidTransaction::BadInherent(_)
    ));
    let no_time = execute_block(
        &chain.state.entries,
        2,
        chain.parent_hash(),
        &Digest::default(),
        &[],
    );
    assert_eq!(no_time, Err(BlockError::NoTimestamp));
    assert_eq!(
        chain.state.root(),
        before,
        "nothing of an invalid block was applied"
    );
}

#[test]
fn mortal_eras_are_honoured() {
    let mut chain = Chain::new();
    let a = alice();
    let bob = dev_signer("t", 1).account();
    for _ in 0..10 {
        chain.block(&[]).unwrap();
    }
    // Born at block 10 (hash [10; 32]), valid for blocks 10..18 (period 8).
    let era = Era::mortal(8, 10);
    let x = |nonce| {
        signed(
            &a,
            transfer_call(bob, 1, true),
            extra(era, nonce, 0),
            [10; 32],
        )
    };
    chain.block(&[x(0)]).unwrap();
    assert_eq!(chain.state.account(&a.account()).nonce, 1);
    for _ in 0..6 {
        chain.block(&[]).unwrap();
    }
    assert_eq!(chain.number, 17);
    // Block 18 is past its death: its birth block there is 18 (not yet made).
    assert!(matches!(
        chain.invalid(x(1)),
        InvalidTransaction::AncientBirthBlock { birth: 18, .. }
    ));
    chain.block(&[]).unwrap();
    // At block 19 the era's birth is block 18, whose hash is not what was signed.
    assert!(matches!(
        chain.invalid(x(1)),
        InvalidTransaction::BadProof { .. }
    ));
    // A birth block beyond the kept window is refused by name.
    for _ in 0..BLOCK_HASH_COUNT {
        chain.block(&[]).unwrap();
    }
    let old = signed(
        &a,
        transfer_call(bob, 1, true),
        extra(Era::mortal(4096, 10), 1, 0),
        [10; 32],
    );
    assert!(matches!(
        chain.invalid(old),
        InvalidTransaction::AncientBirthBlock { birth: 10, .. }
    ));
}

#[test]
fn authoring_drops_invalid_candidates_and_starts_with_the_timestamp() {
    let state = genesis();
    let a = alice();
    let bob = dev_signer("t", 1).account();
    let good = signed(
        &a,
        transfer_call(bob, 1, true),
        extra(Era::Immortal, 0, 0),
        GENESIS,
    );
    let replay = good.clone();
    let (xts, changes) = build_block(
        &state.entries,
        1,
        GENESIS,
        &Digest::default(),
        1_000,
        vec![good.clone(), replay, vec![1, 2]],
    )
    .unwrap();
    assert_eq!(xts.len(), 2);
    assert_eq!(xts[1], good);
    let ts = UncheckedExtrinsic::from_bytes(&xts[0]).unwrap();
    assert_eq!(
        ts.function,
        RuntimeCall::Timestamp(timestamp::Call::set { now: 1_000 })
    );
    // Import re-executes to the same changes.
    let again = execute_block(&state.entries, 1, GENESIS, &Digest::default(), &xts).unwrap();
    assert_eq!(again, changes);
}

/// Storage key of `System.Account` for Substrate's //Alice (as polkadot.js derives it).
const ALICE_ACCOUNT_KEY_HEX: &str = "26aa394eea5630e07c48ae0c9558cef7b99d880ec681799c0cf30e8886371da9de1e86a9a8c739864cf3cc5ec2bea59fd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d";

#[test]
fn storage_keys_are_substrates() {
    let alice = AccountId32(WELL_KNOWN_DEV_ACCOUNTS[0].1);
    assert_eq!(hex::encode(account_key(&alice)), ALICE_ACCOUNT_KEY_HEX);
    assert_eq!(
        hex::encode(storage::events_key()),
        "26aa394eea5630e07c48ae0c9558cef780d41e5e16056765bc8461851072c9d7"
    );
    assert_eq!(
        hex::encode(storage::number_key()),
        "26aa394eea5630e07c48ae0c9558cef702a5c1b19ab7a04f536c519aca4983ac"
    );
    // Endowed at genesis with Substrate's AccountInfo layout.
    let info = genesis().account(&alice);
    assert_eq!((info.providers, info.data.free), (1, ENDOWMENT));
    assert_eq!(AccountInfo::decode(&mut &info.encode()[..]).unwrap(), info);
    assert_eq!(info.encode().len(), 4 * 4 + 4 * 16);
}

/// BLAKE2b-256 of the metadata of a chain named "poa-dev" (published in `specs/chain.md`): a
/// change to any type, pallet or constant changes it, on purpose.
const POA_DEV_METADATA_HASH_HEX: &str =
    "c966a054511631f2fe6fe9b14b00ec96499fecd289d133021de2aad8cb847079";

#[test]
fn metadata_decodes_and_describes_exactly_this_runtime() {
    use frame_metadata::{RuntimeMetadata, RuntimeMetadataPrefixed};
    let bytes = metadata::metadata_bytes("poa-dev");
    assert_eq!(&bytes[..4], b"meta");
    let prefixed = RuntimeMetadataPrefixed::decode(&mut &bytes[..]).unwrap();
    let RuntimeMetadata::V14(m) = prefixed.1 else {
        panic!("not V14")
    };
    let pallets: Vec<(String, u8)> = m
        .pallets
        .iter()
        .map(|p| (p.name.clone(), p.index))
        .collect();
    assert_eq!(
        pallets,
        [
            ("System".into(), 0),
            ("Timestamp".into(), 1),
            ("Balances".into(), 2),
            ("Aura".into(), 3)
        ]
    );
    let ext: Vec<&str> = m
        .extrinsic
        .signed_extensions
        .iter()
        .map(|e| e.identifier.as_str())
        .collect();
    assert_eq!(ext, extrinsic::SIGNED_EXTENSION_NAMES);
    assert_eq!(m.extrinsic.version, 4);
    for t in &m.types.types {
        let path = t.ty.path.segments.join("::");
        assert!(
            !path.starts_with("node_plugin"),
            "type {} keeps its crate path {path}",
            t.id
        );
    }
    // Constants carry the runtime's values.
    let constant = |pallet: &str, name: &str| {
        m.pallets
            .iter()
            .find(|p| p.name == pallet)
            .unwrap()
            .constants
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .value
            .clone()
    };
    assert_eq!(constant("System", "SS58Prefix"), 42u16.encode());
    assert_eq!(
        constant("System", "BlockHashCount"),
        BLOCK_HASH_COUNT.encode()
    );
    assert_eq!(
        constant("Balances", "ExistentialDeposit"),
        EXISTENTIAL_DEPOSIT.encode()
    );
    assert_eq!(
        constant("System", "Version"),
        metadata::runtime_version("poa-dev").encode()
    );
    let hash = hex::encode(crate::substrate::blake2_256(&bytes));
    assert_eq!(
        hash, POA_DEV_METADATA_HASH_HEX,
        "metadata changed: update specs/chain.md"
    );
    // The genesis state holds exactly these bytes and the version JSON under the reserved keys.
    let g = genesis_state("x", "poa-dev", &[], 0);
    assert_eq!(g[crate::substrate::METADATA_KEY], bytes);
    let v: serde_json::Value =
        serde_json::from_slice(&g[crate::substrate::RUNTIME_VERSION_KEY]).unwrap();
    assert_eq!(v["specVersion"], SPEC_VERSION);
    assert_eq!(v["apis"].as_array().unwrap().len(), metadata::APIS.len());
}
