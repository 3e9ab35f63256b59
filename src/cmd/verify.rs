//! `archiver verify`: re-reads the local log and checks it against the catalog.

use std::path::Path;

use anyhow::{Context, Result};
use archiver_cli::config_file::open_archive;

pub async fn run(config: &Path) -> Result<()> {
    let archive = open_archive(config)?;
    let blocks = archive.log().verify().context("verify log")?;
    let last = archive.log().last().map(|l| l.0);
    println!(
        "log verified: {blocks} blocks, last {}",
        last.map_or("-".into(), |n| n.to_string())
    );
    Ok(())
}
