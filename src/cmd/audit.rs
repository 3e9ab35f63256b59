//! `archiver audit`: challenges random shards across all hosters; results go to `status`,
//! failures to `repair`.

use std::path::Path;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Challenges to run (default: 1 unless --every is given).
    #[arg(long)]
    rounds: Option<u64>,
    /// Keep auditing, one challenge per this interval (`500ms`, `30s`, `5m`, `1h`), until
    /// interrupted.
    #[arg(long, value_parser = humantime::parse_duration)]
    every: Option<std::time::Duration>,
    #[arg(long, default_value_t = archiver::audit::CHALLENGE_SAMPLES_DEFAULT)]
    samples: u16,
    /// Responses slower than this fail. Default: measured per hoster (8 × its p99 over past
    /// passes, 50..=1000 ms) once it has 20 passes, 1000 ms before.
    #[arg(long)]
    deadline_ms: Option<u64>,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    let every_ms = a
        .every
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
    let rounds = match (a.rounds, every_ms) {
        (None, None) => Some(1),
        (r, _) => r,
    };
    let (_, failed) =
        archiver_cli::challenge::audit(config, rounds, every_ms, a.samples, a.deadline_ms).await?;
    if failed > 0 {
        anyhow::bail!("{failed} challenge(s) failed");
    }
    Ok(())
}
