//! `archiver node`: the reference PoA node, archiving in-process to the config's archive and
//! pruning behind it.

use std::path::{Path, PathBuf};

use anyhow::Result;
use archiver_cli::chain;
use node_plugin::node::ChainSpec;

#[derive(clap::Args)]
pub struct Args {
    /// Node data directory (its RocksDB).
    #[arg(long)]
    data: PathBuf,
    /// JSON-RPC address, WebSocket and HTTP (loopback by default).
    #[arg(long, default_value = "127.0.0.1:9944")]
    rpc: std::net::SocketAddr,
    /// Number of authorities (development keys derived from the chain name).
    #[arg(long, default_value_t = 4)]
    authorities: u32,
    #[arg(long, default_value = "poa-dev")]
    chain: String,
    /// Slot length; 0 authors as fast as possible (tests, benchmarks).
    #[arg(long, default_value_t = 6000)]
    block_time_ms: u64,
    /// A GRANDPA justification every this many blocks.
    #[arg(long, default_value_t = 1)]
    justification_period: u32,
    /// Newest blocks whose bodies always stay local.
    #[arg(long, default_value_t = 1000)]
    retention: u64,
    /// Development load: transfers between the endowed accounts per block.
    #[arg(long, default_value_t = 4)]
    transfers_per_block: u32,
    /// Stop authoring at this block (keeps serving RPC).
    #[arg(long)]
    stop_at: Option<u64>,
    /// Run without the archive plugin (then nothing is ever pruned).
    #[arg(long)]
    no_archive: bool,
    /// Verified segments kept as local files.
    #[arg(long, default_value_t = 2)]
    keep_local_segments: u64,
    /// History read cache bound.
    #[arg(long, default_value_t = 256)]
    cache_mib: usize,
    /// Import finalized blocks from this node (ws://HOST:PORT) instead of authoring.
    #[arg(long)]
    follow: Option<String>,
    /// Before starting, sync the database from the archive's hosters.
    #[arg(long, requires = "trusted_hash")]
    sync_from_archive: bool,
    /// Hash the sync must find in the archived chain (genesis or a recent finalized block).
    #[arg(long)]
    trusted_hash: Option<String>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9615).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    let trusted = match (a.sync_from_archive, a.trusted_hash) {
        (true, Some(h)) => Some(chain::parse_hash(&h)?),
        _ => None,
    };
    let spec = ChainSpec {
        name: a.chain,
        authorities: a.authorities,
        accounts: ChainSpec::dev(a.authorities).accounts,
        justification_period: a.justification_period,
        runtime_format: node_plugin::runtime::RUNTIME_FORMAT,
    };
    chain::run_node(
        config,
        chain::NodeArgs {
            data: a.data,
            rpc: a.rpc,
            spec,
            block_time_ms: a.block_time_ms,
            retention: a.retention,
            transfers_per_block: a.transfers_per_block,
            stop_at: a.stop_at,
            archive: !a.no_archive,
            keep_local_segments: a.keep_local_segments,
            cache_mib: a.cache_mib,
            metrics: a.metrics,
            follow: a.follow,
            sync_from_archive: trusted,
        },
    )
    .await
}
