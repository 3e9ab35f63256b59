//! The local RocksDB store: catalog (number → location), hash index, sealed-segment records,
//! manifests, placements, watermarks, the chain's current state and the state-history index
//! (its layout and reads are in `state_index`).
//!
//! The segment log is the write-ahead log of everything here that a block produces: catalog entries
//! and state changes are replayed from it after a crash, so per-block writes need no fsync of their
//! own. Seal and dispersal records are written synced.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, WriteOptions, DB,
};

use crate::error::{ArchiveError, Result};
use crate::manifest::{Manifest, Placement};
use crate::record::{hash_at, u32_at, u64_at};
use crate::state_index::{IndexPending, CF_STATE_HISTORY, CF_STATE_KEYS};

const CF_CATALOG: &str = "catalog";
const CF_HASHES: &str = "hashes";
const CF_SEGMENTS: &str = "segments";
const CF_MANIFESTS: &str = "manifests";
const CF_PLACEMENT: &str = "placement";
const CF_STATE: &str = "state";
pub(crate) const CF_META: &str = "meta";
const CFS: [&str; 9] = [
    CF_CATALOG,
    CF_HASHES,
    CF_SEGMENTS,
    CF_MANIFESTS,
    CF_PLACEMENT,
    CF_STATE,
    CF_META,
    CF_STATE_KEYS,
    CF_STATE_HISTORY,
];
/// Bloom filter bits per key of the state-key family: every indexed change and every historical
/// read looks a key up there, most of them (new keys, keys never written) absent; 10 bits give
/// ~1% false positives.
const STATE_KEYS_BLOOM_BITS: f64 = 10.0;

const META_KEY_CHECK: &[u8] = b"key_check";
const META_LOG_HEAD: &[u8] = b"log_head";
const META_DISPERSED: &[u8] = b"dispersed_next";
const META_PRUNED: &[u8] = b"pruned";
const META_VERIFIED: &[u8] = b"verified_next";
const META_LOCAL_PRUNED: &[u8] = b"local_segments_pruned_below";
/// `short/` ‖ segment u64 BE → good shards u32 LE ‖ total u32 LE: what the last repair found.
const META_SHORT_PREFIX: &[u8] = b"short/";

/// Where a block's record sits in the local log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub segment: u64,
    pub offset: u64,
    pub len: u32,
    pub hash: [u8; 32],
}

impl Location {
    fn encode(&self) -> [u8; 52] {
        let mut b = [0u8; 52];
        b[0..8].copy_from_slice(&self.segment.to_le_bytes());
        b[8..16].copy_from_slice(&self.offset.to_le_bytes());
        b[16..20].copy_from_slice(&self.len.to_le_bytes());
        b[20..52].copy_from_slice(&self.hash);
        b
    }
    fn decode(b: &[u8]) -> Result<Self> {
        if b.len() != 52 {
            return Err(corrupt("catalog", "location record length"));
        }
        Ok(Self {
            segment: u64_at(b, 0),
            offset: u64_at(b, 8),
            len: u32_at(b, 16),
            hash: hash_at(b, 20),
        })
    }
}

/// The appended watermark and the open segment: what recovery starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LogHead {
    /// Last appended block (number, hash), if any.
    pub last: Option<(u64, [u8; 32])>,
    /// Id the next created segment gets (= number of segments ever created).
    pub next_segment: u64,
    /// The open (unsealed) segment and the byte length covered by the catalog.
    pub active: Option<(u64, u64)>,
}

impl LogHead {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(66);
        match self.last {
            Some((n, h)) => {
                b.push(1);
                b.extend_from_slice(&n.to_le_bytes());
                b.extend_from_slice(&h);
            }
            None => b.extend_from_slice(&[0; 41]),
        }
        b.extend_from_slice(&self.next_segment.to_le_bytes());
        match self.active {
            Some((s, end)) => {
                b.push(1);
                b.extend_from_slice(&s.to_le_bytes());
                b.extend_from_slice(&end.to_le_bytes());
            }
            None => b.extend_from_slice(&[0; 17]),
        }
        b
    }
    fn decode(b: &[u8]) -> Result<Self> {
        if b.len() != 66 {
            return Err(corrupt("log head", "record length"));
        }
        Ok(Self {
            last: (b[0] == 1).then(|| (u64_at(b, 1), hash_at(b, 9))),
            next_segment: u64_at(b, 41),
            active: (b[49] == 1).then(|| (u64_at(b, 50), u64_at(b, 58))),
        })
    }
}

