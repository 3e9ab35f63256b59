//! The `fuser::Filesystem` impl of `HistoryFs`: thin callbacks over `fs`, `tree` and the open
//! rules below. Every change is refused with `EROFS`.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use fuser::{
    AccessFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenAccMode, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request,
};

use crate::fs::{read_window, HistoryFs};
use crate::layout::{self, Node};
use crate::tree;

fn node_of(ino: INodeNo) -> Result<Node, Errno> {
    Node::from_ino(ino.0).ok_or(Errno::ENOENT)
}

/// How a file `open` with `flags` is answered: writes are refused (`EROFS`); with no-open (see
/// `init`) a read-only open gets `ENOSYS`, so the kernel opens files itself from then on.
fn open_flags(node: Node, flags: OpenFlags, no_open: bool) -> Result<FopenFlags, Errno> {
    let read_only = flags.acc_mode() == OpenAccMode::O_RDONLY
        && flags.0 & (libc::O_TRUNC | libc::O_APPEND | libc::O_CREAT) == 0;
    if no_open && flags.acc_mode() == OpenAccMode::O_RDONLY {
        // Writes are refused by the read-only mount before they get here.
        return Err(Errno::ENOSYS);
    }
    if !read_only {
        return Err(Errno::EROFS);
    }
    Ok(match node {
        n if n.is_dir() => return Err(Errno::EISDIR),
        // Content changes: no page cache; reads serve the snapshot the last stat sized.
        n if tree::is_changing_file(n) => FopenFlags::FOPEN_DIRECT_IO,
        // Immutable: the kernel may keep their pages between opens (hot reads never reach us
        // again).
        Node::Scale(_) | Node::Json(_) | Node::Readme => FopenFlags::FOPEN_KEEP_CACHE,
        _ => FopenFlags::empty(),
    })
}

/// Whether a directory `opendir` with `flags` is allowed.
fn opendir_check(node: Node, flags: OpenFlags) -> Result<(), Errno> {
    if flags.acc_mode() != OpenAccMode::O_RDONLY {
        return Err(Errno::EROFS);
    }
    if node.is_dir() {
        Ok(())
    } else {
        Err(Errno::ENOTDIR)
    }
}

/// Files `statfs` reports: two per archived block.
fn file_count(range: Option<(u64, u64)>) -> u64 {
    range.map_or(0, |(first, head)| {
        (head - first).saturating_add(1).saturating_mul(2)
    })
}

