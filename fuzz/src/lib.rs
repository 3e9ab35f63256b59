//! Fuzz targets for every decoder of bytes from disk or network: each `run` must not panic on any
//! input, and where an encoder exists, what decodes must encode back to the same value (or bytes).
//! The libFuzzer entry points in `fuzz_targets/` call these; `seeds` makes the starting corpus.

#![allow(clippy::unwrap_used)] // a panic is how a fuzz target reports a finding

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

pub mod challenge;
pub mod config;
pub mod hoster_format;
pub mod hoster_recovery;
pub mod manifest;
pub mod resp_reply;
pub mod resp_request;
pub mod rpc_params;
pub mod scale;
pub mod seeds;
pub mod segment_record;
pub mod state_index;
pub mod tree_file;

/// A target's entry: takes any bytes, panics on a finding.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of the `fuzz_targets/` binaries and `corpus/` folders).
pub const TARGETS: &[(&str, Target)] = &[
    ("resp_request", resp_request::run),
    ("resp_reply", resp_reply::run),
    ("hoster_format", hoster_format::run),
    ("hoster_recovery", hoster_recovery::run),
    ("segment_record", segment_record::run),
    ("manifest", manifest::run),
    ("challenge", challenge::run),
    ("tree_file", tree_file::run),
    ("scale", scale::run),
    ("rpc_params", rpc_params::run),
    ("config", config::run),
    ("state_index", state_index::run),
];

/// Polls a future that never waits (its reader is a byte slice) to completion.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("harness: a slice-backed reader cannot be pending"),
    }
}

/// Splits off a leading control byte (0 when the input is empty).
pub fn control(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&c, rest)) => (c, rest),
        None => (0, data),
    }
}

/// Overwrites `bytes[at..at + 4]` with the CRC32 of `bytes[range]`, if both fit: lets the fuzzer
/// past checksums to the parsing behind them.
pub fn fix_crc32(bytes: &mut [u8], covered: std::ops::Range<usize>, at: usize) {
    if covered.end <= bytes.len() && at + 4 <= bytes.len() && covered.start <= covered.end {
        let crc = crc32fast::hash(&bytes[covered]);
        bytes[at..at + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// Little-endian u32 at `at`, if the bytes are there.
pub fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed corpus file and every seed goes through its target without a panic: a
    /// crash found and fixed stays fixed (its reproducer is committed to the corpus).
    #[test]
    fn every_target_survives_its_corpus_and_seeds() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let mut files = 0;
        for (name, run) in TARGETS {
            for (_, seed) in seeds::seeds(name) {
                run(&seed);
            }
            let dir = root.join(name);
            let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
            for entry in entries {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                run(&bytes);
                files += 1;
            }
        }
        assert!(files >= TARGETS.len(), "{files} corpus files");
    }

    #[test]
    fn every_target_has_seeds() {
        for (name, _) in TARGETS {
            assert!(!seeds::seeds(name).is_empty(), "{name} has no seeds");
        }
    }
}
