//! `archiver gc`: deletes orphan shards (failed or superseded uploads) on every hoster now;
//! never a shard a placement names. The operations service also runs it periodically.

use std::path::Path;

use anyhow::{Context, Result};
use archiver_cli::config_file::open_archive;

pub async fn run(config: &Path) -> Result<()> {
    let archive = open_archive(config)?;
    let report = archiver::ops::collect_orphans(&archive.disperser())
        .await
        .context("collect orphan shards")?;
    if let Some(why) = &report.not_run {
        println!("gc not run: {why}");
        return Ok(());
    }
    for (hoster, shards, keys) in &report.deleted {
        println!("{hoster}: {shards} orphan shards deleted ({keys} keys)");
    }
    for (hoster, why) in &report.skipped {
        println!("{hoster}: skipped: {why}");
    }
    println!(
        "{} orphan shards deleted, {} named shards kept",
        report.shards_deleted(),
        report.kept
    );
    Ok(())
}
