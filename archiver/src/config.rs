//! Archive configuration: erasure-coding parameters, segment size, durability and the hoster list,
//! validated with an error naming the offending field.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{ArchiveError, Result};

/// Default seal threshold: tens of MiB keeps per-segment overhead (manifest, 2·(k+m) hoster keys)
/// negligible while a segment still encodes in a few tens of milliseconds and fits the memory bound.
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 32 * 1024 * 1024;
/// Segments smaller than this would make the manifest chain and hoster key count grow needlessly.
pub const SEGMENT_SIZE_BYTES_MIN: u64 = 64 * 1024;
/// Above this, one segment's shards (held in memory while dispersing) would break the RSS bound.
pub const SEGMENT_SIZE_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// GF(2^8) Reed-Solomon caps data + parity at 256 shards; placement needs one hoster per shard, and
/// the placement record addresses shards with one byte.
pub const SHARDS_TOTAL_MAX: usize = 255;
/// Hoster names are stored fixed-width in placement records.
pub const HOSTER_NAME_BYTES_MAX: usize = 32;

/// Default erasure code 4+2: any 2 of 6 hosters may vanish, at 1.5x the segment's bytes stored.
pub const DATA_SHARDS_DEFAULT: usize = 4;
/// See [`DATA_SHARDS_DEFAULT`].
pub const PARITY_SHARDS_DEFAULT: usize = 2;
/// A segment counts as stored (degraded) once k + 1 shards landed: one hoster may still vanish
/// before repair restores the rest.
pub const MIN_PARITY_DEFAULT: usize = 1;
/// Namespace for shards on a hoster when the config names none.
pub const NAMESPACE_DEFAULT: &str = "poa-archive";
/// Failure domain of a hoster when the config names none (all such hosters share one).
pub const DOMAIN_DEFAULT: &str = "default";
/// 0-db answers one request per connection at a time, so this is the per-hoster parallelism; 4
/// keeps a 2-core machine's codec busy without flooding a hoster.
pub const CONNECTIONS_PER_HOSTER_DEFAULT: usize = 4;
/// Loopback and LAN hosters answer a connect in well under a millisecond; two seconds covers a
/// loaded WAN path without stalling a store for long on a dead hoster.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// A whole request (an 8 MiB part over a slow WAN link to a busy hoster included) must end
/// within this, so a stuck request never blocks dispersal or a restore for good.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// After a failure a hoster is skipped this long before one retry: long enough that a dead
/// hoster costs one failed connect per window, short enough that a restarted one is used again
/// within seconds.
pub const DOWN_RETRY_MS_DEFAULT: u64 = 5_000;

fn default_segment_size() -> u64 {
    SEGMENT_SIZE_BYTES_DEFAULT
}
fn default_data_shards() -> usize {
    DATA_SHARDS_DEFAULT
}
fn default_parity_shards() -> usize {
    PARITY_SHARDS_DEFAULT
}
fn default_min_parity() -> usize {
    MIN_PARITY_DEFAULT
}
fn default_namespace() -> String {
    NAMESPACE_DEFAULT.into()
}
fn default_domain() -> String {
    DOMAIN_DEFAULT.into()
}
fn default_connections() -> usize {
    CONNECTIONS_PER_HOSTER_DEFAULT
}
fn default_connect_timeout() -> u64 {
    CONNECT_TIMEOUT_MS_DEFAULT
}
fn default_request_timeout() -> u64 {
    REQUEST_TIMEOUT_MS_DEFAULT
}
fn default_down_retry() -> u64 {
    DOWN_RETRY_MS_DEFAULT
}

/// Client tuning for 0-db hosters (the config file's `[client]` table).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// TCP connections per hoster: the per-hoster parallelism.
    #[serde(default = "default_connections")]
    pub connections_per_hoster: usize,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    #[serde(default = "default_request_timeout")]
    pub request_timeout_ms: u64,
    /// After a failure a hoster is skipped (calls fail at once) for this long before one retry.
    #[serde(default = "default_down_retry")]
    pub down_retry_ms: u64,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            connections_per_hoster: CONNECTIONS_PER_HOSTER_DEFAULT,
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            down_retry_ms: DOWN_RETRY_MS_DEFAULT,
        }
    }
}

