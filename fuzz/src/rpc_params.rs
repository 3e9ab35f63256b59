//! JSON-RPC as the history RPC server and the follower meet it (`node-plugin::rpc`): arbitrary
//! JSON params sent to every method of the server's module (over a backend with neither a node
//! nor an archive, so the param parsers run and the lookups fail cleanly), and the JSON forms of
//! headers and signed blocks a follower reads from a node, with round trips.

use std::sync::OnceLock;

use jsonrpsee::RpcModule;
use node_plugin::rpc::{
    header_from_json, header_json, module, signed_block_from_json, signed_block_json, Backend,
    METHODS,
};
use node_plugin::{Block, Justifications};
use parity_scale_codec::Decode;
use serde_json::Value;

use crate::control;

/// Methods the fuzzer calls: every one but the subscriptions (`author_submitAndWatchExtrinsic`
/// among them), which need a live connection.
pub fn method_names() -> &'static [&'static str] {
    static LIST: OnceLock<Vec<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        METHODS
            .iter()
            .copied()
            .filter(|m| !m.contains("_subscribe") && !m.contains("AndWatch"))
            .collect()
    })
}

fn rpc() -> &'static (RpcModule<Backend>, tokio::runtime::Runtime) {
    static RPC: OnceLock<(RpcModule<Backend>, tokio::runtime::Runtime)> = OnceLock::new();
    RPC.get_or_init(|| {
        let backend = Backend {
            node: None,
            archive: None,
            chain_name: "fuzz".into(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        (module(backend).unwrap(), rt)
    })
}

pub fn run(data: &[u8]) {
    let (ctl, rest) = control(data);
    let Ok(params) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    match ctl {
        0 => {
            if let Ok(h) = header_from_json(&params) {
                assert_eq!(
                    header_from_json(&header_json(&h)).ok(),
                    Some(h),
                    "header JSON round trip"
                );
            }
        }
        1 => {
            if let Ok((block, justifications)) = signed_block_from_json(&params) {
                let decoded = Block::decode(&mut block.as_slice()).unwrap();
                let js = justifications
                    .as_deref()
                    .map(|j| Justifications::decode(&mut &j[..]).unwrap());
                let again = signed_block_from_json(&signed_block_json(&decoded, js.as_ref()));
                assert_eq!(
                    again.ok(),
                    Some((block, justifications)),
                    "block JSON round trip"
                );
            }
        }
        _ => call(
            method_names()[usize::from(ctl) % method_names().len()],
            params,
        ),
    }
}

/// One request with `params`; the answer must be a JSON-RPC response of the same id.
fn call(method: &str, params: Value) {
    let request =
        serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let (module, rt) = rpc();
    let answer = rt.block_on(module.raw_json_request(&request.to_string(), 1));
    let (response, _) = answer.unwrap();
    let response: Value = serde_json::from_str(response.get()).unwrap();
    assert_eq!(response["id"], 7, "{method}: {response}");
    assert!(
        response.get("result").is_some() || response.get("error").is_some(),
        "{method}: {response}"
    );
}
