//! One namespace of the embedded hoster: its in-memory index over the append-only data log,
//! crash recovery (index rebuilt by scanning, torn tail cut), and the data operations with 0-db's
//! rules (worm, maxsize, identical-value SET, lock/freeze). All methods block on disk I/O.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use super::format::{
    decode_entry_header, encode_entry_header, encode_log_header, log_header_valid, EntryDefect,
    EntryHeader, NsProps, ENTRY_HEADER_BYTES, FLAG_DELETED, LOG_HEADER_BYTES,
};
use super::storage::{DataLog, HosterStorage};
use super::HosterError;
use crate::resp::{KEY_BYTES_MAX, VALUE_BYTES_MAX};

/// Window of log read at once while searching for the next valid entry after damage.
const RESYNC_WINDOW_BYTES: usize = 1024 * 1024;

/// Piece of a value read at once when recovery verifies it: bounds recovery's memory whatever
/// the value size (≤ 8 MiB).
const RECOVERY_READ_BYTES: usize = 1024 * 1024;

/// Where a live value is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loc {
    /// Offset of the entry (its header) in the log.
    pub offset: u64,
    pub value_len: u32,
    pub value_crc32: u32,
    pub timestamp: u32,
    pub key_len: u8,
}

impl Loc {
    pub fn value_offset(&self) -> u64 {
        self.offset + ENTRY_HEADER_BYTES as u64 + u64::from(self.key_len)
    }

    /// Offset just past the entry: what an fsync must cover for it to be durable.
    pub fn end(&self) -> u64 {
        self.value_offset() + u64::from(self.value_len)
    }
}

/// An operation refused with one of 0-db's error lines.
pub(crate) type Refusal = &'static str;

pub(crate) const ERR_WRITE: Refusal = "Cannot write data right now";
pub(crate) const ERR_DELETE: Refusal = "Cannot delete key (data)";
pub(crate) const ERR_FROZEN: Refusal = "Namespace is temporarily frozen (read-write disabled)";
pub(crate) const ERR_LOCKED: Refusal = "Namespace is temporarily locked (read-only)";

pub(crate) enum SetOutcome {
    Stored,
    /// Same bytes already stored: nothing written (0-db answers nil).
    Unchanged,
}

struct State {
    props: NsProps,
    /// Runtime only (NSSET lock): writes refused.
    locked: bool,
    /// Runtime only (NSSET freeze): reads and writes refused.
    frozen: bool,
    index: HashMap<Arc<[u8]>, Loc>,
    /// Live keys by log offset: SCAN order and cursor.
    order: BTreeMap<u64, Arc<[u8]>>,
    /// End of the log: where the next entry goes.
    end: u64,
    live_value_bytes: u64,
    live_key_bytes: u64,
    /// Entries recovery found damaged (value CRC mismatch, or a header skipped); their keys
    /// read as missing. Reported by NSINFO as `stats_data_faults`.
    damaged_entries: u64,
    /// Set at server shutdown: a write queued before it must not land after a new server
    /// opened the same files.
    closed: bool,
}

impl State {
    fn insert(&mut self, key: Arc<[u8]>, loc: Loc) {
        self.order.insert(loc.offset, Arc::clone(&key));
        self.live_value_bytes += u64::from(loc.value_len);
        if let Some(old) = self.index.insert(Arc::clone(&key), loc) {
            self.order.remove(&old.offset);
            self.live_value_bytes -= u64::from(old.value_len);
        } else {
            self.live_key_bytes += key.len() as u64;
        }
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some(old) = self.index.remove(key) {
            self.order.remove(&old.offset);
            self.live_value_bytes -= u64::from(old.value_len);
            self.live_key_bytes -= key.len() as u64;
        }
    }
}

/// Group commit: how far the log is known durable, and whether an fsync is under way.
#[derive(Default)]
struct Durability {
    synced_to: u64,
    syncing: bool,
}

