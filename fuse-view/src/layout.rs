//! The mount's tree as pure functions: inode numbers, names, and which blocks each directory
//! holds. Nothing here touches the archive, so the layout is tested on its own.

/// Blocks per leaf directory (each block has a `.scale` and a `.json` file there), and leaf
/// directories per middle directory: block `n` lives in `blocks/<n / 10^6>/<(n / 1000) % 1000>/`.
/// A directory then never holds more than ~1,000 blocks, which `ls` and shell globs handle well,
/// and the path of a block is computed from its number alone (no index needed to list).
pub const BLOCKS_PER_DIR: u64 = 1_000;
/// Blocks under one top-level directory of `blocks/`.
pub const BLOCKS_PER_TOP: u64 = BLOCKS_PER_DIR * BLOCKS_PER_DIR;

/// Inode numbers carry their node: the kind in the top byte, the number (block, segment or
/// directory index) below. Block numbers stay far below 2^56.
const KIND_SHIFT: u32 = 56;
const VALUE_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// Fixed inodes (kind 0).
pub const INO_ROOT: u64 = 1;
const INO_README: u64 = 2;
const INO_HEAD: u64 = 3;
const INO_BLOCKS: u64 = 4;
const INO_BY_HASH: u64 = 5;
const INO_SEGMENTS: u64 = 6;
const INO_STATS: u64 = 7;

const KIND_TOP: u64 = 1;
const KIND_MID: u64 = 2;
const KIND_SCALE: u64 = 3;
const KIND_JSON: u64 = 4;
const KIND_HASH: u64 = 5;
const KIND_SEGMENT_DIR: u64 = 6;
const KIND_MANIFEST: u64 = 7;

pub const README_NAME: &str = "README";
pub const HEAD_NAME: &str = "head.json";
pub const STATS_NAME: &str = "mount-stats.json";
pub const BLOCKS_NAME: &str = "blocks";
pub const BY_HASH_NAME: &str = "by-hash";
pub const SEGMENTS_NAME: &str = "segments";
pub const MANIFEST_NAME: &str = "manifest.json";

/// One node of the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    Root,
    Readme,
    Head,
    Stats,
    Blocks,
    ByHash,
    Segments,
    /// `blocks/<top>/`.
    Top(u64),
    /// `blocks/<top>/<mid>/`.
    Mid {
        top: u64,
        mid: u64,
    },
    /// `blocks/…/<n>.scale`: the block's bytes as archived.
    Scale(u64),
    /// `blocks/…/<n>.json`: the decoded header.
    Json(u64),
    /// `by-hash/0x<hash>`: a symlink to block `n`'s `.scale` file.
    Hash(u64),
    /// `segments/<id>/`.
    SegmentDir(u64),
    /// `segments/<id>/manifest.json`.
    Manifest(u64),
}

impl Node {
    pub fn ino(self) -> u64 {
        let kinded = |kind: u64, value: u64| (kind << KIND_SHIFT) | (value & VALUE_MASK);
        match self {
            Node::Root => INO_ROOT,
            Node::Readme => INO_README,
            Node::Head => INO_HEAD,
            Node::Stats => INO_STATS,
            Node::Blocks => INO_BLOCKS,
            Node::ByHash => INO_BY_HASH,
            Node::Segments => INO_SEGMENTS,
            Node::Top(t) => kinded(KIND_TOP, t),
            Node::Mid { top, mid } => kinded(KIND_MID, top * BLOCKS_PER_DIR + mid),
            Node::Scale(n) => kinded(KIND_SCALE, n),
            Node::Json(n) => kinded(KIND_JSON, n),
            Node::Hash(n) => kinded(KIND_HASH, n),
            Node::SegmentDir(s) => kinded(KIND_SEGMENT_DIR, s),
            Node::Manifest(s) => kinded(KIND_MANIFEST, s),
        }
    }

    pub fn from_ino(ino: u64) -> Option<Node> {
        let value = ino & VALUE_MASK;
        Some(match ino >> KIND_SHIFT {
            0 => match ino {
                INO_ROOT => Node::Root,
                INO_README => Node::Readme,
                INO_HEAD => Node::Head,
                INO_STATS => Node::Stats,
                INO_BLOCKS => Node::Blocks,
                INO_BY_HASH => Node::ByHash,
                INO_SEGMENTS => Node::Segments,
                _ => return None,
            },
            KIND_TOP => Node::Top(value),
            KIND_MID => Node::Mid {
                top: value / BLOCKS_PER_DIR,
                mid: value % BLOCKS_PER_DIR,
            },
            KIND_SCALE => Node::Scale(value),
            KIND_JSON => Node::Json(value),
            KIND_HASH => Node::Hash(value),
            KIND_SEGMENT_DIR => Node::SegmentDir(value),
            KIND_MANIFEST => Node::Manifest(value),
            _ => return None,
        })
    }

