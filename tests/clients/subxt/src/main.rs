//! `subxt-check URL NUMBER [ACCOUNT_HEX ...]`: reads block NUMBER through subxt 0.51's normal,
//! dynamic API (`OnlineClient::at_block`, `extrinsics().fetch()`, `storage().fetch()`) and prints
//! one JSON object: the block's hash, each extrinsic's pallet, call and decoded fields, and each
//! account's `System.Account` nonce and free balance at that block. The caller (tests/node.rs)
//! compares it with what it submitted and recorded.

use scale_decode::DecodeAsType;
use subxt::dynamic::{self, Value};
use subxt::{OnlineClient, PolkadotConfig};

#[derive(Debug, DecodeAsType)]
struct AccountInfo {
    nonce: u32,
    data: AccountData,
}

#[derive(Debug, DecodeAsType)]
struct AccountData {
    free: u128,
}

fn account_id(hex_str: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_str.trim_start_matches("0x")).map_err(|e| e.to_string())?;
    bytes
        .try_into()
        .map_err(|_| format!("{hex_str}: an account id is 32 bytes"))
}

async fn run(args: Vec<String>) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let [url, number, accounts @ ..] = args.as_slice() else {
        return Err("usage: subxt-check URL NUMBER [ACCOUNT_HEX ...]".into());
    };
    let api = OnlineClient::<PolkadotConfig>::from_insecure_url(url).await?;
    let at = api.at_block(number.parse::<u64>()?).await?;
    let mut extrinsics = Vec::new();
    for ext in at.extrinsics().fetch().await?.iter() {
        let ext = ext?;
        let fields = ext.decode_call_data_fields_unchecked_as::<Value>()?;
        extrinsics.push(serde_json::json!({
            "pallet": ext.pallet_name(),
            "call": ext.call_name(),
            "fields": fields.to_string(),
        }));
    }
    let mut found = serde_json::Map::new();
    for account in accounts {
        let addr = dynamic::storage::<([u8; 32],), AccountInfo>("System", "Account");
        let info = at.storage().fetch(addr, (account_id(account)?,)).await?.decode()?;
        found.insert(
            account.clone(),
            serde_json::json!({ "nonce": info.nonce, "free": info.data.free.to_string() }),
        );
    }
    Ok(serde_json::json!({
        "number": at.block_number(),
        "hash": format!("{:?}", at.block_hash()),
        "extrinsics": extrinsics,
        "accounts": found,
    }))
}

#[tokio::main]
async fn main() {
    match run(std::env::args().skip(1).collect()).await {
        Ok(out) => println!("{out}"),
        Err(e) => {
            eprintln!("subxt-check: {e}");
            std::process::exit(1);
        }
    }
}
