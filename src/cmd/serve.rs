//! `archiver serve`: the operations service alone over the config's archive (dispersal,
//! read-back, pruning of local files, health, audits, repair, drains, GC) until SIGINT/SIGTERM.

use std::path::Path;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Verified segments kept as local files.
    #[arg(long, default_value_t = 2)]
    keep_local_segments: u64,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9615).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    let status = archiver_cli::chain::run_serve(config, a.keep_local_segments, a.metrics).await?;
    println!(
        "served {} passes: {} shards rebuilt, {} orphan shards collected, lost hosters {:?}{}",
        status.passes,
        status.repaired_shards,
        status.gc_deleted_shards,
        status.lost,
        status
            .last_error
            .map(|e| format!("; last error: {e}"))
            .unwrap_or_default()
    );
    Ok(())
}
