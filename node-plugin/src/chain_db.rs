//! The reference node's local storage (RocksDB): headers (kept forever, as in Substrate), block
//! bodies, justifications and per-block state changes (pruned), the hash index, the current state
//! and the chain's watermarks. Every block is written in one atomic batch with its state, so a
//! `kill -9` leaves either the whole block or none of it.

use std::collections::BTreeMap;
use std::path::Path;

use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, WriteBatch, DB};

const CF_HEADERS: &str = "headers";
const CF_BODIES: &str = "bodies";
const CF_JUSTIFICATIONS: &str = "justifications";
const CF_CHANGES: &str = "changes";
const CF_HASHES: &str = "hashes";
const CF_STATE: &str = "state";
const CF_META: &str = "meta";
const CFS: [&str; 7] = [
    CF_HEADERS,
    CF_BODIES,
    CF_JUSTIFICATIONS,
    CF_CHANGES,
    CF_HASHES,
    CF_STATE,
    CF_META,
];

const META_SPEC: &[u8] = b"spec";
const META_BEST: &[u8] = b"best";
const META_FINALIZED: &[u8] = b"finalized";
const META_PRUNED: &[u8] = b"pruned_below";

/// Errors of the node's database; each names what it was doing.
#[derive(Debug, thiserror::Error)]
pub enum ChainDbError {
    #[error("node database ({context}): {source}")]
    Db {
        context: &'static str,
        #[source]
        source: rocksdb::Error,
    },
    #[error("node database ({context}): {reason}")]
    Corrupt {
        context: &'static str,
        reason: String,
    },
}

type Result<T> = std::result::Result<T, ChainDbError>;

fn db_err(context: &'static str) -> impl Fn(rocksdb::Error) -> ChainDbError {
    move |source| ChainDbError::Db { context, source }
}

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// State entries a block wrote, (key, value) in key order; a `None` value deletes the key.
pub type StateChanges = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// Value length that marks a deleted key in [`encode_changes`].
const DELETED_VALUE_LEN: u32 = u32::MAX;

/// A block's SCALE bytes and its SCALE justifications, if any.
pub type BlockBytes = (Vec<u8>, Option<Vec<u8>>);

/// A block to write: everything the node stores about it.
#[derive(Clone, Debug)]
pub struct StoredBlock<'a> {
    pub number: u64,
    pub hash: [u8; 32],
    pub header: &'a [u8],
    /// SCALE `Vec<Vec<u8>>` of the extrinsics (the block bytes after the header).
    pub body: &'a [u8],
    /// SCALE `Justifications`, when the block carries any.
    pub justifications: Option<&'a [u8]>,
    /// Encoded state changes (see [`encode_changes`]).
    pub changes: &'a [(Vec<u8>, Option<Vec<u8>>)],
    /// Whether `body`/`justifications` are kept (false when importing history older than the
    /// retention window: the archive holds it).
    pub keep_body: bool,
}

/// The node's database.
pub struct ChainDb {
    db: DB,
}

impl std::fmt::Debug for ChainDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChainDb")
    }
}

/// Encodes per-block state changes: count u32, then (key len u32, key, value len u32, value),
/// LE; a deletion has value length `u32::MAX` and no value.
pub fn encode_changes(changes: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(changes.len() as u32).to_le_bytes());
    for (k, v) in changes {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k);
        match v {
            Some(v) => {
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&DELETED_VALUE_LEN.to_le_bytes()),
        }
    }
    out
}

/// Inverse of [`encode_changes`]; None on malformed input.
pub fn decode_changes(mut b: &[u8]) -> Option<StateChanges> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (h, t) = b.split_at(n);
        *b = t;
        Some(h)
    }
    fn take_u32(b: &mut &[u8]) -> Option<usize> {
        take(b, 4).map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize)
    }
    let count = take_u32(&mut b)?;
    if count > b.len() / 8 {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let kl = take_u32(&mut b)?;
        let k = take(&mut b, kl)?.to_vec();
        let vl = take_u32(&mut b)?;
        let v = if vl == DELETED_VALUE_LEN as usize {
            None
        } else {
            Some(take(&mut b, vl)?.to_vec())
        };
        out.push((k, v));
    }
    b.is_empty().then_some(out)
}

fn number_hash(b: &[u8]) -> Option<(u64, [u8; 32])> {
    if b.len() != 40 {
        return None;
    }
    let n = u64::from_le_bytes(b[..8].try_into().ok()?);
    Some((n, b[8..40].try_into().ok()?))
}

