//! Mount lifecycle: `mount` (checks the mountpoint, then mounts read-only on `MOUNT_THREADS`
//! worker threads), the `Mounted` handle that unmounts, `MountError`, stale-mount detection and
//! the text of the mount root's `README`.

use std::path::{Path, PathBuf};

use fuser::MountOption;

use crate::fs::HistoryFs;

/// FUSE worker threads: reads of different segments proceed while one waits on the hosters.
pub const MOUNT_THREADS: usize = 4;

/// Why a mount could not start; each names its path.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(
        "{path} is a stale mount (its filesystem process died): clear it with `fusermount3 -u {path}` (or `umount -l {path}` as root), then mount again"
    )]
    StaleMount { path: String },
    #[error("mountpoint {path}: {source}")]
    Mountpoint {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("mountpoint {path} is not a directory")]
    NotADirectory { path: String },
    #[error("mounting {path}: {source} (needs /dev/fuse and fusermount3, from the fuse3 package)")]
    Mount {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The README at the mount's root.
pub(crate) const README: &str = "\
This is a read-only view of an archived Proof-of-Authority chain history (`archiver mount`).

head.json            the last archived (finalized) block: number, hash; first archived block;
                     segments dispersed to the hosters
blocks/TTT/MMM/      block N lives in blocks/<N / 1000000>/<(N / 1000) % 1000>/, so no directory
                     holds more than 1,000 blocks
  NNNNNNNNN.scale    the block's bytes exactly as archived (SCALE-encoded for Substrate chains)
  NNNNNNNNN.json     its decoded header: number, hash, parent, state root, extrinsics root,
                     digest, extrinsic count, whether a justification is present
by-hash/0x<hash>     a symlink to the block's .scale file
segments/<id>/manifest.json
                     the segment's manifest: block range, blocks root, shard roots, placement
mount-stats.json     the mount's cache and read counters

Blocks whose segment files were pruned from local disk are fetched from the shard hosters when
read (any m of the k+m hosters may be down) and verified as in a restore; a bounded cache
(--cache-mib) keeps recent segments. New blocks appear as they are archived. Every write is
refused (EROFS). Unmount with Ctrl-C or SIGTERM to `archiver mount`.
";

/// A mounted view; dropping it unmounts.
pub struct Mounted {
    session: fuser::BackgroundSession,
    path: PathBuf,
}

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted").field("path", &self.path).finish()
    }
}

impl Mounted {
    /// Unmounts and waits for the filesystem threads to end.
    pub fn unmount(self) -> std::io::Result<()> {
        self.session.umount_and_join()
    }

    /// Unmounts with `fusermount3 -u` unless processes still use the mount: then the mount
    /// keeps serving and comes back with fusermount3's reason (e.g. "Device or resource busy"),
    /// instead of being left half torn down.
    pub fn try_unmount(self) -> Result<(), Box<(Self, String)>> {
        match std::process::Command::new("fusermount3")
            .arg("-u")
            .arg(&self.path)
            .output()
        {
            Ok(out) if out.status.success() => {
                // The kernel ended the connection: the session thread returns.
                let _ = self.session.join();
                Ok(())
            }
            Ok(out) => {
                let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
                Err(Box::new((self, why)))
            }
            Err(e) => Err(Box::new((self, format!("running fusermount3: {e}")))),
        }
    }

