//! Proof-of-Authority consensus of the reference chain: the authority set (ed25519), Aura slot
//! authorship with a seal over the pre-seal header hash, and GRANDPA-style `FRNK` justifications
//! signed by a supermajority. Both producing and checking live here so a syncing node verifies
//! exactly what an authoring node signed.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use parity_scale_codec::Encode;

use crate::substrate::{
    blake2_256, Commit, DigestItem, GrandpaJustification, Hash, Header, Precommit, SignedPrecommit,
    AURA_ENGINE_ID,
};

/// Errors of block authorship and finality checks; each names the block it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("block {number}: {reason}")]
    BadSeal { number: u32, reason: String },
    #[error("block {number}: justification rejected: {reason}")]
    BadJustification { number: u32, reason: String },
}

/// GRANDPA's message tag for a precommit (`Message::Precommit` is variant 1 upstream).
const PRECOMMIT_MESSAGE_TAG: u8 = 1;
/// The one authority set this chain has (no set changes yet).
pub const AUTHORITY_SET_ID: u64 = 0;

/// The chain's authorities, in slot order. Signing keys are present on the authoring node only.
#[derive(Clone)]
pub struct Authorities {
    public: Vec<VerifyingKey>,
    secret: Vec<SigningKey>,
}

impl std::fmt::Debug for Authorities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret keys.
        f.debug_struct("Authorities")
            .field("count", &self.public.len())
            .finish()
    }
}

/// Development key derivation, as Substrate's `//Alice` dev keys: deterministic from a seed so
/// that every node of a test network agrees on the set without a key ceremony.
pub fn dev_signing_key(domain: &str, seed: &str, index: u32) -> SigningKey {
    let mut input = Vec::with_capacity(domain.len() + seed.len() + 4);
    input.extend_from_slice(domain.as_bytes());
    input.extend_from_slice(seed.as_bytes());
    input.extend_from_slice(&index.to_le_bytes());
    SigningKey::from_bytes(&blake2_256(&input))
}

impl Authorities {
    /// The `count` development authorities of the chain named by `seed`, with signing keys.
    pub fn dev(seed: &str, count: u32) -> Self {
        let secret: Vec<SigningKey> = (0..count)
            .map(|i| dev_signing_key("poa-authority", seed, i))
            .collect();
        Self {
            public: secret.iter().map(SigningKey::verifying_key).collect(),
            secret,
        }
    }