impl ClientConfig {
    /// The 0-db client options these settings describe.
    pub fn options(&self) -> zdb_backend::ClientOptions {
        zdb_backend::ClientOptions {
            connections_max: self.connections_per_hoster,
            connect_timeout_ms: self.connect_timeout_ms,
            request_timeout_ms: self.request_timeout_ms,
            down_retry_ms: self.down_retry_ms,
        }
    }

    /// Checks every field; the error names the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.connections_per_hoster == 0 {
            return Err(ArchiveError::Config {
                field: "client.connections_per_hoster".into(),
                reason: "must be at least 1".into(),
            });
        }
        Ok(())
    }
}

/// Where things live under an archive's data directory: the one place naming them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir(PathBuf);

impl DataDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self(root.into())
    }

    pub fn root(&self) -> &Path {
        &self.0
    }

    /// The RocksDB store: catalog, state, manifests, placements, watermarks.
    pub fn db(&self) -> PathBuf {
        self.0.join("db")
    }

    /// The local segment files (the log).
    pub fn segments(&self) -> PathBuf {
        self.0.join("segments")
    }

    /// The audit store (challenge results and repair marks), its own RocksDB.
    pub fn audit(&self) -> PathBuf {
        self.0.join("audit")
    }
}

/// How hard an append pushes its bytes to disk before returning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync the segment file (and sync the catalog) before an append batch returns: survives power
    /// loss.
    #[default]
    Fsync,
    /// write(2) only: survives a killed process (kill -9), not a power cut. For benchmarks and tests.
    Os,
}

/// Compression of a segment before encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Off (default): block data is mostly random-looking and zstd costs ~150 MB/s per core.
    #[default]
    None,
    /// zstd level 3, for chains whose blocks compress well.
    Zstd,
}

/// One shard hoster: a 0-db server (or the embedded hoster) and the namespace used on it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HosterEntry {
    /// Stable name recorded in placement records; renaming a hoster orphans its shards.
    pub name: String,
    /// `host:port` of the 0-db server.
    pub address: String,
    /// Namespace for shards; metadata goes to `<namespace>-meta` on the same server.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Namespace password (SELECT), if the namespace is protected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Server admin password, needed only to create the namespaces on first use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
    /// Failure domain (provider, site): shards of one segment spread over as many as possible.
    #[serde(default = "default_domain")]
    pub domain: String,
    /// The hoster's storage-challenge identity (hex ed25519 public key, as `archiver hoster`
    /// prints it): responses are verified against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// `host:port` of the prover sidecar (`archiver prover`) for a hoster running real 0-db,
    /// which cannot answer challenges itself; absent: the hoster answers `PROVE` on its port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prover: Option<String>,
}

/// The archive's settings: the top level of the config file, which flattens them beside the master
/// key and the client tuning and refuses any key that none of them knows (serde's
/// `deny_unknown_fields` does not combine with `flatten`, so it is not set here).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// Local data directory (segment files and the RocksDB catalog/state).
    pub data_dir: PathBuf,
    #[serde(default = "default_segment_size")]
    pub segment_size_bytes: u64,
    #[serde(default = "default_data_shards")]
    pub data_shards: usize,
    #[serde(default = "default_parity_shards")]
    pub parity_shards: usize,
    /// A segment is stored (degraded) once k + min_parity shards landed on distinct hosters.
    #[serde(default = "default_min_parity")]
    pub min_parity: usize,
    #[serde(default)]
    pub durability: Durability,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub hosters: Vec<HosterEntry>,
    /// The operations service: health bounds, audits, repair bandwidth, GC (`[ops]`); written
    /// only when it differs from the defaults.
    #[serde(default, skip_serializing_if = "crate::ops::OpsOptions::is_default")]
    pub ops: crate::ops::OpsOptions,
}

impl ArchiveConfig {
    pub fn new(data_dir: PathBuf, hosters: Vec<HosterEntry>) -> Self {
        Self {
            data_dir,
            segment_size_bytes: SEGMENT_SIZE_BYTES_DEFAULT,
            data_shards: default_data_shards(),
            parity_shards: default_parity_shards(),
            min_parity: default_min_parity(),
            durability: Durability::default(),
            compression: Compression::default(),
            hosters,
            ops: crate::ops::OpsOptions::default(),
        }
    }

