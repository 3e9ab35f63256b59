//! Runtime versions and metadata of a followed node: the version is read at every block; the
//! first archived block and every block whose version differs from its parent's carry the
//! version JSON and the metadata under the reserved state keys, so the archive answers
//! `state_getRuntimeVersion` and `state_getMetadata` at any block it holds.

use jsonrpsee::core::client::ClientT;
use jsonrpsee::rpc_params;
use jsonrpsee::ws_client::WsClient;
use serde_json::Value;

use super::state::answered;
use super::{rpc_err, Changes, FollowError};
use crate::rpc::unhex;
use crate::substrate::{METADATA_KEY, RUNTIME_VERSION_KEY};

/// Which of the two calls the node answers, found once when following starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeCapture {
    pub version: bool,
    pub metadata: bool,
}

impl RuntimeCapture {
    /// Probes both calls at `hash` (an error only when the node could not be asked).
    pub async fn detect(client: &WsClient, hash: &str) -> Result<Self, FollowError> {
        Ok(RuntimeCapture {
            version: answered(version(client, hash).await)?.is_some(),
            metadata: answered(metadata(client, hash).await)?.is_some(),
        })
    }
}

/// `state_getRuntimeVersion` at `hash`.
pub async fn version(client: &WsClient, hash: &str) -> Result<Value, FollowError> {
    let v: Value = client
        .request("state_getRuntimeVersion", rpc_params![hash])
        .await
        .map_err(rpc_err("state_getRuntimeVersion"))?;
    if !v.is_object() {
        return Err(FollowError::State {
            hash: hash.into(),
            reason: format!("state_getRuntimeVersion answered {v}, not an object"),
        });
    }
    Ok(v)
}

/// `state_getMetadata` at `hash` (the `RuntimeMetadataPrefixed` bytes).
pub async fn metadata(client: &WsClient, hash: &str) -> Result<Vec<u8>, FollowError> {
    let bad = |reason: String| FollowError::State {
        hash: hash.into(),
        reason,
    };
    let v: Value = client
        .request("state_getMetadata", rpc_params![hash])
        .await
        .map_err(rpc_err("state_getMetadata"))?;
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("state_getMetadata answered {v}, not hex")))?;
    unhex(s).map_err(bad)
}

/// The reserved-key changes recording a runtime version (and its metadata when captured).
pub fn reserved_changes(version: &Value, metadata: Option<Vec<u8>>) -> Changes {
    // Serializing a `Value` cannot fail (its map keys are strings).
    let json = serde_json::to_vec(version).unwrap_or_default();
    let mut out = vec![(RUNTIME_VERSION_KEY.to_vec(), Some(json))];
    if let Some(m) = metadata {
        out.push((METADATA_KEY.to_vec(), Some(m)));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reserved_changes_carry_the_version_json_and_the_metadata() {
        let v = serde_json::json!({"specName": "statemine", "specVersion": 900});
        let c = reserved_changes(&v, Some(b"meta\x0e".to_vec()));
        assert_eq!(c[0].0, RUNTIME_VERSION_KEY);
        let back: Value = serde_json::from_slice(c[0].1.as_ref().unwrap()).unwrap();
        assert_eq!(back, v);
        assert_eq!(c[1], (METADATA_KEY.to_vec(), Some(b"meta\x0e".to_vec())));
        assert_eq!(reserved_changes(&v, None).len(), 1);
    }
}
