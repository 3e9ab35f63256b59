//! Prometheus metrics of the archive (families named in Substrate's style, `archiver_*`) and a
//! small HTTP/1 server answering `GET /metrics` with the text exposition format.
//!
//! The families are registered into a caller's [`Registry`], so one process (a node with its
//! hoster, say) can serve several crates' families on one port. Label values are bounded: a fixed
//! status set, the configured hosters, the served RPC methods.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// The one path served; anything else is 404.
pub const METRICS_PATH: &str = "/metrics";

/// Scrapes served at once: a scraper or two and an operator's curl; a flood of connections is
/// closed at accept instead of holding file descriptors and tasks.
pub const METRICS_CONNECTIONS_MAX: usize = 16;

/// A connection must send its request headers within this, so a silent peer frees its slot.
pub const METRICS_HEADER_READ_TIMEOUT_MS: u64 = 5_000;

/// A whole exchange (request, gather, reply taken by the peer) must end within this: a reader
/// that stops reading would otherwise hold its slot for ever.
pub const METRICS_CONNECTION_TIMEOUT_MS: u64 = 30_000;

/// Back-off after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF_MS: u64 = 50;

/// Most `redundancy_left` levels reported: Reed-Solomon over GF(2^8) has at most 256 shards,
/// so a segment can never have more levels than this.
pub const REDUNDANCY_LEVELS_MAX: usize = 256;

/// Buckets of `archiver_challenge_seconds`: challenge deadlines lie between 50 ms and 1 s.
const CHALLENGE_BUCKETS_SECONDS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Buckets of `archiver_rpc_request_seconds`: from a cached header (sub-millisecond) to a pruned
/// block whose segment is rebuilt from the hosters (seconds).
const RPC_BUCKETS_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why metrics could not be set up or served.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("registering metric family {family}: {source}")]
    Register {
        family: &'static str,
        #[source]
        source: prometheus::Error,
    },
    #[error("building metric family {family}: {source}")]
    Family {
        family: &'static str,
        #[source]
        source: prometheus::Error,
    },
    #[error("cannot listen for metrics scrapes on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Where a block height stands in the archive's pipeline (`archiver_block_height{status}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeightStatus {
    /// Appended to the local log.
    Archived,
    /// In a sealed segment.
    Sealed,
    /// In a segment whose shards were all sent to hosters.
    Dispersed,
    /// In a segment read back from the hosters and verified.
    Verified,
    /// Below the prune watermark: the node may delete it.
    Pruned,
}

impl HeightStatus {
    pub const ALL: [HeightStatus; 5] = [
        HeightStatus::Archived,
        HeightStatus::Sealed,
        HeightStatus::Dispersed,
        HeightStatus::Verified,
        HeightStatus::Pruned,
    ];

    /// The `status` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            HeightStatus::Archived => "archived",
            HeightStatus::Sealed => "sealed",
            HeightStatus::Dispersed => "dispersed",
            HeightStatus::Verified => "verified",
            HeightStatus::Pruned => "pruned",
        }
    }
}

/// Every family of the archive. Cloning is cheap (one `Arc`); all clones update the same series.
#[derive(Clone)]
pub struct ArchiveMetrics {
    inner: Arc<Families>,
}

impl std::fmt::Debug for ArchiveMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveMetrics").finish_non_exhaustive()
    }
}

struct Families {
    block_height: IntGaugeVec,
    segments: IntGaugeVec,
    repair_queue_segments: IntGauge,
    repair_queue_bytes: IntGauge,
    repaired_shards: IntCounter,
    repaired_bytes: IntCounter,
    hoster_up: IntGaugeVec,
    hoster_bytes: IntGaugeVec,
    challenges: IntCounterVec,
    challenge_seconds: HistogramVec,
    gc_deleted_shards: IntCounter,
    sweeps: IntGauge,
    unreadable: IntGauge,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    cache_bytes: IntGauge,
    rpc_seconds: HistogramVec,
}

