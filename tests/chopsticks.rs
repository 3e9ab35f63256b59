//! `archiver follow` archives a real Substrate runtime: Parity's Asset Hub run by chopsticks
//! (installed by `tests/clients/install.sh`). Its genesis hash is fixed by its spec (its header
//! does not hash to it) and it does not serve `state_getPairs`; the follower takes block 0 as
//! the spec names it and reads the genesis state page by page. Every archived block restores
//! byte for byte as the peer serves it.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use archiver_cli::cluster::{start_hosters, write_cluster_config};
use common::{archiver, install_clients, text, KillOnDrop, EXE};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::http_client::HttpClientBuilder;
use jsonrpsee::rpc_params;
use serde_json::Value;

const BLOCKS: u64 = 24;
/// Seconds the follow may take (it needs about one).
const FOLLOW_TIMEOUT_S: u64 = 120;

fn clients_dir() -> PathBuf {
    std::env::var_os("POA_CLIENTS_DIR").map_or_else(
        || PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/poa-archiver/clients"),
        PathBuf::from,
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_peer(port: u16) -> (KillOnDrop, jsonrpsee::http_client::HttpClient) {
    let peer = clients_dir().join("peer");
    let child = Command::new("node")
        .arg(peer.join("node_modules/.bin/chopsticks"))
        .arg(format!("--genesis={}", peer.join("spec.json").display()))
        .args([
            "--host=127.0.0.1",
            &format!("--port={port}"),
            "--build-block-mode=Manual",
        ])
        .args(["--max-memory-block-count", "10000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let peer = KillOnDrop(child);
    let client = HttpClientBuilder::default()
        .build(format!("http://127.0.0.1:{port}"))
        .unwrap();
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let ready: Result<Value, _> = client.request("chain_getBlockHash", rpc_params![0]).await;
        if ready.is_ok() {
            return (peer, client);
        }
        assert!(
            Instant::now() < until,
            "chopsticks never answered: {ready:?}"
        );
        // A child process gives no readiness signal but its port: poll it.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_archives_a_real_substrate_runtime() {
    install_clients();
    let dir = tempfile::tempdir().unwrap();
    let hosters = start_hosters(Path::new(EXE), &dir.path().join("hosters"), 6, 3).unwrap();
    let config = write_cluster_config(dir.path(), &hosters, 4, 2, 256 * 1024).unwrap();
    let port = free_port();
    let (_peer, client) = start_peer(port).await;
    let _: Value = client
        .request(
            "dev_newBlock",
            rpc_params![serde_json::json!({"count": BLOCKS})],
        )
        .await
        .unwrap();

    // Bounded: a follower that cannot take the peer's blocks retries forever.
    let o = Command::new("timeout")
        .arg(FOLLOW_TIMEOUT_S.to_string())
        .arg(EXE)
        .arg("--config")
        .arg(&config)
        .args(["follow", "--node", &format!("ws://127.0.0.1:{port}")])
        .args(["--stop-at", &BLOCKS.to_string(), "--flush"])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        out.contains(&format!("archived up to Some({BLOCKS})")) && out.contains("flushed"),
        "{out}"
    );

    // A fresh machine restores every block byte for byte as the peer serves it.
    let restored = dir.path().join("restored");
    let o = archiver(
        &config,
        &[
            "restore",
            "--out",
            restored.to_str().unwrap(),
            "--format",
            "blocks",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    for n in 0..=BLOCKS {
        let hash: String = client
            .request("chain_getBlockHash", rpc_params![n])
            .await
            .unwrap();
        let signed: Value = client
            .request("chain_getBlock", rpc_params![hash.clone()])
            .await
            .unwrap();
        let (block, _) = node_plugin::rpc::signed_block_from_json(&signed).unwrap();
        let got = std::fs::read(restored.join("blocks").join(format!("{n:012}.block"))).unwrap();
        assert_eq!(got, block, "block {n} ({hash})");
    }
    drop(hosters);
}
