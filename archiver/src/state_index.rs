//! The state-history index: for every state key, the blocks where it changed and what it became
//! (Erigon-style change history), built from the state changes the block records carry, so that
//! "the value of K after block N" is two seeks and keys list by prefix at any block, in byte
//! order and bounded memory. Chain-agnostic: keys and values are opaque bytes. Byte layout and a
//! test vector: specs/state-index.md.
//!
//! Writers: the log's append indexes a block in the batch that records its location whenever the
//! index has caught up with the log, so block and index never disagree after a crash; otherwise
//! [`backfill_state_index`] indexes blocks from `indexed_next` on, a bounded step at a time, from
//! the local log or the hosters. Every commit carrying index writes checks, under the store's
//! index lock, that the index did not move since its batch was built.

use std::collections::HashMap;
use std::sync::MutexGuard;

use crate::error::{ArchiveError, Result};
use crate::history::HistoryReader;
use crate::record::{u64_at, StateChange};
use crate::store::{corrupt, Batch, Store, CF_META};

/// Values up to this size are kept in the index entry; larger ones are read from the block that
/// wrote them. Substrate's common values (an `AccountInfo` is 80 bytes, balances, nonces, small
/// structs) fit, so most historical reads touch no block; the rare large ones (events, code,
/// metadata) are not copied a second time into the store.
pub const INLINE_VALUE_BYTES_MAX: usize = 128;
/// Most keys one `storage_keys_at` returns, as Substrate's `state_getKeysPaged` allows: a page
/// bounds the answer's memory; callers page with `start_after`.
pub const STORAGE_KEYS_AT_MAX: usize = 1000;
/// Record bytes one backfill step indexes (at least one block): a few MiB keeps a step's batch
/// and its new-key map small while one commit covers many blocks.
pub const BACKFILL_STEP_BYTES: u64 = 4 * 1024 * 1024;

/// Family `state_keys`: state key (raw bytes, the whole RocksDB key) → key id (u64 BE).
pub(crate) const CF_STATE_KEYS: &str = "state_keys";
/// Family `state_history`: key id (u64 BE) ‖ block number (u64 BE) → entry.
pub(crate) const CF_STATE_HISTORY: &str = "state_history";
/// Meta: the first block number the index does not cover (u64 LE); absent = nothing indexed.
const META_INDEXED_NEXT: &[u8] = b"state_indexed_next";
/// Meta: the id the next new state key gets (u64 LE); absent = 0.
const META_NEXT_KEY_ID: &[u8] = b"state_next_key_id";

const TAG_DELETED: u8 = 0;
const TAG_INLINE: u8 = 1;
const TAG_IN_BLOCK: u8 = 2;
/// Tag, value length (u32 LE), BLAKE3 of the value.
const IN_BLOCK_ENTRY_BYTES: usize = 1 + 4 + 32;
/// Hex bytes of a state key shown in an error (Substrate keys share 32-byte prefixes).
const KEY_HEX_BYTES_MAX: usize = 64;

/// What a key became at one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// The block deleted the key.
    Deleted,
    /// The value, at most [`INLINE_VALUE_BYTES_MAX`] bytes.
    Inline(Vec<u8>),
    /// A larger value: the block's record holds it; its length and BLAKE3 hash check the read.
    InBlock { len: u32, hash: [u8; 32] },
}

impl Entry {
    /// The entry a change to `value` writes.
    pub fn for_value(value: Option<&[u8]>) -> Self {
        match value {
            None => Self::Deleted,
            Some(v) if v.len() <= INLINE_VALUE_BYTES_MAX => Self::Inline(v.to_vec()),
            Some(v) => Self::InBlock {
                len: v.len() as u32,
                hash: *blake3::hash(v).as_bytes(),
            },
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Deleted => vec![TAG_DELETED],
            Self::Inline(v) => [&[TAG_INLINE][..], v].concat(),
            Self::InBlock { len, hash } => {
                let mut out = Vec::with_capacity(IN_BLOCK_ENTRY_BYTES);
                out.push(TAG_IN_BLOCK);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(hash);
                out
            }
        }
    }

