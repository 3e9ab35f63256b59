//! Following a node over JSON-RPC (for nodes that cannot link the plugin): subscribe to finalized
//! heads, fetch every finalized block by number (filling gaps when notifications skip numbers),
//! backfill from where the sink stands on start, reconnect with back-off. Only blocks at or below
//! the node's finalized head are ever fetched, so nothing unfinalized is archived. For an archive,
//! each block also carries its state changes ([`state`]) and, where the runtime changes, its
//! runtime version and metadata ([`runtime`]); the first archived block carries the whole state.

pub mod runtime;
pub mod state;

use std::time::Duration;

use futures::StreamExt;
use jsonrpsee::core::client::{ClientT, Subscription, SubscriptionClientT};
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use serde_json::Value;

use crate::rpc::{header_from_json, hex0x, signed_block_from_json, unhex};
use crate::substrate::{Block, Hash, RESERVED_KEY_PREFIX};
use runtime::RuntimeCapture;
use state::{Listing, StateSource};

/// Blocks requested from the node at once: hides the round-trip latency of one-by-one fetching.
pub const FOLLOW_FETCH_CONCURRENCY: usize = 32;
/// Blocks requested at once when each also lists the whole state: a listing is held per block
/// in flight (up to `state::STATE_LISTING_BYTES_MAX` each).
pub const FOLLOW_STATE_CONCURRENCY: usize = 4;
/// Blocks handed to the sink per batch (one durable append each).
pub const FOLLOW_BATCH_BLOCKS: usize = 512;
/// Bytes of blocks and changes gathered before they are handed to the sink: bounds memory when
/// blocks carry large state changes.
pub const FOLLOW_BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Bytes of state changes one block record may carry: the archive's own bound.
pub const BLOCK_CHANGES_BYTES_MAX: usize = archiver::record::CHANGES_BYTES_MAX;
/// Reconnect back-off bounds.
pub const RECONNECT_MIN_MS: u64 = 100;
pub const RECONNECT_MAX_MS: u64 = 5_000;
/// Largest response taken from the node (a block, a page of values, the metadata).
pub const RESPONSE_BYTES_MAX: u32 = 64 * 1024 * 1024;

/// Follower errors; each names the block or call at fault.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("node RPC {call}: {reason}")]
    Rpc { call: String, reason: String },
    #[error("node refused {call}: {reason}")]
    Refused { call: String, reason: String },
    #[error("block {number} from the node: {reason}")]
    BadBlock { number: u64, reason: String },
    #[error("state at block {hash} from the node: {reason}")]
    State { hash: String, reason: String },
    #[error("trusted block {hash}: {reason}")]
    Trusted { hash: String, reason: String },
    #[error("sink refused block {number}: {reason}")]
    Sink { number: u64, reason: String },
}

/// State changes in key order: (key, new value; `None` deletes the key).
pub type Changes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A fetched finalized block.
#[derive(Clone, Debug)]
pub struct FetchedBlock {
    pub number: u64,
    pub hash: Hash,
    pub parent_hash: Hash,
    pub block: Vec<u8>,
    pub justifications: Option<Vec<u8>>,
    /// State changes, sorted by key (`None`: deleted). The first archived block carries the whole
    /// state; the runtime version and metadata ride along under the reserved keys.
    pub changes: Changes,
}

/// Where followed blocks go (the archive, or a node importing them).
pub trait FollowSink: Send {
    /// The first block number the sink lacks.
    fn next_needed(&self) -> u64;
    /// Whether the sink holds no block yet: its next block then carries the whole state.
    fn is_empty(&self) -> bool;
    /// Whether the sink keeps state changes (a node importing blocks computes its own).
    fn wants_state(&self) -> bool {
        true
    }
    /// Takes blocks in order, no gaps.
    fn accept(&mut self, blocks: Vec<FetchedBlock>) -> Result<(), String>;
}

