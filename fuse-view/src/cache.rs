//! Bounded caches in front of the read path (block file sizes, decoded records, snapshots of the
//! changing files) and the read-ahead decision taken when a read crosses into another segment.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Block file sizes remembered (number → `.scale` and `.json` lengths) so `ls -l` and `stat` do
/// not rebuild a block per call; ~40 bytes each, so the bound is ~8 MiB, outside `--cache-mib`.
pub const SIZE_CACHE_ENTRIES_MAX: usize = 200_000;
/// Snapshots of changing files kept (one per manifest read lately, head.json, stats).
const SNAPSHOTS_MAX: usize = 1_024;
/// Decoded block records kept for the next callback (a lookup's size, then the read).
const RECENT_RECORDS_MAX: usize = 16;
/// Segments rebuilt ahead of a sequential reader: two keep both cores busy (one decoding, one
/// fetching shards) without holding much of the cache.
const READ_AHEAD_SEGMENTS_MAX: u64 = 2;
/// Segments the cache must hold besides those read ahead: the one being read and a spare, so
/// read-ahead never evicts what is being read.
const READ_AHEAD_CACHE_RESERVE_SEGMENTS: usize = 2;

// A poisoned lock (a panicked callback) is treated as a miss: each cache is only an
// optimisation, and the read path recomputes what it would have held.

/// Block number → (`.scale` length, `.json` length once rendered).
#[derive(Debug)]
pub(crate) struct SizeCache {
    map: Mutex<HashMap<u64, (u64, Option<u64>)>>,
    entries_max: usize,
}

impl SizeCache {
    pub fn new() -> Self {
        Self::with_entries_max(SIZE_CACHE_ENTRIES_MAX)
    }

    fn with_entries_max(entries_max: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            entries_max,
        }
    }

    /// The known length of block `n`'s `.json` (`json`) or `.scale` file.
    pub fn get(&self, n: u64, json: bool) -> Option<u64> {
        let (scale, json_len) = self.map.lock().ok()?.get(&n).copied()?;
        if json {
            json_len
        } else {
            Some(scale)
        }
    }

    /// Records block `n`'s lengths and returns what is now known (a `.json` length learnt
    /// earlier is kept when this call has none).
    pub fn remember(&self, n: u64, scale: u64, json_len: Option<u64>) -> (u64, Option<u64>) {
        let Ok(mut m) = self.map.lock() else {
            return (scale, json_len);
        };
        if m.len() >= self.entries_max && !m.contains_key(&n) {
            // Sizes are cheap to recompute from a cached segment: start over rather than track
            // recency for 200,000 entries.
            m.clear();
        }
        let entry = m.entry(n).or_insert((scale, json_len));
        if entry.1.is_none() {
            entry.1 = json_len;
        }
        *entry
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

/// The last records decoded, by block number: a `stat` then a `read` of one file (and the
/// `.json` beside it) decode the record once.
#[derive(Debug)]
pub(crate) struct RecentRecords<T> {
    items: Mutex<VecDeque<(u64, Arc<T>)>>,
    entries_max: usize,
}

impl<T> RecentRecords<T> {
    pub fn new() -> Self {
        Self::with_entries_max(RECENT_RECORDS_MAX)
    }

    fn with_entries_max(entries_max: usize) -> Self {
        Self {
            items: Mutex::new(VecDeque::new()),
            entries_max,
        }
    }

    pub fn get(&self, n: u64) -> Option<Arc<T>> {
        let items = self.items.lock().ok()?;
        items.iter().find(|(m, _)| *m == n).map(|(_, r)| r.clone())
    }

    /// Keeps `record`, dropping the oldest when full.
    pub fn put(&self, n: u64, record: Arc<T>) {
        if let Ok(mut items) = self.items.lock() {
            if items.len() >= self.entries_max {
                items.pop_front();
            }
            items.push_back((n, record));
        }
    }
}

/// The content of head.json, mount-stats.json and manifests as last sized by a getattr, by
/// inode: reads serve it, so what a reader gets matches the size it was told.
#[derive(Debug)]
pub(crate) struct Snapshots {
    map: Mutex<HashMap<u64, Arc<Vec<u8>>>>,
    entries_max: usize,
}

impl Snapshots {
    pub fn new() -> Self {
        Self::with_entries_max(SNAPSHOTS_MAX)
    }

    fn with_entries_max(entries_max: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            entries_max,
        }
    }

    /// Keeps `bytes` as inode `ino`'s snapshot and returns it.
    pub fn keep(&self, ino: u64, bytes: Arc<Vec<u8>>) -> Arc<Vec<u8>> {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= self.entries_max && !m.contains_key(&ino) {
                // A reader whose snapshot was dropped gets a fresh one, sized anew.
                m.clear();
            }
            m.insert(ino, bytes.clone());
        }
        bytes
    }

    pub fn get(&self, ino: u64) -> Option<Arc<Vec<u8>>> {
        self.map.lock().ok()?.get(&ino).cloned()
    }
}

/// The segment of the block read last, with its block range: read-ahead looks at the store only
/// when a read crosses into another segment.
#[derive(Debug, Default)]
pub(crate) struct CurrentSegment {
    span: Mutex<Option<(u64, u64, u64)>>,
}

impl CurrentSegment {
    /// Whether block `n` lies in the segment read last.
    pub fn holds(&self, n: u64) -> bool {
        self.span
            .lock()
            .ok()
            .and_then(|s| *s)
            .is_some_and(|(_, first, last)| (first..=last).contains(&n))
    }

