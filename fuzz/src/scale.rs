//! The chain's SCALE formats as a follower, a sync or the history RPC reads them from a node, a
//! hoster or a restored segment (`node-plugin::substrate`, `runtime`): headers, blocks,
//! justifications, GRANDPA payloads, extrinsics and accounts, each with a byte-exact round trip
//! (decoding refuses trailing bytes, so what decodes is canonical), and the full block check a
//! sync runs (`node::check_block`) on made-up blocks and justifications.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use node_plugin::consensus::Authorities;
use node_plugin::node::check_block;
use node_plugin::runtime::storage::aura_authorities_key;
use node_plugin::runtime::{authorities_in, AccountInfo, State, UncheckedExtrinsic};
use node_plugin::{Block, GrandpaJustification, Header, Justifications, GRANDPA_ENGINE_ID};
use parity_scale_codec::{Decode, Encode};

use crate::{control, u32_at};

/// The dev authority set the seeds are sealed and justified by.
pub const AUTHORITY_SEED: &str = "fuzz";
pub const AUTHORITY_COUNT: u32 = 3;

/// Genesis hash the seeds' transfers are signed for.
pub const GENESIS: [u8; 32] = [0x47; 32];

pub fn authorities() -> &'static Authorities {
    static SET: OnceLock<Authorities> = OnceLock::new();
    SET.get_or_init(|| Authorities::dev(AUTHORITY_SEED, AUTHORITY_COUNT))
}

pub fn run(data: &[u8]) {
    let (ctl, rest) = control(data);
    match ctl % 7 {
        0 => {
            if let Ok(h) = Header::from_bytes(rest) {
                assert_eq!(h.encode(), rest, "header round trip");
                let _ = (h.hash(), h.digest.aura_slot());
                let _ = authorities().check_seal(&h);
            }
        }
        1 => {
            if let Ok(b) = Block::from_bytes(rest) {
                assert_eq!(b.encode(), rest, "block round trip");
                let _ = b.check_extrinsics_root();
            }
        }
        2 => {
            if let Ok(js) = Justifications::from_bytes(rest) {
                assert_eq!(js.encode(), rest, "justifications round trip");
                if let Some(frnk) = js.get(GRANDPA_ENGINE_ID) {
                    grandpa(frnk);
                }
            }
        }
        3 => grandpa(rest),
        4 => {
            if let Ok(x) = UncheckedExtrinsic::from_bytes(rest) {
                assert_eq!(x.to_bytes(), rest, "extrinsic round trip");
            }
            let mut input = rest;
            if let Ok(a) = AccountInfo::decode(&mut input) {
                if input.is_empty() {
                    assert_eq!(a.encode(), rest, "account round trip");
                }
            }
        }
        5 => block_check(rest),
        _ => {
            let state = BTreeMap::from([(aura_authorities_key(), rest.to_vec())]);
            let _ = authorities_in(&state);
        }
    }
}

fn grandpa(bytes: &[u8]) {
    if let Ok(g) = GrandpaJustification::from_bytes(bytes) {
        assert_eq!(g.encode(), bytes, "grandpa justification round trip");
        let (hash, number) = (g.commit.target_hash, g.commit.target_number);
        let _ = authorities().check_justification(&g, &hash, number);
    }
}

/// Block length u32 LE ‖ block ‖ justifications (absent when nothing follows); the parent is
/// taken from the block's own header so the check gets past the chain linkage.
fn block_check(bytes: &[u8]) {
    let Some(len) = u32_at(bytes, 0).map(|l| l as usize) else {
        return;
    };
    let Some(block) = bytes.get(4..4usize.saturating_add(len)) else {
        return;
    };
    let justifications = bytes.get(4 + len..).filter(|j| !j.is_empty());
    let Ok(decoded) = Block::from_bytes(block) else {
        return;
    };
    let number = u64::from(decoded.header.number);
    let Some(parent_number) = number.checked_sub(1) else {
        return;
    };
    let mut state = State::default();
    let parent = (parent_number, decoded.header.parent_hash);
    if let Ok(checked) = check_block(authorities(), parent, &mut state, block, justifications) {
        assert_eq!(checked.hash, decoded.header.hash());
    }
}