    /// The layout of [`data_dir`](Self::data_dir).
    pub fn layout(&self) -> DataDir {
        DataDir::new(&self.data_dir)
    }

    pub fn shards_total(&self) -> usize {
        self.data_shards + self.parity_shards
    }

    /// Checks every field; the error names the first bad one and says what would be right.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(ArchiveError::Config {
                field: field.into(),
                reason,
            })
        };
        if self.segment_size_bytes < SEGMENT_SIZE_BYTES_MIN
            || self.segment_size_bytes > SEGMENT_SIZE_BYTES_MAX
        {
            return bad(
                "segment_size_bytes",
                format!(
                    "{} is outside {SEGMENT_SIZE_BYTES_MIN}..={SEGMENT_SIZE_BYTES_MAX}",
                    self.segment_size_bytes
                ),
            );
        }
        if self.data_shards == 0 {
            return bad("data_shards", "must be at least 1".into());
        }
        if self.parity_shards == 0 {
            return bad(
                "parity_shards",
                "must be at least 1 (no parity means any lost hoster loses history)".into(),
            );
        }
        if self.shards_total() > SHARDS_TOTAL_MAX {
            return bad(
                "parity_shards",
                format!("data + parity shards must be at most {SHARDS_TOTAL_MAX}"),
            );
        }
        if self.min_parity > self.parity_shards {
            return bad(
                "min_parity",
                format!(
                    "{} exceeds parity_shards {}",
                    self.min_parity, self.parity_shards
                ),
            );
        }
        if self.hosters.len() < self.shards_total() {
            return bad(
                "hosters",
                format!(
                    "{} hosters configured but data_shards + parity_shards = {} need one distinct hoster each",
                    self.hosters.len(),
                    self.shards_total()
                ),
            );
        }
        if let Err((field, reason)) = self.ops.check() {
            return bad(&format!("ops.{field}"), reason.into());
        }
        let mut names = HashSet::new();
        let mut addresses = HashSet::new();
        for (i, h) in self.hosters.iter().enumerate() {
            let field = format!("hosters[{i}]");
            if h.name.is_empty() || h.name.len() > HOSTER_NAME_BYTES_MAX {
                return bad(
                    &format!("{field}.name"),
                    format!("must be 1..={HOSTER_NAME_BYTES_MAX} bytes"),
                );
            }
            if !names.insert(h.name.clone()) {
                return bad(
                    &format!("{field}.name"),
                    format!("{:?} is used twice", h.name),
                );
            }
            if !addresses.insert((h.address.clone(), h.namespace.clone())) {
                return bad(
                    &format!("{field}.address"),
                    format!(
                        "{} namespace {} is used twice: two shards on one hoster defeat the redundancy",
                        h.address, h.namespace
                    ),
                );
            }
            let port_ok = h
                .address
                .rsplit_once(':')
                .map(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
                .unwrap_or(false);
            if !port_ok {
                return bad(
                    &format!("{field}.address"),
                    format!("{:?} is not host:port", h.address),
                );
            }
            if h.namespace.is_empty() || h.namespace.len() > 128 {
                return bad(
                    &format!("{field}.namespace"),
                    "must be 1..=128 bytes".into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn hosters(n: usize) -> Vec<HosterEntry> {
        (0..n)
            .map(|i| HosterEntry {
                name: format!("h{i}"),
                address: format!("127.0.0.1:{}", 9000 + i),
                namespace: default_namespace(),
                password: None,
                admin_password: None,
                domain: format!("d{}", i % 3),
                public_key: None,
                prover: None,
            })
            .collect()
    }

    #[test]
    fn validation_names_the_field() {
        let ok = ArchiveConfig::new("/tmp/x".into(), hosters(6));
        ok.validate().unwrap();
        let mut c = ok.clone();
        c.hosters.truncate(5);
        assert!(c.validate().unwrap_err().to_string().contains("hosters"));
        let mut c = ok.clone();
        c.min_parity = 3;
        assert!(c.validate().unwrap_err().to_string().contains("min_parity"));
        let mut c = ok.clone();
        c.hosters[1].name = "h0".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("hosters[1].name"));
        let mut c = ok.clone();
        c.hosters[2].address = "nowhere".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("hosters[2].address"));
        let mut c = ok;
        c.segment_size_bytes = 10;
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("segment_size_bytes"));
    }
}
