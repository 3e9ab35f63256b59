//! The runtime's calls, events, errors and stored records, with Substrate's variant indices and
//! field layouts (`frame_system`, `pallet_timestamp`, `pallet_balances`, `sp_runtime`). The
//! runtime encodes these very types and the metadata is derived from them (`TypeInfo`), so the
//! two cannot drift apart.
#![allow(non_camel_case_types)]

use parity_scale_codec::{Decode, Encode};
use scale_info::TypeInfo;

use super::primitives::{AccountId32, Address, H256};

/// Pallet indices: the first byte of a call or event, and `ModuleError::index`.
pub const SYSTEM_PALLET_INDEX: u8 = 0;
pub const TIMESTAMP_PALLET_INDEX: u8 = 1;
pub const BALANCES_PALLET_INDEX: u8 = 2;
pub const AURA_PALLET_INDEX: u8 = 3;

/// `frame_system`'s calls (only those this runtime dispatches; indices are Substrate's).
pub mod system {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
    pub enum Call {
        /// Makes a note on chain; nothing else.
        #[codec(index = 0)]
        remark { remark: Vec<u8> },
        /// Makes a note on chain and deposits `Remarked`.
        #[codec(index = 7)]
        remark_with_event { remark: Vec<u8> },
    }

    #[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
    pub enum Event {
        #[codec(index = 0)]
        ExtrinsicSuccess { dispatch_info: DispatchInfo },
        #[codec(index = 1)]
        ExtrinsicFailed {
            dispatch_error: DispatchError,
            dispatch_info: DispatchInfo,
        },
        #[codec(index = 2)]
        CodeUpdated,
        #[codec(index = 3)]
        NewAccount { account: AccountId32 },
        #[codec(index = 4)]
        KilledAccount { account: AccountId32 },
        #[codec(index = 5)]
        Remarked { sender: AccountId32, hash: H256 },
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
    pub enum Error {
        #[codec(index = 0)]
        InvalidSpecName,
        #[codec(index = 1)]
        SpecVersionNeedsToIncrease,
        #[codec(index = 2)]
        FailedToExtractRuntimeVersion,
        #[codec(index = 3)]
        NonDefaultComposite,
        #[codec(index = 4)]
        NonZeroRefCount,
        #[codec(index = 5)]
        CallFiltered,
    }
}

/// `pallet_timestamp`'s call: the `set` inherent every block starts with.
pub mod timestamp {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
    pub enum Call {
        #[codec(index = 0)]
        set {
            #[codec(compact)]
            now: u64,
        },
    }
}

/// `pallet_balances`' calls, events and errors (Polkadot-SDK's indices).
pub mod balances {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
    pub enum Call {
        /// Transfer; the sender may end below the existential deposit (its dust is lost).
        #[codec(index = 0)]
        transfer_allow_death {
            dest: Address,
            #[codec(compact)]
            value: u128,
        },
        /// Transfer; refused if the sender would end below the existential deposit.
        #[codec(index = 3)]
        transfer_keep_alive {
            dest: Address,
            #[codec(compact)]
            value: u128,
        },
    }

    #[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
    pub enum Event {
        #[codec(index = 0)]
        Endowed {
            account: AccountId32,
            free_balance: u128,
        },
        #[codec(index = 1)]
        DustLost { account: AccountId32, amount: u128 },
        #[codec(index = 2)]
        Transfer {
            from: AccountId32,
            to: AccountId32,
            amount: u128,
        },
        #[codec(index = 7)]
        Deposit { who: AccountId32, amount: u128 },
        /// Some amount was withdrawn from the account (here: the burned tip).
        #[codec(index = 8)]
        Withdraw { who: AccountId32, amount: u128 },
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
    pub enum Error {
        #[codec(index = 0)]
        VestingBalance,
        #[codec(index = 1)]
        LiquidityRestrictions,
        #[codec(index = 2)]
        InsufficientBalance,
        #[codec(index = 3)]
        ExistentialDeposit,
        #[codec(index = 4)]
        Expendability,
        #[codec(index = 5)]
        ExistingVestingSchedule,
        #[codec(index = 6)]
        DeadAccount,
        #[codec(index = 7)]
        TooManyReserves,
        #[codec(index = 8)]
        TooManyHolds,
        #[codec(index = 9)]
        TooManyFreezes,
        #[codec(index = 10)]
        IssuanceDeactivated,
        #[codec(index = 11)]
        DeltaZero,
    }
}

/// An Aura authority id (`sp_consensus_aura::ed25519::AuthorityId`): this chain's authorities
/// seal with ed25519.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct AuraPublic(pub Ed25519Public);

/// `sp_core::ed25519::Public`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct Ed25519Public(pub [u8; 32]);

/// Every call this runtime dispatches, routed by pallet index then call index.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum RuntimeCall {
    #[codec(index = 0)]
    System(system::Call),
    #[codec(index = 1)]
    Timestamp(timestamp::Call),
    #[codec(index = 2)]
    Balances(balances::Call),
}

/// Every event this runtime deposits, by pallet index.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum RuntimeEvent {
    #[codec(index = 0)]
    System(system::Event),
    #[codec(index = 2)]
    Balances(balances::Event),
}

