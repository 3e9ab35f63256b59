//! Runtime calls answered from what the archive keeps about a block's runtime, for any chain it
//! archived: `Core_version` from the archived runtime-version JSON and `Metadata_metadata*` from
//! the archived metadata (the reserved keys of `substrate.rs`). Clients such as subxt ask these
//! through `state_call` at the block they read, to pick the metadata that decodes it; an archive
//! has no runtime to execute, but it has exactly these answers.

use parity_scale_codec::{Compact, Encode};
use serde_json::Value;

/// Why an archived runtime call cannot be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchivedCallError {
    /// The archived runtime version is not the JSON Substrate's `state_getRuntimeVersion` returns.
    #[error("archived runtime version is malformed: {0}")]
    BadVersion(String),
    /// The archived metadata does not start with the `meta` magic and a version byte.
    #[error("archived metadata is malformed: {0}")]
    BadMetadata(String),
    /// Only runtime calls answerable from archived data are served.
    #[error("runtime call {0} is not served from the archive (only Core_version and Metadata_*)")]
    Unsupported(String),
}

/// First bytes of `RuntimeMetadataPrefixed`: "meta", then the version byte.
const METADATA_MAGIC: &[u8; 4] = b"meta";

fn field_u32(v: &Value, name: &str) -> Result<u32, ArchivedCallError> {
    v.get(name)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| ArchivedCallError::BadVersion(format!("{name} is not a u32")))
}

fn field_str<'a>(v: &'a Value, name: &str) -> Result<&'a str, ArchivedCallError> {
    v.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| ArchivedCallError::BadVersion(format!("{name} is not a string")))
}

/// One `apis` entry, `["0x<8-byte id>", version]`.
fn api_entry(entry: &Value) -> Result<([u8; 8], u32), ArchivedCallError> {
    let bad = || ArchivedCallError::BadVersion(format!("apis entry {entry} is not [id, version]"));
    let id = entry.get(0).and_then(Value::as_str).ok_or_else(bad)?;
    let id = hex::decode(id.trim_start_matches("0x")).map_err(|_| bad())?;
    let id: [u8; 8] = id.try_into().map_err(|_| bad())?;
    let version = entry
        .get(1)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(bad)?;
    Ok((id, version))
}

/// `Core_version`'s answer: the SCALE `RuntimeVersion` of the archived JSON.
pub fn core_version(json: &[u8]) -> Result<Vec<u8>, ArchivedCallError> {
    let v: Value =
        serde_json::from_slice(json).map_err(|e| ArchivedCallError::BadVersion(e.to_string()))?;
    let apis = v
        .get("apis")
        .and_then(Value::as_array)
        .ok_or_else(|| ArchivedCallError::BadVersion("apis is not a list".into()))?
        .iter()
        .map(api_entry)
        .collect::<Result<Vec<_>, _>>()?;
    // `stateVersion` was once `systemVersion`; runtimes before either have neither (0).
    let state_version = v
        .get("stateVersion")
        .or_else(|| v.get("systemVersion"))
        .and_then(Value::as_u64)
        .unwrap_or(0) as u8;
    let mut out = Vec::new();
    field_str(&v, "specName")?.encode_to(&mut out);
    field_str(&v, "implName")?.encode_to(&mut out);
    field_u32(&v, "authoringVersion")?.encode_to(&mut out);
    field_u32(&v, "specVersion")?.encode_to(&mut out);
    field_u32(&v, "implVersion")?.encode_to(&mut out);
    apis.encode_to(&mut out);
    field_u32(&v, "transactionVersion")?.encode_to(&mut out);
    state_version.encode_to(&mut out);
    Ok(out)
}

/// The metadata version byte of archived `RuntimeMetadataPrefixed` bytes.
pub fn metadata_version(metadata: &[u8]) -> Result<u32, ArchivedCallError> {
    match metadata {
        [m0, m1, m2, m3, version, ..] if [*m0, *m1, *m2, *m3] == *METADATA_MAGIC => {
            Ok(u32::from(*version))
        }
        _ => Err(ArchivedCallError::BadMetadata(
            "no \"meta\" magic and version byte".into(),
        )),
    }
}

/// `OpaqueMetadata` as runtime calls return it: a SCALE `Vec<u8>` of the prefixed metadata.
fn opaque(metadata: &[u8]) -> Vec<u8> {
    let mut out = Compact(metadata.len() as u32).encode();
    out.extend_from_slice(metadata);
    out
}

