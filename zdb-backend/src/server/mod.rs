//! The embedded hoster: a TCP server answering the subset of the 0-db v2 protocol the client
//! uses, with 0-db's replies and errors, over durable append-only namespaces on local disk.

mod commands;
pub mod format;
mod metrics;
mod namespace;
pub mod storage;

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Buf as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::resp::{RespError, RespReader, VALUE_BYTES_MAX};
use format::NsProps;
pub use metrics::UNKNOWN_COMMAND;
use namespace::Namespace;
pub use storage::{DataLog, FileStorage, HosterStorage};

/// The namespace every 0-db has and every connection starts in.
pub const DEFAULT_NAMESPACE: &[u8] = b"default";

/// Replies larger than this are written straight from the value buffer (vectored write) instead
/// of being copied into the connection's reply buffer.
const INLINE_REPLY_BYTES_MAX: usize = 16 * 1024;

/// Capacity a connection's reply buffer keeps between requests; a larger one (after a SCAN or a
/// pipelined burst) is given back, so idle connections hold little.
const REPLY_BUFFER_KEPT_BYTES: usize = 64 * 1024;

/// After `-Payload too big` the server stops reading requests; it keeps draining what the client
/// is still sending for at most this long before closing, so the client sees the error reply
/// instead of a connection reset (0-db closes at once; draining only makes our error reliable).
const LINGER_MS: u64 = 2_000;

/// And for at most this many bytes: the rest of one oversized argument plus some.
const LINGER_BYTES_MAX: u64 = 4 * VALUE_BYTES_MAX as u64;

/// Back-off after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF_MS: u64 = 50;

/// Connections served at once; one more is accepted and closed at once (not queued). Each
/// costs a 64 KiB read buffer once it has sent a byte, plus one request (≤ 9 MiB) and one reply
/// (≤ `reply_bytes_max`) while a command runs; 0-db itself allows about as many (its fd limit).
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;

/// A connection waiting this long for its next request is closed: pooled clients keep idle
/// connections, and one that vanished without a FIN would otherwise hold a slot for ever. The
/// client retries a request once on a fresh connection when a reused one turns out closed.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 300_000;

/// A request whose first byte arrived must be complete within this: 8 MiB at 1 MB/s takes
/// 8 s; a peer trickling bytes slower than that holds a slot and a buffer for nothing.
pub const READ_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// A reply must be taken by the client within this (an 8 MiB value at 1 MB/s takes 8 s): a
/// client that stops reading would otherwise hold its reply in memory for ever.
pub const WRITE_TIMEOUT_MS_DEFAULT: u64 = 30_000;

/// Most value bytes in one reply (MGET; GET returns one value of ≤ 8 MiB, a SCAN batch is
/// ≤ 1,024 keys): four 8 MiB values. Our client never asks more than one value at a time and accepts at most 64 MiB
/// (`resp::REPLY_BYTES_MAX`); without a cap one MGET of 1,023 keys naming an 8 MiB value would
/// build 8 GiB. A larger MGET is answered `-Reply too large` (`ERR_REPLY_TOO_LARGE`).
pub const REPLY_BYTES_MAX_DEFAULT: usize = 4 * VALUE_BYTES_MAX;

/// The error line of a request whose reply would exceed `reply_bytes_max` (0-db has no such
/// limit and answers nothing comparable; the client maps it to `ZdbError::Server`).
pub const ERR_REPLY_TOO_LARGE: &str = "Reply too large";

/// Resource bounds of the embedded hoster (defaults: the `*_DEFAULT` constants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HosterLimits {
    pub connections_max: usize,
    pub idle_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub reply_bytes_max: usize,
}

impl Default for HosterLimits {
    fn default() -> Self {
        Self {
            connections_max: CONNECTIONS_MAX_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            read_timeout_ms: READ_TIMEOUT_MS_DEFAULT,
            write_timeout_ms: WRITE_TIMEOUT_MS_DEFAULT,
            reply_bytes_max: REPLY_BYTES_MAX_DEFAULT,
        }
    }
}

