//! The node and its archive after crashes: a node whose database lost blocks its archive already
//! holds (power loss, simulated by putting back an earlier copy of its RocksDB directory) takes
//! them back from the archive, verified, and continues the same chain instead of forking; and the
//! plugin and the follower reopen a poisoned archive log instead of retrying on it.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use archiver::fs::FaultyFiles;
use archiver::testing::memory_hosters;
use archiver::{Archive, ArchiveConfig, Durability, MasterKey};
use node_plugin::chain_db::BlockBytes;
use node_plugin::follow::{ArchiveSink, FetchedBlock, FollowSink};
use node_plugin::node::{ChainSpec, FinalityPlugin, FinalizedBlock, Node, NodeConfig};
use node_plugin::plugin::{ArchivePlugin, ArchivePluginOptions};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn archive(dir: &Path, files: Option<&FaultyFiles>) -> Archive {
    let (_, entries, set) = memory_hosters(6);
    let mut cfg = ArchiveConfig::new(dir.join("archive"), entries);
    cfg.segment_size_bytes = 64 * 1024;
    cfg.durability = Durability::Fsync;
    let key = MasterKey::from_bytes([7; 32]);
    match files {
        Some(f) => Archive::open_with_files(cfg, key, set, Arc::new(f.clone())).unwrap(),
        None => Archive::open(cfg, key, set).unwrap(),
    }
}

fn node_cfg(dir: &Path, transfers_per_block: u32) -> NodeConfig {
    NodeConfig {
        data_dir: dir.join("node"),
        spec: ChainSpec {
            justification_period: 4,
            ..ChainSpec::dev(4)
        },
        block_time_ms: 0,
        retention: 10_000,
        transfers_per_block,
        stop_at: None,
    }
}

/// One archive plugin kept across node restarts: only the node loses power here.
struct Shared(Arc<Mutex<ArchivePlugin>>);

