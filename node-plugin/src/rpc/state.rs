//! The state side of the node's JSON-RPC: storage at a block (`state_getStorage`,
//! `state_getKeysPaged`, `state_getPairs`, `state_queryStorageAt`, `state_subscribeStorage`),
//! the runtime's metadata and version at a block, the runtime APIs clients call through
//! `state_call`, and `system_accountNextIndex`.
//!
//! State at a block comes from the node while it holds it (its best state and the last
//! [`crate::node::RECENT_STATES_MAX`] blocks); older state goes through
//! [`Backend::archived_storage_at`] / [`Backend::archived_keys_at`], the one place that reads
//! historical state from the archive. Keys under [`RESERVED_KEY_PREFIX`] are never listed.

use std::sync::Arc;

use jsonrpsee::server::{PendingSubscriptionSink, RpcModule};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use parity_scale_codec::{DecodeAll, Encode};
use serde_json::{json, Value};

use super::{err, hex0x, invalid, opt_string, positional, raw, unhex, Backend, RpcResult};
use super::{ERROR_BLOCK_UNAVAILABLE, ERROR_NOT_A_NODE};
use crate::archived_calls;
use crate::runtime::primitives::{parse_account, AccountId32};
use crate::runtime::types::AccountInfo;
use crate::substrate::{METADATA_KEY, RESERVED_KEY_PREFIX, RUNTIME_VERSION_KEY};

/// Keys one `state_getKeysPaged` call returns at most (Substrate's limit).
pub const KEYS_PAGE_MAX: u32 = 1000;
/// Keys one `state_queryStorageAt` or `state_subscribeStorage` call names at most: each is a
/// state read, and clients ask for a handful.
pub const QUERY_KEYS_MAX: usize = 1000;
/// JSON-RPC error code of a failed runtime call (Substrate's `state_call` errors).
pub const ERROR_RUNTIME_CALL: i32 = 4004;

fn not_held(number: u64) -> ErrorObjectOwned {
    err(
        ERROR_BLOCK_UNAVAILABLE,
        format!("state at #{number} is not held by this node (State already discarded) and no archive is configured"),
    )
}

/// A state-history read that failed: the block is not (yet) archived or indexed, or the
/// archive could not be read.
fn history_err(number: u64, e: archiver::ArchiveError) -> ErrorObjectOwned {
    err(ERROR_BLOCK_UNAVAILABLE, format!("state at #{number}: {e}"))
}

impl Backend {
    /// Historical state: the value of `key` after block `number` from the archive's
    /// state-history index, for blocks whose state the node no longer holds (or with no node).
    pub async fn archived_storage_at(&self, key: &[u8], number: u64) -> RpcResult<Option<Vec<u8>>> {
        let Some(archive) = &self.archive else {
            return Err(not_held(number));
        };
        // A read-only server sees blocks archived since its last catch-up only after one:
        // catch up (one RocksDB call) only when the block is beyond what it sees.
        match archive.reader.storage_at(key, number).await {
            Err(
                archiver::ArchiveError::BeyondHead { .. }
                | archiver::ArchiveError::NotIndexed { .. },
            ) => {
                self.refresh();
                archive.reader.storage_at(key, number).await
            }
            other => other,
        }
        .map_err(|e| history_err(number, e))
    }

    /// Historical state: up to `count` keys with `prefix` after `start_after` that exist after
    /// block `number`, from the archive's state-history index.
    pub async fn archived_keys_at(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        count: usize,
        number: u64,
    ) -> RpcResult<Vec<Vec<u8>>> {
        let Some(archive) = &self.archive else {
            return Err(not_held(number));
        };
        let reader = &archive.reader;
        match reader
            .storage_keys_at(prefix, start_after, count, number)
            .await
        {
            Err(
                archiver::ArchiveError::BeyondHead { .. }
                | archiver::ArchiveError::NotIndexed { .. },
            ) => {
                self.refresh();
                reader
                    .storage_keys_at(prefix, start_after, count, number)
                    .await
            }
            other => other,
        }
        .map_err(|e| history_err(number, e))
    }

