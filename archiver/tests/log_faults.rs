//! Fault injection under the block log: for every N, the Nth write, fsync or commit of a full
//! ingest + seal + disperse (to in-memory hosters) fails. The handle must refuse all further work,
//! and a reopen over healthy files must hold every acknowledged block exactly once and in
//! sequence, then finish the ingest, disperse and restore byte for byte. Odd N also lose power at
//! the failure: bytes never fsynced and files whose name was never synced are dropped. After every
//! recovery the state-history index covers exactly the archived blocks and answers as written.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use archiver::config::{ArchiveConfig, Durability, HosterEntry};
use archiver::fs::FaultyFiles;
use archiver::testing::memory_hosters;
use archiver::{
    Archive, ArchiveError, BlockRecord, HistoryReader, HosterSet, MasterKey, RemoteArchive,
    RestoreFormat, StateChange,
};
use rand::{RngCore, SeedableRng};

const BLOCKS: u64 = 90;
const BLOCK_BYTES: usize = 3000;
/// Blocks per append: several batches per 64 KiB segment, some crossing a segment's end.
const BATCH: usize = 8;
/// An explicit seal after every this many batches (below the size threshold).
const SEAL_EVERY: usize = 4;

fn chain() -> Vec<BlockRecord> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let mut parent = [0u8; 32];
    (0..BLOCKS)
        .map(|number| {
            let mut block = vec![0u8; BLOCK_BYTES];
            rng.fill_bytes(&mut block);
            let hash =
                *blake3::hash(&[&number.to_le_bytes()[..], &parent, &block].concat()).as_bytes();
            let rec = BlockRecord {
                number,
                hash,
                parent_hash: parent,
                block,
                justification: number.is_multiple_of(3).then(|| vec![7u8; 64]),
                changes: vec![
                    StateChange {
                        key: b"head".to_vec(),
                        value: Some(number.to_le_bytes().to_vec()),
                    },
                    StateChange {
                        key: b"big".to_vec(),
                        value: big_value(number),
                    },
                ],
            };
            parent = hash;
            rec
        })
        .collect()
}

/// What block `number` sets `big` to: a value over the index's inline limit (read back from
/// the block), a deletion, or an inline one.
fn big_value(number: u64) -> Option<Vec<u8>> {
    match number % 3 {
        0 => Some(vec![number as u8; 300]),
        1 => None,
        _ => Some(vec![number as u8; 5]),
    }
}

/// The state index agrees with the catalog (it covers exactly the archived blocks, as every
/// append indexed in its own batch) and answers every block's `head` and `big` as written.
async fn check_state_index(a: &Archive, label: &str) {
    let last = a.log().last().map(|l| l.0);
    let reader = HistoryReader::new(
        a.store().clone(),
        a.log().dir().to_path_buf(),
        a.remote().clone(),
        1 << 20,
    );
    assert_eq!(
        reader.indexed_next().unwrap(),
        last.map_or(0, |l| l + 1),
        "{label}: index and catalog disagree"
    );
    let Some(last) = last else { return };
    for n in 0..=last {
        let head = reader.storage_at(b"head", n).await;
        let head = head.unwrap_or_else(|e| panic!("{label}: head at {n}: {e}"));
        assert_eq!(head, Some(n.to_le_bytes().to_vec()), "{label}: head at {n}");
        let big = reader.storage_at(b"big", n).await.unwrap();
        assert_eq!(big, big_value(n), "{label}: big at {n}");
    }
}

struct Setup {
    dir: tempfile::TempDir,
    entries: Vec<HosterEntry>,
    set: HosterSet,
}

impl Setup {
    fn new() -> Self {
        let (_, entries, set) = memory_hosters(6);
        Self {
            dir: tempfile::tempdir().unwrap(),
            entries,
            set,
        }
    }
    fn cfg(&self) -> ArchiveConfig {
        let mut cfg = ArchiveConfig::new(self.dir.path().join("data"), self.entries.clone());
        cfg.data_shards = 4;
        cfg.parity_shards = 2;
        cfg.segment_size_bytes = 64 * 1024;
        cfg.durability = Durability::Fsync;
        cfg
    }
    fn set(&self) -> HosterSet {
        self.set.clone()
    }
    fn open(&self, files: Option<&FaultyFiles>) -> archiver::Result<Archive> {
        let key = MasterKey::from_bytes([42; 32]);
        match files {
            Some(f) => Archive::open_with_files(self.cfg(), key, self.set(), Arc::new(f.clone())),
            None => Archive::open(self.cfg(), key, self.set()),
        }
    }
}

