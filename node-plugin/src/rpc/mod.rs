//! Substrate-compatible JSON-RPC (WebSocket and HTTP on one port, jsonrpsee) over the live node
//! and the archive: blocks the node has pruned are read through the archive's read path, so
//! existing clients read all of history unchanged. Also the new-spec `archive_v1_*` methods and
//! `archiver_*` extensions (status, manifests, inclusion proofs).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use archiver::{ArchiveMetrics, HistoryReader};
use jsonrpsee::core::server::SubscriptionMessage;
use jsonrpsee::server::middleware::rpc::{
    Batch, BatchEntry, Notification, RpcServiceBuilder, RpcServiceT,
};
use jsonrpsee::server::{
    BatchResponseBuilder, MethodResponse, PendingSubscriptionSink, RpcModule, Server, ServerHandle,
};
use jsonrpsee::types::{ErrorObjectOwned, Params, Request};
use parity_scale_codec::{Decode, Encode};
use serde_json::{json, Value};

use crate::node::{Node, NodeError};

mod archive_state;
mod author;
mod state;

use crate::substrate::{Block, DigestItem, Hash, Header, Justifications};
pub use state::{KEYS_PAGE_MAX, QUERY_KEYS_MAX};

/// JSON-RPC error code: the block (hash or number) is not part of this chain's known history.
pub const ERROR_BLOCK_NOT_FOUND: i32 = 4001;
/// The block is archived but could not be read now (hosters unreachable, verification failed).
pub const ERROR_BLOCK_UNAVAILABLE: i32 = 4002;
/// The request needs a live node (e.g. submitting), and this server serves the archive only.
pub const ERROR_NOT_A_NODE: i32 = 4003;
/// Substrate's code for a transaction refused by the pool.
pub const ERROR_INVALID_TRANSACTION: i32 = 1010;
/// JSON-RPC's invalid-params code.
pub const ERROR_INVALID_PARAMS: i32 = -32602;
/// How often an archive-only server looks for newly archived blocks to notify subscribers.
pub const ARCHIVE_POLL_MS: u64 = 250;
/// Connections served at once: bounded so a client flood cannot exhaust file descriptors.
pub const RPC_CONNECTIONS_MAX: u32 = 256;
/// Calls in one JSON-RPC batch: each may rebuild a pruned block's segment, so a batch must not
/// turn one request into unbounded work (polkadot.js and subxt batch far fewer).
pub const RPC_BATCH_CALLS_MAX: u32 = 64;
/// Subscriptions one connection may hold: each is a task and a notification queue.
pub const RPC_SUBSCRIPTIONS_PER_CONNECTION_MAX: u32 = 32;
/// Bytes of one request: extrinsics and parameters are small.
pub const RPC_REQUEST_BYTES_MAX: u32 = 2 * 1024 * 1024;
/// Bytes of one response (a batch counts whole): the largest block the archive accepts (16 MiB)
/// hex-encoded with its JSON still fits.
pub const RPC_RESPONSE_BYTES_MAX: u32 = 40 * 1024 * 1024;

fn err(code: i32, msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned::<()>(code, msg.into(), None)
}

fn not_found(what: impl std::fmt::Display) -> ErrorObjectOwned {
    err(ERROR_BLOCK_NOT_FOUND, format!("block not found: {what}"))
}

fn unavailable(what: impl std::fmt::Display) -> ErrorObjectOwned {
    err(
        ERROR_BLOCK_UNAVAILABLE,
        format!("block unavailable: {what}"),
    )
}

fn invalid(msg: impl Into<String>) -> ErrorObjectOwned {
    err(ERROR_INVALID_PARAMS, msg)
}

type RpcResult<T> = Result<T, ErrorObjectOwned>;

pub fn hex0x(b: &[u8]) -> String {
    format!("0x{}", hex::encode(b))
}

/// Parses `0x`-hex into bytes.
pub fn unhex(s: &str) -> Result<Vec<u8>, String> {
    let body = s
        .strip_prefix("0x")
        .ok_or_else(|| format!("{s:?} is not 0x-prefixed hex"))?;
    hex::decode(body).map_err(|e| format!("{s:?}: {e}"))
}

fn parse_hash(s: &str) -> RpcResult<Hash> {
    let b = unhex(s).map_err(invalid)?;
    <[u8; 32]>::try_from(b.as_slice())
        .map_err(|_| invalid(format!("a block hash is 32 bytes, got {}", b.len())))
}

