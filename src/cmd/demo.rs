//! `archiver demo`: end to end on this machine (6 embedded hosters, ingest, kill 2, restore,
//! compare).

use std::path::{Path, PathBuf};

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// MiB of block data to ingest.
    #[arg(long, default_value_t = 96)]
    mib: u64,
    /// Work directory (a temporary one by default, removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub async fn run(_config: &Path, a: Args) -> Result<()> {
    archiver_cli::demo::run(a.mib, a.dir).await
}
