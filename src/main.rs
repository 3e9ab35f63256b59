//! `archiver`: the one command that drives the archive — config, embedded hoster, ingest, dispersal,
//! restore, repair, status, demo and bench. Clap definitions and dispatch only: each subcommand is
//! a module of `cmd/`, and the work is in the library crates.

mod cmd;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "archiver",
    version,
    about = "Quantum-safe history archiver for Proof-of-Authority chains"
)]
struct Cli {
    /// Config file (written by `archiver init`).
    #[arg(
        long,
        global = true,
        env = "ARCHIVER_CONFIG",
        default_value = "archiver.toml"
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a new config with a freshly generated master key (file mode 0600).
    Init(cmd::init::Args),
    /// Run an embedded 0-db-compatible hoster.
    Hoster(cmd::hoster::Args),
    /// Add, drain, remove or list the archive's hosters.
    Hosters(cmd::hosters::Args),
    /// Keep the archive current and healthy (dispersal, read-back, audits, self-healing repair,
    /// drains, orphan GC) without a node: the operations service alone.
    Serve(cmd::serve::Args),
    /// Delete orphan shards (failed or superseded uploads) on every hoster now.
    Gc,
    /// Append synthetic Substrate blocks and disperse (demos, benchmarks, crash tests; a real chain
    /// is archived by `node` or `follow`).
    Ingest(cmd::ingest::Args),
    /// Seal the open segment now.
    Seal,
    /// Disperse every sealed segment not yet dispersed.
    Disperse,
    /// Rebuild history from the hosters alone (needs only the config).
    Restore(cmd::restore::Args),
    /// Bring every segment back to k+m shards on live hosters.
    Repair(cmd::repair::Args),
    /// Delete local segment files the hosters provably hold: each dispersed segment is first read
    /// back (manifest and all k+m shards checked); the newest N verified ones stay local.
    Prune(cmd::prune::Args),
    /// Mount the whole history read-only as files (`ls`, `cat`, `grep`); Ctrl-C or SIGTERM
    /// unmounts. Pruned blocks are fetched from the hosters on demand.
    Mount(cmd::mount::Args),
    /// Hosters, segments and watermarks.
    Status(cmd::status::Args),
    /// Re-read the local log and check it against the catalog.
    Verify,
    /// End to end on this machine: 6 embedded hosters, ingest, kill 2, restore, compare.
    Demo(cmd::demo::Args),
    /// Run the reference PoA node (Aura + GRANDPA-style finality, transfers, state in RocksDB),
    /// archiving in-process to the config's archive and pruning behind it.
    Node(cmd::node::Args),
    /// Archive a node reached only over JSON-RPC (finalized blocks, gaps filled, reconnecting).
    Follow(cmd::follow::Args),
    /// Serve the archived history over Substrate-compatible JSON-RPC (reads the archive beside a
    /// running node or follower).
    Rpc(cmd::rpc::Args),
    /// New validator: rebuild and verify a node database from the hosters (config + trusted hash).
    Sync(cmd::sync::Args),
    /// Prover sidecar beside a hoster running real 0-db (which cannot answer challenges itself):
    /// answers `PROVE` from the shards in that 0-db, with this hoster's identity.
    Prover(cmd::prover::Args),
    /// Ask a hoster to prove it still holds a shard (nonce-bound Merkle samples, signed);
    /// exits non-zero when the proof fails.
    Challenge(cmd::challenge::Args),
    /// Challenge random shards across all hosters; results go to `status`, failures to `repair`.
    Audit(cmd::audit::Args),
    /// Throughput and memory figures against the single-stage limits measured in the same run
    /// (runs `archiver-bench`; `archiver bench --help` lists its options).
    #[command(disable_help_flag = true)]
    Bench(cmd::bench::Args),
}

fn main() -> std::process::ExitCode {
    archiver_cli::tune_allocator();
    let cli = Cli::parse();
    // demo kills hosters on purpose: its expected warnings would drown the report.
    // fuser logs unimplemented calls and an unmount already done as warnings: noise here.
    archiver_cli::init_tracing(match cli.command {
        Command::Demo(_) | Command::Bench(_) => "error",
        _ => "warn,fuser=error",
    });
    archiver_cli::run_to_exit(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    let config = cli.config.as_path();
    match cli.command {
        Command::Init(a) => cmd::init::run(config, a).await,
        Command::Hoster(a) => cmd::hoster::run(config, a).await,
        Command::Hosters(a) => cmd::hosters::run(config, a).await,
        Command::Serve(a) => cmd::serve::run(config, a).await,
        Command::Gc => cmd::gc::run(config).await,
        Command::Ingest(a) => cmd::ingest::run(config, a).await,
        Command::Seal => cmd::seal::run(config).await,
        Command::Disperse => cmd::disperse::run(config).await,
        Command::Restore(a) => cmd::restore::run(config, a).await,
        Command::Repair(a) => cmd::repair::run(config, a).await,
        Command::Prune(a) => cmd::prune::run(config, a).await,
        Command::Mount(a) => cmd::mount::run(config, a).await,
        Command::Status(a) => cmd::status::run(config, a).await,
        Command::Verify => cmd::verify::run(config).await,
        Command::Demo(a) => cmd::demo::run(config, a).await,
        Command::Node(a) => cmd::node::run(config, a).await,
        Command::Follow(a) => cmd::follow::run(config, a).await,
        Command::Rpc(a) => cmd::rpc::run(config, a).await,
        Command::Sync(a) => cmd::sync::run(config, a).await,
        Command::Prover(a) => cmd::prover::run(config, a).await,
        Command::Challenge(a) => cmd::challenge::run(config, a).await,
        Command::Audit(a) => cmd::audit::run(config, a).await,
        Command::Bench(a) => cmd::bench::run(config, a).await,
    }
}
