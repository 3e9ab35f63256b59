//! Storage challenges and responses as they cross the wire (`prover::challenge`): both decoders
//! with round trips, `verify` on whatever decodes (it must refuse, not panic), and an honest
//! respond/verify round trip over a fuzzed shard in which any one changed byte must be refused.

use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use prover::challenge::{respond, verify, Challenge, Response, ShardTree, CHALLENGE_BYTES};

use crate::control;

/// Largest shard the honest round trip builds (8 chunks: paths of several levels).
const SHARD_BYTES_MAX: usize = 8 * 1024;

fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_bytes(&[9; 32]))
}

pub fn run(data: &[u8]) {
    let (ctl, rest) = control(data);
    // Decoding is cheap; the honest round trip signs and verifies twice, so it gets one control
    // value in eight and the fuzzer's time goes mostly to the decoders.
    match ctl % 8 {
        0..=3 => {
            if let Ok(c) = Challenge::decode(rest) {
                assert_eq!(c.encode().as_slice(), rest, "challenge round trip");
            }
        }
        4..=6 => {
            let Ok(r) = Response::decode(rest) else {
                return;
            };
            assert_eq!(r.encode(), rest, "response round trip");
            // Facts the verifier would take from its manifest, here from the response itself.
            let shard_bytes =
                u64::from_le_bytes(r.challenge.nonce[..8].try_into().unwrap_or([0; 8]));
            let key = signing_key().verifying_key();
            let verdict = verify(
                &r.challenge,
                &r,
                &key,
                &r.hoster_id,
                r.digest,
                shard_bytes >> (ctl >> 3),
                0,
                1_000,
            );
            assert!(verdict.is_err(), "a made-up response verified");
        }
        _ => honest(ctl, rest),
    }
}

/// Challenge fields from the first bytes, the shard from the rest; respond, encode, decode,
/// verify; then change one byte of the encoding and expect a refusal.
fn honest(ctl: u8, rest: &[u8]) {
    if rest.len() < CHALLENGE_BYTES + 1 {
        return;
    }
    let (head, shard) = rest.split_at(CHALLENGE_BYTES);
    let shard = &shard[..shard.len().min(SHARD_BYTES_MAX)];
    let mut nonce = [0u8; 32];
    nonce.copy_from_slice(&head[..32]);
    let challenge = Challenge {
        nonce,
        timestamp_ms: u64::from_le_bytes(head[32..40].try_into().unwrap_or([0; 8])),
        segment: u64::from_le_bytes(head[40..48].try_into().unwrap_or([0; 8])),
        shard: u32::from_le_bytes(head[48..52].try_into().unwrap_or([0; 4])),
        samples: u16::from(head[52] % 8) + 1,
    };
    let key = signing_key();
    let id = key.verifying_key().to_bytes();
    let tree = ShardTree::from_shard(shard);
    let chunk = |i: u64| {
        let start = usize::try_from(i).ok()? * 1024;
        shard
            .get(start..(start + 1024).min(shard.len()))
            .map(<[u8]>::to_vec)
    };
    let response = respond(&challenge, &tree, chunk, &id, key).unwrap();
    let mut wire = response.encode();
    let decoded = Response::decode(&wire).unwrap();
    assert_eq!(decoded, response);
    let check = |r: &Response| {
        verify(
            &challenge,
            r,
            &key.verifying_key(),
            &id,
            tree.root(),
            shard.len() as u64,
            0,
            1_000,
        )
    };
    check(&decoded).unwrap();
    let at = usize::from(u16::from_le_bytes([head[54], head[55]])) % wire.len();
    wire[at] ^= ctl | 1;
    if let Ok(tampered) = Response::decode(&wire) {
        assert!(
            check(&tampered).is_err(),
            "a changed byte at {at} still verified"
        );
    }
}
