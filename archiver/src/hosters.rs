//! The hoster boundary: what the archive needs from a shard hoster (a trait, so tests can inject
//! faults), its implementation over the 0-db protocol, and domain-aware placement.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use zdb_backend::{ClientOptions, HosterConfig, ZdbClient, ZdbError};

use crate::config::HosterEntry;

/// Shards are stored on 0-db hosters in parts of this size. 0-db has no range reads, so a prover
/// beside a real 0-db (the `archiver prover` sidecar) must GET the whole part that holds each
/// challenged 1 KiB chunk: 64 KiB parts keep a 16-sample proof at ≤ 1 MiB of reads instead of
/// whole 8 MiB parts. The parts of one shard are written and read concurrently over the
/// connection pool (`archiver bench` shows the dispersal cost). A multiple of the challenge chunk
/// size so that no chunk straddles two parts; changing it moves where existing shards are found.
pub const SHARD_PART_BYTES: usize = 64 * 1024;
const _: () = assert!(SHARD_PART_BYTES.is_multiple_of(prover::merkle::CHUNK_BYTES));

/// Why a hoster call failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Zdb(#[from] ZdbError),
    /// A failure produced by a fault-injecting test double.
    #[error("injected fault: {0}")]
    Injected(String),
    /// The hoster answered, but not with what the call needs.
    #[error("{0}")]
    Refused(String),
}

pub type HostResult<T> = std::result::Result<T, HostError>;

/// A hoster's shards: storage key → the hoster keys that hold its parts.
pub type ShardListing = std::collections::BTreeMap<Vec<u8>, Vec<Vec<u8>>>;

/// One scan batch: the cursor after it, and (storage key, hoster key) pairs.
pub type ShardBatch = (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);

/// Keys one whole listing (`list_shards`, what `hosters list` and `drain` count) may return:
/// about 1 TiB of this archive's shards in 64 KiB parts, some 800 MB in memory; a hoster holding
/// more is refused rather than let grow the caller's memory without bound. GC does not list: it
/// walks `scan_shards` batch by batch.
pub const SHARD_KEYS_LISTED_MAX: usize = 16 * 1024 * 1024;

/// One shard hoster as the archive uses it. Keys and values are opaque: the hoster learns nothing
/// about blocks or segments.
#[async_trait]
pub trait ShardHost: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &str;
    fn domain(&self) -> &str;
    /// Known to be down right now (calls would fail at once).
    fn is_down(&self) -> bool;
    /// Creates the shard and metadata namespaces if missing (needs admin rights on first use).
    async fn prepare(&self) -> HostResult<()>;
    async fn put_shard(&self, key: &[u8], data: &[u8]) -> HostResult<()>;
    async fn get_shard(&self, key: &[u8], len: u64) -> HostResult<Option<Vec<u8>>>;
    /// Reads a shard part by part (`SHARD_PART_BYTES`): the bytes, with the indices of parts
    /// that could not be read (left zero). `None` when no part is there.
    async fn get_shard_parts(
        &self,
        key: &[u8],
        len: u64,
    ) -> HostResult<Option<(Vec<u8>, Vec<usize>)>> {
        Ok(self
            .get_shard(key, len)
            .await?
            .map(|bytes| (bytes, Vec::new())))
    }
    /// Is the whole shard stored (every part present with the right length)? Reads no payload.
    async fn has_shard(&self, key: &[u8], len: u64) -> HostResult<bool>;
    async fn put_meta(&self, key: &[u8], data: &[u8]) -> HostResult<()>;
    async fn get_meta(&self, key: &[u8]) -> HostResult<Option<Vec<u8>>>;
    async fn ping(&self) -> HostResult<()>;
    /// Payload bytes stored in the shard namespace.
    async fn stored_bytes(&self) -> HostResult<u64>;
    /// Every shard the hoster stores, as storage key → the hoster's own keys holding its parts
    /// (what orphan GC lists; keys that are not shard parts are left out, never deleted).
    async fn list_shards(&self) -> HostResult<ShardListing> {
        Err(HostError::Refused(format!(
            "hoster {} cannot list its shards",
            self.name()
        )))
    }
    /// One batch of the hoster's shard keys after `cursor` (from the start when `None`): the
    /// next cursor and (storage key, hoster key) pairs; `None` past the end. What GC walks, so
    /// no listing of a whole hoster is ever held. By default one batch from `list_shards`.
    async fn scan_shards(&self, cursor: Option<Vec<u8>>) -> HostResult<Option<ShardBatch>> {
        if cursor.is_some() {
            return Ok(None);
        }
        let keys = self
            .list_shards()
            .await?
            .into_iter()
            .flat_map(|(base, raws)| raws.into_iter().map(move |raw| (base.clone(), raw)))
            .collect();
        Ok(Some((vec![0], keys)))
    }
    /// Deletes hoster keys that [`list_shards`](Self::list_shards) returned (orphan GC only).
    async fn delete_shard_keys(&self, keys: &[Vec<u8>]) -> HostResult<()> {
        let _ = keys;
        Err(HostError::Refused(format!(
            "hoster {} cannot delete shards",
            self.name()
        )))
    }
    /// Answers a storage challenge (specs/challenge.md) for the shard stored under `key`:
    /// encoded challenge in, encoded response out. Judging the response is the caller's job.
    async fn prove(&self, key: &[u8], challenge: &[u8]) -> HostResult<Vec<u8>> {
        let _ = (key, challenge);
        Err(HostError::Refused(format!(
            "hoster {} does not answer storage challenges",
            self.name()
        )))
    }
}

