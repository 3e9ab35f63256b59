//! `UncheckedExtrinsic` format 4 exactly as Substrate encodes it: unsigned (`0x04`, inherents
//! only) or signed (`0x84`) with a `MultiAddress`, a `MultiSignature` and the signed
//! extensions polkadot.js and substrate-interface know, in this order: CheckNonZeroSender,
//! CheckSpecVersion, CheckTxVersion, CheckGenesis, CheckMortality, CheckNonce, CheckWeight,
//! ChargeTransactionPayment, CheckMetadataHash. The signed payload is
//! `call ‖ extra ‖ additional`, hashed with BLAKE2b-256 first when longer than 256 bytes.

use std::marker::PhantomData;

use parity_scale_codec::{Compact, Decode, Encode};
use scale_info::TypeInfo;

use super::primitives::{AccountId32, Address, Era, MultiSignature, Signer, H256};
use super::types::RuntimeCall;
use crate::substrate::{blake2_256, Hash};

/// The extrinsic format version this runtime speaks.
pub const EXTRINSIC_FORMAT_VERSION: u8 = 4;
/// The version byte's top bit: the extrinsic carries a signature.
const SIGNED_BIT: u8 = 0b1000_0000;
/// Signed payloads longer than this are signed as their BLAKE2b-256 hash (sp_runtime's rule).
pub const SIGNED_PAYLOAD_HASH_THRESHOLD_BYTES: usize = 256;

/// Why an extrinsic is not valid: the pool refuses it and a block holding it is invalid. Each
/// names its sender (SS58-free hex) or the field at fault.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum InvalidTransaction {
    #[error("malformed extrinsic: {0}")]
    Malformed(String),
    #[error("unsupported extrinsic: {0}")]
    Unsupported(String),
    #[error("bad signature ({scheme}) from 0x{sender}: signed for another chain, runtime version, birth block or call")]
    BadProof {
        sender: String,
        scheme: &'static str,
    },
    #[error("stale nonce from 0x{sender}: got {got}, expected {expected}")]
    Stale {
        sender: String,
        got: u32,
        expected: u32,
    },
    #[error("future nonce from 0x{sender}: got {got}, expected {expected}")]
    Future {
        sender: String,
        got: u32,
        expected: u32,
    },
    #[error("0x{sender} cannot pay: {reason}")]
    Payment { sender: String, reason: String },
    #[error("era of 0x{sender}'s transaction: its birth block #{birth} is not one of the last blocks this chain keeps hashes of (expired or not yet made)")]
    AncientBirthBlock { sender: String, birth: u64 },
    #[error("unsigned extrinsic {0}: only the timestamp inherent may be unsigned, and only first")]
    BadInherent(String),
}

/// Hex of an account, for errors.
pub fn sender_hex(account: &AccountId32) -> String {
    hex::encode(account.0)
}

macro_rules! unit_extension {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, TypeInfo)]
        pub struct $name;
    };
}

unit_extension!(
    /// Refuses the all-zero sender (`frame_system::CheckNonZeroSender`).
    CheckNonZeroSender
);
unit_extension!(
    /// Signs the spec version (additional signed `u32`).
    CheckSpecVersion
);
unit_extension!(
    /// Signs the transaction version (additional signed `u32`).
    CheckTxVersion
);
unit_extension!(
    /// Signs the genesis hash (additional signed `H256`).
    CheckGenesis
);
unit_extension!(
    /// Weight accounting (nothing encoded).
    CheckWeight
);

/// The era (`frame_system::CheckMortality`); signs the birth block's hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct CheckMortality(pub Era);

/// The sender's nonce (`frame_system::CheckNonce`, `Compact<u32>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct CheckNonce(#[codec(compact)] pub u32);

/// The tip (`pallet_transaction_payment::ChargeTransactionPayment`, `Compact<u128>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct ChargeTransactionPayment(#[codec(compact)] pub u128);

/// `frame_metadata_hash_extension::Mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum Mode {
    #[codec(index = 0)]
    Disabled,
    #[codec(index = 1)]
    Enabled,
}

/// `frame_metadata_hash_extension::CheckMetadataHash`: only `Disabled` is accepted (this
/// runtime does not commit to a metadata hash), with additional signed `None`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct CheckMetadataHash {
    pub mode: Mode,
}

