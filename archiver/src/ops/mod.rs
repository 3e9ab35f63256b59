//! The operations layer: everything that keeps an archive current and healthy without an
//! operator, as one service (`OpsService`) that `node`, `follow` and `serve` run.
//!
//! - `maintenance`: disperse → read-back verify → metadata scrub → prune watermark → local prune.
//! - `health`: hoster health from probes and challenges; lost after a bound, returned when back.
//! - `auditor`: seeded random storage challenges.
//! - `repair`: the scheduler (least redundancy first) and its byte budget.
//! - `sweep`: every shard on one hoster checked (presence after a return, content after rot).
//! - `rebalance`: moves toward an even spread after hosters are added.
//! - `gc`: orphan shard collection, never a shard a placement names.
//! - `control`: the exchange with the audit store (results and marks out; marks, drain and
//!   rebalance requests in).
//! - `clock`: time behind a trait, so tests replay decisions from a seed and a manual clock.

pub mod auditor;
pub mod clock;
pub mod control;
pub mod gc;
pub mod health;
pub mod maintenance;
pub mod rebalance;
pub mod repair;
pub mod service;
pub mod sweep;

pub use auditor::{AuditPick, Auditor};
pub use clock::{Clock, ManualClock, SystemClock};
pub use gc::{collect_orphans, GcReport};
pub use health::{HealthEvent, HealthPolicy, HealthTracker};
pub use maintenance::{maintain_once, MaintenanceReport, ScrubCursor};
pub use rebalance::{plan_moves, Move};
pub use repair::{survey, PlanInput, RepairBudget, RepairJob, RepairScheduler, Survey};
pub use service::{OpsHandle, OpsOptions, OpsService, OpsStatus};
pub use sweep::{SweepDepth, Sweeps};
