//! The archive library's error boundary: every variant names the block, segment, shard, hoster or
//! file it is about, so an operator can act on the message alone.

use std::path::PathBuf;

/// Hex of the first 8 bytes of a hash, for messages.
pub fn short_hex(hash: &[u8]) -> String {
    let n = hash.len().min(8);
    format!("0x{}…", hex::encode(&hash[..n]))
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("block {number} (hash {hash}) refused: the log expects block {expected} next (last appended: {last_number}, hash {last_hash})")]
    Gap {
        number: u64,
        hash: String,
        expected: u64,
        last_number: u64,
        last_hash: String,
    },
    #[error("block {number} (hash {hash}) refused: its parent hash {parent} is not block {prev_number}'s hash {prev_hash}")]
    ParentMismatch {
        number: u64,
        hash: String,
        parent: String,
        prev_number: u64,
        prev_hash: String,
    },
    #[error("block {number} refused: hash {new} conflicts with the archived block {number} hash {existing}")]
    Conflict {
        number: u64,
        existing: String,
        new: String,
    },
    #[error("block {number} refused: {what} is {bytes} bytes, over the {max}-byte limit")]
    BlockTooLarge {
        number: u64,
        what: &'static str,
        bytes: usize,
        max: usize,
    },
    #[error("block {number} is not in the archive")]
    BlockNotFound { number: u64 },
    #[error("block {number} is beyond the archive's head ({})", last_block(.last))]
    BeyondHead { number: u64, last: Option<u64> },
    #[error("the state after block {number} is not indexed yet: the state index covers blocks below {indexed_next} and catches up in the background")]
    NotIndexed { number: u64, indexed_next: u64 },
    #[error("block {number}'s state changes cannot be indexed: the state index expects block {expected} next")]
    IndexOutOfOrder { number: u64, expected: u64 },
    #[error("state index entry of key {key} at block {number} is invalid: {reason}")]
    StateIndexCorrupt {
        key: String,
        number: u64,
        reason: String,
    },
    #[error("segment file {path} is corrupt at byte {offset}: {reason}")]
    SegmentFileCorrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("segment {segment}: {reason}")]
    SegmentCorrupt { segment: u64, reason: String },
    #[error("manifest of segment {segment} is invalid: {reason}")]
    ManifestCorrupt { segment: u64, reason: String },
    #[error("manifest chain broken at segment {segment}: {reason}")]
    ManifestChain { segment: u64, reason: String },
    #[error("placement record of segment {segment} is invalid: {reason}")]
    PlacementCorrupt { segment: u64, reason: String },
    #[error("segment {segment} frame {frame}: authentication failed (wrong master key, or the shard data was tampered with)")]
    Decrypt { segment: u64, frame: u64 },
    #[error("the master key does not match this archive ({what})")]
    WrongMasterKey { what: String },
    #[error("no archive metadata found on any reachable hoster ({reachable} of {total} reachable): wrong master key, or nothing dispersed yet")]
    NoMetadata { reachable: usize, total: usize },
    #[error("shard {shard} of segment {segment} is missing on hoster {hoster}")]
    ShardMissing {
        segment: u64,
        shard: usize,
        hoster: String,
    },
    #[error("shard {shard} of segment {segment} from hoster {hoster} fails its Merkle checksum")]
    ShardCorrupt {
        segment: u64,
        shard: usize,
        hoster: String,
    },
    #[error("segment {segment}: only {available} good shards could be read, {needed} are needed ({detail})")]
    NotEnoughShards {
        segment: u64,
        available: usize,
        needed: usize,
        detail: String,
    },
    #[error("segment {segment}: only {landed} shards landed on distinct hosters, at least {needed} are required ({detail})")]
    DispersalFailed {
        segment: u64,
        landed: usize,
        needed: usize,
        detail: String,
    },
    #[error("metadata of segment {segment} reached only {stored} hosters, at least {needed} are required")]
    MetadataReplication {
        segment: u64,
        stored: usize,
        needed: usize,
    },
    #[error("hoster {hoster}: {source}")]
    Hoster {
        hoster: String,
        #[source]
        source: zdb_backend::ZdbError,
    },
    #[error("config: {field}: {reason}")]
    Config { field: String, reason: String },
    #[error("local store ({context}): {source}")]
    Db {
        context: &'static str,
        #[source]
        source: rocksdb::Error,
    },
    #[error("local store ({context}): {reason}")]
    DbCorrupt {
        context: &'static str,
        reason: String,
    },
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("block log {dir} refuses further work after an earlier failure ({cause}); reopen it to recover")]
    Poisoned { dir: PathBuf, cause: String },
    #[error("codec: {0}")]
    Codec(String),
    #[error("background task failed: {0}")]
    Task(String),
}

fn last_block(last: &Option<u64>) -> String {
    match last {
        Some(n) => format!("last archived block: {n}"),
        None => "it holds no block yet".into(),
    }
}

pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;

impl ArchiveError {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            context,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn db(context: &'static str) -> impl FnOnce(rocksdb::Error) -> Self {
        move |source| Self::Db { context, source }
    }
}
