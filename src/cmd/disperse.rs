//! `archiver disperse`: disperses every sealed segment not yet dispersed.

use std::path::Path;

use anyhow::{Context, Result};
use archiver_cli::config_file::open_archive;

pub async fn run(config: &Path) -> Result<()> {
    let archive = open_archive(config)?;
    archive.prepare_hosters().await;
    let r = archive
        .disperse_pending()
        .await
        .context("disperse segments")?;
    println!(
        "dispersed {} segments ({:.1} MB plain, {:.1} MB stored); under-replicated: {:?}",
        r.segments.len(),
        r.bytes_plain as f64 / 1e6,
        r.bytes_stored as f64 / 1e6,
        r.under_replicated
    );
    Ok(())
}
