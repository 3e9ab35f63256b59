//! Block execution: initialise (number, parent hash, the birth-block hash window), the
//! timestamp inherent, signed extrinsics (validity first: signature over call, extra and
//! additional signed; era; nonce; tip; then nonce bump and tip burn; then the dispatch, whose
//! failure rolls back only the dispatch and deposits `ExtrinsicFailed`), and finalisation
//! (events written, the oldest block hash dropped). Pool validation runs the same checks in
//! the context of the next block, as Substrate's `validate_transaction` does.

use std::collections::BTreeMap;

use parity_scale_codec::Encode;

use super::extrinsic::{
    sender_hex, AdditionalSigned, ExtrinsicSignature, InvalidTransaction, Mode, SignedExtra,
    UncheckedExtrinsic,
};
use super::primitives::{AccountId32, H256};
use super::storage::{
    block_hash_key, digest_key, events_key, number_key, parent_hash_key, timestamp_now_key,
    Changes, Overlay,
};
use super::types::{
    balances, system, timestamp, AccountInfo, DispatchClass, DispatchError, DispatchInfo,
    EventRecord, Pays, Phase, RuntimeCall, RuntimeEvent, Weight, EXTRA_FLAGS_NEW_LOGIC,
};
use super::{
    BLOCK_HASH_COUNT, EXISTENTIAL_DEPOSIT, MINIMUM_PERIOD_MS, SPEC_VERSION, TRANSACTION_VERSION,
};
use crate::substrate::{blake2_256, Digest, Hash};

/// Why a block is invalid: the extrinsic at fault (or none: the block as a whole).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum BlockError {
    #[error("extrinsic {index}: {error}")]
    Extrinsic {
        index: usize,
        error: InvalidTransaction,
    },
    #[error("the block has no timestamp inherent")]
    NoTimestamp,
}

/// A signed extrinsic that passed validation: who sent it and with which nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidTransaction {
    pub sender: AccountId32,
    pub nonce: u32,
    pub tip: u128,
}

/// One block being executed over `state`.
#[derive(Debug)]
pub struct BlockExecutor<'a> {
    overlay: Overlay<'a>,
    number: u32,
    events: Vec<EventRecord>,
    applied: u32,
    timestamp_set: bool,
}

impl<'a> BlockExecutor<'a> {
    /// Starts block `number` on top of `parent_hash` with the pre-runtime `digest` (the header's
    /// digest without its seal), as `frame_system::initialize` does.
    pub fn new(
        state: &'a BTreeMap<Vec<u8>, Vec<u8>>,
        number: u32,
        parent_hash: Hash,
        digest: &Digest,
    ) -> Self {
        let mut overlay = Overlay::new(state);
        overlay.put(number_key(), number.encode());
        overlay.put(digest_key(), digest.encode());
        overlay.put(parent_hash_key(), parent_hash.encode());
        overlay.put(
            block_hash_key(number.saturating_sub(1)),
            parent_hash.encode(),
        );
        Self {
            overlay,
            number,
            events: Vec::new(),
            applied: 0,
            timestamp_set: false,
        }
    }

    /// Checks a signed extrinsic against this block's state with `queued` earlier transactions
    /// of the same sender not applied yet (the pool's view; 0 in a block).
    pub fn validate(
        &self,
        xt: &UncheckedExtrinsic,
        queued: u32,
    ) -> Result<ValidTransaction, InvalidTransaction> {
        let Some(sig) = &xt.signature else {
            return Err(InvalidTransaction::BadInherent(
                "submitted to the pool".into(),
            ));
        };
        self.check_signed(sig, &xt.function, queued)
    }

