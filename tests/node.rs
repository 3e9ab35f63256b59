//! The validator's whole story over real sockets: a 4-authority reference node archiving in-process
//! to 6 embedded hoster processes (retention 1,000) produces ≥ 20,000 blocks of transfers while an
//! external follower archives the same chain over JSON-RPC; the node keeps only retained bodies;
//! both archives hold identical block bytes; real clients (polkadot.js, substrate-interface) read
//! pruned blocks through the node's RPC and the standalone history RPC; with 2 hosters down the
//! archive's dispersal stalls, the prune watermark stops, a new validator syncs (killed with -9
//! midway, resumed) to the same state root and follows the live node; hosters return and pruning
//! resumes.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use archiver_cli::cluster::{start_hosters, write_cluster_config, HosterProcess};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::HttpClient;
use serde_json::{json, Value};

use common::{call, wait_for, Served, EXE};
const BLOCKS: u64 = 20_000;
const RETENTION: u64 = 1_000;
const SEGMENT_BYTES: u64 = 256 * 1024;

async fn status(c: &HttpClient) -> Value {
    call(c, "archiver_status", vec![]).await
}

fn run(config: &Path, args: &[&str]) -> String {
    let out = Command::new(EXE)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "archiver {args:?} failed:\n{text}");
    text
}

fn clients_dir() -> PathBuf {
    std::env::var_os("POA_CLIENTS_DIR").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/poa-archiver/clients"),
        PathBuf::from,
    )
}

/// Runs both real clients against `ws` for `expected` blocks; panics with their output on failure.
fn real_clients(ws: &str, expected: &Value, dir: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let file = dir.join(format!("expected-{}.json", ws.replace([':', '/'], "_")));
    std::fs::write(&file, expected.to_string()).unwrap();
    let py = clients_dir().join("venv/bin/python");
    for (prog, script) in [
        (PathBuf::from("node"), root.join("polkadot_check.mjs")),
        (py, root.join("substrate_check.py")),
    ] {
        let out = Command::new(&prog)
            .arg(&script)
            .arg(ws)
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", prog.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} failed:\n{stdout}\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let verdict: Value = serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();
        assert_eq!(verdict["ok"], true, "{stdout}");
        assert_eq!(
            verdict["checked"].as_u64().unwrap(),
            expected["blocks"].as_array().unwrap().len() as u64
        );
    }
}