    pub fn is_dir(self) -> bool {
        matches!(
            self,
            Node::Root
                | Node::Blocks
                | Node::ByHash
                | Node::Segments
                | Node::Top(_)
                | Node::Mid { .. }
                | Node::SegmentDir(_)
        )
    }
}

/// The leaf directory of block `n`: (top, mid).
pub fn dir_of(n: u64) -> (u64, u64) {
    (n / BLOCKS_PER_TOP, (n / BLOCKS_PER_DIR) % BLOCKS_PER_DIR)
}

/// First block number a leaf directory can hold; None past u64 (a made-up name).
pub fn dir_base(top: u64, mid: u64) -> Option<u64> {
    top.checked_mul(BLOCKS_PER_TOP)?
        .checked_add(mid.checked_mul(BLOCKS_PER_DIR)?)
}

/// Directory names under `blocks/`: three digits (more once numbers pass 10^9).
pub fn dir_name(index: u64) -> String {
    format!("{index:03}")
}

/// File name of block `n`: nine digits (sorted listings are in block order), then the extension.
pub fn block_file_name(n: u64, json: bool) -> String {
    format!("{n:09}.{}", if json { "json" } else { "scale" })
}

/// Parses a `blocks/` directory name: only the listed spelling (three digits, more once the
/// index passes 999), so each directory, like each block file, has exactly one path.
pub fn parse_dir_name(name: &str) -> Option<u64> {
    let n = parse_digits(name)?;
    (dir_name(n) == name).then_some(n)
}