    /// The value of `key` after block `number`: the node's while it holds that state, else
    /// the archive's.
    pub async fn storage_at(&self, key: &[u8], number: u64) -> RpcResult<Option<Vec<u8>>> {
        if let Some(node) = &self.node {
            if let Some(value) = node.storage_at(key, number) {
                return Ok(value);
            }
        }
        self.archived_storage_at(key, number).await
    }

    /// Up to `count` keys with `prefix`, after `start_after`, existing after block `number`,
    /// in byte order; reserved keys are skipped (and do not count).
    pub async fn keys_at(
        &self,
        prefix: &[u8],
        start_after: Option<Vec<u8>>,
        count: usize,
        number: u64,
    ) -> RpcResult<Vec<Vec<u8>>> {
        let listed = |k: &[u8]| k.starts_with(prefix) && !k.starts_with(RESERVED_KEY_PREFIX);
        if let Some(state) = self.node.as_ref().and_then(|n| n.state_at(number)) {
            use std::ops::Bound;
            let lower = match &start_after {
                Some(s) if s.as_slice() >= prefix => Bound::Excluded(s.clone()),
                _ => Bound::Included(prefix.to_vec()),
            };
            return Ok(state
                .range((lower, Bound::Unbounded))
                .map(|(k, _)| k)
                .take_while(|k| k.starts_with(prefix))
                .filter(|k| listed(k))
                .take(count)
                .cloned()
                .collect());
        }
        let mut out = Vec::with_capacity(count);
        let mut start = start_after;
        while out.len() < count {
            let batch = self
                .archived_keys_at(prefix, start.as_deref(), count, number)
                .await?;
            // The index pages at most `STORAGE_KEYS_AT_MAX` keys however many were asked for.
            let exhausted = batch.len() < count.min(archiver::state_index::STORAGE_KEYS_AT_MAX);
            start = batch.last().cloned();
            out.extend(batch.into_iter().filter(|k| listed(k)));
            if exhausted || start.is_none() {
                break;
            }
        }
        out.truncate(count);
        Ok(out)
    }

    /// The runtime version (Substrate's JSON) in force after block `number`.
    pub async fn runtime_version_at(&self, number: u64) -> RpcResult<Value> {
        let raw = match self.storage_at(RUNTIME_VERSION_KEY, number).await {
            Ok(v) => v,
            // Without an archive, a node that no longer holds the block's state answers with
            // its current value: right for the reference runtime, which has no upgrade call.
            Err(e) if self.archive.is_none() => self.unchanging(RUNTIME_VERSION_KEY).ok_or(e)?,
            Err(e) => return Err(e),
        };
        let raw = raw.ok_or_else(|| {
            err(
                ERROR_BLOCK_UNAVAILABLE,
                format!("no runtime version recorded at #{number}"),
            )
        })?;
        serde_json::from_slice(&raw).map_err(|e| {
            err(
                ERROR_BLOCK_UNAVAILABLE,
                format!("runtime version record at #{number}: {e}"),
            )
        })
    }

    /// The metadata (`RuntimeMetadataPrefixed` bytes) in force after block `number`.
    pub async fn metadata_at(&self, number: u64) -> RpcResult<Vec<u8>> {
        let raw = match self.storage_at(METADATA_KEY, number).await {
            Ok(v) => v,
            // Without an archive, a node that no longer holds the block's state answers with
            // its current value: right for the reference runtime, which has no upgrade call.
            Err(e) if self.archive.is_none() => self.unchanging(METADATA_KEY).ok_or(e)?,
            Err(e) => return Err(e),
        };
        raw.ok_or_else(|| {
            err(
                ERROR_BLOCK_UNAVAILABLE,
                format!("no metadata recorded at #{number}"),
            )
        })
    }

