//! The starting corpus: small valid inputs made with the crates' own encoders, one set per target,
//! each prefixed with the control byte its target reads. `examples/seeds.rs` writes them under
//! `corpus/<target>/`; the corpus test replays them.

use archiver::manifest::{seal_manifest_record, Manifest, Placement, CIPHER_AES_256_GCM};
use archiver::record::SegmentHeader;
use archiver::state_index::Entry;
use archiver::{BlockRecord, MasterKey, StateChange};
use ed25519_dalek::SigningKey;
use node_plugin::rpc::{header_json, signed_block_json};
use node_plugin::runtime::{signed_transfer, AccountId32, Signer};
use node_plugin::substrate::{Digest, DigestItem};
use node_plugin::{Block, Header, Justifications, AURA_ENGINE_ID, GRANDPA_ENGINE_ID};
use parity_scale_codec::Encode;
use prover::challenge::{respond, Challenge, ShardTree};
use zdb_backend::prove::encode_tree_file;
use zdb_backend::resp::encode_request;
use zdb_backend::server::format::{
    encode_cursor, encode_entry_header, encode_log_header, EntryHeader, NsProps,
};

use crate::scale::{authorities, GENESIS};

type Seeds = Vec<(String, Vec<u8>)>;

fn with(ctl: u8, body: &[u8]) -> Vec<u8> {
    [&[ctl][..], body].concat()
}

/// The seeds of one target (empty for an unknown name).
pub fn seeds(target: &str) -> Seeds {
    let list: Vec<(&str, Vec<u8>)> = match target {
        "resp_request" => resp_request(),
        "resp_reply" => resp_reply(),
        "hoster_format" => hoster_format(),
        "hoster_recovery" => hoster_recovery(),
        "segment_record" => segment_record(),
        "manifest" => manifest(),
        "challenge" => challenge(),
        "tree_file" => tree_file(),
        "scale" => scale(),
        "rpc_params" => rpc_params(),
        "config" => config(),
        "state_index" => state_index(),
        _ => Vec::new(),
    };
    list.into_iter().map(|(n, b)| (n.to_owned(), b)).collect()
}

fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(&mut out, args);
    out
}

fn resp_request() -> Vec<(&'static str, Vec<u8>)> {
    let pipelined = [
        request(&[b"SET", b"k", b"hello"]),
        request(&[b"GET", b"k"]),
        request(&[b"PROVE", b"k", &[7; 58]]),
    ]
    .concat();
    // A 80,000-byte value: 20,000 filler units after the length line.
    let head = b"*2\r\n$3\r\nSET\r\n$80000\r\n";
    let mut large = vec![0xff];
    large.extend_from_slice(&20_000u16.to_le_bytes());
    large.extend_from_slice(&(head.len() as u16).to_le_bytes());
    large.extend_from_slice(head);
    large.extend_from_slice(b"\r\n");
    vec![
        ("get", with(0x7f, &request(&[b"GET", b"k"]))),
        ("pipelined-step4", with(3, &pipelined)),
        (
            "nsset",
            with(16, &request(&[b"NSSET", b"ns", b"password", b"secret"])),
        ),
        ("large-value", large),
    ]
}

fn resp_reply() -> Vec<(&'static str, Vec<u8>)> {
    let scan = b"*2\r\n$17\r\n01234567890123456\r\n*1\r\n*3\r\n$1\r\nk\r\n:5\r\n:7\r\n";
    vec![
        ("status", [&[0x7f, 0][..], b"+OK\r\n"].concat()),
        (
            "mixed",
            [
                &[5, 0][..],
                b"$5\r\nhello\r\n-Key not found\r\n:42\r\n$-1\r\n*-1\r\n",
            ]
            .concat(),
        ),
        ("scan", [&[0x7f, 0][..], scan].concat()),
        (
            "into",
            [
                &[0x7f, 1][..],
                b"$37\r\n0123456789012345678901234567890123456\r\n+OK\r\n",
            ]
            .concat(),
        ),
    ]
}