/// Substrate's JSON header.
pub fn header_json(h: &Header) -> Value {
    json!({
        "parentHash": hex0x(&h.parent_hash),
        "number": format!("0x{:x}", h.number),
        "stateRoot": hex0x(&h.state_root),
        "extrinsicsRoot": hex0x(&h.extrinsics_root),
        "digest": { "logs": h.digest.logs.iter().map(|l| hex0x(&l.encode())).collect::<Vec<_>>() },
    })
}

/// Inverse of [`header_json`] (what a follower reads from a node).
pub fn header_from_json(v: &Value) -> Result<Header, String> {
    let field = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("header field {name} missing or not a string"))
    };
    let hash_field = |name: &str| -> Result<Hash, String> {
        let b = unhex(field(name)?)?;
        <[u8; 32]>::try_from(b.as_slice()).map_err(|_| format!("{name} is not 32 bytes"))
    };
    let number_str = field("number")?;
    let number = u32::from_str_radix(number_str.trim_start_matches("0x"), 16)
        .map_err(|e| format!("number {number_str:?}: {e}"))?;
    let logs = v
        .get("digest")
        .and_then(|d| d.get("logs"))
        .and_then(Value::as_array)
        .ok_or("header digest.logs missing")?;
    let mut items = Vec::with_capacity(logs.len());
    for l in logs {
        let raw = unhex(l.as_str().ok_or("digest log is not a string")?)?;
        items.push(DigestItem::decode(&mut &raw[..]).map_err(|e| format!("digest log: {e}"))?);
    }
    Ok(Header {
        parent_hash: hash_field("parentHash")?,
        number,
        state_root: hash_field("stateRoot")?,
        extrinsics_root: hash_field("extrinsicsRoot")?,
        digest: crate::substrate::Digest { logs: items },
    })
}

/// Substrate's JSON `SignedBlock`.
pub fn signed_block_json(block: &Block, justifications: Option<&Justifications>) -> Value {
    json!({
        "block": {
            "header": header_json(&block.header),
            "extrinsics": block.extrinsics.iter().map(|x| hex0x(&x.encode())).collect::<Vec<_>>(),
        },
        // As polkadot-sdk serializes `Justifications` (serde's default for byte vectors): the
        // engine id and the proof both as arrays of numbers.
        "justifications": justifications.map(|js| js.0.iter().map(|(id, proof)| json!([id.to_vec(), proof])).collect::<Vec<_>>()),
    })
}

/// Inverse of [`signed_block_json`]: the SCALE block bytes and SCALE justifications.
pub fn signed_block_from_json(v: &Value) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
    let block = v.get("block").ok_or("signed block has no block")?;
    let header = header_from_json(block.get("header").ok_or("block has no header")?)?;
    let xs = block
        .get("extrinsics")
        .and_then(Value::as_array)
        .ok_or("block extrinsics missing")?;
    let mut extrinsics = Vec::with_capacity(xs.len());
    for x in xs {
        let raw = unhex(x.as_str().ok_or("extrinsic is not a string")?)?;
        extrinsics.push(Vec::<u8>::decode(&mut &raw[..]).map_err(|e| format!("extrinsic: {e}"))?);
    }
    let justifications = match v.get("justifications") {
        None | Some(Value::Null) => None,
        Some(Value::Array(list)) => {
            let mut js = Vec::with_capacity(list.len());
            for j in list {
                let pair = j
                    .as_array()
                    .filter(|p| p.len() == 2)
                    .ok_or("justification is not a pair")?;
                let id: Vec<u8> = serde_json::from_value(pair[0].clone())
                    .map_err(|e| format!("engine id: {e}"))?;
                let id =
                    <[u8; 4]>::try_from(id.as_slice()).map_err(|_| "engine id is not 4 bytes")?;
                let proof = match &pair[1] {
                    Value::String(s) => unhex(s)?,
                    other => serde_json::from_value::<Vec<u8>>(other.clone())
                        .map_err(|e| format!("justification proof: {e}"))?,
                };
                js.push((id, proof));
            }
            Some(Justifications(js).encode())
        }
        Some(_) => return Err("justifications is neither null nor a list".into()),
    };
    Ok((Block { header, extrinsics }.encode(), justifications))
}

