//! `archiver challenge`: asks one hoster to prove it still holds a shard; exits non-zero when the
//! proof fails.

use std::path::Path;

use anyhow::Result;
use archiver_cli::challenge::{self, Target};

#[derive(clap::Args)]
pub struct Args {
    /// Hoster name from the config.
    #[arg(long)]
    hoster: String,
    /// Segment (default: a random one the hoster holds a shard of).
    #[arg(long)]
    segment: Option<u64>,
    /// Shard index within the segment.
    #[arg(long)]
    shard: Option<u32>,
    #[arg(long, default_value_t = archiver::audit::CHALLENGE_SAMPLES_DEFAULT)]
    samples: u16,
    /// Responses slower than this fail. Default: the hoster's measured deadline from past
    /// audits (8 × p99 of its passes, 50..=1000 ms), 1000 ms before it has 20 passes.
    #[arg(long)]
    deadline_ms: Option<u64>,
    #[arg(long)]
    json: bool,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    let target = Target {
        segment: a.segment,
        shard: a.shard,
    };
    let outcome = challenge::challenge(config, &a.hoster, target, a.samples, a.deadline_ms).await?;
    challenge::print(&outcome, a.json);
    if !outcome.passed() {
        anyhow::bail!("hoster {} failed the storage challenge", a.hoster);
    }
    Ok(())
}