fn family<T>(family: &'static str, built: prometheus::Result<T>) -> Result<T, MetricsError> {
    built.map_err(|source| MetricsError::Family { family, source })
}

fn gauge(name: &'static str, help: &str) -> Result<IntGauge, MetricsError> {
    family(name, IntGauge::new(name, help))
}

fn counter(name: &'static str, help: &str) -> Result<IntCounter, MetricsError> {
    family(name, IntCounter::new(name, help))
}

fn gauge_vec(name: &'static str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, MetricsError> {
    family(name, IntGaugeVec::new(Opts::new(name, help), labels))
}

fn histogram_vec(
    name: &'static str,
    help: &str,
    label: &str,
    buckets: &[f64],
) -> Result<HistogramVec, MetricsError> {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    family(name, HistogramVec::new(opts, &[label]))
}

/// Saturates instead of wrapping: a gauge above i64::MAX is nonsense either way.
fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Families {
    fn new() -> Result<Self, MetricsError> {
        Ok(Self {
            block_height: gauge_vec(
                "archiver_block_height",
                "Highest block number at each archive stage",
                &["status"],
            )?,
            segments: gauge_vec(
                "archiver_segments",
                "Sealed segments by how many more of their shards may be lost",
                &["redundancy_left"],
            )?,
            repair_queue_segments: gauge(
                "archiver_repair_queue_segments",
                "Segments waiting for repair",
            )?,
            repair_queue_bytes: gauge(
                "archiver_repair_queue_bytes",
                "Shard bytes waiting to be rebuilt",
            )?,
            repaired_shards: counter(
                "archiver_repaired_shards_total",
                "Shards rebuilt and placed",
            )?,
            repaired_bytes: counter(
                "archiver_repaired_bytes_total",
                "Shard bytes rebuilt and placed",
            )?,
            hoster_up: gauge_vec(
                "archiver_hoster_up",
                "1 if the hoster answers, else 0",
                &["hoster"],
            )?,
            hoster_bytes: gauge_vec(
                "archiver_hoster_bytes",
                "Shard bytes placed on the hoster",
                &["hoster"],
            )?,
            challenges: family(
                "archiver_challenges_total",
                IntCounterVec::new(
                    Opts::new("archiver_challenges_total", "Storage challenges by outcome"),
                    &["hoster", "result"],
                ),
            )?,
            challenge_seconds: histogram_vec(
                "archiver_challenge_seconds",
                "Storage challenge round trip, answered or not",
                "hoster",
                CHALLENGE_BUCKETS_SECONDS,
            )?,
            gc_deleted_shards: counter(
                "archiver_gc_deleted_shards_total",
                "Orphan shards deleted from hosters",
            )?,
            unreadable: gauge(
                "archiver_segments_unreadable",
                "Segments with fewer than k shards on hosters that answer (unreadable until one returns)",
            )?,
            sweeps: gauge(
                "archiver_hoster_sweeps",
                "Hosters whose every shard is being checked (after a return or a failed challenge)",
            )?,
            cache_hits: counter(
                "archiver_history_cache_hits_total",
                "History segment reads answered from the cache",
            )?,
            cache_misses: counter(
                "archiver_history_cache_misses_total",
                "History segment reads that rebuilt (or waited for) a segment from the hosters",
            )?,
            cache_bytes: gauge(
                "archiver_history_cache_bytes",
                "Bytes held by the history cache",
            )?,
            rpc_seconds: histogram_vec(
                "archiver_rpc_request_seconds",
                "History RPC request latency by method",
                "method",
                RPC_BUCKETS_SECONDS,
            )?,
        })
    }

    fn collectors(&self) -> Vec<(&'static str, Box<dyn prometheus::core::Collector>)> {
        vec![
            ("archiver_block_height", Box::new(self.block_height.clone())),
            ("archiver_segments", Box::new(self.segments.clone())),
            (
                "archiver_repair_queue_segments",
                Box::new(self.repair_queue_segments.clone()),
            ),
            (
                "archiver_repair_queue_bytes",
                Box::new(self.repair_queue_bytes.clone()),
            ),
            (
                "archiver_repaired_shards_total",
                Box::new(self.repaired_shards.clone()),
            ),
            (
                "archiver_repaired_bytes_total",
                Box::new(self.repaired_bytes.clone()),
            ),
            ("archiver_hoster_up", Box::new(self.hoster_up.clone())),
            ("archiver_hoster_bytes", Box::new(self.hoster_bytes.clone())),
            (
                "archiver_challenges_total",
                Box::new(self.challenges.clone()),
            ),
            (
                "archiver_challenge_seconds",
                Box::new(self.challenge_seconds.clone()),
            ),
            (
                "archiver_gc_deleted_shards_total",
                Box::new(self.gc_deleted_shards.clone()),
            ),
            ("archiver_hoster_sweeps", Box::new(self.sweeps.clone())),
            (
                "archiver_segments_unreadable",
                Box::new(self.unreadable.clone()),
            ),
            (
                "archiver_history_cache_hits_total",
                Box::new(self.cache_hits.clone()),
            ),
            (
                "archiver_history_cache_misses_total",
                Box::new(self.cache_misses.clone()),
            ),
            (
                "archiver_history_cache_bytes",
                Box::new(self.cache_bytes.clone()),
            ),
            (
                "archiver_rpc_request_seconds",
                Box::new(self.rpc_seconds.clone()),
            ),
        ]
    }
}