/// A sealed segment as the local log knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SealedSegment {
    pub segment: u64,
    pub first_number: u64,
    pub last_number: u64,
    pub first_hash: [u8; 32],
    pub last_hash: [u8; 32],
    pub bytes: u64,
    pub segment_hash: [u8; 32],
    pub blocks_root: [u8; 32],
}

impl SealedSegment {
    fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(168);
        b.extend_from_slice(&self.segment.to_le_bytes());
        b.extend_from_slice(&self.first_number.to_le_bytes());
        b.extend_from_slice(&self.last_number.to_le_bytes());
        b.extend_from_slice(&self.first_hash);
        b.extend_from_slice(&self.last_hash);
        b.extend_from_slice(&self.bytes.to_le_bytes());
        b.extend_from_slice(&self.segment_hash);
        b.extend_from_slice(&self.blocks_root);
        b
    }
    fn decode(b: &[u8]) -> Result<Self> {
        if b.len() != 160 {
            return Err(corrupt("segments", "sealed segment record length"));
        }
        Ok(Self {
            segment: u64_at(b, 0),
            first_number: u64_at(b, 8),
            last_number: u64_at(b, 16),
            first_hash: hash_at(b, 24),
            last_hash: hash_at(b, 56),
            bytes: u64_at(b, 88),
            segment_hash: hash_at(b, 96),
            blocks_root: hash_at(b, 128),
        })
    }
}

pub(crate) fn corrupt(context: &'static str, reason: &str) -> ArchiveError {
    ArchiveError::DbCorrupt {
        context,
        reason: reason.into(),
    }
}

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// A batch of writes that lands atomically.
#[derive(Default)]
pub struct Batch {
    pub(crate) wb: WriteBatch,
    /// The state-index writes this batch carries: where they start (checked at commit) and the
    /// key ids they allocated.
    pub(crate) index: Option<IndexPending>,
}

/// The local RocksDB database.
pub struct Store {
    pub(crate) db: DB,
    /// Opened as a RocksDB secondary (read-only follower of another process's primary).
    secondary: bool,
    /// Serialises commits that carry state-index writes (the log's appends, the backfill), so each
    /// can check that the index did not move since its batch was built.
    pub(crate) index_lock: Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Arc<Self>> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // The catalog is small per block; keep RocksDB's own memory modest (RSS bound).
        opts.set_write_buffer_size(16 * 1024 * 1024);
        opts.set_max_write_buffer_number(2);
        let cfs = CFS.iter().map(|name| {
            let mut cf_opts = Options::default();
            if *name == CF_STATE_KEYS {
                let mut table = BlockBasedOptions::default();
                table.set_bloom_filter(STATE_KEYS_BLOOM_BITS, false);
                cf_opts.set_block_based_table_factory(&table);
            }
            ColumnFamilyDescriptor::new(*name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(ArchiveError::db("open"))?;
        Ok(Arc::new(Self {
            db,
            secondary: false,
            index_lock: Mutex::new(()),
        }))
    }

    /// Opens the store read-only beside the process that owns it (RocksDB secondary instance,
    /// its own info logs in `scratch`), so a history RPC server can read an archive while the
    /// node or follower keeps appending. [`catch_up`](Self::catch_up) picks up their writes.
    pub fn open_secondary(path: &Path, scratch: &Path) -> Result<Arc<Self>> {
        let mut opts = Options::default();
        // Secondaries must keep every file open: the primary may delete them meanwhile.
        opts.set_max_open_files(-1);
        // Only the families the primary created: one written by an older version lacks the
        // state index, which then reads as not indexed instead of failing the open.
        let existing = DB::list_cf(&opts, path).map_err(ArchiveError::db("list families"))?;
        let cfs = CFS
            .iter()
            .filter(|name| existing.iter().any(|e| e == *name));
        let db = DB::open_cf_as_secondary(&opts, path, scratch, cfs)
            .map_err(ArchiveError::db("open secondary"))?;
        Ok(Arc::new(Self {
            db,
            secondary: true,
            index_lock: Mutex::new(()),
        }))
    }

    /// Replays the primary's new writes into a secondary store; a no-op on a primary.
    pub fn catch_up(&self) -> Result<()> {
        if self.secondary {
            self.db
                .try_catch_up_with_primary()
                .map_err(ArchiveError::db("catch up with primary"))?;
        }
        Ok(())
    }

    /// Writes every column family's memtable to disk, releasing its memory: a bulk writer (the
    /// gateway's catalog build) calls it once done, so the memtables do not sit in its RSS.
    pub fn flush(&self) -> Result<()> {
        for name in CFS {
            self.db
                .flush_cf(self.cf(name)?)
                .map_err(ArchiveError::db("flush"))?;
        }
        Ok(())
    }

    pub(crate) fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| corrupt("open", "column family missing"))
    }

