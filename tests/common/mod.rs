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

/// An `archiver` child whose stdout lines are collected; killed (and reaped) on drop.
pub struct Proc {
    pub child: KillOnDrop,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Proc {
    /// Starts `archiver --config CONFIG ARGS…` with `env` added to its environment.
    pub fn start(config: &Path, args: &[&str], env: &[(&str, &Path)]) -> Self {
        let mut cmd = Command::new(EXE);
        cmd.arg("--config").arg(config).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
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
        Self {
            child: KillOnDrop(child),
            lines,
        }
    }

    /// The rest of the first line starting with `prefix`, within `secs`.
    pub fn line(&self, prefix: &str, secs: u64) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .unwrap_or_else(|_| panic!("no line starting with {prefix:?} within {secs} s"));
            if let Some(rest) = line.strip_prefix(prefix) {
                return rest.to_string();
            }
        }
    }

    pub fn id(&self) -> u32 {
        self.child.0.id()
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        self.child.0.wait().unwrap()
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) {
        let status = self.stop();
        assert!(status.success(), "{status}");
    }
}

/// An `archiver` child serving JSON-RPC: it printed `rpc listening on ADDR`.
pub struct Served {
    pub proc: Proc,
    pub addr: String,
}

impl Served {
    pub fn start(config: &Path, args: &[&str]) -> Self {
        let proc = Proc::start(config, args, &[]);
        let addr = proc.line("rpc listening on ", 300);
        Self { proc, addr }
    }

    /// A stateless `archiver rpc` replica from the config alone, its catalog in `cache_dir`.
    pub fn stateless(config: &Path, cache_dir: &Path) -> Self {
        let cache = cache_dir.to_str().unwrap();
        let args = [
            "rpc",
            "--stateless",
            "--listen",
            "127.0.0.1:0",
            "--cache-dir",
            cache,
        ];
        Self::start(config, &args)
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

    /// SIGTERM, then waits for the exit (whatever its status).
    pub fn terminate(&mut self) {
        self.proc.stop();
    }
}

/// One JSON-RPC call with positional `params`; panics naming the method when it fails.
pub async fn call(
    c: &jsonrpsee::http_client::HttpClient,
    method: &str,
    params: Vec<serde_json::Value>,
) -> serde_json::Value {
    use jsonrpsee::core::client::ClientT as _;
    let mut p = jsonrpsee::core::params::ArrayParams::new();
    for v in params {
        p.insert(v).unwrap();
    }
    c.request(method, p)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

/// Polls `cond` until it holds, with a deadline (the condition is real state read over RPC,
/// not a timer).
pub async fn wait_for<F, Fut, T>(what: &str, secs: u64, mut cond: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = cond().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
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