/// Digits only, at least three.
fn parse_digits(name: &str) -> Option<u64> {
    if name.len() < 3 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// Parses a block file name: (number, is the `.json`). Only the canonical spelling (nine or more
/// digits, as listed) is accepted, so each block has exactly one path.
pub fn parse_block_file_name(name: &str) -> Option<(u64, bool)> {
    let (digits, json) = if let Some(d) = name.strip_suffix(".scale") {
        (d, false)
    } else {
        (name.strip_suffix(".json")?, true)
    };
    let n: u64 = parse_digits(digits)?;
    (block_file_name(n, json) == name).then_some((n, json))
}

/// Path of block `n`'s file relative to the mount's root: `blocks/000/012/000012345.scale`.
pub fn block_path(n: u64, json: bool) -> String {
    let (top, mid) = dir_of(n);
    format!(
        "{BLOCKS_NAME}/{}/{}/{}",
        dir_name(top),
        dir_name(mid),
        block_file_name(n, json)
    )
}

/// Where `by-hash/0x…` of block `n` points, relative to `by-hash/`.
pub fn symlink_target(n: u64) -> String {
    format!("../{}", block_path(n, false))
}

/// Parses `0x` + 64 lower-case hex digits (the listed spelling only).
pub fn parse_hash_name(name: &str) -> Option<[u8; 32]> {
    let body = name.strip_prefix("0x")?;
    if body.len() != 64 || !body.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let bytes = hex::decode(body).ok()?;
    bytes.try_into().ok()
}

/// The blocks of `first..=head` a leaf directory holds, as an inclusive range.
pub fn blocks_in_dir(top: u64, mid: u64, first: u64, head: u64) -> Option<(u64, u64)> {
    let base = dir_base(top, mid)?;
    let lo = base.max(first);
    let hi = base.saturating_add(BLOCKS_PER_DIR - 1).min(head);
    (lo <= hi).then_some((lo, hi))
}

/// The leaf directories (mid indices) of top directory `top` that hold blocks of `first..=head`.
pub fn mids_in_top(top: u64, first: u64, head: u64) -> Option<(u64, u64)> {
    let base = top.checked_mul(BLOCKS_PER_TOP)?;
    let lo_block = base.max(first);
    let hi_block = base.saturating_add(BLOCKS_PER_TOP - 1).min(head);
    (lo_block <= hi_block).then(|| (dir_of(lo_block).1, dir_of(hi_block).1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_round_trip() {
        for node in [
            Node::Root,
            Node::Readme,
            Node::Head,
            Node::Stats,
            Node::Blocks,
            Node::ByHash,
            Node::Segments,
            Node::Top(0),
            Node::Top(12),
            Node::Mid { top: 3, mid: 999 },
            Node::Scale(0),
            Node::Scale(12_345),
            Node::Json(u32::MAX as u64 * 1000),
            Node::Hash(7),
            Node::SegmentDir(41),
            Node::Manifest(41),
        ] {
            assert_eq!(Node::from_ino(node.ino()), Some(node), "{node:?}");
        }
        // The test vectors of specs/mount.md.
        assert_eq!(Node::Scale(12_345).ino(), 0x0300_0000_0000_3039);
        assert_eq!(
            Node::Mid {
                top: 1234,
                mid: 567
            }
            .ino(),
            0x0200_0000_0012_D687
        );
        assert_eq!(Node::Scale(1_234_567_890).ino(), 0x0300_0000_4996_02D2);
        assert_eq!(Node::from_ino(0), None);
        assert_eq!(Node::from_ino(99), None);
        assert_eq!(Node::from_ino(0xff << 56), None);
    }

    #[test]
    fn paths_follow_the_block_number() {
        assert_eq!(dir_of(12_345), (0, 12));
        assert_eq!(block_file_name(12_345, false), "000012345.scale");
        assert_eq!(block_file_name(12_345, true), "000012345.json");
        assert_eq!(block_path(12_345, true), "blocks/000/012/000012345.json");
        assert_eq!(symlink_target(12_345), "../blocks/000/012/000012345.scale");
        assert_eq!(dir_of(1_234_567_890), (1234, 567));
        assert_eq!(dir_name(1234), "1234");
        assert_eq!(
            parse_block_file_name("000012345.scale"),
            Some((12_345, false))
        );
        assert_eq!(
            parse_block_file_name("000012345.json"),
            Some((12_345, true))
        );
        // Only the listed spelling resolves: one path per block.
        assert_eq!(parse_block_file_name("12345.scale"), None);
        assert_eq!(parse_block_file_name("0000012345.scale"), None);
        assert_eq!(parse_block_file_name("00001234x.scale"), None);
        assert_eq!(parse_block_file_name("000012345.txt"), None);
        assert_eq!(parse_dir_name("012"), Some(12));
        assert_eq!(parse_dir_name("1234"), Some(1234));
        assert_eq!(parse_dir_name("0012"), None);
        assert_eq!(parse_dir_name("12"), None);
        assert_eq!(parse_dir_name("0a2"), None);
        let h = [0xab; 32];
        assert_eq!(parse_hash_name(&format!("0x{}", hex::encode(h))), Some(h));
        assert_eq!(parse_hash_name("0xabc"), None);
        assert_eq!(
            parse_hash_name(&format!("0x{}", hex::encode(h).to_uppercase())),
            None
        );
        assert_eq!(parse_hash_name(&hex::encode(h)), None);
    }

    #[test]
    fn directories_hold_only_archived_blocks() {
        // Archive of blocks 500..=2_003_400.
        let (first, head) = (500, 2_003_400);
        assert_eq!(blocks_in_dir(0, 0, first, head), Some((500, 999)));
        assert_eq!(blocks_in_dir(0, 1, first, head), Some((1000, 1999)));
        assert_eq!(
            blocks_in_dir(2, 3, first, head),
            Some((2_003_000, 2_003_400))
        );
        assert_eq!(blocks_in_dir(2, 4, first, head), None);
        assert_eq!(mids_in_top(0, first, head), Some((0, 999)));
        assert_eq!(mids_in_top(2, first, head), Some((0, 3)));
        assert_eq!(mids_in_top(3, first, head), None);
        // Made-up names far past u64 block numbers are simply absent (no overflow).
        assert_eq!(mids_in_top(u64::MAX / 1000, first, u64::MAX), None);
        assert_eq!(mids_in_top(18_446_744_073_709, 0, u64::MAX), Some((0, 551)));
        assert_eq!(blocks_in_dir(u64::MAX, 999, 0, u64::MAX), None);
        assert_eq!(dir_base(u64::MAX, 0), None);
        // No directory holds more than BLOCKS_PER_DIR blocks.
        for mid in 0..BLOCKS_PER_DIR {
            if let Some((lo, hi)) = blocks_in_dir(1, mid, first, head) {
                assert!(hi - lo < BLOCKS_PER_DIR);
            }
        }
    }
}