/// A hoster reached over the 0-db protocol: shards in a worm namespace (no overwrite, no delete),
/// metadata in the worm namespace `<namespace>-meta` (every record is written once under its own
/// name); both private and password-protected when the config gives a password.
#[derive(Debug)]
pub struct ZdbHost {
    name: String,
    domain: String,
    shards: ZdbClient,
    meta: ZdbClient,
    /// The prover sidecar beside a real 0-db, when the hoster cannot answer `PROVE` itself.
    prover: Option<ZdbClient>,
}

impl ZdbHost {
    pub fn new(entry: &HosterEntry, opts: ClientOptions) -> Self {
        let cfg = |namespace: String| HosterConfig {
            address: entry.address.clone(),
            namespace,
            password: entry.password.clone(),
            admin_password: entry.admin_password.clone(),
        };
        Self {
            name: entry.name.clone(),
            domain: entry.domain.clone(),
            shards: ZdbClient::new(cfg(entry.namespace.clone()), opts.clone()),
            meta: ZdbClient::new(cfg(format!("{}-meta", entry.namespace)), opts.clone()),
            // The sidecar only needs the namespace name (SELECT); it holds no passwords.
            prover: entry.prover.as_ref().map(|address| {
                ZdbClient::new(
                    HosterConfig {
                        address: address.clone(),
                        namespace: entry.namespace.clone(),
                        password: None,
                        admin_password: None,
                    },
                    opts,
                )
            }),
        }
    }
}