/// Where a one-line notice goes.
pub type Notify = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// How to follow.
#[derive(Clone, Default)]
pub struct FollowOptions {
    /// Return once this block is in the sink (never when None).
    pub stop_at: Option<u64>,
    /// Use this state source instead of detecting one.
    pub state_source: Option<StateSource>,
    /// Told once, in one line, what is captured besides blocks (for the operator's eyes).
    pub on_capture: Option<Notify>,
}

/// A failed call: `Refused` when the node answered with an error (it does not offer the call, or
/// not for this block), `Rpc` when it could not be asked.
pub(crate) fn rpc_err(call: &str) -> impl Fn(jsonrpsee::core::ClientError) -> FollowError + '_ {
    move |e| match e {
        jsonrpsee::core::ClientError::Call(e) => FollowError::Refused {
            call: call.to_string(),
            reason: e.to_string(),
        },
        e => FollowError::Rpc {
            call: call.to_string(),
            reason: e.to_string(),
        },
    }
}

async fn connect(url: &str) -> Result<WsClient, FollowError> {
    WsClientBuilder::default()
        .max_response_size(RESPONSE_BYTES_MAX)
        .max_buffer_capacity_per_subscription(state::STATE_EVENTS_BUFFERED)
        .build(url)
        .await
        .map_err(rpc_err("connect"))
}

async fn block_hash(client: &WsClient, number: u64) -> Result<(Hash, String), FollowError> {
    let bad = |reason: String| FollowError::BadBlock { number, reason };
    let hash: Value = client
        .request("chain_getBlockHash", rpc_params![number])
        .await
        .map_err(rpc_err("chain_getBlockHash"))?;
    let hash_str = hash
        .as_str()
        .ok_or_else(|| bad(format!("no hash for it: {hash}")))?;
    let bytes = unhex(hash_str)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| bad(format!("hash {hash_str:?} is not 32 bytes of hex")))?;
    Ok((bytes, hash_str.to_string()))
}

async fn fetch_block(client: &WsClient, number: u64) -> Result<FetchedBlock, FollowError> {
    let bad = |reason: String| FollowError::BadBlock { number, reason };
    let (hash, hash_str) = block_hash(client, number).await?;
    let signed: Value = client
        .request("chain_getBlock", rpc_params![&hash_str])
        .await
        .map_err(rpc_err("chain_getBlock"))?;
    let (block, justifications) = signed_block_from_json(&signed).map_err(bad)?;
    let decoded = Block::from_bytes(&block).map_err(|e| bad(e.to_string()))?;
    let hashes =
        decoded.header.hash() == hash || (number == 0 && is_spec_genesis(client, &hash_str).await);
    if !hashes || u64::from(decoded.header.number) != number {
        return Err(bad(
            "the node's block does not hash to the hash it gave for the number".into(),
        ));
    }
    Ok(FetchedBlock {
        number,
        hash,
        parent_hash: decoded.header.parent_hash,
        block,
        justifications,
        changes: Vec::new(),
    })
}

/// Whether `hash` is the genesis hash the node's chain spec names. Some nodes fix the genesis
/// hash in their spec rather than hashing the genesis header (chopsticks serves `0x4545…`, which
/// its header does not hash to): block 0 is then taken as the node gives it.
async fn is_spec_genesis(client: &WsClient, hash: &str) -> bool {
    let named: Result<Value, _> = client
        .request("chainSpec_v1_genesisHash", rpc_params![])
        .await;
    matches!(named, Ok(Value::String(s)) if s.eq_ignore_ascii_case(hash))
}

/// The number of the block `hash`, checked to be on the node's finalized chain: the operator
/// vouches for the hash; the node only says where it is.
pub async fn trusted_number(url: &str, hash: &Hash) -> Result<u64, FollowError> {
    let hash_str = hex0x(hash);
    let bad = |reason: String| FollowError::Trusted {
        hash: hash_str.clone(),
        reason,
    };
    let client = connect(url).await?;
    let header: Value = client
        .request("chain_getHeader", rpc_params![&hash_str])
        .await
        .map_err(rpc_err("chain_getHeader"))?;
    if header.is_null() {
        return Err(bad("the node does not know it".into()));
    }
    let number = u64::from(header_from_json(&header).map_err(&bad)?.number);
    if block_hash(&client, number).await?.0 != *hash {
        return Err(bad(format!(
            "not on the node's chain (its block {number} has another hash)"
        )));
    }
    let finalized = finalized_number(&client).await?;
    if number > finalized {
        return Err(bad(format!(
            "block {number} is not finalized yet (finalized: {finalized})"
        )));
    }
    Ok(number)
}

