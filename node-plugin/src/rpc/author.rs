//! Transaction submission: `author_submitExtrinsic` and `author_submitAndWatchExtrinsic`
//! (notifications `ready`, then `{"inBlock": hash}`, then `{"finalized": hash}`; `invalid`
//! when the transaction left the pool without being included).

use std::sync::Arc;

use jsonrpsee::server::{PendingSubscriptionSink, RpcModule};
use jsonrpsee::types::Params;
use serde_json::{json, Value};

use super::{err, hex0x, invalid, opt_string, raw, unhex, Backend, RpcResult};
use super::{ERROR_INVALID_TRANSACTION, ERROR_NOT_A_NODE};
use crate::node::{Node, TxStatus};
use crate::runtime::extrinsic::strip_length_prefix;
use crate::substrate::Hash;

/// Submits the extrinsic in `params` to the node; returns the node and the extrinsic's own
/// bytes (clients send it length-prefixed, as in blocks).
fn submit(p: &Params<'_>, b: &Backend) -> RpcResult<(Node, Vec<u8>, Hash)> {
    let x = opt_string(p, 0)?.ok_or_else(|| invalid("extrinsic hex expected"))?;
    let bytes = unhex(&x).map_err(invalid)?;
    let inner = strip_length_prefix(&bytes).to_vec();
    let node = b.node.clone().ok_or_else(|| {
        err(
            ERROR_NOT_A_NODE,
            "this server serves the archive only; submit to a node",
        )
    })?;
    let hash = node.submit(&inner).map_err(|e| {
        err(
            ERROR_INVALID_TRANSACTION,
            format!("Invalid Transaction: {e}"),
        )
    })?;
    Ok((node, inner, hash))
}

pub(super) fn register(
    m: &mut RpcModule<Backend>,
) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_method("author_submitExtrinsic", |p, b, _| {
        submit(&p, b).map(|(_, _, h)| hex0x(&h))
    })?;
    m.register_subscription(
        "author_submitAndWatchExtrinsic",
        "author_extrinsicUpdate",
        "author_unwatchExtrinsic",
        |p, pending, b, _| async move {
            watch(&p, pending, b).await;
        },
    )?;
    Ok(())
}

async fn send(sink: &jsonrpsee::SubscriptionSink, v: Value) -> bool {
    match raw(&v) {
        Some(msg) => sink.send(msg).await.is_ok(),
        None => false,
    }
}

async fn watch(p: &Params<'_>, pending: PendingSubscriptionSink, b: Arc<Backend>) {
    // Subscribed (and the first block to search noted) before submitting, so the block that
    // includes it cannot be missed.
    let (mut heads, from) = match &b.node {
        Some(node) => (node.subscribe_new_heads(), node.best().0 + 1),
        None => {
            pending
                .reject(err(
                    ERROR_NOT_A_NODE,
                    "this server serves the archive only; submit to a node",
                ))
                .await;
            return;
        }
    };
    let (node, extrinsic, _) = match submit(p, &b) {
        Ok(x) => x,
        Err(e) => {
            pending.reject(e).await;
            return;
        }
    };
    let mut finalized = node.subscribe_finalized();
    let Ok(sink) = pending.accept().await else {
        return;
    };
    if !send(&sink, json!("ready")).await {
        return;
    }
    let in_block = loop {
        tokio::select! {
            _ = sink.closed() => return,
            h = heads.recv() => if let Err(tokio::sync::broadcast::error::RecvError::Closed) = h { return },
        }
        match node.tx_status(&extrinsic, from) {
            Ok(TxStatus::InPool) => continue,
            Ok(TxStatus::InBlock(n, hash)) => break (n, hash),
            Ok(TxStatus::Gone) | Err(_) => {
                let _ = send(&sink, json!("invalid")).await;
                return;
            }
        }
    };
    if !send(&sink, json!({ "inBlock": hex0x(&in_block.1) })).await {
        return;
    }
    loop {
        if node.finalized().0 >= in_block.0 {
            let _ = send(&sink, json!({ "finalized": hex0x(&in_block.1) })).await;
            return;
        }
        tokio::select! {
            _ = sink.closed() => return,
            h = finalized.recv() => if let Err(tokio::sync::broadcast::error::RecvError::Closed) = h { return },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use jsonrpsee::rpc_params;

    use super::*;

    use crate::runtime;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watched_submission_reports_ready_in_block_and_finalized() {
        let dir = tempfile::tempdir().unwrap();
        let node = crate::node::test_node(dir.path(), 0);
        node.produce_block().unwrap();
        let m = super::super::module(Backend {
            node: Some(node.clone()),
            archive: None,
            chain_name: "poa-dev".into(),
        })
        .unwrap();
        let alice = runtime::dev_signer("poa-dev", 0);
        let bob = runtime::dev_signer("poa-dev", 1).account();
        let xt = runtime::signed_transfer(&alice, node.genesis_hash(), bob, 5, 0, true);
        let prefixed = hex0x(&parity_scale_codec::Encode::encode(&xt));
        let mut sub = m
            .subscribe_unbounded(
                "author_submitAndWatchExtrinsic",
                rpc_params![prefixed.clone()],
            )
            .await
            .unwrap();
        let next = |v: Option<Result<(Value, _), _>>| v.unwrap().unwrap().0;
        assert_eq!(next(sub.next::<Value>().await), json!("ready"));
        let producer = node.clone();
        let number = tokio::task::spawn_blocking(move || producer.produce_block())
            .await
            .unwrap()
            .unwrap();
        let hash = hex0x(&node.header(number).unwrap().unwrap().hash());
        assert_eq!(next(sub.next::<Value>().await), json!({ "inBlock": hash }));
        assert_eq!(
            next(sub.next::<Value>().await),
            json!({ "finalized": hash })
        );
        // A replay is refused up front with Substrate's code and the reason.
        let err = m
            .subscribe_unbounded("author_submitAndWatchExtrinsic", rpc_params![prefixed])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("stale nonce"), "{err}");
    }
}
