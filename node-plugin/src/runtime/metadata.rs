//! The runtime's V14 metadata (`frame-metadata` + `scale-info`), derived from the very types
//! the runtime encodes, and its runtime version (JSON for `state_getRuntimeVersion`, SCALE for
//! `Core_version` and the `System.Version` constant).
//!
//! The types' Rust paths are this crate's; clients recognise some types by Substrate's paths
//! (polkadot.js and py-scale-codec map `sp_core::crypto::AccountId32`,
//! `sp_runtime::multiaddress::MultiAddress`, `sp_runtime::generic::era::Era`,
//! `*::RuntimeCall`...), so [`real_path`] gives every type the path it has in polkadot-sdk.

use frame_metadata::v14::{
    ExtrinsicMetadata, PalletCallMetadata, PalletConstantMetadata, PalletErrorMetadata,
    PalletEventMetadata, PalletMetadata, PalletStorageMetadata, RuntimeMetadataV14,
    SignedExtensionMetadata, StorageEntryMetadata, StorageEntryModifier, StorageEntryType,
    StorageHasher,
};
use frame_metadata::RuntimeMetadataPrefixed;
use parity_scale_codec::Encode;
use scale_info::{meta_type, MetaType, TypeInfo};

use super::extrinsic::{
    ChargeTransactionPayment, CheckGenesis, CheckMetadataHash, CheckMortality, CheckNonZeroSender,
    CheckNonce, CheckSpecVersion, CheckTxVersion, CheckWeight, ExtrinsicTypeInfo,
    EXTRINSIC_FORMAT_VERSION, SIGNED_EXTENSION_NAMES,
};
use super::primitives::{AccountId32, H256, SS58_PREFIX};
use super::types::{
    balances, system, timestamp, AccountInfo, AuraPublic, EventRecord, RuntimeVersion,
    AURA_PALLET_INDEX, BALANCES_PALLET_INDEX, SYSTEM_PALLET_INDEX, TIMESTAMP_PALLET_INDEX,
};
use super::{BLOCK_HASH_COUNT, EXISTENTIAL_DEPOSIT, MINIMUM_PERIOD_MS};
use crate::substrate::Digest;

/// The runtime as a type (`<runtime>::Runtime`): the metadata's `ty`.
#[derive(TypeInfo)]
pub struct Runtime;

