//! 0-db wire protocol for the archiver's hosters: an async client for real 0-db servers
//! (`ZdbClient`) and an embedded, 0-db-compatible hoster (`HosterServer`). Keys and values are
//! opaque bytes here: this crate knows nothing of blocks, segments or shards.

pub mod client;
mod join;
pub mod prove;
pub mod resp;
pub mod secret;
pub mod server;

pub use client::{
    large_part_count, large_part_count_with, large_part_key, ClientOptions, Health, HosterConfig,
    NsInfo, ScanBatch, ZdbClient, ZdbError, LARGE_KEY_BYTES_MAX, LARGE_PARTS_MAX,
    LARGE_PART_SUFFIX_BYTES,
};
pub use resp::{Reply, ARGS_MAX, KEY_BYTES_MAX, VALUE_BYTES_MAX};
pub use server::{
    DataLog, FileStorage, HosterError, HosterLimits, HosterServer, HosterServerConfig,
    HosterStorage,
};
