//! Crash safety: an `archiver ingest` child process is SIGKILLed at random points (seeded) at least
//! 20 times while it appends, seals and disperses; after every kill the log must verify and hold
//! every acknowledged block exactly once, and the final archive must restore byte for byte.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use archiver_cli::cluster::start_hosters;
use archiver_cli::cluster::write_cluster_config;
use rand::{Rng, SeedableRng};

const EXE: &str = env!("CARGO_BIN_EXE_archiver");
const KILLS: usize = 20;

fn verify(config: &Path) -> (u64, u64) {
    let o = Command::new(EXE)
        .arg("--config")
        .arg(config)
        .arg("verify")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "verify failed: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // "log verified: B blocks, last L"
    let words: Vec<&str> = out.split_whitespace().collect();
    let blocks: u64 = words[2].parse().unwrap();
    let last: u64 = words[5].parse().unwrap_or(0);
    (blocks, last)
}

#[test]
fn sigkill_during_ingest_loses_no_acknowledged_block() {
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261121);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let hosters = start_hosters(Path::new(EXE), &dir.path().join("hosters"), 6, 3).unwrap();
    // Small segments: seals and dispersals happen every few batches, so kills land in all phases.
    let config = write_cluster_config(dir.path(), &hosters, 4, 2, 256 * 1024).unwrap();
    let mut acked_max: Option<u64> = None;
    for round in 0..KILLS {
        let mut child = Command::new(EXE)
            .arg("--config")
            .arg(&config)
            .args([
                "ingest",
                "--synthetic",
                "1000000",
                "--print-acks",
                "--seed",
                "9",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // Kill after a random number of acknowledged batches (seeded), i.e. at a random point of the
        // append / seal / disperse cycle.
        let wait_acks = rng.gen_range(1..40);
        let mut seen = 0;
        while seen < wait_acks {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(n) = line.strip_prefix("acked ") {
                let n: u64 = n.trim().parse().unwrap();
                acked_max = Some(acked_max.map_or(n, |m| m.max(n)));
                seen += 1;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let (blocks, last) = verify(&config);
        let acked = acked_max.unwrap();
        assert!(
            last >= acked,
            "round {round} (seed {seed}): acknowledged block {acked} lost, log ends at {last}"
        );
        assert_eq!(
            blocks,
            last + 1,
            "round {round} (seed {seed}): each block exactly once from genesis"
        );
    }
    // Finish: flush and disperse everything, then restore and compare with the local log.
    let o = Command::new(EXE)
        .arg("--config")
        .arg(&config)
        .args(["ingest", "--synthetic", "10", "--seed", "9", "--flush"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("restored");
    let o = Command::new(EXE)
        .arg("--config")
        .arg(&config)
        .args(["restore", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let segs = dir.path().join("node/segments");
    let mut compared = 0;
    for e in std::fs::read_dir(&segs).unwrap() {
        let p = e.unwrap().path();
        let copy = out.join("segments").join(p.file_name().unwrap());
        assert_eq!(
            std::fs::read(&p).unwrap(),
            std::fs::read(&copy).unwrap(),
            "{}",
            p.display()
        );
        compared += 1;
    }
    assert!(compared > 5);
    drop(hosters);
}