    fn check_signed(
        &self,
        sig: &ExtrinsicSignature,
        call: &RuntimeCall,
        queued: u32,
    ) -> Result<ValidTransaction, InvalidTransaction> {
        let sender = sig
            .address
            .account()
            .map_err(|e| InvalidTransaction::Unsupported(format!("sender address {e}")))?;
        let hex = sender_hex(&sender);
        if sender.0 == [0; 32] {
            return Err(InvalidTransaction::Unsupported(
                "the all-zero sender".into(),
            ));
        }
        if sig.extra.metadata_hash != Mode::Disabled {
            return Err(InvalidTransaction::Unsupported(
                "CheckMetadataHash mode Enabled: this runtime commits to no metadata hash".into(),
            ));
        }
        let birth = sig.extra.era.birth(u64::from(self.number));
        let birth_hash = u32::try_from(birth)
            .ok()
            .filter(|b| *b < self.number)
            .and_then(|b| self.overlay.block_hash(b))
            .ok_or(InvalidTransaction::AncientBirthBlock {
                sender: hex.clone(),
                birth,
            })?;
        let additional = AdditionalSigned {
            spec_version: SPEC_VERSION,
            transaction_version: TRANSACTION_VERSION,
            genesis_hash: self.overlay.block_hash(0).unwrap_or_default(),
            birth_hash,
        };
        let payload = super::extrinsic::signing_payload(call, &sig.extra, &additional);
        if !sig.signature.verify(&payload, &sender) {
            return Err(InvalidTransaction::BadProof {
                sender: hex,
                scheme: sig.signature.scheme(),
            });
        }
        let account = self.overlay.account(&sender);
        check_nonce_and_tip(&account, &sig.extra, queued, &hex)?;
        Ok(ValidTransaction {
            sender,
            nonce: sig.extra.nonce,
            tip: sig.extra.tip,
        })
    }

    /// Applies one extrinsic (its own bytes). Invalid: nothing of it is applied.
    pub fn apply(&mut self, bytes: &[u8]) -> Result<(), InvalidTransaction> {
        let xt = UncheckedExtrinsic::from_bytes(bytes)?;
        match &xt.signature {
            None => self.apply_inherent(&xt.function)?,
            Some(sig) => {
                let valid = self.check_signed(sig, &xt.function, 0)?;
                self.apply_signed(&valid, &xt.function);
            }
        }
        self.applied += 1;
        Ok(())
    }

    fn apply_inherent(&mut self, call: &RuntimeCall) -> Result<(), InvalidTransaction> {
        let RuntimeCall::Timestamp(timestamp::Call::set { now }) = call else {
            return Err(InvalidTransaction::BadInherent(format!("{call:?}")));
        };
        if self.applied != 0 || self.timestamp_set {
            return Err(InvalidTransaction::BadInherent(
                "Timestamp.set not first or twice".into(),
            ));
        }
        let previous: u64 = self.overlay.get_decoded(&timestamp_now_key()).unwrap_or(0);
        if *now < previous.saturating_add(MINIMUM_PERIOD_MS) {
            return Err(InvalidTransaction::BadInherent(format!(
                "Timestamp.set({now}) is less than {MINIMUM_PERIOD_MS} ms after the parent's {previous}"
            )));
        }
        self.overlay.put(timestamp_now_key(), now.encode());
        self.timestamp_set = true;
        self.deposit(RuntimeEvent::System(system::Event::ExtrinsicSuccess {
            dispatch_info: dispatch_info(DispatchClass::Mandatory),
        }));
        Ok(())
    }

    fn apply_signed(&mut self, valid: &ValidTransaction, call: &RuntimeCall) {
        // Pre-dispatch: the nonce is bumped and the tip burned whatever the dispatch does.
        let mut account = self.overlay.account(&valid.sender);
        account.nonce = account.nonce.saturating_add(1);
        // Validation left at least the existential deposit after the tip.
        account.data.free = account.data.free.saturating_sub(valid.tip);
        self.overlay.put_account(&valid.sender, &account);
        if valid.tip > 0 {
            self.deposit(RuntimeEvent::Balances(balances::Event::Withdraw {
                who: valid.sender,
                amount: valid.tip,
            }));
        }
        let before = self.events.len();
        self.overlay.begin();
        let info = dispatch_info(DispatchClass::Normal);
        match self.dispatch(&valid.sender, call) {
            Ok(()) => {
                self.overlay.commit();
                self.deposit(RuntimeEvent::System(system::Event::ExtrinsicSuccess {
                    dispatch_info: info,
                }));
            }
            Err(dispatch_error) => {
                self.overlay.rollback();
                self.events.truncate(before);
                self.deposit(RuntimeEvent::System(system::Event::ExtrinsicFailed {
                    dispatch_error,
                    dispatch_info: info,
                }));
            }
        }
    }

