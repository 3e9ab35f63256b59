//! The raw FUSE ceiling for benchmarks: a trivial filesystem serving one file from memory, so
//! the mount's read rates can be set against what FUSE itself allows on the same machine.

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

/// One buffer served as two files (uncached and cached).
#[derive(Debug)]
pub struct MemoryFs {
    data: Vec<u8>,
}

impl MemoryFs {
    pub fn new(bytes: usize) -> Self {
        Self {
            data: (0..bytes).map(|i| (i % 251) as u8).collect(),
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let (kind, size, perm) = match ino {
            1 => (FileType::Directory, 0, 0o555),
            2 | 3 => (FileType::RegularFile, self.data.len() as u64, 0o444),
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
            (1, Some(UNCACHED_NAME)) => 2,
            (1, Some(CACHED_NAME)) => 3,
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
        let flags = if ino.0 == 3 {
            FopenFlags::FOPEN_KEEP_CACHE
        } else {
            FopenFlags::empty()
        };
        reply.opened(FileHandle(0), flags);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let end = start.saturating_add(size as usize).min(self.data.len());
        reply.data(&self.data[start..end]);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino.0 != 1 {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (1, FileType::Directory, "."),
            (1, FileType::Directory, ".."),
            (2, FileType::RegularFile, UNCACHED_NAME),
            (3, FileType::RegularFile, CACHED_NAME),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// Mounts `fs` read-only at `mountpoint` (for benchmarks).
pub fn mount_memory(
    fs: MemoryFs,
    mountpoint: &std::path::Path,
) -> std::io::Result<fuser::BackgroundSession> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("fuse-ceiling".into()),
    ];
    config.n_threads = Some(crate::MOUNT_THREADS);
    fuser::spawn_mount(fs, mountpoint, &config)
}
