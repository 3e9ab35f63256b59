//! Per-block state changes of a followed node, from what its RPC offers: each block's state is
//! listed as (key, value hash) pairs, diffed against its parent's list, and the changed keys'
//! values are read at the block. Deleted keys stay in the changes as `None`. Everything is bounded
//! (keys and bytes per listing, bytes per block); what falls outside is not captured, and said.

use std::fmt;
use std::time::Duration;

use futures::StreamExt;
use jsonrpsee::core::client::{ClientT, Subscription, SubscriptionClientT};
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClient;
use serde_json::{json, Value};

use super::{rpc_err, Changes, FollowError};
use crate::rpc::{hex0x, unhex};
use crate::substrate::blake2_256;

/// Keys one `state_getKeysPaged` call lists (1,000 is the most chopsticks and Substrate's
/// default `--rpc-max-response-size` comfortably answer).
pub const STATE_KEYS_PAGE: u32 = 1_000;
/// Keys one `state_queryStorageAt` call reads: small enough that a page of runtime-sized values
/// (a `:code` is a few MB) stays under the response bound.
pub const STATE_VALUES_PAGE: usize = 64;
/// Keys a block's state listing holds at most; keys after the cut are not tracked (memory: one
/// listing per block in flight).
pub const STATE_KEYS_MAX: usize = 200_000;
/// Bytes (keys + hashes) a block's state listing holds at most, for the same reason.
pub const STATE_LISTING_BYTES_MAX: usize = 32 * 1024 * 1024;
/// How long one `archive_v1_storage` listing may take before the block is retried.
pub const STATE_LISTING_TIMEOUT_MS: u64 = 300_000;
/// `archive_v1_storage` events buffered per listing: one per key at most, plus its end.
pub const STATE_EVENTS_BUFFERED: usize = STATE_KEYS_MAX + 16;

/// Where per-block state changes come from, chosen once when following starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateSource {
    /// `archive_v1_storage` `descendantsHashes`: the node hashes the values.
    Archive,
    /// `state_getKeysPaged` + `state_queryStorageAt`: every value is read and hashed here.
    Paged,
    /// The node offers neither: blocks carry no state changes.
    None,
}

impl fmt::Display for StateSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateSource::Archive => "archive_v1_storage (descendantsHashes) + state_queryStorageAt",
            StateSource::Paged => "state_getKeysPaged + state_queryStorageAt",
            StateSource::None => "none",
        })
    }
}

/// One block's state as listed: (key, value hash), sorted by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<(Vec<u8>, [u8; 32])>,
    /// The listing stopped at a bound: keys after the last entry are unknown.
    pub cut: bool,
}

impl Listing {
    fn push(&mut self, key: Vec<u8>, hash: [u8; 32], bytes: &mut usize) -> bool {
        *bytes += key.len() + 32;
        self.entries.push((key, hash));
        if self.entries.len() >= STATE_KEYS_MAX || *bytes >= STATE_LISTING_BYTES_MAX {
            self.cut = true;
        }
        !self.cut
    }

    fn finish(mut self) -> Self {
        self.entries.sort();
        self.entries.dedup_by(|a, b| a.0 == b.0);
        self
    }
}

/// What changed from a parent's listing to its child's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    /// Keys new or with another value hash, sorted.
    pub changed: Vec<Vec<u8>>,
    /// Keys gone, sorted.
    pub deleted: Vec<Vec<u8>>,
    /// Set when a listing was cut: keys after this one were not compared.
    pub compared_up_to: Option<Vec<u8>>,
}

