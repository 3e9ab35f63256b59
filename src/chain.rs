//! The chain-facing commands: the reference node (with the archive plugin in-process), the RPC
//! follower, the history RPC server and new-validator sync. Wiring only: the work is in
//! `node-plugin` and `archiver`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use node_plugin::node::{ChainSpec, Node, NodeConfig};
use node_plugin::plugin::{ArchivePlugin, ArchivePluginHandle, ArchivePluginOptions};
use node_plugin::rpc::{self, ArchiveAccess, Backend};

use crate::config_file::{open_archive, open_remote, ConfigFile};

/// `archiver node` settings.
#[derive(Clone, Debug)]
pub struct NodeArgs {
    pub data: PathBuf,
    pub rpc: SocketAddr,
    pub spec: ChainSpec,
    pub block_time_ms: u64,
    pub retention: u64,
    pub transfers_per_block: u32,
    pub stop_at: Option<u64>,
    /// Archive in-process (the config's archive).
    pub archive: bool,
    pub keep_local_segments: u64,
    pub cache_mib: usize,
    /// Serve Prometheus metrics here.
    pub metrics: Option<SocketAddr>,
    /// Import from this node instead of authoring.
    pub follow: Option<String>,
    /// Sync from the archive first, trusting this hash.
    pub sync_from_archive: Option<[u8; 32]>,
}

pub fn parse_hash(s: &str) -> Result<[u8; 32]> {
    let b = rpc::unhex(s).map_err(anyhow::Error::msg)?;
    <[u8; 32]>::try_from(b.as_slice()).map_err(|_| anyhow::anyhow!("{s}: a block hash is 32 bytes"))
}

/// The archive plugin over the config's archive, running the operations service with the
/// config's `[ops]` settings (`keep` overriding its local-segment count) and auditing every hoster
/// with a `public_key`.
async fn plugin_for(
    config: &Path,
    keep: u64,
    cache_mib: usize,
    metrics: Option<archiver::ArchiveMetrics>,
) -> Result<(ArchivePlugin, ArchivePluginHandle)> {
    let archive = open_archive(config)?;
    for (name, e) in archive.prepare_hosters().await {
        tracing::warn!(hoster = %name, error = %e, "hoster not prepared (dispersal retries)");
    }
    let mut ops = archive.config().ops.clone();
    ops.keep_local_segments = keep;
    Ok(ArchivePlugin::start(
        archive,
        &tokio::runtime::Handle::current(),
        ArchivePluginOptions {
            history_cache_bytes: cache_mib * 1024 * 1024,
            ops,
            metrics,
        },
    ))
}

/// `archiver serve`: the operations service over the config's archive until SIGINT/SIGTERM;
/// returns what it last saw.
pub async fn run_serve(
    config: &Path,
    keep: u64,
    metrics: Option<SocketAddr>,
) -> Result<archiver::ops::OpsStatus> {
    let metrics = crate::metrics::archive_metrics(metrics).await?;
    let archive = open_archive(config)?;
    for (name, e) in archive.prepare_hosters().await {
        tracing::warn!(hoster = %name, error = %e, "hoster not prepared (dispersal retries)");
    }
    let mut ops = archive.config().ops.clone();
    ops.keep_local_segments = keep;
    let clock = std::sync::Arc::new(archiver::ops::SystemClock::new());
    let mut service = archiver::ops::OpsService::for_archive(&archive, ops, clock);
    if let Some(m) = metrics {
        service = service.with_metrics(m);
    }
    let (task, handle) = service.spawn(&tokio::runtime::Handle::current());
    crate::announce(format_args!(
        "serving the archive in {}",
        archive.config().data_dir.display()
    ));
    shutdown_signal().await;
    task.abort();
    Ok(handle.status())
}

