//! `archiver follow`: archives a node reached only over JSON-RPC.

use std::path::Path;

use anyhow::{Context, Result};
use node_plugin::follow::state::StateSource;

/// Where per-block state changes come from.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum StateChanges {
    /// The first the node answers: archive_v1_storage, else state_getKeysPaged.
    Auto,
    /// archive_v1_storage descendantsHashes (the node hashes the values).
    Archive,
    /// state_getKeysPaged + state_queryStorageAt (every value is read).
    Paged,
    /// None: blocks only (plus the runtime version and metadata).
    None,
}

#[derive(clap::Args)]
pub struct Args {
    /// ws://HOST:PORT of the node.
    #[arg(long)]
    node: String,
    /// Start an empty archive at this finalized block (0x-hex hash) instead of genesis, with
    /// that block's whole state as its changes. You vouch for the hash: everything after it is
    /// checked against it, nothing before it is archived.
    #[arg(long, value_name = "HASH")]
    from: Option<String>,
    /// Stop once this block is archived.
    #[arg(long)]
    stop_at: Option<u64>,
    /// Where per-block state changes come from.
    #[arg(long, value_enum, default_value = "auto")]
    state_changes: StateChanges,
    /// At the end, seal the open segment and wait until everything is dispersed and verified.
    #[arg(long)]
    flush: bool,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9615).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

fn parse_hash(s: &str) -> Result<[u8; 32]> {
    let bytes = hex::decode(s.strip_prefix("0x").unwrap_or(s)).context("--from is not hex")?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| anyhow::anyhow!("--from is {} bytes, a block hash is 32", bytes.len()))
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    let state_source = match a.state_changes {
        StateChanges::Auto => None,
        StateChanges::Archive => Some(StateSource::Archive),
        StateChanges::Paged => Some(StateSource::Paged),
        StateChanges::None => Some(StateSource::None),
    };
    let args = archiver_cli::chain::FollowArgs {
        url: &a.node,
        from: a.from.as_deref().map(parse_hash).transpose()?,
        options: node_plugin::follow::FollowOptions {
            stop_at: a.stop_at,
            state_source,
            on_capture: None,
        },
        flush: a.flush,
        metrics: a.metrics,
    };
    archiver_cli::chain::run_follow(config, args).await
}