    fn dispatch(&mut self, sender: &AccountId32, call: &RuntimeCall) -> Result<(), DispatchError> {
        match call {
            RuntimeCall::System(system::Call::remark { .. }) => Ok(()),
            RuntimeCall::System(system::Call::remark_with_event { remark }) => {
                self.deposit(RuntimeEvent::System(system::Event::Remarked {
                    sender: *sender,
                    hash: H256(blake2_256(remark)),
                }));
                Ok(())
            }
            // Inherent-only: a signed origin may not set the time.
            RuntimeCall::Timestamp(_) => Err(DispatchError::BadOrigin),
            RuntimeCall::Balances(balances::Call::transfer_allow_death { dest, value }) => {
                let to = dest.account().map_err(|_| DispatchError::CannotLookup)?;
                self.transfer(sender, &to, *value, false)
            }
            RuntimeCall::Balances(balances::Call::transfer_keep_alive { dest, value }) => {
                let to = dest.account().map_err(|_| DispatchError::CannotLookup)?;
                self.transfer(sender, &to, *value, true)
            }
        }
    }

    /// `pallet_balances` transfer: the sender keeps at least the existential deposit when
    /// `keep_alive`, else it may be reaped (dust lost); a new recipient needs at least the
    /// existential deposit.
    fn transfer(
        &mut self,
        from: &AccountId32,
        to: &AccountId32,
        value: u128,
        keep_alive: bool,
    ) -> Result<(), DispatchError> {
        if value == 0 || from == to {
            return Ok(());
        }
        let mut sender = self.overlay.account(from);
        let remaining = sender
            .data
            .free
            .checked_sub(value)
            .ok_or(DispatchError::balances(
                balances::Error::InsufficientBalance,
            ))?;
        if keep_alive && remaining < EXISTENTIAL_DEPOSIT {
            return Err(DispatchError::balances(balances::Error::Expendability));
        }
        let mut recipient = self.overlay.account(to);
        if recipient.providers == 0 {
            if value < EXISTENTIAL_DEPOSIT {
                return Err(DispatchError::balances(balances::Error::ExistentialDeposit));
            }
            recipient = new_account();
            self.deposit(RuntimeEvent::System(system::Event::NewAccount {
                account: *to,
            }));
            self.deposit(RuntimeEvent::Balances(balances::Event::Endowed {
                account: *to,
                free_balance: value,
            }));
        }
        recipient.data.free =
            recipient
                .data
                .free
                .checked_add(value)
                .ok_or(DispatchError::Arithmetic(
                    super::types::ArithmeticError::Overflow,
                ))?;
        self.overlay.put_account(to, &recipient);
        self.deposit(RuntimeEvent::Balances(balances::Event::Transfer {
            from: *from,
            to: *to,
            amount: value,
        }));
        if remaining < EXISTENTIAL_DEPOSIT {
            self.reap(from, remaining);
        } else {
            sender.data.free = remaining;
            self.overlay.put_account(from, &sender);
        }
        Ok(())
    }

    /// Removes an account that fell below the existential deposit; its dust is lost.
    fn reap(&mut self, who: &AccountId32, dust: u128) {
        self.overlay.kill(super::storage::account_key(who));
        if dust > 0 {
            self.deposit(RuntimeEvent::Balances(balances::Event::DustLost {
                account: *who,
                amount: dust,
            }));
        }
        self.deposit(RuntimeEvent::System(system::Event::KilledAccount {
            account: *who,
        }));
    }

    fn deposit(&mut self, event: RuntimeEvent) {
        self.events.push(EventRecord {
            phase: Phase::ApplyExtrinsic(self.applied),
            event,
            topics: Vec::new(),
        });
    }

    /// Finishes the block (`frame_system::finalize`): its events become `System.Events`, the
    /// block hash that left the window is dropped. Returns the state changes.
    pub fn finalize(mut self) -> Result<Changes, BlockError> {
        if !self.timestamp_set {
            return Err(BlockError::NoTimestamp);
        }
        let to_remove = self
            .number
            .saturating_sub(BLOCK_HASH_COUNT)
            .saturating_sub(1);
        if to_remove != 0 {
            self.overlay.kill(block_hash_key(to_remove));
        }
        if self.events.is_empty() {
            self.overlay.kill(events_key());
        } else {
            self.overlay.put(events_key(), self.events.encode());
        }
        Ok(self.overlay.into_changes())
    }

    /// The events deposited so far (tests, tools).
    pub fn events(&self) -> &[EventRecord] {
        &self.events
    }
}

