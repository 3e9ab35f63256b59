//! The disk side of the embedded hoster behind two small traits, so tests can inject faults
//! (failing writes, flipped bits) without touching the namespace logic; `FileStorage` is the
//! real implementation: one directory per namespace with a `props` file and a `data` log.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// One namespace's append-only data log. Offsets are absolute byte positions in the log.
/// Implementations must be safe to call from several threads: reads run concurrently with the
/// (single) writer, and never touch bytes that are still being written.
pub trait DataLog: Send + Sync + 'static {
    /// Current size in bytes.
    fn size_bytes(&self) -> io::Result<u64>;
    /// Writes all `parts`, back to back, at `offset`; all bytes or an error.
    fn write_at(&self, offset: u64, parts: &[&[u8]]) -> io::Result<()>;
    /// Fills `buf` from `offset`; an error if the log ends first.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Cuts the log to `len` bytes (drops a torn tail or a failed append).
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// Makes everything written so far durable (fsync).
    fn sync(&self) -> io::Result<()>;
}

/// Namespaces on disk: their properties (opaque bytes here) and their data logs.
pub trait HosterStorage: Send + Sync + 'static {
    /// Names of every namespace stored.
    fn namespaces(&self) -> io::Result<Vec<Vec<u8>>>;
    /// Creates a namespace with its properties and an empty log, atomically: after a crash it
    /// either exists completely or not at all.
    fn create_namespace(&self, name: &[u8], props: &[u8]) -> io::Result<()>;
    fn read_props(&self, name: &[u8]) -> io::Result<Vec<u8>>;
    /// Replaces the properties atomically (a crash leaves the old or the new ones).
    fn write_props(&self, name: &[u8], props: &[u8]) -> io::Result<()>;
    fn open_log(&self, name: &[u8]) -> io::Result<Box<dyn DataLog>>;
    /// Deletes a namespace with its data, atomically: after a crash it either still exists
    /// completely or not at all. Storage that cannot (test doubles) refuses.
    fn delete_namespace(&self, _name: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this storage cannot delete namespaces",
        ))
    }
}

/// Directory prefix of a namespace; the name follows in lowercase hex, because 0-db namespace
/// names may hold any byte but `/` and the file system must not interpret any of them.
const NS_DIR_PREFIX: &str = "ns-";
/// Prefix of a namespace directory under construction (ignored when listing).
const NS_TMP_PREFIX: &str = "tmp-";
const PROPS_FILE: &str = "props";
const PROPS_TMP_FILE: &str = "props.tmp";
const DATA_FILE: &str = "data";

/// Namespaces as directories under one data directory:
/// `<data_dir>/ns-<hex name>/{props,data}`.
#[derive(Debug)]
pub struct FileStorage {
    root: PathBuf,
}

impl FileStorage {
    /// Uses (and creates if needed) `root`; leftovers of interrupted namespace creations are
    /// removed.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        for entry in fs::read_dir(root)? {
            let entry = entry?;
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(NS_TMP_PREFIX)
            {
                fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    fn ns_dir(&self, name: &[u8]) -> PathBuf {
        self.root
            .join(format!("{NS_DIR_PREFIX}{}", hex::encode(name)))
    }

    pub fn data_path(&self, name: &[u8]) -> PathBuf {
        self.ns_dir(name).join(DATA_FILE)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn write_file_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl HosterStorage for FileStorage {
    fn namespaces(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            if let Some(hex_name) = file_name.strip_prefix(NS_DIR_PREFIX) {
                match hex::decode(hex_name) {
                    Ok(name) => names.push(name),
                    Err(_) => {
                        tracing::warn!(dir = %entry.path().display(), "ignoring directory with a malformed namespace name");
                    }
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn create_namespace(&self, name: &[u8], props: &[u8]) -> io::Result<()> {
        let final_dir = self.ns_dir(name);
        if final_dir.exists() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "namespace already exists",
            ));
        }
        let tmp = self
            .root
            .join(format!("{NS_TMP_PREFIX}{}", hex::encode(name)));
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir(&tmp)?;
        write_file_synced(&tmp.join(PROPS_FILE), props)?;
        write_file_synced(&tmp.join(DATA_FILE), &[])?;
        sync_dir(&tmp)?;
        fs::rename(&tmp, &final_dir)?;
        sync_dir(&self.root)
    }

    fn read_props(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        fs::read(self.ns_dir(name).join(PROPS_FILE))
    }

    fn write_props(&self, name: &[u8], props: &[u8]) -> io::Result<()> {
        let dir = self.ns_dir(name);
        let tmp = dir.join(PROPS_TMP_FILE);
        write_file_synced(&tmp, props)?;
        fs::rename(&tmp, dir.join(PROPS_FILE))?;
        sync_dir(&dir)
    }

    fn delete_namespace(&self, name: &[u8]) -> io::Result<()> {
        // Renamed to a `tmp-` directory first (atomic, and removed at startup if the removal
        // below is cut short), so a crash never leaves half a namespace that looks whole.
        let tmp = self
            .root
            .join(format!("{NS_TMP_PREFIX}{}", hex::encode(name)));
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::rename(self.ns_dir(name), &tmp)?;
        sync_dir(&self.root)?;
        fs::remove_dir_all(&tmp)
    }

    fn open_log(&self, name: &[u8]) -> io::Result<Box<dyn DataLog>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.data_path(name))?;
        Ok(Box::new(FileLog { file }))
    }
}

/// A data log in one file, written with positioned writes (pwrite) so that readers (pread) need
/// no lock and every acknowledged byte is in the kernel before the reply leaves.
#[derive(Debug)]
struct FileLog {
    file: File,
}

impl DataLog for FileLog {
    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn write_at(&self, mut offset: u64, parts: &[&[u8]]) -> io::Result<()> {
        for part in parts {
            self.file.write_all_at(part, offset)?;
            offset += part.len() as u64;
        }
        Ok(())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}
