//! The operations layer against in-memory hosters, with a seeded RNG and a manual clock: the
//! auditor and the repair scheduler make the same decisions from the same seed; the service
//! heals a lost hoster and audited rot with no command, drains a live hoster, and GC removes
//! orphans and nothing a placement names.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use archiver::audit::{parse_hoster_key, AuditLog};
use archiver::config::{ArchiveConfig, Durability};
use archiver::ops::{
    collect_orphans, Auditor, HealthPolicy, ManualClock, OpsOptions, OpsService, PlanInput,
    RepairScheduler,
};
use archiver::testing::{chain, memory_hosters, MemoryHost};
use archiver::{Archive, MasterKey, ShardHost};

const K: usize = 4;
const M: usize = 2;

struct Setup {
    dir: tempfile::TempDir,
    hosts: Vec<Arc<MemoryHost>>,
    archive: Archive,
}

/// 7 hosters (4+2 and a spare), ~8 dispersed segments.
async fn setup() -> Setup {
    setup_avoiding(&[]).await
}

/// [`setup`], dispersed while the hosters `avoided` took nothing (as if added later).
async fn setup_avoiding(avoided: &[&str]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (hosts, entries, set) = memory_hosters(7);
    let mut cfg = ArchiveConfig::new(dir.path().join("data"), entries);
    cfg.data_shards = K;
    cfg.parity_shards = M;
    cfg.segment_size_bytes = 128 * 1024;
    cfg.durability = Durability::Os;
    let mut archive = Archive::open(cfg, MasterKey::from_bytes([7; 32]), set).unwrap();
    archive
        .disperser()
        .set_avoided(avoided.iter().map(|h| h.to_string()).collect());
    archive
        .log_mut()
        .append_batch(&chain(300, 5, 3_000))
        .unwrap();
    archive.log_mut().seal_active().unwrap();
    archive.disperse_pending().await.unwrap();
    archive.disperser().set_avoided(Vec::new());
    Setup {
        dir,
        hosts,
        archive,
    }
}

impl Setup {
    fn keys(&self) -> BTreeMap<String, ed25519_dalek::VerifyingKey> {
        self.hosts
            .iter()
            .map(|h| {
                (
                    h.name().to_string(),
                    parse_hoster_key(&h.public_key_hex()).unwrap(),
                )
            })
            .collect()
    }
    fn data_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }
    fn segments(&self) -> u64 {
        self.archive.store().dispersed_next().unwrap()
    }
    /// Hosters named by any placement.
    fn holders(&self) -> BTreeSet<String> {
        (0..self.segments())
            .flat_map(|s| self.archive.store().placement(s).unwrap().unwrap().hosters)
            .flatten()
            .collect()
    }
    fn service(&self, seed: u64, clock: Arc<ManualClock>) -> OpsService {
        let opts = OpsOptions {
            health: HealthPolicy {
                lost_after_ms: 1_000,
                challenge_failures_max: 2,
                probe_interval_ms: 100,
            },
            audit_interval_ms: 50,
            gc_interval_ms: 10_000,
            seed,
            ..OpsOptions::default()
        };
        OpsService::new(
            self.archive.disperser(),
            self.data_dir(),
            self.keys(),
            opts,
            clock,
        )
    }
    /// Every segment has k+m shards, each where its placement says and matching its root.
    async fn assert_fully_redundant(&self) {
        let report = self.archive.repair(true).await.unwrap();
        assert!(
            report.repaired.is_empty(),
            "nothing left to repair: {:?}",
            report.repaired
        );
        assert!(report.still_under_replicated.is_empty());
    }
}