/// Compares two sorted listings. When either was cut, only keys up to the smaller of their last
/// keys are compared (beyond it, neither tells what the other lacks).
pub fn diff(parent: &Listing, block: &Listing) -> Diff {
    let last = |l: &Listing| l.entries.last().map(|e| e.0.clone()).unwrap_or_default();
    let bound = match (parent.cut, block.cut) {
        (false, false) => None,
        (true, false) => Some(last(parent)),
        (false, true) => Some(last(block)),
        (true, true) => Some(last(parent).min(last(block))),
    };
    let within = |k: &Vec<u8>| bound.as_ref().is_none_or(|b| k <= b);
    let mut out = Diff {
        compared_up_to: bound.clone(),
        ..Diff::default()
    };
    let (mut p, mut b) = (
        parent.entries.iter().peekable(),
        block.entries.iter().peekable(),
    );
    loop {
        match (p.peek(), b.peek()) {
            (None, None) => break,
            (Some((pk, _)), None) => {
                out.deleted.push(pk.clone());
                p.next();
            }
            (None, Some((bk, _))) => {
                out.changed.push(bk.clone());
                b.next();
            }
            (Some((pk, ph)), Some((bk, bh))) => match pk.cmp(bk) {
                std::cmp::Ordering::Less => {
                    out.deleted.push(pk.clone());
                    p.next();
                }
                std::cmp::Ordering::Greater => {
                    out.changed.push(bk.clone());
                    b.next();
                }
                std::cmp::Ordering::Equal => {
                    if ph != bh {
                        out.changed.push(bk.clone());
                    }
                    p.next();
                    b.next();
                }
            },
        }
    }
    out.changed.retain(within);
    out.deleted.retain(within);
    out
}

/// Picks the state source: `forced` when given, else the first that answers at `hash`.
/// chopsticks lists `archive_v1_storage`, but its descendants listing crashes it (1.5.1), so it
/// is never probed there. A failed connection is an error (detection is retried), a refusal is
/// an answer.
pub async fn detect(
    client: &WsClient,
    hash: &str,
    forced: Option<StateSource>,
) -> Result<StateSource, FollowError> {
    if let Some(s) = forced {
        return Ok(s);
    }
    let methods: Value = answered(
        client
            .request("rpc_methods", rpc_params![])
            .await
            .map_err(rpc_err("rpc_methods")),
    )?
    .unwrap_or_default();
    let version: Value = answered(
        client
            .request("system_version", rpc_params![])
            .await
            .map_err(rpc_err("system_version")),
    )?
    .unwrap_or_default();
    let listed = methods["methods"]
        .as_array()
        .is_some_and(|m| m.iter().any(|m| m == "archive_v1_storage"));
    let chopsticks = version
        .as_str()
        .is_some_and(|v| v.starts_with("chopsticks"));
    if listed && !chopsticks && probe(client, StateSource::Archive, hash).await? {
        return Ok(StateSource::Archive);
    }
    if probe(client, StateSource::Paged, hash).await? {
        return Ok(StateSource::Paged);
    }
    Ok(StateSource::None)
}