/// When in the block an event happened (`frame_system::Phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum Phase {
    #[codec(index = 0)]
    ApplyExtrinsic(u32),
    #[codec(index = 1)]
    Finalization,
    #[codec(index = 2)]
    Initialization,
}

/// One entry of `System.Events` (`frame_system::EventRecord<E, T>`). Generic like upstream:
/// clients find the runtime's event type through its first type parameter.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct EventRecord<E = RuntimeEvent, T = H256> {
    pub phase: Phase,
    pub event: E,
    pub topics: Vec<T>,
}

/// `sp_weights::weight_v2::Weight`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct Weight {
    #[codec(compact)]
    pub ref_time: u64,
    #[codec(compact)]
    pub proof_size: u64,
}

/// `frame_support::dispatch::DispatchClass`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum DispatchClass {
    #[codec(index = 0)]
    Normal,
    #[codec(index = 1)]
    Operational,
    #[codec(index = 2)]
    Mandatory,
}

/// `frame_support::dispatch::Pays`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum Pays {
    #[codec(index = 0)]
    Yes,
    #[codec(index = 1)]
    No,
}

/// `frame_support::dispatch::DispatchInfo`, as `ExtrinsicSuccess`/`ExtrinsicFailed` carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct DispatchInfo {
    pub weight: Weight,
    pub class: DispatchClass,
    pub pays_fee: Pays,
}

/// `sp_runtime::ModuleError`: a pallet's error (`error[0]` is the pallet error's index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct ModuleError {
    pub index: u8,
    pub error: [u8; 4],
}

/// `sp_runtime::TokenError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum TokenError {
    #[codec(index = 0)]
    FundsUnavailable,
    #[codec(index = 1)]
    OnlyProvider,
    #[codec(index = 2)]
    BelowMinimum,
    #[codec(index = 3)]
    CannotCreate,
    #[codec(index = 4)]
    UnknownAsset,
    #[codec(index = 5)]
    Frozen,
    #[codec(index = 6)]
    Unsupported,
    #[codec(index = 7)]
    CannotCreateHold,
    #[codec(index = 8)]
    NotExpendable,
    #[codec(index = 9)]
    Blocked,
}

/// `sp_arithmetic::ArithmeticError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum ArithmeticError {
    #[codec(index = 0)]
    Underflow,
    #[codec(index = 1)]
    Overflow,
    #[codec(index = 2)]
    DivisionByZero,
}

/// `sp_runtime::TransactionalError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum TransactionalError {
    #[codec(index = 0)]
    LimitReached,
    #[codec(index = 1)]
    NoLayer,
}

/// Why a dispatch failed (`sp_runtime::DispatchError`, variants 0..=13).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum DispatchError {
    #[codec(index = 0)]
    Other,
    #[codec(index = 1)]
    CannotLookup,
    #[codec(index = 2)]
    BadOrigin,
    #[codec(index = 3)]
    Module(ModuleError),
    #[codec(index = 4)]
    ConsumerRemaining,
    #[codec(index = 5)]
    NoProviders,
    #[codec(index = 6)]
    TooManyConsumers,
    #[codec(index = 7)]
    Token(TokenError),
    #[codec(index = 8)]
    Arithmetic(ArithmeticError),
    #[codec(index = 9)]
    Transactional(TransactionalError),
    #[codec(index = 10)]
    Exhausted,
    #[codec(index = 11)]
    Corruption,
    #[codec(index = 12)]
    Unavailable,
    #[codec(index = 13)]
    RootNotAllowed,
}

impl DispatchError {
    /// A `pallet_balances` error.
    pub fn balances(e: balances::Error) -> Self {
        DispatchError::Module(ModuleError {
            index: BALANCES_PALLET_INDEX,
            error: [e as u8, 0, 0, 0],
        })
    }
}

/// `pallet_balances::types::ExtraFlags`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct ExtraFlags(pub u128);

/// Balances' flag that an account uses the current (holds and freezes) logic.
pub const EXTRA_FLAGS_NEW_LOGIC: ExtraFlags = ExtraFlags(1 << 127);

/// `pallet_balances::types::AccountData`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct AccountData {
    pub free: u128,
    pub reserved: u128,
    pub frozen: u128,
    pub flags: ExtraFlags,
}

/// `frame_system::AccountInfo`: the value of `System.Account`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct AccountInfo {
    pub nonce: u32,
    pub consumers: u32,
    pub providers: u32,
    pub sufficients: u32,
    pub data: AccountData,
}

/// `sp_version::RuntimeVersion` in its SCALE form (the `System.Version` constant and
/// `Core_version`).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct RuntimeVersion {
    pub spec_name: String,
    pub impl_name: String,
    pub authoring_version: u32,
    pub spec_version: u32,
    pub impl_version: u32,
    pub apis: Vec<([u8; 8], u32)>,
    pub transaction_version: u32,
    pub system_version: u8,
}
