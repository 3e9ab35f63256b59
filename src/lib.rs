//! The pieces of the `archiver` command that tests and the benches (`archiver-bench`) drive too:
//! config file handling, the embedded hoster cluster used by `demo` and the benches, synthetic
//! ingest, the demo, the chain commands' wiring, and the process setup both binaries share.

pub mod chain;
pub mod challenge;
pub mod cluster;
pub mod config_file;
pub mod demo;
pub mod hosters;
pub mod ingest;
pub mod metrics;
pub mod mount;
pub mod secrets;

/// Prints a line to stdout for a supervising process (addresses, ids, progress) and flushes it.
/// A closed stdout (the supervisor stopped reading) must not take a server down, so write errors
/// are ignored here, unlike `println!`, which panics on them.
pub fn announce(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Allocations at least this large are mmap'd and unmapped on free: shard and segment buffers
/// then go back to the OS instead of piling up in glibc's heap (which otherwise grows RSS past the
/// 256 MiB bound over a long run).
const MMAP_THRESHOLD_BYTES: i32 = 4 * 1024 * 1024;
/// glibc arenas: the default 8 x cores each keep their own freed memory.
const MALLOC_ARENAS_MAX: i32 = 2;

/// Bounds glibc's heap growth; call first thing in `main`, before any other thread exists.
#[allow(unsafe_code)]
pub fn tune_allocator() {
    // SAFETY: mallopt only changes glibc allocator parameters; it is called once, before any other
    // thread exists, and both parameters are valid for the values given.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS_MAX);
    }
}

/// Hands memory glibc keeps after a burst of small allocations back to the OS (a gateway's
/// catalog build frees hundreds of thousands of records at once; without a trim its RSS keeps
/// them).
#[allow(unsafe_code)]
pub fn release_freed_memory() {
    // SAFETY: malloc_trim only returns free heap pages to the OS; it is thread-safe and takes
    // no pointer.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Logs to stderr, filtered by `RUST_LOG` or else `default_filter`.
pub fn init_tracing(default_filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Runs a command on a multi-threaded runtime; an error is printed with its causes (`error: …`)
/// and becomes exit code 1.
pub fn run_to_exit(
    command: impl std::future::Future<Output = anyhow::Result<()>>,
) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: start async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