/// Runs the node until SIGINT/SIGTERM (or until `stop_at` with a follower).
pub async fn run_node(config: &Path, args: NodeArgs) -> Result<()> {
    if let Some(trusted) = args.sync_from_archive {
        run_sync(config, &args.data, trusted, args.retention, false).await?;
    }
    let metrics = crate::metrics::archive_metrics(args.metrics).await?;
    let (plugin, handle) = if args.archive {
        let (p, h) = plugin_for(
            config,
            args.keep_local_segments,
            args.cache_mib,
            metrics.clone(),
        )
        .await?;
        (Some(p), Some(h))
    } else {
        (None, None)
    };
    let cfg = NodeConfig {
        data_dir: args.data.clone(),
        spec: args.spec.clone(),
        block_time_ms: args.block_time_ms,
        retention: args.retention,
        transfers_per_block: args.transfers_per_block,
        stop_at: args.stop_at,
    };
    let node = tokio::task::spawn_blocking(move || {
        Node::open(
            cfg,
            plugin.map(|p| Box::new(p) as Box<dyn node_plugin::node::FinalityPlugin>),
        )
    })
    .await
    .context("open node")?
    .context("open node")?;
    let backend = Backend {
        node: Some(node.clone()),
        archive: handle.as_ref().map(|h| ArchiveAccess {
            reader: h.reader.clone(),
        }),
        chain_name: node.spec().name.clone(),
    };
    let (addr, server) = rpc::serve_with(args.rpc, backend, rpc::RpcOptions { metrics })
        .await
        .context("start RPC server")?;
    crate::announce(format_args!(
        "genesis 0x{}",
        hex::encode(node.genesis_hash())
    ));
    crate::announce(format_args!("rpc listening on {addr}"));
    let worker = {
        let node = node.clone();
        match args.follow.clone() {
            None => {
                tokio::task::spawn_blocking(move || node.run_author().map_err(anyhow::Error::from))
            }
            Some(url) => tokio::spawn(async move {
                let mut sink = node_plugin::follow::NodeSink(node);
                node_plugin::follow::follow(
                    &url,
                    &mut sink,
                    &node_plugin::follow::FollowOptions::default(),
                    &mut |e| tracing::warn!(error = %e, "following the live node (retrying)"),
                )
                .await;
                Ok(())
            }),
        }
    };
    let result = tokio::select! {
        r = worker => r.context("node worker").and_then(|r| r),
        _ = shutdown_signal() => {
            node.stop();
            Ok(())
        }
    };
    let _ = server.stop();
    result
}

pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// What `archiver follow` was asked to do.
pub struct FollowArgs<'a> {
    pub url: &'a str,
    /// Start an empty archive at this block (the operator vouches for its hash).
    pub from: Option<[u8; 32]>,
    pub options: node_plugin::follow::FollowOptions,
    pub flush: bool,
    pub metrics: Option<SocketAddr>,
}

/// The block an empty archive starts at: 0, or the trusted block. A non-empty archive must
/// already start at the trusted block (a rerun), else it is refused.
async fn follow_start(log: &archiver::BlockLog, url: &str, from: Option<[u8; 32]>) -> Result<u64> {
    let Some(hash) = from else { return Ok(0) };
    let number = node_plugin::follow::trusted_number(url, &hash)
        .await
        .context("resolve the trusted block")?;
    let first = log
        .store()
        .first_number()
        .context("read the archive's first block")?;
    if let Some(first) = first {
        let held = log.get(number).context("read the archive")?.map(|r| r.hash);
        if first != number || held != Some(hash) {
            anyhow::bail!(
                "the archive already starts at block {first}; --from 0x{} (block {number}) only starts an empty archive",
                hex::encode(hash)
            );
        }
    }
    Ok(number)
}

