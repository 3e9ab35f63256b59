//! `archiver restore`: rebuilds history from the hosters alone (needs only the config).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use archiver::RestoreFormat;
use clap::ValueEnum;

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Segments,
    Blocks,
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    from: Option<u64>,
    #[arg(long)]
    to: Option<u64>,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum, default_value = "segments")]
    format: FormatArg,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    let remote = archiver_cli::config_file::open_remote(config)?;
    let format = match a.format {
        FormatArg::Segments => RestoreFormat::Segments,
        FormatArg::Blocks => RestoreFormat::Blocks,
    };
    let started = std::time::Instant::now();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} segments {pos}/{len} {msg} [{elapsed_precise}, eta {eta}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = archiver::restore(
        &remote,
        a.from,
        a.to,
        &a.out,
        format,
        |done, total, bytes| {
            bar.set_length(total);
            bar.set_position(done);
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{:.0} MB, {:.0} MB/s",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / secs
            ));
        },
    )
    .await
    .context("restore")?;
    bar.finish_and_clear();
    print_report(&report, &a.out, started.elapsed().as_secs_f64());
    if report.lost.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} segment(s) could not be restored (listed above); everything else was",
            report.lost.len()
        )
    }
}

/// One summary line, then the shard problems routed around (at most 10) and every lost segment.
fn print_report(report: &archiver::RestoreReport, out: &Path, secs: f64) {
    println!(
        "restored blocks {}..={} ({} blocks, {} segments, {:.1} MB) into {} in {:.2} s ({:.0} MB/s); {} segments rebuilt from parity, {} shard problems routed around",
        report.first_block.map_or("-".into(), |n| n.to_string()),
        report.last_block.map_or("-".into(), |n| n.to_string()),
        report.blocks,
        report.segments,
        report.bytes as f64 / 1e6,
        out.display(),
        secs,
        report.bytes as f64 / 1e6 / secs.max(1e-9),
        report.segments_reconstructed,
        report.shard_failures.len()
    );
    for (seg, shard, hoster, reason) in report.shard_failures.iter().take(10) {
        println!("  segment {seg} shard {shard} on {hoster}: {reason}");
    }
    for lost in &report.lost {
        println!("  LOST {lost}");
    }
}