/// The extensions' extra data as a tuple, in order (the `Extra` of the extrinsic type).
pub type SignedExtraTuple = (
    CheckNonZeroSender,
    CheckSpecVersion,
    CheckTxVersion,
    CheckGenesis,
    CheckMortality,
    CheckNonce,
    CheckWeight,
    ChargeTransactionPayment,
    CheckMetadataHash,
);

/// The extensions' additional signed data, in order.
pub type AdditionalSignedTuple = ((), u32, u32, H256, H256, (), (), (), Option<[u8; 32]>);

/// Names of the signed extensions in order, as metadata lists them.
pub const SIGNED_EXTENSION_NAMES: [&str; 9] = [
    "CheckNonZeroSender",
    "CheckSpecVersion",
    "CheckTxVersion",
    "CheckGenesis",
    "CheckMortality",
    "CheckNonce",
    "CheckWeight",
    "ChargeTransactionPayment",
    "CheckMetadataHash",
];

/// What a signer chose: era, nonce, tip and metadata-hash mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedExtra {
    pub era: Era,
    pub nonce: u32,
    pub tip: u128,
    pub metadata_hash: Mode,
}

impl SignedExtra {
    fn to_tuple(self) -> SignedExtraTuple {
        (
            CheckNonZeroSender,
            CheckSpecVersion,
            CheckTxVersion,
            CheckGenesis,
            CheckMortality(self.era),
            CheckNonce(self.nonce),
            CheckWeight,
            ChargeTransactionPayment(self.tip),
            CheckMetadataHash {
                mode: self.metadata_hash,
            },
        )
    }

    fn from_tuple(t: SignedExtraTuple) -> Self {
        Self {
            era: (t.4).0,
            nonce: (t.5).0,
            tip: (t.7).0,
            metadata_hash: t.8.mode,
        }
    }
}

/// What the signer signs beyond the call and extra: fixed by the chain and the birth block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdditionalSigned {
    pub spec_version: u32,
    pub transaction_version: u32,
    pub genesis_hash: Hash,
    /// The era's birth block hash (the genesis hash for immortal transactions).
    pub birth_hash: Hash,
}

impl AdditionalSigned {
    fn to_tuple(self) -> AdditionalSignedTuple {
        (
            (),
            self.spec_version,
            self.transaction_version,
            H256(self.genesis_hash),
            H256(self.birth_hash),
            (),
            (),
            (),
            None,
        )
    }
}

/// The bytes a signer signs: `call ‖ extra ‖ additional`, or their BLAKE2b-256 when longer
/// than [`SIGNED_PAYLOAD_HASH_THRESHOLD_BYTES`].
pub fn signing_payload(
    call: &RuntimeCall,
    extra: &SignedExtra,
    additional: &AdditionalSigned,
) -> Vec<u8> {
    let raw = (call, extra.to_tuple(), additional.to_tuple()).encode();
    if raw.len() > SIGNED_PAYLOAD_HASH_THRESHOLD_BYTES {
        blake2_256(&raw).to_vec()
    } else {
        raw
    }
}

/// A signed extrinsic's signature part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtrinsicSignature {
    pub address: Address,
    pub signature: MultiSignature,
    pub extra: SignedExtra,
}

/// An extrinsic: signed, or unsigned (an inherent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UncheckedExtrinsic {
    pub signature: Option<ExtrinsicSignature>,
    pub function: RuntimeCall,
}

impl UncheckedExtrinsic {
    /// An unsigned extrinsic (inherent).
    pub fn new_unsigned(function: RuntimeCall) -> Self {
        Self {
            signature: None,
            function,
        }
    }

    /// `function` signed by `signer` with `extra`, for the chain and birth block in `additional`.
    pub fn new_signed(
        function: RuntimeCall,
        signer: &Signer,
        extra: SignedExtra,
        additional: &AdditionalSigned,
    ) -> Self {
        let signature = signer.sign(&signing_payload(&function, &extra, additional));
        Self {
            signature: Some(ExtrinsicSignature {
                address: Address::Id(signer.account()),
                signature,
                extra,
            }),
            function,
        }
    }