    /// The node's current value of the runtime version or metadata key, for a block whose
    /// state it no longer holds when no archive is configured. Right for the reference runtime,
    /// which has no upgrade call (its version and metadata are those of genesis at every block).
    fn unchanging(&self, key: &[u8]) -> Option<Option<Vec<u8>>> {
        let node = self.node.as_ref()?;
        node.storage_at(key, node.best().0).flatten().map(Some)
    }
}

fn bytes_param(params: &Params<'_>, at: usize, what: &str) -> RpcResult<Option<Vec<u8>>> {
    opt_string(params, at)?
        .map(|s| unhex(&s).map_err(|e| invalid(format!("{what}: {e}"))))
        .transpose()
}

/// The keys of a `state_queryStorageAt`/`state_subscribeStorage` call.
fn keys_param(v: Option<&Value>) -> RpcResult<Option<Vec<Vec<u8>>>> {
    let list = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(invalid(format!(
                "a list of storage keys expected, got {other}"
            )))
        }
    };
    if list.len() > QUERY_KEYS_MAX {
        return Err(invalid(format!(
            "{} keys asked, at most {QUERY_KEYS_MAX}",
            list.len()
        )));
    }
    list.iter()
        .map(|k| {
            k.as_str()
                .ok_or_else(|| invalid("storage key is not a string"))
                .and_then(|s| unhex(s).map_err(invalid))
        })
        .collect::<RpcResult<Vec<_>>>()
        .map(Some)
}

async fn changes_json(b: &Backend, keys: &[Vec<u8>], number: u64) -> RpcResult<Vec<Value>> {
    let mut changes = Vec::with_capacity(keys.len());
    for k in keys {
        let v = b.storage_at(k, number).await?;
        changes.push(json!([hex0x(k), v.map(|v| hex0x(&v))]));
    }
    Ok(changes)
}

/// Answers a runtime API call (`state_call`) at block `number`.
pub(super) async fn runtime_call(
    b: &Backend,
    method: &str,
    data: &[u8],
    number: u64,
) -> RpcResult<Vec<u8>> {
    tracing::debug!(api = method, "state_call");
    match method {
        // Answered from the version and metadata recorded at that block, so the same answers
        // come from the node, the archive, and an archive of a foreign chain; each call reads
        // only the record it needs.
        "Core_version" => {
            let version = b.runtime_version_at(number).await?.to_string();
            archived_calls::core_version(version.as_bytes())
                .map_err(|e| err(ERROR_RUNTIME_CALL, e.to_string()))
        }
        "Metadata_metadata" | "Metadata_metadata_versions" | "Metadata_metadata_at_version" => {
            let metadata = b.metadata_at(number).await?;
            archived_calls::answer(method, data, b"", &metadata)
                .map_err(|e| err(ERROR_RUNTIME_CALL, e.to_string()))
        }
        "AccountNonceApi_account_nonce" => {
            let who = AccountId32::decode_all(&mut &data[..])
                .map_err(|e| invalid(format!("AccountNonceApi_account_nonce: {e}")))?;
            let key = crate::runtime::storage::account_key(&who);
            let info = match b.storage_at(&key, number).await? {
                None => AccountInfo::default(),
                Some(v) => AccountInfo::decode_all(&mut &v[..]).map_err(|e| {
                    err(
                        ERROR_RUNTIME_CALL,
                        format!("stored account at #{number}: {e}"),
                    )
                })?,
            };
            Ok(info.nonce.encode())
        }
        other => Err(err(
            ERROR_RUNTIME_CALL,
            format!("runtime API {other} is not implemented by this runtime"),
        )),
    }
}