/// The archive side of a server.
#[derive(Clone)]
pub struct ArchiveAccess {
    pub reader: Arc<HistoryReader>,
}

/// What a server reads from: the live node, the archive, or both (node first).
#[derive(Clone)]
pub struct Backend {
    pub node: Option<Node>,
    pub archive: Option<ArchiveAccess>,
    pub chain_name: String,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("chain", &self.chain_name)
            .finish()
    }
}

fn node_err(e: NodeError) -> ErrorObjectOwned {
    err(-32000, e.to_string())
}

fn archive_err(e: archiver::ArchiveError) -> ErrorObjectOwned {
    unavailable(e)
}

impl Backend {
    fn store(&self) -> Option<&Arc<archiver::store::Store>> {
        self.archive.as_ref().map(|a| a.reader.store())
    }

    fn refresh(&self) {
        if let Some(store) = self.store() {
            if let Err(e) = store.catch_up() {
                tracing::warn!(error = %e, "archive catch-up failed");
            }
        }
    }

    pub fn finalized(&self) -> RpcResult<(u64, Hash)> {
        if let Some(node) = &self.node {
            return Ok(node.finalized());
        }
        self.refresh();
        let store = self.store().ok_or_else(|| not_found("no chain"))?;
        store
            .log_head()
            .map_err(archive_err)?
            .last
            .ok_or_else(|| not_found("the archive is empty"))
    }

    fn best(&self) -> RpcResult<(u64, Hash)> {
        match &self.node {
            Some(node) => Ok(node.best()),
            None => self.finalized(),
        }
    }

    pub async fn hash_at(&self, number: u64) -> RpcResult<Option<Hash>> {
        if let Some(node) = &self.node {
            if let Some(h) = node.header(number).map_err(node_err)? {
                return Ok(Some(h.hash()));
            }
        }
        if let Some(store) = self.store() {
            return Ok(store.location(number).map_err(archive_err)?.map(|l| l.hash));
        }
        Ok(None)
    }

    pub async fn number_of(&self, hash: &Hash) -> RpcResult<u64> {
        if let Some(node) = &self.node {
            if let Some(n) = node.number_of(hash).map_err(node_err)? {
                return Ok(n);
            }
        }
        if let Some(store) = self.store() {
            if let Some(n) = store.number_by_hash(hash).map_err(archive_err)? {
                return Ok(n);
            }
            self.refresh();
            if let Some(n) = store.number_by_hash(hash).map_err(archive_err)? {
                return Ok(n);
            }
        }
        Err(not_found(hex0x(hash)))
    }

    /// Block bytes and justifications: the node's if it still holds them, else the archive's.
    pub async fn block_bytes(&self, number: u64) -> RpcResult<(Vec<u8>, Option<Vec<u8>>)> {
        if let Some(node) = &self.node {
            if let Some(b) = node.local_block(number).map_err(node_err)? {
                return Ok(b);
            }
        }
        match &self.archive {
            Some(a) => match a.reader.block(number).await {
                Ok(Some(r)) => Ok((r.block, r.justification)),
                Ok(None) => Err(not_found(format!("#{number} is not archived"))),
                Err(e) => Err(unavailable(format!("#{number}: {e}"))),
            },
            None => Err(not_found(format!(
                "#{number} pruned and no archive configured"
            ))),
        }
    }

    pub async fn header(&self, number: u64) -> RpcResult<Header> {
        if let Some(node) = &self.node {
            if let Some(h) = node.header(number).map_err(node_err)? {
                return Ok(h);
            }
        }
        let (bytes, _) = self.block_bytes(number).await?;
        Header::decode(&mut &bytes[..]).map_err(|e| unavailable(format!("#{number}: {e}")))
    }

    async fn block(&self, number: u64) -> RpcResult<(Block, Option<Justifications>)> {
        let (bytes, js) = self.block_bytes(number).await?;
        let block =
            Block::from_bytes(&bytes).map_err(|e| unavailable(format!("#{number}: {e}")))?;
        let js = js
            .map(|j| Justifications::from_bytes(&j))
            .transpose()
            .map_err(|e| unavailable(format!("#{number}: {e}")))?;
        Ok((block, js))
    }

