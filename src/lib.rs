//! The pieces of the `archiver` command that tests drive too: config file handling, the embedded
//! hoster cluster used by `demo`/`bench`, synthetic ingest, and the demo and bench runs themselves.

pub mod bench;
pub mod bench_chain;
pub mod bench_challenge;
pub mod bench_hoster;
pub mod bench_mount;
pub mod chain;
pub mod challenge;
pub mod cluster;
pub mod config_file;
pub mod demo;
pub mod ingest;
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
