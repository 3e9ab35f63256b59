//! Rebalancing: after hosters are added, move shards from the fullest hosters onto the emptiest
//! until the usable hosters hold within one shard of each other. Planning is pure over the
//! store; moves are copies checked against the part hashes (`Disperser::move_shard`).

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Result;
use crate::store::Store;

/// One shard to move.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub segment: u64,
    pub shard: usize,
    pub from: String,
    pub to: String,
}

/// Moves that bring the hosters of `usable` to within one shard of each other, never placing two
/// shards of a segment on one hoster; at most `max` of them (a pass's worth).
pub fn plan_moves(store: &Store, usable: &[String], max: usize) -> Result<Vec<Move>> {
    let mut held: BTreeMap<String, Vec<(u64, usize)>> =
        usable.iter().map(|h| (h.clone(), Vec::new())).collect();
    let mut segment_hosters: BTreeMap<u64, BTreeSet<String>> = BTreeMap::new();
    for segment in 0..store.dispersed_next()? {
        let Some(p) = store.placement(segment)? else {
            continue;
        };
        for (i, h) in p.hosters.iter().enumerate() {
            if let Some(h) = h {
                segment_hosters
                    .entry(segment)
                    .or_default()
                    .insert(h.clone());
                if let Some(list) = held.get_mut(h) {
                    list.push((segment, i));
                }
            }
        }
    }
    let mut moves = Vec::new();
    while moves.len() < max {
        let Some(mv) = next_move(&mut held, &mut segment_hosters) else {
            break;
        };
        moves.push(mv);
    }
    Ok(moves)
}

/// One move from the fullest hoster to the emptiest, while they differ by more than one shard,
/// of a segment the emptiest holds no shard of; applied to the counts.
fn next_move(
    held: &mut BTreeMap<String, Vec<(u64, usize)>>,
    segment_hosters: &mut BTreeMap<u64, BTreeSet<String>>,
) -> Option<Move> {
    let (from, _) = held
        .iter()
        .max_by_key(|(n, l)| (l.len(), std::cmp::Reverse(*n)))?;
    let (to, _) = held.iter().min_by_key(|(n, l)| (l.len(), *n))?;
    let (from, to) = (from.clone(), to.clone());
    if held[&from].len() <= held[&to].len() + 1 {
        return None;
    }
    let pos = held[&from]
        .iter()
        .position(|(s, _)| !segment_hosters.get(s).is_some_and(|hs| hs.contains(&to)))?;
    let (segment, shard) = held.get_mut(&from)?.remove(pos);
    held.get_mut(&to)?.push((segment, shard));
    if let Some(hs) = segment_hosters.get_mut(&segment) {
        hs.remove(&from);
        hs.insert(to.clone());
    }
    Some(Move {
        segment,
        shard,
        from,
        to,
    })
}