fn hoster_format() -> Vec<(&'static str, Vec<u8>)> {
    let key = b"shard-key";
    let h = EntryHeader {
        value_crc32: crc32fast::hash(b"value"),
        value_len: 5,
        timestamp: 1_700_000_000,
        key_len: key.len() as u8,
        flags: 0,
    };
    let entry = [&encode_entry_header(&h, key)[..], key, b"value"].concat();
    let mut props = NsProps::new(b"poa-archive");
    props.password = Some(b"secret".to_vec());
    props.maxsize_bytes = 1 << 30;
    vec![
        ("entry", with(0, &entry)),
        ("props", with(1, &props.encode())),
        ("cursor", with(2, &encode_cursor(4096))),
        ("log-header", with(3, &encode_log_header())),
    ]
}

fn hoster_recovery() -> Vec<(&'static str, Vec<u8>)> {
    // Entries as `synthesize_log` reads them: key length, value length, flags, key, value.
    let spec = [
        &[1, 3, 0][..],
        b"a",
        b"one",
        &[2, 0, 0],
        b"bb",
        &[1, 0, 1],
        b"a",
        &[3, 5, 0],
        b"ccc",
        b"three",
    ]
    .concat();
    let raw = crate::hoster_recovery::synthesize_log(&spec);
    vec![
        ("entries", with(2, &spec)),
        ("entries-damaged", with(3, &spec)),
        ("raw-log", with(0, &raw[16..])),
        ("torn-tail", with(0, &raw[16..raw.len() - 2])),
    ]
}

fn block_record(number: u64) -> BlockRecord {
    BlockRecord {
        number,
        hash: [0x11; 32],
        parent_hash: [0x22; 32],
        block: vec![1, 2, 3],
        justification: Some(vec![9]),
        changes: vec![
            StateChange {
                key: b"k".to_vec(),
                value: Some(b"v".to_vec()),
            },
            StateChange {
                key: b"d".to_vec(),
                value: None,
            },
        ],
    }
}

fn segment_record() -> Vec<(&'static str, Vec<u8>)> {
    let header = SegmentHeader {
        segment: 3,
        first_number: 7,
        prev_hash: [0x33; 32],
    };
    let mut segment = header.encode().to_vec();
    block_record(7).encode_into(&mut segment);
    let mut plain = block_record(8);
    plain.justification = None;
    plain.changes.clear();
    plain.encode_into(&mut segment);
    vec![
        ("record", with(0, &block_record(7).encode())),
        ("segment", with(1, &segment)),
    ]
}

pub fn sample_manifest() -> Manifest {
    Manifest {
        segment: 3,
        data_shards: 2,
        parity_shards: 1,
        first_number: 100,
        last_number: 199,
        first_hash: [1; 32],
        last_hash: [2; 32],
        blocks_root: [3; 32],
        segment_hash: [4; 32],
        segment_bytes: 1000,
        cipher: CIPHER_AES_256_GCM,
        compression: 0,
        payload_bytes: 1000,
        frame_plain_bytes: 1008,
        piece_bytes: 1024,
        chunk_bytes: 1024,
        shard_bytes: 1024,
        prev_manifest_hash: [5; 32],
        shard_roots: vec![[6; 32], [7; 32], [8; 32]],
        part_bytes: 1024,
        part_hashes: vec![[9; 32], [10; 32], [11; 32]],
    }
}

fn manifest() -> Vec<(&'static str, Vec<u8>)> {
    let m = sample_manifest();
    let p = Placement {
        segment: 3,
        generation: 2,
        hosters: vec![Some("h1".into()), None, Some("h3".into())],
        versions: vec![0, 0, 1],
    };
    let mb = m.encode();
    let sealed = seal_manifest_record(&MasterKey::from_bytes([7; 32]), &m).unwrap_or_default();
    vec![
        ("manifest", with(0, &mb)),
        ("placement", with(1, &p.encode())),
        ("manifest-record", with(2, &mb)),
        ("placement-record", with(3, &p.encode())),
        ("manifest-sealed", with(4, &sealed)),
    ]
}