    /// Decodes an entry read from the store; the error says what is wrong with the bytes.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        let Some((&tag, rest)) = bytes.split_first() else {
            return Err("empty entry".into());
        };
        match tag {
            TAG_DELETED if rest.is_empty() => Ok(Self::Deleted),
            TAG_DELETED => Err(format!("deletion entry with {} extra bytes", rest.len())),
            TAG_INLINE if rest.len() <= INLINE_VALUE_BYTES_MAX => Ok(Self::Inline(rest.to_vec())),
            TAG_INLINE => Err(format!(
                "inline value of {} bytes, over the {INLINE_VALUE_BYTES_MAX}-byte limit",
                rest.len()
            )),
            TAG_IN_BLOCK if bytes.len() == IN_BLOCK_ENTRY_BYTES => {
                let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                if (len as usize) <= INLINE_VALUE_BYTES_MAX {
                    return Err(format!("{len}-byte value kept in the block, not inline"));
                }
                let mut hash = [0u8; 32];
                hash.copy_from_slice(&rest[4..36]);
                Ok(Self::InBlock { len, hash })
            }
            TAG_IN_BLOCK => Err(format!(
                "in-block entry of {} bytes, not {IN_BLOCK_ENTRY_BYTES}",
                bytes.len()
            )),
            other => Err(format!("unknown entry tag {other}")),
        }
    }
}

/// The `state_history` key of key id `id` at block `number`.
pub fn history_key(id: u64, number: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&id.to_be_bytes());
    k[8..].copy_from_slice(&number.to_be_bytes());
    k
}

/// Hex of a state key for messages, cut after `KEY_HEX_BYTES_MAX` bytes.
fn key_hex(key: &[u8]) -> String {
    let shown = &key[..key.len().min(KEY_HEX_BYTES_MAX)];
    let more = if key.len() > shown.len() { "…" } else { "" };
    format!("0x{}{more}", hex::encode(shown))
}

fn bad_entry(key: &[u8], number: u64, reason: String) -> ArchiveError {
    ArchiveError::StateIndexCorrupt {
        key: key_hex(key),
        number,
        reason,
    }
}

/// Index writes a batch carries beyond what is committed.
pub(crate) struct IndexPending {
    /// The committed `indexed_next` and next key id the batch builds on (checked at commit).
    base_next: Option<u64>,
    base_key_id: u64,
    next: Option<u64>,
    next_key_id: u64,
    /// Keys this batch gave ids to (not yet readable from the store).
    new_keys: HashMap<Vec<u8>, u64>,
}

impl Store {
    /// Indexes one block's state changes into `batch` (called by the log append, by the
    /// backfill, and by the gateway's catalog builder). Blocks are indexed in order: `number`
    /// must be the index's next block (the catalog's first block when nothing is indexed yet),
    /// else [`ArchiveError::IndexOutOfOrder`]. Within a block a later change of a key wins.
    pub fn index_state_changes(
        &self,
        batch: &mut Batch,
        number: u64,
        changes: &[StateChange],
    ) -> Result<()> {
        let mut pending = match batch.index.take() {
            Some(p) => p,
            None => self.start_pending()?,
        };
        let expected = match pending.next {
            Some(next) => Some(next),
            None => self.first_number()?,
        };
        if let Some(expected) = expected.filter(|e| *e != number) {
            batch.index = Some(pending);
            return Err(ArchiveError::IndexOutOfOrder { number, expected });
        }
        let keys_cf = self.index_cf(CF_STATE_KEYS)?;
        let history_cf = self.index_cf(CF_STATE_HISTORY)?;
        for change in changes {
            let id = match pending.new_keys.get(&change.key) {
                Some(id) => *id,
                None => match self.state_key_id(&change.key)? {
                    Some(id) => id,
                    None => {
                        let id = pending.next_key_id;
                        pending.next_key_id += 1;
                        batch.wb.put_cf(keys_cf, &change.key, id.to_be_bytes());
                        pending.new_keys.insert(change.key.clone(), id);
                        id
                    }
                },
            };
            let entry = Entry::for_value(change.value.as_deref());
            batch
                .wb
                .put_cf(history_cf, history_key(id, number), entry.encode());
        }
        let meta = self.cf(CF_META)?;
        batch
            .wb
            .put_cf(meta, META_INDEXED_NEXT, (number + 1).to_le_bytes());
        if pending.next_key_id != pending.base_key_id {
            batch
                .wb
                .put_cf(meta, META_NEXT_KEY_ID, pending.next_key_id.to_le_bytes());
        }
        pending.next = Some(number + 1);
        batch.index = Some(pending);
        Ok(())
    }