async fn finalized_number(client: &WsClient) -> Result<u64, FollowError> {
    let head: Value = client
        .request("chain_getFinalizedHead", rpc_params![])
        .await
        .map_err(rpc_err("chain_getFinalizedHead"))?;
    let header: Value = client
        .request("chain_getHeader", rpc_params![head])
        .await
        .map_err(rpc_err("chain_getHeader"))?;
    let header = header_from_json(&header).map_err(|reason| FollowError::Rpc {
        call: "chain_getHeader".into(),
        reason,
    })?;
    Ok(u64::from(header.number))
}

/// What the follower captures besides blocks, and the last block it captured it for. Kept across
/// reconnects; re-seeded from the node when the sink is not where it stopped.
#[derive(Default)]
struct Capture {
    /// Decided at the first connection (forced, or detected).
    source: Option<StateSource>,
    runtime: Option<RuntimeCapture>,
    prev: Option<Prev>,
    warned_cut: bool,
}

/// The last block processed: its listing and runtime version.
struct Prev {
    number: u64,
    listing: Listing,
    version: Option<Value>,
}

/// What one fetch in the pipeline brings back.
struct Raw {
    block: FetchedBlock,
    hash_str: String,
    listing: Listing,
    version: Option<Value>,
    /// The whole state, for the first archived block (`None` inside: the node offers none).
    full: Option<Option<Changes>>,
}

/// A block after its diff, waiting for the changed values (and metadata) to be read.
struct Step {
    block: FetchedBlock,
    hash_str: String,
    changed: Vec<Vec<u8>>,
    deleted: Vec<Vec<u8>>,
    full: Option<Changes>,
    new_version: Option<Value>,
}

/// What every fetch in one catch-up shares.
#[derive(Clone, Copy)]
struct Plan {
    with_state: bool,
    source: StateSource,
    runtime: RuntimeCapture,
    /// The block that is the sink's first (gets the whole state), if it is still to come.
    first: Option<u64>,
}

impl Capture {
    /// Decides the state source and runtime calls once, logging them (loudly when nothing).
    async fn decide(&mut self, client: &WsClient, opts: &FollowOptions) -> Result<(), FollowError> {
        let (forced, on_capture) = (opts.state_source, &opts.on_capture);
        if self.source.is_some() {
            return Ok(());
        }
        let number = finalized_number(client).await?;
        let (_, hash) = block_hash(client, number).await?;
        let source = state::detect(client, &hash, forced).await?;
        let runtime = RuntimeCapture::detect(client, &hash).await?;
        let line = capture_line(source, forced.is_some(), runtime);
        if (source == StateSource::None && forced.is_none())
            || !runtime.version
            || !runtime.metadata
        {
            tracing::warn!("{line}");
        } else {
            tracing::info!("{line}");
        }
        if let Some(tell) = on_capture {
            tell(&line);
        }
        self.source = Some(source);
        self.runtime = Some(runtime);
        Ok(())
    }

    /// Makes `prev` the block before `from` (read from the node when it is not already).
    async fn seed(&mut self, client: &WsClient, plan: &Plan, from: u64) -> Result<(), FollowError> {
        let seeded = self.prev.as_ref().is_some_and(|p| p.number + 1 == from);
        if !plan.with_state || plan.first == Some(from) || seeded || from == 0 {
            return Ok(());
        }
        let (_, hash) = block_hash(client, from - 1).await?;
        let listing = state::listing(client, plan.source, &hash).await?;
        let version = match plan.runtime.version {
            true => Some(runtime::version(client, &hash).await?),
            false => None,
        };
        self.prev = Some(Prev {
            number: from - 1,
            listing,
            version,
        });
        Ok(())
    }

