//! One module per `archiver` subcommand: its clap arguments and a `run` that parses them, calls
//! the library and prints the result. The work itself is in the library crates.

pub mod audit;
pub mod bench;
pub mod challenge;
pub mod demo;
pub mod disperse;
pub mod follow;
pub mod gc;
pub mod hoster;
pub mod hosters;
pub mod ingest;
pub mod init;
pub mod mount;
pub mod node;
pub mod prover;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod rpc;
pub mod seal;
pub mod serve;
pub mod status;
pub mod sync;
pub mod verify;
