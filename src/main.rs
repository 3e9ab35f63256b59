//! `archiver`: the one command that drives the archive — config, embedded hoster, ingest, dispersal,
//! restore, repair, status, demo and bench. A thin layer: the work is in the library crates.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use archiver::RestoreFormat;
use clap::{Parser, Subcommand, ValueEnum};

use archiver_cli::config_file::{self, open_archive, ConfigFile};
use archiver_cli::{bench, chain, demo, ingest};

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

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Segments,
    Blocks,
}

#[derive(Subcommand)]
enum Command {
    /// Write a new config with a freshly generated master key (file mode 0600).
    Init {
        /// Local data directory (relative to the config file).
        #[arg(long, default_value = "archive-data")]
        data_dir: PathBuf,
        /// A hoster: name=host:port[,domain=D][,namespace=N][,password=P][,admin=A][,key=HOSTER_ID]
        /// [,prover=host:port]. Repeat.
        #[arg(long = "hoster", value_name = "SPEC")]
        hosters: Vec<String>,
        #[arg(long, default_value_t = 4)]
        data_shards: usize,
        #[arg(long, default_value_t = 2)]
        parity_shards: usize,
        #[arg(long, default_value_t = archiver::config::SEGMENT_SIZE_BYTES_DEFAULT)]
        segment_size_bytes: u64,
    },
    /// Run an embedded 0-db-compatible hoster.
    Hoster {
        /// Address to listen on (loopback by default: exposing a hoster is a deliberate act).
        #[arg(long, default_value = "127.0.0.1:9900")]
        listen: std::net::SocketAddr,
        /// Data directory.
        #[arg(long)]
        data: PathBuf,
        /// File holding the admin password (mode 0600 or stricter); or set
        /// ARCHIVER_HOSTER_ADMIN_PASSWORD. Without one every connection is admin (as in 0-db),
        /// which is refused unless --listen is a loopback address.
        #[arg(long, value_name = "PATH")]
        admin_password_file: Option<PathBuf>,
        /// UNSAFE: acknowledge writes before they are fsynced. A crash of the machine (not only
        /// of the process) can then lose acknowledged writes. Default: durable before
        /// acknowledged, with group commit.
        #[arg(long)]
        no_sync: bool,
    },
    /// Append synthetic Substrate blocks and disperse (demos, benchmarks, crash tests; a real chain
    /// is archived by `node` or `follow`).
    Ingest {
        /// Number of blocks to append.
        #[arg(long, value_name = "N")]
        synthetic: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Seal the open segment at the end, so everything is dispersed.
        #[arg(long)]
        flush: bool,
        /// Only append; leave dispersal to `archiver disperse`.
        #[arg(long)]
        no_disperse: bool,
        /// Print `acked <number>` after every durable batch (crash tests read this).
        #[arg(long)]
        print_acks: bool,
    },
    /// Seal the open segment now.
    Seal,
    /// Disperse every sealed segment not yet dispersed.
    Disperse,
    /// Rebuild history from the hosters alone (needs only the config).
    Restore {
        #[arg(long)]
        from: Option<u64>,
        #[arg(long)]
        to: Option<u64>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "segments")]
        format: FormatArg,
    },
    /// Bring every segment back to k+m shards on live hosters.
    Repair {
        /// Read every shard and check its Merkle root (scrub), not just its presence.
        #[arg(long)]
        verify: bool,
    },
    /// Delete local segment files the hosters provably hold: each dispersed segment is first read
    /// back (manifest and all k+m shards checked); the newest N verified ones stay local.
    Prune {
        #[arg(long, default_value_t = 0)]
        keep_local_segments: u64,
    },
    /// Mount the whole history read-only as files (`ls`, `cat`, `grep`); Ctrl-C or SIGTERM
    /// unmounts. Pruned blocks are fetched from the hosters on demand.
    Mount {
        /// An existing empty directory.
        mountpoint: PathBuf,
        /// Bound of the cache of segments rebuilt from the hosters, MiB.
        #[arg(long, default_value_t = 256)]
        cache_mib: usize,
    },
    /// Hosters, segments and watermarks.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Re-read the local log and check it against the catalog.
    Verify,
    /// End to end on this machine: 6 embedded hosters, ingest, kill 2, restore, compare.
    Demo {
        /// MiB of block data to ingest.
        #[arg(long, default_value_t = 96)]
        mib: u64,
        /// Work directory (a temporary one by default, removed at the end).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run the reference PoA node (Aura + GRANDPA-style finality, transfers, state in RocksDB),
    /// archiving in-process to the config's archive and pruning behind it.
    Node {
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
    },
    /// Archive a node reached only over JSON-RPC (finalized blocks, gaps filled, reconnecting).
    Follow {
        /// ws://HOST:PORT of the node.
        #[arg(long)]
        node: String,
        /// Stop once this block is archived.
        #[arg(long)]
        stop_at: Option<u64>,
        /// At the end, seal the open segment and wait until everything is dispersed and verified.
        #[arg(long)]
        flush: bool,
    },
    /// Serve the archived history over Substrate-compatible JSON-RPC (reads the archive beside a
    /// running node or follower).
    Rpc {
        #[arg(long, default_value = "127.0.0.1:9945")]
        listen: std::net::SocketAddr,
        #[arg(long, default_value_t = 256)]
        cache_mib: usize,
    },
    /// New validator: rebuild and verify a node database from the hosters (config + trusted hash).
    Sync {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        trusted_hash: String,
        #[arg(long, default_value_t = 1000)]
        retention: u64,
        /// Print `progress <blocks> <last>` lines (for scripts; the bar shows on a terminal).
        #[arg(long)]
        print_progress: bool,
    },
    /// Prover sidecar beside a hoster running real 0-db (which cannot answer challenges itself):
    /// answers `PROVE` from the shards in that 0-db, with this hoster's identity.
    Prover {
        /// The 0-db to read shards from (host:port).
        #[arg(long)]
        zdb: String,
        /// The shard namespace in that 0-db.
        #[arg(long, default_value = "poa-archive")]
        namespace: String,
        /// File holding the namespace password, if it has one (mode 0600 or stricter); or set
        /// ARCHIVER_PROVER_PASSWORD.
        #[arg(long, value_name = "PATH")]
        password_file: Option<PathBuf>,
        /// Where to answer challenges (loopback by default).
        #[arg(long, default_value = "127.0.0.1:9901")]
        listen: std::net::SocketAddr,
        /// Directory holding the identity key (created on first start, mode 0600).
        #[arg(long)]
        data: PathBuf,
    },
    /// Ask a hoster to prove it still holds a shard (nonce-bound Merkle samples, signed);
    /// exits non-zero when the proof fails.
    Challenge {
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
    },
    /// Challenge random shards across all hosters; results go to `status`, failures to `repair`.
    Audit {
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
    },
    /// Throughput and memory figures against the single-stage limits measured in the same run.
    Bench {
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
        /// Blocks in the chain bench.
        #[arg(long, default_value_t = 20_000)]
        blocks: u64,
    },
}

