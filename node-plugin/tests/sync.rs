//! New-validator sync against an archive on fault-injecting in-memory hosters: a clean chain syncs
//! to the producing node's state root (also with m hosters down); a forged block body, a forged
//! justification and an unknown trusted hash are each refused with an error naming the segment
//! and block.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use archiver::testing::{memory_hosters, MemoryHost};
use archiver::{Archive, ArchiveConfig, BlockRecord, Durability, MasterKey, StateChange};
use node_plugin::consensus::Authorities;
use node_plugin::node::{ChainSpec, Node, NodeConfig};
use node_plugin::substrate::{Block, Justifications, GRANDPA_ENGINE_ID};
use node_plugin::sync::{sync, SyncError, SyncOptions};
use parity_scale_codec::Encode;

const BLOCKS: u64 = 600;

fn chain(dir: &std::path::Path) -> (Node, Vec<BlockRecord>) {
    let node = Node::open(
        NodeConfig {
            data_dir: dir.to_path_buf(),
            spec: ChainSpec {
                justification_period: 4,
                ..ChainSpec::dev(4)
            },
            block_time_ms: 0,
            retention: 10_000,
            transfers_per_block: 3,
            stop_at: None,
        },
        None,
    )
    .unwrap();
    for _ in 0..BLOCKS {
        node.produce_block().unwrap();
    }
    let records = (0..=BLOCKS)
        .map(|n| {
            let (block, justification) = node.local_block(n).unwrap().unwrap();
            let header = node.header(n).unwrap().unwrap();
            BlockRecord {
                number: n,
                hash: header.hash(),
                parent_hash: header.parent_hash,
                block,
                justification,
                changes: node
                    .db()
                    .changes(n)
                    .unwrap()
                    .unwrap()
                    .into_iter()
                    .map(|(key, value)| StateChange { key, value })
                    .collect(),
            }
        })
        .collect();
    (node, records)
}

struct Hosted {
    _dir: tempfile::TempDir,
    hosts: Vec<Arc<MemoryHost>>,
    archive: Archive,
}

async fn archive_of(records: &[BlockRecord]) -> Hosted {
    let dir = tempfile::tempdir().unwrap();
    let (hosts, entries, set) = memory_hosters(6);
    let mut cfg = ArchiveConfig::new(dir.path().join("data"), entries);
    cfg.segment_size_bytes = 64 * 1024;
    cfg.durability = Durability::Os;
    let mut archive = Archive::open(cfg, MasterKey::from_bytes([7; 32]), set).unwrap();
    archive.log_mut().append_batch(records).unwrap();
    archive.log_mut().seal_active().unwrap();
    archive.disperse_pending().await.unwrap();
    Hosted {
        _dir: dir,
        hosts,
        archive,
    }
}

async fn run_sync(
    h: &Hosted,
    trusted: [u8; 32],
) -> (
    tempfile::TempDir,
    Result<node_plugin::sync::SyncReport, SyncError>,
) {
    let out = tempfile::tempdir().unwrap();
    let res = sync(
        h.archive.remote(),
        &SyncOptions {
            data_dir: out.path().to_path_buf(),
            trusted_hash: trusted,
            retention: 100,
        },
        &mut |_, _, _| {},
    )
    .await;
    (out, res)
}

fn segment_of(h: &Hosted, number: u64) -> u64 {
    h.archive.store().location(number).unwrap().unwrap().segment
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_chain_syncs_to_the_same_state_root_with_m_hosters_down() {
    let dir = tempfile::tempdir().unwrap();
    let (node, records) = chain(dir.path());
    let hosted = archive_of(&records).await;
    hosted.hosts[0].set_down(true);
    hosted.hosts[3].set_down(true);
    // Trust a recent finalized block rather than genesis.
    let (_out, res) = run_sync(&hosted, records[400].hash).await;
    let report = res.unwrap();
    assert_eq!(report.head, BLOCKS);
    assert_eq!(report.trusted_number, 400);
    assert_eq!(
        report.state_root,
        node.header(BLOCKS).unwrap().unwrap().state_root
    );
    assert_eq!(report.state_root, node.state_root());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_block_and_forged_justification_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, records) = chain(dir.path());

    // A body swapped under an unchanged header (same hash, so the archive's hash links hold).
    let mut forged = records.clone();
    let mut block = Block::from_bytes(&forged[137].block).unwrap();
    // The last extrinsic: a signed transfer (the first is the short timestamp inherent).
    block.extrinsics.last_mut().unwrap()[100] ^= 1;
    forged[137].block = block.encode();
    let hosted = archive_of(&forged).await;
    let (_out, res) = run_sync(&hosted, records[0].hash).await;
    let err = res.unwrap_err().to_string();
    let seg = segment_of(&hosted, 137);
    assert!(err.contains(&format!("segment {seg}, block 137")), "{err}");
    assert!(err.contains("extrinsics"), "{err}");

    // A justification signed by keys outside the authority set.
    let mut forged = records.clone();
    let evil = Authorities::dev("evil", 4).justify(records[140].hash, 140, 140);
    forged[140].justification =
        Some(Justifications(vec![(GRANDPA_ENGINE_ID, evil.encode())]).encode());
    let hosted = archive_of(&forged).await;
    let (_out, res) = run_sync(&hosted, records[0].hash).await;
    let err = res.unwrap_err().to_string();
    let seg = segment_of(&hosted, 140);
    assert!(err.contains(&format!("segment {seg}, block 140")), "{err}");
    assert!(err.contains("justification rejected"), "{err}");

    // A hash that is not in the chain is not trusted into existence.
    let hosted = archive_of(&records).await;
    let (_out, res) = run_sync(&hosted, [9; 32]).await;
    assert!(
        matches!(res, Err(SyncError::TrustedHashNotFound { .. })),
        "{res:?}"
    );
}
