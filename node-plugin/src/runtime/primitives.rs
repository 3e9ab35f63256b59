//! Substrate's primitive types as the reference runtime encodes them: accounts, hashes,
//! `MultiAddress`, `MultiSignature` (ed25519 and sr25519), the transaction `Era`, storage-key
//! hashers and SS58 addresses. Each derives (or hand-writes) `TypeInfo`, so the metadata
//! describes exactly what is encoded; `metadata::real_path` gives them Substrate's type paths.

use parity_scale_codec::{Decode, Encode};
use scale_info::TypeInfo;

use crate::substrate::Hash;

/// Substrate's signing context for sr25519 (`sp_core::sr25519`): a signature made under any
/// other context does not verify here, and ours mean nothing elsewhere.
pub const SR25519_SIGNING_CONTEXT: &[u8] = b"substrate";
/// SS58 address format of the reference chain (42: Substrate's generic format).
pub const SS58_PREFIX: u16 = 42;
/// SS58 checksum domain (`"SS58PRE"`), as in `sp_core::crypto`.
const SS58_CHECKSUM_DOMAIN: &[u8] = b"SS58PRE";
/// Bytes of the SS58 checksum for a 32-byte account.
const SS58_CHECKSUM_BYTES: usize = 2;

/// A 32-byte account id (`sp_core::crypto::AccountId32`): an ed25519 or sr25519 public key.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, TypeInfo,
)]
pub struct AccountId32(pub [u8; 32]);

/// A 32-byte hash (`primitive_types::H256`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct H256(pub Hash);

/// How an extrinsic names an account (`sp_runtime::multiaddress::MultiAddress`). Only `Id` is
/// accepted by this runtime (it has no indices pallet); the others decode so a sender gets a
/// clear refusal instead of a codec error.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum MultiAddress<AccountId, AccountIndex: parity_scale_codec::HasCompact> {
    #[codec(index = 0)]
    Id(AccountId),
    #[codec(index = 1)]
    Index(#[codec(compact)] AccountIndex),
    #[codec(index = 2)]
    Raw(Vec<u8>),
    #[codec(index = 3)]
    Address32([u8; 32]),
    #[codec(index = 4)]
    Address20([u8; 20]),
}

/// The address type of this runtime's extrinsics (no account indices: `()`).
pub type Address = MultiAddress<AccountId32, ()>;

impl Address {
    /// The account it names, or why this runtime cannot resolve it.
    pub fn account(&self) -> Result<AccountId32, &'static str> {
        match self {
            MultiAddress::Id(id) => Ok(*id),
            MultiAddress::Index(_) => Err("MultiAddress::Index (this runtime has no indices)"),
            MultiAddress::Raw(_) => Err("MultiAddress::Raw"),
            MultiAddress::Address32(_) => Err("MultiAddress::Address32"),
            MultiAddress::Address20(_) => Err("MultiAddress::Address20"),
        }
    }
}

/// An ed25519 signature (`sp_core::ed25519::Signature`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct Ed25519Signature(pub [u8; 64]);

/// An sr25519 signature (`sp_core::sr25519::Signature`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct Sr25519Signature(pub [u8; 64]);

/// An ECDSA signature (`sp_core::ecdsa::Signature`): decoded, never accepted (an ECDSA key is
/// not a 32-byte account id without hashing, which this runtime does not do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct EcdsaSignature(pub [u8; 65]);

/// `sp_runtime::MultiSignature`, with Substrate's variant indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum MultiSignature {
    #[codec(index = 0)]
    Ed25519(Ed25519Signature),
    #[codec(index = 1)]
    Sr25519(Sr25519Signature),
    #[codec(index = 2)]
    Ecdsa(EcdsaSignature),
}