    /// Diffs `raw` against the previous block and records it as the new previous block.
    fn step(&mut self, raw: Raw, plan: &Plan) -> Result<Step, FollowError> {
        let number = raw.block.number;
        let first = plan.first == Some(number);
        let mut out = Step {
            block: raw.block,
            hash_str: raw.hash_str,
            changed: Vec::new(),
            deleted: Vec::new(),
            full: raw.full.flatten(),
            new_version: None,
        };
        if !plan.with_state {
            return Ok(out);
        }
        let prev = self.prev.take().filter(|p| p.number + 1 == number);
        match &prev {
            Some(p) if !first => {
                let d = state::diff(&p.listing, &raw.listing);
                if let (Some(k), false) = (&d.compared_up_to, self.warned_cut) {
                    self.warned_cut = true;
                    tracing::warn!(block = number, up_to = %hex0x(k), "state listing over its bounds: keys after this one are NOT captured");
                }
                (out.changed, out.deleted) = (d.changed, d.deleted);
            }
            None if !first => {
                return Err(FollowError::BadBlock {
                    number,
                    reason: "its parent's state was not listed before it".into(),
                })
            }
            _ => {}
        }
        let changed_version = prev.as_ref().map(|p| &p.version) != Some(&raw.version);
        if raw.version.is_some() && (first || changed_version) {
            out.new_version = raw.version.clone();
        }
        self.prev = Some(Prev {
            number,
            listing: raw.listing,
            version: raw.version,
        });
        Ok(out)
    }
}

/// What the follower captures besides blocks, said in one line (loud where it is nothing).
fn capture_line(source: StateSource, forced: bool, runtime: RuntimeCapture) -> String {
    let state = match source {
        StateSource::None if forced => "none (as asked)".to_string(),
        StateSource::None => "NONE (the node offers neither archive_v1_storage nor state_getKeysPaged: blocks are archived WITHOUT state changes)".to_string(),
        s => format!("via {s}"),
    };
    let runtime = match (runtime.version, runtime.metadata) {
        (true, true) => "version and metadata at each change",
        (true, false) => {
            "version at each change, NO metadata (state_getMetadata at a block not served)"
        }
        (false, _) => "NONE (state_getRuntimeVersion at a block not served)",
    };
    format!("capturing state changes {state}; runtime {runtime}")
}

/// Fetches block `number` and, with state, its listing, runtime version and (first block) the
/// whole state.
async fn fetch_raw(client: &WsClient, plan: Plan, number: u64) -> Result<Raw, FollowError> {
    let block = fetch_block(client, number).await?;
    let hash_str = hex0x(&block.hash);
    let mut raw = Raw {
        block,
        hash_str,
        listing: Listing::default(),
        version: None,
        full: None,
    };
    if !plan.with_state {
        return Ok(raw);
    }
    raw.listing = state::listing(client, plan.source, &raw.hash_str).await?;
    if plan.runtime.version {
        raw.version = Some(runtime::version(client, &raw.hash_str).await?);
    }
    if plan.first == Some(number) {
        let full = state::full_state(client, &raw.hash_str).await?;
        if full.is_none() {
            tracing::warn!(
                block = number,
                "the node serves no state: the first archived block carries NO state"
            );
        }
        raw.full = Some(full);
    }
    Ok(raw)
}

/// Reads the changed values (and the metadata of a new runtime version) and assembles the block.
async fn complete(client: &WsClient, plan: Plan, step: Step) -> Result<FetchedBlock, FollowError> {
    let mut block = step.block;
    let mut changes = match step.full {
        Some(full) => full,
        None => state::values(client, &step.hash_str, &step.changed).await?,
    };
    changes.extend(step.deleted.into_iter().map(|k| (k, None)));
    // The node's own state never holds reserved keys; the runtime's are the follower's to write.
    changes.retain(|(k, _)| !k.starts_with(RESERVED_KEY_PREFIX));
    if let Some(version) = &step.new_version {
        let metadata = match plan.runtime.metadata {
            true => Some(runtime::metadata(client, &step.hash_str).await?),
            false => None,
        };
        let reserved = runtime::reserved_changes(version, metadata);
        fit_changes(block.number, &reserved, &mut changes);
        changes.extend(reserved);
    } else {
        fit_changes(block.number, &[], &mut changes);
    }
    changes.sort();
    block.changes = changes;
    Ok(block)
}

