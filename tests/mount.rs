//! `archiver mount` on a real FUSE mount (fuse3's fusermount3, /dev/fuse) over real hoster
//! processes: `ls`, `cat`, `find`, `grep` and symlinks work; every file's bytes equal what
//! `restore` writes; writes are refused with EROFS; with 2 of 6 hosters down, blocks never read
//! before still come back from the hosters; the segment cache stays under `--cache-mib` while
//! far more is read; new blocks appear while the mount is up; SIGTERM unmounts; a mount whose
//! process was killed is reported as stale with the command that clears it.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use archiver_cli::cluster::{start_hosters, write_cluster_config};
use common::{archiver, EXE};

const BLOCKS: u64 = 1_600;
const CACHE_MIB: u64 = 4;

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Kills the mount process however the test ends, then clears its mountpoint, so a failing
/// test leaves no mount behind.
struct MountProcess {
    child: Child,
    mountpoint: PathBuf,
}

impl MountProcess {
    fn start(config: &Path, mountpoint: &Path) -> Self {
        let mut child = Command::new(EXE)
            .arg("--config")
            .arg(config)
            .args(["mount", "--cache-mib", &CACHE_MIB.to_string()])
            .arg(mountpoint)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("mounted at"), "{line:?}");
        Self {
            child,
            mountpoint: mountpoint.to_path_buf(),
        }
    }
}

impl Drop for MountProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("fusermount3")
            .arg("-u")
            .arg(&self.mountpoint)
            .stderr(Stdio::null())
            .status();
    }
}

fn is_mounted(mountpoint: &Path) -> bool {
    let canonical = mountpoint.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(canonical.as_str()))
}

fn block_path(mnt: &Path, n: u64, ext: &str) -> PathBuf {
    mnt.join(format!(
        "blocks/{:03}/{:03}/{n:09}.{ext}",
        n / 1_000_000,
        (n / 1000) % 1000
    ))
}

fn stats(mnt: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(mnt.join("mount-stats.json")).unwrap()).unwrap()
}

fn erofs<T: std::fmt::Debug>(r: std::io::Result<T>, what: &str) {
    let e = r.expect_err(what);
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
}

