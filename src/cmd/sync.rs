//! `archiver sync`: a new validator's node database, rebuilt and verified from the hosters.

use std::path::{Path, PathBuf};

use anyhow::Result;
use archiver_cli::chain;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    data: PathBuf,
    #[arg(long)]
    trusted_hash: String,
    #[arg(long, default_value_t = 1000)]
    retention: u64,
    /// Print `progress <blocks> <last>` lines (for scripts; the bar shows on a terminal).
    #[arg(long)]
    print_progress: bool,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    chain::run_sync(
        config,
        &a.data,
        chain::parse_hash(&a.trusted_hash)?,
        a.retention,
        a.print_progress,
    )
    .await
}