/// Failed challenges `status --json` lists with their evidence: enough to act on, short enough
/// to read (the audit store keeps them all).
const STATUS_FAILURES_SHOWN: usize = 10;

/// Allocations at least this large are mmap'd and unmapped on free: shard and segment buffers
/// then go back to the OS instead of piling up in glibc's heap (which otherwise grows RSS past the
/// 256 MiB bound over a long run).
const MMAP_THRESHOLD_BYTES: i32 = 4 * 1024 * 1024;
/// glibc arenas: the default 8 x cores each keep their own freed memory.
const MALLOC_ARENAS_MAX: i32 = 2;

#[allow(unsafe_code)]
fn tune_allocator() {
    // SAFETY: mallopt only changes glibc allocator parameters; it is called once, before any other
    // thread exists, and both parameters are valid for the values given.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS_MAX);
    }
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    // demo and bench kill hosters on purpose: their expected warnings would drown the report.
    // fuser logs unimplemented calls and an unmount already done as warnings: noise here.
    let default_filter = match cli.command {
        Command::Demo { .. } | Command::Bench { .. } => "error",
        _ => "warn,fuser=error",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init {
            data_dir,
            hosters,
            data_shards,
            parity_shards,
            segment_size_bytes,
        } => {
            let hosters = hosters
                .iter()
                .map(|h| config_file::parse_hoster_arg(h))
                .collect::<Result<Vec<_>>>()?;
            let file = ConfigFile {
                master_key: archiver::MasterKey::generate().to_hex().to_string(),
                data_dir,
                segment_size_bytes,
                data_shards,
                parity_shards,
                min_parity: 1,
                durability: Default::default(),
                compression: Default::default(),
                client: Default::default(),
                hosters,
            };
            file.write_new(&cli.config)?;
            // Validate what was written, so a bad --hoster is reported now, not at first use.
            if let Err(e) = ConfigFile::load(&cli.config) {
                eprintln!("warning: {e:#}\n(edit {} to fix it)", cli.config.display());
            }
            println!(
                "wrote {} (mode 0600; it holds the master key)",
                cli.config.display()
            );
            Ok(())
        }
        Command::Hoster {
            listen,
            data,
            admin_password_file,
            no_sync,
        } => {
            let admin = secret_from(admin_password_file.as_deref(), HOSTER_ADMIN_PASSWORD_ENV)?;
            run_hoster(listen, data, admin, !no_sync).await
        }
        Command::Ingest {
            synthetic,
            seed,
            flush,
            no_disperse,
            print_acks,
        } => {
            let mut archive = open_archive(&cli.config)?;
            if !no_disperse {
                for (name, e) in archive.prepare_hosters().await {
                    tracing::warn!(hoster = %name, error = %e, "hoster not prepared");
                }
            }
            let started = std::time::Instant::now();
            let report = ingest::ingest_synthetic(
                &mut archive,
                seed,
                Some(synthetic),
                None,
                flush,
                !no_disperse,
                |n, _| {
                    if print_acks {
                        archiver_cli::announce(format_args!("acked {n}"));
                    }
                },
            )
            .await?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "ingested {} blocks, {:.1} MB in {:.2} s ({:.0} MB/s); {} segments dispersed{}",
                report.blocks,
                report.bytes as f64 / 1e6,
                secs,
                report.bytes as f64 / 1e6 / secs.max(1e-9),
                report.segments_dispersed,
                if report.under_replicated.is_empty() {
                    String::new()
                } else {
                    format!(", under-replicated: {:?}", report.under_replicated)
                }
            );
            Ok(())
        }
        Command::Seal => {
            let mut archive = open_archive(&cli.config)?;
            match archive.log_mut().seal_active().context("seal segment")? {
                Some(id) => println!("sealed segment {id}"),
                None => println!("no open segment with blocks"),
            }
            Ok(())
        }
        Command::Disperse => {
            let archive = open_archive(&cli.config)?;
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
        Command::Restore {
            from,
            to,
            out,
            format,
        } => {
            let remote = config_file::open_remote(&cli.config)?;
            let format = match format {
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
            let report =
                archiver::restore(&remote, from, to, &out, format, |done, total, bytes| {
                    bar.set_length(total);
                    bar.set_position(done);
                    let secs = started.elapsed().as_secs_f64().max(1e-9);
                    bar.set_message(format!(
                        "{:.0} MB, {:.0} MB/s",
                        bytes as f64 / 1e6,
                        bytes as f64 / 1e6 / secs
                    ));
                })
                .await
                .context("restore")?;
            bar.finish_and_clear();
            let secs = started.elapsed().as_secs_f64();
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
            if report.lost.is_empty() {
                Ok(())
            } else {
                anyhow::bail!(
                    "{} segment(s) could not be restored (listed above); everything else was",
                    report.lost.len()
                )
            }
        }
        Command::Repair { verify } => {
            let archive = open_archive(&cli.config)?;
            // Shards that failed a storage challenge are rebuilt elsewhere too.
            let audit = archiver::audit::AuditLog::open_existing(&archive.config().data_dir)
                .context("open audit store")?;
            let marked = match &audit {
                Some(a) => a.marked().context("read repair marks")?,
                None => Vec::new(),
            };
            let suspect: Vec<(u64, usize)> = marked.iter().map(|(s, i, _)| (*s, *i)).collect();
            let scrub = archive
                .scrub_metadata(0..u64::MAX)
                .await
                .context("check the hosters' metadata")?;
            print_scrub(&scrub);
            let r = archive
                .repair_with(verify, &suspect)
                .await
                .context("repair")?;
            if let Some(a) = &audit {
                for (seg, shard, _) in &r.repaired {
                    if suspect.contains(&(*seg, *shard)) {
                        a.unmark(*seg, *shard).context("clear repair mark")?;
                    }
                }
            }
            println!(
                "checked {} segments ({} shards); repaired {} shards; still under-replicated: {}",
                r.segments_checked,
                r.shards_checked,
                r.repaired.len(),
                r.still_under_replicated.len()
            );
            for (seg, shard, hoster) in &r.repaired {
                println!("  segment {seg} shard {shard} -> {hoster}");
            }
            for (seg, why) in &r.still_under_replicated {
                println!("  segment {seg}: {why}");
            }
            if r.still_under_replicated.is_empty() {
                Ok(())
            } else {
                anyhow::bail!(
                    "{} segments remain under-replicated",
                    r.still_under_replicated.len()
                )
            }
        }
        Command::Status { json } => {
            let archive = open_archive(&cli.config)?;
            let s = archive.status().await.context("collect status")?;
            let audit = archiver::audit::AuditLog::open_read_only(&archive.config().data_dir)
                .context("open audit store")?;
            if json {
                let mut v = serde_json::to_value(&s).context("encode status")?;
                if let Some(a) = &audit {
                    v["audit"] = serde_json::json!({
                        "hosters": a.summary().context("read audit results")?,
                        "markedForRepair": a.marked().context("read repair marks")?.len(),
                        "recentFailures": a.failures(STATUS_FAILURES_SHOWN).context("read audit results")?,
                    });
                }
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).context("encode status")?
                );
            } else {
                print_status(&s);
                if let Some(a) = &audit {
                    archiver_cli::challenge::print_audit_summary(a)?;
                }
            }
            Ok(())
        }
        Command::Verify => {
            let archive = open_archive(&cli.config)?;
            let blocks = archive.log().verify().context("verify log")?;
            let last = archive.log().last().map(|l| l.0);
            println!(
                "log verified: {blocks} blocks, last {}",
                last.map_or("-".into(), |n| n.to_string())
            );
            Ok(())
        }
        Command::Demo { mib, dir } => demo::run(mib, dir).await,
        Command::Node {
            data,
            rpc,
            authorities,
            chain: name,
            block_time_ms,
            justification_period,
            retention,
            transfers_per_block,
            stop_at,
            no_archive,
            keep_local_segments,
            cache_mib,
            follow,
            sync_from_archive,
            trusted_hash,
        } => {
            let trusted = match (sync_from_archive, trusted_hash) {
                (true, Some(h)) => Some(chain::parse_hash(&h)?),
                _ => None,
            };
            let spec = node_plugin::node::ChainSpec {
                name,
                authorities,
                accounts: node_plugin::node::ChainSpec::dev(authorities).accounts,
                justification_period,
            };
            chain::run_node(
                &cli.config,
                chain::NodeArgs {
                    data,
                    rpc,
                    spec,
                    block_time_ms,
                    retention,
                    transfers_per_block,
                    stop_at,
                    archive: !no_archive,
                    keep_local_segments,
                    cache_mib,
                    follow,
                    sync_from_archive: trusted,
                },
            )
            .await
        }
        Command::Prover {
            zdb,
            namespace,
            password_file,
            listen,
            data,
        } => {
            use std::io::Write;
            let password = secret_from(password_file.as_deref(), PROVER_PASSWORD_ENV)?;
            let identity = zdb_backend::prove::load_or_create_identity(&data)
                .with_context(|| format!("load prover identity in {}", data.display()))?;
            let prover = std::sync::Arc::new(zdb_backend::prove::Prover::with_tree_dir(
                identity,
                data.join(zdb_backend::prove::TREES_DIR),
            ));
            let client = zdb_backend::ZdbClient::new(
                zdb_backend::HosterConfig {
                    address: zdb.clone(),
                    namespace: namespace.clone(),
                    password,
                    admin_password: None,
                },
                zdb_backend::ClientOptions::default(),
            );
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listen on {listen}"))?;
            println!(
                "listening on {}",
                listener.local_addr().context("local address")?
            );
            println!("hoster id 0x{}", hex::encode(prover.id()));
            std::io::stdout().flush().context("flush stdout")?;
            tokio::select! {
                r = zdb_backend::prove::serve_sidecar(listener, prover, client, namespace) => r.context("serve challenges")?,
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(())
        }
        Command::Audit {
            rounds,
            every,
            samples,
            deadline_ms,
        } => {
            let every_ms = every.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
            let rounds = match (rounds, every_ms) {
                (None, None) => Some(1),
                (r, _) => r,
            };
            let (_, failed) =
                archiver_cli::challenge::audit(&cli.config, rounds, every_ms, samples, deadline_ms)
                    .await?;
            if failed > 0 {
                anyhow::bail!("{failed} challenge(s) failed");
            }
            Ok(())
        }
        Command::Challenge {
            hoster,
            segment,
            shard,
            samples,
            deadline_ms,
            json,
        } => {
            let outcome = archiver_cli::challenge::challenge(
                &cli.config,
                &hoster,
                archiver_cli::challenge::Target { segment, shard },
                samples,
                deadline_ms,
            )
            .await?;
            archiver_cli::challenge::print(&outcome, json);
            if !outcome.passed() {
                anyhow::bail!("hoster {hoster} failed the storage challenge");
            }
            Ok(())
        }
        Command::Follow {
            node,
            stop_at,
            flush,
        } => chain::run_follow(&cli.config, &node, stop_at, flush).await,
        Command::Prune {
            keep_local_segments,
        } => {
            let archive = open_archive(&cli.config)?;
            let disperser = archive.disperser();
            // Segments verified before a failing one are pruned all the same: the watermark
            // only ever covers segments whose read-back succeeded.
            let verified = disperser.verify_dispersed().await;
            let kept_from = disperser
                .prune_local_segments(keep_local_segments)
                .context("prune local segments")?;
            println!("local segment files below {kept_from} deleted");
            let verified = verified.context("verify dispersed segments")?;
            println!("verified segments below {verified}");
            Ok(())
        }
        Command::Mount {
            mountpoint,
            cache_mib,
        } => archiver_cli::mount::run(&cli.config, &mountpoint, cache_mib).await,
        Command::Rpc { listen, cache_mib } => chain::run_rpc(&cli.config, listen, cache_mib).await,
        Command::Sync {
            data,
            trusted_hash,
            retention,
            print_progress,
        } => {
            chain::run_sync(
                &cli.config,
                &data,
                chain::parse_hash(&trusted_hash)?,
                retention,
                print_progress,
            )
            .await
        }
        Command::Bench {
            mount: true,
            mib,
            dir,
            ..
        } => archiver_cli::bench_mount::run(mib, dir).await,
        Command::Bench {
            challenges: true, ..
        } => archiver_cli::bench_challenge::run().await,
        Command::Bench {
            hoster_writes: true,
            mib,
            dir,
            ..
        } => archiver_cli::bench_hoster::run(mib, dir).await,
        Command::Bench {
            dir,
            chain: true,
            blocks,
            ..
        } => archiver_cli::bench_chain::run(blocks, dir).await,
        Command::Bench {
            mib,
            dir,
            stages_only,
            ..
        } => bench::run(mib, dir, stages_only).await,
    }
}