/// `archiver follow`: archives a node reached over RPC.
pub async fn run_follow(config: &Path, args: FollowArgs<'_>) -> Result<()> {
    let metrics = crate::metrics::archive_metrics(args.metrics).await?;
    let (mut plugin, handle) = plugin_for(config, u64::MAX, 64, metrics).await?;
    let first = follow_start(plugin.archive().log(), args.url, args.from).await?;
    let mut options = args.options;
    options.on_capture = Some(std::sync::Arc::new(|line: &str| {
        crate::announce(format_args!("{line}"))
    }));
    let started = std::time::Instant::now();
    let wake = handle.clone();
    let fetched = {
        let mut sink = node_plugin::follow::ArchiveSink {
            log: plugin.archive_mut().log_mut(),
            first,
            on_sealed: Box::new(move || wake.wake()),
        };
        let mut on_error = |e: &node_plugin::follow::FollowError| tracing::warn!(error = %e, "following the node (reconnecting)");
        let follow = node_plugin::follow::follow(args.url, &mut sink, &options, &mut on_error);
        tokio::select! {
            n = follow => n,
            _ = shutdown_signal() => 0,
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let last = plugin.archive().log().last().map(|l| l.0);
    println!(
        "followed {fetched} blocks in {secs:.2} s ({:.0} blocks/s); archived up to {last:?}",
        fetched as f64 / secs.max(1e-9)
    );
    if args.flush {
        plugin
            .archive_mut()
            .log_mut()
            .seal_active()
            .context("seal segment")?;
        let store = plugin.archive().store().clone();
        handle.wake();
        // Wait until the maintenance task has dispersed and verified every sealed segment.
        loop {
            let sealed = store.sealed_all().context("read segments")?.len() as u64;
            if store.verified_next().context("read watermark")? >= sealed {
                break;
            }
            if let Some(e) = handle.status().last_error {
                tracing::warn!(error = %e, "waiting for dispersal");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!("flushed: every segment dispersed and verified");
    }
    Ok(())
}

/// `archiver rpc`: the history RPC over the archive alone.
pub async fn run_rpc(
    config: &Path,
    listen: SocketAddr,
    cache_mib: usize,
    metrics: Option<SocketAddr>,
) -> Result<()> {
    let metrics = crate::metrics::archive_metrics(metrics).await?;
    // Held until the server stops: it owns the secondary store's scratch directory.
    let view = ConfigFile::load(config)?.into_read_only_with(cache_mib, metrics.clone())?;
    serve_history(view.reader().clone(), listen, metrics).await
}

/// `--stateless` of `archiver rpc` and `archiver mount`: where the gateway keeps its catalog
/// and how often it looks for new segments.
#[derive(Clone, Debug)]
pub struct GatewayArgs {
    /// Kept catalog directory; None: a fresh private one per run, removed on exit.
    pub cache_dir: Option<PathBuf>,
    pub poll_interval_ms: u64,
}

/// A running stateless gateway: the catalog caught up with the hosters and a task following them.
pub struct RunningGateway {
    pub gateway: std::sync::Arc<archiver::Gateway>,
    follow: tokio::task::JoinHandle<()>,
}

impl RunningGateway {
    /// Stops following; the catalog directory goes when the last reader lets go of it.
    pub async fn stop(self) {
        self.follow.abort();
        let _ = self.follow.await;
    }
}

/// Opens a stateless gateway from the config alone (hosters + key; the data directory is never
/// touched), catalogs what the hosters hold, prints how long that took, and follows them.
pub async fn start_gateway(
    config: &Path,
    args: &GatewayArgs,
    cache_mib: usize,
    metrics: Option<archiver::ArchiveMetrics>,
) -> Result<RunningGateway> {
    let remote = open_remote(config)?;
    let gateway = archiver::Gateway::open(
        remote,
        args.cache_dir.as_deref(),
        cache_mib.saturating_mul(1024 * 1024),
        metrics,
    )
    .with_context(|| match &args.cache_dir {
        // RocksDB locks its directory: two replicas cannot share one.
        Some(dir) => format!(
            "open the gateway's catalog in {} (each replica needs its own --cache-dir)",
            dir.display()
        ),
        None => "open the gateway's catalog".to_string(),
    })?;
    let gateway = std::sync::Arc::new(gateway);
    match gateway.catch_up().await {
        Ok(r) => crate::announce(format_args!(
            "cataloged {} segments ({} blocks) from the hosters in {:.2} s ({:.1} ms per segment) into {}",
            r.segments,
            r.blocks,
            r.secs,
            r.secs * 1e3 / r.segments.max(1) as f64,
            gateway.dir().display()
        )),
        // What is cataloged is served; the follow loop retries the rest.
        Err(e) if gateway.segments().unwrap_or(0) > 0 => {
            tracing::warn!(error = %e, "gateway: cataloging stopped early (retrying while serving)")
        }
        Err(e) => return Err(e).context("catalog the archive from the hosters"),
    }
    crate::release_freed_memory();
    let follow = gateway.spawn_follow(args.poll_interval_ms);
    Ok(RunningGateway { gateway, follow })
}

/// `archiver rpc --stateless`: the history RPC from the hosters alone.
pub async fn run_rpc_stateless(
    config: &Path,
    listen: SocketAddr,
    cache_mib: usize,
    metrics: Option<SocketAddr>,
    args: &GatewayArgs,
) -> Result<()> {
    let metrics = crate::metrics::archive_metrics(metrics).await?;
    let running = start_gateway(config, args, cache_mib, metrics.clone()).await?;
    let served = serve_history(running.gateway.reader().clone(), listen, metrics).await;
    running.stop().await;
    served
}

/// Serves the history RPC over `reader` (and the store behind it) until SIGINT/SIGTERM.
async fn serve_history(
    reader: std::sync::Arc<archiver::HistoryReader>,
    listen: SocketAddr,
    metrics: Option<archiver::ArchiveMetrics>,
) -> Result<()> {
    let chain_name = reader
        .store()
        .state(node_plugin::node::CHAIN_SPEC_KEY)
        .ok()
        .flatten()
        .and_then(|raw| serde_json::from_slice::<ChainSpec>(&raw).ok())
        .map_or_else(|| "unknown".to_string(), |s| s.name);
    let backend = Backend {
        node: None,
        archive: Some(ArchiveAccess { reader }),
        chain_name,
    };
    let (addr, server) = rpc::serve_with(listen, backend, rpc::RpcOptions { metrics })
        .await
        .context("start RPC server")?;
    crate::announce(format_args!("rpc listening on {addr}"));
    shutdown_signal().await;
    let _ = server.stop();
    server.stopped().await;
    Ok(())
}

/// `archiver sync`: rebuild a node database from the hosters.
pub async fn run_sync(
    config: &Path,
    data: &Path,
    trusted: [u8; 32],
    retention: u64,
    print_progress: bool,
) -> Result<()> {
    let remote = open_remote(config)?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "sync {bar:30} {pos}/{len} blocks  {per_sec}  {msg}  ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let report = node_plugin::sync::sync(
        &remote,
        &node_plugin::sync::SyncOptions {
            data_dir: data.to_path_buf(),
            trusted_hash: trusted,
            retention,
        },
        &mut |blocks, last, bytes| {
            if print_progress {
                crate::announce(format_args!("progress {blocks} {last}"));
            }
            bar.set_length(last + 1);
            bar.set_position(blocks);
            bar.set_message(format!(
                "{:.1} MB/s",
                bytes as f64 / 1e6 / started.elapsed().as_secs_f64().max(1e-9)
            ));
        },
    )
    .await;
    bar.finish_and_clear();
    let report = report.context("sync from the archive")?;
    let secs = started.elapsed().as_secs_f64();
    if report.head == 0 {
        bail!("sync imported nothing beyond genesis");
    }
    println!(
        "synced {} blocks ({:.1} MB) in {secs:.2} s: {:.0} blocks/s, {:.1} MB/s; resumed from {}; head {} 0x{}; state root 0x{}; trusted hash at block {}",
        report.blocks,
        report.bytes as f64 / 1e6,
        report.blocks as f64 / secs.max(1e-9),
        report.bytes as f64 / 1e6 / secs.max(1e-9),
        report.resumed_from,
        report.head,
        hex::encode(report.head_hash),
        hex::encode(report.state_root),
        report.trusted_number,
    );
    Ok(())
}
