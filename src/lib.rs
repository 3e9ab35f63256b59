//! The pieces of the `archiver` command that tests drive too: config file handling, the embedded
//! hoster cluster used by `demo`/`bench`, synthetic ingest, and the demo and bench runs themselves.

pub mod bench;
pub mod bench_chain;
pub mod bench_challenge;
pub mod chain;
pub mod challenge;
pub mod cluster;
pub mod config_file;
pub mod demo;
pub mod ingest;
