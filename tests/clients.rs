//! Real clients through their normal entry points, against pruned history: a reference node
//! archiving to 6 embedded hoster processes takes transfers that polkadot.js (`signAndSend` with
//! sr25519 and ed25519 keyring pairs) and substrate-interface (`create_signed_extrinsic` +
//! `submit_extrinsic`) sign and submit, each recording the signer's balance and nonce before and
//! after as the node answered then. Once the node has pruned those blocks, polkadot.js
//! (`ApiPromise.create`, `api.rpc.chain.getBlock`, `api.at(hash).query.system.account`),
//! substrate-interface (`get_block`, `query(..., block_hash=...)`) and subxt 0.51 (dynamic
//! `at_block` extrinsics and storage) read every recorded block and balance back — from the node,
//! and from two stateless `archiver rpc --stateless` replicas that hold nothing but the config.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use archiver_cli::cluster::{start_hosters, write_cluster_config, HosterProcess};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::HttpClient;
use node_plugin::node::RECENT_STATES_MAX;
use serde_json::{json, Value};

use common::{Served, EXE};

const SEGMENT_BYTES: u64 = 64 * 1024;
const RETENTION: u64 = 60;

fn clients_dir() -> PathBuf {
    std::env::var_os("POA_CLIENTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/poa-archiver/clients")
        })
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Runs one client script; it prints one JSON summary line. Returns the summary.
fn client(program: &Path, script: &str, args: &[&str]) -> Value {
    let out = Command::new(program)
        .arg(scripts().join(script))
        .args(args)
        .env("POA_CLIENTS_DIR", clients_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "{script} {args:?}: no summary line\nstdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert_eq!(
        summary["ok"],
        json!(true),
        "{script} {args:?}: {summary}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    summary
}

fn polkadot(args: &[&str]) -> Value {
    client(Path::new("node"), "polkadot_api.mjs", args)
}

fn substrate_interface(args: &[&str]) -> Value {
    client(
        &clients_dir().join("venv/bin/python"),
        "substrate_api.py",
        args,
    )
}

/// subxt's dynamic API reads each recorded block: the extrinsic's pallet and call, and the
/// signer's nonce and free balance at that block.
fn subxt(ws: &str, records: &[Value]) {
    let exe = clients_dir().join("subxt-target/debug/subxt-check");
    for r in records {
        let number = r["number"].as_u64().unwrap().to_string();
        let signer = r["signer"].as_str().unwrap();
        let out = Command::new(&exe)
            .args([ws, number.as_str(), signer])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "subxt-check #{number}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got["hash"], r["hash"], "subxt #{number}");
        let x = &got["extrinsics"][r["index"].as_u64().unwrap() as usize];
        assert_eq!(x["pallet"], json!("Balances"), "subxt #{number}: {x}");
        let call = x["call"].as_str().unwrap().replace('_', "");
        assert_eq!(
            call,
            r["method"].as_str().unwrap().to_lowercase(),
            "subxt #{number}"
        );
        assert!(
            x["fields"]
                .as_str()
                .unwrap()
                .contains(r["args"][1].as_str().unwrap()),
            "subxt #{number}: {x}"
        );
        let acct = &got["accounts"][signer];
        assert_eq!(acct["nonce"], r["after"]["nonce"], "subxt #{number}");
        assert_eq!(acct["free"], r["after"]["free"], "subxt #{number}");
    }
}

async fn status(c: &HttpClient) -> Value {
    c.request("archiver_status", jsonrpsee::rpc_params![])
        .await
        .unwrap()
}

/// Polls the node's status until `cond` holds, at most `secs` seconds.
async fn wait_status(c: &HttpClient, what: &str, secs: u64, cond: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = status(c).await;
        if cond(&s) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every client reads every record back from the server at `ws`.
fn read_back(ws: &str, records_file: &Path, records: &[Value]) {
    let file = records_file.to_str().unwrap();
    let n = json!(records.len());
    assert_eq!(polkadot(&["check", ws, file])["checked"], n);
    assert_eq!(substrate_interface(&["check", ws, file])["checked"], n);
    subxt(ws, records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_submit_and_read_pruned_history_from_the_node_and_stateless_replicas() {
    common::install_clients();
    let dir = tempfile::tempdir().unwrap();
    let _hosters: Vec<HosterProcess> = start_hosters(Path::new(EXE), dir.path(), 6, 3).unwrap();
    std::fs::create_dir_all(dir.path().join("node")).unwrap();
    let cfg =
        write_cluster_config(&dir.path().join("node"), &_hosters, 4, 2, SEGMENT_BYTES).unwrap();
    let data = dir.path().join("node-db");
    let retention = RETENTION.to_string();
    let node = Served::start(
        &cfg,
        &[
            "node",
            "--data",
            data.to_str().unwrap(),
            "--rpc",
            "127.0.0.1:0",
            "--block-time-ms",
            "100",
            "--retention",
            &retention,
            "--transfers-per-block",
            "2",
        ],
    );
    let nc = node.client();

    // Both clients sign and submit; each records balances as the node answered them then.
    let js = dir.path().join("polkadot.json");
    let py = dir.path().join("substrate.json");
    polkadot(&["submit", &node.ws(), js.to_str().unwrap()]);
    substrate_interface(&["submit", &node.ws(), py.to_str().unwrap()]);
    let mut records: Vec<Value> = serde_json::from_slice(&std::fs::read(&js).unwrap()).unwrap();
    records.extend(serde_json::from_slice::<Vec<Value>>(&std::fs::read(&py).unwrap()).unwrap());
    assert_eq!(records.len(), 6);
    let all = dir.path().join("records.json");
    std::fs::write(&all, serde_json::to_vec(&records).unwrap()).unwrap();
    let last = records
        .iter()
        .map(|r| r["number"].as_u64().unwrap())
        .max()
        .unwrap();

    // The node prunes those blocks once the hosters provably hold them, and moves far enough
    // past them that their state is no longer among its recent states: from here on, state at
    // those blocks comes from the archive's state-history index, on the node as on the replicas.
    wait_status(
        &nc,
        "the recorded blocks pruned and their state discarded",
        600,
        |s| {
            s["node"]["prunedBelow"].as_u64().unwrap_or(0) > last
                && s["node"]["best"].as_u64().unwrap_or(0) > last + RECENT_STATES_MAX as u64 + 8
        },
    )
    .await;
    read_back(&node.ws(), &all, &records);

    // Two stateless replicas from the config alone serve the same pruned history.
    let replicas: Vec<Served> = (0..2)
        .map(|i| {
            let cache = dir.path().join(format!("gateway-{i}"));
            Served::stateless(&cfg, &cache)
        })
        .collect();
    for r in &replicas {
        wait_status(
            &r.client(),
            "the replica holding the recorded blocks",
            300,
            |s| s["archive"]["lastBlock"].as_u64().unwrap_or(0) > last,
        )
        .await;
        read_back(&r.ws(), &all, &records);
    }
}