/// Substrate's path for each of this crate's runtime types, keyed by the path after
/// `node_plugin::`. A type missing here keeps its crate path (a test forbids that).
const REAL_PATHS: &[(&str, &str)] = &[
    ("substrate::Digest", "sp_runtime::generic::digest::Digest"),
    (
        "substrate::DigestItem",
        "sp_runtime::generic::digest::DigestItem",
    ),
    (
        "runtime::primitives::AccountId32",
        "sp_core::crypto::AccountId32",
    ),
    ("runtime::primitives::H256", "primitive_types::H256"),
    (
        "runtime::primitives::MultiAddress",
        "sp_runtime::multiaddress::MultiAddress",
    ),
    (
        "runtime::primitives::MultiSignature",
        "sp_runtime::MultiSignature",
    ),
    (
        "runtime::primitives::Ed25519Signature",
        "sp_core::ed25519::Signature",
    ),
    (
        "runtime::primitives::Sr25519Signature",
        "sp_core::sr25519::Signature",
    ),
    (
        "runtime::primitives::EcdsaSignature",
        "sp_core::ecdsa::Signature",
    ),
    ("runtime::types::system::Call", "frame_system::pallet::Call"),
    (
        "runtime::types::system::Event",
        "frame_system::pallet::Event",
    ),
    (
        "runtime::types::system::Error",
        "frame_system::pallet::Error",
    ),
    (
        "runtime::types::timestamp::Call",
        "pallet_timestamp::pallet::Call",
    ),
    (
        "runtime::types::balances::Call",
        "pallet_balances::pallet::Call",
    ),
    (
        "runtime::types::balances::Event",
        "pallet_balances::pallet::Event",
    ),
    (
        "runtime::types::balances::Error",
        "pallet_balances::pallet::Error",
    ),
    (
        "runtime::types::AuraPublic",
        "sp_consensus_aura::ed25519::app_ed25519::Public",
    ),
    ("runtime::types::Ed25519Public", "sp_core::ed25519::Public"),
    ("runtime::types::RuntimeCall", "poa_runtime::RuntimeCall"),
    ("runtime::types::RuntimeEvent", "poa_runtime::RuntimeEvent"),
    ("runtime::metadata::Runtime", "poa_runtime::Runtime"),
    ("runtime::types::Phase", "frame_system::Phase"),
    ("runtime::types::EventRecord", "frame_system::EventRecord"),
    ("runtime::types::AccountInfo", "frame_system::AccountInfo"),
    ("runtime::types::Weight", "sp_weights::weight_v2::Weight"),
    (
        "runtime::types::DispatchClass",
        "frame_support::dispatch::DispatchClass",
    ),
    ("runtime::types::Pays", "frame_support::dispatch::Pays"),
    (
        "runtime::types::DispatchInfo",
        "frame_support::dispatch::DispatchInfo",
    ),
    ("runtime::types::ModuleError", "sp_runtime::ModuleError"),
    ("runtime::types::TokenError", "sp_runtime::TokenError"),
    (
        "runtime::types::ArithmeticError",
        "sp_arithmetic::ArithmeticError",
    ),
    (
        "runtime::types::TransactionalError",
        "sp_runtime::TransactionalError",
    ),
    ("runtime::types::DispatchError", "sp_runtime::DispatchError"),
    (
        "runtime::types::ExtraFlags",
        "pallet_balances::types::ExtraFlags",
    ),
    (
        "runtime::types::AccountData",
        "pallet_balances::types::AccountData",
    ),
    (
        "runtime::types::RuntimeVersion",
        "sp_version::RuntimeVersion",
    ),
    (
        "runtime::extrinsic::CheckNonZeroSender",
        "frame_system::extensions::check_non_zero_sender::CheckNonZeroSender",
    ),
    (
        "runtime::extrinsic::CheckSpecVersion",
        "frame_system::extensions::check_spec_version::CheckSpecVersion",
    ),
    (
        "runtime::extrinsic::CheckTxVersion",
        "frame_system::extensions::check_tx_version::CheckTxVersion",
    ),
    (
        "runtime::extrinsic::CheckGenesis",
        "frame_system::extensions::check_genesis::CheckGenesis",
    ),
    (
        "runtime::extrinsic::CheckMortality",
        "frame_system::extensions::check_mortality::CheckMortality",
    ),
    (
        "runtime::extrinsic::CheckNonce",
        "frame_system::extensions::check_nonce::CheckNonce",
    ),
    (
        "runtime::extrinsic::CheckWeight",
        "frame_system::extensions::check_weight::CheckWeight",
    ),
    (
        "runtime::extrinsic::ChargeTransactionPayment",
        "pallet_transaction_payment::ChargeTransactionPayment",
    ),
    (
        "runtime::extrinsic::Mode",
        "frame_metadata_hash_extension::Mode",
    ),
    (
        "runtime::extrinsic::CheckMetadataHash",
        "frame_metadata_hash_extension::CheckMetadataHash",
    ),
];

/// This crate's path.
const CRATE_PREFIX: &str = "node_plugin::";

/// Substrate's path for a type this crate derived under `segments`, if it has one.
pub fn real_path(segments: &[String]) -> Option<Vec<String>> {
    let joined = segments.join("::");
    let local = joined.strip_prefix(CRATE_PREFIX)?;
    REAL_PATHS
        .iter()
        .find(|(ours, _)| *ours == local)
        .map(|(_, real)| real.split("::").map(str::to_string).collect())
}

