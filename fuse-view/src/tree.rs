//! What `stat`, a lookup and `ls` see, as functions of one view snapshot: attributes and TTLs per
//! node kind, the child of a directory by name, and directory listings by entry offset. File
//! sizes (they cost a read) and the `by-hash/` catalog are given by the caller.

use std::time::{Duration, SystemTime};

use fuser::{FileAttr, FileType, INodeNo};

use crate::layout::{self, Node};
use crate::view::{View, REFRESH_INTERVAL_MS};

/// How long the kernel may cache names and attributes of things that never change (block files,
/// manifests, symlinks): archived blocks are immutable.
const IMMUTABLE_TTL: Duration = Duration::from_secs(3600);
/// Directories and `head.json` change as blocks are archived.
const CHANGING_TTL: Duration = Duration::from_millis(REFRESH_INTERVAL_MS);
/// Hashes fetched per catalog read while listing `by-hash/`: one RocksDB scan per batch.
pub(crate) const BY_HASH_BATCH: u64 = 512;
/// Listing offsets of the first real entry: 0 is ".", 1 is "..".
const FIRST_CHILD_INDEX: u64 = 2;

/// What every attribute carries besides the node's own: the mount time and the owner.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamps {
    pub mounted_at: SystemTime,
    pub uid: u32,
    pub gid: u32,
}

pub(crate) fn file_type(node: Node) -> FileType {
    match node {
        n if n.is_dir() => FileType::Directory,
        Node::Hash(_) => FileType::Symlink,
        _ => FileType::RegularFile,
    }
}

/// Whether the node's content changes while mounted (it then has TTL 0 and is served from the
/// snapshot its last getattr sized).
pub(crate) fn is_changing_file(node: Node) -> bool {
    matches!(node, Node::Head | Node::Stats | Node::Manifest(_))
}

/// How long the kernel may keep the node's name and attributes.
pub(crate) fn ttl(node: Node) -> Duration {
    match node {
        n if n.is_dir() => CHANGING_TTL,
        n if is_changing_file(n) => Duration::ZERO,
        _ => IMMUTABLE_TTL,
    }
}

/// The node's mtime (also atime and ctime). Changing files get `now` or the view's change time,
/// so the kernel drops pages it held for older content.
fn time_of(node: Node, view: &View, mounted_at: SystemTime, now: SystemTime) -> SystemTime {
    match node {
        Node::SegmentDir(_) => mounted_at,
        n if n.is_dir() => view.changed,
        // Size and mtime from the same view: a refresh in between cannot pair new bytes with the
        // old mtime (the kernel would keep the old pages).
        Node::Head => view.changed,
        Node::Stats | Node::Manifest(_) => now,
        _ => mounted_at,
    }
}

/// The attributes of `node` whose content is `size` bytes long, and their TTL.
pub(crate) fn attr(
    node: Node,
    size: u64,
    view: &View,
    stamps: &Stamps,
    now: SystemTime,
) -> (FileAttr, Duration) {
    let kind = file_type(node);
    let time = time_of(node, view, stamps.mounted_at, now);
    let perm = match kind {
        FileType::Directory => 0o555,
        FileType::Symlink => 0o777,
        _ => 0o444,
    };
    let attr = FileAttr {
        ino: INodeNo(node.ino()),
        size,
        blocks: size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind,
        perm,
        nlink: if kind == FileType::Directory { 2 } else { 1 },
        uid: stamps.uid,
        gid: stamps.gid,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    };
    (attr, ttl(node))
}

/// The directory that lists `node` (`..`).
pub(crate) fn parent_of(node: Node) -> Node {
    match node {
        Node::Top(_) => Node::Blocks,
        Node::Mid { top, .. } => Node::Top(top),
        Node::SegmentDir(_) => Node::Segments,
        _ => Node::Root,
    }
}