#[async_trait]
impl ShardHost for ZdbHost {
    fn name(&self) -> &str {
        &self.name
    }
    fn domain(&self) -> &str {
        &self.domain
    }
    fn is_down(&self) -> bool {
        matches!(self.shards.health(), zdb_backend::Health::Down { .. })
    }
    async fn prepare(&self) -> HostResult<()> {
        // Shards are not worm: orphan GC deletes failed and superseded uploads. No shard name is
        // ever written with two contents (names are bound to the content and the version), and
        // every read is checked against the manifest's roots.
        self.shards.ensure_namespace(false).await?;
        // Metadata records are write-once too (one name per record and generation).
        self.meta.ensure_namespace(true).await?;
        Ok(())
    }
    async fn put_shard(&self, key: &[u8], data: &[u8]) -> HostResult<()> {
        Ok(self
            .shards
            .set_large_with(key, data, SHARD_PART_BYTES)
            .await?)
    }
    async fn get_shard(&self, key: &[u8], len: u64) -> HostResult<Option<Vec<u8>>> {
        Ok(self
            .shards
            .get_large_with(key, len, SHARD_PART_BYTES)
            .await?)
    }
    async fn get_shard_parts(
        &self,
        key: &[u8],
        len: u64,
    ) -> HostResult<Option<(Vec<u8>, Vec<usize>)>> {
        Ok(self
            .shards
            .get_large_parts_with(key, len, SHARD_PART_BYTES)
            .await?)
    }
    async fn prove(&self, key: &[u8], challenge: &[u8]) -> HostResult<Vec<u8>> {
        match self
            .prover
            .as_ref()
            .unwrap_or(&self.shards)
            .command(&[zdb_backend::prove::PROVE_COMMAND.as_bytes(), challenge, key])
            .await?
        {
            zdb_backend::Reply::Bulk(response) => Ok(response),
            other => Err(HostError::Refused(format!(
                "hoster {}: PROVE answered {other:?}",
                self.name
            ))),
        }
    }
    async fn has_shard(&self, key: &[u8], len: u64) -> HostResult<bool> {
        // LENGTH of every part, concurrently over the pool: proves presence and size without
        // moving the payload.
        let part_bytes = SHARD_PART_BYTES as u64;
        let parts = zdb_backend::large_part_count_with(len, SHARD_PART_BYTES);
        let checks = (0..parts).map(|p| async move {
            let expect = (len - p * part_bytes).min(part_bytes);
            let part_key = zdb_backend::large_part_key(key, p as u16);
            Ok::<_, ZdbError>(self.shards.length(&part_key).await? == Some(expect))
        });
        let found = futures::future::try_join_all(checks).await?;
        Ok(found.into_iter().all(|present| present))
    }
    async fn put_meta(&self, key: &[u8], data: &[u8]) -> HostResult<()> {
        Ok(self.meta.set(key, data).await?)
    }
    async fn get_meta(&self, key: &[u8]) -> HostResult<Option<Vec<u8>>> {
        Ok(self.meta.get(key).await?)
    }
    async fn ping(&self) -> HostResult<()> {
        Ok(self.shards.ping().await?)
    }
    async fn stored_bytes(&self) -> HostResult<u64> {
        Ok(self.shards.ns_info().await?.data_size_bytes)
    }
    async fn list_shards(&self) -> HostResult<ShardListing> {
        let suffix = zdb_backend::LARGE_PART_SUFFIX_BYTES;
        let mut listing = ShardListing::new();
        for key in self.shards.scan_all(SHARD_KEYS_LISTED_MAX).await? {
            if key.len() == crate::keys::STORAGE_KEY_BYTES + suffix {
                let base = key[..key.len() - suffix].to_vec();
                listing.entry(base).or_default().push(key);
            }
        }
        Ok(listing)
    }
    async fn scan_shards(&self, cursor: Option<Vec<u8>>) -> HostResult<Option<ShardBatch>> {
        let suffix = zdb_backend::LARGE_PART_SUFFIX_BYTES;
        let Some(batch) = self.shards.scan(cursor.as_deref()).await? else {
            return Ok(None);
        };
        let keys = batch
            .keys
            .into_iter()
            .filter(|k| k.len() == crate::keys::STORAGE_KEY_BYTES + suffix)
            .map(|k| (k[..k.len() - suffix].to_vec(), k))
            .collect();
        Ok(Some((batch.cursor, keys)))
    }
    async fn delete_shard_keys(&self, keys: &[Vec<u8>]) -> HostResult<()> {
        for key in keys {
            self.shards.del(key).await?;
        }
        Ok(())
    }
}