/// API ids (BLAKE2b-64 of the trait name) and versions this runtime answers through
/// `state_call`: Core, Metadata, AccountNonceApi.
pub const APIS: &[(&str, [u8; 8], u32)] = &[
    ("Core", [0xdf, 0x6a, 0xcb, 0x68, 0x99, 0x07, 0x60, 0x9b], 5),
    (
        "Metadata",
        [0x37, 0xe3, 0x97, 0xfc, 0x7c, 0x91, 0xf5, 0xe4],
        2,
    ),
    (
        "AccountNonceApi",
        [0xbc, 0x9d, 0x89, 0x90, 0x4f, 0x5b, 0x92, 0x3f],
        1,
    ),
];

/// The runtime version of the chain named `chain`.
pub fn runtime_version(chain: &str) -> RuntimeVersion {
    RuntimeVersion {
        spec_name: chain.to_string(),
        impl_name: "poa-archiver-reference".into(),
        authoring_version: 1,
        spec_version: super::SPEC_VERSION,
        impl_version: 1,
        apis: APIS.iter().map(|(_, id, v)| (*id, *v)).collect(),
        transaction_version: super::TRANSACTION_VERSION,
        system_version: 1,
    }
}

/// The runtime version as `state_getRuntimeVersion` returns it (Substrate's JSON).
pub fn runtime_version_json(chain: &str) -> serde_json::Value {
    let v = runtime_version(chain);
    serde_json::json!({
        "specName": v.spec_name,
        "implName": v.impl_name,
        "authoringVersion": v.authoring_version,
        "specVersion": v.spec_version,
        "implVersion": v.impl_version,
        "apis": v.apis.iter().map(|(id, ver)| serde_json::json!([format!("0x{}", hex::encode(id)), ver])).collect::<Vec<_>>(),
        "transactionVersion": v.transaction_version,
        "systemVersion": v.system_version,
        "stateVersion": v.system_version,
    })
}

fn entry(name: &'static str, ty: StorageEntryType, default: Vec<u8>) -> StorageEntryMetadata {
    StorageEntryMetadata {
        name,
        modifier: StorageEntryModifier::Default,
        ty,
        default,
        docs: vec![],
    }
}

fn plain<T: TypeInfo + 'static>() -> StorageEntryType {
    StorageEntryType::Plain(meta_type::<T>())
}

fn map<K: TypeInfo + 'static, V: TypeInfo + 'static>(hasher: StorageHasher) -> StorageEntryType {
    StorageEntryType::Map {
        hashers: vec![hasher],
        key: meta_type::<K>(),
        value: meta_type::<V>(),
    }
}

fn constant<T: TypeInfo + Encode + 'static>(
    name: &'static str,
    value: &T,
) -> PalletConstantMetadata {
    PalletConstantMetadata {
        name,
        ty: meta_type::<T>(),
        value: value.encode(),
        docs: vec![],
    }
}

fn system_pallet(chain: &str) -> PalletMetadata {
    PalletMetadata {
        name: "System",
        storage: Some(PalletStorageMetadata {
            prefix: "System",
            entries: vec![
                entry(
                    "Account",
                    map::<AccountId32, AccountInfo>(StorageHasher::Blake2_128Concat),
                    AccountInfo::default().encode(),
                ),
                entry(
                    "BlockHash",
                    map::<u32, H256>(StorageHasher::Twox64Concat),
                    [0u8; 32].to_vec(),
                ),
                entry("Number", plain::<u32>(), 0u32.encode()),
                entry("ParentHash", plain::<H256>(), [0u8; 32].to_vec()),
                entry("Digest", plain::<Digest>(), vec![0]),
                entry("Events", plain::<Vec<EventRecord>>(), vec![0]),
            ],
        }),
        calls: Some(PalletCallMetadata::from(meta_type::<system::Call>())),
        event: Some(PalletEventMetadata::from(meta_type::<system::Event>())),
        constants: vec![
            constant("BlockHashCount", &BLOCK_HASH_COUNT),
            constant("Version", &runtime_version(chain)),
            constant("SS58Prefix", &SS58_PREFIX),
        ],
        error: Some(PalletErrorMetadata::from(meta_type::<system::Error>())),
        index: SYSTEM_PALLET_INDEX,
    }
}