fn change_bytes(c: &(Vec<u8>, Option<Vec<u8>>)) -> usize {
    8 + c.0.len() + c.1.as_ref().map_or(0, Vec::len)
}

/// Keeps `changes` (in key order) within what one record holds beside `reserved`; what does not
/// fit is not captured, and said loudly.
fn fit_changes(number: u64, reserved: &[(Vec<u8>, Option<Vec<u8>>)], changes: &mut Changes) {
    changes.sort();
    let mut bytes = 4 + reserved.iter().map(change_bytes).sum::<usize>();
    let keep = changes
        .iter()
        .take_while(|c| {
            bytes += change_bytes(c);
            bytes <= BLOCK_CHANGES_BYTES_MAX
        })
        .count();
    if keep < changes.len() {
        tracing::warn!(
            block = number,
            dropped = changes.len() - keep,
            "state changes over {BLOCK_CHANGES_BYTES_MAX} bytes: the rest are NOT captured"
        );
        changes.truncate(keep);
    }
}

fn fetched_bytes(b: &FetchedBlock) -> usize {
    b.block.len()
        + b.justifications.as_ref().map_or(0, Vec::len)
        + b.changes.iter().map(change_bytes).sum::<usize>()
}

/// A fetch in flight.
type Pending<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, FollowError>> + Send + 'a>>;

/// Fetches `from..=to` into the sink, in batches, with requests pipelined.
async fn catch_up(
    client: &WsClient,
    sink: &mut dyn FollowSink,
    capture: &mut Capture,
    to: u64,
) -> Result<u64, FollowError> {
    let from = sink.next_needed();
    if from > to {
        return Ok(0);
    }
    let plan = Plan {
        with_state: sink.wants_state(),
        source: capture.source.unwrap_or(StateSource::None),
        runtime: capture.runtime.unwrap_or(RuntimeCapture {
            version: false,
            metadata: false,
        }),
        first: sink.is_empty().then_some(from),
    };
    capture.seed(client, &plan, from).await?;
    let concurrency = match plan.with_state && plan.source != StateSource::None {
        true => FOLLOW_STATE_CONCURRENCY,
        false => FOLLOW_FETCH_CONCURRENCY,
    };
    // Boxed with explicit lifetimes: closures returning borrowing futures otherwise leave the
    // caller's future unprovably `Send` (rustc's higher-ranked lifetime limitation).
    let mut blocks = futures::stream::iter(from..=to)
        .map(move |n| -> Pending<'_, Raw> { Box::pin(fetch_raw(client, plan, n)) })
        .buffered(concurrency)
        .map(|raw| -> Pending<'_, FetchedBlock> {
            let step = raw.and_then(|raw| capture.step(raw, &plan));
            Box::pin(async move { complete(client, plan, step?).await })
        })
        .buffered(concurrency);
    let (mut batch, mut bytes, mut fetched) = (Vec::new(), 0usize, 0u64);
    while let Some(block) = blocks.next().await {
        let block = match block {
            Ok(b) => b,
            Err(e) => {
                // What was fetched before the failure is kept; the retry resumes after it.
                if let Some(number) = batch.first().map(|b: &FetchedBlock| b.number) {
                    sink.accept(std::mem::take(&mut batch))
                        .map_err(|reason| FollowError::Sink { number, reason })?;
                }
                return Err(e);
            }
        };
        bytes += fetched_bytes(&block);
        batch.push(block);
        let last = batch.last().map(|b| b.number) == Some(to);
        if batch.len() >= FOLLOW_BATCH_BLOCKS || bytes >= FOLLOW_BATCH_BYTES_MAX || last {
            let number = batch[0].number;
            fetched += batch.len() as u64;
            bytes = 0;
            sink.accept(std::mem::take(&mut batch))
                .map_err(|reason| FollowError::Sink { number, reason })?;
        }
    }
    Ok(fetched)
}