impl MultiSignature {
    /// Whether this is `signer`'s signature over `message`.
    pub fn verify(&self, message: &[u8], signer: &AccountId32) -> bool {
        match self {
            MultiSignature::Ed25519(sig) => {
                let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&signer.0) else {
                    return false;
                };
                let sig = ed25519_dalek::Signature::from_bytes(&sig.0);
                // Strict: no malleable signatures or small-order keys (as sp_io's ed25519).
                key.verify_strict(message, &sig).is_ok()
            }
            MultiSignature::Sr25519(sig) => {
                let (Ok(key), Ok(sig)) = (
                    schnorrkel::PublicKey::from_bytes(&signer.0),
                    schnorrkel::Signature::from_bytes(&sig.0),
                ) else {
                    return false;
                };
                key.verify_simple(SR25519_SIGNING_CONTEXT, message, &sig)
                    .is_ok()
            }
            MultiSignature::Ecdsa(_) => false,
        }
    }

    /// The scheme's name, for error messages.
    pub fn scheme(&self) -> &'static str {
        match self {
            MultiSignature::Ed25519(_) => "ed25519",
            MultiSignature::Sr25519(_) => "sr25519",
            MultiSignature::Ecdsa(_) => "ecdsa",
        }
    }
}

/// A key that signs extrinsics: ed25519 (fast; the development load) or sr25519 (what
/// polkadot.js keyrings use by default).
#[derive(Clone)]
pub enum Signer {
    Ed25519(ed25519_dalek::SigningKey),
    Sr25519(schnorrkel::Keypair),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret keys.
        write!(f, "Signer(0x{})", hex::encode(self.account().0))
    }
}

impl Signer {
    /// An sr25519 key from a 32-byte mini secret, expanded as Substrate expands seeds.
    pub fn sr25519_from_seed(seed: &[u8; 32]) -> Result<Self, String> {
        let mini = schnorrkel::MiniSecretKey::from_bytes(seed).map_err(|e| e.to_string())?;
        Ok(Signer::Sr25519(
            mini.expand_to_keypair(schnorrkel::ExpansionMode::Ed25519),
        ))
    }

    pub fn account(&self) -> AccountId32 {
        match self {
            Signer::Ed25519(k) => AccountId32(k.verifying_key().to_bytes()),
            Signer::Sr25519(k) => AccountId32(k.public.to_bytes()),
        }
    }

    pub fn sign(&self, message: &[u8]) -> MultiSignature {
        use ed25519_dalek::Signer as _;
        match self {
            Signer::Ed25519(k) => {
                MultiSignature::Ed25519(Ed25519Signature(k.sign(message).to_bytes()))
            }
            Signer::Sr25519(k) => MultiSignature::Sr25519(Sr25519Signature(
                k.sign_simple(SR25519_SIGNING_CONTEXT, message).to_bytes(),
            )),
        }
    }
}

/// A transaction's validity window (`sp_runtime::generic::Era`): immortal, or `period` blocks
/// (a power of two, 4..=65536) from the birth block whose number is `phase` modulo `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    Immortal,
    Mortal { period: u64, phase: u64 },
}

impl Era {
    /// A mortal era of about `period` blocks starting at block `current` (as sp_runtime's
    /// `Era::mortal`: period rounded up to a power of two in 4..=65536, phase quantized).
    pub fn mortal(period: u64, current: u64) -> Self {
        let period = period
            .checked_next_power_of_two()
            .unwrap_or(1 << 16)
            .clamp(4, 1 << 16);
        let phase = current % period;
        let quantize_factor = (period >> 12).max(1);
        Era::Mortal {
            period,
            phase: phase / quantize_factor * quantize_factor,
        }
    }

    /// The first block the transaction is valid in, seen from block `current`.
    pub fn birth(&self, current: u64) -> u64 {
        match *self {
            Era::Immortal => 0,
            Era::Mortal { period, phase } => (current.max(phase) - phase) / period * period + phase,
        }
    }

    /// The first block it is no longer valid in, seen from block `current`.
    pub fn death(&self, current: u64) -> u64 {
        match *self {
            Era::Immortal => u64::MAX,
            Era::Mortal { period, .. } => self.birth(current).saturating_add(period),
        }
    }
}

impl Encode for Era {
    fn encode_to<T: parity_scale_codec::Output + ?Sized>(&self, out: &mut T) {
        match *self {
            Era::Immortal => out.push_byte(0),
            Era::Mortal { period, phase } => {
                let quantize_factor = (period >> 12).max(1);
                let low = (period.trailing_zeros().saturating_sub(1)).clamp(1, 15) as u16;
                let encoded = low | (((phase / quantize_factor) as u16) << 4);
                encoded.encode_to(out);
            }
        }
    }
}