/// The child `name` of `parent` in `view`, if it exists; `by_hash` looks a hash up in the
/// catalog (block number).
pub(crate) fn child(
    view: &View,
    parent: Node,
    name: &str,
    by_hash: impl FnOnce(&[u8; 32]) -> Option<u64>,
) -> Option<Node> {
    let Some((first, head)) = view.range else {
        return fixed_child(view, parent, name);
    };
    match parent {
        Node::Blocks => {
            let t = layout::parse_dir_name(name)?;
            layout::mids_in_top(t, first, head).map(|_| Node::Top(t))
        }
        Node::Top(top) => {
            let mid = layout::parse_dir_name(name)?;
            (mid < layout::BLOCKS_PER_DIR && layout::blocks_in_dir(top, mid, first, head).is_some())
                .then_some(Node::Mid { top, mid })
        }
        Node::Mid { top, mid } => {
            let (n, json) = layout::parse_block_file_name(name)?;
            (layout::dir_of(n) == (top, mid) && (first..=head).contains(&n)).then_some(if json {
                Node::Json(n)
            } else {
                Node::Scale(n)
            })
        }
        Node::ByHash => {
            let n = by_hash(&layout::parse_hash_name(name)?)?;
            (first..=head).contains(&n).then_some(Node::Hash(n))
        }
        _ => fixed_child(view, parent, name),
    }
}

/// Children that exist whether or not blocks are archived (None for the others).
fn fixed_child(view: &View, parent: Node, name: &str) -> Option<Node> {
    match parent {
        Node::Root => ROOT_ENTRIES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(node, _)| *node),
        Node::Segments => {
            let s: u64 = name.parse().ok()?;
            (s.to_string() == name && s < view.segments).then_some(Node::SegmentDir(s))
        }
        Node::SegmentDir(s) => (name == layout::MANIFEST_NAME).then_some(Node::Manifest(s)),
        _ => None,
    }
}

/// The root's entries in listing order.
const ROOT_ENTRIES: [(Node, &str); 6] = [
    (Node::Readme, layout::README_NAME),
    (Node::Head, layout::HEAD_NAME),
    (Node::Blocks, layout::BLOCKS_NAME),
    (Node::ByHash, layout::BY_HASH_NAME),
    (Node::Segments, layout::SEGMENTS_NAME),
    (Node::Stats, layout::STATS_NAME),
];

/// Lists directory `node` from entry index `offset` (0 = "."), calling `add(next_offset, child,
/// name)` for each entry until it returns false (the kernel's buffer is full). Entries are
/// computed from their index, so a directory of millions lists lazily, a buffer at a time.
/// `hashes(first, last)` reads the catalog's block hashes for `by-hash/` (None: stop listing).
pub(crate) fn list(
    view: &View,
    node: Node,
    offset: u64,
    hashes: impl FnMut(u64, u64) -> Option<Vec<[u8; 32]>>,
    mut add: impl FnMut(u64, Node, &str) -> bool,
) {
    if offset == 0 && !add(1, node, ".") {
        return;
    }
    if offset <= 1 && !add(2, parent_of(node), "..") {
        return;
    }
    let j = offset.saturating_sub(FIRST_CHILD_INDEX);
    // Each lister gets the entry index past "..", and `add` takes the child's own index.
    let mut add_at = |i: u64, child: Node, name: &str| add(i + FIRST_CHILD_INDEX + 1, child, name);
    match (node, view.range) {
        (Node::Root, _) => list_root(j, &mut add_at),
        (Node::Segments, _) => list_segments(j, view.segments, &mut add_at),
        (Node::SegmentDir(s), _) if j == 0 => {
            add_at(0, Node::Manifest(s), layout::MANIFEST_NAME);
        }
        (Node::Blocks, Some(range)) => list_blocks(j, range, &mut add_at),
        (Node::Top(top), Some(range)) => list_top(j, top, range, &mut add_at),
        (Node::Mid { top, mid }, Some(range)) => list_mid(j, (top, mid), range, &mut add_at),
        (Node::ByHash, Some(range)) => list_by_hash(j, range, hashes, &mut add_at),
        _ => {}
    }
}

/// What the listers call per entry: (index past "..", child, name) → room left.
type Add<'a> = dyn FnMut(u64, Node, &str) -> bool + 'a;

fn list_root(j: u64, add: &mut Add<'_>) {
    for (k, (child, name)) in ROOT_ENTRIES.iter().enumerate().skip(j as usize) {
        if !add(k as u64, *child, name) {
            return;
        }
    }
}

