//! `archiver prune`: deletes local segment files the hosters provably hold. It opens the archive
//! itself, so it cannot run while a node or follower holds it.

use std::path::Path;

use anyhow::{Context, Result};
use archiver_cli::config_file::open_archive;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 0)]
    keep_local_segments: u64,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    let archive = open_archive(config)?;
    let disperser = archive.disperser();
    // Segments verified before a failing one are pruned all the same: the watermark only ever
    // covers segments whose read-back succeeded.
    let verified = disperser.verify_dispersed().await;
    let kept_from = disperser
        .prune_local_segments(a.keep_local_segments)
        .context("prune local segments")?;
    println!("local segment files below {kept_from} deleted");
    let verified = verified.context("verify dispersed segments")?;
    println!("verified segments below {verified}");
    Ok(())
}