fn challenge() -> Vec<(&'static str, Vec<u8>)> {
    let c = Challenge {
        nonce: [3; 32],
        timestamp_ms: 1_795_000_000_000,
        segment: 42,
        shard: 3,
        samples: 4,
    };
    let shard: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let key = SigningKey::from_bytes(&[9; 32]);
    let id = key.verifying_key().to_bytes();
    let tree = ShardTree::from_shard(&shard);
    let chunk = |i: u64| {
        let start = i as usize * 1024;
        shard
            .get(start..(start + 1024).min(shard.len()))
            .map(<[u8]>::to_vec)
    };
    let response = respond(&c, &tree, chunk, &id, &key)
        .map(|r| r.encode())
        .unwrap_or_default();
    vec![
        ("challenge", with(0, &c.encode())),
        ("response", with(4, &response)),
        ("honest", with(7, &[&c.encode()[..], &shard].concat())),
    ]
}

fn state_index() -> Vec<(&'static str, Vec<u8>)> {
    let entry = |v: Option<&[u8]>| with(0, &Entry::for_value(v).encode());
    vec![
        ("deleted", entry(None)),
        ("inline", entry(Some(b"hi"))),
        ("in-block", entry(Some(&[0xab; 200]))),
        ("value", with(1, &[7; 129])),
    ]
}

fn tree_file() -> Vec<(&'static str, Vec<u8>)> {
    let lens = [4096u64, 1000];
    let leaves: Vec<[u8; 32]> = (0..5u8).map(|i| [i; 32]).collect();
    let file = encode_tree_file(&lens, &leaves);
    vec![("two-parts", with(0, &file)), ("stale", with(2, &file))]
}

/// Block 1 of a chain whose authorities are `scale::authorities()`: sealed, one transfer, justified.
fn sample_block() -> (Block, Justifications) {
    let alice = Signer::Ed25519(SigningKey::from_bytes(&[1; 32]));
    let transfer = signed_transfer(&alice, GENESIS, AccountId32([2; 32]), 5, 0, false);
    let extrinsics = vec![transfer];
    let mut header = Header {
        parent_hash: [0x10; 32],
        number: 1,
        state_root: [0x20; 32],
        extrinsics_root: node_plugin::extrinsics_root(&extrinsics),
        digest: Digest {
            logs: vec![DigestItem::PreRuntime(
                AURA_ENGINE_ID,
                7u64.to_le_bytes().to_vec(),
            )],
        },
    };
    let _ = authorities().seal(&mut header, 7);
    let justification = authorities().justify(header.hash(), 1, 3);
    let js = Justifications(vec![(GRANDPA_ENGINE_ID, justification.encode())]);
    (Block { header, extrinsics }, js)
}

fn scale() -> Vec<(&'static str, Vec<u8>)> {
    let (block, js) = sample_block();
    let grandpa = js.get(GRANDPA_ENGINE_ID).unwrap_or_default().to_vec();
    let block_bytes = block.encode();
    let check = [
        &(block_bytes.len() as u32).to_le_bytes()[..],
        &block_bytes,
        &js.encode(),
    ]
    .concat();
    let keys: Vec<[u8; 32]> = authorities()
        .public_keys()
        .iter()
        .map(|k| k.to_bytes())
        .collect();
    vec![
        ("header", with(0, &block.header.encode())),
        ("block", with(1, &block_bytes)),
        ("justifications", with(2, &js.encode())),
        ("grandpa", with(3, &grandpa)),
        ("transfer", with(4, &block.extrinsics[0])),
        ("check-block", with(5, &check)),
        ("authorities", with(6, &keys.encode())),
    ]
}