    fn start_pending(&self) -> Result<IndexPending> {
        let base_next = self.indexed_next_stored()?;
        let base_key_id = self.get_u64(META_NEXT_KEY_ID)?;
        Ok(IndexPending {
            base_next,
            base_key_id,
            next: base_next,
            next_key_id: base_key_id,
            new_keys: HashMap::new(),
        })
    }

    /// Taken by every commit carrying index writes: fails it (nothing written) when another
    /// writer indexed blocks or allocated key ids since the batch was built.
    pub(crate) fn check_index_base(&self, pending: &IndexPending) -> Result<MutexGuard<'_, ()>> {
        let guard = self
            .index_lock
            .lock()
            .map_err(|_| ArchiveError::Task("state index lock poisoned".into()))?;
        let (next, key_id) = (self.indexed_next_stored()?, self.get_u64(META_NEXT_KEY_ID)?);
        if next != pending.base_next || key_id != pending.base_key_id {
            return Err(corrupt(
                "state index",
                &format!(
                    "another writer moved the index to {next:?} (key id {key_id}) while a batch built on {:?} (key id {}) was pending; nothing written",
                    pending.base_next, pending.base_key_id
                ),
            ));
        }
        Ok(guard)
    }

    /// Whether the log should index block `number` in `batch`: the index (with what `batch`
    /// already carries) reached it, or nothing is archived or indexed yet.
    pub(crate) fn index_caught_up(&self, batch: &Batch, number: u64) -> Result<bool> {
        if let Some(next) = batch.index.as_ref().and_then(|p| p.next) {
            return Ok(next == number);
        }
        match self.indexed_next_stored()? {
            Some(next) => Ok(next == number),
            None => Ok(self.first_number()?.is_none()),
        }
    }

    fn indexed_next_stored(&self) -> Result<Option<u64>> {
        match self.get(CF_META, META_INDEXED_NEXT)? {
            Some(b) if b.len() == 8 => Ok(Some(u64_at(&b, 0))),
            Some(_) => Err(corrupt("state index", "indexed_next length")),
            None => Ok(None),
        }
    }

    /// The first block number the state index does not cover yet (the catalog's first block, or
    /// 0 for an empty archive, while nothing is indexed).
    pub fn indexed_next(&self) -> Result<u64> {
        match self.indexed_next_stored()? {
            Some(next) => Ok(next),
            None => Ok(self.first_number()?.unwrap_or(0)),
        }
    }

    /// One of the index's families. A secondary opened before its writer created them lacks
    /// them although the writer may have indexed meanwhile: an error, not an empty answer.
    fn index_cf(&self, name: &'static str) -> Result<&rocksdb::ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| {
            corrupt(
                "state index",
                &format!("family {name} is missing (opened before the writer created it?): reopen the store"),
            )
        })
    }

    /// The id of a state key the index has seen.
    fn state_key_id(&self, key: &[u8]) -> Result<Option<u64>> {
        let cf = self.index_cf(CF_STATE_KEYS)?;
        match self
            .db
            .get_pinned_cf(cf, key)
            .map_err(ArchiveError::db(CF_STATE_KEYS))?
        {
            Some(b) => decode_id(key, &b).map(Some),
            None => Ok(None),
        }
    }

    /// The last entry of key `key` (id `id`) at or before block `number`, with its block.
    fn state_entry_at(&self, key: &[u8], id: u64, number: u64) -> Result<Option<(u64, Entry)>> {
        let mut it = self.db.raw_iterator_cf(self.index_cf(CF_STATE_HISTORY)?);
        entry_at(&mut it, key, id, number)
    }

    /// Up to `count` (at most [`STORAGE_KEYS_AT_MAX`]) keys starting with `prefix`, after
    /// `start_after`, that exist after block `number`, in byte order. Callers check that the
    /// index covers `number`.
    pub fn state_keys_at(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        count: usize,
        number: u64,
    ) -> Result<Vec<Vec<u8>>> {
        let count = count.min(STORAGE_KEYS_AT_MAX);
        let mut out = Vec::new();
        if count == 0 {
            return Ok(out);
        }
        let mut keys = self.db.raw_iterator_cf(self.index_cf(CF_STATE_KEYS)?);
        let mut history = self.db.raw_iterator_cf(self.index_cf(CF_STATE_HISTORY)?);
        match start_after {
            Some(after) if after >= prefix => keys.seek(after),
            _ => keys.seek(prefix),
        }
        while out.len() < count {
            let (Some(key), Some(id)) = (keys.key(), keys.value()) else {
                break;
            };
            if !key.starts_with(prefix) {
                break;
            }
            if start_after != Some(key) {
                let id = decode_id(key, id)?;
                if let Some((_, Entry::Inline(_) | Entry::InBlock { .. })) =
                    entry_at(&mut history, key, id, number)?
                {
                    out.push(key.to_vec());
                }
            }
            keys.next();
        }
        keys.status().map_err(ArchiveError::db(CF_STATE_KEYS))?;
        Ok(out)
    }

    /// Bytes the state index takes on disk: the live SST files of its two families, after their
    /// memtables are flushed so that every entry is counted.
    pub fn state_index_disk_bytes(&self) -> Result<u64> {
        let mut total = 0;
        for name in [CF_STATE_KEYS, CF_STATE_HISTORY] {
            let cf = self.index_cf(name)?;
            self.db.flush_cf(cf).map_err(ArchiveError::db(name))?;
            total += self
                .db
                .property_int_value_cf(cf, "rocksdb.live-sst-files-size")
                .map_err(ArchiveError::db(name))?
                .unwrap_or(0);
        }
        Ok(total)
    }
}

