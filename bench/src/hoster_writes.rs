//! `archiver bench --hoster-writes`: what "durable before acknowledged" costs. MB/s of 64 KiB
//! SETs into one embedded hoster process with 1, 4 and 16 concurrent clients, fsync before every
//! reply (the default, group commit) against `--no-sync`, and the ratio of the two.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use zdb_backend::{ClientOptions, HosterConfig, ZdbClient};

/// The value size the archiver stores shards in (`SHARD_PART_BYTES`).
const VALUE_BYTES: usize = 64 * 1024;
/// Concurrent clients (one connection each) per run.
const CLIENTS: [usize; 3] = [1, 4, 16];

/// A hoster child process, killed when dropped.
struct Hoster(Child);

impl Drop for Hoster {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_hoster(exe: &Path, data: &Path, extra: &[&str]) -> Result<(Hoster, String)> {
    let mut child = Command::new(exe)
        .args(["hoster", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start hoster process")?;
    let stdout = child.stdout.take().context("hoster stdout")?;
    let hoster = Hoster(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .context("hoster exited before listening")?
        .context("read hoster address")?;
    let Some(address) = first.strip_prefix("listening on ") else {
        bail!("hoster said {first:?} instead of its address");
    };
    let address = address.to_owned();
    // Drain the rest (its id line) so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Ok((hoster, address))
}

/// MB/s of `total_bytes` of 64 KiB SETs from `clients` concurrent clients.
async fn write_rate(address: &str, clients: usize, total_bytes: u64, run: usize) -> Result<f64> {
    let client = ZdbClient::new(
        HosterConfig {
            address: address.to_owned(),
            namespace: "default".into(),
            password: None,
            admin_password: None,
        },
        ClientOptions {
            connections_max: clients,
            ..Default::default()
        },
    );
    let per_client = (total_bytes / VALUE_BYTES as u64 / clients as u64).max(1);
    let value = std::sync::Arc::new(vec![0xa5u8; VALUE_BYTES]);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (client, value) = (client.clone(), std::sync::Arc::clone(&value));
        tasks.spawn(async move {
            for i in 0..per_client {
                let key = format!("r{run}-c{c}-{i}");
                client.set(key.as_bytes(), &value).await?;
            }
            Ok::<_, zdb_backend::ZdbError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("writer task")?.context("SET")?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((per_client * clients as u64 * VALUE_BYTES as u64) as f64 / 1e6 / secs)
}

pub async fn run(mib: u64, dir: Option<PathBuf>) -> Result<()> {
    let tmp;
    let root = match dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().context("create work directory")?;
            tmp.path().to_path_buf()
        }
    };
    let exe = archiver_cli::cluster::archiver_exe()?;
    let total = mib * 1024 * 1024;
    println!(
        "archiver bench --hoster-writes: {mib} MiB of {} KiB SETs per run into one embedded hoster process (loopback)",
        VALUE_BYTES / 1024
    );
    let mut rates = Vec::new();
    for (label, extra) in [
        ("sync (default)", &[][..]),
        ("--no-sync", &["--no-sync"][..]),
    ] {
        let data = root.join(format!("hoster-{}", rates.len()));
        std::fs::create_dir_all(&data).with_context(|| format!("create {}", data.display()))?;
        let (_hoster, address) = start_hoster(&exe, &data, extra)?;
        let mut row = Vec::new();
        for (run, &clients) in CLIENTS.iter().enumerate() {
            row.push(write_rate(&address, clients, total, run).await?);
        }
        let cells: Vec<String> = CLIENTS
            .iter()
            .zip(&row)
            .map(|(n, r)| format!("{n:>2} clients {r:>7.1} MB/s"))
            .collect();
        println!("  {label:<15} {}", cells.join("   "));
        rates.push(row);
    }
    let ratios: Vec<String> = CLIENTS
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!(
                "{n:>2} clients {:>5.2}x",
                rates[0][i] / rates[1][i].max(1e-9)
            )
        })
        .collect();
    println!("  sync / no-sync  {}", ratios.join("        "));
    Ok(())
}
