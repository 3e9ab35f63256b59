//! Async client for one 0-db hoster and namespace: a small connection pool (one request in flight
//! per connection), authentication, typed errors, and a health state that makes calls to a dead
//! hoster fail at once instead of each paying a connect timeout.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Buf as _;
use sha1::Digest as _;
use tokio::io::AsyncWriteExt as _;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::join::join_all;
use crate::resp::{
    encode_request, encode_request_head, short_hex, IntoReply, Reply, RespError, RespReader,
    KEY_BYTES_MAX, VALUE_BYTES_MAX,
};

/// Values up to this size are copied into the request buffer and sent with one `write`; larger ones
/// go out with a vectored write straight from the caller's slice. Below it a copy is cheaper than
/// a second iovec; above it the copy starts to cost real memory bandwidth.
const INLINE_VALUE_BYTES_MAX: usize = 16 * 1024;

/// Longest key `set_large` accepts: a part key is the key plus a 2-byte part index and must stay
/// within 0-db's 255-byte keys.
pub const LARGE_KEY_BYTES_MAX: usize = KEY_BYTES_MAX - LARGE_PART_SUFFIX_BYTES;

/// Bytes appended to a key to name one part of a large value (u16 little-endian part index).
pub const LARGE_PART_SUFFIX_BYTES: usize = 2;

/// Most parts of one large value: the part index is a u16, so 65 536 parts of 8 MiB (512 GiB).
pub const LARGE_PARTS_MAX: u64 = u16::MAX as u64 + 1;

/// Where one hoster is and how to get into its namespace.
#[derive(Clone)]
pub struct HosterConfig {
    /// `host:port`.
    pub address: String,
    pub namespace: String,
    /// Namespace password, if the namespace has one.
    pub password: Option<String>,
    /// The hoster's `--admin` password: needed to create namespaces on a hoster that has one.
    pub admin_password: Option<String>,
}

impl std::fmt::Debug for HosterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Passwords must not end up in logs.
        f.debug_struct("HosterConfig")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<set>"),
            )
            .finish()
    }
}

/// Pool size and timeouts for one hoster.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// TCP connections to this hoster at most; each carries one request at a time (0-db stalls
    /// ~40 ms per batch when requests are pipelined over TCP).
    pub connections_max: usize,
    /// TCP connect plus authentication and SELECT.
    pub connect_timeout_ms: u64,
    /// One request: sending it and reading the whole reply.
    pub request_timeout_ms: u64,
    /// After a connect failure or a timeout, calls fail at once for this long before one call
    /// tries the hoster again.
    pub down_retry_ms: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connections_max: 4,
            // Loopback and LAN hosters answer a connect in well under a millisecond; two seconds
            // covers a loaded WAN path without stalling a store for long on a dead one.
            connect_timeout_ms: 2_000,
            // An 8 MiB SET to a real 0-db (≈ 150 MiB/s) takes ~55 ms; 15 s leaves room for a slow
            // link or a busy hoster yet ends a stuck request.
            request_timeout_ms: 15_000,
            down_retry_ms: 2_000,
        }
    }
}

/// What the client last saw of its hoster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// No request answered or failed yet.
    Unknown,
    /// The last request got an answer (even an error reply: the hoster is alive).
    Up,
    /// Connecting failed or a request timed out; `since` is the first failure of this outage.
    Down { since: Instant, error: String },
}

/// One SCAN batch: the cursor to continue after it and the keys it listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanBatch {
    pub cursor: Vec<u8>,
    pub keys: Vec<Vec<u8>>,
}

/// A namespace as NSINFO describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NsInfo {
    pub name: String,
    /// Live keys.
    pub entries: u64,
    /// Live payload bytes.
    pub data_size_bytes: u64,
    /// `maxsize`; 0 = unlimited.
    pub data_limits_bytes: u64,
    pub index_size_bytes: Option<u64>,
    /// `userkey` or `sequential`.
    pub mode: String,
    pub public: bool,
    pub password: bool,
    pub worm: bool,
    pub locked: bool,
    /// Every `key: value` line, in order, including the ones above.
    pub fields: Vec<(String, String)>,
}

impl NsInfo {
    /// Parses NSINFO's `key: value` lines (`# section` headers and blank lines are skipped).
    pub fn parse(text: &str) -> Result<Self, String> {
        let fields: Vec<(String, String)> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| format!("NSINFO has no {name:?} line"))
        };
        let number = |name: &str| {
            get(name)?
                .parse::<u64>()
                .map_err(|e| format!("NSINFO {name}: {e}"))
        };
        let flag = |name: &str| match get(name)? {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => Err(format!("NSINFO {name}: expected yes/no, got {other:?}")),
        };
        Ok(Self {
            name: get("name")?.to_owned(),
            entries: number("entries")?,
            data_size_bytes: number("data_size_bytes")?,
            data_limits_bytes: number("data_limits_bytes")?,
            index_size_bytes: number("index_size_bytes").ok(),
            mode: get("mode")?.to_owned(),
            public: flag("public")?,
            password: flag("password")?,
            worm: flag("worm")?,
            locked: flag("locked").unwrap_or(false),
            fields,
        })
    }
}

