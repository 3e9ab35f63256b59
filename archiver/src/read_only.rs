//! `ReadOnlyArchive`: the archive as a reader beside its writer sees it — a RocksDB secondary of
//! the store, the hosters, and one `HistoryReader` over both — assembled in one place for every
//! read-only consumer (mount, history RPC, audits, challenges).

use std::sync::Arc;

use crate::config::ArchiveConfig;
use crate::error::{ArchiveError, Result};
use crate::history::HistoryReader;
use crate::hosters::HosterSet;
use crate::keys::MasterKey;
use crate::remote::RemoteArchive;
use crate::store::Store;

/// A read-only view of an archive that another process may be writing.
pub struct ReadOnlyArchive {
    store: Arc<Store>,
    remote: RemoteArchive,
    reader: Arc<HistoryReader>,
    /// The secondary's own files (RocksDB info logs); removed when the view is dropped, so it is
    /// held for as long as the store.
    _scratch: tempfile::TempDir,
}

impl std::fmt::Debug for ReadOnlyArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyArchive")
            .field("scratch", &self._scratch.path())
            .finish()
    }
}

impl ReadOnlyArchive {
    /// Opens the archive of `cfg` read-only (its store as a secondary, which takes no lock), with
    /// a history read cache of at most `cache_bytes`.
    pub fn open(
        cfg: &ArchiveConfig,
        key: Arc<MasterKey>,
        hosters: HosterSet,
        cache_bytes: usize,
    ) -> Result<Self> {
        Self::open_with_metrics(cfg, key, hosters, cache_bytes, None)
    }

    /// [`open`](Self::open), its reader counting cache hits and misses into `metrics`.
    pub fn open_with_metrics(
        cfg: &ArchiveConfig,
        key: Arc<MasterKey>,
        hosters: HosterSet,
        cache_bytes: usize,
        metrics: Option<crate::metrics::ArchiveMetrics>,
    ) -> Result<Self> {
        let scratch = tempfile::tempdir().map_err(|e| {
            ArchiveError::io(
                "create secondary store directory in",
                std::env::temp_dir(),
                e,
            )
        })?;
        let layout = cfg.layout();
        let store = Store::open_secondary(&layout.db(), scratch.path())?;
        let remote = RemoteArchive::new(key, hosters);
        let mut reader = HistoryReader::new(
            store.clone(),
            layout.segments(),
            remote.clone(),
            cache_bytes,
        );
        if let Some(m) = metrics {
            reader = reader.with_metrics(m);
        }
        let reader = Arc::new(reader);
        Ok(Self {
            store,
            remote,
            reader,
            _scratch: scratch,
        })
    }

    /// The store, as of the last [`catch_up`](Self::catch_up).
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The archive as its hosters hold it.
    pub fn remote(&self) -> &RemoteArchive {
        &self.remote
    }

    /// Blocks by number: local segment files first, else the hosters.
    pub fn reader(&self) -> &Arc<HistoryReader> {
        &self.reader
    }

    /// Sees what the writer committed since the last call.
    pub fn catch_up(&self) -> Result<()> {
        self.store.catch_up()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::BlockRecord;
    use crate::Archive;

    fn block(number: u64, parent: [u8; 32]) -> BlockRecord {
        let body = vec![number as u8; 100];
        let hash = *blake3::hash(&[&number.to_le_bytes()[..], &parent, &body].concat()).as_bytes();
        BlockRecord {
            number,
            hash,
            parent_hash: parent,
            block: body,
            justification: None,
            changes: Vec::new(),
        }
    }

    /// Beside a writer holding the archive, the view reads what was committed when it opened,
    /// and what came later once it catches up; its store is the one under `DataDir::db`.
    #[tokio::test]
    async fn reads_beside_the_writer_and_catches_up() {
        let dir = tempfile::tempdir().unwrap();
        let (_, entries, set) = crate::testing::memory_hosters(6);
        let cfg = ArchiveConfig::new(dir.path().to_path_buf(), entries);
        let key = MasterKey::generate();
        let view_key = Arc::new(MasterKey::from_hex(&key.to_hex()).unwrap());
        let mut archive = Archive::open(cfg.clone(), key, set.clone()).unwrap();
        let first = block(0, [0; 32]);
        archive.log_mut().append(&first).unwrap();
        assert!(cfg.layout().db().is_dir() && cfg.layout().segments().is_dir());

        let view = ReadOnlyArchive::open(&cfg, view_key, set, 1 << 20).unwrap();
        let got = view.reader().block(0).await.unwrap().unwrap();
        assert_eq!(got.hash, first.hash);
        assert!(view.reader().block(1).await.unwrap().is_none());

        let second = block(1, first.hash);
        archive.log_mut().append(&second).unwrap();
        view.catch_up().unwrap();
        let got = view.reader().block(1).await.unwrap().unwrap();
        assert_eq!(got.hash, second.hash);
        assert_eq!(view.store().log_head().unwrap().last.map(|l| l.0), Some(1));
    }
}
