//! `archiver hoster`: runs an embedded 0-db-compatible hoster until SIGINT/SIGTERM.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use archiver_cli::secrets::{secret_from, HOSTER_ADMIN_PASSWORD_ENV};

#[derive(clap::Args)]
pub struct Args {
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
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9616).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
}

pub async fn run(_config: &Path, a: Args) -> Result<()> {
    let admin = secret_from(a.admin_password_file.as_deref(), HOSTER_ADMIN_PASSWORD_ENV)?;
    let mut cfg = zdb_backend::HosterServerConfig::new(a.listen, a.data.clone());
    cfg.admin_password = admin;
    cfg.sync = !a.no_sync;
    let registry = a.metrics.map(|_| prometheus::Registry::new());
    cfg.metrics = registry.clone();
    let server = zdb_backend::HosterServer::bind(cfg)
        .await
        .with_context(|| {
            format!(
                "start hoster on {} with data in {}",
                a.listen,
                a.data.display()
            )
        })?;
    archiver_cli::announce(format_args!("listening on {}", server.local_addr()));
    // Challenge identity: goes into the verifier's config (`key=` of the hoster).
    archiver_cli::announce(format_args!(
        "hoster id 0x{}",
        hex::encode(server.hoster_id())
    ));
    if let (Some(addr), Some(registry)) = (a.metrics, registry) {
        archiver_cli::metrics::serve_registry(addr, registry).await?;
    }
    std::io::stdout().flush().context("flush stdout")?;
    server
        .run(archiver_cli::chain::shutdown_signal())
        .await
        .context("serve")?;
    Ok(())
}