fn encode_number_hash(n: u64, h: &[u8; 32]) -> Vec<u8> {
    let mut v = n.to_le_bytes().to_vec();
    v.extend_from_slice(h);
    v
}

impl ChainDb {
    pub fn open(path: &Path) -> Result<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_write_buffer_size(16 * 1024 * 1024);
        let cfs = CFS
            .iter()
            .map(|n| ColumnFamilyDescriptor::new(*n, Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(db_err("open"))?;
        Ok(Self { db })
    }

    fn cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or(ChainDbError::Corrupt {
            context: "open",
            reason: format!("column family {name} missing"),
        })
    }

    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db.get_cf(self.cf(cf)?, key).map_err(db_err(cf))
    }

    /// The chain spec this database was created with (JSON), if initialised.
    pub fn spec(&self) -> Result<Option<Vec<u8>>> {
        self.get(CF_META, META_SPEC)
    }

    fn watermark(&self, key: &'static [u8]) -> Result<Option<(u64, [u8; 32])>> {
        match self.get(CF_META, key)? {
            None => Ok(None),
            Some(b) => number_hash(&b).map(Some).ok_or(ChainDbError::Corrupt {
                context: "meta",
                reason: "watermark record length".into(),
            }),
        }
    }

    pub fn best(&self) -> Result<Option<(u64, [u8; 32])>> {
        self.watermark(META_BEST)
    }

    pub fn finalized(&self) -> Result<Option<(u64, [u8; 32])>> {
        self.watermark(META_FINALIZED)
    }

    /// Bodies, justifications and changes below this number are gone from this node.
    pub fn pruned_below(&self) -> Result<u64> {
        Ok(self
            .get(CF_META, META_PRUNED)?
            .and_then(|b| b.try_into().ok().map(u64::from_le_bytes))
            .unwrap_or(0))
    }

    /// Writes a block, its state changes and the new best (and finalized, when given) watermarks
    /// atomically. `spec` is stored with the genesis block.
    pub fn put_block(
        &self,
        b: &StoredBlock<'_>,
        finalized: Option<(u64, [u8; 32])>,
        spec: Option<&[u8]>,
    ) -> Result<()> {
        let mut batch = WriteBatch::default();
        let key = be(b.number);
        batch.put_cf(self.cf(CF_HEADERS)?, key, b.header);
        batch.put_cf(self.cf(CF_HASHES)?, b.hash, key);
        if b.keep_body {
            batch.put_cf(self.cf(CF_BODIES)?, key, b.body);
            if let Some(j) = b.justifications {
                batch.put_cf(self.cf(CF_JUSTIFICATIONS)?, key, j);
            }
            batch.put_cf(self.cf(CF_CHANGES)?, key, encode_changes(b.changes));
        } else {
            batch.put_cf(self.cf(CF_META)?, META_PRUNED, (b.number + 1).to_le_bytes());
        }
        let state = self.cf(CF_STATE)?;
        for (k, v) in b.changes {
            match v {
                Some(v) => batch.put_cf(state, k, v),
                None => batch.delete_cf(state, k),
            }
        }
        batch.put_cf(
            self.cf(CF_META)?,
            META_BEST,
            encode_number_hash(b.number, &b.hash),
        );
        if let Some((n, h)) = finalized {
            batch.put_cf(self.cf(CF_META)?, META_FINALIZED, encode_number_hash(n, &h));
        }
        if let Some(spec) = spec {
            batch.put_cf(self.cf(CF_META)?, META_SPEC, spec);
        }
        self.db.write(batch).map_err(db_err("write block"))
    }

    /// Makes every write so far durable (syncs RocksDB's write-ahead log).
    pub fn sync(&self) -> Result<()> {
        self.db
            .flush_wal(true)
            .map_err(db_err("sync write-ahead log"))
    }

    /// Marks `(number, hash)` finalized, attaching its justifications.
    pub fn finalize(
        &self,
        number: u64,
        hash: &[u8; 32],
        justifications: Option<&[u8]>,
    ) -> Result<()> {
        let mut batch = WriteBatch::default();
        if let Some(j) = justifications {
            if number >= self.pruned_below()? {
                batch.put_cf(self.cf(CF_JUSTIFICATIONS)?, be(number), j);
            }
        }
        batch.put_cf(
            self.cf(CF_META)?,
            META_FINALIZED,
            encode_number_hash(number, hash),
        );
        self.db.write(batch).map_err(db_err("finalize"))
    }

    /// Deletes bodies, justifications and state changes of blocks below `below` (headers stay).
    pub fn prune(&self, below: u64) -> Result<u64> {
        let from = self.pruned_below()?;
        if below <= from {
            return Ok(from);
        }
        let mut batch = WriteBatch::default();
        for cf in [CF_BODIES, CF_JUSTIFICATIONS, CF_CHANGES] {
            batch.delete_range_cf(self.cf(cf)?, be(from), be(below));
        }
        batch.put_cf(self.cf(CF_META)?, META_PRUNED, below.to_le_bytes());
        self.db.write(batch).map_err(db_err("prune"))?;
        Ok(below)
    }

    pub fn header(&self, number: u64) -> Result<Option<Vec<u8>>> {
        self.get(CF_HEADERS, &be(number))
    }

    pub fn body(&self, number: u64) -> Result<Option<Vec<u8>>> {
        self.get(CF_BODIES, &be(number))
    }

    pub fn justifications(&self, number: u64) -> Result<Option<Vec<u8>>> {
        self.get(CF_JUSTIFICATIONS, &be(number))
    }

    pub fn changes(&self, number: u64) -> Result<Option<StateChanges>> {
        match self.get(CF_CHANGES, &be(number))? {
            None => Ok(None),
            Some(b) => decode_changes(&b).map(Some).ok_or(ChainDbError::Corrupt {
                context: "changes",
                reason: format!("block {number}'s state changes are malformed"),
            }),
        }
    }

    pub fn number_by_hash(&self, hash: &[u8; 32]) -> Result<Option<u64>> {
        match self.get(CF_HASHES, hash)? {
            None => Ok(None),
            Some(b) => b
                .try_into()
                .map(|a: [u8; 8]| Some(u64::from_be_bytes(a)))
                .map_err(|_| ChainDbError::Corrupt {
                    context: "hashes",
                    reason: "index record length".into(),
                }),
        }
    }

    /// Count of bodies held (tests and status: shows what retention left).
    pub fn bodies_held(&self) -> Result<u64> {
        let mut n = 0;
        for item in self
            .db
            .iterator_cf(self.cf(CF_BODIES)?, IteratorMode::Start)
        {
            item.map_err(db_err("bodies scan"))?;
            n += 1;
        }
        Ok(n)
    }

    /// The whole current state.
    pub fn state(&self) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut out = BTreeMap::new();
        for item in self.db.iterator_cf(self.cf(CF_STATE)?, IteratorMode::Start) {
            let (k, v) = item.map_err(db_err("state scan"))?;
            out.insert(k.to_vec(), v.to_vec());
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_and_reject_garbage() {
        let c = vec![
            (b"a".to_vec(), Some(b"xyz".to_vec())),
            (vec![], Some(vec![])),
            (b"gone".to_vec(), None),
        ];
        assert_eq!(decode_changes(&encode_changes(&c)).unwrap(), c);
        assert!(decode_changes(&[1, 0, 0]).is_none());
        assert!(decode_changes(&[200, 0, 0, 0, 1, 0, 0, 0]).is_none());
    }

    #[test]
    fn prune_keeps_headers_and_drops_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let db = ChainDb::open(dir.path()).unwrap();
        for n in 0..10u64 {
            let hash = [n as u8; 32];
            db.put_block(
                &StoredBlock {
                    number: n,
                    hash,
                    header: b"h",
                    body: b"b",
                    justifications: Some(b"j"),
                    changes: &[
                        (b"k".to_vec(), Some(vec![n as u8])),
                        (b"old".to_vec(), (n < 5).then(|| vec![1])),
                    ],
                    keep_body: true,
                },
                Some((n, hash)),
                None,
            )
            .unwrap();
        }
        assert_eq!(db.prune(6).unwrap(), 6);
        assert_eq!(db.bodies_held().unwrap(), 4);
        assert!(db.body(5).unwrap().is_none());
        assert!(db.justifications(5).unwrap().is_none());
        assert!(db.header(0).unwrap().is_some());
        assert_eq!(db.number_by_hash(&[3; 32]).unwrap(), Some(3));
        assert_eq!(db.state().unwrap()[&b"k".to_vec()], vec![9]);
        assert!(
            !db.state().unwrap().contains_key(b"old".as_slice()),
            "deleted"
        );
        assert_eq!(db.finalized().unwrap().unwrap().0, 9);
    }
}
