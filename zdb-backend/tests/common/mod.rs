//! Shared helpers for the integration tests: an embedded hoster on 127.0.0.1, clients for it,
//! and raw TCP access for protocol-level checks.
#![allow(clippy::unwrap_used, dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zdb_backend::{
    ClientOptions, HosterConfig, HosterError, HosterServer, HosterServerConfig, HosterStorage,
    ZdbClient,
};

pub struct TestHoster {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), HosterError>>>,
}

pub fn config(dir: &Path, listen: SocketAddr, admin: Option<&str>) -> HosterServerConfig {
    let mut cfg = HosterServerConfig::new(listen, dir.to_path_buf());
    cfg.admin_password = admin.map(str::to_owned);
    cfg
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

impl TestHoster {
    pub async fn start(dir: &Path, admin: Option<&str>) -> Self {
        Self::start_at(dir, loopback(), admin).await
    }

    pub async fn start_at(dir: &Path, listen: SocketAddr, admin: Option<&str>) -> Self {
        let server = HosterServer::bind(config(dir, listen, admin))
            .await
            .unwrap();
        Self::spawn_server(server)
    }

    pub async fn start_with_storage(storage: Arc<dyn HosterStorage>, admin: Option<&str>) -> Self {
        let cfg = config(&PathBuf::from("/nonexistent"), loopback(), admin);
        let server = HosterServer::bind_with_storage(cfg, storage).await.unwrap();
        Self::spawn_server(server)
    }

    pub fn spawn_server(server: HosterServer) -> Self {
        let addr = server.local_addr();
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Abrupt stop: the server future is dropped mid-flight (connections and listener with it).
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Graceful stop: connections closed, writes finished, listener gone.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

pub fn hoster_config(addr: SocketAddr, namespace: &str) -> HosterConfig {
    HosterConfig {
        address: addr.to_string(),
        namespace: namespace.to_owned(),
        password: None,
        admin_password: None,
    }
}

pub fn client(addr: SocketAddr, namespace: &str) -> ZdbClient {
    ZdbClient::new(hoster_config(addr, namespace), ClientOptions::default())
}

pub fn client_with(cfg: HosterConfig) -> ZdbClient {
    ZdbClient::new(cfg, ClientOptions::default())
}

/// Deterministic pseudo-random bytes (no RNG needed for reproducible test data).
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 7) as u8
        })
        .collect()
}

/// Sends raw bytes on a new connection, half-closes it (so the server sees the end of the
/// requests and closes too), and returns everything the server sent.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    stream.shutdown().await.unwrap();
    read_until_quiet(&mut stream).await
}

pub async fn read_until_quiet(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads until `len` bytes arrived (or the peer closes) and returns them.
pub async fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut out[done..])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => done += n,
        }
    }
    out.truncate(done);
    out
}

pub fn data_file(dir: &Path, namespace: &str) -> PathBuf {
    dir.join(format!("ns-{}", hex::encode(namespace)))
        .join("data")
}