/// Flips a byte in every 1 KiB chunk of every shard `host` stores: any challenge fails.
fn rot_everything(host: &MemoryHost) {
    for offset in (0..256 * 1024).step_by(512) {
        host.rot_stored_shards(offset);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditor_replays_its_decisions_from_a_seed_and_finds_rot() {
    let s = setup().await;
    let hosters = s.archive.hosters().clone();
    let key = MasterKey::from_bytes([7; 32]);
    let run = |seed: u64| {
        let (store, hosters, keys) = (s.archive.store().clone(), hosters.clone(), s.keys());
        let key = MasterKey::from_bytes([7; 32]);
        async move {
            let mut a = Auditor::new(seed, Arc::new(ManualClock::new(1_000)), keys);
            let mut seen = Vec::new();
            for _ in 0..40 {
                let o = a.round(&store, &key, &hosters, &[]).await.unwrap().unwrap();
                seen.push((o.segment, o.shard, o.hoster.clone(), o.passed()));
            }
            seen
        }
    };
    let (a, b, c) = (run(11).await, run(11).await, run(12).await);
    assert_eq!(a, b, "the same seed makes the same picks");
    assert_ne!(a, c, "another seed makes others");
    assert!(
        a.iter().all(|(.., passed)| *passed),
        "honest hosters pass: {a:?}"
    );
    let picked: BTreeSet<&String> = a.iter().map(|(_, _, h, _)| h).collect();
    assert!(picked.len() >= 5, "picks spread over hosters: {picked:?}");

    rot_everything(&s.hosts[3]);
    let mut auditor = Auditor::new(11, Arc::new(ManualClock::new(1_000)), s.keys());
    let (mut on_rotten, mut failed) = (0, 0);
    for _ in 0..60 {
        let o = auditor
            .round(s.archive.store(), &key, &hosters, &[])
            .await
            .unwrap()
            .unwrap();
        if o.hoster == "h3" {
            on_rotten += 1;
            failed += usize::from(!o.passed());
        } else {
            assert!(o.passed(), "{o:?}");
        }
    }
    assert!(
        on_rotten > 0 && failed == on_rotten,
        "{failed} of {on_rotten} on h3 failed"
    );
    let skipped = auditor
        .pick(s.archive.store(), &["h3".to_string()])
        .unwrap()
        .unwrap();
    assert_ne!(
        skipped.hoster, "h3",
        "lost or draining hosters are not audited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_orders_least_redundancy_first_and_replays_from_a_seed() {
    let s = setup().await;
    let store = s.archive.store();
    // The last segment holding a shard on h0 also loses a marked shard, so it has the least
    // redundancy left.
    let on_h0 = |seg: u64| {
        let p = store.placement(seg).unwrap().unwrap();
        p.hosters.iter().flatten().any(|h| h == "h0")
    };
    let worst = (0..s.segments()).rev().find(|&seg| on_h0(seg)).unwrap();
    let p = store.placement(worst).unwrap().unwrap();
    let marked_shard = p
        .hosters
        .iter()
        .position(|h| h.as_deref() != Some("h0"))
        .unwrap();
    let input = PlanInput {
        lost: ["h0".to_string()].into(),
        draining: BTreeSet::new(),
        marked: [(worst, marked_shard)].into(),
        configured: BTreeSet::new(),
    };
    let plan = |seed| RepairScheduler::new(seed).plan(store, &input).unwrap();
    let (a, b) = (plan(3), plan(3));
    assert_eq!(a, b, "the same seed gives the same plan");
    assert_eq!(a[0].segment, worst, "least redundancy first: {a:?}");
    assert_eq!(a[0].redundancy_left, M as i64 - 2);
    assert!(a
        .windows(2)
        .all(|w| w[0].redundancy_left <= w[1].redundancy_left));
    for job in &a {
        let p = store.placement(job.segment).unwrap().unwrap();
        for &i in &job.shards {
            assert!(
                p.hosters[i].as_deref() == Some("h0") || (job.segment, i) == (worst, marked_shard)
            );
        }
    }
    let with_h0 = (0..s.segments()).filter(|&seg| on_h0(seg)).count();
    assert_eq!(
        a.len(),
        with_h0,
        "one job per segment with a shard to rebuild"
    );
    let seeds: BTreeSet<Vec<u64>> = (0..8)
        .map(|seed| plan(seed).iter().map(|j| j.segment).collect())
        .collect();
    assert!(seeds.len() > 1, "ties are broken by the seed");
}

/// Passes the service until `done`, advancing the manual clock by `step_ms` each time.
async fn run_until(
    ops: &mut OpsService,
    clock: &ManualClock,
    step_ms: u64,
    mut done: impl FnMut(&OpsService) -> bool,
) -> u64 {
    for pass in 0..400 {
        ops.pass().await;
        if done(ops) {
            return pass;
        }
        clock.advance(step_ms);
    }
    panic!("not done after 400 passes: {:?}", ops.handle().status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_heals_a_lost_hoster_and_rot_with_no_command() {
    let s = setup().await;
    let clock = Arc::new(ManualClock::new(1_000_000));
    let mut ops = s.service(21, clock.clone());
    ops.pass().await;
    assert!(ops.handle().status().lost.is_empty());
    assert!(s.holders().contains("h2"));
    s.hosts[2].set_down(true);
    let lost_at = clock.now();
    run_until(&mut ops, &clock, 100, |o| !o.health().lost().is_empty()).await;
    let detected = clock.now() - lost_at;
    assert!(
        (1_000..=1_200).contains(&detected),
        "detected after {detected} ms"
    );
    run_until(&mut ops, &clock, 100, |_| !s.holders().contains("h2")).await;
    let status = ops.handle().status();
    assert!(
        status.repaired_shards > 0 && status.events.iter().any(|(_, e)| e.starts_with("lost h2"))
    );

    // Rot on another hoster: an audit finds it, every shard it holds is read, and the rotten
    // ones are rebuilt (on itself only as a last resort: with h2 gone, 6 hosters remain for 4+2).
    let repaired = ops.handle().status().repaired_shards;
    rot_everything(&s.hosts[4]);
    run_until(&mut ops, &clock, 100, |o| {
        let st = o.handle().status();
        st.challenges_failed >= 1
            && st.repaired_shards > repaired
            && st.sweeping.is_empty()
            && st.repair_queue_segments == 0
    })
    .await;

    // h2 returns: used again, its stale shards (all moved) are collected as orphans.
    s.hosts[2].set_down(false);
    run_until(&mut ops, &clock, 100, |_| s.hosts[2].shard_count() == 0).await;
    let status = ops.handle().status();
    assert!(
        status.events.iter().any(|(_, e)| e == "returned h2"),
        "{:?}",
        status.events
    );
    let full = status.segments_by_redundancy.get(M).copied().unwrap_or(0);
    assert_eq!(
        full,
        s.segments(),
        "every segment back to k+m: {:?}",
        status.segments_by_redundancy
    );
    s.hosts[4].set_flip_reads(false);
    s.assert_fully_redundant().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_hoster_ends_empty_with_nothing_lost() {
    let s = setup().await;
    let clock = Arc::new(ManualClock::new(5_000));
    let mut ops = s.service(8, clock.clone());
    assert!(s.holders().contains("h1") && s.hosts[1].shard_count() > 0);
    AuditLog::open(&s.data_dir())
        .unwrap()
        .request_drain("h1", 5_000)
        .unwrap();
    run_until(&mut ops, &clock, 1_000, |_| s.hosts[1].shard_count() == 0).await;
    assert!(!s.holders().contains("h1"));
    assert_eq!(ops.handle().status().draining, vec!["h1".to_string()]);
    s.assert_fully_redundant().await;
    // New segments avoid it too.
    let mut archive = s.archive;
    let more = chain(400, 5, 3_000);
    archive.log_mut().append_batch(&more[300..]).unwrap();
    archive.log_mut().seal_active().unwrap();
    ops.pass().await;
    assert_eq!(
        s.hosts[1].shard_count(),
        0,
        "nothing new lands on a draining hoster"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_orphans_of_a_failed_upload_and_nothing_else() {
    let s = setup().await;
    let key = MasterKey::from_bytes([7; 32]);
    let store = s.archive.store();
    // A repair moves shard 1 of segment 2 (its old copy stays behind, superseded).
    let old = store.placement(2).unwrap().unwrap();
    let old_holder = old.hosters[1].clone().unwrap();
    s.archive.repair_with(false, &[(2, 1)]).await.unwrap();
    let manifest = store.manifest(2).unwrap().unwrap();
    let placement = store.placement(2).unwrap().unwrap();
    assert_eq!(placement.version(1), 1);
    let host = |name: &str| s.hosts.iter().find(|h| h.name() == name).unwrap();
    let superseded = manifest.shard_storage_key_at(&key, 1, 0);
    assert!(host(&old_holder).holds(&superseded));
    // A failed upload leaves a shard's name on a hoster its placement does not name.
    let stranger = s
        .hosts
        .iter()
        .find(|h| !placement.hosters.iter().flatten().any(|n| n == h.name()))
        .unwrap();
    let orphan = manifest.shard_storage_key_at(&key, 0, 0);
    stranger.insert_raw(&orphan, b"half an upload");
    // A newer version than the local placement knows (an interrupted repair's) is kept.
    let ahead = manifest.shard_storage_key_at(&key, 0, 1);
    stranger.insert_raw(&ahead, b"a repair interrupted after publishing");
    let before: usize = s.hosts.iter().map(|h| h.shard_count()).sum();
    let report = collect_orphans(&s.archive.disperser()).await.unwrap();
    assert_eq!(report.shards_deleted(), 2, "{report:?}");
    assert!(!stranger.holds(&orphan) && !host(&old_holder).holds(&superseded));
    assert!(stranger.holds(&ahead), "a newer version is never collected");
    let after: usize = s.hosts.iter().map(|h| h.shard_count()).sum();
    assert_eq!(before - after, 2);
    assert_eq!(
        report.kept as usize, after,
        "every other shard is named and kept"
    );
    s.assert_fully_redundant().await;
    let again = collect_orphans(&s.archive.disperser()).await.unwrap();
    assert_eq!(again.shards_deleted(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_waits_while_a_sealed_segment_awaits_dispersal() {
    let mut s = setup().await;
    let more = chain(400, 5, 3_000);
    s.archive.log_mut().append_batch(&more[300..]).unwrap();
    s.archive.log_mut().seal_active().unwrap();
    s.hosts[0].insert_raw(&[9; 24], b"an orphan");
    let report = collect_orphans(&s.archive.disperser()).await.unwrap();
    assert!(
        report.not_run.is_some() && report.shards_deleted() == 0,
        "{report:?}"
    );
    assert!(s.hosts[0].holds(&[9; 24]));
    s.archive.disperse_pending().await.unwrap();
    let report = collect_orphans(&s.archive.disperser()).await.unwrap();
    assert_eq!(report.shards_deleted(), 1, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_spreads_shards_onto_a_new_hoster() {
    let s = setup_avoiding(&["h6"]).await;
    assert_eq!(s.hosts[6].shard_count(), 0);
    AuditLog::open(&s.data_dir())
        .unwrap()
        .request_rebalance(1)
        .unwrap();
    let clock = Arc::new(ManualClock::new(5_000));
    let mut ops = s.service(4, clock.clone());
    let spread = |s: &Setup| {
        let counts: Vec<usize> = s.hosts.iter().map(|h| h.shard_count()).collect();
        counts.iter().max().unwrap() - counts.iter().min().unwrap()
    };
    // Done once the request is withdrawn and GC collected the moved shards' old copies.
    run_until(&mut ops, &clock, 1_000, |_| {
        let log = AuditLog::open_read_only(&s.data_dir()).unwrap().unwrap();
        !log.rebalance_requested().unwrap() && spread(&s) <= 1
    })
    .await;
    assert!(s.hosts[6].shard_count() > 0);
    assert!(
        spread(&s) <= 1,
        "shards per hoster differ by at most one after GC"
    );
    s.assert_fully_redundant().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_for_a_shard_that_moved_since_is_dropped_not_rebuilt() {
    let s = setup().await;
    let p = s.archive.store().placement(3).unwrap().unwrap();
    let holder = p.hosters[2].clone().unwrap();
    let elsewhere = s
        .hosts
        .iter()
        .map(|h| h.name().to_string())
        .find(|n| *n != holder)
        .unwrap();
    AuditLog::open(&s.data_dir())
        .unwrap()
        .mark(&[(3, 2, elsewhere)])
        .unwrap();
    let clock = Arc::new(ManualClock::new(5_000));
    let mut ops = s.service(9, clock.clone());
    ops.pass().await;
    ops.pass().await;
    let log = AuditLog::open_read_only(&s.data_dir()).unwrap().unwrap();
    assert!(
        log.marked().unwrap().is_empty(),
        "the stale mark is cleared"
    );
    assert_eq!(
        ops.handle().status().repaired_shards,
        0,
        "nothing rebuilt for it"
    );
    assert_eq!(s.archive.store().placement(3).unwrap().unwrap(), p);
}