/// Registers the state methods on `m`.
pub(super) fn register(
    m: &mut RpcModule<Backend>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_async_method("state_getRuntimeVersion", |p, b, _| async move {
        let n = b.resolve(opt_string(&p, 0)?).await?;
        b.runtime_version_at(n).await
    })?;
    m.register_async_method("state_getMetadata", |p, b, _| async move {
        let n = b.resolve(opt_string(&p, 0)?).await?;
        Ok::<String, ErrorObjectOwned>(hex0x(&b.metadata_at(n).await?))
    })?;
    for name in ["state_getStorage", "state_getStorageAt"] {
        m.register_async_method(name, |p, b, _| async move {
            let key = bytes_param(&p, 0, "storage key")?
                .ok_or_else(|| invalid("storage key expected"))?;
            let n = b.resolve(opt_string(&p, 1)?).await?;
            Ok::<Option<String>, ErrorObjectOwned>(b.storage_at(&key, n).await?.map(|v| hex0x(&v)))
        })?;
    }
    m.register_async_method("state_getKeysPaged", |p, b, _| async move {
        let args = positional(&p);
        let prefix = bytes_param(&p, 0, "prefix")?.unwrap_or_default();
        let count = args
            .get(1)
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid("count expected"))?;
        if count > u64::from(KEYS_PAGE_MAX) {
            return Err(invalid(format!(
                "count exceeds maximum value {KEYS_PAGE_MAX}"
            )));
        }
        let start = bytes_param(&p, 2, "start key")?;
        let n = b.resolve(opt_string(&p, 3)?).await?;
        let keys = b.keys_at(&prefix, start, count as usize, n).await?;
        Ok::<Vec<String>, ErrorObjectOwned>(keys.iter().map(|k| hex0x(k)).collect())
    })?;
    m.register_async_method("state_getPairs", |p, b, _| async move {
        let prefix = bytes_param(&p, 0, "prefix")?.unwrap_or_default();
        let n = b.resolve(opt_string(&p, 1)?).await?;
        let node = b
            .node
            .as_ref()
            .ok_or_else(|| err(ERROR_NOT_A_NODE, "state_getPairs needs a live node"))?;
        let state = if n == 0 {
            node.spec().genesis().0
        } else {
            node.state_at(n).ok_or_else(|| not_held(n))?
        };
        Ok::<Vec<Value>, ErrorObjectOwned>(
            state
                .into_iter()
                .filter(|(k, _)| k.starts_with(&prefix) && !k.starts_with(RESERVED_KEY_PREFIX))
                .map(|(k, v)| json!([hex0x(&k), hex0x(&v)]))
                .collect(),
        )
    })?;
    m.register_async_method("state_queryStorageAt", |p, b, _| async move {
        let args = positional(&p);
        let keys = keys_param(args.first())?.unwrap_or_default();
        let n = b.resolve(opt_string(&p, 1)?).await?;
        let hash = b.hash_at(n).await?.map(|h| hex0x(&h));
        Ok::<Value, ErrorObjectOwned>(
            json!([{ "block": hash, "changes": changes_json(&b, &keys, n).await? }]),
        )
    })?;
    m.register_async_method("state_call", |p, b, _| async move {
        let method = opt_string(&p, 0)?.ok_or_else(|| invalid("runtime API method expected"))?;
        let data = bytes_param(&p, 1, "call data")?.unwrap_or_default();
        let n = b.resolve(opt_string(&p, 2)?).await?;
        Ok::<String, ErrorObjectOwned>(hex0x(&runtime_call(&b, &method, &data, n).await?))
    })?;
    m.register_method("system_accountNextIndex", |p, b, _| {
        let who = opt_string(&p, 0)?.ok_or_else(|| invalid("account expected"))?;
        let who = parse_account(&who).map_err(invalid)?;
        let node = b.node.as_ref().ok_or_else(|| {
            err(
                ERROR_NOT_A_NODE,
                "this server serves the archive only; ask a node for nonces",
            )
        })?;
        Ok::<u32, ErrorObjectOwned>(node.next_nonce(&who))
    })?;
    m.register_subscription(
        "state_subscribeStorage",
        "state_storage",
        "state_unsubscribeStorage",
        |p, pending, b, _| async move {
            let keys = keys_param(positional(&p).first());
            storage_subscription(pending, b, keys).await;
        },
    )?;
    m.register_subscription(
        "state_subscribeRuntimeVersion",
        "state_runtimeVersion",
        "state_unsubscribeRuntimeVersion",
        |_, pending, b, _| async move {
            let Ok(sink) = pending.accept().await else {
                return;
            };
            let n = b.best().map(|x| x.0).unwrap_or(0);
            if let Some(msg) = b.runtime_version_at(n).await.ok().as_ref().and_then(raw) {
                let _ = sink.send(msg).await;
            }
            sink.closed().await;
        },
    )?;
    Ok(())
}

