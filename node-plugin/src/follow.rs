//! Following a node over JSON-RPC (for nodes that cannot link the plugin): subscribe to finalized
//! heads, fetch every finalized block by number (filling gaps when notifications skip numbers),
//! backfill from where the sink stands on start, reconnect with back-off. Only blocks at or below
//! the node's finalized head are ever fetched, so nothing unfinalized is archived.

use std::time::Duration;

use futures::StreamExt;
use jsonrpsee::core::client::{ClientT, Subscription, SubscriptionClientT};
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};
use serde_json::Value;

use crate::rpc::{header_from_json, signed_block_from_json, unhex};
use crate::substrate::{Block, Hash};

/// Blocks requested from the node at once: hides the round-trip latency of one-by-one fetching.
pub const FOLLOW_FETCH_CONCURRENCY: usize = 32;
/// Blocks handed to the sink per batch (one durable append each).
pub const FOLLOW_BATCH_BLOCKS: u64 = 512;
/// Reconnect back-off bounds.
pub const RECONNECT_MIN_MS: u64 = 100;
pub const RECONNECT_MAX_MS: u64 = 5_000;

/// Follower errors; each names the block or call at fault.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("node RPC {call}: {reason}")]
    Rpc { call: String, reason: String },
    #[error("block {number} from the node: {reason}")]
    BadBlock { number: u64, reason: String },
    #[error("sink refused block {number}: {reason}")]
    Sink { number: u64, reason: String },
}

/// A fetched finalized block.
#[derive(Clone, Debug)]
pub struct FetchedBlock {
    pub number: u64,
    pub hash: Hash,
    pub parent_hash: Hash,
    pub block: Vec<u8>,
    pub justifications: Option<Vec<u8>>,
    /// The genesis state for block 0 (`state_getPairs`, else paged), else empty.
    pub changes: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Where followed blocks go (the archive, or a node importing them).
pub trait FollowSink: Send {
    /// The first block number the sink lacks.
    fn next_needed(&self) -> u64;
    /// Takes blocks in order, no gaps.
    fn accept(&mut self, blocks: Vec<FetchedBlock>) -> Result<(), String>;
}

fn rpc_err(call: &str) -> impl Fn(jsonrpsee::core::ClientError) -> FollowError + '_ {
    move |e| FollowError::Rpc {
        call: call.to_string(),
        reason: e.to_string(),
    }
}

