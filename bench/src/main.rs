//! `archiver-bench`: throughput and memory figures against the single-stage limits measured in
//! the same run. `archiver bench ARGS` runs this binary with the same arguments.

use std::path::PathBuf;

use clap::Parser;

/// Throughput and memory figures against the single-stage limits measured in the same run.
#[derive(Parser)]
#[command(name = "archiver bench", version)]
struct Args {
    /// MiB of block data per ingest run.
    #[arg(long, default_value_t = 512)]
    mib: u64,
    /// Work directory (temporary by default).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Only measure the single-stage limits.
    #[arg(long)]
    stages_only: bool,
    /// The node-integration bench instead: follower ingest, sync, history-RPC latency.
    #[arg(long)]
    chain: bool,
    /// The storage-challenge bench instead: proof generation, verification, bytes, rounds/s.
    #[arg(long)]
    challenges: bool,
    /// The FUSE-mount bench instead: cold and hot read MB/s of every block file and `find`
    /// over a history of --mib MiB (use ≥ 1024), against the raw FUSE ceiling.
    #[arg(long)]
    mount: bool,
    /// The hoster write bench instead: MB/s of 64 KiB SETs with 1, 4 and 16 clients, fsync
    /// before every reply (default) against --no-sync, --mib MiB per run (use ~128).
    #[arg(long)]
    hoster_writes: bool,
    /// The self-healing bench instead: detection time of a SIGKILLed hoster and rebuild MB/s of
    /// its shard data, 7 hosters at 4+2, --mib MiB archived (use ~256).
    #[arg(long)]
    heal: bool,
    /// With --heal: the loss bound instead of the default (about a minute).
    #[arg(long)]
    lost_after_ms: Option<u64>,
    /// Blocks in the chain bench.
    #[arg(long, default_value_t = 20_000)]
    blocks: u64,
}

async fn run(a: Args) -> anyhow::Result<()> {
    use archiver_bench::{chain, challenges, heal, hoster_writes, mount, pipeline};
    if a.heal {
        heal::run(a.mib, a.dir, a.lost_after_ms).await
    } else if a.mount {
        mount::run(a.mib, a.dir).await
    } else if a.challenges {
        challenges::run().await
    } else if a.hoster_writes {
        hoster_writes::run(a.mib, a.dir).await
    } else if a.chain {
        chain::run(a.blocks, a.dir).await
    } else {
        pipeline::run(a.mib, a.dir, a.stages_only).await
    }
}

fn main() -> std::process::ExitCode {
    archiver_cli::tune_allocator();
    let args = Args::parse();
    // The benches kill hosters on purpose: their expected warnings would drown the report.
    archiver_cli::init_tracing("error");
    archiver_cli::run_to_exit(run(args))
}
