//! What the end-to-end tests share: running the `archiver` binary on a config and showing what it
//! printed.
// Each test crate compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub const EXE: &str = env!("CARGO_BIN_EXE_archiver");

/// Runs `archiver --config CONFIG ARGS…` to completion.
pub fn archiver(config: &Path, args: &[&str]) -> Output {
    Command::new(EXE)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// Exit status, stdout and stderr of a run, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