    /// Resolves an optional hash parameter to a block number (absent: the best block).
    pub(crate) async fn resolve(&self, hash: Option<String>) -> RpcResult<u64> {
        match hash {
            None => Ok(self.best()?.0),
            Some(h) => self.number_of(&parse_hash(&h)?).await,
        }
    }
}

/// Method names served (what `rpc_methods` lists).
pub const METHODS: &[&str] = &[
    "archive_v1_body",
    "archive_v1_call",
    "archive_v1_finalizedHeight",
    "archive_v1_genesisHash",
    "archive_v1_hashByHeight",
    "archive_v1_header",
    "archive_v1_stopStorage",
    "archive_v1_storage",
    "archiver_inclusionProof",
    "archiver_segmentManifest",
    "archiver_status",
    "author_submitAndWatchExtrinsic",
    "author_submitExtrinsic",
    "author_unwatchExtrinsic",
    "chain_getBlock",
    "chain_getBlockHash",
    "chain_getFinalisedHead",
    "chain_getFinalizedHead",
    "chain_getHead",
    "chain_getHeader",
    "chain_subscribeFinalisedHeads",
    "chain_subscribeFinalizedHeads",
    "chain_subscribeNewHead",
    "chain_subscribeNewHeads",
    "chain_unsubscribeFinalisedHeads",
    "chain_unsubscribeFinalizedHeads",
    "chain_unsubscribeNewHead",
    "chain_unsubscribeNewHeads",
    "rpc_methods",
    "state_call",
    "state_getKeysPaged",
    "state_getMetadata",
    "state_getPairs",
    "state_getRuntimeVersion",
    "state_getStorage",
    "state_getStorageAt",
    "state_queryStorageAt",
    "state_subscribeRuntimeVersion",
    "state_subscribeStorage",
    "state_unsubscribeRuntimeVersion",
    "state_unsubscribeStorage",
    "system_accountNextIndex",
    "system_chain",
    "system_health",
    "system_name",
    "system_properties",
    "system_version",
];

/// A number parameter as clients send it: a JSON number or a hex string.
fn parse_number(v: &Value) -> RpcResult<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| invalid("block number must be a non-negative integer")),
        Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16)
            .map_err(|e| invalid(format!("block number {s:?}: {e}"))),
        other => Err(invalid(format!("block number expected, got {other}"))),
    }
}

fn opt_string(params: &Params<'_>, at: usize) -> RpcResult<Option<String>> {
    let v: Vec<Value> = if params.is_object() {
        return Err(invalid("positional parameters expected"));
    } else {
        params.parse().unwrap_or_default()
    };
    match v.get(at) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(format!(
            "parameter {at}: string expected, got {other}"
        ))),
    }
}

fn positional(params: &Params<'_>) -> Vec<Value> {
    params.parse().unwrap_or_default()
}

fn raw(v: &Value) -> Option<SubscriptionMessage> {
    serde_json::value::to_raw_value(v)
        .ok()
        .map(SubscriptionMessage::from)
}