    pub(crate) fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db
            .get_cf(self.cf(cf)?, key)
            .map_err(ArchiveError::db(cf))
    }

    fn write(&self, batch: Batch, sync: bool) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        let _index_writer = match &batch.index {
            Some(pending) => Some(self.check_index_base(pending)?),
            None => None,
        };
        self.db
            .write_opt(batch.wb, &opts)
            .map_err(ArchiveError::db("write"))
    }

    pub fn commit(&self, batch: Batch) -> Result<()> {
        self.write(batch, false)
    }

    pub fn commit_synced(&self, batch: Batch) -> Result<()> {
        self.write(batch, true)
    }

    /// Stores the key check value at init, or compares it on later opens.
    pub fn check_master_key(&self, check: &[u8; 32]) -> Result<()> {
        match self.get(CF_META, META_KEY_CHECK)? {
            Some(stored) if stored == check => Ok(()),
            Some(_) => Err(ArchiveError::WrongMasterKey {
                what: "the local data directory was created with another master key".into(),
            }),
            None => {
                let mut b = Batch::default();
                b.wb.put_cf(self.cf(CF_META)?, META_KEY_CHECK, check);
                self.commit_synced(b)
            }
        }
    }

    pub fn log_head(&self) -> Result<LogHead> {
        match self.get(CF_META, META_LOG_HEAD)? {
            Some(b) => LogHead::decode(&b),
            None => Ok(LogHead::default()),
        }
    }

    pub fn put_log_head(&self, batch: &mut Batch, head: &LogHead) -> Result<()> {
        batch
            .wb
            .put_cf(self.cf(CF_META)?, META_LOG_HEAD, head.encode());
        Ok(())
    }

    pub fn put_location(&self, batch: &mut Batch, number: u64, loc: &Location) -> Result<()> {
        batch
            .wb
            .put_cf(self.cf(CF_CATALOG)?, be(number), loc.encode());
        batch
            .wb
            .put_cf(self.cf(CF_HASHES)?, loc.hash, number.to_le_bytes());
        Ok(())
    }

    pub fn location(&self, number: u64) -> Result<Option<Location>> {
        self.get(CF_CATALOG, &be(number))?
            .map(|b| Location::decode(&b))
            .transpose()
    }

    pub fn number_by_hash(&self, hash: &[u8; 32]) -> Result<Option<u64>> {
        match self.get(CF_HASHES, hash)? {
            Some(b) if b.len() == 8 => Ok(Some(u64_at(&b, 0))),
            Some(_) => Err(corrupt("hashes", "hash index record length")),
            None => Ok(None),
        }
    }

    /// The lowest block number in the catalog (the first archived block), if any.
    pub fn first_number(&self) -> Result<Option<u64>> {
        self.catalog_edge(IteratorMode::Start)
    }

    /// The highest block number in the catalog (the archive's head), if any.
    pub fn last_number(&self) -> Result<Option<u64>> {
        self.catalog_edge(IteratorMode::End)
    }

    /// The block number at one end of the catalog.
    fn catalog_edge(&self, end: IteratorMode<'_>) -> Result<Option<u64>> {
        let cf = self.cf(CF_CATALOG)?;
        match self.db.iterator_cf(cf, end).next() {
            None => Ok(None),
            Some(item) => {
                let (k, _) = item.map_err(ArchiveError::db("catalog scan"))?;
                let k: [u8; 8] = k
                    .as_ref()
                    .try_into()
                    .map_err(|_| corrupt("catalog", "key length"))?;
                Ok(Some(u64::from_be_bytes(k)))
            }
        }
    }

    /// Block hashes of `first..=last`, in order, from the catalog.
    pub fn hashes_in(&self, first: u64, last: u64) -> Result<Vec<[u8; 32]>> {
        let cf = self.cf(CF_CATALOG)?;
        let mut out = Vec::with_capacity((last - first + 1) as usize);
        let iter = self.db.iterator_cf(
            cf,
            IteratorMode::From(&be(first), rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(ArchiveError::db("catalog scan"))?;
            if k.len() != 8 {
                return Err(corrupt("catalog", "key length"));
            }
            let n = u64::from_be_bytes([k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]]);
            if n > last {
                break;
            }
            if n != first + out.len() as u64 {
                return Err(corrupt("catalog", &format!("block {n} out of sequence")));
            }
            out.push(Location::decode(&v)?.hash);
        }
        if out.len() as u64 != last - first + 1 {
            return Err(corrupt(
                "catalog",
                &format!("blocks {first}..={last} incomplete"),
            ));
        }
        Ok(out)
    }

    pub fn put_state(&self, batch: &mut Batch, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let cf = self.cf(CF_STATE)?;
        match value {
            Some(v) => batch.wb.put_cf(cf, key, v),
            None => batch.wb.delete_cf(cf, key),
        }
        Ok(())
    }

    /// The chain's current state value at `key`.
    pub fn state(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(CF_STATE, key)
    }

    pub fn put_sealed(&self, batch: &mut Batch, s: &SealedSegment) -> Result<()> {
        batch
            .wb
            .put_cf(self.cf(CF_SEGMENTS)?, be(s.segment), s.encode());
        Ok(())
    }

    pub fn sealed(&self, segment: u64) -> Result<Option<SealedSegment>> {
        self.get(CF_SEGMENTS, &be(segment))?
            .map(|b| SealedSegment::decode(&b))
            .transpose()
    }

    /// All sealed segments, in id order.
    pub fn sealed_all(&self) -> Result<Vec<SealedSegment>> {
        let cf = self.cf(CF_SEGMENTS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (_, v) = item.map_err(ArchiveError::db("segments scan"))?;
            out.push(SealedSegment::decode(&v)?);
        }
        Ok(out)
    }

    pub fn put_manifest(&self, batch: &mut Batch, m: &Manifest) -> Result<()> {
        batch
            .wb
            .put_cf(self.cf(CF_MANIFESTS)?, be(m.segment), m.encode());
        Ok(())
    }

    pub fn manifest(&self, segment: u64) -> Result<Option<Manifest>> {
        self.get(CF_MANIFESTS, &be(segment))?
            .map(|b| Manifest::decode(segment, &b))
            .transpose()
    }

    pub fn put_placement(&self, batch: &mut Batch, p: &Placement) -> Result<()> {
        batch
            .wb
            .put_cf(self.cf(CF_PLACEMENT)?, be(p.segment), p.encode());
        Ok(())
    }

    pub fn placement(&self, segment: u64) -> Result<Option<Placement>> {
        self.get(CF_PLACEMENT, &be(segment))?
            .map(|b| Placement::decode(segment, &b))
            .transpose()
    }

    /// Records what the last repair found of a segment: `Some((good, total))` while it has fewer
    /// than all its shards on hosters (whatever its placement still names), `None` once whole.
    pub fn put_short(
        &self,
        batch: &mut Batch,
        segment: u64,
        short: Option<(usize, usize)>,
    ) -> Result<()> {
        let mut key = META_SHORT_PREFIX.to_vec();
        key.extend_from_slice(&be(segment));
        let cf = self.cf(CF_META)?;
        match short {
            Some((good, total)) => batch.wb.put_cf(
                cf,
                key,
                [(good as u32).to_le_bytes(), (total as u32).to_le_bytes()].concat(),
            ),
            None => batch.wb.delete_cf(cf, key),
        }
        Ok(())
    }

    /// Every segment the last repair found short: (segment, good shards, total).
    pub fn short_all(&self) -> Result<Vec<(u64, usize, usize)>> {
        let cf = self.cf(CF_META)?;
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            cf,
            IteratorMode::From(META_SHORT_PREFIX, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(ArchiveError::db(CF_META))?;
            let Some(seg) = k.strip_prefix(META_SHORT_PREFIX) else {
                break;
            };
            if seg.len() != 8 || v.len() != 8 {
                return Err(ArchiveError::DbCorrupt {
                    context: CF_META,
                    reason: "short-segment record has the wrong length".into(),
                });
            }
            let segment = u64::from_be_bytes(seg.try_into().unwrap_or_default());
            out.push((segment, u32_at(&v, 0) as usize, u32_at(&v, 4) as usize));
        }
        Ok(out)
    }

    /// Segments `< dispersed_next` are dispersed (manifest stored and replicated).
    pub fn dispersed_next(&self) -> Result<u64> {
        self.get_u64(META_DISPERSED)
    }

    pub fn put_dispersed_next(&self, batch: &mut Batch, next: u64) -> Result<()> {
        batch
            .wb
            .put_cf(self.cf(CF_META)?, META_DISPERSED, next.to_le_bytes());
        Ok(())
    }

    /// Blocks below this number have been pruned from the node (set by the node integration).
    pub fn pruned_below(&self) -> Result<u64> {
        self.get_u64(META_PRUNED)
    }

    pub fn put_pruned_below(&self, batch: &mut Batch, number: u64) -> Result<()> {
        batch
            .wb
            .put_cf(self.cf(CF_META)?, META_PRUNED, number.to_le_bytes());
        Ok(())
    }

    /// Segments `< verified_next` were read back from the hosters after dispersal with all k+m
    /// shards matching their roots and the manifest replicated: what the prune watermark follows.
    pub fn verified_next(&self) -> Result<u64> {
        self.get_u64(META_VERIFIED)
    }

    pub fn put_verified_next(&self, batch: &mut Batch, next: u64) -> Result<()> {
        batch
            .wb
            .put_cf(self.cf(CF_META)?, META_VERIFIED, next.to_le_bytes());
        Ok(())
    }

    /// Local segment files `< this` were deleted after verification (read from the hosters).
    pub fn local_segments_pruned_below(&self) -> Result<u64> {
        self.get_u64(META_LOCAL_PRUNED)
    }

    pub fn put_local_segments_pruned_below(&self, batch: &mut Batch, segment: u64) -> Result<()> {
        batch
            .wb
            .put_cf(self.cf(CF_META)?, META_LOCAL_PRUNED, segment.to_le_bytes());
        Ok(())
    }

    pub(crate) fn get_u64(&self, key: &[u8]) -> Result<u64> {
        match self.get(CF_META, key)? {
            Some(b) if b.len() == 8 => Ok(u64_at(&b, 0)),
            Some(_) => Err(corrupt("meta", "watermark length")),
            None => Ok(0),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let h = LogHead {
            last: Some((5, [1; 32])),
            next_segment: 3,
            active: Some((2, 640)),
        };
        assert_eq!(LogHead::decode(&h.encode()).unwrap(), h);
        assert_eq!(
            LogHead::decode(&LogHead::default().encode()).unwrap(),
            LogHead::default()
        );
        let s = SealedSegment {
            segment: 1,
            first_number: 2,
            last_number: 3,
            first_hash: [4; 32],
            last_hash: [5; 32],
            bytes: 6,
            segment_hash: [7; 32],
            blocks_root: [8; 32],
        };
        assert_eq!(SealedSegment::decode(&s.encode()).unwrap(), s);
    }

    #[test]
    fn key_check_refuses_other_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.check_master_key(&[1; 32]).unwrap();
        store.check_master_key(&[1; 32]).unwrap();
        assert!(matches!(
            store.check_master_key(&[2; 32]),
            Err(ArchiveError::WrongMasterKey { .. })
        ));
    }
}