fn list_segments(j: u64, segments: u64, add: &mut Add<'_>) {
    for s in j..segments {
        if !add(s, Node::SegmentDir(s), &s.to_string()) {
            return;
        }
    }
}

fn list_blocks(j: u64, (first, head): (u64, u64), add: &mut Add<'_>) {
    let (lo, hi) = (
        first / layout::BLOCKS_PER_TOP,
        head / layout::BLOCKS_PER_TOP,
    );
    for t in lo.saturating_add(j)..=hi {
        if !add(t - lo, Node::Top(t), &layout::dir_name(t)) {
            return;
        }
    }
}

fn list_top(j: u64, top: u64, (first, head): (u64, u64), add: &mut Add<'_>) {
    let Some((lo, hi)) = layout::mids_in_top(top, first, head) else {
        return;
    };
    for mid in lo.saturating_add(j)..=hi {
        if !add(mid - lo, Node::Mid { top, mid }, &layout::dir_name(mid)) {
            return;
        }
    }
}

/// A leaf lists `.scale`, `.json` per block, in block order.
fn list_mid(j: u64, (top, mid): (u64, u64), (first, head): (u64, u64), add: &mut Add<'_>) {
    let Some((lo, hi)) = layout::blocks_in_dir(top, mid, first, head) else {
        return;
    };
    for k in j..(hi - lo + 1) * 2 {
        let (n, json) = (lo + k / 2, k % 2 == 1);
        let child = if json { Node::Json(n) } else { Node::Scale(n) };
        if !add(k, child, &layout::block_file_name(n, json)) {
            return;
        }
    }
}