/// Answers runtime call `method` with SCALE `params` from the archived version JSON and
/// metadata of the block it is asked at.
pub fn answer(
    method: &str,
    params: &[u8],
    version_json: &[u8],
    metadata: &[u8],
) -> Result<Vec<u8>, ArchivedCallError> {
    match method {
        "Core_version" => core_version(version_json),
        "Metadata_metadata" => {
            metadata_version(metadata)?;
            Ok(opaque(metadata))
        }
        "Metadata_metadata_versions" => Ok(vec![metadata_version(metadata)?].encode()),
        "Metadata_metadata_at_version" => {
            let asked = <[u8; 4]>::try_from(params)
                .map(u32::from_le_bytes)
                .map_err(|_| {
                    ArchivedCallError::Unsupported(format!("{method} with {params:02x?}"))
                })?;
            let held = metadata_version(metadata)?;
            // `Option<OpaqueMetadata>`: the option tag, then the opaque bytes as they are.
            Ok(match asked == held {
                true => [vec![1], opaque(metadata)].concat(),
                false => vec![0],
            })
        }
        _ => Err(ArchivedCallError::Unsupported(method.to_string())),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use parity_scale_codec::Decode;

    const VERSION: &str = r#"{"specName":"statemine","implName":"statemine","authoringVersion":1,
        "specVersion":900,"implVersion":0,"apis":[["0xdf6acb689907609b",4],["0x37e397fc7c91f5e4",2]],
        "transactionVersion":11,"stateVersion":0}"#;

    #[derive(Decode, Debug, PartialEq)]
    struct RuntimeVersion {
        spec_name: String,
        impl_name: String,
        authoring_version: u32,
        spec_version: u32,
        impl_version: u32,
        apis: Vec<([u8; 8], u32)>,
        transaction_version: u32,
        state_version: u8,
    }

    #[test]
    fn core_version_is_the_scale_runtime_version_of_the_json() {
        let bytes = answer("Core_version", &[], VERSION.as_bytes(), b"meta\x0e").unwrap();
        let v = RuntimeVersion::decode(&mut &bytes[..]).unwrap();
        assert_eq!(v.spec_name, "statemine");
        assert_eq!((v.spec_version, v.transaction_version), (900, 11));
        assert_eq!(
            v.apis[0],
            (
                hex::decode("df6acb689907609b").unwrap().try_into().unwrap(),
                4
            )
        );
        assert_eq!(v.apis.len(), 2);
    }

    #[test]
    fn metadata_calls_wrap_the_archived_bytes() {
        let meta = b"meta\x0e\x01\x02\x03".to_vec();
        let opaque = answer("Metadata_metadata", &[], VERSION.as_bytes(), &meta).unwrap();
        assert_eq!(Vec::<u8>::decode(&mut &opaque[..]).unwrap(), meta);
        let versions = answer("Metadata_metadata_versions", &[], b"", &meta).unwrap();
        assert_eq!(Vec::<u32>::decode(&mut &versions[..]).unwrap(), vec![14]);
        let at14 = answer(
            "Metadata_metadata_at_version",
            &14u32.to_le_bytes(),
            b"",
            &meta,
        )
        .unwrap();
        assert_eq!(
            Option::<Vec<u8>>::decode(&mut &at14[..]).unwrap(),
            Some(meta.clone())
        );
        let at15 = answer(
            "Metadata_metadata_at_version",
            &15u32.to_le_bytes(),
            b"",
            &meta,
        )
        .unwrap();
        assert_eq!(Option::<Vec<u8>>::decode(&mut &at15[..]).unwrap(), None);
    }

    #[test]
    fn bad_archived_data_and_other_calls_are_named() {
        assert!(matches!(
            answer("Core_version", &[], b"{}", b"meta\x0e"),
            Err(ArchivedCallError::BadVersion(_))
        ));
        assert!(matches!(
            answer("Metadata_metadata", &[], b"", b"xx"),
            Err(ArchivedCallError::BadMetadata(_))
        ));
        assert_eq!(
            answer("AccountNonceApi_account_nonce", &[], b"", b""),
            Err(ArchivedCallError::Unsupported(
                "AccountNonceApi_account_nonce".into()
            ))
        );
    }
}