/// One connection's worth of following: backfill, then every finalized-head notification.
/// Returns when `stop_at` is archived or the connection ends.
async fn follow_once(
    url: &str,
    sink: &mut dyn FollowSink,
    opts: &FollowOptions,
    capture: &mut Capture,
    fetched: &mut u64,
) -> Result<bool, FollowError> {
    let client = connect(url).await?;
    let mut sub: Subscription<Value> = client
        .subscribe(
            "chain_subscribeFinalizedHeads",
            rpc_params![],
            "chain_unsubscribeFinalizedHeads",
        )
        .await
        .map_err(rpc_err("chain_subscribeFinalizedHeads"))?;
    if sink.wants_state() {
        capture.decide(&client, opts).await?;
    }
    let mut finalized = finalized_number(&client).await?;
    loop {
        let target = opts.stop_at.map_or(finalized, |s| s.min(finalized));
        *fetched += catch_up(&client, sink, capture, target).await?;
        if opts.stop_at.is_some_and(|s| sink.next_needed() > s) {
            return Ok(true);
        }
        match sub.next().await {
            Some(Ok(h)) => {
                let h = header_from_json(&h).map_err(|reason| FollowError::Rpc {
                    call: "chain_finalizedHead notification".into(),
                    reason,
                })?;
                finalized = finalized.max(u64::from(h.number));
            }
            Some(Err(e)) => {
                return Err(FollowError::Rpc {
                    call: "chain_finalizedHead notification".into(),
                    reason: e.to_string(),
                })
            }
            None => {
                return Err(FollowError::Rpc {
                    call: "subscription".into(),
                    reason: "the node closed the connection".into(),
                })
            }
        }
    }
}

/// Follows `url` until `opts.stop_at` is in the sink (forever when None), reconnecting with
/// exponential back-off after any failure. `on_error` sees each failure (logging).
pub async fn follow(
    url: &str,
    sink: &mut dyn FollowSink,
    opts: &FollowOptions,
    on_error: &mut (dyn FnMut(&FollowError) + Send),
) -> u64 {
    let mut backoff = RECONNECT_MIN_MS;
    let mut fetched = 0;
    let mut capture = Capture::default();
    loop {
        let before = fetched;
        match follow_once(url, sink, opts, &mut capture, &mut fetched).await {
            Ok(true) => return fetched,
            Ok(false) => {}
            Err(e) => on_error(&e),
        }
        if fetched > before {
            backoff = RECONNECT_MIN_MS;
        }
        tokio::time::sleep(Duration::from_millis(backoff)).await;
        backoff = (backoff * 2).min(RECONNECT_MAX_MS);
    }
}

/// The archive as a follow sink: appends each batch durably; the caller runs dispersal.
pub struct ArchiveSink<'a> {
    pub log: &'a mut archiver::BlockLog,
    /// The block an empty archive starts at (0, or a trusted block's number).
    pub first: u64,
    /// Called when a segment sealed (wake the disperser).
    pub on_sealed: Box<dyn FnMut() + Send + 'a>,
}

impl FollowSink for ArchiveSink<'_> {
    fn next_needed(&self) -> u64 {
        self.log.last().map_or(self.first, |(n, _)| n + 1)
    }

    fn is_empty(&self) -> bool {
        self.log.last().is_none()
    }

    fn accept(&mut self, blocks: Vec<FetchedBlock>) -> Result<(), String> {
        let records: Vec<archiver::BlockRecord> = blocks
            .into_iter()
            .map(|b| archiver::BlockRecord {
                number: b.number,
                hash: b.hash,
                parent_hash: b.parent_hash,
                block: b.block,
                justification: b.justifications,
                changes: b
                    .changes
                    .into_iter()
                    .map(|(key, value)| archiver::StateChange { key, value })
                    .collect(),
            })
            .collect();
        // A failed write poisons the log: it is reopened rather than retried on (the follow loop
        // then resumes from what the reopened log holds).
        let summary =
            crate::plugin::append_restarting(self.log, &records).map_err(|e| e.to_string())?;
        if !summary.sealed.is_empty() {
            (self.on_sealed)();
        }
        Ok(())
    }
}

