//! `--metrics ADDR` of the long-running commands: a Prometheus registry served over HTTP.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use archiver::metrics::{serve_metrics, ArchiveMetrics};
use prometheus::Registry;

/// Serves `registry` on `addr` and announces where (`metrics on http://ADDR/metrics`).
pub async fn serve_registry(addr: SocketAddr, registry: Registry) -> Result<()> {
    let (bound, _task) = serve_metrics(addr, registry)
        .await
        .with_context(|| format!("serve metrics on {addr}"))?;
    crate::announce(format_args!("metrics on http://{bound}/metrics"));
    Ok(())
}

/// The archive's families, served on `addr` when given.
pub async fn archive_metrics(addr: Option<SocketAddr>) -> Result<Option<ArchiveMetrics>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let registry = Registry::new();
    let metrics = ArchiveMetrics::register(&registry).context("register metrics")?;
    serve_registry(addr, registry).await?;
    Ok(Some(metrics))
}