    /// Segment `segment` (blocks `first..=last`) is now the one being read.
    pub fn enter(&self, segment: u64, first: u64, last: u64) {
        if let Ok(mut s) = self.span.lock() {
            *s = Some((segment, first, last));
        }
    }
}

/// Segments to rebuild ahead of a reader entering `segment` (of `segment_bytes`): up to
/// `READ_AHEAD_SEGMENTS_MAX`, only as many as a cache of `cache_bytes_max` holds beside the
/// current segment and a spare, and none at or above `pruned_below` (still kept locally).
pub(crate) fn read_ahead_segments(
    segment: u64,
    segment_bytes: u64,
    cache_bytes_max: usize,
    pruned_below: u64,
) -> Range<u64> {
    let segment_bytes = usize::try_from(segment_bytes).unwrap_or(usize::MAX).max(1);
    let fit = (cache_bytes_max / segment_bytes).saturating_sub(READ_AHEAD_CACHE_RESERVE_SEGMENTS);
    let ahead = READ_AHEAD_SEGMENTS_MAX.min(u64::try_from(fit).unwrap_or(u64::MAX));
    let start = segment.saturating_add(1);
    let end = start.saturating_add(ahead).min(pruned_below).max(start);
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn sizes_are_remembered_json_once_rendered() {
        let sizes = SizeCache::new();
        assert_eq!(sizes.get(7, false), None);
        assert_eq!(sizes.remember(7, 100, None), (100, None));
        assert_eq!(sizes.get(7, false), Some(100));
        // The .json length is unknown until rendered: its getattr must render it.
        assert_eq!(sizes.get(7, true), None);
        assert_eq!(sizes.remember(7, 100, Some(40)), (100, Some(40)));
        assert_eq!(sizes.get(7, true), Some(40));
        // A later call without the .json length keeps it.
        assert_eq!(sizes.remember(7, 100, None), (100, Some(40)));
        assert_eq!(sizes.len(), 1);
    }

    #[test]
    fn size_cache_is_cleared_when_full() {
        let sizes = SizeCache::with_entries_max(3);
        for n in 0..3 {
            sizes.remember(n, n * 10, None);
        }
        assert_eq!(sizes.len(), 3);
        // Re-remembering a known block does not count as growth.
        sizes.remember(2, 20, Some(5));
        assert_eq!(sizes.len(), 3);
        assert_eq!(sizes.get(2, true), Some(5));
        // A fourth block starts over: the map never exceeds its bound.
        assert_eq!(sizes.remember(3, 30, None), (30, None));
        assert_eq!(sizes.len(), 1);
        assert_eq!(sizes.get(0, false), None);
        assert_eq!(sizes.get(3, false), Some(30));
    }

    #[test]
    fn recent_records_keep_the_newest() {
        let recent = RecentRecords::with_entries_max(2);
        assert!(recent.get(1).is_none());
        for n in 1..=3u64 {
            recent.put(n, Arc::new(n * 100));
        }
        assert!(recent.get(1).is_none(), "the oldest is dropped");
        assert_eq!(recent.get(2).as_deref(), Some(&200));
        assert_eq!(recent.get(3).as_deref(), Some(&300));
        assert_eq!(RecentRecords::<u8>::new().entries_max, RECENT_RECORDS_MAX);
    }

    #[test]
    fn snapshots_are_bounded_and_replaced() {
        let snaps = Snapshots::with_entries_max(2);
        snaps.keep(1, Arc::new(b"a".to_vec()));
        snaps.keep(1, Arc::new(b"b".to_vec()));
        assert_eq!(snaps.get(1).as_deref(), Some(&b"b".to_vec()));
        snaps.keep(2, Arc::new(b"c".to_vec()));
        snaps.keep(3, Arc::new(b"d".to_vec()));
        assert_eq!(snaps.get(1), None, "cleared when full");
        assert_eq!(snaps.get(3).as_deref(), Some(&b"d".to_vec()));
    }

    #[test]
    fn current_segment_tracks_the_last_range() {
        let cur = CurrentSegment::default();
        assert!(!cur.holds(0));
        cur.enter(3, 100, 199);
        assert!(cur.holds(100));
        assert!(cur.holds(199));
        assert!(!cur.holds(99));
        assert!(!cur.holds(200));
        cur.enter(4, 200, 299);
        assert!(!cur.holds(150));
        assert!(cur.holds(250));
    }

    #[test]
    fn read_ahead_picks_the_next_pruned_segments_that_fit() {
        let seg = 32 * 1024 * 1024;
        // The default 256 MiB cache holds 8: two ahead.
        assert_eq!(read_ahead_segments(5, seg, 256 * MIB, 100), 6..8);
        // 96 MiB: current + spare + one ahead; 64 MiB: none.
        assert_eq!(read_ahead_segments(5, seg, 96 * MIB, 100), 6..7);
        assert!(read_ahead_segments(5, seg, 64 * MIB, 100).is_empty());
        assert!(read_ahead_segments(5, seg, 0, 100).is_empty());
        // Segments still kept locally are read from disk: stop at the first one.
        assert_eq!(read_ahead_segments(5, seg, 256 * MIB, 7), 6..7);
        assert!(read_ahead_segments(5, seg, 256 * MIB, 6).is_empty());
        assert!(read_ahead_segments(5, seg, 256 * MIB, 0).is_empty());
        // A zero segment size (a bad manifest) neither divides by zero nor reads far ahead.
        assert_eq!(read_ahead_segments(5, 0, 256 * MIB, 100), 6..8);
        // No overflow at the top of the id space.
        assert!(read_ahead_segments(u64::MAX, seg, 256 * MIB, u64::MAX).is_empty());
    }
}