    /// The extrinsic's own bytes, as a block's body holds them (no outer length prefix).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        match &self.signature {
            Some(s) => {
                out.push(EXTRINSIC_FORMAT_VERSION | SIGNED_BIT);
                s.address.encode_to(&mut out);
                s.signature.encode_to(&mut out);
                s.extra.to_tuple().encode_to(&mut out);
            }
            None => out.push(EXTRINSIC_FORMAT_VERSION),
        }
        self.function.encode_to(&mut out);
        out
    }

    /// Decodes an extrinsic's own bytes (no outer length prefix); all of them must be used.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InvalidTransaction> {
        let malformed = |what: &str, e: parity_scale_codec::Error| {
            InvalidTransaction::Malformed(format!("{what}: {e}"))
        };
        let mut input = bytes;
        let version = u8::decode(&mut input).map_err(|e| malformed("version byte", e))?;
        if version & !SIGNED_BIT != EXTRINSIC_FORMAT_VERSION {
            return Err(InvalidTransaction::Malformed(format!(
                "extrinsic format version {} (version byte 0x{version:02x}); this runtime speaks {EXTRINSIC_FORMAT_VERSION}",
                version & !SIGNED_BIT
            )));
        }
        let signature = if version & SIGNED_BIT != 0 {
            let address = Address::decode(&mut input).map_err(|e| malformed("address", e))?;
            let signature =
                MultiSignature::decode(&mut input).map_err(|e| malformed("signature", e))?;
            let extra = SignedExtraTuple::decode(&mut input)
                .map_err(|e| malformed("signed extensions", e))?;
            Some(ExtrinsicSignature {
                address,
                signature,
                extra: SignedExtra::from_tuple(extra),
            })
        } else {
            None
        };
        let function = RuntimeCall::decode(&mut input).map_err(|e| malformed("call", e))?;
        if !input.is_empty() {
            return Err(InvalidTransaction::Malformed(format!(
                "{} trailing bytes after the call",
                input.len()
            )));
        }
        Ok(Self {
            signature,
            function,
        })
    }
}

/// The extrinsic hash Substrate reports (`author_submitExtrinsic`, polkadot.js `tx.hash`):
/// BLAKE2b-256 of the extrinsic with its length prefix.
pub fn extrinsic_hash(own_bytes: &[u8]) -> Hash {
    let mut prefixed = Compact(own_bytes.len() as u32).encode();
    prefixed.extend_from_slice(own_bytes);
    blake2_256(&prefixed)
}

/// Strips the length prefix a client sent with an extrinsic (clients send it SCALE-wrapped,
/// as in blocks); bytes that are not exactly one prefixed vector are returned unchanged.
pub fn strip_length_prefix(bytes: &[u8]) -> &[u8] {
    let mut input = bytes;
    match <Compact<u32>>::decode(&mut input) {
        Ok(Compact(len)) if len as usize == input.len() => input,
        _ => bytes,
    }
}

/// The type the metadata gives extrinsics: as sp_runtime describes `UncheckedExtrinsic`, an
/// opaque `Vec<u8>` whose type parameters name the address, call, signature and extra types
/// (clients build their codec from those).
pub struct UncheckedExtrinsicInfo<Address, Call, Signature, Extra>(
    PhantomData<(Address, Call, Signature, Extra)>,
);

impl<A, C, S, E> TypeInfo for UncheckedExtrinsicInfo<A, C, S, E>
where
    A: TypeInfo + 'static,
    C: TypeInfo + 'static,
    S: TypeInfo + 'static,
    E: TypeInfo + 'static,
{
    type Identity = Self;

    fn type_info() -> scale_info::Type {
        use scale_info::{build::Fields, meta_type, Path, Type, TypeParameter};
        Type::builder()
            .path(Path::new(
                "UncheckedExtrinsic",
                "sp_runtime::generic::unchecked_extrinsic",
            ))
            .type_params(vec![
                TypeParameter::new("Address", Some(meta_type::<A>())),
                TypeParameter::new("Call", Some(meta_type::<C>())),
                TypeParameter::new("Signature", Some(meta_type::<S>())),
                TypeParameter::new("Extra", Some(meta_type::<E>())),
            ])
            .composite(Fields::unnamed().field(|f| f.ty::<Vec<u8>>()))
    }
}

/// This runtime's extrinsic type, for the metadata.
pub type ExtrinsicTypeInfo =
    UncheckedExtrinsicInfo<Address, RuntimeCall, MultiSignature, SignedExtraTuple>;