/// Builds the RPC module over `backend`.
pub fn module(
    backend: Backend,
) -> Result<RpcModule<Backend>, jsonrpsee::core::RegisterMethodError> {
    let mut m = RpcModule::new(backend);
    m.register_method("system_chain", |_, b, _| b.chain_name.clone())?;
    m.register_method("system_name", |_, _, _| "poa-archiver")?;
    m.register_method("system_version", |_, _, _| env!("CARGO_PKG_VERSION"))?;
    m.register_method(
        "system_properties",
        |_, _, _| json!({"ss58Format": 42, "tokenDecimals": 12, "tokenSymbol": "POA"}),
    )?;
    m.register_method(
        "system_health",
        |_, b, _| json!({"peers": 0, "isSyncing": false, "shouldHavePeers": b.node.is_some()}),
    )?;
    m.register_method(
        "rpc_methods",
        |_, _, _| json!({"version": 1, "methods": METHODS}),
    )?;

    m.register_async_method("chain_getBlockHash", |p, b, _| async move {
        let args = positional(&p);
        let one = |b: Arc<Backend>, v: Value| async move {
            let n = match v {
                Value::Null => b.best()?.0,
                v => parse_number(&v)?,
            };
            match b.hash_at(n).await? {
                Some(h) => Ok(json!(hex0x(&h))),
                None => Err(not_found(format!("#{n}"))),
            }
        };
        match args.into_iter().next() {
            Some(Value::Array(list)) => {
                let mut out = Vec::with_capacity(list.len());
                for v in list {
                    out.push(one(b.clone(), v).await?);
                }
                Ok::<Value, ErrorObjectOwned>(Value::Array(out))
            }
            Some(v) => one(b, v).await,
            None => one(b, Value::Null).await,
        }
    })?;
    for name in ["chain_getFinalizedHead", "chain_getFinalisedHead"] {
        m.register_method(name, |_, b, _| b.finalized().map(|(_, h)| hex0x(&h)))?;
    }
    m.register_method("chain_getHead", |_, b, _| b.best().map(|(_, h)| hex0x(&h)))?;
    m.register_async_method("chain_getHeader", |p, b, _| async move {
        let n = b.resolve(opt_string(&p, 0)?).await?;
        Ok::<Value, ErrorObjectOwned>(header_json(&b.header(n).await?))
    })?;
    m.register_async_method("chain_getBlock", |p, b, _| async move {
        let n = b.resolve(opt_string(&p, 0)?).await?;
        let (block, js) = b.block(n).await?;
        Ok::<Value, ErrorObjectOwned>(signed_block_json(&block, js.as_ref()))
    })?;
    state::register(&mut m)?;
    archive_state::register(&mut m)?;
    author::register(&mut m)?;

    m.register_method("archive_v1_genesisHash", |_, b, _| {
        if let Some(node) = &b.node {
            return Ok(hex0x(&node.genesis_hash()));
        }
        let store = b.store().ok_or_else(|| not_found("no chain"))?;
        store
            .location(0)
            .map_err(archive_err)?
            .map(|l| hex0x(&l.hash))
            .ok_or_else(|| not_found("the archive has no genesis"))
    })?;
    m.register_method("archive_v1_finalizedHeight", |_, b, _| {
        b.finalized().map(|(n, _)| n)
    })?;
    m.register_async_method("archive_v1_hashByHeight", |p, b, _| async move {
        let n = parse_number(positional(&p).first().unwrap_or(&Value::Null))?;
        // The spec answers "no block at this height" with an empty list.
        Ok::<Vec<String>, ErrorObjectOwned>(
            b.hash_at(n).await?.map(|h| hex0x(&h)).into_iter().collect(),
        )
    })?;
    m.register_async_method("archive_v1_header", |p, b, _| async move {
        let h = opt_string(&p, 0)?.ok_or_else(|| invalid("block hash expected"))?;
        let n = b.number_of(&parse_hash(&h)?).await?;
        Ok::<String, ErrorObjectOwned>(hex0x(&b.header(n).await?.encode()))
    })?;
    m.register_async_method("archive_v1_body", |p, b, _| async move {
        let h = opt_string(&p, 0)?.ok_or_else(|| invalid("block hash expected"))?;
        let n = b.number_of(&parse_hash(&h)?).await?;
        let (block, _) = b.block(n).await?;
        Ok::<Vec<String>, ErrorObjectOwned>(
            block
                .extrinsics
                .iter()
                .map(|x| hex0x(&x.encode()))
                .collect(),
        )
    })?;

    m.register_method("archiver_status", |_, b, _| {
        b.refresh();
        let mut v = json!({ "chain": b.chain_name });
        if let Some(node) = &b.node {
            let (best, _) = node.best();
            let (fin, _) = node.finalized();
            v["node"] = json!({
                "best": best,
                "finalized": fin,
                "prunedBelow": node.db().pruned_below().unwrap_or(0),
                "bodiesHeld": node.db().bodies_held().unwrap_or(0),
                "stateRoot": hex0x(&node.state_root()),
                "pruneWatermark": node.prune_watermark(),
            });
        }
        if let Some(store) = b.store() {
            let head = store.log_head().map_err(archive_err)?;
            v["archive"] = json!({
                "lastBlock": head.last.map(|l| l.0),
                "segmentsSealed": store.sealed_all().map_err(archive_err)?.len(),
                "dispersedNext": store.dispersed_next().map_err(archive_err)?,
                "verifiedNext": store.verified_next().map_err(archive_err)?,
                "localSegmentsPrunedBelow": store.local_segments_pruned_below().map_err(archive_err)?,
            });
        }
        Ok::<Value, ErrorObjectOwned>(v)
    })?;
    m.register_method("archiver_segmentManifest", |p, b, _| {
        let seg = parse_number(positional(&p).first().unwrap_or(&Value::Null))?;
        let store = b.store().ok_or_else(|| not_found("no archive"))?;
        b.refresh();
        let man = store.manifest(seg).map_err(archive_err)?.ok_or_else(|| {
            not_found(format!("segment {seg} has no manifest (not dispersed yet)"))
        })?;
        let placement = store.placement(seg).map_err(archive_err)?;
        Ok::<Value, ErrorObjectOwned>(manifest_json(&man, placement.as_ref()))
    })?;
    m.register_async_method("archiver_inclusionProof", |p, b, _| async move {
        let h = opt_string(&p, 0)?.ok_or_else(|| invalid("block hash expected"))?;
        let hash = parse_hash(&h)?;
        let store = b.store().ok_or_else(|| not_found("no archive"))?.clone();
        let n = store
            .number_by_hash(&hash)
            .map_err(archive_err)?
            .ok_or_else(|| not_found(hex0x(&hash)))?;
        let loc = store
            .location(n)
            .map_err(archive_err)?
            .ok_or_else(|| not_found(format!("#{n}")))?;
        let sealed = store
            .sealed(loc.segment)
            .map_err(archive_err)?
            .ok_or_else(|| {
                unavailable(format!(
                    "#{n} is in the open segment {}, not sealed yet",
                    loc.segment
                ))
            })?;
        let hashes = store
            .hashes_in(sealed.first_number, sealed.last_number)
            .map_err(archive_err)?;
        let index = (n - sealed.first_number) as usize;
        let proof = prover::merkle::inclusion_proof(&hashes, index);
        Ok::<Value, ErrorObjectOwned>(json!({
            "segment": loc.segment,
            "number": n,
            "index": index,
            "leaves": hashes.len(),
            "blocksRoot": hex0x(&sealed.blocks_root),
            "proof": proof.iter().map(|p| hex0x(p)).collect::<Vec<_>>(),
            "hashing": "rs_merkle over BLAKE3 leaves = block hashes (specs/manifest.md)",
        }))
    })?;

    for (sub, notif, unsub, finalized) in [
        (
            "chain_subscribeNewHeads",
            "chain_newHead",
            "chain_unsubscribeNewHeads",
            false,
        ),
        (
            "chain_subscribeNewHead",
            "chain_newHead",
            "chain_unsubscribeNewHead",
            false,
        ),
        (
            "chain_subscribeFinalizedHeads",
            "chain_finalizedHead",
            "chain_unsubscribeFinalizedHeads",
            true,
        ),
        (
            "chain_subscribeFinalisedHeads",
            "chain_finalizedHead",
            "chain_unsubscribeFinalisedHeads",
            true,
        ),
    ] {
        m.register_subscription(sub, notif, unsub, move |_, pending, b, _| async move {
            heads_subscription(pending, b, finalized).await;
        })?;
    }
    Ok(m)
}