/// `state_subscribeStorage`: the named keys' values at the best block, then each new block's
/// changes among them (all of a block's changes when no keys are named).
async fn storage_subscription(
    pending: PendingSubscriptionSink,
    b: Arc<Backend>,
    keys: RpcResult<Option<Vec<Vec<u8>>>>,
) {
    let keys = match keys {
        Ok(k) => k,
        Err(e) => {
            pending.reject(e).await;
            return;
        }
    };
    let Some(node) = b.node.clone() else {
        match keys {
            Some(keys) if b.archive.is_some() => archive_subscription(pending, b, keys).await,
            _ => {
                let why = "storage subscriptions without a live node must name their keys";
                pending.reject(err(ERROR_NOT_A_NODE, why)).await;
            }
        }
        return;
    };
    let mut heads = node.subscribe_new_heads();
    let Ok(sink) = pending.accept().await else {
        return;
    };
    let (best, best_hash) = node.best();
    let mut last: Vec<Option<Vec<u8>>> = Vec::new();
    if let Some(keys) = &keys {
        last = keys
            .iter()
            .map(|k| node.storage_at(k, best).flatten())
            .collect();
        let changes: Vec<Value> = keys
            .iter()
            .zip(&last)
            .map(|(k, v)| json!([hex0x(k), v.as_ref().map(|v| hex0x(v))]))
            .collect();
        let msg = json!({ "block": hex0x(&best_hash), "changes": changes });
        if send_json(&sink, &msg).await.is_err() {
            return;
        }
    }
    loop {
        let header = tokio::select! {
            _ = sink.closed() => return,
            h = heads.recv() => match h {
                Ok(h) => h,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            },
        };
        let n = u64::from(header.number);
        let changes: Vec<Value> = match &keys {
            Some(keys) => {
                let mut out = Vec::new();
                for (i, k) in keys.iter().enumerate() {
                    let v = node.storage_at(k, n).flatten();
                    if v != last[i] {
                        out.push(json!([hex0x(k), v.as_ref().map(|v| hex0x(v))]));
                        last[i] = v;
                    }
                }
                out
            }
            None => node
                .db()
                .changes(n)
                .ok()
                .flatten()
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| !k.starts_with(RESERVED_KEY_PREFIX))
                .map(|(k, v)| json!([hex0x(&k), v.map(|v| hex0x(&v))]))
                .collect(),
        };
        if changes.is_empty() {
            continue;
        }
        let msg = json!({ "block": hex0x(&header.hash()), "changes": changes });
        if send_json(&sink, &msg).await.is_err() {
            return;
        }
    }
}

/// How often an archive-only server looks for newly archived blocks for its storage
/// subscriptions: archives grow by dispersed segments, so a second is prompt enough.
const ARCHIVE_SUBSCRIPTION_POLL_MS: u64 = 1000;

