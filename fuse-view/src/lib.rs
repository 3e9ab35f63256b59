//! Read-only FUSE view of the archived chain history (`archiver mount`): blocks as files, nested so
//! no directory is huge, decoded headers beside them, manifests and the finalized head, read
//! through the archive's read path (`archiver::HistoryReader`: the local log while a segment is
//! kept, else the segment rebuilt from the hosters into a bounded cache, one reconstruction per
//! segment however many readers wait for it).
//!
//! API boundary: [`HistoryFs`] (the filesystem over a `HistoryReader` and a [`Presenter`] for the
//! chain-specific JSON), [`mount`] (mounts it, refusing a stale mountpoint with the command that
//! clears it). The crate never writes to the archive and knows no chain format.
//!
//! Modules by concern (each tested on its own; only `fs` and `filesystem` touch the archive or
//! the kernel):
//! - [`layout`]: the tree's inode numbers, names and which blocks a directory holds;
//! - `view`: the store view, re-read at most every [`REFRESH_INTERVAL_MS`];
//! - `cache`: size map, decoded records, snapshots of changing files, read-ahead decisions;
//! - `tree`: attributes, TTLs, lookups and listings over one view;
//! - `fs`: [`HistoryFs`] and [`Presenter`]: what each file holds, through the read path;
//! - `filesystem`: the thin `fuser::Filesystem` impl;
//! - `mount`: [`mount`], [`Mounted`], [`MountError`], [`is_stale_mount`], the README text;
//! - `ceiling`: the bench-only trivial filesystem; it uses `read_window` and `MOUNT_THREADS`,
//!   and nothing here uses it.

pub mod layout;

mod cache;
mod filesystem;
mod fs;
mod mount;
mod tree;
mod view;

pub use cache::SIZE_CACHE_ENTRIES_MAX;
pub use fs::{read_window, HistoryFs, Presenter};
pub use mount::{is_stale_mount, mount, MountError, Mounted, MOUNT_THREADS};
pub use view::REFRESH_INTERVAL_MS;
