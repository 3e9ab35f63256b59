//! `archiver bench --mount`: read rates of the FUSE view over a history of ≥ 1 GiB whose local
//! segments are all pruned: cold (every segment rebuilt from the hosters), hot (the kernel's page
//! cache), and `find` over the tree; beside the raw FUSE ceiling (a trivial file served from
//! memory) and the read path alone (segment reconstruction without FUSE), measured in the same run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use archiver_cli::cluster;

const TARGET_HOT_MBPS: f64 = 1_000.0;
const TARGET_COLD_MBPS: f64 = 300.0;
/// Size of the trivial file the FUSE ceiling is read from.
const CEILING_FILE_BYTES: usize = 512 * 1024 * 1024;
/// Segment cache of the benchmarked mount (the `archiver mount` default).
const CACHE_MIB: usize = 256;

fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

/// Reads `path` to the end in 1 MiB reads; returns bytes read.
fn read_through(path: &Path) -> Result<u64> {
    use std::io::Read as _;
    let mut f = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).context("read")?;
        if n == 0 {
            return Ok(total);
        }
        total += n as u64;
    }
}

/// FUSE's own limits on this machine, from a trivial in-memory filesystem.
struct Ceiling {
    /// One large file read through FUSE (no page cache).
    raw_mbps: f64,
    /// The same file from the page cache, through the FUSE mount.
    page_cache_mbps: f64,
    /// `count` small files of the blocks' average size, first read (through FUSE) and second
    /// (page cache): what FUSE costs per file.
    small_cold_mbps: f64,
    small_hot_mbps: f64,
}

fn fuse_ceiling(dir: &Path, small_count: u64, small_bytes: usize) -> Result<Ceiling> {
    let mnt = dir.join("ceiling");
    std::fs::create_dir_all(&mnt).context("create ceiling mountpoint")?;
    let session = crate::ceiling::mount_memory(
        crate::ceiling::MemoryFs::new(CEILING_FILE_BYTES, small_count, small_bytes),
        &mnt,
    )
    .context("mount the trivial filesystem")?;
    let small = |c: &mut f64| -> Result<()> {
        let t = Instant::now();
        let mut bytes = 0;
        for i in 0..small_count {
            bytes += read_through(&mnt.join(crate::ceiling::SMALL_DIR).join(i.to_string()))?;
        }
        *c = mbps(bytes, t.elapsed().as_secs_f64());
        Ok(())
    };
    let (mut small_cold_mbps, mut small_hot_mbps) = (0.0, 0.0);
    small(&mut small_cold_mbps)?;
    small(&mut small_hot_mbps)?;
    let mut best = (0.0f64, 0.0f64);
    for _ in 0..2 {
        let t = Instant::now();
        let n = read_through(&mnt.join(crate::ceiling::UNCACHED_NAME))?;
        best.0 = best.0.max(mbps(n, t.elapsed().as_secs_f64()));
    }
    read_through(&mnt.join(crate::ceiling::CACHED_NAME))?;
    for _ in 0..2 {
        let t = Instant::now();
        let n = read_through(&mnt.join(crate::ceiling::CACHED_NAME))?;
        best.1 = best.1.max(mbps(n, t.elapsed().as_secs_f64()));
    }
    session
        .umount_and_join()
        .context("unmount the trivial filesystem")?;
    Ok(Ceiling {
        raw_mbps: best.0,
        page_cache_mbps: best.1,
        small_cold_mbps,
        small_hot_mbps,
    })
}

fn block_path(mnt: &Path, n: u64) -> PathBuf {
    mnt.join(fuse_view::layout::block_path(n, false))
}

/// Reads every block file in order; returns bytes.
fn read_all_blocks(mnt: &Path, first: u64, head: u64) -> Result<u64> {
    let mut total = 0;
    for n in first..=head {
        total += read_through(&block_path(mnt, n))?;
    }
    Ok(total)
}

