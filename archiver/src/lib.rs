//! The chain-agnostic archive: finalized blocks appended to a local append-only log (RocksDB
//! catalog, current state and state-history index beside it), sealed segments encrypted (AES-256-GCM), Reed-Solomon
//! coded into k+m shards with Merkle roots, dispersed to independent hosters with hash-chained
//! manifests, and restored, verified and repaired from the hosters alone.
//!
//! Chain formats live in `node-plugin`; hosters are reached through the [`hosters::ShardHost`]
//! trait (0-db in production, fault-injecting doubles in tests).

pub mod archive;
pub mod audit;
pub mod codec;
pub mod config;
pub mod error;
pub mod fs;
pub mod gateway;
pub mod history;
pub mod hosters;
pub mod keys;
pub mod log;
pub mod manifest;
pub mod metrics;
pub mod ops;
pub mod read_only;
pub mod record;
pub mod remote;
pub mod restore;
pub mod state_index;
pub mod status;
pub mod store;
pub mod testing;

pub use archive::{Archive, DispersalReport, Disperser, RepairReport, ScrubReport};
pub use config::{ArchiveConfig, ClientConfig, DataDir, Durability, HosterEntry};
pub use error::{ArchiveError, Result};
pub use gateway::Gateway;
pub use history::HistoryReader;
pub use hosters::{HosterSet, ShardHost};
pub use keys::MasterKey;
pub use log::{AppendSummary, Appended, BlockLog};
pub use metrics::ArchiveMetrics;
pub use read_only::ReadOnlyArchive;
pub use record::{BlockRecord, StateChange};
pub use remote::RemoteArchive;
pub use restore::{restore, LostSegment, RestoreFormat, RestoreReport};
pub use state_index::{backfill_state_index, BackfillProgress};
pub use status::Status;