fn list_by_hash(
    j: u64,
    (first, head): (u64, u64),
    mut hashes: impl FnMut(u64, u64) -> Option<Vec<[u8; 32]>>,
    add: &mut Add<'_>,
) {
    let mut n = first.saturating_add(j);
    while n <= head {
        let last = n.saturating_add(BY_HASH_BATCH - 1).min(head);
        let Some(batch) = hashes(n, last) else {
            return;
        };
        for (k, h) in batch.iter().enumerate() {
            let b = n + k as u64;
            if !add(b - first, Node::Hash(b), &format!("0x{}", hex::encode(h))) {
                return;
            }
        }
        match last.checked_add(1) {
            Some(next) => n = next,
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::UNIX_EPOCH;

    fn view(range: Option<(u64, u64)>, segments: u64) -> View {
        View {
            range,
            segments,
            changed: UNIX_EPOCH + Duration::from_secs(20),
            head_json: Arc::new(Vec::new()),
        }
    }

    const STAMPS: Stamps = Stamps {
        mounted_at: UNIX_EPOCH,
        uid: 1000,
        gid: 100,
    };

    /// Every entry of a listing from `offset`: (next offset, node, name), at most `room`.
    fn listing(v: &View, node: Node, offset: u64, room: usize) -> Vec<(u64, Node, String)> {
        let mut out = Vec::new();
        let hashes = |a: u64, b: u64| Some((a..=b).map(|n| [n as u8; 32]).collect());
        list(v, node, offset, hashes, |off, child, name| {
            if out.len() == room {
                return false;
            }
            out.push((off, child, name.to_string()));
            true
        });
        out
    }

    #[test]
    fn attributes_and_ttl_follow_the_node_kind() {
        let v = view(Some((0, 10)), 2);
        let now = UNIX_EPOCH + Duration::from_secs(99);
        let at = |node, size| attr(node, size, &v, &STAMPS, now);

        let (a, ttl) = at(Node::Blocks, 0);
        assert_eq!(
            (a.kind, a.perm, a.nlink, ttl),
            (FileType::Directory, 0o555, 2, CHANGING_TTL)
        );
        assert_eq!(a.mtime, v.changed, "a directory changes with the view");
        assert_eq!((a.uid, a.gid), (1000, 100));
        assert_eq!(
            at(Node::SegmentDir(1), 0).0.mtime,
            UNIX_EPOCH,
            "a segment never changes"
        );

        let (a, ttl) = at(Node::Scale(5), 1025);
        assert_eq!(
            (a.kind, a.perm, a.nlink, ttl),
            (FileType::RegularFile, 0o444, 1, IMMUTABLE_TTL)
        );
        assert_eq!((a.size, a.blocks, a.mtime), (1025, 3, UNIX_EPOCH));
        assert_eq!(a.ino, INodeNo(Node::Scale(5).ino()));
        assert_eq!(at(Node::Json(5), 1).1, IMMUTABLE_TTL);
        assert_eq!(at(Node::Readme, 1).1, IMMUTABLE_TTL);

        let (a, ttl) = at(Node::Hash(5), 30);
        assert_eq!(
            (a.kind, a.perm, ttl),
            (FileType::Symlink, 0o777, IMMUTABLE_TTL)
        );

        // Changing files: never cached, and an mtime that moves with their content.
        let (a, ttl) = at(Node::Head, 80);
        assert_eq!((ttl, a.mtime), (Duration::ZERO, v.changed));
        for node in [Node::Stats, Node::Manifest(1)] {
            let (a, ttl) = at(node, 80);
            assert_eq!(
                (a.kind, ttl, a.mtime),
                (FileType::RegularFile, Duration::ZERO, now)
            );
        }
    }

    #[test]
    fn lookups_find_only_archived_names() {
        let v = view(Some((500, 2_003_400)), 3);
        let none = |_: &[u8; 32]| -> Option<u64> { panic!("no catalog lookup expected") };
        let look = |parent, name: &str| child(&v, parent, name, none);
        assert_eq!(look(Node::Root, "head.json"), Some(Node::Head));
        assert_eq!(look(Node::Root, "mount-stats.json"), Some(Node::Stats));
        assert_eq!(look(Node::Root, "nope"), None);
        assert_eq!(look(Node::Blocks, "002"), Some(Node::Top(2)));
        assert_eq!(look(Node::Blocks, "003"), None);
        assert_eq!(look(Node::Blocks, "2"), None);
        assert_eq!(
            look(Node::Top(2), "003"),
            Some(Node::Mid { top: 2, mid: 3 })
        );
        assert_eq!(look(Node::Top(2), "004"), None);
        assert_eq!(look(Node::Top(0), "1000"), None, "mid indices stop at 999");
        let leaf = Node::Mid { top: 0, mid: 0 };
        assert_eq!(look(leaf, "000000500.scale"), Some(Node::Scale(500)));
        assert_eq!(look(leaf, "000000999.json"), Some(Node::Json(999)));
        assert_eq!(
            look(leaf, "000000499.scale"),
            None,
            "before the first block"
        );
        assert_eq!(look(leaf, "000001000.scale"), None, "in another directory");
        assert_eq!(look(Node::Segments, "2"), Some(Node::SegmentDir(2)));
        assert_eq!(look(Node::Segments, "3"), None);
        assert_eq!(look(Node::Segments, "02"), None);
        assert_eq!(
            look(Node::SegmentDir(2), "manifest.json"),
            Some(Node::Manifest(2))
        );
        assert_eq!(look(Node::Scale(500), "x"), None);
    }

    #[test]
    fn hash_lookups_ask_the_catalog_and_check_the_range() {
        let v = view(Some((10, 20)), 0);
        let name = format!("0x{}", "ab".repeat(32));
        let found = |n: u64| move |h: &[u8; 32]| (*h == [0xab; 32]).then_some(n);
        assert_eq!(
            child(&v, Node::ByHash, &name, found(15)),
            Some(Node::Hash(15))
        );
        assert_eq!(
            child(&v, Node::ByHash, &name, found(21)),
            None,
            "pruned or not yet seen"
        );
        assert_eq!(child(&v, Node::ByHash, "0xab", found(15)), None);
    }

    #[test]
    fn an_empty_archive_has_the_fixed_tree_only() {
        let v = view(None, 0);
        let look = |parent, name: &str| child(&v, parent, name, |_| Some(0));
        assert_eq!(look(Node::Root, "blocks"), Some(Node::Blocks));
        assert_eq!(look(Node::Blocks, "000"), None);
        assert_eq!(look(Node::ByHash, &format!("0x{}", "00".repeat(32))), None);
        let names: Vec<_> = listing(&v, Node::Blocks, 0, 100)
            .into_iter()
            .map(|e| e.2)
            .collect();
        assert_eq!(names, [".", ".."]);
        assert_eq!(listing(&v, Node::ByHash, 2, 100), []);
    }

    #[test]
    fn listings_resume_at_any_offset() {
        let v = view(Some((998, 1_001)), 2);
        let leaf = Node::Mid { top: 0, mid: 0 };
        let all = listing(&v, leaf, 0, 100);
        let names: Vec<_> = all.iter().map(|e| e.2.as_str()).collect();
        assert_eq!(
            names,
            [
                ".",
                "..",
                "000000998.scale",
                "000000998.json",
                "000000999.scale",
                "000000999.json"
            ]
        );
        assert_eq!(all[1].1, Node::Top(0), ".. is the parent");
        // Offsets count up from 1: the kernel resumes at the offset of the last entry it kept.
        let offsets: Vec<_> = all.iter().map(|e| e.0).collect();
        assert_eq!(offsets, [1, 2, 3, 4, 5, 6]);
        // A buffer of two entries at a time yields the same listing.
        let mut paged = Vec::new();
        let mut offset = 0;
        loop {
            let page = listing(&v, leaf, offset, 2);
            let Some(last) = page.last() else { break };
            offset = last.0;
            paged.extend(page);
        }
        assert_eq!(paged, all);
        assert_eq!(listing(&v, leaf, 6, 100), []);
    }

    #[test]
    fn fixed_directories_list_their_entries() {
        let v = view(Some((0, 2_500_000)), 2);
        let names = |node, offset| -> Vec<String> {
            listing(&v, node, offset, 1_000)
                .into_iter()
                .map(|e| e.2)
                .collect()
        };
        assert_eq!(
            names(Node::Root, 2),
            [
                "README",
                "head.json",
                "blocks",
                "by-hash",
                "segments",
                "mount-stats.json"
            ]
        );
        assert_eq!(names(Node::Root, 7), ["mount-stats.json"]);
        assert_eq!(names(Node::Blocks, 2), ["000", "001", "002"]);
        assert_eq!(names(Node::Top(2), 2).len(), 501);
        assert_eq!(names(Node::Segments, 2), ["0", "1"]);
        assert_eq!(names(Node::SegmentDir(1), 2), ["manifest.json"]);
        assert_eq!(names(Node::SegmentDir(1), 3), Vec::<String>::new());
    }

    #[test]
    fn by_hash_lists_in_catalog_batches() {
        let (first, head) = (7, 7 + BY_HASH_BATCH + 3);
        let v = view(Some((first, head)), 0);
        let mut batches = Vec::new();
        let mut entries = Vec::new();
        let hashes = |a: u64, b: u64| {
            batches.push((a, b));
            Some((a..=b).map(|n| [n as u8; 32]).collect())
        };
        list(&v, Node::ByHash, 2, hashes, |off, child, name| {
            entries.push((off, child, name.to_string()));
            true
        });
        assert_eq!(
            batches,
            [
                (first, first + BY_HASH_BATCH - 1),
                (first + BY_HASH_BATCH, head)
            ]
        );
        assert_eq!(entries.len() as u64, head - first + 1);
        assert_eq!(
            entries[0],
            (3, Node::Hash(first), format!("0x{}", "07".repeat(32)))
        );
        // Resuming past the first batch starts the catalog read at the right block.
        let resumed = listing(&v, Node::ByHash, 2 + BY_HASH_BATCH + 1, 100);
        assert_eq!(resumed[0].1, Node::Hash(first + BY_HASH_BATCH + 1));
        // A catalog error ends the listing rather than showing a partial batch.
        let mut n = 0;
        list(
            &v,
            Node::ByHash,
            2,
            |_, _| None,
            |_, _, _| {
                n += 1;
                true
            },
        );
        assert_eq!(n, 0);
    }

    #[test]
    fn parents() {
        assert_eq!(parent_of(Node::Mid { top: 4, mid: 2 }), Node::Top(4));
        assert_eq!(parent_of(Node::Top(4)), Node::Blocks);
        assert_eq!(parent_of(Node::SegmentDir(4)), Node::Segments);
        assert_eq!(parent_of(Node::Blocks), Node::Root);
        assert_eq!(parent_of(Node::Root), Node::Root);
    }
}
