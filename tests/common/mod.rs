//! What the end-to-end tests share: running the `archiver` binary on a config and showing what it
//! printed.
// Each test crate compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub const EXE: &str = env!("CARGO_BIN_EXE_archiver");

/// Runs `archiver --config CONFIG ARGS…` to completion.
pub fn archiver(config: &Path, args: &[&str]) -> Output {
    Command::new(EXE)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// Exit status, stdout and stderr of a run, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A child process killed (and reaped) when dropped, so a failing test leaves none behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A child `archiver` process that prints `rpc listening on ADDR`; killed on drop.
pub struct Served {
    child: std::process::Child,
    pub addr: String,
    _lines: std::sync::mpsc::Receiver<String>,
}

impl Served {
    pub fn start(config: &Path, args: &[&str]) -> Self {
        let mut child = std::process::Command::new(EXE)
            .arg("--config")
            .arg(config)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        let addr = loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .unwrap_or_else(|_| panic!("{args:?} never reported its RPC address"));
            if let Some(a) = line.strip_prefix("rpc listening on ") {
                break a.to_string();
            }
        };
        Self {
            child,
            addr,
            _lines: lines,
        }
    }

    pub fn ws(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn client(&self) -> jsonrpsee::http_client::HttpClient {
        jsonrpsee::http_client::HttpClientBuilder::default()
            .request_timeout(std::time::Duration::from_secs(60))
            .build(format!("http://{}", self.addr))
            .unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `tests/clients/install.sh` (the real clients and the chopsticks peer, from the npm and
/// PyPI registries; a no-op when already installed) and asserts it worked.
pub fn install_clients() {
    let install = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/install.sh"))
        .output()
        .unwrap();
    assert!(
        install.status.success(),
        "installing the real clients failed (they come from the npm and PyPI registries):\n{}",
        text(&install)
    );
}

/// Bit rot on a running hoster's disk: a byte flipped every 64 KiB of its shard namespace's
/// data log (namespace directories are named by their hex name), past the log's header.
pub fn rot_shard_log(hoster_data_dir: &Path) {
    use std::io::{Seek as _, Write as _};
    let data = hoster_data_dir
        .join(format!("ns-{}", hex::encode("poa-archive")))
        .join("data");
    let bytes = std::fs::read(&data).unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
    for at in (4096..bytes.len()).step_by(64 * 1024) {
        file.seek(std::io::SeekFrom::Start(at as u64)).unwrap();
        file.write_all(&[bytes[at] ^ 0x20]).unwrap();
    }
}