/// `Ok(None)` for a call the node refused or answered badly (it does not offer it), the error
/// itself when the node could not be asked.
pub(crate) fn answered<T>(r: Result<T, FollowError>) -> Result<Option<T>, FollowError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(FollowError::Refused { .. } | FollowError::State { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether listing one key and reading its value work at `hash`.
async fn probe(client: &WsClient, source: StateSource, hash: &str) -> Result<bool, FollowError> {
    let listed = match source {
        StateSource::Archive => answered(list_archive(client, hash, b":code").await)?
            .map(|l| l.entries.into_iter().map(|e| e.0).collect::<Vec<_>>()),
        StateSource::Paged => answered(keys_page(client, hash, &[], None, 1).await)?.map(|p| p.0),
        StateSource::None => None,
    };
    let Some(keys) = listed else {
        return Ok(false);
    };
    Ok(answered(values(client, hash, &keys).await)?.is_some())
}

/// The state at `hash` as (key, value hash) pairs.
pub async fn listing(
    client: &WsClient,
    source: StateSource,
    hash: &str,
) -> Result<Listing, FollowError> {
    match source {
        StateSource::Archive => list_archive(client, hash, &[]).await,
        StateSource::Paged => list_paged(client, hash, &[]).await,
        StateSource::None => Ok(Listing::default()),
    }
}

fn bad_at(hash: &str) -> impl Fn(String) -> FollowError + '_ {
    move |reason| FollowError::State {
        hash: hash.to_string(),
        reason,
    }
}

/// `archive_v1_storage` `descendantsHashes` under `prefix`, read until `storageDone`.
async fn list_archive(
    client: &WsClient,
    hash: &str,
    prefix: &[u8],
) -> Result<Listing, FollowError> {
    let bad = bad_at(hash);
    let items = json!([{"key": hex0x(prefix), "type": "descendantsHashes"}]);
    let mut sub: Subscription<Value> = client
        .subscribe(
            "archive_v1_storage",
            rpc_params![hash, items, Value::Null],
            "archive_v1_stopStorage",
        )
        .await
        .map_err(rpc_err("archive_v1_storage"))?;
    let mut out = Listing::default();
    let mut bytes = 0usize;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(STATE_LISTING_TIMEOUT_MS);
    loop {
        let event = match tokio::time::timeout_at(deadline, sub.next()).await {
            Err(_) => {
                return Err(bad(format!(
                    "listing took over {STATE_LISTING_TIMEOUT_MS} ms"
                )))
            }
            Ok(None) => return Err(bad("archive_v1_storage ended before storageDone".into())),
            Ok(Some(Err(e))) => return Err(bad(format!("archive_v1_storage event: {e}"))),
            Ok(Some(Ok(v))) => v,
        };
        // Some servers send one event per key, the spec's earlier drafts a list of items.
        let kind = event
            .get("event")
            .or_else(|| event.get("type"))
            .and_then(Value::as_str);
        match kind {
            Some("storage") => {
                let items = match event.get("items").and_then(Value::as_array) {
                    Some(items) => items.clone(),
                    None => vec![event.clone()],
                };
                for item in &items {
                    let (key, value_hash) = storage_item(item).map_err(&bad)?;
                    if !out.push(key, value_hash, &mut bytes) {
                        return Ok(out.finish());
                    }
                }
            }
            Some("storageDone") => return Ok(out.finish()),
            Some("storageError") => {
                return Err(bad(format!("archive_v1_storage: {}", event["error"])))
            }
            _ => {}
        }
    }
}

fn storage_item(item: &Value) -> Result<(Vec<u8>, [u8; 32]), String> {
    let field = |name: &str| {
        item.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("storage event without {name}: {item}"))
    };
    let key = unhex(field("key")?)?;
    let hash = unhex(field("hash")?)?;
    let hash = <[u8; 32]>::try_from(hash.as_slice())
        .map_err(|_| format!("value hash of {} bytes, not 32", hash.len()))?;
    Ok((key, hash))
}

/// One page of keys under `prefix` after `start`, keeping only keys that start with `prefix`
/// and strictly increase (chopsticks repeats a key that equals the prefix).
async fn keys_page(
    client: &WsClient,
    hash: &str,
    prefix: &[u8],
    start: Option<&[u8]>,
    count: u32,
) -> Result<(Vec<Vec<u8>>, bool), FollowError> {
    let page: Vec<String> = client
        .request(
            "state_getKeysPaged",
            rpc_params![hex0x(prefix), count, start.map(hex0x), hash],
        )
        .await
        .map_err(rpc_err("state_getKeysPaged"))?;
    let full = page.len() >= count as usize;
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(page.len());
    for k in &page {
        let k = unhex(k).map_err(bad_at(hash))?;
        let after = out.last().map(Vec::as_slice).or(start);
        if k.starts_with(prefix) && after.is_none_or(|a| k.as_slice() > a) {
            out.push(k);
        }
    }
    // A page that repeats or goes backwards is not a page to continue from: the listing ends.
    let more = full && out.len() == page.len();
    Ok((out, more))
}

/// `state_getKeysPaged` under `prefix`, each page's values read and hashed here.
async fn list_paged(client: &WsClient, hash: &str, prefix: &[u8]) -> Result<Listing, FollowError> {
    let mut out = Listing::default();
    let mut bytes = 0usize;
    let mut start: Option<Vec<u8>> = None;
    loop {
        let (keys, more) =
            keys_page(client, hash, prefix, start.as_deref(), STATE_KEYS_PAGE).await?;
        start = keys.last().cloned();
        for (key, value) in values(client, hash, &keys).await? {
            // A key listed but without a value (removed meanwhile on a racing node) is absent.
            if let Some(v) = value {
                if !out.push(key, blake2_256(&v), &mut bytes) {
                    return Ok(out.finish());
                }
            }
        }
        if !more {
            return Ok(out.finish());
        }
    }
}

