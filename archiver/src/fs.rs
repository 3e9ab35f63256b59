//! The block log's file layer: every write, fsync and catalog commit the log performs goes through
//! [`FileLayer`], so tests can inject faults (fail the Nth write, fsync or commit) and power loss
//! (drop what was never synced) where production uses the operating system ([`OsFiles`]).

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::store::{Batch, Store};

/// An open segment file. Writes are positional: a failed write never moves a hidden cursor.
pub trait SegmentFile: Send + Sync + fmt::Debug {
    fn size(&self) -> io::Result<u64>;
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn sync_data(&self) -> io::Result<()>;
    fn sync_all(&self) -> io::Result<()>;
}

/// What the log does to its directory and its catalog.
pub trait FileLayer: Send + Sync + fmt::Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Creates a file for reading and writing, truncating a leftover one.
    fn create(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>>;
    /// Makes the directory's entries (files created in it) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Writes one catalog batch atomically (synced: durable before it returns). A layer may fail
    /// it like a failed RocksDB write.
    fn commit(&self, store: &Store, batch: Batch, synced: bool) -> Result<()> {
        if synced {
            store.commit_synced(batch)
        } else {
            store.commit(batch)
        }
    }
}

/// The operating system's files.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFiles;

#[derive(Debug)]
struct OsFile(File);

impl SegmentFile for OsFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}

impl FileLayer for OsFiles {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let f = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(OsFile(f)))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(OsFile(f)))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Test double over the real files: counts every write, fsync and commit, fails the Nth one
/// (once), and can simulate a power loss that drops every byte and file never synced.
#[derive(Debug, Clone, Default)]
pub struct FaultyFiles {
    inner: Arc<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    ops: AtomicU64,
    /// 1-based index of the operation to fail; 0 = never.
    fail_at: AtomicU64,
    failed: Mutex<Option<String>>,
    /// Per file: bytes known durable (synced); files absent here were never made durable.
    durable: Mutex<HashMap<PathBuf, Durable>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Durable {
    /// Length at the last fsync.
    len: u64,
    /// Whether a directory sync made the file's name durable.
    named: bool,
}

fn injected(op: &str, n: u64, path: &Path) -> io::Error {
    io::Error::other(format!(
        "injected fault: operation {n} ({op} {})",
        path.display()
    ))
}

impl FaultState {
    /// Counts one operation; Err when it is the one to fail.
    fn step(&self, op: &str, path: &Path) -> io::Result<()> {
        let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_at.load(Ordering::SeqCst) == n {
            if let Ok(mut f) = self.failed.lock() {
                *f = Some(format!("{op} {}", path.display()));
            }
            return Err(injected(op, n, path));
        }
        Ok(())
    }

    fn record_sync(&self, path: &Path, len: u64) {
        if let Ok(mut d) = self.durable.lock() {
            d.entry(path.to_path_buf()).or_default().len = len;
        }
    }
}

impl FaultyFiles {
    pub fn new() -> Self {
        Self::default()
    }
    /// Fails the `n`-th operation counted from the layer's creation (1 = the first); 0 = never.
    pub fn fail_nth(&self, n: u64) {
        self.inner.fail_at.store(n, Ordering::SeqCst);
    }
    /// Operations counted so far (writes, truncations, creations, fsyncs, commits).
    pub fn ops(&self) -> u64 {
        self.inner.ops.load(Ordering::SeqCst)
    }
    /// The operation that was failed, if any.
    pub fn failed(&self) -> Option<String> {
        self.inner.failed.lock().ok().and_then(|f| f.clone())
    }
    /// Power loss: every file loses the bytes written after its last fsync (half of the unsynced
    /// tail is kept, as a torn write), and files whose name was never synced vanish.
    pub fn power_loss(&self) -> io::Result<()> {
        let durable = self
            .inner
            .durable
            .lock()
            .map_err(|_| io::Error::other("poisoned lock"))?
            .clone();
        for (path, d) in durable {
            let Ok(file) = OpenOptions::new().write(true).open(&path) else {
                continue;
            };
            if !d.named {
                drop(file);
                std::fs::remove_file(&path)?;
                continue;
            }
            let len = file.metadata()?.len();
            if len > d.len {
                file.set_len(d.len + (len - d.len) / 2)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct FaultyFile {
    file: OsFile,
    path: PathBuf,
    state: Arc<FaultState>,
}

impl SegmentFile for FaultyFile {
    fn size(&self) -> io::Result<u64> {
        self.file.size()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        if let Err(e) = self.state.step("write", &self.path) {
            // A failed write may still have landed in part.
            self.file.write_all_at(&buf[..buf.len() / 2], offset)?;
            return Err(e);
        }
        self.file.write_all_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.state.step("truncate", &self.path)?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.state.step("sync_data", &self.path)?;
        self.file.sync_data()?;
        self.state.record_sync(&self.path, self.file.size()?);
        Ok(())
    }
    fn sync_all(&self) -> io::Result<()> {
        self.state.step("sync_all", &self.path)?;
        self.file.sync_all()?;
        self.state.record_sync(&self.path, self.file.size()?);
        Ok(())
    }
}

impl FileLayer for FaultyFiles {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.step("create_dir_all", dir)?;
        std::fs::create_dir_all(dir)
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        let file = OsFile(OpenOptions::new().read(true).write(true).open(path)?);
        let len = file.size()?;
        if let Ok(mut d) = self.inner.durable.lock() {
            // A file found on open survived whatever came before: all of it is durable.
            d.insert(path.to_path_buf(), Durable { len, named: true });
        }
        Ok(Box::new(FaultyFile {
            file,
            path: path.to_path_buf(),
            state: self.inner.clone(),
        }))
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn SegmentFile>> {
        self.inner.step("create", path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        if let Ok(mut d) = self.inner.durable.lock() {
            let named = d.get(path).is_some_and(|x| x.named);
            d.insert(path.to_path_buf(), Durable { len: 0, named });
        }
        Ok(Box::new(FaultyFile {
            file: OsFile(file),
            path: path.to_path_buf(),
            state: self.inner.clone(),
        }))
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.inner.step("sync_dir", dir)?;
        OsFiles.sync_dir(dir)?;
        if let Ok(mut d) = self.inner.durable.lock() {
            for (path, x) in d.iter_mut() {
                if path.parent() == Some(dir) {
                    x.named = true;
                }
            }
        }
        Ok(())
    }
    fn commit(&self, store: &Store, batch: Batch, synced: bool) -> Result<()> {
        let path = Path::new("catalog");
        let n = self.inner.ops.load(Ordering::SeqCst) + 1;
        if let Err(e) = self.inner.step("commit", path) {
            // Even-numbered failures report an error after the batch landed (a WAL sync that
            // failed after the write), odd ones fail before anything is written.
            if n.is_multiple_of(2) {
                store.commit(batch)?;
            }
            return Err(crate::error::ArchiveError::io("commit catalog", path, e));
        }
        if synced {
            store.commit_synced(batch)
        } else {
            store.commit(batch)
        }
    }
}
