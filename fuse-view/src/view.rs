//! The mount's view of the store (archived range, dispersed segments, `head.json`, change time),
//! re-read lazily by the first callback that needs it once `REFRESH_INTERVAL_MS` has passed.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use archiver::store::Store;

/// How often (at most) the view re-reads the archive's store for new blocks and segments: new
/// blocks appear within this long of being archived, and a busy `ls` does not turn into a store
/// catch-up per call.
pub const REFRESH_INTERVAL_MS: u64 = 200;

/// What the archive holds right now.
#[derive(Clone, Debug)]
pub(crate) struct View {
    /// First and last archived block numbers, if any.
    pub range: Option<(u64, u64)>,
    /// Segments with a manifest (dispersed).
    pub segments: u64,
    /// Directories' and `head.json`'s mtime: moves whenever what they show may have changed.
    pub changed: SystemTime,
    pub head_json: Arc<Vec<u8>>,
}

/// One re-read of the store: what a refresh learns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoreReading {
    pub first: Option<u64>,
    /// Last archived block (number, hash).
    pub head: Option<(u64, [u8; 32])>,
    pub segments: u64,
    pub pruned_below: Option<u64>,
}

impl StoreReading {
    /// Reads the secondary `store` after catching it up; a failed read keeps `prev_segments` or
    /// shows nothing, so the mount keeps serving what it can.
    pub fn read(store: &Store, prev_segments: u64) -> Self {
        if let Err(e) = store.catch_up() {
            tracing::warn!(error = %e, "mount: cannot refresh the archive store");
        }
        Self {
            first: store.first_number().ok().flatten(),
            head: store.log_head().ok().and_then(|h| h.last),
            segments: store.dispersed_next().unwrap_or(prev_segments),
            pruned_below: store.local_segments_pruned_below().ok(),
        }
    }

    /// The archived range, or None when the archive is empty (or mid-prune inconsistent).
    pub fn range(&self) -> Option<(u64, u64)> {
        match (self.first, self.head) {
            (Some(f), Some((h, _))) if f <= h => Some((f, h)),
            _ => None,
        }
    }

