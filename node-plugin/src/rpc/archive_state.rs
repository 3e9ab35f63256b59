//! The new-style JSON-RPC spec's archive state methods: `archive_v1_storage` (a subscription of
//! `storage` events ending in `storageDone`) and `archive_v1_call`, answered at any block the
//! node or the archive holds state for. subxt prefers these whenever `rpc_methods` lists an
//! `archive_v1_*` method, and does not fall back once a storage stream has started.

use std::sync::Arc;

use jsonrpsee::server::{PendingSubscriptionSink, RpcModule, SubscriptionSink};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde_json::{json, Value};

use super::state::{runtime_call, send_json};
use super::{hex0x, invalid, parse_hash, positional, unhex, Backend, RpcResult};
use crate::substrate::blake2_256;

/// Items one `archive_v1_storage` call may name (the spec lets a server refuse more).
pub const ARCHIVE_STORAGE_ITEMS_MAX: usize = 1000;
/// Descendant keys read and sent per step: a `descendants*` item streams every entry under its
/// key, page by page, so memory stays bounded however large the state is.
pub const ARCHIVE_DESCENDANTS_PAGE_KEYS: usize = 1000;

/// The storage query types of the spec.
const QUERY_TYPES: [&str; 5] = [
    "value",
    "hash",
    "descendantsValues",
    "descendantsHashes",
    "closestDescendantMerkleValue",
];

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
            if !QUERY_TYPES.contains(&kind) {
                return Err(invalid(format!("unknown storage query type {kind}")));
            }
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

/// Why a storage stream stopped early.
enum Stop {
    /// The subscriber went away.
    Closed,
    /// A request or read failed: reported as `storageError`.
    Failed(ErrorObjectOwned),
}

impl From<ErrorObjectOwned> for Stop {
    fn from(e: ErrorObjectOwned) -> Self {
        Stop::Failed(e)
    }
}

async fn send(sink: &SubscriptionSink, v: &Value) -> Result<(), Stop> {
    send_json(sink, v).await.map_err(|()| Stop::Closed)
}

/// The entry of `key` at block `number` as `kind` asks (`value` or its hash), if present.
async fn entry(b: &Backend, key: &[u8], values: bool, number: u64) -> RpcResult<Option<Value>> {
    Ok(b.storage_at(key, number).await?.map(|v| match values {
        true => event(key, "value", &v),
        false => event(key, "hash", &blake2_256(&v)),
    }))
}

/// Sends the events of one item at block `number`.
async fn send_item(
    b: &Backend,
    sink: &SubscriptionSink,
    item: &Item,
    number: u64,
) -> Result<(), Stop> {
    let values = matches!(item.kind.as_str(), "value" | "descendantsValues");
    match item.kind.as_str() {
        "value" | "hash" => {
            if let Some(e) = entry(b, &item.key, values, number).await? {
                send(sink, &e).await?;
            }
        }
        "descendantsValues" | "descendantsHashes" => {
            let mut start = item.start_after.clone();
            loop {
                let page = ARCHIVE_DESCENDANTS_PAGE_KEYS;
                let keys = b.keys_at(&item.key, start.clone(), page, number).await?;
                for k in &keys {
                    if let Some(e) = entry(b, k, values, number).await? {
                        send(sink, &e).await?;
                    }
                }
                if keys.len() < page {
                    break;
                }
                start = keys.last().cloned();
            }
        }
        // "closestDescendantMerkleValue" (kinds are checked when parsed): the reference chain
        // commits to state with a flat hash, not a trie, so there are no Merkle values to give
        // and the item yields nothing, as for an absent key.
        _ => {}
    }
    Ok(())
}

/// The block and items of a request, checked before the subscription is accepted, so bad
/// parameters are refused (-32602) rather than half answered.
async fn parse_request(b: &Backend, params: &[Value]) -> RpcResult<(u64, Vec<Item>)> {
    let hash = params
        .first()
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("block hash expected"))?;
    if params.get(2).is_some_and(|c| !c.is_null()) {
        return Err(invalid("child tries are not archived"));
    }
    let items = parse_items(params.get(1))?;
    let number = b.number_of(&parse_hash(hash)?).await?;
    Ok((number, items))
}

