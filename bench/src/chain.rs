//! `archiver bench --chain`: the node-integration figures. Follower ingest over JSON-RPC from a
//! reference node, new-validator sync (healthy and with m hosters killed), and history-RPC latency
//! for an archived block (cached and cold from the hosters), each beside the single-stage limit
//! measured in the same run (block verification alone; an RPC round trip that reads nothing).

use std::path::PathBuf;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use node_plugin::node::{check_block, ChainSpec, Node, NodeConfig};
use node_plugin::rpc::{self, ArchiveAccess, Backend};
use node_plugin::runtime::State;

use archiver_cli::{cluster, config_file};

const TARGET_SYNC_MBPS: f64 = 300.0;
const TARGET_RPC_CACHED_P99_MS: f64 = 2.0;
const TARGET_RPC_COLD_P99_MS: f64 = 100.0;
/// Latency samples per RPC figure.
const RPC_SAMPLES: usize = 200;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn timed_calls(
    client: &jsonrpsee::http_client::HttpClient,
    mut before: impl FnMut(usize),
    method: &str,
    hashes: &[String],
) -> Result<(f64, f64)> {
    let mut ms = Vec::with_capacity(RPC_SAMPLES);
    for i in 0..RPC_SAMPLES {
        before(i);
        let h = &hashes[i % hashes.len()];
        let t = Instant::now();
        let _: serde_json::Value = client
            .request(method, rpc_params![h])
            .await
            .with_context(|| format!("{method} {h}"))?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok((percentile(&ms, 0.5), percentile(&ms, 0.99)))
}

/// Runs the chain bench with a chain of `blocks` blocks in `dir` (temporary by default).
pub async fn run(blocks: u64, dir: Option<PathBuf>) -> Result<()> {
    let tmp = tempfile::tempdir().context("create bench directory")?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let exe = cluster::archiver_exe()?;
    println!(
        "chain bench: {blocks} blocks, 4 authorities, 3 transfers per block, justification every 4"
    );

    // The reference node, producing the chain up front (not part of any figure).
    let spec = ChainSpec {
        justification_period: 4,
        ..ChainSpec::dev(4)
    };
    let node = Node::open(
        NodeConfig {
            data_dir: dir.join("node"),
            spec,
            block_time_ms: 0,
            retention: u64::MAX / 2,
            transfers_per_block: 3,
            stop_at: None,
        },
        None,
    )
    .context("open node")?;
    let t = Instant::now();
    for _ in 0..blocks {
        node.produce_block().context("produce block")?;
    }
    println!(
        "  produced in {:.2} s ({:.0} blocks/s authoring)",
        t.elapsed().as_secs_f64(),
        blocks as f64 / t.elapsed().as_secs_f64().max(1e-9)
    );

    // Stage limit: verification + execution of every block, no I/O.
    let genesis_state: Vec<(Vec<u8>, Vec<u8>)> = node.spec().genesis().0.into_iter().collect();
    let mut state = State {
        entries: genesis_state.into_iter().collect(),
    };
    let raw: Vec<(Vec<u8>, Option<Vec<u8>>)> = (1..=blocks)
        .map(|n| node.local_block(n).map(|b| b.unwrap_or_default()))
        .collect::<std::result::Result<_, _>>()
        .context("read blocks")?;
    let chain_bytes: u64 = raw
        .iter()
        .map(|(b, j)| (b.len() + j.as_ref().map_or(0, Vec::len)) as u64)
        .sum();
    let t = Instant::now();
    let mut parent = (0, node.genesis_hash());
    for (b, j) in &raw {
        let c = check_block(node.authorities(), parent, &mut state, b, j.as_deref())
            .context("verify block")?;
        parent = (parent.0 + 1, c.hash);
    }
    let verify_secs = t.elapsed().as_secs_f64();
    let verify_bps = blocks as f64 / verify_secs.max(1e-9);
    println!(
        "  stage limit: verify+execute alone {:.0} blocks/s, {:.1} MB/s ({:.0} bytes/block)",
        verify_bps,
        chain_bytes as f64 / 1e6 / verify_secs.max(1e-9),
        chain_bytes as f64 / blocks as f64
    );
    drop(raw);

    let backend = Backend {
        node: Some(node.clone()),
        archive: None,
        chain_name: node.spec().name.clone(),
    };
    let (addr, server) = rpc::serve("127.0.0.1:0".parse()?, backend).await?;

    // Hosters and the follower's archive.
    let mut hosters = cluster::start_hosters(&exe, &dir.join("hosters"), 6, 3)?;
    let config = cluster::write_cluster_config(&dir, &hosters, 4, 2, 8 * 1024 * 1024)?;
    let archive = config_file::open_archive(&config)?;
    archive.prepare_hosters().await;
    let (mut plugin, handle) = node_plugin::plugin::ArchivePlugin::start(
        archive,
        &tokio::runtime::Handle::current(),
        node_plugin::plugin::ArchivePluginOptions {
            history_cache_bytes: 256 * 1024 * 1024,
            ops: archiver::ops::OpsOptions {
                keep_local_segments: 0,
                ..Default::default()
            },
            ..Default::default()
        },
    );
    let t = Instant::now();
    let url = format!("ws://{addr}");
    {
        let wake = handle.clone();
        let mut sink = node_plugin::follow::ArchiveSink {
            log: plugin.archive_mut().log_mut(),
            first: 0,
            on_sealed: Box::new(move || wake.wake()),
        };
        // Blocks only: this measures block ingest (state listing costs O(state) per block,
        // specs/follow.md).
        let options = node_plugin::follow::FollowOptions {
            stop_at: Some(blocks),
            state_source: Some(node_plugin::follow::state::StateSource::None),
            on_capture: None,
        };
        node_plugin::follow::follow(
            &url,
            &mut sink,
            &options,
            &mut |e| tracing::warn!(error = %e, "bench follower"),
        )
        .await;
    }
    let follow_secs = t.elapsed().as_secs_f64();
    println!(
        "follower ingest over JSON-RPC: {:.0} blocks/s, {:.1} MB/s ({:.2}x the verify stage's block rate)",
        blocks as f64 / follow_secs.max(1e-9),
        chain_bytes as f64 / 1e6 / follow_secs.max(1e-9),
        blocks as f64 / follow_secs.max(1e-9) / verify_bps
    );
    plugin
        .archive_mut()
        .log_mut()
        .seal_active()
        .context("seal")?;
    let store = plugin.archive().store().clone();
    handle.wake();
    let deadline = Instant::now() + Duration::from_secs(600);
    while store.verified_next()? < store.sealed_all()?.len() as u64
        || store.local_segments_pruned_below()? < store.verified_next()?
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "dispersal did not finish: {:?}",
            handle.status()
        );
        handle.wake();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let remote = plugin.archive().remote().clone();

    // Sync, healthy and with m = 2 hosters killed.
    let mut sync_rates = Vec::new();
    for (label, kill) in [("healthy", false), ("2 of 6 hosters down", true)] {
        if kill {
            hosters[0].kill()?;
            hosters[3].kill()?;
        }
        let out = dir.join(format!("sync-{}", sync_rates.len()));
        let t = Instant::now();
        let report = node_plugin::sync::sync(
            &remote,
            &node_plugin::sync::SyncOptions {
                data_dir: out,
                trusted_hash: node.genesis_hash(),
                retention: 1000,
            },
            &mut |_, _, _| {},
        )
        .await
        .context("sync")?;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            report.state_root == node.state_root(),
            "sync reached another state root"
        );
        let mbps = report.bytes as f64 / 1e6 / secs.max(1e-9);
        println!(
            "sync ({label}): {:.0} blocks/s, {mbps:.1} MB/s incl. verification ({:.2}x the verify stage; target {TARGET_SYNC_MBPS} MB/s: {})",
            report.blocks as f64 / secs.max(1e-9),
            report.blocks as f64 / secs.max(1e-9) / verify_bps,
            if mbps >= TARGET_SYNC_MBPS { "met" } else { "MISSED" }
        );
        sync_rates.push(mbps);
    }
    hosters[0].restart(&exe)?;
    hosters[3].restart(&exe)?;

    // History RPC over the archive only (all local segment files pruned: reads go to hosters).
    let view = config_file::open_read_only(&config, 256)?;
    let reader = view.reader().clone();
    let (haddr, hserver) = rpc::serve(
        "127.0.0.1:0".parse()?,
        Backend {
            node: None,
            archive: Some(ArchiveAccess {
                reader: reader.clone(),
            }),
            chain_name: node.spec().name.clone(),
        },
    )
    .await?;
    let client =
        jsonrpsee::http_client::HttpClientBuilder::default().build(format!("http://{haddr}"))?;
    let mut hashes = Vec::new();
    for i in 0..RPC_SAMPLES as u64 {
        let n = 1 + (i * 7919) % blocks;
        let h = node.header(n)?.context("header")?.hash();
        hashes.push(rpc::hex0x(&h));
    }
    // system_name ignores its parameter: the round trip with nothing read.
    let (floor50, floor99) = timed_calls(&client, |_| {}, "system_name", &hashes[..1]).await?;
    let (cold50, cold99) =
        timed_calls(&client, |_| reader.clear_cache(), "chain_getBlock", &hashes).await?;
    let (hot50, hot99) = timed_calls(&client, |_| {}, "chain_getBlock", &hashes[..1]).await?;
    println!("history RPC chain_getBlock on an archived block (HTTP, {RPC_SAMPLES} samples):");
    println!("  round-trip floor (system_name): p50 {floor50:.3} ms, p99 {floor99:.3} ms");
    println!(
        "  cached: p50 {hot50:.3} ms, p99 {hot99:.3} ms (target p99 <= {TARGET_RPC_CACHED_P99_MS} ms: {})",
        if hot99 <= TARGET_RPC_CACHED_P99_MS { "met" } else { "MISSED" }
    );
    println!(
        "  cold (segment rebuilt from hosters): p50 {cold50:.3} ms, p99 {cold99:.3} ms (target p99 <= {TARGET_RPC_COLD_P99_MS} ms: {})",
        if cold99 <= TARGET_RPC_COLD_P99_MS { "met" } else { "MISSED" }
    );
    let _ = hserver.stop();
    let _ = server.stop();
    drop(plugin);

    // Historical state (issue 12): the state-history index over a transfer-like chain of the
    // same length, every segment pruned to the hosters.
    let history = crate::state_history::run(blocks.max(2), Some(dir.join("state-history")))
        .await
        .context("historical-state bench")?;
    println!("{history}");
    Ok(())
}
