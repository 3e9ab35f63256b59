//! `archiver bench`: a thin entry to the benchmarks, which live in their own crate
//! (`archiver-bench`): runs the `archiver-bench` binary beside this one with the same arguments.

use std::os::unix::process::CommandExt as _;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The benchmark binary, built into the same target directory as `archiver`.
const BENCH_EXE_NAME: &str = "archiver-bench";

#[derive(clap::Args)]
pub struct Args {
    /// Arguments of `archiver-bench` (`--help` lists them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<std::ffi::OsString>,
}

pub async fn run(_config: &Path, a: Args) -> Result<()> {
    let own = std::env::current_exe().context("find own executable")?;
    let bench = own.with_file_name(BENCH_EXE_NAME);
    if !bench.exists() {
        bail!(
            "{} not found beside {}: build it with `cargo build -p archiver-bench` (or `cargo build --workspace`)",
            bench.display(),
            own.display()
        );
    }
    // exec replaces this process: the bench's output, exit code and signals are its own; its
    // usage lines name the command the user typed.
    let err = std::process::Command::new(&bench)
        .arg0("archiver bench")
        .args(&a.args)
        .exec();
    Err(err).with_context(|| format!("run {}", bench.display()))
}