fn decode_id(key: &[u8], bytes: &[u8]) -> Result<u64> {
    let b: [u8; 8] = bytes
        .try_into()
        .map_err(|_| ArchiveError::StateIndexCorrupt {
            key: key_hex(key),
            number: 0,
            reason: format!("key id of {} bytes, not 8", bytes.len()),
        })?;
    Ok(u64::from_be_bytes(b))
}

fn entry_at(
    it: &mut rocksdb::DBRawIterator<'_>,
    key: &[u8],
    id: u64,
    number: u64,
) -> Result<Option<(u64, Entry)>> {
    it.seek_for_prev(history_key(id, number));
    let (Some(k), Some(v)) = (it.key(), it.value()) else {
        it.status().map_err(ArchiveError::db(CF_STATE_HISTORY))?;
        return Ok(None);
    };
    if k.len() != 16 {
        return Err(bad_entry(
            key,
            number,
            format!("{}-byte history key", k.len()),
        ));
    }
    if k[..8] != id.to_be_bytes() {
        return Ok(None);
    }
    let at = u64::from_be_bytes(k[8..].try_into().unwrap_or_default());
    let entry = Entry::decode(v).map_err(|reason| bad_entry(key, at, reason))?;
    Ok(Some((at, entry)))
}

/// How far one backfill call got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BackfillProgress {
    /// Blocks indexed by this call.
    pub blocks: u64,
    /// The index's `indexed_next` afterwards.
    pub indexed_next: u64,
    /// The index covers every archived block.
    pub caught_up: bool,
}