/// A (non-authoring) node as a follow sink: every block is verified and imported.
pub struct NodeSink(pub crate::node::Node);

impl FollowSink for NodeSink {
    fn next_needed(&self) -> u64 {
        self.0.best().0 + 1
    }

    fn is_empty(&self) -> bool {
        false
    }

    fn wants_state(&self) -> bool {
        false
    }

    fn accept(&mut self, blocks: Vec<FetchedBlock>) -> Result<(), String> {
        for b in blocks {
            self.0
                .import_finalized(&b.block, b.justifications.as_deref(), true)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn raw(number: u64, keys: &[(&str, u8)], spec: u64) -> Raw {
        Raw {
            block: FetchedBlock {
                number,
                hash: [number as u8; 32],
                parent_hash: [number.wrapping_sub(1) as u8; 32],
                block: Vec::new(),
                justifications: None,
                changes: Vec::new(),
            },
            hash_str: format!("0x{number:02x}"),
            listing: Listing {
                entries: keys
                    .iter()
                    .map(|(k, h)| (k.as_bytes().to_vec(), [*h; 32]))
                    .collect(),
                cut: false,
            },
            version: Some(json!({"specName": "t", "specVersion": spec})),
            full: None,
        }
    }

    fn plan(first: Option<u64>) -> Plan {
        Plan {
            with_state: true,
            source: StateSource::Paged,
            runtime: RuntimeCapture {
                version: true,
                metadata: true,
            },
            first,
        }
    }

    #[test]
    fn steps_diff_each_block_and_mark_the_runtime_where_it_changes() {
        let mut c = Capture::default();
        let p = plan(Some(5));
        let s = c.step(raw(5, &[("a", 1), ("b", 1)], 1), &p).unwrap();
        assert!(s.new_version.is_some() && s.changed.is_empty() && s.deleted.is_empty());
        let s = c.step(raw(6, &[("a", 2), ("c", 1)], 1), &p).unwrap();
        assert_eq!(s.new_version, None);
        assert_eq!(
            (s.changed, s.deleted),
            (vec![b"a".to_vec(), b"c".to_vec()], vec![b"b".to_vec()])
        );
        let s = c.step(raw(7, &[("a", 2), ("c", 1)], 2), &p).unwrap();
        assert_eq!(
            s.new_version,
            Some(json!({"specName": "t", "specVersion": 2}))
        );
        assert!(s.changed.is_empty() && s.deleted.is_empty());
        // A block whose parent was not listed just before it is refused, not diffed.
        let e = c.step(raw(9, &[], 2), &p).err().unwrap();
        assert!(
            e.to_string().contains("parent's state was not listed"),
            "{e}"
        );
    }

    #[test]
    fn changes_over_the_record_budget_are_cut_in_key_order() {
        let big = vec![0u8; BLOCK_CHANGES_BYTES_MAX / 2];
        let reserved = vec![(b":archiver:metadata".to_vec(), Some(vec![1u8; 1024]))];
        let mut changes: Changes = vec![
            (b"c".to_vec(), Some(big.clone())),
            (b"a".to_vec(), Some(big.clone())),
            (b"b".to_vec(), None),
        ];
        fit_changes(3, &reserved, &mut changes);
        let kept: Vec<&[u8]> = changes.iter().map(|c| c.0.as_slice()).collect();
        assert_eq!(kept, vec![b"a".as_slice(), b"b".as_slice()]);
        let mut small: Changes = vec![(b"x".to_vec(), Some(vec![1; 10]))];
        fit_changes(3, &reserved, &mut small);
        assert_eq!(small.len(), 1);
    }
}