fn dispatch_info(class: DispatchClass) -> DispatchInfo {
    DispatchInfo {
        weight: Weight::default(),
        class,
        // No fees on this chain: nothing is charged but the (burned) tip.
        pays_fee: Pays::No,
    }
}

/// A freshly created account: one provider (its balance), current balances logic.
pub fn new_account() -> AccountInfo {
    let mut info = AccountInfo {
        providers: 1,
        ..AccountInfo::default()
    };
    info.data.flags = EXTRA_FLAGS_NEW_LOGIC;
    info
}

fn check_nonce_and_tip(
    account: &AccountInfo,
    extra: &SignedExtra,
    queued: u32,
    hex: &str,
) -> Result<(), InvalidTransaction> {
    if account.providers == 0 {
        return Err(InvalidTransaction::Payment {
            sender: hex.to_string(),
            reason: "the account does not exist (no balance)".into(),
        });
    }
    let expected = account.nonce.saturating_add(queued);
    if extra.nonce < expected {
        return Err(InvalidTransaction::Stale {
            sender: hex.to_string(),
            got: extra.nonce,
            expected,
        });
    }
    if extra.nonce > expected {
        return Err(InvalidTransaction::Future {
            sender: hex.to_string(),
            got: extra.nonce,
            expected,
        });
    }
    if extra.tip > 0 && account.data.free.saturating_sub(extra.tip) < EXISTENTIAL_DEPOSIT {
        return Err(InvalidTransaction::Payment {
            sender: hex.to_string(),
            reason: format!(
                "a tip of {} with free balance {} (the existential deposit {EXISTENTIAL_DEPOSIT} must stay)",
                extra.tip, account.data.free
            ),
        });
    }
    Ok(())
}

/// Executes a block made elsewhere: the timestamp inherent first, then signed extrinsics; any
/// invalid extrinsic makes the whole block invalid. Returns the state changes.
pub fn execute_block(
    state: &BTreeMap<Vec<u8>, Vec<u8>>,
    number: u32,
    parent_hash: Hash,
    digest: &Digest,
    extrinsics: &[Vec<u8>],
) -> Result<Changes, BlockError> {
    let mut exec = BlockExecutor::new(state, number, parent_hash, digest);
    for (index, x) in extrinsics.iter().enumerate() {
        exec.apply(x)
            .map_err(|error| BlockError::Extrinsic { index, error })?;
    }
    exec.finalize()
}

/// Authors a block: the timestamp inherent (`now_ms`, raised to the minimum period after the
/// parent's), then each candidate still valid in order (invalid ones are dropped). Returns the
/// block's extrinsics and state changes.
pub fn build_block(
    state: &BTreeMap<Vec<u8>, Vec<u8>>,
    number: u32,
    parent_hash: Hash,
    digest: &Digest,
    now_ms: u64,
    candidates: impl IntoIterator<Item = Vec<u8>>,
) -> Result<(Vec<Vec<u8>>, Changes), BlockError> {
    let mut exec = BlockExecutor::new(state, number, parent_hash, digest);
    let previous: u64 = exec.overlay.get_decoded(&timestamp_now_key()).unwrap_or(0);
    let now = now_ms.max(previous.saturating_add(MINIMUM_PERIOD_MS));
    let inherent =
        UncheckedExtrinsic::new_unsigned(RuntimeCall::Timestamp(timestamp::Call::set { now }))
            .to_bytes();
    exec.apply(&inherent)
        .map_err(|error| BlockError::Extrinsic { index: 0, error })?;
    let mut extrinsics = vec![inherent];
    for x in candidates {
        if exec.apply(&x).is_ok() {
            extrinsics.push(x);
        }
    }
    Ok((extrinsics, exec.finalize()?))
}

/// Pool validation: `bytes` checked in the context of the block after `best`, with `queued`
/// transactions of its sender already waiting.
pub fn validate_transaction(
    state: &BTreeMap<Vec<u8>, Vec<u8>>,
    best: (u32, Hash),
    bytes: &[u8],
    queued: impl Fn(&AccountId32) -> u32,
) -> Result<ValidTransaction, InvalidTransaction> {
    let xt = UncheckedExtrinsic::from_bytes(bytes)?;
    let exec = BlockExecutor::new(state, best.0.saturating_add(1), best.1, &Digest::default());
    let sender = xt
        .signature
        .as_ref()
        .and_then(|s| s.address.account().ok())
        .unwrap_or_default();
    exec.validate(&xt, queued(&sender))
}