/// `state_subscribeStorage` on an archive without a node: the named keys' values at the
/// archive's head, then, as the head moves, the keys whose values differ at the new head.
async fn archive_subscription(
    pending: PendingSubscriptionSink,
    b: Arc<Backend>,
    keys: Vec<Vec<u8>>,
) {
    let Ok(sink) = pending.accept().await else {
        return;
    };
    let mut last: Vec<Option<Option<Vec<u8>>>> = vec![None; keys.len()];
    let mut head = None;
    loop {
        if let Ok((n, hash)) = b.finalized() {
            if head != Some(n) {
                head = Some(n);
                let mut changes = Vec::new();
                for (k, seen) in keys.iter().zip(last.iter_mut()) {
                    let Ok(v) = b.storage_at(k, n).await else {
                        continue;
                    };
                    if seen.as_ref() != Some(&v) {
                        changes.push(json!([hex0x(k), v.as_ref().map(|v| hex0x(v))]));
                        *seen = Some(v);
                    }
                }
                let msg = json!({ "block": hex0x(&hash), "changes": changes });
                if !changes.is_empty() && send_json(&sink, &msg).await.is_err() {
                    return;
                }
            }
        }
        tokio::select! {
            _ = sink.closed() => return,
            _ = tokio::time::sleep(std::time::Duration::from_millis(ARCHIVE_SUBSCRIPTION_POLL_MS)) => {}
        }
    }
}

