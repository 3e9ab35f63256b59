//! `archiver prover`: the storage-challenge sidecar beside a hoster running real 0-db, which
//! cannot answer challenges itself.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use archiver_cli::secrets::{secret_from, PROVER_PASSWORD_ENV};
use zdb_backend::prove::{self, Prover};

#[derive(clap::Args)]
pub struct Args {
    /// The 0-db to read shards from (host:port).
    #[arg(long)]
    zdb: String,
    /// The shard namespace in that 0-db.
    #[arg(long, default_value = archiver::config::NAMESPACE_DEFAULT)]
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
}

pub async fn run(_config: &Path, a: Args) -> Result<()> {
    let password = secret_from(a.password_file.as_deref(), PROVER_PASSWORD_ENV)?;
    let identity = prove::load_or_create_identity(&a.data)
        .with_context(|| format!("load prover identity in {}", a.data.display()))?;
    let prover = Arc::new(Prover::with_tree_dir(
        identity,
        a.data.join(prove::TREES_DIR),
    ));
    let client = zdb_backend::ZdbClient::new(
        zdb_backend::HosterConfig {
            address: a.zdb.clone(),
            namespace: a.namespace.clone(),
            password,
            admin_password: None,
        },
        zdb_backend::ClientOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("listen on {}", a.listen))?;
    println!(
        "listening on {}",
        listener.local_addr().context("local address")?
    );
    println!("hoster id 0x{}", hex::encode(prover.id()));
    std::io::stdout().flush().context("flush stdout")?;
    tokio::select! {
        r = prove::serve_sidecar(listener, prover, client, a.namespace) => r.context("serve challenges")?,
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