/// Indexes archived blocks from `indexed_next` on, in order, up to `steps` commits of about
/// `step_bytes` of records each (at least one block; the ops pass uses [`BACKFILL_STEP_BYTES`]);
/// records come from the local log, or from the hosters through `reader` for pruned segments.
/// `reader` must be over the writer's (primary) store.
pub async fn backfill_state_index(
    reader: &HistoryReader,
    steps: usize,
    step_bytes: u64,
) -> Result<BackfillProgress> {
    let store = reader.store();
    let mut progress = BackfillProgress::default();
    for _ in 0..steps {
        let start = store.indexed_next()?;
        let Some(last) = store.last_number()?.filter(|last| *last >= start) else {
            progress.caught_up = true;
            break;
        };
        let mut batch = Batch::default();
        let (mut number, mut bytes) = (start, 0u64);
        while number <= last && (number == start || bytes < step_bytes) {
            let loc = store
                .location(number)?
                .ok_or(ArchiveError::BlockNotFound { number })?;
            let record = reader
                .block(number)
                .await?
                .ok_or(ArchiveError::BlockNotFound { number })?;
            store.index_state_changes(&mut batch, number, &record.changes)?;
            bytes += u64::from(loc.len);
            number += 1;
        }
        store.commit(batch)?;
        progress.blocks += number - start;
        tracing::debug!(from = start, to = number, bytes, "state index backfilled");
    }
    progress.indexed_next = store.indexed_next()?;
    progress.caught_up = progress.caught_up || store.last_number()? < Some(progress.indexed_next);
    Ok(progress)
}

impl HistoryReader {
    /// The value of `key` after block `number` (`None`: absent then).
    /// `ArchiveError::NotIndexed { number, indexed_next }` when the index has not reached it.
    pub async fn storage_at(&self, key: &[u8], number: u64) -> Result<Option<Vec<u8>>> {
        self.check_indexed(number)?;
        let store = self.store();
        let Some(id) = store.state_key_id(key)? else {
            return Ok(None);
        };
        match store.state_entry_at(key, id, number)? {
            None | Some((_, Entry::Deleted)) => Ok(None),
            Some((_, Entry::Inline(value))) => Ok(Some(value)),
            Some((at, Entry::InBlock { len, hash })) => {
                self.value_from_block(key, at, len, &hash).await.map(Some)
            }
        }
    }

    /// Up to `count` keys that start with `prefix`, sort after `start_after`, and exist after
    /// block `number`, in byte order (at most [`STORAGE_KEYS_AT_MAX`] per call).
    pub async fn storage_keys_at(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        count: usize,
        number: u64,
    ) -> Result<Vec<Vec<u8>>> {
        self.check_indexed(number)?;
        self.store()
            .state_keys_at(prefix, start_after, count, number)
    }

    /// The first block number the index does not cover yet.
    pub fn indexed_next(&self) -> Result<u64> {
        self.store().indexed_next()
    }

    /// A state query at `number` needs the block archived and indexed.
    fn check_indexed(&self, number: u64) -> Result<()> {
        let store = self.store();
        let last = store.last_number()?;
        if last.is_none_or(|last| number > last) {
            return Err(ArchiveError::BeyondHead { number, last });
        }
        let indexed_next = store.indexed_next()?;
        if number >= indexed_next {
            return Err(ArchiveError::NotIndexed {
                number,
                indexed_next,
            });
        }
        if store.first_number()?.is_none_or(|first| number < first) {
            return Err(ArchiveError::BlockNotFound { number });
        }
        Ok(())
    }

