//! Prometheus families of the embedded hoster (`zdb_hoster_*`), registered into the registry
//! that `HosterServerConfig::metrics` names. Label values are bounded: 0-db's command table and
//! the namespaces the admin created.

use std::sync::{Arc, Weak};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::{HosterError, Shared};

/// The `command` label of a request naming no command in 0-db's table.
pub const UNKNOWN_COMMAND: &str = "unknown";

/// Counters and gauges the connections update.
#[derive(Clone)]
pub(crate) struct HosterMetrics {
    commands: IntCounterVec,
    connections: IntGauge,
    errors: IntCounter,
}

fn registered<C: Collector + Clone + 'static>(
    registry: &Registry,
    family: &'static str,
    built: prometheus::Result<C>,
) -> Result<C, HosterError> {
    let collector = built.map_err(|source| HosterError::Metrics { family, source })?;
    registry
        .register(Box::new(collector.clone()))
        .map_err(|source| HosterError::Metrics { family, source })?;
    Ok(collector)
}

impl HosterMetrics {
    /// Registers the hoster's families into `registry`; `shared` is read at each scrape for the
    /// namespaces' sizes (weakly: a scrape after shutdown shows none, and keeps nothing open).
    pub(crate) fn register(registry: &Registry, shared: &Arc<Shared>) -> Result<Self, HosterError> {
        let commands = registered(
            registry,
            "zdb_hoster_commands_total",
            IntCounterVec::new(
                Opts::new(
                    "zdb_hoster_commands_total",
                    "Requests by the 0-db command they ran",
                ),
                &["command"],
            ),
        )?;
        let connections = registered(
            registry,
            "zdb_hoster_connections",
            IntGauge::new("zdb_hoster_connections", "Client connections open now"),
        )?;
        let errors = registered(
            registry,
            "zdb_hoster_errors_total",
            IntCounter::new(
                "zdb_hoster_errors_total",
                "Requests answered with an error reply (refused, malformed, failed)",
            ),
        )?;
        let stored =
            StoredBytes::new(Arc::downgrade(shared)).map_err(|source| HosterError::Metrics {
                family: STORED_BYTES,
                source,
            })?;
        registry
            .register(Box::new(stored))
            .map_err(|source| HosterError::Metrics {
                family: STORED_BYTES,
                source,
            })?;
        Ok(Self {
            commands,
            connections,
            errors,
        })
    }

    /// One request for `command` (its name in 0-db's table, or [`UNKNOWN_COMMAND`]).
    pub(crate) fn command(&self, command: &str) {
        self.commands.with_label_values(&[command]).inc();
    }

    /// One request answered with an error line.
    pub(crate) fn error(&self) {
        self.errors.inc();
    }

    /// Counts a connection open until the returned guard is dropped (also when its task is
    /// aborted at shutdown).
    pub(crate) fn connection(&self) -> ConnectionGuard {
        self.connections.inc();
        ConnectionGuard(self.connections.clone())
    }
}

/// Decrements `zdb_hoster_connections` when the connection ends.
pub(crate) struct ConnectionGuard(IntGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

const STORED_BYTES: &str = "zdb_hoster_stored_bytes";

/// `zdb_hoster_stored_bytes{namespace}`, read from the namespaces at scrape time (what NSINFO
/// reports as `data_size_bytes`), so deleted namespaces leave no stale series.
struct StoredBytes {
    shared: Weak<Shared>,
    gauge: IntGaugeVec,
}

impl StoredBytes {
    fn new(shared: Weak<Shared>) -> prometheus::Result<Self> {
        let gauge = IntGaugeVec::new(
            Opts::new(STORED_BYTES, "Live value bytes stored in each namespace"),
            &["namespace"],
        )?;
        Ok(Self { shared, gauge })
    }
}

impl Collector for StoredBytes {
    fn desc(&self) -> Vec<&Desc> {
        self.gauge.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        // A fresh vec per scrape (same description): concurrent scrapes share no state.
        let Ok(StoredBytes { gauge, .. }) = StoredBytes::new(Weak::new()) else {
            return Vec::new();
        };
        if let Some(shared) = self.shared.upgrade() {
            for ns in shared.all_namespaces() {
                let bytes = i64::try_from(ns.stats().live_value_bytes).unwrap_or(i64::MAX);
                let name = String::from_utf8_lossy(ns.name());
                gauge.with_label_values(&[name.as_ref()]).set(bytes);
            }
        }
        gauge.collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    use super::*;
    use crate::{HosterServer, HosterServerConfig};

    /// Sends one RESP request and checks the reply is exactly `expected`.
    async fn exchange(stream: &mut TcpStream, args: &[&str], expected: &str) {
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut reply = vec![0u8; expected.len()];
        stream.read_exact(&mut reply).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&reply), expected, "{args:?}");
    }

    fn scrape(registry: &Registry) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap()
    }

    fn has(text: &str, line: &str) -> bool {
        text.lines().any(|l| l == line)
    }

    #[tokio::test]
    async fn commands_connections_errors_and_stored_bytes_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::new();
        let mut cfg =
            HosterServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.path().into());
        cfg.metrics = Some(registry.clone());
        let server = HosterServer::bind(cfg).await.unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));

        let mut conn = TcpStream::connect(addr).await.unwrap();
        exchange(&mut conn, &["PING"], "+PONG\r\n").await;
        exchange(&mut conn, &["SET", "key", "hello"], "$3\r\nkey\r\n").await;
        exchange(&mut conn, &["get", "key"], "$5\r\nhello\r\n").await;
        exchange(&mut conn, &["BOGUS"], "-Command not supported\r\n").await;
        exchange(&mut conn, &["GET"], "-Unexpected arguments\r\n").await;

        let text = scrape(&registry);
        for line in [
            "zdb_hoster_commands_total{command=\"PING\"} 1",
            "zdb_hoster_commands_total{command=\"SET\"} 1",
            "zdb_hoster_commands_total{command=\"GET\"} 2",
            "zdb_hoster_commands_total{command=\"unknown\"} 1",
            "zdb_hoster_errors_total 2",
            "zdb_hoster_connections 1",
            "zdb_hoster_stored_bytes{namespace=\"default\"} 5",
        ] {
            assert!(has(&text, line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("BOGUS"), "{text}");

        drop(conn);
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
        let text = scrape(&registry);
        assert!(has(&text, "zdb_hoster_connections 0"), "{text}");
        // The server is gone: no namespace is held open for the scrape.
        assert!(!text.contains("zdb_hoster_stored_bytes{"), "{text}");
    }
}