/// How the hoster is started.
#[derive(Clone)]
pub struct HosterServerConfig {
    /// Where to listen. A non-loopback address needs an admin password (`bind` refuses it
    /// otherwise).
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// 0-db's `--admin`: without it every connection is admin (loopback only).
    pub admin_password: Option<String>,
    /// Durable before acknowledged (the default, `true`): every SET/DEL is fsynced before its
    /// reply, concurrent writers of a namespace sharing one fsync (group commit). `false` is
    /// `--no-sync`: acknowledged writes survive a crash of the process but not of the machine.
    pub sync: bool,
    pub limits: HosterLimits,
    /// Where the hoster's `zdb_hoster_*` families are registered (served by the caller, e.g.
    /// `archiver::metrics::serve_metrics`); None: no metrics.
    pub metrics: Option<prometheus::Registry>,
}

impl HosterServerConfig {
    /// Durable, with the default limits and no admin password.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            admin_password: None,
            sync: true,
            limits: HosterLimits::default(),
            metrics: None,
        }
    }
}

impl std::fmt::Debug for HosterServerConfig {
    /// The admin password is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HosterServerConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .field("sync", &self.sync)
            .field("limits", &self.limits)
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HosterError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("namespace {namespace:?} is damaged: {detail}")]
    Corrupt { namespace: String, detail: String },
    #[error(
        "refusing to listen on {addr} without an admin password: every connection would be \
         admin; set one (--admin-password-file) or listen on loopback"
    )]
    OpenNonLoopback { addr: SocketAddr },
    #[error("registering hoster metric family {family}: {source}")]
    Metrics {
        family: &'static str,
        #[source]
        source: prometheus::Error,
    },
}

#[derive(Default)]
struct Stats {
    clients: AtomicU64,
    commands: AtomicU64,
    failed: AtomicU64,
    unauthorized: AtomicU64,
    rx_bytes: AtomicU64,
    tx_bytes: AtomicU64,
    /// Connections closed at accept because `connections_max` were open.
    refused: AtomicU64,
}

/// State shared by every connection.
pub(crate) struct Shared {
    storage: Arc<dyn HosterStorage>,
    namespaces: RwLock<BTreeMap<Vec<u8>, Arc<Namespace>>>,
    admin_password: Option<Vec<u8>>,
    sync: bool,
    limits: HosterLimits,
    stats: Stats,
    boot: SystemTime,
    /// Set (under the namespaces write lock) at shutdown: no namespace is created after it.
    closed: AtomicBool,
    /// Answers storage challenges with this hoster's identity.
    prover: Arc<crate::prove::Prover>,
    /// Set once at bind when the config names a registry.
    metrics: std::sync::OnceLock<metrics::HosterMetrics>,
}