async fn fetch_block(client: &WsClient, number: u64) -> Result<FetchedBlock, FollowError> {
    let bad = |reason: String| FollowError::BadBlock { number, reason };
    let hash: Value = client
        .request("chain_getBlockHash", rpc_params![number])
        .await
        .map_err(rpc_err("chain_getBlockHash"))?;
    let hash_str = hash
        .as_str()
        .ok_or_else(|| bad(format!("no hash for it: {hash}")))?;
    let hash = unhex(hash_str)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| bad(format!("hash {hash_str:?} is not 32 bytes of hex")))?;
    let signed: Value = client
        .request("chain_getBlock", rpc_params![hash_str])
        .await
        .map_err(rpc_err("chain_getBlock"))?;
    let (block, justifications) = signed_block_from_json(&signed).map_err(bad)?;
    let decoded = Block::from_bytes(&block).map_err(|e| bad(e.to_string()))?;
    let hashes =
        decoded.header.hash() == hash || (number == 0 && is_spec_genesis(client, hash_str).await);
    if !hashes || u64::from(decoded.header.number) != number {
        return Err(bad(
            "the node's block does not hash to the hash it gave for the number".into(),
        ));
    }
    let changes = if number == 0 {
        genesis_state(client, hash_str).await?
    } else {
        Vec::new()
    };
    Ok(FetchedBlock {
        number,
        hash,
        parent_hash: decoded.header.parent_hash,
        block,
        justifications,
        changes,
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

/// Keys the paged genesis-state read asks for at once.
const GENESIS_KEYS_PAGE: u32 = 1_000;
/// Bytes of genesis state a follower takes at most: a runtime's code plus balances of a large
/// chain fit, a node sending without end does not exhaust memory.
const GENESIS_STATE_BYTES_MAX: usize = 512 * 1024 * 1024;

/// The genesis state at `hash`, sorted: `state_getPairs` where the node serves it, else paged
/// (`state_getKeysPaged` + `state_queryStorageAt`), as nodes that keep it unsafe-only do.
async fn genesis_state(
    client: &WsClient,
    hash: &str,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, FollowError> {
    let bad = |reason: String| FollowError::BadBlock { number: 0, reason };
    let pairs: Vec<(String, Option<String>)> = match client
        .request::<Vec<(String, String)>, _>("state_getPairs", rpc_params!["0x", hash])
        .await
    {
        Ok(pairs) => pairs.into_iter().map(|(k, v)| (k, Some(v))).collect(),
        Err(_) => genesis_state_paged(client, hash).await?,
    };
    let mut out = Vec::with_capacity(pairs.len());
    let mut bytes = 0usize;
    for (k, v) in pairs {
        let Some(v) = v else { continue };
        let (k, v) = (unhex(&k).map_err(&bad)?, unhex(&v).map_err(&bad)?);
        bytes += k.len() + v.len();
        if bytes > GENESIS_STATE_BYTES_MAX {
            return Err(bad(format!(
                "genesis state over {GENESIS_STATE_BYTES_MAX} bytes"
            )));
        }
        out.push((k, v));
    }
    out.sort();
    Ok(out)
}

/// The genesis state a page of keys at a time.
async fn genesis_state_paged(
    client: &WsClient,
    hash: &str,
) -> Result<Vec<(String, Option<String>)>, FollowError> {
    let mut out = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let keys: Vec<String> = client
            .request(
                "state_getKeysPaged",
                rpc_params!["0x", GENESIS_KEYS_PAGE, start.clone(), hash],
            )
            .await
            .map_err(rpc_err("state_getKeysPaged"))?;
        let Some(last) = keys.last().cloned() else {
            break;
        };
        let sets: Vec<Value> = client
            .request("state_queryStorageAt", rpc_params![keys.clone(), hash])
            .await
            .map_err(rpc_err("state_queryStorageAt"))?;
        for set in &sets {
            let changes: Vec<(String, Option<String>)> =
                serde_json::from_value(set["changes"].clone()).map_err(|e| {
                    FollowError::BadBlock {
                        number: 0,
                        reason: format!("state_queryStorageAt: {e}"),
                    }
                })?;
            out.extend(changes);
        }
        if keys.len() < GENESIS_KEYS_PAGE as usize || start.as_ref() == Some(&last) {
            break;
        }
        start = Some(last);
    }
    Ok(out)
}

/// Fetches `from..=to` into the sink, in batches, with requests pipelined.
async fn catch_up(
    client: &WsClient,
    sink: &mut dyn FollowSink,
    to: u64,
) -> Result<u64, FollowError> {
    let mut fetched = 0;
    loop {
        let from = sink.next_needed();
        if from > to {
            return Ok(fetched);
        }
        let last = to.min(from + FOLLOW_BATCH_BLOCKS - 1);
        let blocks: Vec<Result<FetchedBlock, FollowError>> = futures::stream::iter(from..=last)
            .map(|n| fetch_block(client, n))
            .buffered(FOLLOW_FETCH_CONCURRENCY)
            .collect()
            .await;
        let blocks: Vec<FetchedBlock> = blocks.into_iter().collect::<Result<_, _>>()?;
        fetched += blocks.len() as u64;
        sink.accept(blocks).map_err(|reason| FollowError::Sink {
            number: from,
            reason,
        })?;
    }
}

/// One connection's worth of following: backfill, then every finalized-head notification.
/// Returns when `stop_at` is archived or the connection ends.
async fn follow_once(
    url: &str,
    sink: &mut dyn FollowSink,
    stop_at: Option<u64>,
    fetched: &mut u64,
) -> Result<bool, FollowError> {
    let client = WsClientBuilder::default()
        .max_response_size(64 * 1024 * 1024)
        .build(url)
        .await
        .map_err(rpc_err("connect"))?;
    let mut sub: Subscription<Value> = client
        .subscribe(
            "chain_subscribeFinalizedHeads",
            rpc_params![],
            "chain_unsubscribeFinalizedHeads",
        )
        .await
        .map_err(rpc_err("chain_subscribeFinalizedHeads"))?;
    let head: Value = client
        .request("chain_getFinalizedHead", rpc_params![])
        .await
        .map_err(rpc_err("chain_getFinalizedHead"))?;
    let header: Value = client
        .request("chain_getHeader", rpc_params![head])
        .await
        .map_err(rpc_err("chain_getHeader"))?;
    let mut finalized = u64::from(
        header_from_json(&header)
            .map_err(|reason| FollowError::Rpc {
                call: "chain_getHeader".into(),
                reason,
            })?
            .number,
    );
    loop {
        let target = stop_at.map_or(finalized, |s| s.min(finalized));
        *fetched += catch_up(&client, sink, target).await?;
        if stop_at.is_some_and(|s| sink.next_needed() > s) {
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

/// Follows `url` until `stop_at` is in the sink (forever when None), reconnecting with
/// exponential back-off after any failure. `on_error` sees each failure (logging).
pub async fn follow(
    url: &str,
    sink: &mut dyn FollowSink,
    stop_at: Option<u64>,
    on_error: &mut (dyn FnMut(&FollowError) + Send),
) -> u64 {
    let mut backoff = RECONNECT_MIN_MS;
    let mut fetched = 0;
    loop {
        let before = fetched;
        match follow_once(url, sink, stop_at, &mut fetched).await {
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
    /// Called when a segment sealed (wake the disperser).
    pub on_sealed: Box<dyn FnMut() + Send + 'a>,
}

impl FollowSink for ArchiveSink<'_> {
    fn next_needed(&self) -> u64 {
        self.log.last().map_or(0, |(n, _)| n + 1)
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
                    .map(|(key, v)| archiver::StateChange {
                        key,
                        value: Some(v),
                    })
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

    fn accept(&mut self, blocks: Vec<FetchedBlock>) -> Result<(), String> {
        for b in blocks {
            self.0
                .import_finalized(&b.block, b.justifications.as_deref(), true)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