fn is_poisoned<T: std::fmt::Debug>(r: archiver::Result<T>) -> bool {
    matches!(r, Err(ArchiveError::Poisoned { .. }))
}

/// Ingests, seals and disperses the chain over `files`. Returns the last acknowledged block and
/// whether an operation failed; after a failure, checks that the handle refuses work.
async fn ingest(s: &Setup, files: &FaultyFiles, blocks: &[BlockRecord]) -> (Option<u64>, bool) {
    let mut acked = None;
    let Ok(mut a) = s.open(Some(files)) else {
        return (acked, true);
    };
    for (i, batch) in blocks.chunks(BATCH).enumerate() {
        let mut failed = a.log_mut().append_batch(batch).is_err();
        if !failed {
            acked = batch.last().map(|b| b.number);
            if i % SEAL_EVERY == SEAL_EVERY - 1 {
                failed = a.log_mut().seal_active().is_err();
            }
        }
        if failed {
            let next = acked.map_or(0, |n| n + 1) as usize;
            assert!(is_poisoned(a.log_mut().append_batch(&blocks[next..])));
            assert!(is_poisoned(a.log_mut().seal_active()));
            assert!(is_poisoned(a.log().get(0)));
            assert!(is_poisoned(a.log().verify()));
            assert!(a.log().poisoned().is_some());
            return (acked, true);
        }
        a.disperse_pending().await.unwrap();
    }
    let sealed = a.log_mut().seal_active();
    if sealed.is_err() {
        assert!(is_poisoned(a.log_mut().seal_active()));
        return (acked, true);
    }
    a.disperse_pending().await.unwrap();
    (acked, false)
}

/// Reopens over healthy files: every acknowledged block once, in sequence; then finishes the
/// ingest and checks a restore from the hosters.
async fn recover_and_finish(s: &Setup, acked: Option<u64>, blocks: &[BlockRecord], label: &str) {
    let mut a = s
        .open(None)
        .unwrap_or_else(|e| panic!("{label}: reopen: {e}"));
    let held = a.log().verify().unwrap_or_else(|e| panic!("{label}: {e}"));
    check_state_index(&a, label).await;
    let last = a.log().last().map(|l| l.0);
    assert_eq!(
        held,
        last.map_or(0, |l| l + 1),
        "{label}: contiguous from 0"
    );
    if let Some(acked) = acked {
        assert!(
            last >= Some(acked),
            "{label}: acked {acked}, log ends at {last:?}"
        );
        for b in &blocks[..=acked as usize] {
            let got = a.log().get(b.number).unwrap().unwrap();
            assert_eq!(got, *b, "{label}: block {}", b.number);
        }
    }
    let next = last.map_or(0, |l| l + 1) as usize;
    a.log_mut().append_batch(&blocks[next..]).unwrap();
    a.log_mut().seal_active().unwrap();
    a.disperse_pending().await.unwrap();
    assert_eq!(a.log().verify().unwrap(), BLOCKS, "{label}");
    check_state_index(&a, label).await;
    let remote = RemoteArchive::new(Arc::new(MasterKey::from_bytes([42; 32])), s.set());
    let out = tempfile::tempdir().unwrap();
    let report = archiver::restore(
        &remote,
        None,
        None,
        out.path(),
        RestoreFormat::Blocks,
        |_, _, _| {},
    )
    .await
    .unwrap_or_else(|e| panic!("{label}: restore: {e}"));
    assert_eq!(report.blocks, BLOCKS, "{label}");
    for b in blocks {
        let got = std::fs::read(
            out.path()
                .join("blocks")
                .join(format!("{:012}.block", b.number)),
        )
        .unwrap();
        assert_eq!(got, b.block, "{label}: restored block {}", b.number);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_write_fsync_or_commit_poisons_and_reopen_recovers() {
    let blocks = chain();
    // A clean run counts the operations.
    let s = Setup::new();
    let counter = FaultyFiles::new();
    let (acked, failed) = ingest(&s, &counter, &blocks).await;
    assert!(!failed);
    assert_eq!(acked, Some(BLOCKS - 1));
    let total = counter.ops();
    assert!(total > 60, "only {total} operations counted");
    for n in 1..=total {
        let s = Setup::new();
        let files = FaultyFiles::new();
        files.fail_nth(n);
        let (acked, failed) = ingest(&s, &files, &blocks).await;
        let what = files.failed();
        let label = format!("fault {n} of {total} ({})", what.as_deref().unwrap_or("-"));
        assert!(
            failed && what.is_some(),
            "{label}: the fault was not reported"
        );
        if n % 2 == 1 {
            files.power_loss().unwrap();
        }
        recover_and_finish(&s, acked, &blocks, &label).await;
    }
}