/// Everything that can go wrong talking to a hoster. Every variant names the hoster, and the key
/// (shortened hex) when there is one.
#[derive(Debug, thiserror::Error)]
pub enum ZdbError {
    #[error(
        "hoster {address} is down for {down_for_ms} ms ({error}); next attempt in {retry_in_ms} ms"
    )]
    HosterDown {
        address: String,
        error: String,
        down_for_ms: u64,
        retry_in_ms: u64,
    },
    #[error("hoster {address}: cannot connect: {source}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("hoster {address}: {what} timed out after {after_ms} ms")]
    Timeout {
        address: String,
        what: &'static str,
        after_ms: u64,
    },
    #[error("hoster {address}: connection lost during {command}: {source}")]
    Connection {
        address: String,
        command: &'static str,
        #[source]
        source: RespError,
    },
    #[error("hoster {address}: unexpected reply to {command}: {reply}")]
    UnexpectedReply {
        address: String,
        command: &'static str,
        reply: String,
    },
    #[error("hoster {address}: key {key}: value of {len} bytes is over 0-db's {VALUE_BYTES_MAX}-byte limit")]
    PayloadTooBig {
        address: String,
        key: String,
        len: u64,
    },
    #[error("hoster {address}: key {key}: {len} bytes, keys must be 1..={max} bytes")]
    InvalidKey {
        address: String,
        key: String,
        len: usize,
        max: usize,
    },
    #[error(
        "hoster {address}: key {key}: value of {len} bytes needs more than {LARGE_PARTS_MAX} parts"
    )]
    TooManyParts {
        address: String,
        key: String,
        len: u64,
    },
    #[error("hoster {address}: key {key}: expected {expected} bytes, the hoster holds {actual}")]
    LengthMismatch {
        address: String,
        key: String,
        expected: u64,
        actual: u64,
    },
    #[error("hoster {address}: namespace {namespace:?} does not exist")]
    NamespaceNotFound { address: String, namespace: String },
    #[error("hoster {address}: namespace {namespace:?} is private and its password was not given")]
    Protected { address: String, namespace: String },
    #[error("hoster {address}: access denied: wrong {what}")]
    AccessDenied { address: String, what: &'static str },
    #[error("hoster {address}: namespace {namespace:?} is read-only for us (public namespace, password not given)")]
    ReadOnly { address: String, namespace: String },
    #[error("hoster {address}: namespace {namespace:?} is locked or frozen: {message}")]
    Locked {
        address: String,
        namespace: String,
        message: String,
    },
    #[error("hoster {address}: key {key}: refused by worm mode (no overwrite, no delete)")]
    Worm { address: String, key: String },
    #[error("hoster {address}: namespace {namespace:?} is full (maxsize reached)")]
    NoSpace { address: String, namespace: String },
    #[error("hoster {address}: {command} needs the admin password")]
    PermissionDenied {
        address: String,
        command: &'static str,
    },
    #[error("hoster {address}: {message}")]
    Server { address: String, message: String },
}

impl ZdbError {
    /// True when the error says nothing about the data, only that the hoster could not be
    /// reached in time: the caller should try another hoster.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::HosterDown { .. }
                | Self::Connect { .. }
                | Self::Timeout { .. }
                | Self::Connection { .. }
        )
    }
}

/// How a request ended, before the caller interprets it.
enum Answer {
    Reply(Reply),
    Filled,
    WrongLength(u64),
}

struct HealthState {
    health: Health,
    /// While Down: calls before this instant fail at once.
    retry_at: Option<Instant>,
}

struct Inner {
    cfg: HosterConfig,
    opts: ClientOptions,
    idle: Mutex<Vec<Conn>>,
    permits: Semaphore,
    health: Mutex<HealthState>,
}

/// Client for one hoster + namespace. Cheap to clone; clones share the pool and health.
#[derive(Clone)]
pub struct ZdbClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ZdbClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZdbClient")
            .field("address", &self.inner.cfg.address)
            .field("namespace", &self.inner.cfg.namespace)
            .field("health", &self.health())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave them inconsistent (plain field updates).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Key of part `index` of a large value: the key followed by the part index as u16 little-endian.
pub fn large_part_key(key: &[u8], index: u16) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + LARGE_PART_SUFFIX_BYTES);
    k.extend_from_slice(key);
    k.extend_from_slice(&index.to_le_bytes());
    k
}

/// Number of parts a large value of `len` bytes is stored in at 8 MiB per part.
pub fn large_part_count(len: u64) -> u64 {
    large_part_count_with(len, VALUE_BYTES_MAX)
}

/// Number of parts a large value of `len` bytes is stored in at `part_bytes` per part:
/// ⌈len / part_bytes⌉, and one (empty) part for an empty value so that "stored" and "missing"
/// stay distinguishable.
pub fn large_part_count_with(len: u64, part_bytes: usize) -> u64 {
    len.div_ceil(part_bytes.max(1) as u64).max(1)
}

fn sha1_hex(nonce: &str, password: &str) -> String {
    let mut h = sha1::Sha1::new();
    h.update(nonce.as_bytes());
    h.update(b":");
    h.update(password.as_bytes());
    hex::encode(h.finalize())
}

/// One TCP connection with its read buffer and request buffer.
struct Conn {
    reader: RespReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    out: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        let (r, w) = stream.into_split();
        Self {
            reader: RespReader::new(r),
            writer: w,
            out: Vec::with_capacity(512),
        }
    }

    async fn send(&mut self, args: &[&[u8]]) -> Result<(), RespError> {
        self.out.clear();
        match args.split_last() {
            Some((last, leading)) if last.len() > INLINE_VALUE_BYTES_MAX => {
                encode_request_head(&mut self.out, leading, last.len());
                let mut bufs = self.out.as_slice().chain(*last).chain(&b"\r\n"[..]);
                self.writer.write_all_buf(&mut bufs).await?;
            }
            _ => {
                encode_request(&mut self.out, args);
                self.writer.write_all(&self.out).await?;
            }
        }
        Ok(())
    }

    async fn roundtrip(
        &mut self,
        args: &[&[u8]],
        dest: Option<&mut [u8]>,
    ) -> Result<Answer, RespError> {
        self.send(args).await?;
        match dest {
            None => Ok(Answer::Reply(self.reader.read_reply().await?)),
            Some(dest) => Ok(match self.reader.read_reply_into(dest).await? {
                IntoReply::Filled => Answer::Filled,
                IntoReply::WrongLength(n) => Answer::WrongLength(n),
                IntoReply::Other(r) => Answer::Reply(r),
            }),
        }
    }
}