    /// A value kept in block `number`'s record: its last change of `key`, checked against the
    /// index entry's length and hash.
    async fn value_from_block(
        &self,
        key: &[u8],
        number: u64,
        len: u32,
        hash: &[u8; 32],
    ) -> Result<Vec<u8>> {
        let record = self
            .block(number)
            .await?
            .ok_or(ArchiveError::BlockNotFound { number })?;
        let change = record.changes.into_iter().rev().find(|c| c.key == key);
        let Some(value) = change.and_then(|c| c.value) else {
            return Err(bad_entry(
                key,
                number,
                "the block's record sets no value for this key".into(),
            ));
        };
        if value.len() != len as usize || blake3::hash(&value).as_bytes() != hash {
            return Err(bad_entry(
                key,
                number,
                "the block's record holds another value than the index describes".into(),
            ));
        }
        Ok(value)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::BlockRecord;
    use crate::{Archive, ArchiveConfig, MasterKey};

    fn change(key: &[u8], value: Option<Vec<u8>>) -> StateChange {
        StateChange {
            key: key.to_vec(),
            value,
        }
    }

    /// The vector of specs/state-index.md: key `0x0102` (id 0) set to "hi" at block 5, deleted
    /// at block 7, set to 200 bytes of 0xab at block 9.
    #[test]
    fn layout_matches_the_spec_vector() {
        assert_eq!(
            hex::encode(history_key(0, 5)),
            "00000000000000000000000000000005"
        );
        assert_eq!(
            hex::encode(history_key(1, 0x0102)),
            "00000000000000010000000000000102"
        );
        assert_eq!(
            hex::encode(Entry::for_value(Some(b"hi")).encode()),
            "016869"
        );
        assert_eq!(hex::encode(Entry::for_value(None).encode()), "00");
        assert_eq!(hex::encode(Entry::for_value(Some(&[])).encode()), "01");
        let big = Entry::for_value(Some(&[0xab; 200])).encode();
        assert_eq!(
            hex::encode(&big),
            "02c80000007043bb087bff2a563fea382441585db97e6c9a16c63a1b617d835d4ca3d02da2"
        );
        let at_limit = Entry::for_value(Some(&[1; INLINE_VALUE_BYTES_MAX]));
        assert!(matches!(at_limit, Entry::Inline(_)));
        assert!(matches!(
            Entry::for_value(Some(&[1; INLINE_VALUE_BYTES_MAX + 1])),
            Entry::InBlock { len: 129, .. }
        ));
        for e in [Entry::Deleted, Entry::Inline(vec![]), at_limit] {
            assert_eq!(Entry::decode(&e.encode()).unwrap(), e);
        }
        assert_eq!(
            Entry::decode(&big).unwrap(),
            Entry::for_value(Some(&[0xab; 200]))
        );
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        let cases: [(&[u8], &str); 6] = [
            (&[], "empty"),
            (&[0, 1], "extra"),
            (&[9], "unknown entry tag 9"),
            (&[2, 1, 2], "not 37"),
            (
                &[
                    2, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
                "not inline",
            ),
            (&[1; 130], "over the 128-byte limit"),
        ];
        for (bytes, why) in cases {
            let err = Entry::decode(bytes).unwrap_err();
            assert!(err.contains(why), "{bytes:?}: {err}");
        }
    }

    fn record(number: u64, parent: [u8; 32], changes: Vec<StateChange>) -> BlockRecord {
        let block = number.to_le_bytes().to_vec();
        BlockRecord {
            number,
            hash: *blake3::hash(&[&block[..], &parent].concat()).as_bytes(),
            parent_hash: parent,
            block,
            justification: None,
            changes,
        }
    }

    fn archive(dir: &std::path::Path) -> (Archive, HistoryReader) {
        let (_, entries, set) = crate::testing::memory_hosters(6);
        let mut cfg = ArchiveConfig::new(dir.join("data"), entries);
        (cfg.data_shards, cfg.parity_shards) = (4, 2);
        cfg.durability = crate::Durability::Os;
        let archive = Archive::open(cfg, MasterKey::from_bytes([3; 32]), set).unwrap();
        let reader = HistoryReader::new(
            archive.store().clone(),
            archive.log().dir().to_path_buf(),
            archive.remote().clone(),
            1 << 20,
        );
        (archive, reader)
    }

    /// A damaged entry or key id reads as a clear error naming the key and block, never a
    /// panic or a wrong value.
    #[tokio::test]
    async fn damaged_index_bytes_give_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut archive, reader) = archive(dir.path());
        let r0 = record(0, [0; 32], vec![change(b"k", Some(b"v".to_vec()))]);
        let r1 = record(1, r0.hash, vec![change(b"other", Some(vec![7; 300]))]);
        archive.log_mut().append_batch(&[r0, r1]).unwrap();
        assert_eq!(
            reader.storage_at(b"k", 1).await.unwrap(),
            Some(b"v".to_vec())
        );
        assert_eq!(
            reader.storage_at(b"other", 1).await.unwrap(),
            Some(vec![7; 300])
        );
        let store = archive.store();
        let history = store.cf(CF_STATE_HISTORY).unwrap();
        store.db.put_cf(history, history_key(0, 0), [7, 7]).unwrap();
        let err = reader.storage_at(b"k", 1).await.unwrap_err();
        assert!(
            matches!(&err, ArchiveError::StateIndexCorrupt { key, number: 0, .. } if key == "0x6b"),
            "{err}"
        );
        assert!(err.to_string().contains("unknown entry tag 7"), "{err}");
        let err = reader.storage_keys_at(b"", None, 10, 1).await.unwrap_err();
        assert!(
            matches!(err, ArchiveError::StateIndexCorrupt { .. }),
            "{err}"
        );
        // An in-block entry whose hash does not match the record's value.
        let bad = Entry::InBlock {
            len: 300,
            hash: [1; 32],
        };
        store
            .db
            .put_cf(history, history_key(1, 1), bad.encode())
            .unwrap();
        let err = reader.storage_at(b"other", 1).await.unwrap_err();
        assert!(err.to_string().contains("another value"), "{err}");
        let keys = store.cf(CF_STATE_KEYS).unwrap();
        store.db.put_cf(keys, b"k", [1, 2, 3]).unwrap();
        let err = reader.storage_at(b"k", 1).await.unwrap_err();
        assert!(err.to_string().contains("key id of 3 bytes"), "{err}");
    }