/// Pages of values read at once.
const VALUE_PAGES_IN_FLIGHT: usize = 4;

/// The values of `keys` at `hash` (`None`: absent), in the order of `keys`.
pub async fn values(
    client: &WsClient,
    hash: &str,
    keys: &[Vec<u8>],
) -> Result<Changes, FollowError> {
    // Owned pages: a closure over borrowed chunks would make the caller's future unprovably Send.
    let pages: Vec<Vec<Vec<u8>>> = keys.chunks(STATE_VALUES_PAGE).map(<[_]>::to_vec).collect();
    let pages: Vec<Result<Changes, FollowError>> = futures::stream::iter(pages)
        .map(|page| values_page(client, hash, page))
        .buffered(VALUE_PAGES_IN_FLIGHT)
        .collect()
        .await;
    let mut out = Vec::with_capacity(keys.len());
    for page in pages {
        out.extend(page?);
    }
    Ok(out)
}

async fn values_page(
    client: &WsClient,
    hash: &str,
    page: Vec<Vec<u8>>,
) -> Result<Changes, FollowError> {
    let bad = bad_at(hash);
    let hex_keys: Vec<String> = page.iter().map(|k| hex0x(k)).collect();
    let sets: Vec<Value> = client
        .request("state_queryStorageAt", rpc_params![hex_keys, hash])
        .await
        .map_err(rpc_err("state_queryStorageAt"))?;
    let mut found = std::collections::HashMap::new();
    for set in &sets {
        let changes: Vec<(String, Option<String>)> = serde_json::from_value(set["changes"].clone())
            .map_err(|e| bad(format!("state_queryStorageAt: {e}")))?;
        for (k, v) in changes {
            let v = v.map(|v| unhex(&v)).transpose().map_err(&bad)?;
            found.insert(unhex(&k).map_err(&bad)?, v);
        }
    }
    Ok(page
        .into_iter()
        .map(|k| {
            let v = found.remove(&k).flatten();
            (k, v)
        })
        .collect())
}

