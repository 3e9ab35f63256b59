//! End to end over real TCP: 6 embedded hosters (4+2) as separate processes, ≥ 64 MiB of synthetic
//! Substrate blocks, a bit flipped in one hoster's stored shard, 2 hosters killed, restore from the
//! config alone on a fresh directory, wrong key, truncated segment file, garbled manifest, and a
//! search of every hoster's disk for the plaintext marker.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use archiver::{Archive, RestoreFormat};
use archiver_cli::cluster::write_cluster_config;
use archiver_cli::cluster::{start_hosters, HosterProcess};
use archiver_cli::demo::files_containing;
use archiver_cli::ingest::{ingest_synthetic, SYNTHETIC_MARKER};
use common::{archiver, text, EXE};

const MIB: u64 = 1024 * 1024;

fn open(config: &Path) -> Archive {
    archiver_cli::config_file::open_archive(config).unwrap()
}

/// Flips one bit of `needle`'s first occurrence in any file under `dir`. Returns the file.
fn flip_on_disk(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let mut bytes = std::fs::read(&p).unwrap();
            if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
                bytes[at + needle.len() / 2] ^= 0x04;
                std::fs::write(&p, &bytes).unwrap();
                return Some(p);
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_disperse_kill_two_restore_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let mut hosters: Vec<HosterProcess> =
        start_hosters(Path::new(EXE), &dir.path().join("hosters"), 6, 3).unwrap();
    let config = write_cluster_config(dir.path(), &hosters, 4, 2, 8 * MIB).unwrap();

    // Ingest ≥ 64 MiB and disperse everything.
    let mut archive = open(&config);
    assert!(archive.prepare_hosters().await.is_empty());
    let report = ingest_synthetic(&mut archive, 5, None, Some(64 * MIB), true, true, |_, _| {})
        .await
        .unwrap();
    assert!(report.bytes >= 64 * MIB);
    let status = archive.status().await.unwrap();
    assert!(status.segments_dispersed >= 8, "{status:?}");
    assert_eq!(status.segments_pending, 0);
    assert!(status.under_replicated.is_empty());
    let sealed = archive.store().sealed_all().unwrap();

    // No plaintext reaches a hoster; the search itself works (the local log has the marker).
    assert!(files_containing(&dir.path().join("node"), SYNTHETIC_MARKER).unwrap() > 0);
    assert_eq!(
        files_containing(&dir.path().join("hosters"), SYNTHETIC_MARKER).unwrap(),
        0
    );

    // Flip a bit inside shard 0 (a data shard: always read first) of segment 1 on its hoster's disk.
    let placement = archive.store().placement(1).unwrap().unwrap();
    let victim_name = placement.hosters[0].clone().unwrap();
    let remote = archive.remote().clone();
    let meta = remote.segment_meta(1).await.unwrap();
    let (shards, _) = remote.fetch_shards(&meta, true).await.unwrap();
    let shard0 = shards[0].as_ref().unwrap();
    let victim = hosters.iter().position(|h| h.name == victim_name).unwrap();
    flip_on_disk(&hosters[victim].data_dir, &shard0[100_000..100_064])
        .expect("shard bytes on the hoster's disk");
    drop(archive);

    // Restore with all hosters up: the flipped part is found by its hash, and that part alone
    // is rebuilt from the other shards' parts.
    let remote = archiver_cli::config_file::open_remote(&config).unwrap();
    let out1 = dir.path().join("restored-flip");
    let r = archiver::restore(
        &remote,
        None,
        None,
        &out1,
        RestoreFormat::Segments,
        |_, _, _| {},
    )
    .await
    .unwrap();
    assert!(
        r.shard_failures.iter().any(|(seg, shard, h, why)| *seg == 1
            && *shard == 0
            && *h == victim_name
            && why.contains("1 of")
            && why.contains("parts damaged")),
        "{:?}",
        r.shard_failures
    );
    assert!(r.segments_reconstructed >= 1);
    std::fs::remove_dir_all(&out1).unwrap();

    // Kill 2 hosters (the corrupted one and another), then restore with the CLI from config alone.
    hosters[victim].kill().unwrap();
    let other = (victim + 3) % 6;
    hosters[other].kill().unwrap();
    let out = dir.path().join("fresh-machine");
    let o = archiver(&config, &["restore", "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    for s in &sealed {
        let name = archiver::log::segment_file_name(s.segment);
        let original = std::fs::read(dir.path().join("node/segments").join(&name)).unwrap();
        let copy = std::fs::read(out.join("segments").join(&name)).unwrap();
        assert!(original == copy, "segment {} differs", s.segment);
    }
    // A block range as individual block files.
    let o = archiver(
        &config,
        &[
            "restore",
            "--from",
            "100",
            "--to",
            "199",
            "--format",
            "blocks",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let archive = open(&config);
    for n in [100u64, 150, 199] {
        let got = std::fs::read(out.join("blocks").join(format!("{n:012}.block"))).unwrap();
        assert_eq!(got, archive.log().get(n).unwrap().unwrap().block);
    }
    assert!(!out
        .join("blocks")
        .join(format!("{:012}.block", 200))
        .exists());
    drop(archive);

    // Wrong master key: a clear error, no panic.
    let wrong_cfg = dir.path().join("wrong.toml");
    let text_cfg = std::fs::read_to_string(&config).unwrap();
    let good_key = toml::from_str::<toml::Table>(&text_cfg).unwrap()["master_key"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(&wrong_cfg, text_cfg.replace(&good_key, &"ab".repeat(32))).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong_cfg, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let o = archiver(
        &wrong_cfg,
        &[
            "restore",
            "--out",
            dir.path().join("wrong-out").to_str().unwrap(),
        ],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(t.contains("master key") && !t.contains("panicked"), "{t}");
    let o = archiver(&wrong_cfg, &["status"]);
    assert!(
        !o.status.success() && text(&o).contains("master key"),
        "{}",
        text(&o)
    );

    // Metadata is write-once: not even the archive's own client can overwrite a manifest record.
    let remote = archiver_cli::config_file::open_remote(&config).unwrap();
    let meta_key = remote.key().manifest_storage_key(2);
    for h in remote.hosters().all() {
        if !h.is_down() {
            let res = h
                .put_meta(&meta_key, b"garbage that is not a manifest record")
                .await;
            assert!(
                res.is_err(),
                "hoster {} let a manifest be overwritten",
                h.name()
            );
        }
    }
    let o = archiver(
        &config,
        &[
            "restore",
            "--out",
            dir.path().join("after-overwrite-out").to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));

    // Truncated local segment file: verify names the file.
    let seg0 = dir
        .path()
        .join("node/segments")
        .join(archiver::log::segment_file_name(0));
    let len = std::fs::metadata(&seg0).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg0)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let o = archiver(&config, &["verify"]);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains(&archiver::log::segment_file_name(0)) && !t.contains("panicked"),
        "{t}"
    );
}