#[test]
fn history_mounts_as_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut hosters = start_hosters(Path::new(EXE), dir.path(), 6, 3).unwrap();
    let config = write_cluster_config(dir.path(), &hosters, 4, 2, 1024 * 1024).unwrap();
    ok(archiver(
        &config,
        &["ingest", "--synthetic", &BLOCKS.to_string(), "--flush"],
    ));
    // Only the newest segment stays on local disk: everything else is read from the hosters.
    ok(archiver(&config, &["prune", "--keep-local-segments", "1"]));
    let restored = dir.path().join("restored");
    ok(archiver(
        &config,
        &[
            "restore",
            "--format",
            "blocks",
            "--out",
            restored.to_str().unwrap(),
        ],
    ));
    let expected = |n: u64| std::fs::read(restored.join(format!("blocks/{n:012}.block"))).unwrap();

    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mut mount = MountProcess::start(&config, &mnt);
    assert!(is_mounted(&mnt));

    // The layout, with `ls`.
    let ls = |p: &Path| -> Vec<String> {
        let out = Command::new("ls").arg(p).output().unwrap();
        assert!(out.status.success(), "ls {}", p.display());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        ls(&mnt),
        [
            "README",
            "blocks",
            "by-hash",
            "head.json",
            "mount-stats.json",
            "segments"
        ]
    );
    assert_eq!(ls(&mnt.join("blocks")), ["000"]);
    assert_eq!(ls(&mnt.join("blocks/000")), ["000", "001"]);
    let leaf = ls(&mnt.join("blocks/000/000"));
    assert_eq!(leaf.len(), 2_000, "1,000 blocks, .scale and .json each");
    assert_eq!(leaf[0], "000000000.json");
    assert_eq!(leaf[1], "000000000.scale");
    assert_eq!(
        ls(&mnt.join("blocks/000/001")).len(),
        2 * (BLOCKS as usize - 1000)
    );
    let head: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mnt.join("head.json")).unwrap()).unwrap();
    assert_eq!(head["number"], BLOCKS - 1);
    assert_eq!(head["firstNumber"], 0);
    let readme = std::fs::read_to_string(mnt.join("README")).unwrap();
    assert!(readme.contains("by-hash/0x<hash>"), "{readme}");

    // `cat` of blocks 0..1000 (every file, with all hosters up): the bytes restore wrote, sizes
    // in stat that match, headers that decode to the right number and hash.
    for n in 0..1000 {
        let path = block_path(&mnt, n, "scale");
        let out = Command::new("cat").arg(&path).output().unwrap();
        assert!(out.status.success(), "cat {}", path.display());
        let want = expected(n);
        assert!(out.stdout == want, "block {n}: bytes differ from restore");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), want.len() as u64);
        let json_path = block_path(&mnt, n, "json");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
        assert_eq!(json["number"], n, "{json}");
        assert_eq!(json["blockBytes"], want.len(), "{json}");
        assert!(json["extrinsicCount"].as_u64().unwrap() > 0, "{json}");
        assert!(json["stateRoot"].as_str().unwrap().starts_with("0x"));
        if n == 777 {
            // by-hash: a symlink to the block file, readable through the link.
            let hash = json["hash"].as_str().unwrap().to_string();
            let link = mnt.join("by-hash").join(&hash);
            assert_eq!(
                std::fs::read_link(&link).unwrap(),
                Path::new("../blocks/000/000/000000777.scale")
            );
            assert!(std::fs::read(&link).unwrap() == want);
        }
    }
    // The segment cache held at most its bound while ~20 MB went through it.
    let s = stats(&mnt);
    assert!(
        s["cacheBytes"].as_u64().unwrap() <= CACHE_MIB * 1024 * 1024,
        "{s}"
    );
    assert_eq!(
        s["cacheBytesMax"].as_u64().unwrap(),
        CACHE_MIB * 1024 * 1024
    );
    assert!(s["segmentsFetched"].as_u64().unwrap() >= 15, "{s}");
    assert!(
        s["bytesServed"].as_u64().unwrap() > 4 * CACHE_MIB * 1024 * 1024,
        "{s}"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mnt.join("segments/0/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["segment"], 0);
    assert_eq!(manifest["firstNumber"], 0);

    // `grep` over a directory finds the marker every synthetic block carries.
    let out = Command::new("grep")
        .args(["-rlc", "POA-ARCHIVER-PLAINTEXT-MARKER"])
        .arg(mnt.join("blocks/000/000"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1000);

    // Writes of every kind: EROFS.
    erofs(std::fs::File::create(mnt.join("new")), "create");
    erofs(
        std::fs::OpenOptions::new()
            .write(true)
            .open(block_path(&mnt, 5, "scale")),
        "open for writing",
    );
    erofs(
        std::fs::OpenOptions::new()
            .append(true)
            .open(mnt.join("README")),
        "append",
    );
    erofs(
        std::fs::rename(block_path(&mnt, 5, "scale"), mnt.join("x")),
        "rename",
    );
    erofs(
        std::fs::set_permissions(
            mnt.join("README"),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        ),
        "chmod",
    );
    erofs(std::fs::create_dir(mnt.join("blocks/d")), "mkdir");
    erofs(std::fs::remove_file(mnt.join("README")), "unlink");
    erofs(
        std::os::unix::fs::symlink("README", mnt.join("l")),
        "symlink",
    );

    // Two of six hosters down: blocks never read before (1000..1600, past what the cache holds)
    // are rebuilt from the other four.
    hosters[0].kill().unwrap();
    hosters[3].kill().unwrap();
    let fetched_before = stats(&mnt)["segmentsFetched"].as_u64().unwrap();
    for n in 1000..BLOCKS {
        let got = std::fs::read(block_path(&mnt, n, "scale")).unwrap();
        assert!(got == expected(n), "block {n} with 2 hosters down");
    }
    let s = stats(&mnt);
    assert!(
        s["segmentsFetched"].as_u64().unwrap() > fetched_before + 5,
        "{s}"
    );
    assert!(
        s["cacheBytes"].as_u64().unwrap() <= CACHE_MIB * 1024 * 1024,
        "{s}"
    );
    assert_eq!(s["readErrors"], 0, "{s}");

    // `find` lists every block file.
    let out = Command::new("find")
        .arg(mnt.join("blocks"))
        .args(["-name", "*.scale"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count() as u64,
        BLOCKS
    );

    // New blocks appear while the mount is up (kept locally: dispersal waits for the hosters).
    ok(archiver(
        &config,
        &["ingest", "--synthetic", "25", "--no-disperse"],
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let head: serde_json::Value =
            serde_json::from_slice(&std::fs::read(mnt.join("head.json")).unwrap()).unwrap();
        if head["number"] == BLOCKS + 24 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new blocks never appeared: {head}"
        );
        // Polling, bounded by the deadline: the mount re-reads the store every 200 ms.
        std::thread::sleep(Duration::from_millis(50));
    }
    let newest = std::fs::read(block_path(&mnt, BLOCKS + 24, "json")).unwrap();
    assert!(String::from_utf8_lossy(&newest).contains(&format!("\"number\": {}", BLOCKS + 24)));

    // SIGTERM unmounts cleanly.
    let status = Command::new("kill")
        .args(["-TERM", &mount.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(mount.child.stdout.as_mut().unwrap(), &mut rest).unwrap();
    assert!(mount.child.wait().unwrap().success());
    assert!(rest.contains("unmounted"), "{rest}");
    assert!(!is_mounted(&mnt));
    drop(mount);

    // A mount whose process is killed leaves a stale mountpoint: reported with its remedy.
    let mut crashed = MountProcess::start(&config, &mnt);
    crashed.child.kill().unwrap();
    crashed.child.wait().unwrap();
    let out = archiver(&config, &["mount", mnt.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(
        err.contains("stale mount") && err.contains(&format!("fusermount3 -u {}", mnt.display())),
        "{err}"
    );
    let cleared = Command::new("fusermount3")
        .arg("-u")
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(cleared.success());
    assert!(!is_mounted(&mnt));
    drop(crashed);
}