fn restore_blocks(config: &Path, out: &Path) -> Vec<(String, Vec<u8>)> {
    run(
        config,
        &[
            "restore",
            "--format",
            "blocks",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let mut files = Vec::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "block") {
                files.push((
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    files.sort();
    files
}

/// `archive_v1_*`, `archiver_*` and `author_submitExtrinsic` over the node's RPC.
async fn new_spec_and_extension_methods(nc: &HttpClient, expected: &Value, block_5000: &Value) {
    let hash = |i: usize| expected["blocks"][i]["hash"].clone();
    assert_eq!(
        call(nc, "archive_v1_genesisHash", vec![]).await,
        expected["genesis"]
    );
    assert_eq!(
        call(nc, "archive_v1_finalizedHeight", vec![]).await,
        json!(BLOCKS)
    );
    assert_eq!(
        call(nc, "archive_v1_hashByHeight", vec![json!(5_000)]).await,
        json!([hash(5)])
    );
    assert_eq!(
        call(nc, "archive_v1_hashByHeight", vec![json!(BLOCKS + 1_000)]).await,
        json!([])
    );
    assert_eq!(
        call(nc, "archive_v1_body", vec![hash(5)]).await,
        block_5000["block"]["extrinsics"]
    );
    let header = call(nc, "archive_v1_header", vec![hash(4)]).await;
    let raw = node_plugin::rpc::unhex(header.as_str().unwrap()).unwrap();
    assert_eq!(
        node_plugin::rpc::hex0x(&node_plugin::blake2_256(&raw)),
        hash(4).as_str().unwrap()
    );

    // A pruned block's inclusion proof checks against the blocks root of its segment's manifest.
    let proof = call(nc, "archiver_inclusionProof", vec![hash(4)]).await;
    let manifest = call(
        nc,
        "archiver_segmentManifest",
        vec![proof["segment"].clone()],
    )
    .await;
    assert_eq!(proof["blocksRoot"], manifest["blocksRoot"]);
    let h32 = |v: &Value| -> [u8; 32] {
        node_plugin::rpc::unhex(v.as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let path: Vec<[u8; 32]> = proof["proof"].as_array().unwrap().iter().map(h32).collect();
    let (index, leaves) = (
        proof["index"].as_u64().unwrap() as usize,
        proof["leaves"].as_u64().unwrap() as usize,
    );
    let root = h32(&manifest["blocksRoot"]);
    assert!(prover::merkle::verify_inclusion(
        &root,
        &h32(&hash(4)),
        index,
        leaves,
        &path
    ));
    assert!(!prover::merkle::verify_inclusion(
        &root,
        &h32(&hash(3)),
        index,
        leaves,
        &path
    ));

    // Invalid transactions are refused at submission with Substrate's code and a reason.
    let refuse = |hex: String| async move {
        nc.request::<Value, _>("author_submitExtrinsic", jsonrpsee::rpc_params![hex])
            .await
            .unwrap_err()
            .to_string()
    };
    let e = refuse("0x0102".into()).await;
    assert!(e.contains("1010") && e.contains("malformed"), "{e}");
    let genesis: [u8; 32] = h32(&expected["genesis"]);
    let pauper = node_plugin::runtime::Signer::Ed25519(node_plugin::consensus::dev_signing_key(
        "nobody", "poa-dev", 0,
    ));
    let t = node_plugin::runtime::signed_transfer(
        &pauper,
        genesis,
        node_plugin::runtime::AccountId32([1; 32]),
        5,
        0,
        true,
    );
    let e = refuse(node_plugin::rpc::hex0x(&t)).await;
    assert!(e.contains("1010") && e.contains("cannot pay"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_archives_prunes_serves_real_clients_and_a_new_validator_syncs() {
    common::install_clients();

    let dir = tempfile::tempdir().unwrap();
    let mut hosters: Vec<HosterProcess> = start_hosters(Path::new(EXE), dir.path(), 6, 3).unwrap();
    std::fs::create_dir_all(dir.path().join("node")).unwrap();
    std::fs::create_dir_all(dir.path().join("follower")).unwrap();
    let node_cfg =
        write_cluster_config(&dir.path().join("node"), &hosters, 4, 2, SEGMENT_BYTES).unwrap();
    let follow_cfg =
        write_cluster_config(&dir.path().join("follower"), &hosters, 4, 2, SEGMENT_BYTES).unwrap();
    let node_data = dir.path().join("node-db");
    let blocks = BLOCKS.to_string();
    let retention = RETENTION.to_string();
    let node_args = |stop: bool, block_time: &str| {
        let mut a = vec![
            "node".to_string(),
            "--data".into(),
            node_data.to_string_lossy().into_owned(),
            "--rpc".into(),
            "127.0.0.1:0".into(),
            "--authorities".into(),
            "4".into(),
            "--block-time-ms".into(),
            block_time.into(),
            "--justification-period".into(),
            "4".into(),
            "--retention".into(),
            retention.clone(),
            "--transfers-per-block".into(),
            "3".into(),
        ];
        if stop {
            a.extend(["--stop-at".into(), blocks.clone()]);
        }
        a
    };
    let args: Vec<String> = node_args(true, "0");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut node = Served::start(&node_cfg, &args);
    let nc = node.client();

    // The external follower archives the same chain's blocks while it is being produced. Blocks
    // only: listing the whole state over RPC for each of 20,000 blocks authored at full speed
    // is the follower's O(state)-per-block path (tests/chopsticks.rs covers it on a real
    // runtime); this node's own archive carries the state changes in-process.
    let follower = {
        let cfg = follow_cfg.clone();
        let ws = node.ws();
        let blocks = blocks.clone();
        std::thread::spawn(move || {
            run(
                &cfg,
                &[
                    "follow",
                    "--node",
                    &ws,
                    "--stop-at",
                    &blocks,
                    "--flush",
                    "--state-changes",
                    "none",
                ],
            )
        })
    };

    // All blocks produced, and the node pruned everything but the retention window (that needs
    // the segments holding blocks < 19,001 dispersed, read back and verified).
    let st = wait_for("20,000 blocks archived and pruned", 600, || {
        let nc = nc.clone();
        async move {
            let s = status(&nc).await;
            (s["node"]["best"] == json!(BLOCKS)
                && s["node"]["prunedBelow"] == json!(BLOCKS + 1 - RETENTION))
            .then_some(s)
        }
    })
    .await;
    assert_eq!(st["node"]["finalized"], json!(BLOCKS));
    assert_eq!(st["node"]["bodiesHeld"], json!(RETENTION), "{st}");
    assert!(st["node"]["pruneWatermark"].as_u64().unwrap() >= BLOCKS + 1 - RETENTION);
    let follow_out = follower.join().unwrap();
    assert!(follow_out.contains("flushed"), "{follow_out}");

    // Pruned blocks come back through the node's RPC (from the hosters) and from real clients.
    let mut expected = Vec::new();
    for n in [0u64, 1, 2, 3, 777, 5_000, 12_345, 18_999, 19_500, BLOCKS] {
        let h = call(&nc, "chain_getBlockHash", vec![json!(n)]).await;
        expected.push(json!({"number": n, "hash": h}));
    }
    let expected = json!({"genesis": expected[0]["hash"], "blocks": expected});
    let block_5000 = call(
        &nc,
        "chain_getBlock",
        vec![expected["blocks"][5]["hash"].clone()],
    )
    .await;
    // The timestamp inherent, then the 3 transfers.
    assert_eq!(
        block_5000["block"]["extrinsics"].as_array().unwrap().len(),
        4
    );
    real_clients(&node.ws(), &expected, dir.path());
    new_spec_and_extension_methods(&nc, &expected, &block_5000).await;
    // The standalone history RPC over the node's archive (read-only beside the running node).
    let mut history = Served::start(&node_cfg, &["rpc", "--listen", "127.0.0.1:0"]);
    real_clients(&history.ws(), &expected, dir.path());
    let hc = history.client();
    let archived_header = call(
        &hc,
        "chain_getHeader",
        vec![expected["blocks"][4]["hash"].clone()],
    )
    .await;
    let live_header = call(
        &nc,
        "chain_getHeader",
        vec![expected["blocks"][4]["hash"].clone()],
    )
    .await;
    assert_eq!(archived_header, live_header);
    let unknown = hc
        .request::<Value, _>(
            "chain_getBlock",
            jsonrpsee::rpc_params!["0x".to_string() + &"ab".repeat(32)],
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("4001"), "{unknown}");
    history.terminate();

    // The node and the follower archived identical block bytes.
    node.terminate();
    let a = restore_blocks(&node_cfg, &dir.path().join("restore-node"));
    let b = restore_blocks(&follow_cfg, &dir.path().join("restore-follower"));
    assert_eq!(
        b.len() as u64,
        BLOCKS + 1,
        "the follower archived every block"
    );
    assert!(
        a.len() as u64 >= BLOCKS + 1 - RETENTION,
        "{} dispersed",
        a.len()
    );
    for (name, bytes) in &a {
        let other = b.binary_search_by(|(n, _)| n.cmp(name)).unwrap();
        assert_eq!(&b[other].1, bytes, "block file {name} differs");
    }

    // The node resumes (plugin catches up), authoring slowly; 2 hosters die: dispersal stalls.
    let args: Vec<String> = node_args(false, "20");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut node = Served::start(&node_cfg, &args);
    let nc = node.client();
    hosters[0].kill().unwrap();
    hosters[1].kill().unwrap();
    let stalled = wait_for("a segment sealed that cannot be dispersed", 120, || {
        let nc = nc.clone();
        async move {
            let s = status(&nc).await;
            let sealed = s["archive"]["segmentsSealed"].as_u64().unwrap();
            let verified = s["archive"]["verifiedNext"].as_u64().unwrap();
            (sealed > verified + 1).then_some(s)
        }
    })
    .await;
    let watermark = stalled["node"]["pruneWatermark"].as_u64().unwrap();
    assert!(
        stalled["node"]["prunedBelow"].as_u64().unwrap() <= watermark,
        "{stalled}"
    );

    // A new validator syncs from the hosters with 2 down, trusting a recent finalized hash;
    // killed with -9 midway it resumes, then follows the live node.
    let trusted = expected["blocks"][6]["hash"].as_str().unwrap().to_string();
    let sync_data = dir.path().join("validator-2");
    let mut sync = Command::new(EXE)
        .arg("--config")
        .arg(&node_cfg)
        .args([
            "sync",
            "--print-progress",
            "--trusted-hash",
            &trusted,
            "--data",
        ])
        .arg(&sync_data)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    for line in BufReader::new(sync.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let done: u64 = line
            .strip_prefix("progress ")
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if done > 3_000 {
            break;
        }
    }
    sync.kill().unwrap();
    let _ = sync.wait();
    let sync_data_s = sync_data.to_string_lossy().into_owned();
    let out = run(
        &node_cfg,
        &["sync", "--trusted-hash", &trusted, "--data", &sync_data_s],
    );
    let resumed: u64 = out
        .split("resumed from ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(
        resumed > 3_000,
        "the second run resumed from block {resumed}:\n{out}"
    );
    let ws = node.ws();
    let mut validator = Served::start(
        &node_cfg,
        &[
            "node",
            "--data",
            &sync_data_s,
            "--rpc",
            "127.0.0.1:0",
            "--no-archive",
            "--follow",
            &ws,
        ],
    );
    let vc = validator.client();
    let target = status(&nc).await["node"]["best"].as_u64().unwrap() + 20;
    let v = wait_for("the new validator follows past the live head", 300, || {
        let vc = vc.clone();
        async move {
            let s = status(&vc).await;
            (s["node"]["best"].as_u64().unwrap() >= target).then_some(s)
        }
    })
    .await;
    let n = v["node"]["best"].as_u64().unwrap();
    let h2 = call(
        &vc,
        "chain_getHeader",
        vec![call(&vc, "chain_getBlockHash", vec![json!(n)]).await],
    )
    .await;
    let h1 = call(
        &nc,
        "chain_getHeader",
        vec![call(&nc, "chain_getBlockHash", vec![json!(n)]).await],
    )
    .await;
    assert_eq!(h1, h2, "same block {n}, same state root");
    assert_eq!(
        call(&vc, "chain_getBlockHash", vec![json!(BLOCKS)]).await,
        expected["blocks"][9]["hash"]
    );
    // While 2 hosters are down the watermark stands still: once retention alone would prune past
    // it, pruning stops exactly at the last verified segment's end.
    let s = wait_for("retention overtakes the stalled watermark", 300, || {
        let nc = nc.clone();
        async move {
            let s = status(&nc).await;
            let finalized = s["node"]["finalized"].as_u64().unwrap();
            (finalized + 1 - RETENTION > watermark + 8).then_some(s)
        }
    })
    .await;
    assert_eq!(
        s["node"]["pruneWatermark"].as_u64().unwrap(),
        watermark,
        "{s}"
    );
    assert_eq!(s["node"]["prunedBelow"].as_u64().unwrap(), watermark, "{s}");

    // Hosters return: dispersal and read-back catch up, pruning resumes.
    hosters[0].restart(Path::new(EXE)).unwrap();
    hosters[1].restart(Path::new(EXE)).unwrap();
    wait_for("pruning resumes", 300, || {
        let nc = nc.clone();
        async move {
            let s = status(&nc).await;
            (s["node"]["prunedBelow"].as_u64().unwrap() > watermark
                && s["node"]["pruneWatermark"].as_u64().unwrap() > watermark)
                .then_some(s)
        }
    })
    .await;
    validator.terminate();
    node.terminate();
}