/// All configured hosters, addressable by name.
#[derive(Clone, Debug)]
pub struct HosterSet {
    hosters: Vec<Arc<dyn ShardHost>>,
    by_name: HashMap<String, usize>,
}

impl HosterSet {
    pub fn new(hosters: Vec<Arc<dyn ShardHost>>) -> Self {
        let by_name = hosters
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name().to_string(), i))
            .collect();
        Self { hosters, by_name }
    }

    /// 0-db hosters from the config entries.
    pub fn from_config(entries: &[HosterEntry], opts: &ClientOptions) -> Self {
        Self::new(
            entries
                .iter()
                .map(|e| Arc::new(ZdbHost::new(e, opts.clone())) as Arc<dyn ShardHost>)
                .collect(),
        )
    }

    pub fn all(&self) -> &[Arc<dyn ShardHost>] {
        &self.hosters
    }

    pub fn len(&self) -> usize {
        self.hosters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosters.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn ShardHost>> {
        self.by_name.get(name).map(|&i| &self.hosters[i])
    }

    /// Hosters ordered for placing `want` new shards of `segment`, best first: never one in
    /// `exclude` (hosters already holding a shard of it); hosters not known to be down first; each
    /// next pick from the domain used least so far (counting `used_domains`); ties rotated by the
    /// segment id so load spreads when there are more hosters than shards. Returns every eligible
    /// hoster: those past `want` are spares for failed uploads.
    pub fn placement_order(
        &self,
        segment: u64,
        exclude: &[String],
        used_domains: &[String],
    ) -> Vec<Arc<dyn ShardHost>> {
        let n = self.hosters.len().max(1);
        let mut candidates: Vec<(usize, Arc<dyn ShardHost>)> = self
            .hosters
            .iter()
            .enumerate()
            .filter(|(_, h)| !exclude.iter().any(|e| e == h.name()))
            .map(|(i, h)| (((i + n - (segment as usize % n)) % n), h.clone()))
            .collect();
        candidates.sort_by_key(|(rot, h)| (h.is_down(), *rot));
        let mut domain_use: HashMap<String, usize> = HashMap::new();
        for d in used_domains {
            *domain_use.entry(d.clone()).or_default() += 1;
        }
        let mut ordered = Vec::with_capacity(candidates.len());
        while !candidates.is_empty() {
            // Up hosters before down ones; among those, the least-used domain; then rotation order.
            let best = candidates
                .iter()
                .enumerate()
                .min_by_key(|(_, (rot, h))| {
                    (
                        h.is_down(),
                        domain_use.get(h.domain()).copied().unwrap_or(0),
                        *rot,
                    )
                })
                .map(|(i, _)| i)
                .unwrap_or(0);
            let (_, h) = candidates.remove(best);
            *domain_use.entry(h.domain().to_string()).or_default() += 1;
            ordered.push(h);
        }
        ordered
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testing::MemoryHost;

    #[test]
    fn placement_spreads_domains_and_skips_excluded() {
        let hosts: Vec<Arc<dyn ShardHost>> = (0..6)
            .map(|i| {
                Arc::new(MemoryHost::new(&format!("h{i}"), &format!("d{}", i / 2)))
                    as Arc<dyn ShardHost>
            })
            .collect();
        let set = HosterSet::new(hosts);
        let order = set.placement_order(0, &[], &[]);
        let domains: Vec<&str> = order.iter().take(3).map(|h| h.domain()).collect();
        let mut unique = domains.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            3,
            "first three picks cover three domains: {domains:?}"
        );
        let order = set.placement_order(1, &["h0".into(), "h1".into()], &["d0".into()]);
        assert!(order.iter().all(|h| h.name() != "h0" && h.name() != "h1"));
        assert_eq!(order.len(), 4);
        assert_ne!(order[0].domain(), "d0");
    }
}
