//! The raw FUSE ceilings for benchmarks: a trivial filesystem serving from memory one large file
//! (what FUSE moves per byte) and many small files (what FUSE costs per file), so the mount's
//! read rates can be set against what FUSE itself allows on the same machine.

use std::ffi::OsStr;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, Request,
};

/// File names in the root of the trivial filesystem.
pub const UNCACHED_NAME: &str = "uncached";
/// Served with `keep_cache`: a second read comes from the page cache, as hot block reads do.
pub const CACHED_NAME: &str = "cached";
/// Directory of the small files: `small/<i>` for i in 0..count, each `small_bytes` long, served
/// with `keep_cache` like block files.
pub const SMALL_DIR: &str = "small";

const INO_ROOT: u64 = 1;
const INO_UNCACHED: u64 = 2;
const INO_CACHED: u64 = 3;
const INO_SMALL_DIR: u64 = 4;
/// Small file i has inode SMALL_BASE + i.
const SMALL_BASE: u64 = 1 << 32;

/// One buffer served as two large files and as many small ones.
#[derive(Debug)]
pub struct MemoryFs {
    data: Vec<u8>,
    small_count: u64,
    small_bytes: usize,
}

impl MemoryFs {
    /// `bytes` for the large files; `small_count` files of `small_bytes` (at most `bytes`).
    pub fn new(bytes: usize, small_count: u64, small_bytes: usize) -> Self {
        Self {
            data: (0..bytes).map(|i| (i % 251) as u8).collect(),
            small_count,
            small_bytes: small_bytes.min(bytes),
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let (kind, size, perm) = match ino {
            INO_ROOT | INO_SMALL_DIR => (FileType::Directory, 0, 0o555),
            INO_UNCACHED | INO_CACHED => (FileType::RegularFile, self.data.len() as u64, 0o444),
            i if (SMALL_BASE..SMALL_BASE + self.small_count).contains(&i) => {
                (FileType::RegularFile, self.small_bytes as u64, 0o444)
            }
            _ => return None,
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }
}

const TTL: Duration = Duration::from_secs(3600);

impl Filesystem for MemoryFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let ino = match (parent.0, name.to_str()) {
            (INO_ROOT, Some(UNCACHED_NAME)) => INO_UNCACHED,
            (INO_ROOT, Some(CACHED_NAME)) => INO_CACHED,
            (INO_ROOT, Some(SMALL_DIR)) => INO_SMALL_DIR,
            (INO_SMALL_DIR, Some(n)) => match n.parse::<u64>() {
                Ok(i) => SMALL_BASE + i,
                Err(_) => return reply.error(Errno::ENOENT),
            },
            _ => return reply.error(Errno::ENOENT),
        };
        match self.attr(ino) {
            Some(a) => reply.entry(&TTL, &a, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let flags = if ino.0 == INO_UNCACHED {
            FopenFlags::empty()
        } else {
            FopenFlags::FOPEN_KEEP_CACHE
        };
        reply.opened(FileHandle(0), flags);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let len = if ino.0 >= SMALL_BASE {
            self.small_bytes
        } else {
            self.data.len()
        };
        reply.data(fuse_view::read_window(&self.data[..len], offset, size));
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino.0 != INO_ROOT {
            // `small/` is read by name only.
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (INO_ROOT, FileType::Directory, "."),
            (INO_ROOT, FileType::Directory, ".."),
            (INO_UNCACHED, FileType::RegularFile, UNCACHED_NAME),
            (INO_CACHED, FileType::RegularFile, CACHED_NAME),
            (INO_SMALL_DIR, FileType::Directory, SMALL_DIR),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// Mounts `fs` read-only at `mountpoint` (for benchmarks), with the mount's thread count.
pub fn mount_memory(
    fs: MemoryFs,
    mountpoint: &std::path::Path,
) -> std::io::Result<fuser::BackgroundSession> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("fuse-ceiling".into()),
    ];
    config.n_threads = Some(fuse_view::MOUNT_THREADS);
    fuser::spawn_mount(fs, mountpoint, &config)
}