/// Sends a JSON value on a subscription sink; `Err` when the subscriber is gone.
pub(super) async fn send_json(sink: &jsonrpsee::SubscriptionSink, v: &Value) -> Result<(), ()> {
    let msg = raw(v).ok_or(())?;
    sink.send(msg).await.map_err(|_| ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use jsonrpsee::rpc_params;

    use super::*;
    use crate::node::{Node, RECENT_STATES_MAX};
    use crate::runtime::{self, storage::account_key, State};
    use parity_scale_codec::Decode;

    fn node(dir: &std::path::Path) -> Node {
        crate::node::test_node(dir, 2)
    }

    async fn call<R: serde::de::DeserializeOwned + Clone>(
        m: &RpcModule<Backend>,
        method: &str,
        params: impl jsonrpsee::core::traits::ToRpcParams + Send,
    ) -> Result<R, String> {
        m.call(method, params).await.map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn state_methods_answer_at_recent_blocks_and_name_what_is_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        let blocks = RECENT_STATES_MAX as u64 + 10;
        for _ in 0..blocks {
            node.produce_block().unwrap();
        }
        let m = super::super::module(Backend {
            node: Some(node.clone()),
            archive: None,
            chain_name: "poa-dev".into(),
        })
        .unwrap();
        let alice = runtime::dev_signer("poa-dev", 0).account();
        let hash = |n: u64| hex0x(&node.header(n).unwrap().unwrap().hash());

        let meta: String = call(&m, "state_getMetadata", rpc_params![hash(1)])
            .await
            .unwrap();
        assert_eq!(meta, hex0x(&runtime::metadata::metadata_bytes("poa-dev")));
        let versions: String = call(
            &m,
            "state_call",
            rpc_params!["Metadata_metadata_versions", "0x"],
        )
        .await
        .unwrap();
        assert_eq!(versions, hex0x(&vec![14u32].encode()));
        let core: String = call(&m, "state_call", rpc_params!["Core_version", "0x"])
            .await
            .unwrap();
        assert_eq!(
            core,
            hex0x(&runtime::metadata::runtime_version("poa-dev").encode())
        );
        // The nonce, by the runtime API, by SS58 and in storage at an older block.
        let nonce = node.next_nonce(&alice);
        assert!(nonce > 0);
        let api: String = call(
            &m,
            "state_call",
            rpc_params!["AccountNonceApi_account_nonce", hex0x(&alice.0)],
        )
        .await
        .unwrap();
        assert_eq!(api, hex0x(&nonce.encode()));
        let ss58 = runtime::primitives::ss58_encode(&alice, 42);
        let next: u32 = call(&m, "system_accountNextIndex", rpc_params![ss58])
            .await
            .unwrap();
        assert_eq!(next, nonce);
        let at = blocks - 5;
        let raw: Option<String> = call(
            &m,
            "state_getStorage",
            rpc_params![hex0x(&account_key(&alice)), hash(at)],
        )
        .await
        .unwrap();
        let info = AccountInfo::decode(&mut &unhex(&raw.unwrap()).unwrap()[..]).unwrap();
        assert_eq!(
            Some(info),
            node.state_at(at)
                .map(|s| State { entries: s }.account(&alice))
        );
        assert!(info.nonce < nonce);
        // Keys: every endowed account, never a reserved key, paged.
        let prefix = hex0x(&crate::runtime::primitives::value_key("System", "Account"));
        let keys: Vec<String> = call(&m, "state_getKeysPaged", rpc_params![prefix.clone(), 1000])
            .await
            .unwrap();
        assert_eq!(keys.len(), runtime::endowed_accounts("poa-dev", 16).len());
        let page: Vec<String> = call(
            &m,
            "state_getKeysPaged",
            rpc_params![prefix, 5, keys[4].clone()],
        )
        .await
        .unwrap();
        assert_eq!(page, keys[5..10]);
        let all: Vec<String> = call(&m, "state_getKeysPaged", rpc_params!["0x", 1000])
            .await
            .unwrap();
        assert!(all
            .iter()
            .all(|k| !k.starts_with(&hex0x(RESERVED_KEY_PREFIX))));
        assert!(all.len() > keys.len());
        let sets: Value = call(
            &m,
            "state_queryStorageAt",
            rpc_params![vec![keys[0].clone()], hash(at)],
        )
        .await
        .unwrap();
        assert_eq!(sets[0]["block"], hash(at));
        assert_eq!(sets[0]["changes"][0][0], keys[0]);
        // Beyond the window: named, not guessed.
        let old = blocks - RECENT_STATES_MAX as u64 - 1;
        let err = call::<Option<String>>(
            &m,
            "state_getStorage",
            rpc_params![keys[0].clone(), hash(old)],
        )
        .await
        .unwrap_err();
        assert!(
            err.contains(&format!("state at #{old} is not held")),
            "{err}"
        );
        // The runtime version and metadata of this runtime never change, so old blocks get them.
        let rv: Value = call(&m, "state_getRuntimeVersion", rpc_params![hash(old)])
            .await
            .unwrap();
        assert_eq!(rv["specVersion"], runtime::SPEC_VERSION);
        assert_eq!(
            archived_calls::core_version(rv.to_string().as_bytes()).unwrap(),
            runtime::metadata::runtime_version("poa-dev").encode()
        );
    }

    /// What a follower must do to archive this chain's genesis state (design of issue 12): the
    /// pairs `state_getPairs` lists (reserved keys left out) plus the runtime version JSON and the
    /// metadata the node reports, under the reserved keys, hash to the genesis state root.
    #[tokio::test]
    async fn listed_genesis_pairs_plus_reported_version_and_metadata_are_the_genesis_state() {
        let dir = tempfile::tempdir().unwrap();
        let node = node(dir.path());
        let m = super::super::module(Backend {
            node: Some(node.clone()),
            archive: None,
            chain_name: "poa-dev".into(),
        })
        .unwrap();
        let genesis = hex0x(&node.genesis_hash());
        let pairs: Vec<(String, String)> =
            call(&m, "state_getPairs", rpc_params!["0x", genesis.clone()])
                .await
                .unwrap();
        let mut state: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = pairs
            .iter()
            .map(|(k, v)| (unhex(k).unwrap(), unhex(v).unwrap()))
            .collect();
        assert!(state.keys().all(|k| !k.starts_with(RESERVED_KEY_PREFIX)));
        let version: Value = call(&m, "state_getRuntimeVersion", rpc_params![genesis.clone()])
            .await
            .unwrap();
        let metadata: String = call(&m, "state_getMetadata", rpc_params![genesis])
            .await
            .unwrap();
        state.insert(
            RUNTIME_VERSION_KEY.to_vec(),
            serde_json::to_vec(&version).unwrap(),
        );
        state.insert(METADATA_KEY.to_vec(), unhex(&metadata).unwrap());
        assert_eq!(
            runtime::state_root(&state),
            node.header(0).unwrap().unwrap().state_root
        );
    }
}