fn rpc_params() -> Vec<(&'static str, Vec<u8>)> {
    let (block, js) = sample_block();
    let methods = crate::rpc_params::method_names();
    let ctl = |name: &str| -> u8 {
        let i = methods.iter().position(|m| *m == name).unwrap_or(0);
        // Control bytes 0 and 1 pick the JSON forms; methods are picked modulo the list.
        (i + methods.len()) as u8
    };
    let hash = format!("\"0x{}\"", "ab".repeat(32));
    let calls: Vec<(&str, &str, String)> = vec![
        ("get-block-hash", "chain_getBlockHash", "[1]".into()),
        (
            "get-block-hashes",
            "chain_getBlockHash",
            "[[\"0x10\", 2, null]]".into(),
        ),
        ("get-header", "chain_getHeader", format!("[{hash}]")),
        ("get-block", "chain_getBlock", "[]".into()),
        ("get-pairs", "state_getPairs", "[\"0x3a\", null]".into()),
        (
            "get-storage",
            "state_getStorage",
            format!("[\"0x26aa394eea5630e07c48ae0c9558cef7\", {hash}]"),
        ),
        (
            "keys-paged",
            "state_getKeysPaged",
            "[\"0x26aa\", 10, \"0x26aa39\", null]".into(),
        ),
        (
            "query-storage-at",
            "state_queryStorageAt",
            format!("[[\"0x3a\", \"0x26aa\"], {hash}]"),
        ),
        (
            "state-call",
            "state_call",
            "[\"Metadata_metadata_at_version\", \"0x0e000000\"]".into(),
        ),
        ("metadata", "state_getMetadata", format!("[{hash}]")),
        (
            "next-index",
            "system_accountNextIndex",
            "[\"5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY\"]".into(),
        ),
        (
            "runtime-version",
            "state_getRuntimeVersion",
            format!("[{hash}]"),
        ),
        (
            "submit",
            "author_submitExtrinsic",
            format!("[\"0x{}\"]", "00".repeat(8)),
        ),
        (
            "hash-by-height",
            "archive_v1_hashByHeight",
            "[\"0x5\"]".into(),
        ),
        ("archive-header", "archive_v1_header", format!("[{hash}]")),
        ("manifest", "archiver_segmentManifest", "[3]".into()),
        (
            "inclusion-proof",
            "archiver_inclusionProof",
            format!("[{hash}]"),
        ),
        (
            "named-params",
            "chain_getHeader",
            format!("{{\"hash\": {hash}}}"),
        ),
    ];
    let mut out = vec![
        (
            "header-json",
            with(0, header_json(&block.header).to_string().as_bytes()),
        ),
        (
            "signed-block-json",
            with(
                1,
                signed_block_json(&block, Some(&js)).to_string().as_bytes(),
            ),
        ),
    ];
    for (name, method, params) in calls {
        out.push((name, with(ctl(method), params.as_bytes())));
    }
    out
}

const CONFIG: &str = r#"master_key = "0101010101010101010101010101010101010101010101010101010101010101"
data_dir = "data"
segment_size_bytes = 67108864
data_shards = 2
parity_shards = 1
min_parity = 1
durability = "os"
compression = "zstd"

[client]
connections_per_hoster = 2
request_timeout_ms = 1000

[[hosters]]
name = "h1"
address = "127.0.0.1:9901"
domain = "a"

[[hosters]]
name = "h2"
address = "127.0.0.1:9902"
namespace = "ns2"
password = "pw"
public_key = "00"

[[hosters]]
name = "h3"
address = "[::1]:9903"
prover = "127.0.0.1:9913"
admin_password = "admin"
"#;

fn config() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("config", with(0, CONFIG.as_bytes())),
        (
            "hoster-arg",
            with(
                3,
                b"h1=127.0.0.1:9900,domain=eu,namespace=n,password=p,key=00,prover=127.0.0.1:1",
            ),
        ),
    ]
}
