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
        let reader = Arc::new(HistoryReader::new(
            store.clone(),
            layout.segments(),
            remote.clone(),
            cache_bytes,
        ));
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
