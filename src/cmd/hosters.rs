//! `archiver hosters add | drain | rebalance | remove | list`: the hoster lifecycle.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use archiver_cli::config_file::ConfigFile;
use archiver_cli::hosters;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Add a hoster (same SPEC as `init --hoster`) and prepare its namespaces. New segments use
    /// it once the running node, follower or `serve` is restarted.
    Add {
        #[arg(value_name = "SPEC")]
        spec: String,
    },
    /// Move every shard off a live hoster (the running service does it, or this command when
    /// none runs), place nothing new on it, and wait until it holds no shard of this archive.
    Drain {
        name: String,
        /// Give up waiting after this many seconds (the drain itself goes on).
        #[arg(long, default_value_t = 3_600)]
        timeout_secs: u64,
    },
    /// Spread shards evenly over the hosters that answer (after `add`): shards move from the
    /// fullest hosters to the emptiest, copied and checked; waits until nothing is left to move.
    Rebalance {
        #[arg(long, default_value_t = 3_600)]
        timeout_secs: u64,
    },
    /// Remove a hoster that no placement names any more (drained, or lost and healed).
    Remove { name: String },
    /// Hosters with their domain and the shards placements name on each.
    List,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    match a.action {
        Action::Add { spec } => {
            let name = hosters::add(config, &spec).await?;
            println!("added hoster {name} to {} (namespaces prepared); restart running services to use it", config.display());
        }
        Action::Drain { name, timeout_secs } => {
            hosters::drain(
                config,
                &name,
                Duration::from_secs(timeout_secs),
                |placed, listed| {
                    println!("{name}: {placed} shards placed, {} stored", stored(listed));
                },
            )
            .await?;
            println!("drained {name}: it holds no shard of this archive");
        }
        Action::Rebalance { timeout_secs } => {
            hosters::rebalance(config, Duration::from_secs(timeout_secs)).await?;
            println!("rebalanced: shards are spread evenly over the hosters that answer");
        }
        Action::Remove { name } => {
            hosters::remove(config, &name).await?;
            println!(
                "removed hoster {name} from {}; restart running services to stop using it",
                config.display()
            );
        }
        Action::List => {
            let loaded = ConfigFile::load(config)?;
            let view = hosters::ArchiveView::open(config)?;
            for h in &loaded.archive.hosters {
                let (placed, listed) = view.shards_on(&h.name).await?;
                let stored = stored(listed);
                println!(
                    "{} {} domain={} placed={placed} stored={stored}",
                    h.name, h.address, h.domain
                );
            }
        }
    }
    Ok(())
}

/// Shards a hoster lists, or `?` when it does not answer.
fn stored(listed: Option<u64>) -> String {
    listed.map_or_else(|| "?".into(), |n| n.to_string())
}