fn other_pallets() -> Vec<PalletMetadata> {
    vec![
        PalletMetadata {
            name: "Timestamp",
            storage: Some(PalletStorageMetadata {
                prefix: "Timestamp",
                entries: vec![entry("Now", plain::<u64>(), 0u64.encode())],
            }),
            calls: Some(PalletCallMetadata::from(meta_type::<timestamp::Call>())),
            event: None,
            constants: vec![constant("MinimumPeriod", &MINIMUM_PERIOD_MS)],
            error: None,
            index: TIMESTAMP_PALLET_INDEX,
        },
        PalletMetadata {
            name: "Balances",
            storage: None,
            calls: Some(PalletCallMetadata::from(meta_type::<balances::Call>())),
            event: Some(PalletEventMetadata::from(meta_type::<balances::Event>())),
            constants: vec![constant("ExistentialDeposit", &EXISTENTIAL_DEPOSIT)],
            error: Some(PalletErrorMetadata::from(meta_type::<balances::Error>())),
            index: BALANCES_PALLET_INDEX,
        },
        PalletMetadata {
            name: "Aura",
            storage: Some(PalletStorageMetadata {
                prefix: "Aura",
                entries: vec![entry("Authorities", plain::<Vec<AuraPublic>>(), vec![0])],
            }),
            calls: None,
            event: None,
            constants: vec![],
            error: None,
            index: AURA_PALLET_INDEX,
        },
    ]
}

fn signed_extensions() -> Vec<SignedExtensionMetadata> {
    let types: [(MetaType, MetaType); 9] = [
        (meta_type::<CheckNonZeroSender>(), meta_type::<()>()),
        (meta_type::<CheckSpecVersion>(), meta_type::<u32>()),
        (meta_type::<CheckTxVersion>(), meta_type::<u32>()),
        (meta_type::<CheckGenesis>(), meta_type::<H256>()),
        (meta_type::<CheckMortality>(), meta_type::<H256>()),
        (meta_type::<CheckNonce>(), meta_type::<()>()),
        (meta_type::<CheckWeight>(), meta_type::<()>()),
        (meta_type::<ChargeTransactionPayment>(), meta_type::<()>()),
        (
            meta_type::<CheckMetadataHash>(),
            meta_type::<Option<[u8; 32]>>(),
        ),
    ];
    SIGNED_EXTENSION_NAMES
        .iter()
        .zip(types)
        .map(
            |(identifier, (ty, additional_signed))| SignedExtensionMetadata {
                identifier: *identifier,
                ty,
                additional_signed,
            },
        )
        .collect()
}

/// The runtime's metadata (V14) for the chain named `chain`.
pub fn metadata(chain: &str) -> RuntimeMetadataPrefixed {
    let mut pallets = vec![system_pallet(chain)];
    pallets.extend(other_pallets());
    let extrinsic = ExtrinsicMetadata {
        ty: meta_type::<ExtrinsicTypeInfo>(),
        version: EXTRINSIC_FORMAT_VERSION,
        signed_extensions: signed_extensions(),
    };
    let mut v14 = RuntimeMetadataV14::new(pallets, extrinsic, meta_type::<Runtime>());
    for t in &mut v14.types.types {
        if let Some(real) = real_path(&t.ty.path.segments) {
            t.ty.path.segments = real;
        }
    }
    v14.into()
}

/// The metadata as `state_getMetadata` returns it (`RuntimeMetadataPrefixed` bytes).
pub fn metadata_bytes(chain: &str) -> Vec<u8> {
    metadata(chain).encode()
}
