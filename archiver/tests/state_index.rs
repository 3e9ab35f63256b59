//! The state-history index against a brute-force replay: seeded random blocks (keys with shared
//! prefixes and the empty key, values of every size around the inline limit, deletions, a key
//! changed twice in one block) across many sealed segments, most of them pruned to the hosters.
//! Every `storage_at` and a sweep of `storage_keys_at` answers must equal the replayed state,
//! from the writer, from a read-only secondary after `catch_up`, and after the index families
//! are dropped (an archive written before the index) and backfilled step by step.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use archiver::config::{ArchiveConfig, Durability};
use archiver::state_index::{INLINE_VALUE_BYTES_MAX, STORAGE_KEYS_AT_MAX};
use archiver::testing::memory_hosters;
use archiver::{
    backfill_state_index, Archive, ArchiveError, BlockRecord, HistoryReader, HosterSet, MasterKey,
    ReadOnlyArchive, StateChange,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type State = BTreeMap<Vec<u8>, Vec<u8>>;

const SEED: u64 = 12;
const FIRST_BLOCKS: u64 = 240;
const LATER_BLOCKS: u64 = 60;
const SEGMENT_BYTES: u64 = 64 * 1024;

/// Keys sharing prefixes at several depths, the empty key, 0xff runs and a long key.
fn key_pool(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = vec![
        vec![],
        b"a".to_vec(),
        b"ab".to_vec(),
        b"abc".to_vec(),
        b"abd".to_vec(),
        b"b".to_vec(),
        vec![0xff],
        vec![0xff, 0xff],
        vec![0x00],
        vec![7; 300],
    ];
    for group in [[0x26u8, 0xaa], [0x26, 0xab], [0x5c, 0x01]] {
        for _ in 0..8 {
            let mut k = group.to_vec();
            let len = rng.gen_range(0..40);
            k.extend((0..len).map(|_| rng.gen::<u8>()));
            keys.push(k);
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

fn value(rng: &mut StdRng) -> Option<Vec<u8>> {
    let len = match rng.gen_range(0..10) {
        0 => return None,
        1 => 0,
        2 => INLINE_VALUE_BYTES_MAX,
        3 => INLINE_VALUE_BYTES_MAX + 1,
        4 | 5 => rng.gen_range(129..700),
        _ => rng.gen_range(1..INLINE_VALUE_BYTES_MAX),
    };
    Some((0..len).map(|_| rng.gen::<u8>()).collect())
}

/// Blocks `from..to` after `parent`, and the state after each (appended to `states`).
fn blocks(
    rng: &mut StdRng,
    keys: &[Vec<u8>],
    from: u64,
    to: u64,
    mut parent: [u8; 32],
    states: &mut Vec<State>,
) -> Vec<BlockRecord> {
    let mut out = Vec::new();
    for number in from..to {
        let mut changes: Vec<StateChange> = (0..rng.gen_range(0..7))
            .map(|_| StateChange {
                key: keys[rng.gen_range(0..keys.len())].clone(),
                value: value(rng),
            })
            .collect();
        if number % 17 == 0 {
            // The same key twice in one block: the later change wins.
            let key = keys[rng.gen_range(0..keys.len())].clone();
            changes.push(StateChange {
                key: key.clone(),
                value: Some(vec![1; 500]),
            });
            changes.push(StateChange {
                key,
                value: value(rng),
            });
        }
        let mut state = states.last().cloned().unwrap_or_default();
        for c in &changes {
            match &c.value {
                Some(v) => state.insert(c.key.clone(), v.clone()),
                None => state.remove(&c.key),
            };
        }
        states.push(state);
        let block = [&number.to_le_bytes()[..], &[0x55; 2000]].concat();
        let hash = *blake3::hash(&[&block[..], &parent].concat()).as_bytes();
        out.push(BlockRecord {
            number,
            hash,
            parent_hash: parent,
            block,
            justification: None,
            changes,
        });
        parent = hash;
    }
    out
}

struct Setup {
    dir: tempfile::TempDir,
    cfg: ArchiveConfig,
    set: HosterSet,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (_, entries, set) = memory_hosters(6);
        let mut cfg = ArchiveConfig::new(dir.path().join("data"), entries);
        (cfg.data_shards, cfg.parity_shards) = (4, 2);
        cfg.segment_size_bytes = SEGMENT_BYTES;
        cfg.durability = Durability::Os;
        Self { dir, cfg, set }
    }
    fn key() -> MasterKey {
        MasterKey::from_bytes([5; 32])
    }
    fn open(&self) -> Archive {
        Archive::open(self.cfg.clone(), Self::key(), self.set.clone()).unwrap()
    }
    fn reader(&self, archive: &Archive) -> HistoryReader {
        HistoryReader::new(
            archive.store().clone(),
            archive.log().dir().to_path_buf(),
            archive.remote().clone(),
            64 << 20,
        )
    }
}

/// Appends in batches of 1..=9 blocks (new keys pending in a batch), seals, disperses, verifies
/// and prunes all but the newest two local segments.
async fn append_and_prune(archive: &mut Archive, rng: &mut StdRng, records: &[BlockRecord]) {
    let mut at = 0;
    while at < records.len() {
        let n = rng.gen_range(1..10).min(records.len() - at);
        archive
            .log_mut()
            .append_batch(&records[at..at + n])
            .unwrap();
        at += n;
    }
    archive.log_mut().seal_active().unwrap();
    let disperser = archive.disperser();
    disperser.disperse_pending().await.unwrap();
    disperser.verify_dispersed().await.unwrap();
    disperser.prune_local_segments(2).unwrap();
}

fn expected_keys(state: &State, prefix: &[u8], after: Option<&[u8]>, count: usize) -> Vec<Vec<u8>> {
    let lower = match after {
        Some(a) if a >= prefix => Bound::Excluded(a.to_vec()),
        _ => Bound::Included(prefix.to_vec()),
    };
    state
        .range((lower, Bound::Unbounded))
        .map(|(k, _)| k.clone())
        .take_while(|k| k.starts_with(prefix))
        .take(count.min(STORAGE_KEYS_AT_MAX))
        .collect()
}

/// Every key of the pool (and keys never written) at every block in `numbers`; keys by prefix
/// with several cursors and page sizes, and a full listing paged two at a time.
async fn check_against_model(
    reader: &HistoryReader,
    keys: &[Vec<u8>],
    states: &[State],
    numbers: std::ops::Range<u64>,
) {
    let unseen: [&[u8]; 3] = [b"abcd", b"c", &[0x26, 0xaa, 0xff, 0xff, 0xff]];
    let prefixes: [&[u8]; 7] = [b"", b"a", b"ab", &[0x26], &[0x26, 0xab], &[0xff], b"zz"];
    for n in numbers {
        let state = &states[n as usize];
        for key in keys.iter().map(Vec::as_slice).chain(unseen) {
            let got = reader.storage_at(key, n).await.unwrap();
            assert_eq!(got.as_ref(), state.get(key), "key {key:x?} after block {n}");
        }
        for prefix in prefixes {
            for after in [
                None,
                Some(&b"ab"[..]),
                Some(&[0x26, 0xaa, 0x80][..]),
                Some(prefix),
            ] {
                for count in [1, 3, 5000] {
                    let got = reader
                        .storage_keys_at(prefix, after, count, n)
                        .await
                        .unwrap();
                    let want = expected_keys(state, prefix, after, count);
                    assert_eq!(
                        got, want,
                        "prefix {prefix:x?} after {after:x?} count {count} block {n}"
                    );
                }
            }
        }
        let mut paged = Vec::new();
        let mut cursor: Option<Vec<u8>> = None;
        // Bounded: a page that does not move past its cursor fails here, not as a hang.
        for _ in 0..=state.len() {
            let page = reader
                .storage_keys_at(b"", cursor.as_deref(), 2, n)
                .await
                .unwrap();
            let Some(last) = page.last().cloned() else {
                break;
            };
            assert!(
                cursor.is_none_or(|c| page[0] > c),
                "page at {n} repeats its cursor"
            );
            paged.extend(page);
            cursor = Some(last);
        }
        assert_eq!(
            paged,
            state.keys().cloned().collect::<Vec<_>>(),
            "paged at {n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_matches_a_replay_and_survives_backfill() {
    let mut rng = StdRng::seed_from_u64(SEED);
    let keys = key_pool(&mut rng);
    let s = Setup::new();
    let mut states = Vec::new();
    let first = blocks(&mut rng, &keys, 0, FIRST_BLOCKS, [0; 32], &mut states);

    let mut archive = s.open();
    append_and_prune(&mut archive, &mut rng, &first).await;
    let store = archive.store().clone();
    let pruned = store.local_segments_pruned_below().unwrap();
    assert!(pruned >= 5, "only {pruned} segments pruned");
    let reader = s.reader(&archive);
    assert_eq!(reader.indexed_next().unwrap(), FIRST_BLOCKS);
    check_against_model(&reader, &keys, &states, 0..FIRST_BLOCKS).await;
    assert!(
        reader
            .stats
            .remote_segments
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    assert!(matches!(
        reader.storage_at(b"a", FIRST_BLOCKS).await,
        Err(ArchiveError::BeyondHead { number: FIRST_BLOCKS, last: Some(l) }) if l == FIRST_BLOCKS - 1
    ));

    // A reader beside the writer sees new blocks' state once it catches up.
    let view_key = Arc::new(Setup::key());
    let view = ReadOnlyArchive::open(&s.cfg, view_key, s.set.clone(), 64 << 20).unwrap();
    let parent = first.last().unwrap().hash;
    let more = blocks(
        &mut rng,
        &keys,
        FIRST_BLOCKS,
        FIRST_BLOCKS + 10,
        parent,
        &mut states,
    );
    archive.log_mut().append_batch(&more).unwrap();
    assert!(matches!(
        view.reader().storage_at(b"a", FIRST_BLOCKS + 5).await,
        Err(ArchiveError::BeyondHead { .. })
    ));
    view.catch_up().unwrap();
    assert_eq!(view.reader().indexed_next().unwrap(), FIRST_BLOCKS + 10);
    check_against_model(
        view.reader(),
        &keys,
        &states,
        FIRST_BLOCKS - 5..FIRST_BLOCKS + 10,
    )
    .await;
    drop((view, reader, store, archive));

    drop_state_index(&s);
    let mut archive = s.open();
    let reader = s.reader(&archive);
    assert_eq!(reader.indexed_next().unwrap(), 0);
    assert!(matches!(
        reader.storage_at(b"a", 3).await,
        Err(ArchiveError::NotIndexed {
            number: 3,
            indexed_next: 0
        })
    ));
    // Blocks appended while the index is behind are left to the backfill.
    let head = FIRST_BLOCKS + 10;
    let parent = more.last().unwrap().hash;
    let later = blocks(
        &mut rng,
        &keys,
        head,
        head + LATER_BLOCKS,
        parent,
        &mut states,
    );
    archive.log_mut().append_batch(&later[..20]).unwrap();
    assert_eq!(reader.indexed_next().unwrap(), 0);

    let mut steps = 0;
    let mut last_next = 0;
    loop {
        let progress = backfill_state_index(&reader, 1, 8 * 1024).await.unwrap();
        steps += 1;
        assert!(progress.indexed_next > last_next || progress.caught_up);
        last_next = progress.indexed_next;
        if steps == 3 {
            // Partly backfilled: what is indexed answers, the rest says how far the index got.
            check_against_model(&reader, &keys, &states, 0..last_next).await;
            assert!(matches!(
                reader.storage_at(b"a", last_next).await,
                Err(ArchiveError::NotIndexed { number, indexed_next }) if number == last_next && indexed_next == last_next
            ));
        }
        if progress.caught_up {
            break;
        }
    }
    assert!(steps > 5, "backfill took only {steps} steps");
    assert_eq!(last_next, head + 20);
    // Caught up: the log indexes new blocks itself again.
    archive.log_mut().append_batch(&later[20..]).unwrap();
    assert_eq!(reader.indexed_next().unwrap(), head + LATER_BLOCKS);
    archive.log_mut().seal_active().unwrap();
    check_against_model(&reader, &keys, &states, 0..head + LATER_BLOCKS).await;
}

/// What an archive written before the state index looks like: no index families, no index
/// watermarks in the meta family.
fn drop_state_index(s: &Setup) {
    let path = s.cfg.layout().db();
    let opts = rocksdb::Options::default();
    let names = rocksdb::DB::list_cf(&opts, &path).unwrap();
    let mut db = rocksdb::DB::open_cf(&opts, &path, &names).unwrap();
    db.drop_cf("state_keys").unwrap();
    db.drop_cf("state_history").unwrap();
    let meta = db.cf_handle("meta").unwrap();
    db.delete_cf(meta, b"state_indexed_next").unwrap();
    db.delete_cf(meta, b"state_next_key_id").unwrap();
    db.flush_cf(meta).unwrap();
    drop(db);
    assert!(s.dir.path().exists());
}

/// The operations pass backfills an archive written before the index, its pruned segments
/// read from the hosters, and reports how far the index got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_pass_backfills_an_old_archive() {
    let mut rng = StdRng::seed_from_u64(SEED + 1);
    let keys = key_pool(&mut rng);
    let s = Setup::new();
    let mut states = Vec::new();
    let records = blocks(&mut rng, &keys, 0, 80, [0; 32], &mut states);
    let mut archive = s.open();
    append_and_prune(&mut archive, &mut rng, &records).await;
    assert!(archive.store().local_segments_pruned_below().unwrap() > 0);
    drop(archive);
    drop_state_index(&s);

    let archive = s.open();
    let reader = s.reader(&archive);
    assert!(matches!(
        reader.storage_at(b"a", 79).await,
        Err(ArchiveError::NotIndexed {
            number: 79,
            indexed_next: 0
        })
    ));
    let report = archiver::ops::maintain_once(&archive.disperser(), None, 2).await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.indexed_next, Some(80));
    check_against_model(&reader, &keys, &states, 0..80).await;
}
