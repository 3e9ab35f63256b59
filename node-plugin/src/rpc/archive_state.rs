//! The new-style JSON-RPC spec's archive state methods: `archive_v1_storage` (a subscription of
//! `storage` events ending in `storageDone`) and `archive_v1_call`, answered at any block the
//! node or the archive holds state for. subxt prefers these whenever `rpc_methods` lists an
//! `archive_v1_*` method, and does not fall back once a storage stream has started.

use std::sync::Arc;

use jsonrpsee::server::{PendingSubscriptionSink, RpcModule};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde_json::{json, Value};

use super::state::{runtime_call, send_json};
use super::{hex0x, invalid, parse_hash, positional, unhex, Backend, RpcResult};
use crate::substrate::blake2_256;

/// Items one `archive_v1_storage` call may name (the spec lets a server refuse more).
pub const ARCHIVE_STORAGE_ITEMS_MAX: usize = 1000;
/// Entries a `descendants*` item yields per call; a client resumes after the last key with
/// `paginationStartKey`, as the spec allows a server to stop early.
pub const ARCHIVE_DESCENDANTS_MAX: usize = 1000;

/// One requested item: its key, what to return, and where a descendants listing resumes.
struct Item {
    key: Vec<u8>,
    kind: String,
    start_after: Option<Vec<u8>>,
}

fn parse_items(v: Option<&Value>) -> RpcResult<Vec<Item>> {
    let items = v
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("items: a list expected"))?;
    if items.len() > ARCHIVE_STORAGE_ITEMS_MAX {
        return Err(invalid(format!(
            "{} items, at most {ARCHIVE_STORAGE_ITEMS_MAX}",
            items.len()
        )));
    }
    items
        .iter()
        .map(|i| {
            let hex = |name: &str| i.get(name).and_then(Value::as_str).map(unhex);
            let key = hex("key")
                .ok_or_else(|| invalid("item without a key"))?
                .map_err(invalid)?;
            let start_after = hex("paginationStartKey").transpose().map_err(invalid)?;
            let kind = i.get("type").and_then(Value::as_str).unwrap_or("value");
            Ok(Item {
                key,
                kind: kind.to_string(),
                start_after,
            })
        })
        .collect()
}

fn event(key: &[u8], field: &str, bytes: &[u8]) -> Value {
    json!({ "event": "storage", "key": hex0x(key), field: hex0x(bytes) })
}

/// The events one item yields at block `number`.
async fn item_events(b: &Backend, item: &Item, number: u64) -> RpcResult<Vec<Value>> {
    match item.kind.as_str() {
        "value" | "hash" => {
            let v = b.storage_at(&item.key, number).await?;
            Ok(v.map(|v| match item.kind.as_str() {
                "value" => event(&item.key, "value", &v),
                _ => event(&item.key, "hash", &blake2_256(&v)),
            })
            .into_iter()
            .collect())
        }
        "descendantsValues" | "descendantsHashes" => {
            let keys = b
                .keys_at(
                    &item.key,
                    item.start_after.clone(),
                    ARCHIVE_DESCENDANTS_MAX,
                    number,
                )
                .await?;
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                if let Some(v) = b.storage_at(&k, number).await? {
                    out.push(match item.kind.as_str() {
                        "descendantsValues" => event(&k, "value", &v),
                        _ => event(&k, "hash", &blake2_256(&v)),
                    });
                }
            }
            Ok(out)
        }
        // The reference chain commits to state with a flat hash, not a trie: there are no
        // Merkle values to give, so the item yields nothing, as for an absent key.
        "closestDescendantMerkleValue" => Ok(Vec::new()),
        other => Err(invalid(format!("unknown storage query type {other}"))),
    }
}

async fn storage_events(b: &Backend, params: &[Value]) -> RpcResult<Vec<Value>> {
    let hash = params
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("block hash expected"))?;
    let number = b.number_of(&parse_hash(hash)?).await?;
    if params.get(2).is_some_and(|c| !c.is_null()) {
        return Err(invalid("child tries are not archived"));
    }
    let mut events = Vec::new();
    for item in parse_items(params.get(1))? {
        events.extend(item_events(b, &item, number).await?);
    }
    Ok(events)
}

async fn storage_subscription(
    pending: PendingSubscriptionSink,
    b: Arc<Backend>,
    params: Vec<Value>,
) {
    let events = storage_events(&b, &params).await;
    let Ok(sink) = pending.accept().await else {
        return;
    };
    let events = match events {
        Ok(mut events) => {
            events.push(json!({ "event": "storageDone" }));
            events
        }
        Err(e) => vec![json!({ "event": "storageError", "error": e.message() })],
    };
    for e in &events {
        if send_json(&sink, e).await.is_err() {
            return;
        }
    }
    sink.closed().await;
}

async fn call(b: &Backend, p: &Params<'_>) -> RpcResult<Value> {
    let params = positional(p);
    let text = |i: usize, what: &str| {
        params
            .get(i)
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("{what} expected")))
    };
    let number = b.number_of(&parse_hash(text(0, "block hash")?)?).await?;
    let function = text(1, "function")?;
    let data = unhex(text(2, "call parameters")?).map_err(invalid)?;
    Ok(match runtime_call(b, function, &data, number).await {
        Ok(value) => json!({ "success": true, "value": hex0x(&value) }),
        Err(e) => json!({ "success": false, "error": e.message() }),
    })
}

/// Registers `archive_v1_storage` and `archive_v1_call` on `m`.
pub(super) fn register(
    m: &mut RpcModule<Backend>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_subscription(
        "archive_v1_storage",
        "archive_v1_storageEvent",
        "archive_v1_stopStorage",
        |p, pending, b, _| async move {
            storage_subscription(pending, b, positional(&p)).await;
        },
    )?;
    m.register_async_method("archive_v1_call", |p, b, _| async move {
        call(&b, &p).await.map_err(|e: ErrorObjectOwned| e)
    })?;
    Ok(())
}
