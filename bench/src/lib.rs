//! The archiver's benchmarks, out of the product crates: each module is one `archiver bench` mode
//! (`archiver bench` execs the `archiver-bench` binary). Bench-only code lives here too: the
//! codec's single-stage limits (`stages`) and the raw-FUSE ceiling (`ceiling`).

pub mod ceiling;
pub mod chain;
pub mod challenges;
pub mod heal;
pub mod hoster_writes;
pub mod mount;
pub mod pipeline;
pub mod stages;
pub mod state_history;