pub(crate) struct Namespace {
    name: Vec<u8>,
    log: Box<dyn DataLog>,
    /// Durable before acknowledged: writers wait for an fsync covering their entry.
    sync: bool,
    state: Mutex<State>,
    /// End of the last completed append (set under `state`, read by the fsync leader).
    written_end: AtomicU64,
    durability: Mutex<Durability>,
    /// Signalled when an fsync ends (or the log is poisoned).
    synced: Condvar,
    /// Set by the first failed write or fsync: what is on disk past the last good fsync is
    /// unknown (Linux may drop dirty pages after a failed fsync and report success later), so
    /// every later write is refused until a restart re-verifies the log.
    poison: OnceLock<String>,
}

/// Counters for NSINFO / DBSIZE.
pub(crate) struct NsStats {
    pub props: NsProps,
    pub locked: bool,
    pub frozen: bool,
    pub entries: u64,
    pub live_value_bytes: u64,
    pub live_key_bytes: u64,
    pub log_bytes: u64,
    pub damaged_entries: u64,
}

fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

impl Namespace {
    /// Opens a namespace and rebuilds its index from the log.
    pub fn open(storage: &dyn HosterStorage, name: &[u8], sync: bool) -> Result<Self, HosterError> {
        let ns_name = String::from_utf8_lossy(name).into_owned();
        let io_err = |what: &'static str| {
            let ns_name = ns_name.clone();
            move |source| HosterError::Io {
                what: format!("{what} of namespace {ns_name:?}"),
                source,
            }
        };
        let props_bytes = storage
            .read_props(name)
            .map_err(io_err("reading properties"))?;
        let props = NsProps::decode(&props_bytes).map_err(|detail| HosterError::Corrupt {
            namespace: ns_name.clone(),
            detail: format!("properties file: {detail}"),
        })?;
        if props.name != name {
            return Err(HosterError::Corrupt {
                namespace: ns_name,
                detail: "properties name differs from the directory name".to_owned(),
            });
        }
        let log = storage.open_log(name).map_err(io_err("opening data log"))?;
        let mut state = State {
            props,
            locked: false,
            frozen: false,
            index: HashMap::new(),
            order: BTreeMap::new(),
            end: 0,
            live_value_bytes: 0,
            live_key_bytes: 0,
            damaged_entries: 0,
            closed: false,
        };
        recover(log.as_ref(), &mut state, &ns_name).map_err(io_err("recovering data log"))?;
        // Recovery truncated and synced what it changed; the rest was synced by the previous
        // run or is verified by now, so the log as it stands counts as durable.
        log.sync().map_err(io_err("syncing data log"))?;
        let end = state.end;
        Ok(Self {
            name: name.to_vec(),
            log,
            sync,
            state: Mutex::new(state),
            written_end: AtomicU64::new(end),
            durability: Mutex::new(Durability {
                synced_to: end,
                syncing: false,
            }),
            synced: Condvar::new(),
            poison: OnceLock::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // State updates are done so a panic cannot leave them half applied.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn name(&self) -> &[u8] {
        &self.name
    }

    pub fn props(&self) -> NsProps {
        self.lock().props.clone()
    }

    /// Applies and persists a property change.
    pub fn update_props(
        &self,
        storage: &dyn HosterStorage,
        change: impl FnOnce(&mut NsProps),
    ) -> io::Result<()> {
        let mut st = self.lock();
        if st.closed {
            return Err(io::Error::other("server shutting down"));
        }
        let mut props = st.props.clone();
        change(&mut props);
        storage.write_props(&self.name, &props.encode())?;
        st.props = props;
        Ok(())
    }

    pub fn set_lock(&self, locked: bool) {
        let mut st = self.lock();
        st.locked = locked;
        st.frozen = false;
    }

    pub fn set_freeze(&self, frozen: bool) {
        let mut st = self.lock();
        st.frozen = frozen;
        st.locked = false;
    }

    pub fn stats(&self) -> NsStats {
        let st = self.lock();
        NsStats {
            props: st.props.clone(),
            locked: st.locked,
            frozen: st.frozen,
            entries: st.index.len() as u64,
            live_value_bytes: st.live_value_bytes,
            live_key_bytes: st.live_key_bytes,
            log_bytes: st.end,
            damaged_entries: st.damaged_entries,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.lock().order.is_empty()
    }

    /// Refuses reads while frozen.
    pub fn readable(&self) -> Result<(), Refusal> {
        if self.lock().frozen {
            Err(ERR_FROZEN)
        } else {
            Ok(())
        }
    }

    /// Refuses writes while frozen or locked (checked before the per-command rules, as 0-db).
    pub fn writable(&self) -> Result<(), Refusal> {
        let st = self.lock();
        if st.frozen {
            Err(ERR_FROZEN)
        } else if st.locked {
            Err(ERR_LOCKED)
        } else {
            Ok(())
        }
    }

    pub fn lookup(&self, key: &[u8]) -> Option<Loc> {
        self.lock().index.get(key).copied()
    }

    /// Reads a value without checking its CRC (as 0-db's GET: CHECK is the integrity check).
    pub fn read_value(&self, loc: &Loc) -> io::Result<Vec<u8>> {
        let mut value = vec![0u8; loc.value_len as usize];
        self.log.read_at(loc.value_offset(), &mut value)?;
        Ok(value)
    }

    /// Reads a value into `dest` (exactly `loc.value_len` bytes), unchecked as `read_value`.
    pub fn read_value_into(&self, loc: &Loc, dest: &mut [u8]) -> io::Result<()> {
        if dest.len() != loc.value_len as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "destination is not the value's length",
            ));
        }
        self.log.read_at(loc.value_offset(), dest)
    }

    /// Reads `len` bytes of a value from `offset` (challenged chunks), bounded by the value.
    pub fn read_value_range(&self, loc: &Loc, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        if offset + len as u64 > u64::from(loc.value_len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "range beyond the value",
            ));
        }
        let mut buf = vec![0u8; len];
        self.log.read_at(loc.value_offset() + offset, &mut buf)?;
        Ok(buf)
    }

    /// CHECK: re-reads header, key and value from disk; true only if all of them verify.
    pub fn check(&self, key: &[u8]) -> Option<io::Result<bool>> {
        let loc = self.lookup(key)?;
        let total = ENTRY_HEADER_BYTES + usize::from(loc.key_len) + loc.value_len as usize;
        let mut entry = vec![0u8; total];
        if let Err(e) = self.log.read_at(loc.offset, &mut entry) {
            return Some(Err(e));
        }
        let ok = match decode_entry_header(&entry, VALUE_BYTES_MAX as u32) {
            Ok(h) => {
                let key_end = ENTRY_HEADER_BYTES + usize::from(h.key_len);
                h.value_len == loc.value_len
                    && !h.is_deleted()
                    && &entry[ENTRY_HEADER_BYTES..key_end] == key
                    && crc32fast::hash(&entry[key_end..]) == h.value_crc32
            }
            Err(_) => false,
        };
        Some(Ok(ok))
    }

    /// Appends one entry and returns its offset. A failed write poisons the log; the partial
    /// entry is cut off if possible, so a restart's recovery finds a clean tail.
    fn append(
        &self,
        st: &mut State,
        header: &EntryHeader,
        key: &[u8],
        value: &[u8],
    ) -> io::Result<u64> {
        if st.closed {
            return Err(io::Error::other("server shutting down"));
        }
        if let Some(why) = self.poison.get() {
            return Err(io::Error::other(why.clone()));
        }
        let offset = st.end;
        let head = encode_entry_header(header, key);
        let mut head_and_key = Vec::with_capacity(ENTRY_HEADER_BYTES + key.len());
        head_and_key.extend_from_slice(&head);
        head_and_key.extend_from_slice(key);
        if let Err(e) = self.log.write_at(offset, &[&head_and_key, value]) {
            self.poison_with(format!("a write failed: {e}"));
            if let Err(cut) = self.log.truncate(offset) {
                tracing::error!(namespace = %String::from_utf8_lossy(&self.name), error = %cut, "cannot cut a failed write off the data log");
            }
            return Err(e);
        }
        st.end = offset + header.entry_bytes();
        self.written_end.store(st.end, Ordering::Release);
        Ok(offset)
    }

    fn poison_with(&self, why: String) {
        if self.poison.set(why.clone()).is_ok() {
            tracing::error!(namespace = %String::from_utf8_lossy(&self.name), reason = %why, "data log poisoned: writes refused until restart");
        }
        // Wake writers waiting for an fsync: they fail now instead of waiting for one.
        let _guard = self
            .durability
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.synced.notify_all();
    }

    /// Returns once everything up to log offset `upto` is fsynced (at once without `sync`).
    /// Group commit: the first waiter fsyncs everything written so far while later writers
    /// queue behind it; whoever is still not covered when it ends leads the next fsync, so N
    /// concurrent writers cost about two fsyncs, not N.
    pub fn wait_durable(&self, upto: u64) -> io::Result<()> {
        if !self.sync {
            return Ok(());
        }
        let lock = || {
            self.durability
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let mut d = lock();
        loop {
            if d.synced_to >= upto {
                return Ok(());
            }
            if let Some(why) = self.poison.get() {
                return Err(io::Error::other(why.clone()));
            }
            if d.syncing {
                d = self
                    .synced
                    .wait(d)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                continue;
            }
            d.syncing = true;
            drop(d);
            // Every append that completed before this load is covered by the fsync below.
            let target = self.written_end.load(Ordering::Acquire);
            let result = self.log.sync();
            if let Err(e) = &result {
                self.poison_with(format!("fsync failed: {e}"));
            }
            d = lock();
            d.syncing = false;
            if result.is_ok() {
                d.synced_to = d.synced_to.max(target);
            }
            self.synced.notify_all();
        }
    }

    /// SET with 0-db's rules, in 0-db's order: worm, maxsize, identical value, write.
    pub fn set(
        &self,
        key: &[u8],
        value: &[u8],
        timestamp: Option<u32>,
    ) -> Result<SetOutcome, Refusal> {
        let (outcome, end) = self.set_unsynced(key, value, timestamp)?;
        self.wait_durable(end).map_err(|e| {
            tracing::warn!(namespace = %String::from_utf8_lossy(&self.name), error = %e, "write not made durable");
            ERR_WRITE
        })?;
        Ok(outcome)
    }

    /// SET up to the write; returns the outcome and the log offset that must be durable
    /// before it is acknowledged (an identical value may still be waiting for its fsync).
    fn set_unsynced(
        &self,
        key: &[u8],
        value: &[u8],
        timestamp: Option<u32>,
    ) -> Result<(SetOutcome, u64), Refusal> {
        let crc = crc32fast::hash(value);
        let mut st = self.lock();
        if st.frozen {
            return Err(ERR_FROZEN);
        }
        if st.locked {
            return Err(ERR_LOCKED);
        }
        let existing = st.index.get(key).copied();
        if existing.is_some() && st.props.worm {
            return Err("Namespace is protected by worm mode");
        }
        if st.props.maxsize_bytes > 0 {
            let floating = existing.map_or(0, |l| u64::from(l.value_len));
            if st.live_value_bytes + value.len() as u64 > st.props.maxsize_bytes + floating {
                return Err("No space left on this namespace");
            }
        }
        if let Some(old) = existing {
            if old.value_crc32 == crc && old.value_len as usize == value.len() {
                // Same CRC and length: compare the bytes (a CRC is no proof of equality).
                match self.read_value(&old) {
                    Ok(stored) if stored == value => return Ok((SetOutcome::Unchanged, old.end())),
                    _ => {}
                }
            }
        }
        let header = EntryHeader {
            value_crc32: crc,
            value_len: value.len() as u32,
            timestamp: timestamp.unwrap_or_else(now_secs),
            key_len: key.len() as u8,
            flags: 0,
        };
        let offset = self.append(&mut st, &header, key, value).map_err(|e| {
            tracing::warn!(namespace = %String::from_utf8_lossy(&self.name), error = %e, "write failed");
            ERR_WRITE
        })?;
        let loc = Loc {
            offset,
            value_len: header.value_len,
            value_crc32: crc,
            timestamp: header.timestamp,
            key_len: header.key_len,
        };
        st.insert(Arc::from(key), loc);
        Ok((SetOutcome::Stored, loc.end()))
    }

    /// DEL: appends a tombstone.
    pub fn del(&self, key: &[u8], timestamp: Option<u32>) -> Result<(), Refusal> {
        let mut st = self.lock();
        if st.frozen {
            return Err(ERR_FROZEN);
        }
        if st.locked {
            return Err(ERR_LOCKED);
        }
        if !st.index.contains_key(key) {
            return Err("Key not found");
        }
        if st.props.worm {
            return Err("Cannot delete a key when namespace is in worm mode");
        }
        let header = EntryHeader {
            value_crc32: 0,
            value_len: 0,
            timestamp: timestamp.unwrap_or_else(now_secs),
            key_len: key.len() as u8,
            flags: FLAG_DELETED,
        };
        let offset = self
            .append(&mut st, &header, key, &[])
            .map_err(|_| ERR_DELETE)?;
        st.remove(key);
        drop(st);
        self.wait_durable(offset + header.entry_bytes())
            .map_err(|_| ERR_DELETE)
    }

    /// Live keys after log offset `after` (all when `None`), at most `max`, in log order:
    /// (offset, key, value length, timestamp).
    pub fn scan(&self, after: Option<u64>, max: usize) -> Vec<(u64, Arc<[u8]>, u32, u32)> {
        let st = self.lock();
        let range = match after {
            Some(o) => st.order.range(o.saturating_add(1)..),
            None => st.order.range(..),
        };
        range
            .take(max)
            .filter_map(|(&off, key)| {
                st.index
                    .get(key)
                    .map(|l| (off, Arc::clone(key), l.value_len, l.timestamp))
            })
            .collect()
    }

    /// Shutdown (or NSDEL): waits for a write in progress and refuses every later one.
    pub fn close(&self) {
        self.set_closed(true);
    }

    /// `false` re-opens a namespace whose deletion failed.
    pub fn set_closed(&self, closed: bool) {
        self.lock().closed = closed;
    }
}

