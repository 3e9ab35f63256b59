//! `archiver mount`: mounts the whole history read-only as files until SIGINT/SIGTERM, beside
//! the writer or (`--stateless`) from the hosters with nothing but the config.

use std::path::{Path, PathBuf};

use anyhow::Result;
use archiver_cli::chain::GatewayArgs;

#[derive(clap::Args)]
pub struct Args {
    /// An existing empty directory.
    mountpoint: PathBuf,
    /// Bound of the cache of segments rebuilt from the hosters, MiB.
    #[arg(long, default_value_t = 256)]
    cache_mib: usize,
    #[command(flatten)]
    gateway: GatewayFlags,
}

/// The stateless gateway's flags, shared by `rpc` and `mount`.
#[derive(clap::Args)]
pub struct GatewayFlags {
    /// Read everything from the hosters (config alone, no local archive): a derived catalog is
    /// built in a cache directory and new segments are followed as they are dispersed.
    #[arg(long)]
    stateless: bool,
    /// Keep the gateway's catalog here (private, reused on restart); default: a fresh private
    /// directory under $XDG_CACHE_HOME or the temp dir, removed on exit.
    #[arg(long, requires = "stateless", value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// How often to look for newly dispersed segments on the hosters.
    #[arg(long, requires = "stateless", default_value_t = archiver::gateway::GATEWAY_POLL_INTERVAL_MS)]
    poll_interval_ms: u64,
}

impl GatewayFlags {
    /// The gateway's settings when `--stateless` was given.
    pub fn args(&self) -> Option<GatewayArgs> {
        self.stateless.then(|| GatewayArgs {
            cache_dir: self.cache_dir.clone(),
            poll_interval_ms: self.poll_interval_ms,
        })
    }
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    archiver_cli::mount::run(config, &a.mountpoint, a.cache_mib, a.gateway.args()).await
}