    /// Whether the filesystem has ended: someone unmounted it from outside.
    pub fn is_finished(&self) -> bool {
        self.session.guard.is_finished()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether `path` is a mountpoint whose filesystem process is gone ("Transport endpoint is not
/// connected").
pub fn is_stale_mount(path: &Path) -> bool {
    is_stale(&std::fs::metadata(path))
}

/// Whether a mountpoint's `stat` failed as a stale FUSE mount's does.
fn is_stale(stat: &std::io::Result<std::fs::Metadata>) -> bool {
    matches!(stat, Err(e) if e.raw_os_error() == Some(libc::ENOTCONN))
}

/// Checks the mountpoint `path` from its `stat`: a directory, and not a stale mount.
fn check_mountpoint(
    path: &str,
    stat: std::io::Result<std::fs::Metadata>,
) -> Result<(), MountError> {
    if is_stale(&stat) {
        return Err(MountError::StaleMount { path: path.into() });
    }
    match stat {
        Err(source) => Err(MountError::Mountpoint {
            path: path.into(),
            source,
        }),
        Ok(m) if !m.is_dir() => Err(MountError::NotADirectory { path: path.into() }),
        Ok(_) => Ok(()),
    }
}

/// The configuration of every mount: read-only at the kernel, named in mtab, permissions checked
/// by the kernel against the attributes, nothing in it a device, setuid or executable, only the
/// mounting user let in (fuser's default ACL), `MOUNT_THREADS` workers.
fn mount_config() -> fuser::Config {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::FSName("poa-archive".into()),
        MountOption::Subtype("archiver".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
        MountOption::NoExec,
    ];
    config.n_threads = Some(MOUNT_THREADS);
    config
}

/// Mounts `fs` read-only at `mountpoint`.
pub fn mount(fs: HistoryFs, mountpoint: &Path) -> Result<Mounted, MountError> {
    let path = mountpoint.display().to_string();
    check_mountpoint(&path, std::fs::metadata(mountpoint))?;
    let session = fuser::spawn_mount(fs, mountpoint, &mount_config())
        .map_err(|source| MountError::Mount { path, source })?;
    Ok(Mounted {
        session,
        path: mountpoint.to_path_buf(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::layout;

    #[test]
    fn mounts_are_read_only_and_inert() {
        let config = mount_config();
        let opts = &config.mount_options;
        for must in [
            MountOption::RO,
            MountOption::NoDev,
            MountOption::NoSuid,
            MountOption::NoExec,
            MountOption::DefaultPermissions,
            MountOption::FSName("poa-archive".into()),
            MountOption::Subtype("archiver".into()),
        ] {
            assert!(opts.contains(&must), "{must:?}");
        }
        for never in [
            MountOption::RW,
            MountOption::Dev,
            MountOption::Suid,
            MountOption::Exec,
        ] {
            assert!(!opts.contains(&never), "{never:?}");
        }
        assert_eq!(opts.len(), 7);
        assert_eq!(config.acl, fuser::SessionACL::Owner, "other users stay out");
        assert_eq!(config.n_threads, Some(MOUNT_THREADS));
    }

    #[test]
    fn stale_mounts_are_detected_on_enotconn() {
        let stale = Err(std::io::Error::from_raw_os_error(libc::ENOTCONN));
        assert!(is_stale(&stale));
        let err = check_mountpoint("/mnt/x", stale).unwrap_err();
        assert!(matches!(err, MountError::StaleMount { .. }));
        // The message names the command that clears it.
        assert!(err.to_string().contains("fusermount3 -u /mnt/x"), "{err}");
        let missing = Err(std::io::Error::from_raw_os_error(libc::ENOENT));
        assert!(!is_stale(&missing));
        let err = check_mountpoint("/mnt/y", missing).unwrap_err();
        assert!(matches!(err, MountError::Mountpoint { .. }));
        assert!(err.to_string().starts_with("mountpoint /mnt/y: "), "{err}");
    }

    #[test]
    fn the_mountpoint_must_be_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_stale_mount(dir.path()));
        assert!(check_mountpoint("d", std::fs::metadata(dir.path())).is_ok());
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let err = check_mountpoint("f", std::fs::metadata(&file)).unwrap_err();
        assert!(matches!(err, MountError::NotADirectory { .. }), "{err}");
    }

    #[test]
    fn readme_describes_every_root_entry() {
        for name in [
            layout::HEAD_NAME,
            layout::BLOCKS_NAME,
            layout::BY_HASH_NAME,
            layout::SEGMENTS_NAME,
            layout::MANIFEST_NAME,
            layout::STATS_NAME,
        ] {
            assert!(README.contains(name), "{name}");
        }
        assert!(README.contains("EROFS"));
    }
}