/// Rebuilds the index from the log, verifying every entry (header CRC, and value CRC of every
/// value). A torn tail (crash in the middle of an append) is cut off; damage in the middle costs
/// only the damaged entry (its key reads as missing), everything after it is kept.
fn recover(log: &dyn DataLog, st: &mut State, ns_name: &str) -> io::Result<()> {
    let size = log.size_bytes()?;
    if size < LOG_HEADER_BYTES as u64 {
        // Never written beyond (part of) the header: start the log afresh.
        log.truncate(0)?;
        log.write_at(0, &[&encode_log_header()])?;
        log.sync()?;
        st.end = LOG_HEADER_BYTES as u64;
        return Ok(());
    }
    let mut header = [0u8; LOG_HEADER_BYTES];
    log.read_at(0, &mut header)?;
    if !log_header_valid(&header) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "data log header is not a zdb-backend log of format version 1",
        ));
    }
    let max_value = VALUE_BYTES_MAX as u32;
    let mut buf = vec![0u8; ENTRY_HEADER_BYTES + KEY_BYTES_MAX];
    let mut value_buf = vec![0u8; RECOVERY_READ_BYTES];
    let mut offset = LOG_HEADER_BYTES as u64;
    while offset < size {
        let avail = (size - offset).min(buf.len() as u64) as usize;
        log.read_at(offset, &mut buf[..avail])?;
        let parsed = decode_entry_header(&buf[..avail], max_value);
        let header = match parsed {
            Ok(h) if offset + h.entry_bytes() <= size => h,
            // A valid header whose entry runs past the end, or too few bytes for a header:
            // the append was cut short.
            Ok(_) | Err(EntryDefect::Short) => {
                cut_tail(log, offset, size, ns_name)?;
                st.end = offset;
                return Ok(());
            }
            Err(EntryDefect::Invalid) => match find_next_entry(log, offset + 1, size)? {
                Some(next) => {
                    st.damaged_entries += 1;
                    tracing::warn!(
                        namespace = ns_name,
                        offset,
                        skipped_bytes = next - offset,
                        "damaged data log entry skipped"
                    );
                    offset = next;
                    continue;
                }
                None => {
                    cut_tail(log, offset, size, ns_name)?;
                    st.end = offset;
                    return Ok(());
                }
            },
        };
        let key: Arc<[u8]> =
            Arc::from(&buf[ENTRY_HEADER_BYTES..ENTRY_HEADER_BYTES + usize::from(header.key_len)]);
        let end = offset + header.entry_bytes();
        if !header.is_deleted()
            && !value_verifies(
                log,
                end - u64::from(header.value_len),
                &header,
                &mut value_buf,
            )?
        {
            if end == size {
                // The last entry: a power cut without fsync can persist the new file size but
                // not the bytes, so this is a torn tail.
                cut_tail(log, offset, size, ns_name)?;
                st.end = offset;
                return Ok(());
            }
            // Damage in the middle: later entries are acknowledged writes and stay. This key
            // reads as missing (not as an older value it overwrote), so a writer can store it
            // again, even under worm.
            tracing::warn!(
                namespace = ns_name,
                offset,
                key = %crate::resp::short_hex(&key),
                "data log entry fails its CRC: key dropped from the index, later entries kept"
            );
            st.remove(&key);
            st.damaged_entries += 1;
            offset = end;
            continue;
        }
        if header.is_deleted() {
            st.remove(&key);
        } else {
            st.insert(
                key,
                Loc {
                    offset,
                    value_len: header.value_len,
                    value_crc32: header.value_crc32,
                    timestamp: header.timestamp,
                    key_len: header.key_len,
                },
            );
        }
        offset = end;
    }
    st.end = offset;
    Ok(())
}