fn print_status(s: &archiver::Status) {
    println!("redundancy: {}+{}", s.data_shards, s.parity_shards);
    println!("hosters:");
    for h in &s.hosters {
        println!(
            "  {:<12} {:<10} {:<4} {:>12} shards {:>6}{}",
            h.name,
            h.domain,
            if h.up { "up" } else { "DOWN" },
            h.stored_bytes
                .map_or("-".into(), |b| format!("{:.1} MB", b as f64 / 1e6)),
            h.shards_placed,
            h.error
                .as_ref()
                .map_or(String::new(), |e| format!("  ({e})"))
        );
    }
    println!(
        "segments: {} sealed, {} dispersed, {} pending, {} under-replicated",
        s.segments_sealed,
        s.segments_dispersed,
        s.segments_pending,
        s.under_replicated.len()
    );
    for (seg, placed, total) in &s.under_replicated {
        println!("  segment {seg}: {placed}/{total} shards placed (run `archiver repair`)");
    }
    let w = &s.watermarks;
    let show = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
    println!(
        "watermarks: appended {}, sealed {}, dispersed {}, pruned below {}",
        show(w.appended),
        show(w.sealed),
        show(w.dispersed),
        w.pruned_below
    );
}

/// What a metadata self-check found, one line plus one per problem.
fn print_scrub(r: &archiver::ScrubReport) {
    println!(
        "metadata: {} records of {} segments checked; {} re-published, {} damaged, {} placements superseded",
        r.records_checked,
        r.segments_checked,
        r.republished.len(),
        r.damaged.len(),
        r.placements_superseded.len()
    );
    for (hoster, segment, what) in &r.republished {
        println!("  re-published {what} of segment {segment} on {hoster}");
    }
    for (hoster, segment, what) in &r.damaged {
        println!("  damaged {what} of segment {segment} on {hoster} (write-once: left, other copies serve)");
    }
    for (hoster, why) in r.unreachable.iter().take(10) {
        println!("  not checked on {hoster}: {why}");
    }
}

