//! Library-level tests of the archive pipeline against in-memory hosters with injected faults:
//! log rules and recovery, dispersal, degraded writes, repair, restore with hosters down, corrupt
//! shards, wrong keys, and a seeded fault simulation that replays from its seed.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use archiver::config::{ArchiveConfig, Durability};
use archiver::testing::{chain, memory_hosters, MemoryHost};
use archiver::{
    Archive, ArchiveError, BlockRecord, HosterSet, MasterKey, RemoteArchive, RestoreFormat,
    ShardHost,
};
use rand::{Rng, SeedableRng};

struct Setup {
    _dir: tempfile::TempDir,
    cfg: ArchiveConfig,
    hosts: Vec<Arc<MemoryHost>>,
    key: [u8; 32],
}

fn setup(n_hosts: usize, k: usize, m: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (hosts, entries, _) = memory_hosters(n_hosts);
    let mut cfg = ArchiveConfig::new(dir.path().join("data"), entries);
    cfg.data_shards = k;
    cfg.parity_shards = m;
    cfg.segment_size_bytes = 256 * 1024;
    cfg.durability = Durability::Os;
    Setup {
        _dir: dir,
        cfg,
        hosts,
        key: [42; 32],
    }
}

impl Setup {
    fn set(&self) -> HosterSet {
        HosterSet::new(
            self.hosts
                .iter()
                .map(|h| h.clone() as Arc<dyn ShardHost>)
                .collect(),
        )
    }
    fn open(&self) -> Archive {
        Archive::open(
            self.cfg.clone(),
            MasterKey::from_bytes(self.key),
            self.set(),
        )
        .unwrap()
    }
    fn remote(&self) -> RemoteArchive {
        RemoteArchive::new(Arc::new(MasterKey::from_bytes(self.key)), self.set())
    }
}

async fn restore_all(
    remote: &RemoteArchive,
) -> archiver::Result<(archiver::RestoreReport, tempfile::TempDir)> {
    let out = tempfile::tempdir().unwrap();
    let r = archiver::restore(
        remote,
        None,
        None,
        out.path(),
        RestoreFormat::Blocks,
        |_, _, _| {},
    )
    .await?;
    Ok((r, out))
}

fn assert_blocks_equal(out: &std::path::Path, blocks: &[BlockRecord]) {
    for b in blocks {
        let got =
            std::fs::read(out.join("blocks").join(format!("{:012}.block", b.number))).unwrap();
        assert_eq!(got, b.block, "block {}", b.number);
        let j = std::fs::read(
            out.join("blocks")
                .join(format!("{:012}.justification", b.number)),
        )
        .ok();
        assert_eq!(j, b.justification, "justification {}", b.number);
    }
}

#[test]
fn log_refuses_gaps_forks_and_ignores_duplicates() {
    let s = setup(6, 4, 2);
    let mut a = s.open();
    let blocks = chain(10, 1, 1000);
    a.log_mut().append_batch(&blocks[..5]).unwrap();
    // Same (number, hash) again: no-op.
    let r = a.log_mut().append_batch(&blocks[3..7]).unwrap();
    assert_eq!((r.duplicates, r.appended), (2, 2));
    // A gap names both blocks.
    let err = a.log_mut().append(&blocks[9]).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::Gap {
                number: 9,
                expected: 7,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("block 9") && err.to_string().contains("6"),
        "{err}"
    );
    // A parent mismatch names both blocks.
    let mut forked = blocks[7].clone();
    forked.parent_hash = [9; 32];
    let err = a.log_mut().append(&forked).unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::ParentMismatch {
                number: 7,
                prev_number: 6,
                ..
            }
        ),
        "{err}"
    );
    // Same number, other hash: conflict.
    let mut other = blocks[2].clone();
    other.hash = [1; 32];
    assert!(matches!(
        a.log_mut().append(&other),
        Err(ArchiveError::Conflict { number: 2, .. })
    ));
    // Lookups by number and hash, state.
    assert_eq!(a.log().get(4).unwrap().unwrap(), blocks[4]);
    assert_eq!(a.store().number_by_hash(&blocks[5].hash).unwrap(), Some(5));
    assert_eq!(
        a.store().state(b"head").unwrap(),
        Some(6u64.to_le_bytes().to_vec())
    );
    assert_eq!(a.log().verify().unwrap(), 7);
}