async fn send_events(
    b: &Backend,
    sink: &SubscriptionSink,
    number: u64,
    items: &[Item],
) -> Result<(), Stop> {
    for item in items {
        send_item(b, sink, item, number).await?;
    }
    Ok(())
}

/// Streams the items' events, then `storageDone` (or one `storageError`), and ends the
/// subscription: a client that takes `storageDone` as the end need not unsubscribe.
async fn storage_subscription(
    pending: PendingSubscriptionSink,
    b: Arc<Backend>,
    params: Vec<Value>,
) {
    let (number, items) = match parse_request(&b, &params).await {
        Ok(request) => request,
        Err(e) => {
            pending.reject(e).await;
            return;
        }
    };
    let Ok(sink) = pending.accept().await else {
        return;
    };
    let last = match send_events(&b, &sink, number, &items).await {
        Ok(()) => json!({ "event": "storageDone" }),
        Err(Stop::Closed) => return,
        Err(Stop::Failed(e)) => json!({ "event": "storageError", "error": e.message() }),
    };
    let _ = send_json(&sink, &last).await;
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
    m.register_async_method(
        "archive_v1_call",
        |p, b, _| async move { call(&b, &p).await },
    )?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use jsonrpsee::rpc_params;

    use super::*;

    use crate::runtime::primitives::AccountId32;
    use crate::runtime::storage::account_key;

    /// Reads one `archive_v1_storage` subscription to its end.
    async fn storage(
        m: &RpcModule<Backend>,
        params: impl jsonrpsee::core::traits::ToRpcParams + Send,
    ) -> Vec<Value> {
        let mut sub = m
            .subscribe_unbounded("archive_v1_storage", params)
            .await
            .unwrap();
        let mut events = Vec::new();
        loop {
            let (e, _) = sub.next::<Value>().await.unwrap().unwrap();
            let last = e["event"] != json!("storage");
            events.push(e);
            if last {
                return events;
            }
        }
    }

    #[tokio::test]
    async fn storage_streams_values_hashes_and_every_descendant_then_done() {
        let dir = tempfile::tempdir().unwrap();
        let node = crate::node::test_node(dir.path(), 2);
        for _ in 0..3 {
            node.produce_block().unwrap();
        }
        let (best, hash) = node.best();
        let b = Backend {
            node: Some(node.clone()),
            archive: None,
            chain_name: "poa-dev".into(),
        };
        let all = b.keys_at(&[], None, 100_000, best).await.unwrap();
        let m = super::super::module(b).unwrap();
        let alice = account_key(&AccountId32(crate::runtime::WELL_KNOWN_DEV_ACCOUNTS[0].1));
        let value = node.storage_at(&alice, best).flatten().unwrap();
        let items = json!([
            {"key": hex0x(&alice), "type": "value"},
            {"key": hex0x(&alice), "type": "hash"},
            {"key": "0x", "type": "descendantsHashes"},
        ]);
        let events = storage(&m, rpc_params![hex0x(&hash), items, Value::Null]).await;
        assert_eq!(
            events[0],
            json!({"event": "storage", "key": hex0x(&alice), "value": hex0x(&value)})
        );
        assert_eq!(events[1]["hash"], json!(hex0x(&blake2_256(&value))));
        let listed: Vec<Value> = events[2..events.len() - 1]
            .iter()
            .map(|e| e["key"].clone())
            .collect();
        assert_eq!(
            listed,
            all.iter().map(|k| json!(hex0x(k))).collect::<Vec<_>>()
        );
        assert_eq!(events.last().unwrap(), &json!({"event": "storageDone"}));

        let bad = json!([{"key": "0x", "type": "everything"}]);
        let refused = m
            .subscribe_unbounded(
                "archive_v1_storage",
                rpc_params![hex0x(&hash), bad, Value::Null],
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(refused.contains("everything"), "{refused}");

        let call: Value = m
            .call(
                "archive_v1_call",
                rpc_params![hex0x(&hash), "Core_version", "0x"],
            )
            .await
            .unwrap();
        assert_eq!(call["success"], json!(true));
        let call: Value = m
            .call(
                "archive_v1_call",
                rpc_params![hex0x(&hash), "Nope_nope", "0x"],
            )
            .await
            .unwrap();
        assert_eq!(call["success"], json!(false));
    }
}