impl Decode for Era {
    fn decode<I: parity_scale_codec::Input>(
        input: &mut I,
    ) -> Result<Self, parity_scale_codec::Error> {
        let first = input.read_byte()?;
        if first == 0 {
            return Ok(Era::Immortal);
        }
        let encoded = u64::from(first) + (u64::from(input.read_byte()?) << 8);
        let period = 2u64 << (encoded % (1 << 4));
        let quantize_factor = (period >> 12).max(1);
        let phase = (encoded >> 4) * quantize_factor;
        if period >= 4 && phase < period {
            Ok(Era::Mortal { period, phase })
        } else {
            Err("invalid period and phase".into())
        }
    }
}

impl TypeInfo for Era {
    type Identity = Self;

    /// As sp_runtime describes it: `Immortal` (index 0) and `Mortal1`..`Mortal255`, each the
    /// era's second byte, indexed by its first.
    fn type_info() -> scale_info::Type {
        use scale_info::{build::Variants, Path, Type};
        let mut variants = Variants::new().variant("Immortal", |v| v.index(0));
        for first in 1..=u8::MAX {
            let name: &'static str = MORTAL_NAMES[usize::from(first) - 1];
            variants = variants.variant(name, |v| {
                v.index(first)
                    .fields(scale_info::build::Fields::unnamed().field(|f| f.ty::<u8>()))
            });
        }
        Type::builder()
            .path(Path::new("Era", "sp_runtime::generic::era"))
            .variant(variants)
    }
}

/// Variant names of [`Era`]'s type info (`Mortal1`..`Mortal255`), a static table because
/// scale-info's meta form takes `&'static str`.
static MORTAL_NAMES: [&str; 255] = include!("era_names.in");

/// Storage key of a plain value: `twox128(pallet) ‖ twox128(item)`.
pub fn value_key(pallet: &str, item: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(32);
    k.extend_from_slice(&sp_crypto_hashing::twox_128(pallet.as_bytes()));
    k.extend_from_slice(&sp_crypto_hashing::twox_128(item.as_bytes()));
    k
}

/// Storage key of a `Blake2_128Concat` map entry: prefix ‖ blake2_128(key) ‖ key.
pub fn blake2_128_concat_key(pallet: &str, item: &str, key: &[u8]) -> Vec<u8> {
    let mut k = value_key(pallet, item);
    k.extend_from_slice(&sp_crypto_hashing::blake2_128(key));
    k.extend_from_slice(key);
    k
}

/// Storage key of a `Twox64Concat` map entry: prefix ‖ twox64(key) ‖ key.
pub fn twox_64_concat_key(pallet: &str, item: &str, key: &[u8]) -> Vec<u8> {
    let mut k = value_key(pallet, item);
    k.extend_from_slice(&sp_crypto_hashing::twox_64(key));
    k.extend_from_slice(key);
    k
}

fn ss58_checksum(body: &[u8]) -> [u8; 64] {
    let mut input = SS58_CHECKSUM_DOMAIN.to_vec();
    input.extend_from_slice(body);
    sp_crypto_hashing::blake2_512(&input)
}

fn ss58_prefix_bytes(format: u16) -> Vec<u8> {
    if format < 64 {
        vec![format as u8]
    } else {
        // sp_core's two-byte form for formats 64..16383.
        let first = ((format & 0b1111_1100) as u8 >> 2) | 0b0100_0000;
        let second = ((format >> 8) as u8) | ((format & 0b11) as u8) << 6;
        vec![first, second]
    }
}

/// The SS58 address of `account` in `format` (this chain: [`SS58_PREFIX`]).
pub fn ss58_encode(account: &AccountId32, format: u16) -> String {
    let mut body = ss58_prefix_bytes(format);
    body.extend_from_slice(&account.0);
    let checksum = ss58_checksum(&body);
    body.extend_from_slice(&checksum[..SS58_CHECKSUM_BYTES]);
    bs58::encode(body).into_string()
}