pub async fn run(mib: u64, dir: Option<PathBuf>) -> Result<()> {
    let tmp = tempfile::tempdir().context("create bench directory")?;
    let dir = dir.unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    println!(
        "archiver bench --mount: {mib} MiB of synthetic blocks, 4+2 over 6 embedded hoster processes, 32 MiB segments, all pruned locally, mount cache {CACHE_MIB} MiB"
    );
    let mut c = cluster::start_cluster(&dir, 6, 3, 4, 2).await?;
    let t = Instant::now();
    archiver_cli::ingest::ingest_synthetic(
        &mut c.archive,
        42,
        None,
        Some(mib * 1024 * 1024),
        true,
        true,
        |_, _| {},
    )
    .await
    .context("ingest")?;
    let ingest_secs = t.elapsed().as_secs_f64();
    let disperser = c.archive.disperser();
    disperser
        .verify_dispersed()
        .await
        .context("verify dispersed segments")?;
    disperser
        .prune_local_segments(0)
        .context("prune local segments")?;

    let view = archiver_cli::config_file::open_read_only(&c.config, CACHE_MIB)?;
    let reader = view.reader().clone();
    let store = reader.store().clone();
    let (Some(first), Some((head, _))) = (
        store.first_number().context("read catalog")?,
        store.log_head().context("read log head")?.last,
    ) else {
        bail!("nothing archived");
    };
    let segments = store.dispersed_next().context("read watermark")?;
    let blocks = head - first + 1;
    let payload: u64 = store
        .sealed_all()
        .context("read segments")?
        .iter()
        .map(|s| s.bytes)
        .sum();
    let c = {
        let d = dir.clone();
        let small_bytes = (payload / blocks.max(1)) as usize;
        tokio::task::spawn_blocking(move || fuse_ceiling(&d, blocks, small_bytes))
            .await
            .context("ceiling task")??
    };
    let (raw_mbps, page_cache_mbps) = (c.raw_mbps, c.page_cache_mbps);

    // The read path alone: every segment rebuilt from the hosters, one after another.
    let t = Instant::now();
    let mut seg_bytes = 0u64;
    for s in 0..segments {
        seg_bytes += reader
            .segment(s)
            .await
            .with_context(|| format!("rebuild segment {s}"))?
            .len() as u64;
    }
    let rebuild_mbps = mbps(seg_bytes, t.elapsed().as_secs_f64());
    reader.clear_cache();

    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).context("create mountpoint")?;
    let fs = fuse_view::HistoryFs::new(
        reader.clone(),
        Arc::new(archiver_cli::mount::SubstratePresenter),
        tokio::runtime::Handle::current(),
    );
    let mounted = {
        let mnt = mnt.clone();
        tokio::task::spawn_blocking(move || fuse_view::mount(fs, &mnt))
            .await
            .context("mount task")?
            .context("mount")?
    };
    let measure = {
        let mnt = mnt.clone();
        let reader = reader.clone();
        tokio::task::spawn_blocking(move || -> Result<(u64, f64, f64, u64, usize, f64)> {
            let t = Instant::now();
            let bytes = read_all_blocks(&mnt, first, head)?;
            let cold = t.elapsed().as_secs_f64();
            let fetched = |r: &archiver::HistoryReader| {
                r.stats
                    .remote_segments
                    .load(std::sync::atomic::Ordering::Relaxed)
            };
            let before = fetched(&reader);
            let t = Instant::now();
            let again = read_all_blocks(&mnt, first, head)?;
            let hot = t.elapsed().as_secs_f64();
            let hot_rebuilds = fetched(&reader) - before;
            if again != bytes {
                bail!("hot read gave {again} bytes, cold {bytes}");
            }
            let t = Instant::now();
            let out = std::process::Command::new("find")
                .arg(mnt.join("blocks"))
                .arg("-type")
                .arg("f")
                .output()
                .context("run find")?;
            let find_secs = t.elapsed().as_secs_f64();
            let files = String::from_utf8_lossy(&out.stdout).lines().count();
            Ok((bytes, cold, hot, hot_rebuilds, files, find_secs))
        })
        .await
        .context("read task")?
    };
    let stats = reader
        .stats
        .remote_segments
        .load(std::sync::atomic::Ordering::Relaxed);
    let cached = reader.cached_bytes();
    tokio::task::spawn_blocking(move || mounted.unmount())
        .await
        .context("unmount task")?
        .context("unmount")?;
    let (bytes, cold, hot, hot_rebuilds, files, find_secs) = measure?;
    let (cold_mbps, hot_mbps) = (mbps(bytes, cold), mbps(bytes, hot));
    println!(
        "history: {blocks} blocks, {:.1} MB in block files, {segments} segments (ingested and dispersed in {ingest_secs:.1} s)",
        bytes as f64 / 1e6
    );
    println!(
        "  cold read (all segments from the hosters)  {cold_mbps:>7.0} MB/s  ({cold:.2} s; {stats} segments rebuilt, cache {:.0} of {CACHE_MIB} MiB after)",
        cached as f64 / 1048576.0
    );
    println!(
        "  hot read (page cache)                      {hot_mbps:>7.0} MB/s  ({hot:.2} s; {hot_rebuilds} segments rebuilt for pages the kernel had dropped)"
    );
    println!("  find blocks/ -type f                       {find_secs:>7.2} s  ({files} files)");
    println!("limits (same run):");
    println!("  raw FUSE, trivial file from memory         {raw_mbps:>7.0} MB/s");
    println!("  page cache through FUSE, same file         {page_cache_mbps:>7.0} MB/s");
    println!(
        "  {blocks} small files of the blocks' mean size, trivial FS: first read {:.0} MB/s, page cache {:.0} MB/s",
        c.small_cold_mbps, c.small_hot_mbps
    );
    println!("  read path alone (segments rebuilt, no FUSE) {rebuild_mbps:>6.0} MB/s");
    println!("ratios:");
    println!(
        "  hot  {:.2}x of the same files from a trivial FS, {:.2}x of the one-file page-cache ceiling, {:.2}x of raw FUSE; {:.2}x target {TARGET_HOT_MBPS} MB/s: {}",
        hot_mbps / c.small_hot_mbps,
        hot_mbps / page_cache_mbps,
        hot_mbps / raw_mbps,
        hot_mbps / TARGET_HOT_MBPS,
        if hot_mbps >= TARGET_HOT_MBPS { "met" } else { "missed" }
    );
    println!(
        "  cold {:.2}x of the read path alone, {:.2}x of the same files' first read from a trivial FS, {:.2}x of raw FUSE; {:.2}x target {TARGET_COLD_MBPS} MB/s: {}",
        cold_mbps / rebuild_mbps,
        cold_mbps / c.small_cold_mbps,
        cold_mbps / raw_mbps,
        cold_mbps / TARGET_COLD_MBPS,
        if cold_mbps >= TARGET_COLD_MBPS { "met" } else { "missed" }
    );
    if files as u64 != blocks * 2 {
        bail!("find saw {files} files, expected {}", blocks * 2);
    }
    Ok(())
}