async fn heads_subscription(pending: PendingSubscriptionSink, b: Arc<Backend>, finalized: bool) {
    let Ok(sink) = pending.accept().await else {
        return;
    };
    match &b.node {
        Some(node) => {
            let mut rx = if finalized {
                node.subscribe_finalized()
            } else {
                node.subscribe_new_heads()
            };
            loop {
                tokio::select! {
                    _ = sink.closed() => return,
                    h = rx.recv() => match h {
                        Ok(h) => {
                            let Some(msg) = raw(&header_json(&h)) else { return };
                            if sink.send(msg).await.is_err() { return; }
                        }
                        // A slow subscriber skipped some heads; followers fill gaps by number.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => return,
                    }
                }
            }
        }
        None => {
            // Archive-only: announce each newly archived last block.
            let mut last = None;
            loop {
                if let Ok((n, _)) = b.finalized() {
                    if last != Some(n) {
                        last = Some(n);
                        if let Ok(h) = b.header(n).await {
                            let Some(msg) = raw(&header_json(&h)) else {
                                return;
                            };
                            if sink.send(msg).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                tokio::select! {
                    _ = sink.closed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(ARCHIVE_POLL_MS)) => {}
                }
            }
        }
    }
}

/// A manifest as JSON (the RPC extension and the mount's `manifest.json`).
pub fn manifest_json(
    m: &archiver::manifest::Manifest,
    p: Option<&archiver::manifest::Placement>,
) -> Value {
    json!({
        "segment": m.segment,
        "firstNumber": m.first_number,
        "lastNumber": m.last_number,
        "firstHash": hex0x(&m.first_hash),
        "lastHash": hex0x(&m.last_hash),
        "blocksRoot": hex0x(&m.blocks_root),
        "segmentHash": hex0x(&m.segment_hash),
        "segmentBytes": m.segment_bytes,
        "dataShards": m.data_shards,
        "parityShards": m.parity_shards,
        "shardBytes": m.shard_bytes,
        "chunkBytes": m.chunk_bytes,
        "cipher": "AES-256-GCM",
        "compression": if m.compression == 0 { "none" } else { "zstd" },
        "prevManifestHash": hex0x(&m.prev_manifest_hash),
        "manifestHash": hex0x(&m.hash()),
        "shardRoots": m.shard_roots.iter().map(|r| hex0x(r)).collect::<Vec<_>>(),
        "placement": p.map(|p| json!({"generation": p.generation, "hosters": p.hosters})),
    })
}

/// How a server is started beyond its address and backend.
#[derive(Clone, Debug, Default)]
pub struct RpcOptions {
    /// Where each call's latency goes (`archiver_rpc_request_seconds{method}`); None: not
    /// measured.
    pub metrics: Option<ArchiveMetrics>,
}

/// Starts a server on `addr` (WebSocket and HTTP on the same port). Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    backend: Backend,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    serve_with(addr, backend, RpcOptions::default()).await
}

/// As [`serve`], with `options` (metrics).
pub async fn serve_with(
    addr: SocketAddr,
    backend: Backend,
    options: RpcOptions,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let config = jsonrpsee::server::ServerConfig::builder()
        .max_connections(RPC_CONNECTIONS_MAX)
        .set_batch_request_config(jsonrpsee::server::BatchRequestConfig::Limit(
            RPC_BATCH_CALLS_MAX,
        ))
        .max_subscriptions_per_connection(RPC_SUBSCRIPTIONS_PER_CONNECTION_MAX)
        .max_request_body_size(RPC_REQUEST_BYTES_MAX)
        .max_response_body_size(RPC_RESPONSE_BYTES_MAX)
        .build();
    let metrics = options.metrics;
    let middleware = RpcServiceBuilder::new().layer_fn(move |service| RpcLatency {
        service,
        metrics: metrics.clone(),
    });
    let server = Server::builder()
        .set_config(config)
        .set_rpc_middleware(middleware)
        .build(addr)
        .await?;
    let local = server.local_addr()?;
    let module = module(backend).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((local, server.start(module)))
}

/// The `method` label of a call: a served method's name, else `other`, so clients cannot grow
/// the label set by sending made-up names.
fn method_label(name: &str) -> &'static str {
    METHODS
        .iter()
        .find(|m| **m == name)
        .copied()
        .unwrap_or("other")
}