    /// A verifying-only set (what a syncing node knows).
    pub fn from_public(public: Vec<VerifyingKey>) -> Self {
        Self {
            public,
            secret: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.public.len()
    }

    pub fn is_empty(&self) -> bool {
        self.public.is_empty()
    }

    pub fn public_keys(&self) -> &[VerifyingKey] {
        &self.public
    }

    /// GRANDPA's supermajority: more than 2/3 of the set (n − ⌊(n−1)/3⌋ signers).
    pub fn threshold(&self) -> usize {
        let n = self.public.len();
        n - n.saturating_sub(1) / 3
    }

    /// Aura: the author of `slot` is authority `slot mod n`.
    pub fn author_index(&self, slot: u64) -> usize {
        (slot % self.public.len().max(1) as u64) as usize
    }

    /// Seals `header` (which must hold the slot's `PreRuntime` item and no seal yet) as the
    /// slot's author: appends a `Seal` `aura` item signing the pre-seal header hash.
    pub fn seal(&self, header: &mut Header, slot: u64) -> Result<(), ConsensusError> {
        let key =
            self.secret
                .get(self.author_index(slot))
                .ok_or_else(|| ConsensusError::BadSeal {
                    number: header.number,
                    reason: "this node holds no signing key for the slot's author".into(),
                })?;
        let pre_hash = header.hash();
        let signature = key.sign(&pre_hash);
        header.digest.logs.push(DigestItem::Seal(
            AURA_ENGINE_ID,
            signature.to_bytes().to_vec(),
        ));
        Ok(())
    }

    /// Checks a header's Aura seal: a slot item, then a last `Seal` item whose signature by the
    /// slot's author covers the header without it.
    pub fn check_seal(&self, header: &Header) -> Result<u64, ConsensusError> {
        let bad = |reason: String| ConsensusError::BadSeal {
            number: header.number,
            reason,
        };
        let slot = header
            .digest
            .aura_slot()
            .ok_or_else(|| bad("no aura slot in the digest".into()))?;
        let mut pre = header.clone();
        let sig = match pre.digest.logs.pop() {
            Some(DigestItem::Seal(engine, sig)) if engine == AURA_ENGINE_ID => sig,
            _ => return Err(bad("the last digest item is not an aura seal".into())),
        };
        let sig = <[u8; 64]>::try_from(sig.as_slice())
            .map_err(|_| bad(format!("seal is {} bytes, not 64", sig.len())))?;
        let author = self
            .public
            .get(self.author_index(slot))
            .ok_or_else(|| bad("empty authority set".into()))?;
        author
            .verify(&pre.hash(), &Signature::from_bytes(&sig))
            .map_err(|_| {
                bad(format!(
                    "seal is not authority {}'s signature for slot {slot}",
                    self.author_index(slot)
                ))
            })?;
        Ok(slot)
    }

    /// A GRANDPA-style justification for `(hash, number)` signed by the first `threshold()`
    /// authorities (SCALE `GrandpaJustification`, engine `FRNK`).
    pub fn justify(&self, hash: Hash, number: u32, round: u64) -> GrandpaJustification {
        let precommit = Precommit {
            target_hash: hash,
            target_number: number,
        };
        let message = precommit_message(&precommit, round, AUTHORITY_SET_ID);
        let precommits = self
            .secret
            .iter()
            .take(self.threshold())
            .map(|key| SignedPrecommit {
                precommit: precommit.clone(),
                signature: key.sign(&message).to_bytes(),
                id: key.verifying_key().to_bytes(),
            })
            .collect();
        GrandpaJustification {
            round,
            commit: Commit {
                target_hash: hash,
                target_number: number,
                precommits,
            },
            votes_ancestries: Vec::new(),
        }
    }

    /// Checks that `j` finalizes `(hash, number)`: every precommit targets it, is signed by a
    /// distinct member of the set, and the signers reach the supermajority.
    pub fn check_justification(
        &self,
        j: &GrandpaJustification,
        hash: &Hash,
        number: u32,
    ) -> Result<(), ConsensusError> {
        let bad = |reason: String| ConsensusError::BadJustification { number, reason };
        if j.commit.target_hash != *hash || j.commit.target_number != number {
            return Err(bad(format!(
                "it finalizes block {} 0x{}, not this block",
                j.commit.target_number,
                hex::encode(j.commit.target_hash)
            )));
        }
        let mut seen = vec![false; self.public.len()];
        for sp in &j.commit.precommits {
            if sp.precommit.target_hash != *hash || sp.precommit.target_number != number {
                return Err(bad("a precommit votes for another block".into()));
            }
            let Some(index) = self.public.iter().position(|k| k.to_bytes() == sp.id) else {
                return Err(bad(format!(
                    "signer 0x{} is not an authority",
                    hex::encode(sp.id)
                )));
            };
            if seen[index] {
                return Err(bad(format!("authority {index} signed twice")));
            }
            let message = precommit_message(&sp.precommit, j.round, AUTHORITY_SET_ID);
            self.public[index]
                .verify(&message, &Signature::from_bytes(&sp.signature))
                .map_err(|_| bad(format!("authority {index}'s signature is invalid")))?;
            seen[index] = true;
        }
        let signers = seen.iter().filter(|s| **s).count();
        if signers < self.threshold() {
            return Err(bad(format!(
                "{signers} of {} authorities signed, {} needed",
                self.public.len(),
                self.threshold()
            )));
        }
        Ok(())
    }
}

/// The bytes a GRANDPA voter signs: `(Message::Precommit(precommit), round, set_id)` in SCALE.
fn precommit_message(p: &Precommit, round: u64, set_id: u64) -> Vec<u8> {
    let mut out = vec![PRECOMMIT_MESSAGE_TAG];
    p.encode_to(&mut out);
    round.encode_to(&mut out);
    set_id.encode_to(&mut out);
    out
}

/// The seal-free hash that Aura signs (exposed for tests and tools).
pub fn pre_seal_hash(header: &Header) -> Hash {
    let mut pre = header.clone();
    if matches!(pre.digest.logs.last(), Some(DigestItem::Seal(..))) {
        pre.digest.logs.pop();
    }
    blake2_256(&pre.encode())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::substrate::Digest;

    fn header(slot: u64) -> Header {
        Header {
            parent_hash: [1; 32],
            number: 7,
            state_root: [2; 32],
            extrinsics_root: [3; 32],
            digest: Digest {
                logs: vec![DigestItem::PreRuntime(
                    AURA_ENGINE_ID,
                    slot.to_le_bytes().to_vec(),
                )],
            },
        }
    }

    #[test]
    fn seal_round_trip_and_forgery() {
        let a = Authorities::dev("t", 4);
        let mut h = header(6);
        a.seal(&mut h, 6).unwrap();
        assert_eq!(a.check_seal(&h).unwrap(), 6);
        // Claiming another slot (another author) breaks it.
        let mut forged = h.clone();
        forged.digest.logs[0] = DigestItem::PreRuntime(AURA_ENGINE_ID, 5u64.to_le_bytes().to_vec());
        assert!(a.check_seal(&forged).is_err());
        let mut forged = h.clone();
        forged.state_root = [9; 32];
        assert!(a.check_seal(&forged).is_err());
        assert_eq!(pre_seal_hash(&h), header(6).hash());
    }

    #[test]
    fn justification_needs_supermajority_of_the_set() {
        let a = Authorities::dev("t", 4);
        assert_eq!(a.threshold(), 3);
        assert_eq!(Authorities::dev("t", 1).threshold(), 1);
        assert_eq!(Authorities::dev("t", 7).threshold(), 5);
        let j = a.justify([5; 32], 9, 1);
        a.check_justification(&j, &[5; 32], 9).unwrap();
        assert!(a.check_justification(&j, &[6; 32], 9).is_err());
        let mut short = j.clone();
        short.commit.precommits.pop();
        let err = a.check_justification(&short, &[5; 32], 9).unwrap_err();
        assert!(err.to_string().contains("2 of 4"), "{err}");
        let mut dup = j.clone();
        dup.commit.precommits[1] = dup.commit.precommits[0].clone();
        assert!(a.check_justification(&dup, &[5; 32], 9).is_err());
        // Signed by another chain's authorities.
        let other = Authorities::dev("other", 4).justify([5; 32], 9, 1);
        assert!(a.check_justification(&other, &[5; 32], 9).is_err());
    }
}
