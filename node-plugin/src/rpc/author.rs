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
    // Subscribed before submitting, so the block that includes it cannot be missed.
    let mut heads = match &b.node {
        Some(node) => node.subscribe_new_heads(),
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
    let from = node.best().0 + 1;
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
