//! `archiver rpc`: the Substrate-compatible history RPC over the archive alone, beside a running
//! node or follower, or (`--stateless`) from the hosters with nothing but the config.

use std::path::Path;

use anyhow::Result;

use super::mount::GatewayFlags;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:9945")]
    listen: std::net::SocketAddr,
    #[arg(long, default_value_t = 256)]
    cache_mib: usize,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9615).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    #[command(flatten)]
    gateway: GatewayFlags,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    match a.gateway.args() {
        Some(g) => {
            archiver_cli::chain::run_rpc_stateless(config, a.listen, a.cache_mib, a.metrics, &g)
                .await
        }
        None => archiver_cli::chain::run_rpc(config, a.listen, a.cache_mib, a.metrics).await,
    }
}