impl ArchiveMetrics {
    /// Builds every family and registers it into `registry`. Fails if a family of the same name
    /// is registered there already (register once per registry; clone the result).
    pub fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let families = Families::new()?;
        for (family, collector) in families.collectors() {
            registry
                .register(collector)
                .map_err(|source| MetricsError::Register { family, source })?;
        }
        // Fixed label sets start at 0, so a scrape shows every stage from the first one.
        for status in HeightStatus::ALL {
            families
                .block_height
                .with_label_values(&[status.as_str()])
                .set(0);
        }
        Ok(Self {
            inner: Arc::new(families),
        })
    }

    /// `archiver_block_height{status}`: the highest block number that reached `status`
    /// (archived in the log, sealed, dispersed, verified on the hosters, or pruned below).
    pub fn set_height(&self, status: HeightStatus, number: u64) {
        self.inner
            .block_height
            .with_label_values(&[status.as_str()])
            .set(as_i64(number));
    }

    /// `archiver_segments{redundancy_left}`: `histogram[i]` sealed segments can lose `i` more
    /// shards and still be read (0 = one more loss loses data; m = fully redundant). Levels
    /// absent from `histogram` are removed.
    pub fn set_redundancy(&self, histogram: &[u64]) {
        let segments = &self.inner.segments;
        segments.reset();
        for (left, count) in histogram.iter().take(REDUNDANCY_LEVELS_MAX).enumerate() {
            segments
                .with_label_values(&[left.to_string().as_str()])
                .set(as_i64(*count));
        }
    }

    /// `archiver_repair_queue_segments` and `archiver_repair_queue_bytes`: segments waiting
    /// for repair, and the shard bytes their repair will write.
    pub fn set_repair_queue(&self, segments: u64, bytes: u64) {
        self.inner.repair_queue_segments.set(as_i64(segments));
        self.inner.repair_queue_bytes.set(as_i64(bytes));
    }

    /// `archiver_repaired_shards_total` and `archiver_repaired_bytes_total`: shards (and their
    /// bytes) rebuilt and placed on a hoster by repair.
    pub fn repaired(&self, shards: u64, bytes: u64) {
        self.inner.repaired_shards.inc_by(shards);
        self.inner.repaired_bytes.inc_by(bytes);
    }

    /// `archiver_hoster_up{hoster}`: 1 while the hoster answers, 0 once it is seen down.
    pub fn hoster_up(&self, hoster: &str, up: bool) {
        self.inner
            .hoster_up
            .with_label_values(&[hoster])
            .set(i64::from(up));
    }

    /// `archiver_hoster_bytes{hoster}`: shard bytes the placements put on the hoster.
    pub fn hoster_bytes(&self, hoster: &str, bytes: u64) {
        self.inner
            .hoster_bytes
            .with_label_values(&[hoster])
            .set(as_i64(bytes));
    }

    /// `archiver_challenges_total{hoster,result}` and `archiver_challenge_seconds{hoster}`: one
    /// storage challenge, passed or failed (late, wrong or unanswered), and its round trip.
    pub fn challenge(&self, hoster: &str, pass: bool, seconds: f64) {
        let result = if pass { "pass" } else { "fail" };
        self.inner
            .challenges
            .with_label_values(&[hoster, result])
            .inc();
        self.inner
            .challenge_seconds
            .with_label_values(&[hoster])
            .observe(seconds);
    }

    /// Drops every series of a hoster removed from the configuration.
    pub fn forget_hoster(&self, hoster: &str) {
        let f = &self.inner;
        let _ = f.hoster_up.remove_label_values(&[hoster]);
        let _ = f.hoster_bytes.remove_label_values(&[hoster]);
        let _ = f.challenges.remove_label_values(&[hoster, "pass"]);
        let _ = f.challenges.remove_label_values(&[hoster, "fail"]);
        let _ = f.challenge_seconds.remove_label_values(&[hoster]);
    }

    /// `archiver_gc_deleted_shards_total`: orphan shards (failed or superseded uploads) deleted.
    pub fn gc_deleted(&self, shards: u64) {
        self.inner.gc_deleted_shards.inc_by(shards);
    }

    /// `archiver_segments_unreadable`: segments with fewer than k shards on hosters that
    /// answer; they read again once enough hosters return (not counted in `archiver_segments`).
    pub fn set_unreadable(&self, segments: u64) {
        self.inner.unreadable.set(as_i64(segments));
    }

    /// `archiver_hoster_sweeps`: hosters whose every shard is being checked (for presence after
    /// a return, for content after a failed challenge); 0 once all such checks are done.
    pub fn set_sweeps(&self, hosters: u64) {
        self.inner.sweeps.set(as_i64(hosters));
    }

    /// `archiver_history_cache_hits_total`: a history segment read answered from the cache.
    pub fn cache_hit(&self) {
        self.inner.cache_hits.inc();
    }

    /// `archiver_history_cache_misses_total`: a history segment read that had to rebuild the
    /// segment from the hosters (or wait for a rebuild already running). Hit ratio =
    /// hits / (hits + misses).
    pub fn cache_miss(&self) {
        self.inner.cache_misses.inc();
    }

    /// `archiver_history_cache_bytes`: bytes the history cache holds now.
    pub fn set_cache_bytes(&self, bytes: usize) {
        self.inner
            .cache_bytes
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// `archiver_rpc_request_seconds{method}`: one history-RPC call's latency. `method` must
    /// come from a bounded set (the served method names), never from the request as sent.
    pub fn rpc_request(&self, method: &str, seconds: f64) {
        self.inner
            .rpc_seconds
            .with_label_values(&[method])
            .observe(seconds);
    }
}