    /// `head.json`: pretty JSON (sorted keys) and one newline.
    pub fn head_json(&self) -> Vec<u8> {
        let range = self.range();
        let json = serde_json::json!({
            "number": range.map(|(_, h)| h),
            "hash": self.head.map(|(_, h)| format!("0x{}", hex::encode(h))),
            "firstNumber": range.map(|(f, _)| f),
            "segmentsDispersed": self.segments,
            "localSegmentsPrunedBelow": self.pruned_below,
        });
        let mut bytes = serde_json::to_vec_pretty(&json).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

impl View {
    fn empty(now: SystemTime) -> Self {
        Self {
            range: None,
            segments: 0,
            changed: now,
            head_json: Arc::new(Vec::new()),
        }
    }

    /// Takes in a fresh reading; the change time becomes `now` when the range, the segment count
    /// or head.json's bytes changed (the kernel drops head.json's cached pages when it moves).
    fn apply(&mut self, reading: &StoreReading, now: SystemTime) {
        let range = reading.range();
        if range != self.range || reading.segments != self.segments {
            self.changed = now;
        }
        self.range = range;
        self.segments = reading.segments;
        let bytes = reading.head_json();
        if bytes != *self.head_json {
            self.changed = now;
            self.head_json = Arc::new(bytes);
        }
    }
}

/// The shared view and when it was last re-read (None: never).
#[derive(Debug)]
pub(crate) struct ViewCell {
    state: Mutex<(View, Option<Instant>)>,
}

impl ViewCell {
    pub fn new(now: SystemTime) -> Self {
        Self {
            state: Mutex::new((View::empty(now), None)),
        }
    }

    /// The view at `now`, first re-read through `read` (given the previous segment count) when
    /// it is older than `REFRESH_INTERVAL_MS`. The lock is held across the re-read, so callbacks
    /// arriving together share one refresh.
    pub fn get(&self, now: Instant, read: impl FnOnce(u64) -> StoreReading) -> View {
        // A panicked callback may have poisoned it; the view is plain data, so keep serving.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (view, refreshed) = &mut *state;
        if !refresh_due(*refreshed, now) {
            return view.clone();
        }
        let reading = read(view.segments);
        view.apply(&reading, SystemTime::now());
        *refreshed = Some(now);
        view.clone()
    }
}

/// Whether a view last re-read at `refreshed` must be re-read at `now`.
fn refresh_due(refreshed: Option<Instant>, now: Instant) -> bool {
    refreshed.is_none_or(|at| {
        now.saturating_duration_since(at) >= Duration::from_millis(REFRESH_INTERVAL_MS)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::UNIX_EPOCH;

    fn reading(first: u64, head: u64, segments: u64) -> StoreReading {
        StoreReading {
            first: Some(first),
            head: Some((head, [head as u8; 32])),
            segments,
            pruned_below: Some(0),
        }
    }

    #[test]
    fn refreshes_only_after_the_interval() {
        let cell = ViewCell::new(UNIX_EPOCH);
        let reads = Cell::new(0);
        let t0 = Instant::now();
        let get = |at: Instant, head: u64| {
            cell.get(at, |_| {
                reads.set(reads.get() + 1);
                reading(0, head, 1)
            })
        };
        // The first call always reads.
        assert_eq!(get(t0, 10).range, Some((0, 10)));
        assert_eq!(reads.get(), 1);
        // Within the interval the old view is served, whatever the store holds now.
        let within = t0 + Duration::from_millis(REFRESH_INTERVAL_MS - 1);
        assert_eq!(get(within, 11).range, Some((0, 10)));
        assert_eq!(reads.get(), 1);
        // An earlier instant (another thread's clock read) does not force a read either.
        assert_eq!(get(t0, 11).range, Some((0, 10)));
        assert_eq!(reads.get(), 1);
        let after = t0 + Duration::from_millis(REFRESH_INTERVAL_MS);
        assert_eq!(get(after, 12).range, Some((0, 12)));
        assert_eq!(reads.get(), 2);
    }

    #[test]
    fn refresh_is_given_the_previous_segment_count() {
        let cell = ViewCell::new(UNIX_EPOCH);
        let t0 = Instant::now();
        cell.get(t0, |prev| {
            assert_eq!(prev, 0);
            reading(0, 5, 7)
        });
        let later = t0 + Duration::from_millis(REFRESH_INTERVAL_MS);
        let v = cell.get(later, |prev| {
            assert_eq!(prev, 7);
            reading(0, 5, prev)
        });
        assert_eq!(v.segments, 7);
    }

    #[test]
    fn change_time_moves_only_when_something_changed() {
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let mut v = View::empty(t(0));
        v.apply(&reading(0, 10, 1), t(1));
        assert_eq!(v.changed, t(1));
        let json = v.head_json.clone();
        // Same reading: neither the mtime nor head.json's bytes move.
        v.apply(&reading(0, 10, 1), t(2));
        assert_eq!(v.changed, t(1));
        assert!(Arc::ptr_eq(&json, &v.head_json));
        // A new segment, a new head, a prune: each moves it.
        v.apply(&reading(0, 10, 2), t(3));
        assert_eq!(v.changed, t(3));
        v.apply(&reading(0, 11, 2), t(4));
        assert_eq!(v.changed, t(4));
        let mut pruned = reading(0, 11, 2);
        pruned.pruned_below = Some(1);
        v.apply(&pruned, t(5));
        assert_eq!(v.changed, t(5));
        assert!(!Arc::ptr_eq(&json, &v.head_json));
    }

    #[test]
    fn head_json_shows_the_range_and_hash() {
        let r = reading(3, 10, 2);
        let bytes = r.head_json();
        assert_eq!(bytes.last(), Some(&b'\n'));
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["number"], 10);
        assert_eq!(json["firstNumber"], 3);
        assert_eq!(json["segmentsDispersed"], 2);
        assert_eq!(json["localSegmentsPrunedBelow"], 0);
        assert_eq!(json["hash"], format!("0x{}", "0a".repeat(32)));
        // Sorted keys: the spec's byte layout.
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.find("firstNumber") < text.find("hash"));
    }

    #[test]
    fn an_empty_or_inconsistent_store_has_no_range() {
        let empty = StoreReading {
            first: None,
            head: None,
            segments: 0,
            pruned_below: None,
        };
        assert_eq!(empty.range(), None);
        let json: serde_json::Value = serde_json::from_slice(&empty.head_json()).unwrap();
        assert!(json["number"].is_null());
        assert!(json["hash"].is_null());
        // First above head (a prune seen half-way): no blocks rather than a reversed range.
        assert_eq!(reading(11, 10, 0).range(), None);
        assert_eq!(reading(10, 10, 0).range(), Some((10, 10)));
    }
}
