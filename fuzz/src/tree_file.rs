//! A prover's kept shard tree files (`<data dir>/trees/*.tree`, read back at every restart):
//! `decode_tree_file` against the part lengths the file names, checksum recomputed on request;
//! what decodes encodes back to the same bytes.

use zdb_backend::prove::{decode_tree_file, encode_tree_file, TREE_FILE_MAGIC};

use crate::{control, u32_at};

/// Parts considered per file: the archiver's shards have a handful of 64 KiB parts.
const PARTS_MAX: usize = 64;

/// The largest part a hoster stores (0-db's value limit).
const PART_BYTES_MAX: u64 = 8 * 1024 * 1024;

pub fn run(data: &[u8]) {
    let (ctl, rest) = control(data);
    let mut bytes = rest.to_vec();
    let header = TREE_FILE_MAGIC.len();
    // The part lengths the hoster holds: by default those the file names (so it can match), each
    // bounded as storage bounds them; with bit 1 set, one part fewer (a shard rewritten since).
    let count = u32_at(&bytes, header)
        .map_or(0, |c| c as usize)
        .min(PARTS_MAX);
    let mut lens: Vec<u64> = (0..count)
        .filter_map(|i| bytes.get(header + 12 + 8 * i..header + 20 + 8 * i))
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) % (PART_BYTES_MAX + 1))
        .collect();
    if ctl & 2 != 0 {
        lens.pop();
    }
    if ctl & 1 != 0 && bytes.len() >= 32 {
        let end = bytes.len() - 32;
        let sum = blake3::hash(&bytes[..end]);
        bytes[end..].copy_from_slice(sum.as_bytes());
    }
    if let Some(leaves) = decode_tree_file(&bytes, &lens) {
        assert_eq!(
            encode_tree_file(&lens, &leaves),
            bytes,
            "tree file round trip"
        );
    }
}