/// Serves `GET /metrics` from `registry` on `addr` until the returned task is aborted (which
/// also closes the connections in progress). Returns the bound address (port 0 picks one).
pub async fn serve_metrics(
    addr: SocketAddr,
    registry: Registry,
) -> Result<(SocketAddr, JoinHandle<()>), MetricsError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| MetricsError::Bind { addr, source })?;
    if !local.ip().is_loopback() {
        tracing::warn!(%local, "metrics served on a non-loopback address: anyone reaching it reads them");
    }
    Ok((local, tokio::spawn(accept_loop(listener, registry))))
}

async fn accept_loop(listener: TcpListener, registry: Registry) {
    let slots = Arc::new(tokio::sync::Semaphore::new(METRICS_CONNECTIONS_MAX));
    // Owned here, so aborting this task aborts every connection task too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        tracing::debug!(%peer, "metrics connection refused: connection cap reached");
                        continue;
                    };
                    let registry = registry.clone();
                    connections.spawn(async move {
                        serve_connection(stream, registry).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_BACKOFF_MS)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(stream: TcpStream, registry: Registry) {
    let service = hyper::service::service_fn(move |req| {
        let registry = registry.clone();
        async move { Ok::<_, Infallible>(answer(&req, &registry)) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    // One scrape per connection: nothing idles in a slot between scrapes.
    http.keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(METRICS_HEADER_READ_TIMEOUT_MS));
    let conn = http.serve_connection(TokioIo::new(stream), service);
    let limit = Duration::from_millis(METRICS_CONNECTION_TIMEOUT_MS);
    match tokio::time::timeout(limit, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "metrics connection ended"),
        Err(_) => tracing::debug!("metrics connection timed out"),
    }
}

fn answer(req: &Request<Incoming>, registry: &Registry) -> Response<Full<Bytes>> {
    if req.method() != Method::GET || req.uri().path() != METRICS_PATH {
        return plain(StatusCode::NOT_FOUND, "not found: try GET /metrics\n");
    }
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    if let Err(e) = encoder.encode(&registry.gather(), &mut body) {
        tracing::warn!(error = %e, "encoding metrics failed");
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding metrics failed\n",
        );
    }
    let mut rsp = Response::new(Full::new(Bytes::from(body)));
    if let Ok(value) = hyper::header::HeaderValue::from_str(encoder.format_type()) {
        rsp.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    rsp
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut rsp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *rsp.status_mut() = status;
    rsp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// One raw HTTP/1.1 request; the whole reply (the server closes after it).
    async fn http_get(addr: SocketAddr, path: &str) -> String {
        try_get(addr, path).await.unwrap()
    }

    async fn try_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(addr).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).await?;
        Ok(reply)
    }

    fn filled() -> (Registry, ArchiveMetrics) {
        let registry = Registry::new();
        let m = ArchiveMetrics::register(&registry).unwrap();
        m.set_height(HeightStatus::Archived, 1_234);
        m.set_height(HeightStatus::Verified, 1_000);
        m.set_redundancy(&[0, 1, 41]);
        m.set_repair_queue(1, 2_097_152);
        m.repaired(3, 3_145_728);
        m.hoster_up("h1", true);
        m.hoster_up("h2", false);
        m.hoster_bytes("h1", 67_108_864);
        m.challenge("h1", true, 0.012);
        m.challenge("h1", true, 0.030);
        m.challenge("h2", false, 1.0);
        m.gc_deleted(2);
        m.cache_hit();
        m.cache_hit();
        m.cache_hit();
        m.cache_miss();
        m.set_cache_bytes(33_554_432);
        m.rpc_request("chain_getBlock", 0.004);
        (registry, m)
    }

    #[tokio::test]
    async fn scrape_shows_every_family_with_its_values() {
        let (registry, _m) = filled();
        let (addr, server) = serve_metrics("127.0.0.1:0".parse().unwrap(), registry)
            .await
            .unwrap();
        let reply = http_get(addr, METRICS_PATH).await;
        server.abort();
        let (head, body) = reply.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        for line in [
            "archiver_block_height{status=\"archived\"} 1234",
            "archiver_block_height{status=\"verified\"} 1000",
            "archiver_block_height{status=\"pruned\"} 0",
            "archiver_segments{redundancy_left=\"0\"} 0",
            "archiver_segments{redundancy_left=\"1\"} 1",
            "archiver_segments{redundancy_left=\"2\"} 41",
            "archiver_repair_queue_segments 1",
            "archiver_repair_queue_bytes 2097152",
            "archiver_repaired_shards_total 3",
            "archiver_repaired_bytes_total 3145728",
            "archiver_hoster_up{hoster=\"h1\"} 1",
            "archiver_hoster_up{hoster=\"h2\"} 0",
            "archiver_hoster_bytes{hoster=\"h1\"} 67108864",
            "archiver_challenges_total{hoster=\"h1\",result=\"pass\"} 2",
            "archiver_challenges_total{hoster=\"h2\",result=\"fail\"} 1",
            "archiver_challenge_seconds_bucket{hoster=\"h1\",le=\"0.025\"} 1",
            "archiver_challenge_seconds_count{hoster=\"h1\"} 2",
            "archiver_gc_deleted_shards_total 2",
            "archiver_history_cache_hits_total 3",
            "archiver_history_cache_misses_total 1",
            "archiver_history_cache_bytes 33554432",
            "archiver_rpc_request_seconds_bucket{method=\"chain_getBlock\",le=\"0.005\"} 1",
            "archiver_rpc_request_seconds_count{method=\"chain_getBlock\"} 1",
        ] {
            assert!(
                body.lines().any(|l| l == line),
                "missing {line:?} in\n{body}"
            );
        }
        assert!(body.contains("# TYPE archiver_challenge_seconds histogram"));
    }

    #[tokio::test]
    async fn other_paths_are_not_found() {
        let (registry, _m) = filled();
        let (addr, server) = serve_metrics("127.0.0.1:0".parse().unwrap(), registry)
            .await
            .unwrap();
        for path in ["/", "/metrics/x", "/favicon.ico"] {
            let reply = http_get(addr, path).await;
            assert!(reply.starts_with("HTTP/1.1 404"), "{path}: {reply}");
            assert!(!reply.contains("archiver_"), "{path}: {reply}");
        }
        server.abort();
    }

    #[test]
    fn redundancy_levels_are_replaced_not_merged() {
        let (registry, m) = filled();
        m.set_redundancy(&[5]);
        let text = TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(text.contains("archiver_segments{redundancy_left=\"0\"} 5"));
        assert!(!text.contains("redundancy_left=\"2\""), "{text}");
    }

    #[test]
    fn a_registry_takes_the_families_once() {
        let registry = Registry::new();
        ArchiveMetrics::register(&registry).unwrap();
        let again = ArchiveMetrics::register(&registry).unwrap_err();
        assert!(matches!(
            again,
            MetricsError::Register {
                family: "archiver_block_height",
                ..
            }
        ));
    }

    #[test]
    fn forgotten_hosters_leave_the_scrape() {
        let (registry, m) = filled();
        m.forget_hoster("h1");
        let text = TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert!(!text.contains("hoster=\"h1\""), "{text}");
        assert!(text.contains("archiver_hoster_up{hoster=\"h2\"} 0"));
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_closed_and_scrapes_go_on() {
        let (registry, _m) = filled();
        let (addr, server) = serve_metrics("127.0.0.1:0".parse().unwrap(), registry)
            .await
            .unwrap();
        // Silent peers fill every slot; one more is closed at accept.
        let mut idle = Vec::new();
        for _ in 0..METRICS_CONNECTIONS_MAX {
            idle.push(TcpStream::connect(addr).await.unwrap());
        }
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "a connection beyond the cap is closed");
        drop(idle);
        // Slots come back once the silent peers go (their tasks see EOF); until then a scrape
        // may still be refused, so retry, within a bound.
        let retry = async {
            loop {
                match try_get(addr, METRICS_PATH).await {
                    Ok(reply) if !reply.is_empty() => break reply,
                    _ => tokio::task::yield_now().await,
                }
            }
        };
        let reply = tokio::time::timeout(Duration::from_secs(10), retry)
            .await
            .unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        server.abort();
    }
}