    /// Blocks are indexed in order, and a batch built on an index another writer moved is
    /// refused whole at commit.
    #[tokio::test]
    async fn out_of_order_and_stale_batches_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut archive, reader) = archive(dir.path());
        let r0 = record(0, [0; 32], vec![change(b"a", Some(vec![1]))]);
        archive.log_mut().append(&r0).unwrap();
        let store = archive.store().clone();
        assert_eq!(store.indexed_next().unwrap(), 1);
        let mut batch = Batch::default();
        let err = store
            .index_state_changes(&mut batch, 2, &[change(b"b", Some(vec![2]))])
            .unwrap_err();
        assert!(matches!(
            err,
            ArchiveError::IndexOutOfOrder {
                number: 2,
                expected: 1
            }
        ));

        let (mut stale, mut fresh) = (Batch::default(), Batch::default());
        let b = [change(b"b", Some(vec![2]))];
        store.index_state_changes(&mut stale, 1, &b).unwrap();
        store.index_state_changes(&mut fresh, 1, &b).unwrap();
        store.commit(fresh).unwrap();
        let err = store.commit(stale).unwrap_err();
        assert!(err.to_string().contains("another writer"), "{err}");
        assert_eq!(store.indexed_next().unwrap(), 2);
        assert_eq!(store.state_key_id(b"b").unwrap(), Some(1));
        // The index ran ahead of the catalog here: a query at block 1 is beyond the head.
        assert!(matches!(
            reader.storage_at(b"a", 1).await,
            Err(ArchiveError::BeyondHead {
                number: 1,
                last: Some(0)
            })
        ));
    }
}
