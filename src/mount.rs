//! `archiver mount`: wires the archive's read path (a secondary store beside the writer, the
//! hosters, a bounded segment cache) into `fuse_view` with the Substrate presenter, and unmounts
//! on SIGINT/SIGTERM.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use archiver::manifest::{Manifest, Placement};
use archiver::BlockRecord;
use parity_scale_codec::Decode as _;

/// How often `archiver mount` checks whether its mount was unmounted from outside.
const UNMOUNT_POLL_MS: u64 = 500;

/// Decoded headers and manifests as the history RPC shows them.
#[derive(Debug)]
pub struct SubstratePresenter;

impl fuse_view::Presenter for SubstratePresenter {
    fn block_json(&self, rec: &BlockRecord) -> Vec<u8> {
        let hex0x = |b: &[u8]| format!("0x{}", hex::encode(b));
        let mut v = serde_json::json!({
            "number": rec.number,
            "hash": hex0x(&rec.hash),
            "parentHash": hex0x(&rec.parent_hash),
            "blockBytes": rec.block.len(),
            "justification": rec.justification.is_some(),
        });
        match node_plugin::substrate::Block::decode(&mut rec.block.as_slice()) {
            Ok(block) => {
                let h = &block.header;
                v["stateRoot"] = hex0x(&h.state_root).into();
                v["extrinsicsRoot"] = hex0x(&h.extrinsics_root).into();
                v["digest"] = node_plugin::rpc::header_json(h)["digest"].clone();
                v["extrinsicCount"] = block.extrinsics.len().into();
            }
            // Shown, not hidden: the .scale file still has the bytes as archived.
            Err(e) => v["decodeError"] = format!("not a Substrate block: {e}").into(),
        }
        let mut out = serde_json::to_vec_pretty(&v).unwrap_or_default();
        out.push(b'\n');
        out
    }

    fn manifest_json(&self, manifest: &Manifest, placement: Option<&Placement>) -> Vec<u8> {
        let v = node_plugin::rpc::manifest_json(manifest, placement);
        serde_json::to_vec_pretty(&v).unwrap_or_default()
    }
}

/// What a mount reads: the archive beside its writer, or a stateless gateway over the hosters.
/// Held while mounted: each owns the directory its store lives in.
enum Source {
    Beside(archiver::ReadOnlyArchive),
    Gateway(crate::chain::RunningGateway),
}

impl Source {
    fn reader(&self) -> Arc<archiver::HistoryReader> {
        match self {
            Self::Beside(view) => view.reader().clone(),
            Self::Gateway(g) => g.gateway.reader().clone(),
        }
    }
}

/// Mounts the config's archive at `mountpoint` until SIGINT/SIGTERM, then unmounts; with
/// `gateway`, from the hosters alone.
pub async fn run(
    config: &Path,
    mountpoint: &Path,
    cache_mib: usize,
    gateway: Option<crate::chain::GatewayArgs>,
) -> Result<()> {
    if fuse_view::is_stale_mount(mountpoint) {
        // Checked before opening anything, so the message is the first thing the user sees.
        return Err(fuse_view::MountError::StaleMount {
            path: mountpoint.display().to_string(),
        })
        .context("mount");
    }
    let loaded = crate::config_file::ConfigFile::load(config)?;
    let segment_bytes = loaded.archive.segment_size_bytes;
    if (cache_mib as u64) * 1024 * 1024 < 2 * segment_bytes {
        // The cache keeps whole segments and skips one larger than itself: below two segments
        // every read of a pruned block rebuilds its segment, and read-ahead is off.
        tracing::warn!(
            cache_mib,
            segment_bytes,
            "--cache-mib holds fewer than two segments: reads of pruned blocks will be slow"
        );
    }
    let source = match gateway {
        None => Source::Beside(loaded.into_read_only(cache_mib)?),
        Some(args) => {
            Source::Gateway(crate::chain::start_gateway(config, &args, cache_mib, None).await?)
        }
    };
    let served = serve_mount(source.reader(), mountpoint).await;
    if let Source::Gateway(g) = source {
        g.stop().await;
    }
    served
}

/// Mounts `reader`'s history and serves it until a signal or an unmount from outside.
async fn serve_mount(reader: Arc<archiver::HistoryReader>, mountpoint: &Path) -> Result<()> {
    let fs = fuse_view::HistoryFs::new(
        reader,
        Arc::new(SubstratePresenter),
        tokio::runtime::Handle::current(),
    );
    let mounted = tokio::task::spawn_blocking({
        let mountpoint = mountpoint.to_path_buf();
        move || fuse_view::mount(fs, &mountpoint)
    })
    .await
    .context("mount task")?
    .context("mount")?;
    crate::announce(format_args!("mounted at {}", mountpoint.display()));
    let mut mounted = mounted;
    // Ends on SIGINT/SIGTERM, or when someone unmounts it from outside (`fusermount3 -u`).
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(UNMOUNT_POLL_MS));
    loop {
        tokio::select! {
            _ = crate::chain::shutdown_signal() => {}
            _ = poll.tick() => {
                if mounted.is_finished() {
                    crate::announce(format_args!("{} was unmounted", mountpoint.display()));
                    return Ok(());
                }
                continue;
            }
        }
        match tokio::task::spawn_blocking(move || mounted.try_unmount())
            .await
            .context("unmount task")?
        {
            Ok(()) => {
                crate::announce(format_args!("unmounted {}", mountpoint.display()));
                return Ok(());
            }
            Err(busy) => {
                let (still, why) = *busy;
                eprintln!(
                    "cannot unmount {} ({why}): still serving; close what uses it (a shell inside it, an open file) and signal again",
                    mountpoint.display()
                );
                mounted = still;
            }
        }
    }
}