/// The whole state at `hash` as changes from nothing (a first archived block): `state_getPairs`
/// where served, else the keys page by page. `None` when the node offers neither.
pub async fn full_state(client: &WsClient, hash: &str) -> Result<Option<Changes>, FollowError> {
    let bad = bad_at(hash);
    let pairs = client
        .request::<Vec<(String, String)>, _>("state_getPairs", rpc_params!["0x", hash])
        .await
        .map_err(rpc_err("state_getPairs"));
    if let Err(e @ FollowError::Rpc { .. }) = pairs {
        return Err(e);
    }
    if let Ok(pairs) = pairs {
        let mut out = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            out.push((unhex(&k).map_err(&bad)?, Some(unhex(&v).map_err(&bad)?)));
        }
        out.sort();
        return Ok(Some(out));
    }
    let mut keys: Vec<Vec<u8>> = Vec::new();
    loop {
        let start = keys.last().cloned();
        let (page, more) =
            match keys_page(client, hash, &[], start.as_deref(), STATE_KEYS_PAGE).await {
                Ok(page) => page,
                Err(FollowError::Refused { .. }) if keys.is_empty() => return Ok(None),
                Err(e) => return Err(e),
            };
        keys.extend(page);
        if !more || keys.len() >= STATE_KEYS_MAX {
            break;
        }
    }
    let mut out = values(client, hash, &keys).await?;
    out.retain(|(_, v)| v.is_some());
    out.sort();
    Ok(Some(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    type Kv = BTreeMap<Vec<u8>, Vec<u8>>;

    fn listing(entries: &[(&str, u8)], cut: bool) -> Listing {
        Listing {
            entries: entries
                .iter()
                .map(|(k, h)| (k.as_bytes().to_vec(), [*h; 32]))
                .collect(),
            cut,
        }
    }

    fn keys(k: &[&str]) -> Vec<Vec<u8>> {
        k.iter().map(|k| k.as_bytes().to_vec()).collect()
    }

    #[test]
    fn diff_finds_new_changed_and_deleted_keys() {
        let parent = listing(&[("a", 1), ("b", 2), ("c", 3), ("e", 5)], false);
        let block = listing(&[("b", 2), ("c", 9), ("d", 4), ("e", 5), ("f", 6)], false);
        let d = diff(&parent, &block);
        assert_eq!(d.changed, keys(&["c", "d", "f"]));
        assert_eq!(d.deleted, keys(&["a"]));
        assert_eq!(d.compared_up_to, None);
        assert_eq!(diff(&block, &block), Diff::default());
    }

    #[test]
    fn diff_of_cut_listings_compares_only_up_to_the_shorter_cut() {
        // The parent was cut after "c": "d" and "e" in the block are not known to be new.
        let parent = listing(&[("a", 1), ("b", 2), ("c", 3)], true);
        let block = listing(&[("a", 1), ("c", 7), ("d", 4), ("e", 5)], false);
        let d = diff(&parent, &block);
        assert_eq!(d.changed, keys(&["c"]));
        assert_eq!(d.deleted, keys(&["b"]));
        assert_eq!(d.compared_up_to, Some(b"c".to_vec()));
        // Both cut: the smaller last key bounds the comparison.
        let block = listing(&[("a", 9), ("b", 2)], true);
        let d = diff(&parent, &block);
        assert_eq!((d.changed, d.deleted), (keys(&["a"]), vec![]));
    }

    #[test]
    fn a_listing_is_cut_at_its_key_bound() {
        let mut l = Listing::default();
        let mut bytes = 0;
        let mut kept = 0;
        for i in 0..STATE_KEYS_MAX + 5 {
            kept += 1;
            if !l.push((i as u64).to_be_bytes().to_vec(), [0; 32], &mut bytes) {
                break;
            }
        }
        assert_eq!(kept, STATE_KEYS_MAX);
        assert!(l.cut);
    }

    /// A node serving `states` (by block hash) the way the follower reads them: per-key
    /// `archive_v1_storage` events (chopsticks' shape) when `archive`, `state_getKeysPaged`
    /// (repeating a key equal to the prefix, as chopsticks does) and `state_queryStorageAt`.
    async fn fake_node(
        states: Vec<(&'static str, Kv)>,
        archive: bool,
    ) -> (jsonrpsee::server::ServerHandle, WsClient) {
        use jsonrpsee::server::{RpcModule, Server, SubscriptionMessage};
        let states: BTreeMap<String, Kv> = states
            .into_iter()
            .map(|(h, s)| (h.to_string(), s))
            .collect();
        let mut m = RpcModule::new(states);
        m.register_method("system_version", |_, _, _| "fake-1")
            .unwrap();
        m.register_method("rpc_methods", move |_, _, _| {
            let mut methods = vec!["state_getKeysPaged", "state_queryStorageAt"];
            if archive {
                methods.push("archive_v1_storage");
            }
            json!({"methods": methods})
        })
        .unwrap();
        m.register_method("state_getKeysPaged", |p, st, _| {
            let (prefix, count, start, hash): (String, usize, Option<String>, String) =
                p.parse().unwrap();
            let (prefix, start) = (unhex(&prefix).unwrap(), start.map(|s| unhex(&s).unwrap()));
            if st[&hash].contains_key(&prefix) {
                return vec![hex0x(&prefix); count];
            }
            st[&hash]
                .keys()
                .filter(|k| k.starts_with(&prefix) && start.as_ref().is_none_or(|s| *k > s))
                .take(count)
                .map(|k| hex0x(k))
                .collect::<Vec<_>>()
        })
        .unwrap();
        m.register_method("state_queryStorageAt", |p, st, _| {
            let (keys, hash): (Vec<String>, String) = p.parse().unwrap();
            let changes: Vec<Value> = keys
                .iter()
                .map(|k| json!([k, st[&hash].get(&unhex(k).unwrap()).map(|v| hex0x(v))]))
                .collect();
            json!([{"block": hash, "changes": changes}])
        })
        .unwrap();
        if archive {
            m.register_subscription(
                "archive_v1_storage",
                "archive_v1_storageEvent",
                "archive_v1_stopStorage",
                |p, pending, st, _| async move {
                    let (hash, items, _): (String, Vec<Value>, Value) = p.parse().unwrap();
                    let prefix = unhex(items[0]["key"].as_str().unwrap()).unwrap();
                    let sink = pending.accept().await.unwrap();
                    let send = |v: Value| {
                        SubscriptionMessage::from(serde_json::value::to_raw_value(&v).unwrap())
                    };
                    for (k, v) in st[&hash].range(prefix.clone()..) {
                        if !k.starts_with(&prefix) {
                            break;
                        }
                        let ev = json!({"event": "storage", "key": hex0x(k), "hash": hex0x(&blake2_256(v))});
                        sink.send(send(ev)).await.unwrap();
                    }
                    sink.send(send(json!({"event": "storageDone"}))).await.unwrap();
                },
            )
            .unwrap();
        }
        let server = Server::builder().build("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let handle = server.start(m);
        let client = jsonrpsee::ws_client::WsClientBuilder::default()
            .build(format!("ws://{addr}"))
            .await
            .unwrap();
        (handle, client)
    }

    fn state(pairs: &[(&[u8], &[u8])]) -> Kv {
        pairs
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect()
    }

    #[tokio::test]
    async fn archive_and_paged_listings_give_the_same_changes() {
        let parent = state(&[
            (b":code", b"wasm"),
            (b"a", b"1"),
            (b"b", b"2"),
            (b"c", b"3"),
        ]);
        let block = state(&[
            (b":code", b"wasm"),
            (b"a", b"1"),
            (b"b", b"22"),
            (b"d", b"4"),
        ]);
        let (_server, client) = fake_node(vec![("0xp", parent), ("0xb", block)], true).await;
        assert_eq!(
            detect(&client, "0xb", None).await.unwrap(),
            StateSource::Archive
        );
        let mut diffs = Vec::new();
        for source in [StateSource::Archive, StateSource::Paged] {
            let p = super::listing(&client, source, "0xp").await.unwrap();
            let b = super::listing(&client, source, "0xb").await.unwrap();
            assert_eq!(p.entries.len(), 4, "{source}");
            diffs.push(diff(&p, &b));
        }
        assert_eq!(diffs[0], diffs[1]);
        assert_eq!(diffs[0].changed, keys(&["b", "d"]));
        assert_eq!(diffs[0].deleted, keys(&["c"]));
        let got = values(&client, "0xb", &diffs[0].changed).await.unwrap();
        assert_eq!(
            got,
            vec![
                (b"b".to_vec(), Some(b"22".to_vec())),
                (b"d".to_vec(), Some(b"4".to_vec()))
            ]
        );
        let full = full_state(&client, "0xp").await.unwrap().unwrap();
        assert_eq!(full.len(), 4);
    }

    #[tokio::test]
    async fn a_page_repeating_its_prefix_key_ends_the_listing() {
        let (_server, client) = fake_node(vec![("0xb", state(&[(b":code", b"w")]))], false).await;
        let (page, more) = keys_page(&client, "0xb", b":code", None, STATE_KEYS_PAGE)
            .await
            .unwrap();
        assert_eq!((page, more), (keys(&[":code"]), false));
        assert_eq!(
            detect(&client, "0xb", None).await.unwrap(),
            StateSource::Paged
        );
    }

    #[tokio::test]
    async fn a_node_offering_no_listing_is_detected_as_none() {
        use jsonrpsee::server::{RpcModule, Server};
        let server = Server::builder().build("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let _handle = server.start(RpcModule::new(()));
        let client = jsonrpsee::ws_client::WsClientBuilder::default()
            .build(format!("ws://{addr}"))
            .await
            .unwrap();
        assert_eq!(
            detect(&client, "0xb", None).await.unwrap(),
            StateSource::None
        );
        assert_eq!(full_state(&client, "0xb").await.unwrap(), None);
        drop(client);
    }
}