/// Whether the value at `at` matches the header's CRC, read in bounded pieces.
fn value_verifies(
    log: &dyn DataLog,
    at: u64,
    header: &EntryHeader,
    buf: &mut [u8],
) -> io::Result<bool> {
    let mut hasher = crc32fast::Hasher::new();
    let mut done: u64 = 0;
    let len = u64::from(header.value_len);
    while done < len {
        let step = (len - done).min(buf.len() as u64) as usize;
        log.read_at(at + done, &mut buf[..step])?;
        hasher.update(&buf[..step]);
        done += step as u64;
    }
    Ok(hasher.finalize() == header.value_crc32)
}

fn cut_tail(log: &dyn DataLog, offset: u64, size: u64, ns_name: &str) -> io::Result<()> {
    tracing::warn!(
        namespace = ns_name,
        offset,
        dropped_bytes = size - offset,
        "torn tail of data log truncated"
    );
    log.truncate(offset)?;
    log.sync()
}

/// First offset in `from..size` where a valid entry starts and fits in the log.
fn find_next_entry(log: &dyn DataLog, from: u64, size: u64) -> io::Result<Option<u64>> {
    let max_value = VALUE_BYTES_MAX as u32;
    let overlap = ENTRY_HEADER_BYTES + KEY_BYTES_MAX;
    let mut buf = vec![0u8; RESYNC_WINDOW_BYTES + overlap];
    let mut start = from;
    while start < size {
        let len = (size - start).min(buf.len() as u64) as usize;
        log.read_at(start, &mut buf[..len])?;
        for i in 0..len.min(RESYNC_WINDOW_BYTES) {
            if let Ok(h) = decode_entry_header(&buf[i..len], max_value) {
                let at = start + i as u64;
                if at + h.entry_bytes() <= size {
                    return Ok(Some(at));
                }
            }
        }
        start += RESYNC_WINDOW_BYTES as u64;
    }
    Ok(None)
}
