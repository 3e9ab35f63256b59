//! `archiver mount`: mounts the whole history read-only as files until SIGINT/SIGTERM.

use std::path::{Path, PathBuf};

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// An existing empty directory.
    mountpoint: PathBuf,
    /// Bound of the cache of segments rebuilt from the hosters, MiB.
    #[arg(long, default_value_t = 256)]
    cache_mib: usize,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    archiver_cli::mount::run(config, &a.mountpoint, a.cache_mib).await
}