/// Where child processes (and scripts) pass `archiver hoster` its admin password.
const HOSTER_ADMIN_PASSWORD_ENV: &str = config_file::ADMIN_PASSWORD_ENV;
/// Where `archiver prover` takes the namespace password when no file is given.
const PROVER_PASSWORD_ENV: &str = "ARCHIVER_PROVER_PASSWORD";

/// A secret from a 0600 file or an environment variable, never from the command line. Errors
/// name the file or the variable, never the secret.
fn secret_from(file: Option<&std::path::Path>, env: &str) -> Result<Option<String>> {
    let from_env = std::env::var_os(env);
    match (file, from_env) {
        (Some(_), Some(_)) => bail!("give the secret either in a file or in {env}, not both"),
        (Some(path), None) => Ok(Some(zdb_backend::secret::read_secret_file(path)?)),
        (None, Some(value)) => match value.into_string() {
            Ok(s) if !s.is_empty() => Ok(Some(s)),
            Ok(_) => bail!("{env} is set but empty"),
            Err(_) => bail!("{env} is not UTF-8 text"),
        },
        (None, None) => Ok(None),
    }
}

async fn run_hoster(
    listen: std::net::SocketAddr,
    data: PathBuf,
    admin: Option<String>,
    sync: bool,
) -> Result<()> {
    use std::io::Write;
    let mut cfg = zdb_backend::HosterServerConfig::new(listen, data.clone());
    cfg.admin_password = admin;
    cfg.sync = sync;
    let server = zdb_backend::HosterServer::bind(cfg)
        .await
        .with_context(|| format!("start hoster on {listen} with data in {}", data.display()))?;
    archiver_cli::announce(format_args!("listening on {}", server.local_addr()));
    // Challenge identity: goes into the verifier's config (`key=` of the hoster).
    archiver_cli::announce(format_args!(
        "hoster id 0x{}",
        hex::encode(server.hoster_id())
    ));
    std::io::stdout().flush().context("flush stdout")?;
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {},
        }
    };
    server.run(shutdown).await.context("serve")?;
    Ok(())
}