#[test]
fn torn_tail_is_truncated_and_log_reopens() {
    let s = setup(6, 4, 2);
    let blocks = chain(20, 2, 3000);
    {
        let mut a = s.open();
        a.log_mut().append_batch(&blocks[..12]).unwrap();
    }
    // A torn write: half a record at the end of the open segment.
    let seg_dir = s.cfg.data_dir.join("segments");
    let mut files: Vec<_> = std::fs::read_dir(&seg_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let last = files.last().unwrap();
    let torn = blocks[12].encode();
    let mut bytes = std::fs::read(last).unwrap();
    bytes.extend_from_slice(&torn[..torn.len() / 2]);
    std::fs::write(last, &bytes).unwrap();
    let mut a = s.open();
    assert_eq!(a.log().last().unwrap().0, 11);
    assert_eq!(a.log().verify().unwrap(), 12);
    a.log_mut().append_batch(&blocks[12..]).unwrap();
    assert_eq!(a.log().verify().unwrap(), 20);
}

#[test]
fn wrong_master_key_is_refused_locally() {
    let s = setup(6, 4, 2);
    drop(s.open());
    let err = Archive::open(s.cfg.clone(), MasterKey::from_bytes([1; 32]), s.set()).unwrap_err();
    assert!(matches!(err, ArchiveError::WrongMasterKey { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disperse_degraded_repair_and_restore_with_faults() {
    let s = setup(7, 4, 2);
    let blocks = chain(400, 3, 4000);
    let mut a = s.open();
    // Two hosters down while the first half is dispersed: 5 of 7 remain, all 6 shards still land.
    s.hosts[0].set_down(true);
    s.hosts[1].set_down(true);
    a.log_mut().append_batch(&blocks[..200]).unwrap();
    a.log_mut().seal_active().unwrap();
    let r = a.disperse_pending().await.unwrap();
    assert!(!r.segments.is_empty());
    assert_eq!(
        r.under_replicated, r.segments,
        "5 of 6 shards land on the 5 live hosters"
    );
    // A third down: only 4 distinct hosters + min_parity 1 needed = 5 > 4 → refused, nothing lost.
    s.hosts[2].set_down(true);
    a.log_mut().append_batch(&blocks[200..300]).unwrap();
    a.log_mut().seal_active().unwrap();
    let err = a.disperse_pending().await.unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::DispersalFailed {
                landed: 4,
                needed: 5,
                ..
            }
        ),
        "{err}"
    );
    // One back: 5 shards land → degraded write, under-replicated.
    s.hosts[2].set_down(false);
    let r = a.disperse_pending().await.unwrap();
    assert!(!r.under_replicated.is_empty(), "{r:?}");
    let st = a.status().await.unwrap();
    assert!(!st.under_replicated.is_empty());
    // Hosters back: repair restores k+m everywhere.
    s.hosts[0].set_down(false);
    s.hosts[1].set_down(false);
    let rep = a.repair(false).await.unwrap();
    assert!(!rep.repaired.is_empty());
    assert!(rep.still_under_replicated.is_empty(), "{rep:?}");
    assert!(a.status().await.unwrap().under_replicated.is_empty());
    a.log_mut().append_batch(&blocks[300..]).unwrap();
    a.log_mut().seal_active().unwrap();
    a.disperse_pending().await.unwrap();

    // Plaintext never reaches a hoster.
    for h in &s.hosts {
        for v in h.all_bytes() {
            assert!(
                !v.windows(6).any(|w| w == b"MARKER"),
                "plaintext on {}",
                h.name()
            );
        }
    }

    // Restore from hosters alone with two hosters down.
    s.hosts[3].set_down(true);
    s.hosts[4].set_down(true);
    let (rep, out) = restore_all(&s.remote()).await.unwrap();
    assert_eq!(rep.blocks, 400);
    assert_blocks_equal(out.path(), &blocks);
    // One down and one returning flipped bits: detected by the Merkle roots and routed around.
    s.hosts[4].set_down(false);
    s.hosts[5].set_flip_reads(true);
    let (rep, out) = restore_all(&s.remote()).await.unwrap();
    assert_blocks_equal(out.path(), &blocks);
    assert!(
        rep.shard_failures
            .iter()
            .any(|(_, _, h, why)| h == "h5" && why.contains("Merkle")),
        "{:?}",
        rep.shard_failures
    );
    s.hosts[3].set_down(false);

    // Scrub (repair --verify) catches the rotten hoster's shards and rebuilds them elsewhere.
    let rep = a.repair(true).await.unwrap();
    assert!(!rep.repaired.is_empty(), "{rep:?}");
    assert!(rep.repaired.iter().all(|(_, _, h)| h != "h5"), "{rep:?}");
    s.hosts[5].set_flip_reads(false);

    // Wrong master key on a fresh machine: a clear error, not garbage.
    let wrong = RemoteArchive::new(Arc::new(MasterKey::from_bytes([7; 32])), s.set());
    let err = restore_all(&wrong).await.unwrap_err();
    assert!(err.to_string().contains("master key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_hoster_is_repaired_onto_another() {
    let s = setup(8, 4, 2);
    let blocks = chain(150, 4, 5000);
    let mut a = s.open();
    a.log_mut().append_batch(&blocks).unwrap();
    a.log_mut().seal_active().unwrap();
    a.disperse_pending().await.unwrap();
    // A hoster loses its disk.
    let victim = s.hosts.iter().find(|h| h.shard_count() > 0).unwrap();
    let lost = victim.shard_count();
    victim.wipe_shards();
    let rep = a.repair(false).await.unwrap();
    assert_eq!(rep.repaired.len(), lost, "{rep:?}");
    assert!(rep.repaired.iter().all(|(_, _, h)| h != victim.name()));
    // Restore uses the new placement even with the two other hosters down.
    let (r, out) = restore_all(&s.remote()).await.unwrap();
    assert_eq!(r.blocks, 150);
    assert_blocks_equal(out.path(), &blocks);
}

/// Seeded simulation: random hoster faults while ingesting, dispersing and restoring. Any failing
/// seed replays exactly (`SIM_SEED=n cargo test -p archiver seeded_simulation`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_simulation() {
    let seeds: Vec<u64> = match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) => (0..6).collect(),
    };
    for seed in seeds {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let s = setup(7, 4, 2);
        let blocks = chain(240, seed, 2500);
        let mut a = s.open();
        let mut at = 0usize;
        while at < blocks.len() {
            let n = rng.gen_range(10..60).min(blocks.len() - at);
            a.log_mut().append_batch(&blocks[at..at + n]).unwrap();
            at += n;
            // Random faults: at most m hosters down, and a one-off failed call somewhere.
            for h in &s.hosts {
                h.set_down(false);
            }
            for _ in 0..rng.gen_range(0..=2) {
                s.hosts[rng.gen_range(0..7)].set_down(true);
            }
            s.hosts[rng.gen_range(0..7)].fail_nth_call(rng.gen_range(1..20));
            if rng.gen_bool(0.3) {
                a.log_mut().seal_active().unwrap();
            }
            // With 2 down and a failed call, fewer than k + min_parity shards may land: the
            // segment must then stay pending (refused whole), and go out on a later pass.
            match a.disperse_pending().await {
                Ok(_) => {}
                Err(
                    ArchiveError::DispersalFailed { .. } | ArchiveError::MetadataReplication { .. },
                ) => {}
                Err(e) => panic!("seed {seed}: unexpected dispersal error: {e}"),
            }
        }
        a.log_mut().seal_active().unwrap();
        for h in &s.hosts {
            h.set_down(false);
        }
        a.disperse_pending().await.unwrap();
        let rep = a.repair(false).await.unwrap();
        assert!(
            rep.still_under_replicated.is_empty(),
            "seed {seed}: {rep:?}"
        );
        // Any two down: restore is exact.
        let x = rng.gen_range(0..7);
        let y = (x + rng.gen_range(1..7)) % 7;
        s.hosts[x].set_down(true);
        s.hosts[y].set_down(true);
        let (r, out) = restore_all(&s.remote())
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(r.blocks, 240, "seed {seed}");
        assert_blocks_equal(out.path(), &blocks);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_compressed_segments_restore_exactly() {
    let mut s = setup(6, 4, 2);
    s.cfg.compression = archiver::config::Compression::Zstd;
    // Compressible blocks: long runs inside random ones.
    let mut blocks = chain(120, 6, 3000);
    for b in &mut blocks {
        b.block.extend(std::iter::repeat_n(0xAB, 20_000));
    }
    let mut parent = [0u8; 32];
    for b in &mut blocks {
        b.parent_hash = parent;
        b.hash = *blake3::hash(&[&b.block[..], &parent[..]].concat()).as_bytes();
        parent = b.hash;
    }
    let mut a = s.open();
    a.log_mut().append_batch(&blocks).unwrap();
    a.log_mut().seal_active().unwrap();
    let r = a.disperse_pending().await.unwrap();
    // Uncompressed, 4+2 would store 1.5x the plain bytes.
    assert!(
        r.bytes_stored < r.bytes_plain / 2,
        "compression must shrink what is stored: {r:?}"
    );
    s.hosts[0].set_down(true);
    s.hosts[5].set_down(true);
    let (rep, out) = restore_all(&s.remote()).await.unwrap();
    assert_eq!(rep.blocks, 120);
    assert_blocks_equal(out.path(), &blocks);
}

/// A hoster that accepts calls and never answers must cost a hedge delay, not a call timeout per
/// read: restore finishes well inside the 60 s per-call bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_hoster_is_hedged_around() {
    let s = setup(6, 4, 2);
    let blocks = chain(200, 7, 3000);
    let mut a = s.open();
    a.log_mut().append_batch(&blocks).unwrap();
    a.log_mut().seal_active().unwrap();
    a.disperse_pending().await.unwrap();
    s.hosts[0].set_hang(true);
    let restored =
        tokio::time::timeout(std::time::Duration::from_secs(45), restore_all(&s.remote()))
            .await
            .expect("restore must not wait on the hung hoster");
    let (r, out) = restored.unwrap();
    assert_eq!(r.blocks, 200);
    assert_blocks_equal(out.path(), &blocks);
}

/// Rot in a different stored part of every shard of every segment (so no shard is whole): each
/// part-stripe still has k intact parts, so restore is byte-identical, and repair rebuilds every
/// shard to k+m from part-stripes, after which a restore with m hosters down works too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rot_in_a_different_part_of_every_shard_is_survived_and_repaired() {
    let mut s = setup(8, 4, 2);
    s.cfg.segment_size_bytes = 2 * 1024 * 1024;
    let blocks = chain(800, 11, 5000);
    let mut a = s.open();
    a.log_mut().append_batch(&blocks).unwrap();
    a.log_mut().seal_active().unwrap();
    a.disperse_pending().await.unwrap();
    let part = archiver::hosters::SHARD_PART_BYTES;
    let manifest = a.store().manifest(0).unwrap().unwrap();
    assert!(
        manifest.parts_per_shard() >= 8,
        "{}",
        manifest.parts_per_shard()
    );
    for (j, h) in s.hosts.iter().enumerate() {
        h.rot_stored_shards(j * part + 1000 + j);
    }
    let (r, out) = restore_all(&s.remote()).await.unwrap();
    assert_eq!(r.blocks, 800, "{r:?}");
    assert!(r.lost.is_empty(), "{:?}", r.lost);
    assert!(
        r.shard_failures
            .iter()
            .any(|(_, _, _, why)| why.contains("parts damaged")),
        "{:?}",
        r.shard_failures
    );
    assert_blocks_equal(out.path(), &blocks);

    let rep = a.repair(true).await.unwrap();
    assert!(rep.still_under_replicated.is_empty(), "{rep:?}");
    let segments = a.store().dispersed_next().unwrap();
    assert_eq!(rep.repaired.len() as u64, 6 * segments, "{rep:?}");
    let again = a.repair(true).await.unwrap();
    assert!(again.repaired.is_empty(), "{again:?}");
    // Whole again: any m hosters may now vanish.
    let holders: Vec<&Arc<MemoryHost>> = s.hosts.iter().filter(|h| h.shard_count() > 0).collect();
    holders[0].set_down(true);
    holders[1].set_down(true);
    let (r, out) = restore_all(&s.remote()).await.unwrap();
    assert_eq!(r.blocks, 800);
    assert_blocks_equal(out.path(), &blocks);
}