impl Filesystem for HistoryFs {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        // Zero-message opens: files are then opened and closed by the kernel alone, with their
        // pages kept, so a hot read of a block file costs no round trip to this process. Files
        // whose content changes (head.json, mount-stats.json, manifests) stay correct because
        // their attributes never stay cached (TTL 0) and each getattr gives a new mtime when the
        // content changed, which makes the kernel drop their pages (`auto_inval_data`).
        let caps = config.capabilities();
        if caps.contains(fuser::InitFlags::FUSE_NO_OPEN_SUPPORT)
            && config
                .add_capabilities(fuser::InitFlags::FUSE_AUTO_INVAL_DATA)
                .is_ok()
        {
            self.no_open = true;
        }
        Ok(())
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Nothing is ever written: the kernel stops sending flushes after this answer.
        reply.error(Errno::ENOSYS);
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = node_of(parent).and_then(|p| {
            if !p.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            let name = name.to_str().ok_or(Errno::ENOENT)?;
            self.child(p, name).ok_or(Errno::ENOENT)
        });
        match found.and_then(|node| self.attr(node)) {
            Ok((attr, ttl)) => reply.entry(&ttl, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match node_of(ino).and_then(|n| self.attr(n)) {
            Ok((attr, ttl)) => reply.attr(&ttl, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match node_of(ino) {
            Ok(Node::Hash(n)) if self.in_range(n) => {
                reply.data(layout::symlink_target(n).as_bytes())
            }
            Ok(_) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match node_of(ino).and_then(|n| open_flags(n, flags, self.no_open)) {
            Ok(fopen) => reply.opened(FileHandle(0), fopen),
            Err(e) => reply.error(e),
        }
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
        match node_of(ino).and_then(|n| self.content(n)) {
            Ok(content) => {
                let window = read_window(content.bytes(), offset, size);
                self.counters
                    .bytes_served
                    .fetch_add(window.len() as u64, Ordering::Relaxed);
                reply.data(window);
            }
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match node_of(ino).and_then(|n| opendir_check(n, flags)) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match node_of(ino) {
            Ok(n) if n.is_dir() => {
                self.list(n, offset, |next, child, name| {
                    !reply.add(INodeNo(child.ino()), next, tree::file_type(child), name)
                });
                reply.ok();
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let files = file_count(self.view().range);
        reply.statfs(0, 0, 0, files, 0, 4096, 255, 4096);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        if mask.contains(AccessFlags::W_OK) {
            return reply.error(Errno::EROFS);
        }
        match node_of(ino) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    // Every change is refused with EROFS. The mount is also read-only at the kernel (`ro`), which
    // answers most of these itself; these are for the paths that still reach us.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(bits: i32) -> OpenFlags {
        OpenFlags(bits)
    }

    #[test]
    fn write_opens_are_refused_with_erofs() {
        for bits in [
            libc::O_WRONLY,
            libc::O_RDWR,
            libc::O_RDONLY | libc::O_TRUNC,
            libc::O_RDONLY | libc::O_APPEND,
            libc::O_RDONLY | libc::O_CREAT,
        ] {
            for node in [Node::Scale(1), Node::Head, Node::Readme] {
                assert_eq!(
                    open_flags(node, flags(bits), false),
                    Err(Errno::EROFS),
                    "{bits:#x}"
                );
            }
        }
    }

    #[test]
    fn read_opens_keep_pages_of_immutable_files_only() {
        let ro = flags(libc::O_RDONLY);
        for node in [Node::Scale(1), Node::Json(1), Node::Readme] {
            assert_eq!(
                open_flags(node, ro, false),
                Ok(FopenFlags::FOPEN_KEEP_CACHE)
            );
        }
        for node in [Node::Head, Node::Stats, Node::Manifest(3)] {
            assert_eq!(open_flags(node, ro, false), Ok(FopenFlags::FOPEN_DIRECT_IO));
        }
        assert_eq!(
            open_flags(Node::Hash(1), ro, false),
            Ok(FopenFlags::empty())
        );
        assert_eq!(open_flags(Node::Blocks, ro, false), Err(Errno::EISDIR));
        // With no-open the kernel is told to stop asking.
        assert_eq!(open_flags(Node::Scale(1), ro, true), Err(Errno::ENOSYS));
        assert_eq!(
            open_flags(Node::Scale(1), flags(libc::O_WRONLY), true),
            Err(Errno::EROFS)
        );
    }

    #[test]
    fn opendir_wants_a_directory() {
        let ro = flags(libc::O_RDONLY);
        assert_eq!(opendir_check(Node::Mid { top: 0, mid: 1 }, ro), Ok(()));
        assert_eq!(opendir_check(Node::Scale(0), ro), Err(Errno::ENOTDIR));
        assert_eq!(
            opendir_check(Node::Blocks, flags(libc::O_WRONLY)),
            Err(Errno::EROFS)
        );
    }

    #[test]
    fn unknown_inodes_are_enoent() {
        assert_eq!(node_of(INodeNo(0)), Err(Errno::ENOENT));
        assert_eq!(node_of(INodeNo(Node::Json(9).ino())), Ok(Node::Json(9)));
    }

    #[test]
    fn statfs_counts_two_files_per_block() {
        assert_eq!(file_count(None), 0);
        assert_eq!(file_count(Some((10, 10))), 2);
        assert_eq!(file_count(Some((0, 999))), 2_000);
        assert_eq!(file_count(Some((0, u64::MAX))), u64::MAX);
    }
}