impl FinalityPlugin for Shared {
    fn next_needed(&self) -> u64 {
        self.0.lock().unwrap().next_needed()
    }
    fn on_finalized(&mut self, b: &FinalizedBlock<'_>) -> Result<(), String> {
        self.0.lock().unwrap().on_finalized(b)
    }
    fn prune_watermark(&self) -> u64 {
        self.0.lock().unwrap().prune_watermark()
    }
    fn held_block(&self, number: u64) -> Result<Option<BlockBytes>, String> {
        self.0.lock().unwrap().held_block(number)
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn archived_hash(plugin: &Mutex<ArchivePlugin>, n: u64) -> [u8; 32] {
    plugin
        .lock()
        .unwrap()
        .archive()
        .store()
        .location(n)
        .unwrap()
        .unwrap()
        .hash
}

#[test]
fn node_behind_its_archive_after_power_loss_reimports_instead_of_forking() {
    let rt = runtime();
    let _entered = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let opts = ArchivePluginOptions {
        // Verified segments are deleted locally: re-imports then read them from the hosters.
        ops: archiver::ops::OpsOptions {
            keep_local_segments: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    let (plugin, _handle) = ArchivePlugin::start(archive(dir.path(), None), rt.handle(), opts);
    let plugin = Arc::new(Mutex::new(plugin));
    let open = |transfers: u32| {
        Node::open(
            node_cfg(dir.path(), transfers),
            Some(Box::new(Shared(plugin.clone()))),
        )
        .unwrap()
    };

    // Block 41 stays unfinalized (justifications every 4 blocks).
    let node = open(20);
    for _ in 0..41 {
        node.produce_block().unwrap();
    }
    drop(node);
    let snapshot = dir.path().join("snapshot");
    copy_dir(&dir.path().join("node/chain"), &snapshot);

    let node = open(20);
    for _ in 0..200 {
        node.produce_block().unwrap();
    }
    let (archived_last, _) = node.finalized();
    assert_eq!(archived_last, 240);
    let before: Vec<[u8; 32]> = (0..=archived_last)
        .map(|n| node.header(n).unwrap().unwrap().hash())
        .collect();
    drop(node);
    assert_eq!(
        plugin.lock().unwrap().next_needed(),
        archived_last + 1,
        "the archive holds what the node finalized"
    );

    // Power loss: the node's database goes back to the copy; the archive keeps blocks 42..=240.
    std::fs::remove_dir_all(dir.path().join("node/chain")).unwrap();
    copy_dir(&snapshot, &dir.path().join("node/chain"));
    // Other transactions than before: a node that authored instead of re-importing would fork.
    let node = open(7);
    assert_eq!(
        node.finalized(),
        (archived_last, before[archived_last as usize])
    );
    assert_eq!(node.best().0, archived_last);
    for n in 0..=archived_last {
        let h = node.header(n).unwrap().unwrap().hash();
        assert_eq!(h, before[n as usize], "block {n} re-imported as it was");
        assert_eq!(h, archived_hash(&plugin, n), "block {n} as archived");
    }
    let head = node.header(archived_last).unwrap().unwrap();
    assert_eq!(node.state_root(), head.state_root);

    // It goes on with the same chain: the archive takes every new block (a fork is refused).
    for _ in 0..40 {
        node.produce_block().unwrap();
    }
    let (finalized, _) = node.finalized();
    assert_eq!(plugin.lock().unwrap().next_needed(), finalized + 1);
    for n in archived_last..=finalized {
        assert_eq!(
            node.header(n).unwrap().unwrap().hash(),
            archived_hash(&plugin, n)
        );
    }
    let p = plugin.lock().unwrap();
    // (verify checks the segments still held locally; the others were checked as re-imported)
    p.archive().log().verify().unwrap();
    assert_eq!(p.archive().log().last().unwrap().0, finalized);
    drop(p);
    drop(node);

    // And every later start works.
    let node = open(7);
    node.produce_block().unwrap();
    drop(node);
    let node = open(3);
    assert!(node.produce_block().unwrap() > finalized);
}

/// A node's finalized blocks as the plugin receives them: (number, hash, parent, block, justifications, changes).
type Handed = (
    u64,
    [u8; 32],
    [u8; 32],
    Vec<u8>,
    Option<Vec<u8>>,
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
);

fn chain_blocks(dir: &Path, count: u64) -> Vec<Handed> {
    let node = Node::open(node_cfg(dir, 20), None).unwrap();
    for _ in 0..count {
        node.produce_block().unwrap();
    }
    (0..=node.finalized().0)
        .map(|n| {
            let h = node.header(n).unwrap().unwrap();
            let (block, j) = node.local_block(n).unwrap().unwrap();
            let changes = node.db().changes(n).unwrap().unwrap();
            (n, h.hash(), h.parent_hash, block, j, changes)
        })
        .collect()
}

#[test]
fn plugin_and_follower_reopen_a_poisoned_log() {
    let rt = runtime();
    let _entered = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let blocks = chain_blocks(&dir.path().join("source"), 120);
    let files = FaultyFiles::new();
    let (mut plugin, _handle) = ArchivePlugin::start(
        archive(dir.path(), Some(&files)),
        rt.handle(),
        ArchivePluginOptions {
            ops: archiver::ops::OpsOptions {
                keep_local_segments: u64::MAX,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let mut fired = 0;
    let half = blocks.len() / 2;
    for (i, (number, hash, parent_hash, block, j, changes)) in blocks[..half].iter().enumerate() {
        // Every 7th block: its write, fsync or commit fails (the next 1st, 2nd or 3rd operation).
        let target = (i % 7 == 3).then(|| files.ops() + 1 + (i as u64 / 7) % 3);
        if let Some(t) = target {
            files.fail_nth(t);
        }
        plugin
            .on_finalized(&FinalizedBlock {
                number: *number,
                hash: *hash,
                parent_hash: *parent_hash,
                block,
                justifications: j.as_deref(),
                changes,
            })
            .unwrap_or_else(|e| panic!("block {number}: {e}"));
        if target.is_some_and(|t| files.ops() >= t) {
            fired += 1;
        }
    }
    assert!(fired >= 5, "only {fired} faults fired");
    assert!(plugin.archive().log().poisoned().is_none());

    // The follower's sink: a failed batch reopens the log; the next batch resumes from it.
    let fetched: Vec<FetchedBlock> = blocks[half..]
        .iter()
        .map(
            |(number, hash, parent_hash, block, j, changes)| FetchedBlock {
                number: *number,
                hash: *hash,
                parent_hash: *parent_hash,
                block: block.clone(),
                justifications: j.clone(),
                changes: if *number == 0 {
                    changes
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                } else {
                    Vec::new()
                },
            },
        )
        .collect();
    let mut sink = ArchiveSink {
        log: plugin.archive_mut().log_mut(),
        first: 0,
        on_sealed: Box::new(|| {}),
    };
    for (i, batch) in fetched.chunks(10).enumerate() {
        let from = batch[0].number;
        assert_eq!(sink.next_needed(), from);
        files.fail_nth(files.ops() + 1 + i as u64 % 3);
        sink.accept(batch.to_vec())
            .unwrap_or_else(|e| panic!("batch from {from}: {e}"));
    }
    let last = blocks.last().unwrap();
    assert_eq!(sink.next_needed(), last.0 + 1);
    drop(sink);
    let log = plugin.archive().log();
    assert_eq!(log.verify().unwrap(), last.0 + 1);
    for (number, hash, ..) in &blocks {
        assert_eq!(log.get(*number).unwrap().unwrap().hash, *hash);
    }
}