/// The account in an SS58 address of any format (the checksum must hold), or a `0x`-hex
/// 32-byte public key.
pub fn parse_account(text: &str) -> Result<AccountId32, String> {
    if let Some(hex_body) = text.strip_prefix("0x") {
        let raw = hex::decode(hex_body).map_err(|e| format!("{text:?}: {e}"))?;
        return <[u8; 32]>::try_from(raw.as_slice())
            .map(AccountId32)
            .map_err(|_| format!("{text:?}: an account is 32 bytes, got {}", raw.len()));
    }
    let raw = bs58::decode(text)
        .into_vec()
        .map_err(|e| format!("{text:?} is not an SS58 address: {e}"))?;
    let prefix_len = match raw.first() {
        Some(b) if *b < 64 => 1,
        Some(b) if *b < 128 => 2,
        _ => return Err(format!("{text:?} is not an SS58 address: bad format byte")),
    };
    if raw.len() != prefix_len + 32 + SS58_CHECKSUM_BYTES {
        return Err(format!(
            "{text:?} is not the SS58 address of a 32-byte account"
        ));
    }
    let (body, checksum) = raw.split_at(prefix_len + 32);
    if ss58_checksum(body)[..SS58_CHECKSUM_BYTES] != *checksum {
        return Err(format!("{text:?}: SS58 checksum mismatch"));
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(&body[prefix_len..]);
    Ok(AccountId32(id))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn era_matches_sp_runtime_vectors() {
        // sp_runtime's own vectors (generic/era.rs tests).
        assert_eq!(Era::Immortal.encode(), vec![0]);
        let e = Era::mortal(64, 42);
        assert_eq!(e.encode(), vec![5 + 42 % 16 * 16, 42 / 16]);
        assert_eq!(Era::decode(&mut &e.encode()[..]).unwrap(), e);
        let e = Era::mortal(32768, 20000);
        assert_eq!(
            e.encode(),
            vec![(14 + 2500 % 16 * 16) as u8, (2500 / 16) as u8]
        );
        assert_eq!(Era::decode(&mut &e.encode()[..]).unwrap(), e);
        assert_eq!(Era::mortal(8, 429119).encode(), vec![0x72, 0x00]);
        // birth/death: valid from the quantized phase block for one period.
        let e = Era::mortal(4, 6);
        assert_eq!((e.birth(6), e.death(6)), (6, 10));
        assert_eq!((e.birth(9), e.death(9)), (6, 10));
        assert_eq!(e.birth(10), 10);
        assert_eq!(Era::Immortal.birth(1000), 0);
        // Invalid encodings are errors: period 2 (low nibble 0), phase >= period.
        assert!(Era::decode(&mut &[0x10u8, 0][..]).is_err());
        assert!(Era::decode(&mut &[0xf1u8, 0xff][..]).is_err());
    }

    #[test]
    fn ss58_round_trip_and_known_address() {
        // Substrate's well-known //Alice sr25519 key and its generic (42) address.
        let alice = AccountId32(
            hex::decode("d43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        let addr = ss58_encode(&alice, SS58_PREFIX);
        assert_eq!(addr, "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY");
        assert_eq!(parse_account(&addr).unwrap(), alice);
        let mut bad = addr.into_bytes();
        bad[10] = if bad[10] == b'a' { b'b' } else { b'a' };
        assert!(parse_account(std::str::from_utf8(&bad).unwrap()).is_err());
        assert_eq!(
            parse_account(&format!("0x{}", hex::encode(alice.0))).unwrap(),
            alice
        );
    }

    #[test]
    fn signatures_verify_only_for_their_signer_and_message() {
        let ed = Signer::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
        let sr = Signer::sr25519_from_seed(&[8; 32]).unwrap();
        for s in [&ed, &sr] {
            let sig = s.sign(b"payload");
            assert!(sig.verify(b"payload", &s.account()));
            assert!(!sig.verify(b"payloaD", &s.account()));
        }
        assert!(!ed.sign(b"x").verify(b"x", &sr.account()));
        // An sr25519 signature under another context does not verify.
        let Signer::Sr25519(k) = &sr else {
            unreachable!()
        };
        let other =
            MultiSignature::Sr25519(Sr25519Signature(k.sign_simple(b"other", b"x").to_bytes()));
        assert!(!other.verify(b"x", &sr.account()));
    }
}
