//! Read-only FUSE view of the archived chain history (`archiver mount`): blocks as files, nested so
//! no directory is huge, decoded headers beside them, manifests and the finalized head, read through
//! the archive's read path (fetching pruned blocks from the hosters on demand).
//!
//! Not implemented yet: this crate only reserves its place in the workspace. It exposes nothing that
//! pretends to mount anything; the mount is its own issue.
