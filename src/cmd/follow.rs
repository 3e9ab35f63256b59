//! `archiver follow`: archives a node reached only over JSON-RPC.

use std::path::Path;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// ws://HOST:PORT of the node.
    #[arg(long)]
    node: String,
    /// Stop once this block is archived.
    #[arg(long)]
    stop_at: Option<u64>,
    /// At the end, seal the open segment and wait until everything is dispersed and verified.
    #[arg(long)]
    flush: bool,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9615).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    archiver_cli::chain::run_follow(config, &a.node, a.stop_at, a.flush, a.metrics).await
}
