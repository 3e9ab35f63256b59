//! `archiver seal`: seals the open segment now.

use std::path::Path;

use anyhow::{Context, Result};
use archiver_cli::config_file::open_archive;

pub async fn run(config: &Path) -> Result<()> {
    let mut archive = open_archive(config)?;
    match archive.log_mut().seal_active().context("seal segment")? {
        Some(id) => println!("sealed segment {id}"),
        None => println!("no open segment with blocks"),
    }
    Ok(())
}