/// Failures that mean a pooled connection had gone stale (the hoster restarted or closed it while
/// idle), so the request is worth one retry on a fresh connection.
fn is_stale(e: &RespError) -> bool {
    use std::io::ErrorKind as K;
    match e {
        RespError::Closed | RespError::UnexpectedEof => true,
        RespError::Io(io) => matches!(
            io.kind(),
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof
        ),
        _ => false,
    }
}

impl ZdbClient {
    /// Lazy: nothing is connected until the first call.
    pub fn new(cfg: HosterConfig, opts: ClientOptions) -> Self {
        let permits = Semaphore::new(opts.connections_max.max(1));
        Self {
            inner: Arc::new(Inner {
                cfg,
                opts,
                idle: Mutex::new(Vec::new()),
                permits,
                health: Mutex::new(HealthState {
                    health: Health::Unknown,
                    retry_at: None,
                }),
            }),
        }
    }

    pub fn address(&self) -> &str {
        &self.inner.cfg.address
    }

    pub fn namespace(&self) -> &str {
        &self.inner.cfg.namespace
    }

    pub fn health(&self) -> Health {
        lock(&self.inner.health).health.clone()
    }

    fn addr(&self) -> String {
        self.inner.cfg.address.clone()
    }

    fn ns(&self) -> String {
        self.inner.cfg.namespace.clone()
    }

    fn down_error(&self, state: &HealthState, now: Instant) -> Option<ZdbError> {
        match (&state.health, state.retry_at) {
            (Health::Down { since, error }, Some(retry_at)) if now < retry_at => {
                Some(ZdbError::HosterDown {
                    address: self.addr(),
                    error: error.clone(),
                    down_for_ms: now.duration_since(*since).as_millis() as u64,
                    retry_in_ms: retry_at.duration_since(now).as_millis() as u64,
                })
            }
            _ => None,
        }
    }

    /// Fails at once while the hoster is Down and its retry window has not passed.
    fn fast_fail(&self) -> Result<(), ZdbError> {
        let state = lock(&self.inner.health);
        match self.down_error(&state, Instant::now()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Like `fast_fail`, but when the window has passed this caller becomes the one probe of the
    /// next window: everybody else keeps failing fast until it has an answer.
    fn admit(&self) -> Result<(), ZdbError> {
        let mut state = lock(&self.inner.health);
        let now = Instant::now();
        if let Some(e) = self.down_error(&state, now) {
            return Err(e);
        }
        if matches!(state.health, Health::Down { .. }) {
            state.retry_at = Some(now + Duration::from_millis(self.inner.opts.down_retry_ms));
        }
        Ok(())
    }

    fn mark_down(&self, error: String) {
        let now = Instant::now();
        {
            let mut state = lock(&self.inner.health);
            let since = match &state.health {
                Health::Down { since, .. } => *since,
                _ => now,
            };
            tracing::warn!(address = %self.inner.cfg.address, %error, "hoster marked down");
            state.health = Health::Down { since, error };
            state.retry_at = Some(now + Duration::from_millis(self.inner.opts.down_retry_ms));
        }
        // Idle connections to a hoster that stopped answering are almost surely dead too.
        lock(&self.inner.idle).clear();
    }

    fn mark_up(&self) {
        let mut state = lock(&self.inner.health);
        if state.health != Health::Up {
            if matches!(state.health, Health::Down { .. }) {
                tracing::info!(address = %self.inner.cfg.address, "hoster is up again");
            }
            state.health = Health::Up;
            state.retry_at = None;
        }
    }

    fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.opts.connect_timeout_ms)
    }

    fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.opts.request_timeout_ms)
    }

    /// Maps a 0-db error reply to a typed error.
    fn server_error(&self, message: String, command: &'static str, key: Option<&[u8]>) -> ZdbError {
        let address = self.addr();
        let key_hex = || key.map(short_hex).unwrap_or_default();
        match message.as_str() {
            "Payload too big" => ZdbError::PayloadTooBig {
                address,
                key: key_hex(),
                len: 0,
            },
            "Namespace not found" => ZdbError::NamespaceNotFound {
                address,
                namespace: self.ns(),
            },
            "Namespace protected and private" => ZdbError::Protected {
                address,
                namespace: self.ns(),
            },
            "Access denied" => ZdbError::AccessDenied {
                address,
                what: "password",
            },
            "Namespace is in read-only mode" => ZdbError::ReadOnly {
                address,
                namespace: self.ns(),
            },
            "Namespace is protected by worm mode"
            | "Cannot delete a key when namespace is in worm mode" => ZdbError::Worm {
                address,
                key: key_hex(),
            },
            "No space left on this namespace" => ZdbError::NoSpace {
                address,
                namespace: self.ns(),
            },
            "Permission denied" => ZdbError::PermissionDenied { address, command },
            "Key too large" | "Invalid key" | "Invalid argument, key needed" => {
                let len = key.map_or(0, <[u8]>::len);
                ZdbError::InvalidKey {
                    address,
                    key: key_hex(),
                    len,
                    max: KEY_BYTES_MAX,
                }
            }
            m if m.starts_with("Namespace is temporarily") => ZdbError::Locked {
                address,
                namespace: self.ns(),
                message,
            },
            _ => ZdbError::Server {
                address,
                message: format!("{command}: {message}"),
            },
        }
    }

    fn unexpected(&self, command: &'static str, reply: &Reply) -> ZdbError {
        ZdbError::UnexpectedReply {
            address: self.addr(),
            command,
            reply: format!("{reply:?}"),
        }
    }

    fn unexpected_text(&self, command: &'static str, expected: &str) -> ZdbError {
        ZdbError::UnexpectedReply {
            address: self.addr(),
            command,
            reply: format!("not {expected}"),
        }
    }

    fn check_key(&self, key: &[u8], max: usize) -> Result<(), ZdbError> {
        if key.is_empty() || key.len() > max {
            return Err(ZdbError::InvalidKey {
                address: self.addr(),
                key: short_hex(key),
                len: key.len(),
                max,
            });
        }
        Ok(())
    }

    /// A request/reply on a connection outside the pool (handshake, namespace setup).
    async fn call_on(
        &self,
        conn: &mut Conn,
        args: &[&[u8]],
        command: &'static str,
    ) -> Result<Reply, ZdbError> {
        match conn.roundtrip(args, None).await {
            Ok(Answer::Reply(r)) => Ok(r),
            Ok(_) => Err(ZdbError::UnexpectedReply {
                address: self.addr(),
                command,
                reply: "bulk".to_owned(),
            }),
            Err(source) => Err(ZdbError::Connection {
                address: self.addr(),
                command,
                source,
            }),
        }
    }

    /// `AUTH SECURE CHALLENGE`: a single-use nonce for a password proof.
    async fn challenge(&self, conn: &mut Conn) -> Result<String, ZdbError> {
        match self
            .call_on(
                conn,
                &[b"AUTH", b"SECURE", b"CHALLENGE"],
                "AUTH SECURE CHALLENGE",
            )
            .await?
        {
            Reply::Status(nonce) => Ok(nonce),
            Reply::Error(m) => Err(self.server_error(m, "AUTH SECURE CHALLENGE", None)),
            other => Err(self.unexpected("AUTH SECURE CHALLENGE", &other)),
        }
    }

    /// TCP connect and, when configured, admin authentication; no SELECT yet.
    async fn open(&self) -> Result<Conn, ZdbError> {
        let stream = TcpStream::connect(&self.inner.cfg.address)
            .await
            .map_err(|source| ZdbError::Connect {
                address: self.addr(),
                source,
            })?;
        stream
            .set_nodelay(true)
            .map_err(|source| ZdbError::Connect {
                address: self.addr(),
                source,
            })?;
        let mut conn = Conn::new(stream);
        if let Some(admin) = &self.inner.cfg.admin_password {
            let nonce = self.challenge(&mut conn).await?;
            let proof = sha1_hex(&nonce, admin);
            match self
                .call_on(
                    &mut conn,
                    &[b"AUTH", b"SECURE", proof.as_bytes()],
                    "AUTH SECURE",
                )
                .await?
            {
                Reply::Status(_) => {}
                // A hoster without --admin treats every connection as admin already.
                Reply::Error(m) if m == "Authentication disabled" => {}
                Reply::Error(m) if m == "Access denied" => {
                    return Err(ZdbError::AccessDenied {
                        address: self.addr(),
                        what: "admin password",
                    })
                }
                Reply::Error(m) => return Err(self.server_error(m, "AUTH SECURE", None)),
                other => return Err(self.unexpected("AUTH SECURE", &other)),
            }
        }
        Ok(conn)
    }

    /// SELECT the namespace, proving the password with a fresh nonce so it never crosses the wire.
    async fn select(&self, conn: &mut Conn) -> Result<(), ZdbError> {
        let ns = self.inner.cfg.namespace.as_bytes();
        let reply = match &self.inner.cfg.password {
            Some(password) => {
                let nonce = self.challenge(conn).await?;
                let proof = sha1_hex(&nonce, password);
                self.call_on(
                    conn,
                    &[b"SELECT", ns, b"SECURE", proof.as_bytes()],
                    "SELECT",
                )
                .await?
            }
            None => self.call_on(conn, &[b"SELECT", ns], "SELECT").await?,
        };
        match reply {
            Reply::Status(_) => Ok(()),
            Reply::Error(m) if m == "Access denied" => Err(ZdbError::AccessDenied {
                address: self.addr(),
                what: "namespace password",
            }),
            Reply::Error(m) => Err(self.server_error(m, "SELECT", None)),
            other => Err(self.unexpected("SELECT", &other)),
        }
    }

    /// A new pooled connection: connect, authenticate, select; all under the connect timeout.
    /// Network failures and timeouts mark the hoster Down; refusals (wrong password...) do not.
    async fn connect(&self) -> Result<Conn, ZdbError> {
        let attempt = async {
            let mut conn = self.open().await?;
            self.select(&mut conn).await?;
            Ok::<_, ZdbError>(conn)
        };
        match tokio::time::timeout(self.connect_timeout(), attempt).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => {
                if e.is_unavailable() {
                    self.mark_down(e.to_string());
                } else {
                    self.mark_up();
                }
                Err(e)
            }
            Err(_) => {
                let e = ZdbError::Timeout {
                    address: self.addr(),
                    what: "connect",
                    after_ms: self.inner.opts.connect_timeout_ms,
                };
                self.mark_down(e.to_string());
                Err(e)
            }
        }
    }

    /// Runs one request on a pooled connection. `probe` skips the Down fast-fail (ping).
    async fn exec(
        &self,
        args: &[&[u8]],
        mut dest: Option<&mut [u8]>,
        command: &'static str,
        probe: bool,
    ) -> Result<Answer, ZdbError> {
        if !probe {
            self.fast_fail()?;
        }
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| ZdbError::Server {
                address: self.addr(),
                message: "client pool closed".to_owned(),
            })?;
        // Checked again after queueing for a connection: the hoster may have gone Down meanwhile,
        // and only one caller per retry window gets through to probe it.
        if !probe {
            self.admit()?;
        }
        let mut retried = false;
        loop {
            let pooled = lock(&self.inner.idle).pop();
            let reused = pooled.is_some();
            let mut conn = match pooled {
                Some(c) => c,
                None => self.connect().await?,
            };
            let outcome = tokio::time::timeout(
                self.request_timeout(),
                conn.roundtrip(args, dest.as_deref_mut()),
            )
            .await;
            match outcome {
                Err(_) => {
                    let e = ZdbError::Timeout {
                        address: self.addr(),
                        what: command,
                        after_ms: self.inner.opts.request_timeout_ms,
                    };
                    self.mark_down(e.to_string());
                    return Err(e);
                }
                Ok(Err(e)) if reused && !retried && is_stale(&e) => {
                    tracing::debug!(address = %self.inner.cfg.address, error = %e, "stale pooled connection, retrying on a new one");
                    retried = true;
                }
                Ok(Err(source)) => {
                    return Err(ZdbError::Connection {
                        address: self.addr(),
                        command,
                        source,
                    })
                }
                Ok(Ok(answer)) => {
                    self.mark_up();
                    // 0-db closes the connection after "Payload too big": do not reuse it.
                    let closed_by_server =
                        matches!(&answer, Answer::Reply(Reply::Error(m)) if m == "Payload too big");
                    if !closed_by_server {
                        lock(&self.inner.idle).push(conn);
                    }
                    return Ok(answer);
                }
            }
        }
    }

    async fn request(
        &self,
        args: &[&[u8]],
        command: &'static str,
        probe: bool,
    ) -> Result<Reply, ZdbError> {
        match self.exec(args, None, command, probe).await? {
            Answer::Reply(r) => Ok(r),
            Answer::Filled | Answer::WrongLength(_) => Err(ZdbError::UnexpectedReply {
                address: self.addr(),
                command,
                reply: "bulk".to_owned(),
            }),
        }
    }

    /// Any command, for what the typed methods do not cover (INFO, NSLIST, SCAN...). Error
    /// replies come back as typed errors; no client-side checks are made on the arguments.
    pub async fn command(&self, args: &[&[u8]]) -> Result<Reply, ZdbError> {
        let reply = self.request(args, "command", false).await?;
        match reply {
            Reply::Error(m) => Err(self.server_error(m, "command", args.get(1).copied())),
            other => Ok(other),
        }
    }

    /// PING. Also the health probe: it is tried even while the hoster is Down, and an answer marks
    /// it Up again.
    pub async fn ping(&self) -> Result<(), ZdbError> {
        match self.request(&[b"PING"], "PING", true).await? {
            Reply::Status(s) if s == "PONG" => Ok(()),
            Reply::Error(m) => Err(self.server_error(m, "PING", None)),
            other => Err(self.unexpected("PING", &other)),
        }
    }

    /// Stores a value of at most 8 MiB. 0-db's nil answer (the same bytes are already stored) is
    /// success, and so is a worm refusal when the stored value is byte-identical: storing the same
    /// thing twice is idempotent in every mode.
    pub async fn set(&self, key: &[u8], value: &[u8]) -> Result<(), ZdbError> {
        self.check_key(key, KEY_BYTES_MAX)?;
        if value.len() > VALUE_BYTES_MAX {
            return Err(ZdbError::PayloadTooBig {
                address: self.addr(),
                key: short_hex(key),
                len: value.len() as u64,
            });
        }
        match self.request(&[b"SET", key, value], "SET", false).await? {
            Reply::Bulk(_) | Reply::Nil => Ok(()),
            Reply::Error(m) => match self.server_error(m, "SET", Some(key)) {
                e @ ZdbError::Worm { .. } => {
                    if self.holds_same(key, value).await? {
                        Ok(())
                    } else {
                        Err(e)
                    }
                }
                ZdbError::PayloadTooBig { address, key, .. } => Err(ZdbError::PayloadTooBig {
                    address,
                    key,
                    len: value.len() as u64,
                }),
                e => Err(e),
            },
            other => Err(self.unexpected("SET", &other)),
        }
    }

    /// Whether `key` holds exactly `value` (length first, so a mismatch costs one small request).
    async fn holds_same(&self, key: &[u8], value: &[u8]) -> Result<bool, ZdbError> {
        if self.length(key).await? != Some(value.len() as u64) {
            return Ok(false);
        }
        let mut stored = vec![0u8; value.len()];
        match self.get_into(key, &mut stored).await {
            Ok(true) => Ok(stored == value),
            Ok(false) | Err(ZdbError::LengthMismatch { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ZdbError> {
        self.check_key(key, KEY_BYTES_MAX)?;
        match self.request(&[b"GET", key], "GET", false).await? {
            Reply::Bulk(v) => Ok(Some(v)),
            Reply::Nil => Ok(None),
            Reply::Error(m) => Err(self.server_error(m, "GET", Some(key))),
            other => Err(self.unexpected("GET", &other)),
        }
    }

    /// Reads a value whose length the caller knows straight into `dest`. `Ok(false)` when the key
    /// is missing; a stored value of another length is `LengthMismatch`.
    pub async fn get_into(&self, key: &[u8], dest: &mut [u8]) -> Result<bool, ZdbError> {
        self.check_key(key, KEY_BYTES_MAX)?;
        let expected = dest.len() as u64;
        match self.exec(&[b"GET", key], Some(dest), "GET", false).await? {
            Answer::Filled => Ok(true),
            Answer::WrongLength(actual) => Err(ZdbError::LengthMismatch {
                address: self.addr(),
                key: short_hex(key),
                expected,
                actual,
            }),
            Answer::Reply(Reply::Nil) => Ok(false),
            Answer::Reply(Reply::Error(m)) => Err(self.server_error(m, "GET", Some(key))),
            Answer::Reply(other) => Err(self.unexpected("GET", &other)),
        }
    }

    pub async fn exists(&self, key: &[u8]) -> Result<bool, ZdbError> {
        self.check_key(key, KEY_BYTES_MAX)?;
        match self.request(&[b"EXISTS", key], "EXISTS", false).await? {
            Reply::Integer(n) => Ok(n != 0),
            Reply::Error(m) => Err(self.server_error(m, "EXISTS", Some(key))),
            other => Err(self.unexpected("EXISTS", &other)),
        }
    }

    /// Deletes a key. Deleting a key that is not there is success (0-db's `-Key not found`), so a
    /// clean-up can be retried; worm namespaces refuse with `Worm`.
    pub async fn del(&self, key: &[u8]) -> Result<(), ZdbError> {
        self.check_key(key, KEY_BYTES_MAX)?;
        match self.request(&[b"DEL", key], "DEL", false).await? {
            Reply::Status(_) => Ok(()),
            Reply::Error(m) if m == "Key not found" => Ok(()),
            Reply::Error(m) => Err(self.server_error(m, "DEL", Some(key))),
            other => Err(self.unexpected("DEL", &other)),
        }
    }

    /// One SCAN batch after `cursor` (from the start when `None`): the next cursor and the live
    /// keys of the batch, or `None` past the last key (0-db's `-No more data`).
    pub async fn scan(&self, cursor: Option<&[u8]>) -> Result<Option<ScanBatch>, ZdbError> {
        let mut args: Vec<&[u8]> = vec![b"SCAN"];
        args.extend(cursor);
        match self.request(&args, "SCAN", false).await? {
            Reply::Array(mut parts) if parts.len() == 2 => {
                let (Reply::Array(items), Reply::Bulk(next)) = (parts.remove(1), parts.remove(0))
                else {
                    return Err(self.unexpected_text("SCAN", "a cursor and a key list"));
                };
                let mut keys = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Reply::Array(mut fields) if !fields.is_empty() => match fields.remove(0) {
                            Reply::Bulk(key) => keys.push(key),
                            _ => return Err(self.unexpected_text("SCAN", "a key entry")),
                        },
                        _ => return Err(self.unexpected_text("SCAN", "a key entry")),
                    }
                }
                Ok(Some(ScanBatch { cursor: next, keys }))
            }
            Reply::Error(m) if m == "No more data" => Ok(None),
            Reply::Error(m) => Err(self.server_error(m, "SCAN", None)),
            other => Err(self.unexpected("SCAN", &other)),
        }
    }

    /// Every live key of the namespace, at most `keys_max` (a bound on what a misbehaving
    /// hoster can make the caller hold; more is an unexpected reply).
    pub async fn scan_all(&self, keys_max: usize) -> Result<Vec<Vec<u8>>, ZdbError> {
        let mut keys = Vec::new();
        let mut cursor: Option<Vec<u8>> = None;
        while let Some(batch) = self.scan(cursor.as_deref()).await? {
            // A batch may be empty (0-db fills one for ~2 ms, live keys only): only the end
            // (`-No more data`) or a cursor that does not move ends the walk.
            if cursor.as_deref() == Some(batch.cursor.as_slice()) {
                break;
            }
            keys.extend(batch.keys);
            if keys.len() > keys_max {
                return Err(self.unexpected_text("SCAN", "at most the key bound of one listing"));
            }
            cursor = Some(batch.cursor);
        }
        Ok(keys)
    }

    /// The hoster's own integrity check (CRC32 of the stored payload): `Some(true)` intact,
    /// `Some(false)` corrupt, `None` missing.
    pub async fn check(&self, key: &[u8]) -> Result<Option<bool>, ZdbError> {
        self.check_key(key, KEY_BYTES_MAX)?;
        match self.request(&[b"CHECK", key], "CHECK", false).await? {
            Reply::Integer(n) => Ok(Some(n == 1)),
            Reply::Nil => Ok(None),
            Reply::Error(m) => Err(self.server_error(m, "CHECK", Some(key))),
            other => Err(self.unexpected("CHECK", &other)),
        }
    }

    pub async fn length(&self, key: &[u8]) -> Result<Option<u64>, ZdbError> {
        self.check_key(key, KEY_BYTES_MAX)?;
        match self.request(&[b"LENGTH", key], "LENGTH", false).await? {
            Reply::Integer(n) if n >= 0 => Ok(Some(n as u64)),
            Reply::Nil => Ok(None),
            Reply::Error(m) => Err(self.server_error(m, "LENGTH", Some(key))),
            other => Err(self.unexpected("LENGTH", &other)),
        }
    }

    /// Stores a value of any size as parts of at most 8 MiB under `key ‖ u16-LE part index`,
    /// written concurrently over the pool. The reader must know the length (`get_large`).
    pub async fn set_large(&self, key: &[u8], value: &[u8]) -> Result<(), ZdbError> {
        self.set_large_with(key, value, VALUE_BYTES_MAX).await
    }

    /// `set_large` with parts of `part_bytes` (clamped to 1..=8 MiB). Smaller parts cost more
    /// requests to write but let a reader that needs a few bytes fetch only the parts holding
    /// them, since 0-db has no range reads. The reader must pass the same part size.
    pub async fn set_large_with(
        &self,
        key: &[u8],
        value: &[u8],
        part_bytes: usize,
    ) -> Result<(), ZdbError> {
        self.check_key(key, LARGE_KEY_BYTES_MAX)?;
        let part_bytes = part_bytes.clamp(1, VALUE_BYTES_MAX);
        let parts = large_part_count_with(value.len() as u64, part_bytes);
        if parts > LARGE_PARTS_MAX {
            return Err(ZdbError::TooManyParts {
                address: self.addr(),
                key: short_hex(key),
                len: value.len() as u64,
            });
        }
        let chunks: Vec<&[u8]> = if value.is_empty() {
            vec![value]
        } else {
            value.chunks(part_bytes).collect()
        };
        let results = join_all(chunks.into_iter().enumerate().map(|(i, chunk)| async move {
            self.set(&large_part_key(key, i as u16), chunk).await
        }))
        .await;
        results.into_iter().collect()
    }

    /// Reads a value stored by `set_large`, parts concurrently and each straight into its place
    /// in the result. `Ok(None)` when any part is missing; a stored value of another total
    /// length is `LengthMismatch` naming the key.
    pub async fn get_large(&self, key: &[u8], len: u64) -> Result<Option<Vec<u8>>, ZdbError> {
        self.get_large_with(key, len, VALUE_BYTES_MAX).await
    }

    /// `get_large` of a value written by `set_large_with` with the same `part_bytes`.
    pub async fn get_large_with(
        &self,
        key: &[u8],
        len: u64,
        part_bytes: usize,
    ) -> Result<Option<Vec<u8>>, ZdbError> {
        self.check_key(key, LARGE_KEY_BYTES_MAX)?;
        let part_bytes = part_bytes.clamp(1, VALUE_BYTES_MAX);
        let parts = large_part_count_with(len, part_bytes);
        if parts > LARGE_PARTS_MAX {
            return Err(ZdbError::TooManyParts {
                address: self.addr(),
                key: short_hex(key),
                len,
            });
        }
        let size = usize::try_from(len).map_err(|_| ZdbError::TooManyParts {
            address: self.addr(),
            key: short_hex(key),
            len,
        })?;
        let mut out = vec![0u8; size];
        let mismatch = |actual: u64| ZdbError::LengthMismatch {
            address: self.addr(),
            key: short_hex(key),
            expected: len,
            actual,
        };
        let found = {
            let chunks: Vec<&mut [u8]> = if size == 0 {
                vec![&mut out[..]]
            } else {
                out.chunks_mut(part_bytes).collect()
            };
            // A part past the last one means the stored value is longer than `len`: checked
            // alongside the reads so it costs no extra round trip of latency.
            let beyond = async {
                match u16::try_from(parts) {
                    Ok(next) => self.length(&large_part_key(key, next)).await,
                    Err(_) => Ok(None),
                }
            };
            let reads = join_all(chunks.into_iter().enumerate().map(|(i, dest)| async move {
                match self.get_into(&large_part_key(key, i as u16), dest).await {
                    // The total the hoster holds is at least the parts before plus this one.
                    Err(ZdbError::LengthMismatch { actual, .. }) => {
                        Err(i as u64 * part_bytes as u64 + actual)
                    }
                    other => Ok(other),
                }
            }));
            let (beyond, reads) = tokio::join!(beyond, reads);
            let mut found = true;
            for r in reads {
                match r {
                    Err(actual) => return Err(mismatch(actual)),
                    Ok(Err(e)) => return Err(e),
                    Ok(Ok(present)) => found &= present,
                }
            }
            if let Some(extra) = beyond? {
                return Err(mismatch(len + extra));
            }
            found
        };
        Ok(found.then_some(out))
    }

    /// Like [`get_large_with`](Self::get_large_with), but a part that is missing, has the wrong
    /// length or is refused by the hoster does not fail the read: its bytes stay zero and its
    /// index is returned, so the caller can use the other parts (each checked by its own hash)
    /// and rebuild only that one. Fails only when the hoster is unreachable; `None` when no part
    /// is there at all.
    pub async fn get_large_parts_with(
        &self,
        key: &[u8],
        len: u64,
        part_bytes: usize,
    ) -> Result<Option<(Vec<u8>, Vec<usize>)>, ZdbError> {
        self.check_key(key, LARGE_KEY_BYTES_MAX)?;
        let part_bytes = part_bytes.clamp(1, VALUE_BYTES_MAX);
        let parts = large_part_count_with(len, part_bytes);
        let too_many = || ZdbError::TooManyParts {
            address: self.addr(),
            key: short_hex(key),
            len,
        };
        if parts > LARGE_PARTS_MAX {
            return Err(too_many());
        }
        let size = usize::try_from(len).map_err(|_| too_many())?;
        let mut out = vec![0u8; size];
        let chunks: Vec<&mut [u8]> = if size == 0 {
            vec![&mut out[..]]
        } else {
            out.chunks_mut(part_bytes).collect()
        };
        let reads = join_all(chunks.into_iter().enumerate().map(|(i, dest)| async move {
            (i, self.get_into(&large_part_key(key, i as u16), dest).await)
        }))
        .await;
        let mut unreadable = Vec::new();
        for (i, r) in reads {
            match r {
                Ok(true) => {}
                Err(e) if e.is_unavailable() => return Err(e),
                Ok(false) | Err(_) => unreadable.push(i),
            }
        }
        if unreadable.len() as u64 == parts {
            return Ok(None);
        }
        Ok(Some((out, unreadable)))
    }

    /// NSINFO of the configured namespace.
    pub async fn ns_info(&self) -> Result<NsInfo, ZdbError> {
        let ns = self.inner.cfg.namespace.as_bytes();
        match self.request(&[b"NSINFO", ns], "NSINFO", false).await? {
            Reply::Bulk(text) => NsInfo::parse(&String::from_utf8_lossy(&text)).map_err(|e| {
                ZdbError::UnexpectedReply {
                    address: self.addr(),
                    command: "NSINFO",
                    reply: e,
                }
            }),
            Reply::Error(m) => Err(self.server_error(m, "NSINFO", None)),
            other => Err(self.unexpected("NSINFO", &other)),
        }
    }

    /// Makes sure the namespace exists with the configured password (then private) and, if asked,
    /// worm mode;
    /// idempotent. Creating it (NSNEW) and setting its properties (NSSET) needs admin rights: the
    /// configured admin password, or a hoster without one. An existing namespace only gets the
    /// missing protections added (never removed); at the end the namespace is selected as every
    /// pooled connection will, so a wrong password shows up here.
    pub async fn ensure_namespace(&self, worm: bool) -> Result<(), ZdbError> {
        let setup = async {
            let mut conn = tokio::time::timeout(self.connect_timeout(), self.open())
                .await
                .map_err(|_| ZdbError::Timeout {
                    address: self.addr(),
                    what: "connect",
                    after_ms: self.inner.opts.connect_timeout_ms,
                })??;
            let ns = self.inner.cfg.namespace.as_bytes();
            let info = match self.call_on(&mut conn, &[b"NSINFO", ns], "NSINFO").await? {
                Reply::Bulk(text) => {
                    Some(NsInfo::parse(&String::from_utf8_lossy(&text)).map_err(|e| {
                        ZdbError::UnexpectedReply {
                            address: self.addr(),
                            command: "NSINFO",
                            reply: e,
                        }
                    })?)
                }
                Reply::Error(m) if m == "Namespace not found" => None,
                Reply::Error(m) => return Err(self.server_error(m, "NSINFO", None)),
                other => return Err(self.unexpected("NSINFO", &other)),
            };
            let (has_password, has_worm, is_public) = match &info {
                Some(i) => (i.password, i.worm, i.public),
                None => {
                    match self.call_on(&mut conn, &[b"NSNEW", ns], "NSNEW").await? {
                        Reply::Status(_) => {}
                        // Created concurrently by another caller: fine, it is there now.
                        Reply::Error(m) if m == "This namespace is not available" => {}
                        Reply::Error(m) => return Err(self.server_error(m, "NSNEW", None)),
                        other => return Err(self.unexpected("NSNEW", &other)),
                    }
                    // 0-db creates namespaces public.
                    (false, false, true)
                }
            };
            let mut settings: Vec<(&[u8], &[u8])> = Vec::new();
            if let (Some(password), false) = (&self.inner.cfg.password, has_password) {
                settings.push((b"password", password.as_bytes()));
            }
            // A password-protected namespace is made private: a public one would still let
            // anyone read it (0-db serves public namespaces read-only without the password).
            if self.inner.cfg.password.is_some() && is_public {
                settings.push((b"public", b"0"));
            }
            if worm && !has_worm {
                settings.push((b"worm", b"1"));
            }
            for (prop, value) in settings {
                match self
                    .call_on(&mut conn, &[b"NSSET", ns, prop, value], "NSSET")
                    .await?
                {
                    Reply::Status(_) => {}
                    Reply::Error(m) => return Err(self.server_error(m, "NSSET", None)),
                    other => return Err(self.unexpected("NSSET", &other)),
                }
            }
            self.select(&mut conn).await
        };
        // Connect timeout for the connection, request timeout for the handful of commands.
        let budget = self.connect_timeout() + self.request_timeout();
        let result = match tokio::time::timeout(budget, setup).await {
            Ok(r) => r,
            Err(_) => Err(ZdbError::Timeout {
                address: self.addr(),
                what: "namespace setup",
                after_ms: budget.as_millis() as u64,
            }),
        };
        match &result {
            Ok(()) => self.mark_up(),
            Err(e) if e.is_unavailable() => self.mark_down(e.to_string()),
            Err(_) => self.mark_up(),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn part_keys_and_counts() {
        assert_eq!(large_part_key(b"ab", 0x0102), b"ab\x02\x01");
        assert_eq!(large_part_count(0), 1);
        assert_eq!(large_part_count(1), 1);
        assert_eq!(large_part_count(VALUE_BYTES_MAX as u64), 1);
        assert_eq!(large_part_count(VALUE_BYTES_MAX as u64 + 1), 2);
    }

    #[test]
    fn secure_proof_is_sha1_of_nonce_colon_password() {
        // sha1("abc:pw") computed independently.
        let expected = {
            let mut h = sha1::Sha1::new();
            h.update(b"abc:pw");
            hex::encode(h.finalize())
        };
        assert_eq!(sha1_hex("abc", "pw"), expected);
        assert_eq!(expected.len(), 40);
    }

    #[test]
    fn parses_nsinfo() {
        let text = "# namespace\nname: ns1\nentries: 3\npublic: yes\nworm: no\nlocked: no\npassword: yes\ndata_size_bytes: 10\ndata_size_mb: 0.00\ndata_limits_bytes: 0\nindex_size_bytes: 5\nmode: userkey\n";
        let info = NsInfo::parse(text).unwrap();
        assert_eq!(info.name, "ns1");
        assert_eq!(info.entries, 3);
        assert!(info.public && info.password && !info.worm);
        assert_eq!(info.data_size_bytes, 10);
        assert_eq!(info.index_size_bytes, Some(5));
        assert!(NsInfo::parse("# namespace\nname: x\n").is_err());
    }

    #[test]
    fn debug_hides_passwords() {
        let cfg = HosterConfig {
            address: "a:1".into(),
            namespace: "n".into(),
            password: Some("secret".into()),
            admin_password: Some("secret".into()),
        };
        assert!(!format!("{cfg:?}").contains("secret"));
    }
}
