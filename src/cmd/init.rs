//! `archiver init`: writes a new config with a freshly generated master key (mode 0600).

use std::path::{Path, PathBuf};

use anyhow::Result;
use archiver::config::{ArchiveConfig, ClientConfig};
use archiver_cli::config_file::{self, ConfigFile};

#[derive(clap::Args)]
pub struct Args {
    /// Local data directory (relative to the config file).
    #[arg(long, default_value = "archive-data")]
    data_dir: PathBuf,
    /// A hoster: name=host:port[,domain=D][,namespace=N][,password=P][,admin=A][,key=HOSTER_ID]
    /// [,prover=host:port]. Repeat.
    #[arg(long = "hoster", value_name = "SPEC")]
    hosters: Vec<String>,
    #[arg(long, default_value_t = archiver::config::DATA_SHARDS_DEFAULT)]
    data_shards: usize,
    #[arg(long, default_value_t = archiver::config::PARITY_SHARDS_DEFAULT)]
    parity_shards: usize,
    #[arg(long, default_value_t = archiver::config::SEGMENT_SIZE_BYTES_DEFAULT)]
    segment_size_bytes: u64,
}

pub async fn run(config: &Path, a: Args) -> Result<()> {
    let hosters = a
        .hosters
        .iter()
        .map(|h| config_file::parse_hoster_arg(h))
        .collect::<Result<Vec<_>>>()?;
    let mut archive = ArchiveConfig::new(a.data_dir, hosters);
    archive.segment_size_bytes = a.segment_size_bytes;
    archive.data_shards = a.data_shards;
    archive.parity_shards = a.parity_shards;
    let file = ConfigFile::new(
        archiver::MasterKey::generate().to_hex().to_string(),
        archive,
        ClientConfig::default(),
    );
    file.write_new(config)?;
    // Validate what was written, so a bad --hoster is reported now, not at first use.
    if let Err(e) = ConfigFile::load(config) {
        eprintln!("warning: {e:#}\n(edit {} to fix it)", config.display());
    }
    println!(
        "wrote {} (mode 0600; it holds the master key)",
        config.display()
    );
    Ok(())
}