impl Shared {
    fn namespace(&self, name: &[u8]) -> Option<Arc<Namespace>> {
        self.namespaces
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    fn all_namespaces(&self) -> Vec<Arc<Namespace>> {
        self.namespaces
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

/// A bound, recovered hoster, ready to `run`.
pub struct HosterServer {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for HosterServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HosterServer")
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

fn join_error(e: tokio::task::JoinError) -> HosterError {
    HosterError::Io {
        what: "storage task".to_owned(),
        source: io::Error::other(e),
    }
}

impl HosterServer {
    /// Opens (creating if needed) the data directory, recovers every namespace, and binds.
    pub async fn bind(cfg: HosterServerConfig) -> Result<Self, HosterError> {
        check_exposure(&cfg)?;
        let dir = cfg.data_dir.clone();
        let identity = crate::prove::load_or_create_identity(&cfg.data_dir).map_err(|source| {
            HosterError::Io {
                what: format!("loading the hoster identity in {}", cfg.data_dir.display()),
                source,
            }
        })?;
        let storage = tokio::task::spawn_blocking(move || FileStorage::open(&dir))
            .await
            .map_err(join_error)?
            .map_err(|source| HosterError::Io {
                what: format!("opening data directory {}", cfg.data_dir.display()),
                source,
            })?;
        Self::bind_inner(cfg, Arc::new(storage), identity).await
    }

    /// The id storage challenges are bound to (the hoster's ed25519 public key).
    pub fn hoster_id(&self) -> [u8; 32] {
        self.shared.prover.id()
    }

    /// As `bind`, over any storage (tests inject faulty ones); `cfg.data_dir` holds only the identity and the kept shard trees.
    /// Storage without a data directory (tests) gets a fresh challenge identity per start.
    pub async fn bind_with_storage(
        cfg: HosterServerConfig,
        storage: Arc<dyn HosterStorage>,
    ) -> Result<Self, HosterError> {
        check_exposure(&cfg)?;
        let identity = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        Self::bind_inner(cfg, storage, identity).await
    }

    async fn bind_inner(
        cfg: HosterServerConfig,
        storage: Arc<dyn HosterStorage>,
        identity: ed25519_dalek::SigningKey,
    ) -> Result<Self, HosterError> {
        let sync = cfg.sync;
        let opener = Arc::clone(&storage);
        let namespaces =
            tokio::task::spawn_blocking(move || open_namespaces(opener.as_ref(), sync))
                .await
                .map_err(join_error)??;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|source| HosterError::Bind {
                addr: cfg.listen,
                source,
            })?;
        let shared = Arc::new(Shared {
            storage,
            namespaces: RwLock::new(namespaces),
            admin_password: cfg.admin_password.map(String::into_bytes),
            sync,
            limits: cfg.limits,
            stats: Stats::default(),
            boot: SystemTime::now(),
            closed: AtomicBool::new(false),
            prover: Arc::new(crate::prove::Prover::with_tree_dir(
                identity,
                cfg.data_dir.join(crate::prove::TREES_DIR),
            )),
            metrics: std::sync::OnceLock::new(),
        });
        if let Some(registry) = &cfg.metrics {
            let _ = shared
                .metrics
                .set(metrics::HosterMetrics::register(registry, &shared)?);
        }
        Ok(Self { listener, shared })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // The listener is bound; only a closed socket fails here, and then the configured
        // address is the best answer left.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` completes, then closes every connection and waits for writes in
    /// progress, so the same directory can be opened again at once.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), HosterError> {
        let Self { listener, shared } = self;
        let slots = Arc::new(tokio::sync::Semaphore::new(shared.limits.connections_max));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                            // Closed at once rather than queued: the client sees EOF and can
                            // go elsewhere, and the hoster holds nothing for it.
                            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, "connection refused: connection cap reached");
                            drop(stream);
                            continue;
                        };
                        shared.stats.clients.fetch_add(1, Ordering::Relaxed);
                        let shared = Arc::clone(&shared);
                        let open = shared.metrics.get().map(metrics::HosterMetrics::connection);
                        connections.spawn(async move {
                            let _open = open;
                            if let Err(e) = serve_connection(shared, stream).await {
                                tracing::debug!(%peer, error = %e, "connection ended");
                            }
                            drop(slot);
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MS)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        connections.shutdown().await;
        // Storage work of aborted connections may still be queued or running on the blocking
        // pool: wait for it and make any later attempt a no-op, so the same directory can be
        // reopened by a new server right away without two writers on one log.
        let closing = Arc::clone(&shared);
        tokio::task::spawn_blocking(move || {
            let map = closing
                .namespaces
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            closing.closed.store(true, Ordering::SeqCst);
            map.values().for_each(|ns| ns.close());
        })
        .await
        .map_err(join_error)?;
        Ok(())
    }
}

/// Refuses an open (admin-less) hoster on a non-loopback address; warns about one on loopback,
/// where it keeps 0-db's behaviour (every connection is admin).
fn check_exposure(cfg: &HosterServerConfig) -> Result<(), HosterError> {
    if cfg.admin_password.is_some() {
        return Ok(());
    }
    if !cfg.listen.ip().is_loopback() {
        return Err(HosterError::OpenNonLoopback { addr: cfg.listen });
    }
    tracing::warn!(
        listen = %cfg.listen,
        "no admin password: every connection is admin (0-db's behaviour), acceptable on loopback only"
    );
    Ok(())
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Opens one namespace the way a restarting hoster does (index rebuilt from the data log, torn
/// tail cut, damage skipped) and returns every live (key, value), in log order. The seam the
/// recovery fuzz target (`fuzz/`) drives with made-up logs; the server itself opens namespaces in
/// `bind`.
#[doc(hidden)]
pub fn replay_namespace(
    storage: &dyn HosterStorage,
    name: &[u8],
) -> Result<Vec<KeyValue>, HosterError> {
    let ns = Namespace::open(storage, name, false)?;
    let mut live = Vec::new();
    for (_, key, _, _) in ns.scan(None, usize::MAX) {
        let Some(loc) = ns.lookup(&key) else { continue };
        let value = ns.read_value(&loc).map_err(|source| HosterError::Io {
            what: "reading a replayed value".to_owned(),
            source,
        })?;
        live.push((key.to_vec(), value));
    }
    Ok(live)
}

fn open_namespaces(
    storage: &dyn HosterStorage,
    sync: bool,
) -> Result<BTreeMap<Vec<u8>, Arc<Namespace>>, HosterError> {
    let mut names = storage.namespaces().map_err(|source| HosterError::Io {
        what: "listing namespaces".to_owned(),
        source,
    })?;
    if !names.iter().any(|n| n == DEFAULT_NAMESPACE) {
        storage
            .create_namespace(DEFAULT_NAMESPACE, &NsProps::new(DEFAULT_NAMESPACE).encode())
            .map_err(|source| HosterError::Io {
                what: "creating the default namespace".to_owned(),
                source,
            })?;
        names.push(DEFAULT_NAMESPACE.to_vec());
    }
    let mut map = BTreeMap::new();
    for name in names {
        let ns = Namespace::open(storage, &name, sync)?;
        map.insert(name, Arc::new(ns));
    }
    Ok(map)
}

/// A reply as the server builds it.
#[derive(Debug)]
pub(crate) enum Out {
    Status(&'static str),
    StatusOwned(String),
    Error(&'static str),
    /// An error line built at run time (PROVE's reasons); never contains CR or LF.
    ErrorOwned(String),
    Int(i64),
    Nil,
    Bulk(Vec<u8>),
    Array(Vec<Out>),
    /// A reply already in wire format (MGET builds its reply in place, one copy of each value).
    Encoded(Vec<u8>),
}

fn push_header(out: &mut Vec<u8>, kind: u8, n: u64) {
    use std::io::Write as _;
    out.push(kind);
    let _ = write!(out, "{n}\r\n");
}

fn encode_out(out: &mut Vec<u8>, reply: &Out) {
    match reply {
        Out::Status(s) => {
            out.push(b'+');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Out::StatusOwned(s) => {
            out.push(b'+');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Out::Error(s) => {
            out.push(b'-');
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Out::ErrorOwned(s) => {
            out.push(b'-');
            out.extend(
                s.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
        Out::Int(n) => {
            use std::io::Write as _;
            let _ = write!(out, ":{n}\r\n");
        }
        Out::Nil => out.extend_from_slice(b"$-1\r\n"),
        Out::Bulk(b) => {
            push_header(out, b'$', b.len() as u64);
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Out::Array(items) => {
            push_header(out, b'*', items.len() as u64);
            for item in items {
                encode_out(out, item);
            }
        }
        Out::Encoded(bytes) => out.extend_from_slice(bytes),
    }
}

/// Per-connection state, as 0-db keeps it per client.
pub(crate) struct Session {
    admin: bool,
    /// Nonce of the last `AUTH SECURE CHALLENGE`.
    nonce: Option<String>,
    ns: Arc<Namespace>,
    /// False after selecting a public, password-protected namespace without its password.
    writable: bool,
}

fn timed_out(what: &str, ms: u64) -> RespError {
    RespError::Io(io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{what} within {ms} ms"),
    ))
}

/// Writes `bufs` whole within the write timeout.
async fn send(
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
    bufs: &mut (impl bytes::Buf + Send),
    write_timeout_ms: u64,
) -> Result<(), RespError> {
    tokio::time::timeout(
        Duration::from_millis(write_timeout_ms),
        writer.write_all_buf(bufs),
    )
    .await
    .map_err(|_| timed_out("reply not taken by the client", write_timeout_ms))??;
    Ok(())
}

/// The next request: waits at most the idle timeout for its first byte (`Ok(None)`: the peer
/// closed, or stayed idle too long) and at most the read timeout for the rest.
async fn next_request(
    reader: &mut RespReader<tokio::net::tcp::OwnedReadHalf>,
    limits: &HosterLimits,
) -> Result<Option<Vec<Vec<u8>>>, RespError> {
    let idle = Duration::from_millis(limits.idle_timeout_ms);
    match tokio::time::timeout(idle, reader.wait_for_data()).await {
        Err(_) => {
            tracing::debug!("idle connection closed");
            return Ok(None);
        }
        Ok(Ok(0)) => return Ok(None),
        Ok(r) => {
            r?;
        }
    }
    let read = Duration::from_millis(limits.read_timeout_ms);
    tokio::time::timeout(read, reader.read_request())
        .await
        .map_err(|_| timed_out("request not received", limits.read_timeout_ms))?
}

async fn serve_connection(shared: Arc<Shared>, stream: TcpStream) -> Result<(), RespError> {
    stream.set_nodelay(true)?;
    let Some(default_ns) = shared.namespace(DEFAULT_NAMESPACE) else {
        return Ok(());
    };
    let mut session = Session {
        admin: shared.admin_password.is_none(),
        nonce: None,
        ns: default_ns,
        writable: true,
    };
    let limits = shared.limits;
    let (read_half, mut writer) = stream.into_split();
    let mut reader = RespReader::new(read_half);
    let mut out: Vec<u8> = Vec::new();
    loop {
        let args = match next_request(&mut reader, &limits).await {
            Ok(Some(args)) => args,
            Ok(None) => return Ok(()),
            Err(e) => {
                if let Some(message) = e.server_message() {
                    if let Some(m) = shared.metrics.get() {
                        m.error();
                    }
                    // After the replies still batched for earlier pipelined requests.
                    encode_out(&mut out, &Out::Error(message));
                    send(&mut writer, &mut out.as_slice(), limits.write_timeout_ms).await?;
                    if matches!(e, RespError::PayloadTooBig { .. }) {
                        linger(&mut reader, &mut writer).await;
                    }
                }
                return Err(e);
            }
        };
        let rx: usize = args.iter().map(Vec::len).sum();
        shared
            .stats
            .rx_bytes
            .fetch_add(rx as u64, Ordering::Relaxed);
        let reply = commands::dispatch(&shared, &mut session, args).await;
        if matches!(reply, Out::Error(_) | Out::ErrorOwned(_)) {
            if let Some(m) = shared.metrics.get() {
                m.error();
            }
        }
        match reply {
            Out::Bulk(value) if value.len() > INLINE_REPLY_BYTES_MAX => {
                // Large value: header from the reply buffer, value straight from its Vec.
                push_header(&mut out, b'$', value.len() as u64);
                let mut bufs =
                    bytes::Buf::chain(out.as_slice(), value.as_slice()).chain(&b"\r\n"[..]);
                send(&mut writer, &mut bufs, limits.write_timeout_ms).await?;
                shared
                    .stats
                    .tx_bytes
                    .fetch_add(value.len() as u64, Ordering::Relaxed);
                out.clear();
            }
            Out::Encoded(bytes) if bytes.len() > INLINE_REPLY_BYTES_MAX => {
                let mut bufs = bytes::Buf::chain(out.as_slice(), bytes.as_slice());
                send(&mut writer, &mut bufs, limits.write_timeout_ms).await?;
                shared
                    .stats
                    .tx_bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                out.clear();
            }
            reply => encode_out(&mut out, &reply),
        }
        // A client that pipelines gets its replies batched; one that waits gets each at once.
        if reader.buffered() == 0 && !out.is_empty() {
            send(&mut writer, &mut out.as_slice(), limits.write_timeout_ms).await?;
            shared
                .stats
                .tx_bytes
                .fetch_add(out.len() as u64, Ordering::Relaxed);
            out.clear();
            if out.capacity() > REPLY_BUFFER_KEPT_BYTES {
                out.shrink_to(REPLY_BUFFER_KEPT_BYTES);
            }
        }
    }
}

/// Half-closes and drains the client's remaining upload, bounded in time and bytes.
async fn linger(
    reader: &mut RespReader<tokio::net::tcp::OwnedReadHalf>,
    writer: &mut tokio::net::tcp::OwnedWriteHalf,
) {
    let _ = writer.shutdown().await;
    let drain = async {
        let mut scratch = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        while total < LINGER_BYTES_MAX {
            match reader.get_mut().read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(LINGER_MS), drain).await;
}