/// RPC middleware timing each call by method. Batches are taken apart here and each call timed
/// on its own: the root service would otherwise run a batch's calls past this layer.
#[derive(Clone)]
struct RpcLatency<S> {
    service: S,
    metrics: Option<ArchiveMetrics>,
}

impl<S> RpcServiceT for RpcLatency<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let service = self.service.clone();
        let metrics = self.metrics.clone();
        async move {
            // What clients call, for `RUST_LOG=node_plugin::rpc=debug` (method names only: no
            // parameters, which may carry extrinsics).
            tracing::debug!(method = request.method_name(), "rpc call");
            let Some(metrics) = metrics else {
                return service.call(request).await;
            };
            let method = method_label(request.method_name());
            let started = Instant::now();
            let response = service.call(request).await;
            metrics.rpc_request(method, started.elapsed().as_secs_f64());
            response
        }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let this = self.clone();
        async move {
            if this.metrics.is_none() {
                return this.service.batch(batch).await;
            }
            // As jsonrpsee's root service answers a batch, with `self.call` per call.
            let mut responses =
                BatchResponseBuilder::new_with_limit(RPC_RESPONSE_BYTES_MAX as usize);
            let mut got_notification = false;
            for entry in batch {
                let response = match entry {
                    Ok(BatchEntry::Call(request)) => this.call(request).await,
                    Ok(BatchEntry::Notification(n)) => {
                        got_notification = true;
                        this.service.notification(n).await;
                        continue;
                    }
                    Err(e) => {
                        let (e, id) = e.into_parts();
                        MethodResponse::error(id, e)
                    }
                };
                if let Err(too_large) = responses.append(response) {
                    return too_large;
                }
            }
            if responses.is_empty() && got_notification {
                MethodResponse::notification()
            } else {
                MethodResponse::from_batch(responses.finish())
            }
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.service.notification(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::substrate::Digest;

    #[test]
    fn json_forms_round_trip() {
        let h = Header {
            parent_hash: [1; 32],
            number: 300,
            state_root: [2; 32],
            extrinsics_root: [3; 32],
            digest: Digest {
                logs: vec![
                    DigestItem::PreRuntime(*b"aura", 5u64.to_le_bytes().to_vec()),
                    DigestItem::Seal(*b"aura", vec![9; 64]),
                ],
            },
        };
        let v = header_json(&h);
        assert_eq!(v["number"], "0x12c");
        assert_eq!(header_from_json(&v).unwrap(), h);
        let block = Block {
            header: h,
            extrinsics: vec![vec![1, 2, 3], vec![]],
        };
        let js = Justifications(vec![(*b"FRNK", vec![7, 7])]);
        let sb = signed_block_json(&block, Some(&js));
        assert_eq!(sb["justifications"][0][0], json!([70, 82, 78, 75]));
        assert_eq!(sb["justifications"][0][1], json!([7, 7]));
        assert_eq!(sb["block"]["extrinsics"][0], "0x0c010203");
        let (bytes, j) = signed_block_from_json(&sb).unwrap();
        assert_eq!(bytes, block.encode());
        assert_eq!(j.unwrap(), js.encode());
        assert!(header_from_json(&json!({"number": 5})).is_err());
        assert!(
            signed_block_from_json(&json!({"block": {"header": v, "extrinsics": ["0xzz"]}}))
                .is_err()
        );
    }

    #[test]
    fn rpc_methods_lists_exactly_the_registered_methods() {
        let backend = Backend {
            node: None,
            archive: None,
            chain_name: "test".into(),
        };
        let m = module(backend).unwrap();
        let mut registered: Vec<&str> = m.method_names().collect();
        registered.sort_unstable();
        assert_eq!(registered, METHODS);
    }

    /// Every call is timed under its method, batched calls one by one, and names the server
    /// does not serve all count as `other`.
    #[tokio::test]
    async fn latency_is_measured_by_method_including_batched_calls() {
        use jsonrpsee::core::client::ClientT;
        use jsonrpsee::core::params::BatchRequestBuilder;
        use jsonrpsee::rpc_params;

        let registry = prometheus::Registry::new();
        let metrics = ArchiveMetrics::register(&registry).unwrap();
        let backend = Backend {
            node: None,
            archive: None,
            chain_name: "test".into(),
        };
        let options = RpcOptions {
            metrics: Some(metrics),
        };
        let (addr, server) = serve_with("127.0.0.1:0".parse().unwrap(), backend, options)
            .await
            .unwrap();
        let client = jsonrpsee::http_client::HttpClientBuilder::default()
            .build(format!("http://{addr}"))
            .unwrap();
        let name: String = client.request("system_name", rpc_params![]).await.unwrap();
        assert_eq!(name, "poa-archiver");
        let mut batch = BatchRequestBuilder::new();
        batch.insert("system_name", rpc_params![]).unwrap();
        batch.insert("system_chain", rpc_params![]).unwrap();
        batch.insert("made_up_method", rpc_params![]).unwrap();
        let answers = client.batch_request::<String>(batch).await.unwrap();
        assert_eq!(answers.num_successful_calls(), 2);
        assert_eq!(answers.num_failed_calls(), 1);
        let chain = answers.iter().nth(1).unwrap().as_ref().unwrap();
        assert_eq!(chain, "test");
        let unknown = client
            .request::<String, _>("another_made_up_method", rpc_params![])
            .await;
        assert!(unknown.is_err());
        server.stop().unwrap();

        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        for line in [
            "archiver_rpc_request_seconds_count{method=\"system_name\"} 2",
            "archiver_rpc_request_seconds_count{method=\"system_chain\"} 1",
            "archiver_rpc_request_seconds_count{method=\"other\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(!text.contains("made_up"), "{text}");
    }
}
