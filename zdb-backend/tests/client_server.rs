//! Client ↔ embedded hoster over real TCP on 127.0.0.1: data commands, large values, passwords,
//! authentication, worm mode, and the protocol edges (payload limit, malformed requests).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use zdb_backend::{
    large_part_key, ClientOptions, Health, HosterConfig, Reply, ZdbClient, ZdbError,
    VALUE_BYTES_MAX,
};

#[tokio::test]
async fn round_trip_of_every_data_command() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let c = client(hoster.addr, "default");
    assert_eq!(c.health(), Health::Unknown);
    c.ping().await.unwrap();
    assert_eq!(c.health(), Health::Up);

    let key = b"\x00binary\xffkey";
    assert_eq!(c.get(key).await.unwrap(), None);
    assert!(!c.exists(key).await.unwrap());
    assert_eq!(c.length(key).await.unwrap(), None);
    assert_eq!(c.check(key).await.unwrap(), None);

    c.set(key, b"value one").await.unwrap();
    assert_eq!(
        c.get(key).await.unwrap().as_deref(),
        Some(&b"value one"[..])
    );
    assert!(c.exists(key).await.unwrap());
    assert_eq!(c.length(key).await.unwrap(), Some(9));
    assert_eq!(c.check(key).await.unwrap(), Some(true));

    // An empty value is a value.
    c.set(b"empty", b"").await.unwrap();
    assert_eq!(c.get(b"empty").await.unwrap(), Some(Vec::new()));

    // Overwrite, then delete; deleting again is still success for the client.
    c.set(key, b"value two!").await.unwrap();
    assert_eq!(c.length(key).await.unwrap(), Some(10));
    let info = c.ns_info().await.unwrap();
    assert_eq!(info.name, "default");
    assert_eq!(info.entries, 2);
    assert_eq!(info.data_size_bytes, 10);
    assert_eq!(info.mode, "userkey");
    assert!(info.public && !info.password && !info.worm);
    c.del(key).await.unwrap();
    c.del(key).await.unwrap();
    assert_eq!(c.get(key).await.unwrap(), None);
    assert_eq!(c.ns_info().await.unwrap().entries, 1);

    // Invalid keys are refused before anything is sent.
    assert!(matches!(
        c.get(b"").await,
        Err(ZdbError::InvalidKey { len: 0, .. })
    ));
    assert!(matches!(
        c.set(&[1u8; 256], b"v").await,
        Err(ZdbError::InvalidKey { len: 256, .. })
    ));
    c.set(&[1u8; 255], b"v").await.unwrap();
    hoster.stop().await;
}

#[tokio::test]
async fn identical_set_is_nil_and_success() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let c = client(hoster.addr, "default");
    assert_eq!(
        c.command(&[b"SET", b"k", b"same"]).await.unwrap(),
        Reply::Bulk(b"k".to_vec())
    );
    // 0-db answers nil when the stored bytes are identical; nothing is written.
    assert_eq!(
        c.command(&[b"SET", b"k", b"same"]).await.unwrap(),
        Reply::Nil
    );
    c.set(b"k", b"same").await.unwrap();
    // Same length, different bytes: written.
    assert_eq!(
        c.command(&[b"SET", b"k", b"SAME"]).await.unwrap(),
        Reply::Bulk(b"k".to_vec())
    );
    assert_eq!(c.get(b"k").await.unwrap().unwrap(), b"SAME");
    hoster.stop().await;
}

#[tokio::test]
async fn payload_limit_is_exactly_8_mib_and_client_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let c = client(hoster.addr, "default");
    let max = pattern(VALUE_BYTES_MAX, 1);
    c.set(b"max", &max).await.unwrap();
    assert_eq!(c.get(b"max").await.unwrap().unwrap(), max);

    let over = pattern(VALUE_BYTES_MAX + 1, 2);
    // Refused by the client before sending...
    assert!(matches!(
        c.set(b"over", &over).await,
        Err(ZdbError::PayloadTooBig { len, .. }) if len == VALUE_BYTES_MAX as u64 + 1
    ));
    // ...and by the server when sent anyway: the error arrives, the connection is dropped.
    assert!(matches!(
        c.command(&[b"SET", b"over", &over]).await,
        Err(ZdbError::PayloadTooBig { .. })
    ));
    // The next calls run on a new connection.
    c.set(b"after", b"fine").await.unwrap();
    assert_eq!(c.get(b"after").await.unwrap().unwrap(), b"fine");
    assert_eq!(c.get(b"over").await.unwrap(), None);
    hoster.stop().await;
}

#[tokio::test]
async fn payload_too_big_reply_then_close_on_raw_connection() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let mut s = TcpStream::connect(hoster.addr).await.unwrap();
    s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8388609\r\n")
        .await
        .unwrap();
    let reply = read_until_quiet(&mut s).await;
    assert_eq!(reply, b"-Payload too big\r\n");
    hoster.stop().await;
}

#[tokio::test]
async fn large_values_are_split_and_reassembled() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let c = client(hoster.addr, "default");
    let len = 20 * 1024 * 1024;
    let value = pattern(len, 3);
    c.set_large(b"big", &value).await.unwrap();
    // 20 MiB = 8 + 8 + 4 MiB, parts under key ‖ u16-LE index.
    assert_eq!(
        c.length(&large_part_key(b"big", 0)).await.unwrap(),
        Some(VALUE_BYTES_MAX as u64)
    );
    assert_eq!(
        c.length(&large_part_key(b"big", 2)).await.unwrap(),
        Some(4 * 1024 * 1024)
    );
    assert!(!c.exists(&large_part_key(b"big", 3)).await.unwrap());
    let back = c.get_large(b"big", len as u64).await.unwrap().unwrap();
    assert!(back == value, "reassembled value differs");

    // Wrong total length, shorter or longer: an error naming the key.
    for wrong in [len as u64 - 1, len as u64 + 1, 8 * 1024 * 1024] {
        match c.get_large(b"big", wrong).await {
            Err(ZdbError::LengthMismatch { key, expected, .. }) => {
                assert_eq!(key, hex::encode(b"big"));
                assert_eq!(expected, wrong);
            }
            other => panic!("length {wrong}: {other:?}"),
        }
    }
    // Missing value, or one part gone: None.
    assert_eq!(c.get_large(b"nothing", 10).await.unwrap(), None);
    c.del(&large_part_key(b"big", 1)).await.unwrap();
    assert_eq!(c.get_large(b"big", len as u64).await.unwrap(), None);

    // Smaller parts (as the archiver stores shards): 200 KiB at 64 KiB = 3 full parts + 8 KiB.
    let shard = pattern(200 * 1024, 5);
    c.set_large_with(b"shard", &shard, 64 * 1024).await.unwrap();
    assert_eq!(
        c.length(&large_part_key(b"shard", 3)).await.unwrap(),
        Some(8 * 1024)
    );
    assert!(!c.exists(&large_part_key(b"shard", 4)).await.unwrap());
    let back = c
        .get_large_with(b"shard", shard.len() as u64, 64 * 1024)
        .await;
    assert!(back.unwrap().unwrap() == shard, "64 KiB parts reassemble");
    assert!(matches!(
        c.get_large_with(b"shard", 190 * 1024, 64 * 1024).await,
        Err(ZdbError::LengthMismatch { .. })
    ));

    // Small and empty values go through the same layout.
    c.set_large(b"small", b"abc").await.unwrap();
    assert_eq!(c.get_large(b"small", 3).await.unwrap().unwrap(), b"abc");
    c.set_large(b"none", b"").await.unwrap();
    assert_eq!(c.get_large(b"none", 0).await.unwrap().unwrap(), b"");
    assert!(matches!(
        c.set_large(&[0u8; 254], b"x").await,
        Err(ZdbError::InvalidKey { .. })
    ));
    hoster.stop().await;
}

#[tokio::test]
async fn namespace_passwords_private_and_public() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let owner_cfg = HosterConfig {
        password: Some("s3cret".into()),
        ..hoster_config(hoster.addr, "shards")
    };
    let owner = client_with(owner_cfg.clone());
    owner.ensure_namespace(false).await.unwrap();
    owner.ensure_namespace(false).await.unwrap(); // idempotent
    owner.set(b"k", b"v").await.unwrap();
    let info = owner.ns_info().await.unwrap();
    // A namespace given a password is made private by `ensure_namespace`.
    assert!(info.password && !info.public);

    // Public + password: readable without the password, not writable.
    let admin = client(hoster.addr, "default");
    admin
        .command(&[b"NSSET", b"shards", b"public", b"1"])
        .await
        .unwrap();
    let reader = client(hoster.addr, "shards");
    assert_eq!(reader.get(b"k").await.unwrap().unwrap(), b"v");
    assert!(matches!(
        reader.set(b"k2", b"v").await,
        Err(ZdbError::ReadOnly { .. })
    ));
    assert!(matches!(
        reader.del(b"k").await,
        Err(ZdbError::ReadOnly { .. })
    ));

    // Private + password: refused without it, and with a wrong one.
    admin
        .command(&[b"NSSET", b"shards", b"public", b"0"])
        .await
        .unwrap();
    let stranger = client(hoster.addr, "shards");
    assert!(matches!(
        stranger.get(b"k").await,
        Err(ZdbError::Protected { .. })
    ));
    let wrong = client_with(HosterConfig {
        password: Some("nope".into()),
        ..hoster_config(hoster.addr, "shards")
    });
    assert!(matches!(
        wrong.get(b"k").await,
        Err(ZdbError::AccessDenied { .. })
    ));
    // A refusal is an answer: the hoster is not Down.
    assert_eq!(wrong.health(), Health::Up);
    let owner_again = client_with(owner_cfg);
    assert_eq!(owner_again.get(b"k").await.unwrap().unwrap(), b"v");

    // Plain-text SELECT password works too (0-db accepts both forms).
    let mut s = TcpStream::connect(hoster.addr).await.unwrap();
    s.write_all(
        b"*3\r\n$6\r\nSELECT\r\n$6\r\nshards\r\n$6\r\ns3cret\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    )
    .await
    .unwrap();
    assert_eq!(read_exactly(&mut s, 12).await, b"+OK\r\n$1\r\nv\r\n");

    // Unknown namespace.
    let lost = client(hoster.addr, "nowhere");
    assert!(matches!(
        lost.get(b"k").await,
        Err(ZdbError::NamespaceNotFound { .. })
    ));
    hoster.stop().await;
}

#[tokio::test]
async fn admin_auth_secure_gates_namespace_creation() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), Some("adminpw")).await;

    let with_admin = client_with(HosterConfig {
        admin_password: Some("adminpw".into()),
        password: Some("nspw".into()),
        ..hoster_config(hoster.addr, "archive")
    });
    with_admin.ensure_namespace(true).await.unwrap();
    with_admin.set(b"k", b"v").await.unwrap();
    let info = with_admin.ns_info().await.unwrap();
    assert!(info.worm && info.password);

    let no_admin = client(hoster.addr, "other");
    assert!(matches!(
        no_admin.ensure_namespace(false).await,
        Err(ZdbError::PermissionDenied { .. })
    ));
    let bad_admin = client_with(HosterConfig {
        admin_password: Some("wrong".into()),
        ..hoster_config(hoster.addr, "other")
    });
    assert!(matches!(
        bad_admin.ensure_namespace(false).await,
        Err(ZdbError::AccessDenied { .. })
    ));

    // Raw protocol: plain AUTH, and the SECURE challenge shape.
    let reply = raw_exchange(
        hoster.addr,
        b"*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n*2\r\n$4\r\nAUTH\r\n$7\r\nadminpw\r\n*3\r\n$4\r\nAUTH\r\n$6\r\nSECURE\r\n$9\r\nCHALLENGE\r\n",
    )
    .await;
    let text = String::from_utf8(reply).unwrap();
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(lines[0], "-Access denied");
    assert_eq!(lines[1], "+OK");
    assert_eq!(lines[2].len(), 17, "nonce: {:?}", lines[2]);
    assert!(lines[2][1..].chars().all(|c| c.is_ascii_hexdigit()));

    // A server without --admin: AUTH is disabled, everyone is admin.
    let dir2 = tempfile::tempdir().unwrap();
    let open = TestHoster::start(dir2.path(), None).await;
    let reply = raw_exchange(open.addr, b"*2\r\n$4\r\nAUTH\r\n$1\r\nx\r\n").await;
    assert_eq!(reply, b"-Authentication disabled\r\n");
    let any = client_with(HosterConfig {
        admin_password: Some("whatever".into()),
        ..hoster_config(open.addr, "fresh")
    });
    any.ensure_namespace(false).await.unwrap();
    any.set(b"a", b"b").await.unwrap();
    open.stop().await;
    hoster.stop().await;
}

#[tokio::test]
async fn worm_refuses_overwrite_and_delete_but_not_identical_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let c = client(hoster.addr, "immutable");
    c.ensure_namespace(true).await.unwrap();
    c.set(b"k", b"v1").await.unwrap();
    // Re-storing the same bytes (a retried upload) is success even though 0-db refuses it.
    c.set(b"k", b"v1").await.unwrap();
    assert!(matches!(
        c.command(&[b"SET", b"k", b"v1"]).await,
        Err(ZdbError::Worm { .. })
    ));
    assert!(matches!(
        c.set(b"k", b"v2").await,
        Err(ZdbError::Worm { .. })
    ));
    assert!(matches!(c.del(b"k").await, Err(ZdbError::Worm { .. })));
    assert_eq!(c.get(b"k").await.unwrap().unwrap(), b"v1");
    hoster.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let cases: &[(&[u8], &[u8])] = &[
        (b"PING\r\n", b"-Malformed request, array expected\r\n"),
        (b"*0\r\n", b"-Missing arguments\r\n"),
        (b"*1025\r\n", b"-Too many arguments\r\n"),
        (b"*1\r\n:5\r\n", b"-Malformed query string\r\n"),
        (b"*1\r\n$-5\r\n", b"-Malformed query string\r\n"),
        (b"*1\r\n$abc\r\n", b"-Malformed query string\r\n"),
        (b"*x\r\n", b"-Malformed query string\r\n"),
        (b"*1\r\n$4\r\nPINGxx", b"-Malformed query string\r\n"),
        (b"*1\r\n$5\r\nBOGUS\r\n", b"-Command not supported\r\n"),
        (b"*1\r\n$0\r\n\r\n", b"-This is not a valid command\r\n"),
        (b"*1\r\n$2\r\npI\r\n", b"+PONG\r\n"),
        (b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n", b"-Invalid argument\r\n"),
        (b"*1\r\n$3\r\nGET\r\n", b"-Unexpected arguments\r\n"),
        (
            b"*2\r\n$4\r\nSCAN\r\n$3\r\nabc\r\n",
            b"-Invalid key format\r\n",
        ),
        (b"*1\r\n$4\r\nSCAN\r\n", b"-No more data\r\n"),
        (
            b"*2\r\n$6\r\nSELECT\r\n$2\r\nzz\r\n",
            b"-Namespace not found\r\n",
        ),
        (
            b"*3\r\n$5\r\nNSNEW\r\n$1\r\na\r\n$1\r\nb\r\n",
            b"-Unexpected arguments\r\n",
        ),
        (
            b"*2\r\n$5\r\nNSNEW\r\n$7\r\ndefault\r\n",
            b"-This name is not allowed\r\n",
        ),
        (
            b"*2\r\n$5\r\nNSNEW\r\n$3\r\na/b\r\n",
            b"-This name is not allowed\r\n",
        ),
    ];
    for (request, expected) in cases {
        let reply = raw_exchange(hoster.addr, request).await;
        assert_eq!(
            String::from_utf8_lossy(&reply),
            String::from_utf8_lossy(expected),
            "request {:?}",
            String::from_utf8_lossy(request)
        );
    }
    // Random garbage, each on its own connection: the server keeps serving.
    for seed in 0..64 {
        let garbage = pattern(1 + (seed as usize * 37) % 600, seed);
        let _ = raw_exchange(hoster.addr, &garbage).await;
    }
    let c = client(hoster.addr, "default");
    c.ping().await.unwrap();
    c.set(b"still", b"alive").await.unwrap();
    hoster.stop().await;
}

#[tokio::test]
async fn scan_nslist_info_dbsize_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let c = client(hoster.addr, "default");
    for i in 0..5u8 {
        c.set(&[b'k', i], &vec![i; i as usize]).await.unwrap();
    }
    assert_eq!(c.command(&[b"DBSIZE"]).await.unwrap(), Reply::Integer(5));
    assert_eq!(
        c.command(&[b"MGET", b"k\x02", b"missing", b"k\x00"])
            .await
            .unwrap(),
        Reply::Array(vec![
            Reply::Bulk(vec![2, 2]),
            Reply::Nil,
            Reply::Bulk(Vec::new())
        ])
    );

    let Reply::Array(first) = c.command(&[b"SCAN"]).await.unwrap() else {
        panic!("SCAN reply is not an array");
    };
    let [Reply::Bulk(cursor), Reply::Array(items)] = first.as_slice() else {
        panic!("SCAN reply shape: {first:?}");
    };
    assert_eq!(cursor.len(), 17);
    assert_eq!(items.len(), 5);
    for (i, item) in items.iter().enumerate() {
        let Reply::Array(triple) = item else {
            panic!("item {item:?}")
        };
        assert_eq!(triple[0], Reply::Bulk(vec![b'k', i as u8]));
        assert_eq!(triple[1], Reply::Integer(i as i64));
        assert!(matches!(triple[2], Reply::Integer(t) if t > 0));
    }
    match c.command(&[b"SCAN", cursor]).await {
        Err(ZdbError::Server { message, .. }) => assert!(message.contains("No more data")),
        other => panic!("expected No more data, got {other:?}"),
    }
    // The typed walk: every live key once, a deleted one gone, the bound enforced.
    c.del(b"k\x03").await.unwrap();
    let keys = c.scan_all(16).await.unwrap();
    assert_eq!(
        keys,
        vec![
            b"k\x00".to_vec(),
            b"k\x01".to_vec(),
            b"k\x02".to_vec(),
            b"k\x04".to_vec()
        ]
    );
    assert!(matches!(
        c.scan_all(2).await,
        Err(ZdbError::UnexpectedReply {
            command: "SCAN",
            ..
        })
    ));
    assert_eq!(c.scan(Some(cursor)).await.unwrap(), None, "past the end");

    c.command(&[b"NSNEW", b"second"]).await.unwrap();
    let Reply::Array(names) = c.command(&[b"NSLIST"]).await.unwrap() else {
        panic!("NSLIST");
    };
    assert!(names.contains(&Reply::Bulk(b"default".to_vec())));
    assert!(names.contains(&Reply::Bulk(b"second".to_vec())));

    let Reply::Bulk(info) = c.command(&[b"INFO"]).await.unwrap() else {
        panic!("INFO");
    };
    assert!(String::from_utf8(info).unwrap().starts_with("# server\n"));
    let Reply::Bulk(nsinfo) = c.command(&[b"NSINFO", b"second"]).await.unwrap() else {
        panic!("NSINFO");
    };
    let nsinfo = String::from_utf8(nsinfo).unwrap();
    for line in [
        "# namespace",
        "entries: 0",
        "data_size_bytes: 0",
        "data_limits_bytes: 0",
        "mode: userkey",
        "public: yes",
        "password: no",
        "worm: no",
    ] {
        assert!(
            nsinfo.lines().any(|l| l == line),
            "{line} missing in {nsinfo}"
        );
    }
    // maxsize is enforced on live payload bytes.
    c.command(&[b"NSSET", b"second", b"maxsize", b"10"])
        .await
        .unwrap();
    let small = client(hoster.addr, "second");
    small.set(b"a", b"12345678").await.unwrap();
    assert!(matches!(
        small.set(b"b", b"123").await,
        Err(ZdbError::NoSpace { .. })
    ));
    small.set(b"a", b"1234567890").await.unwrap();
    assert!(matches!(
        c.command(&[b"NSSET", b"default", b"worm", b"1"]).await,
        Err(ZdbError::Server { .. })
    ));
    hoster.stop().await;
}

#[tokio::test]
async fn many_tasks_share_one_client() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let c = ZdbClient::new(
        hoster_config(hoster.addr, "default"),
        ClientOptions {
            connections_max: 3,
            ..ClientOptions::default()
        },
    );
    let mut tasks = Vec::new();
    for t in 0..24u32 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20u32 {
                let key = format!("t{t}-{i}");
                let value = pattern(100 + (i as usize * 997) % 70_000, t * 100 + i);
                c.set(key.as_bytes(), &value).await.unwrap();
                assert_eq!(c.get(key.as_bytes()).await.unwrap().unwrap(), value);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(c.ns_info().await.unwrap().entries, 24 * 20);
    hoster.stop().await;
}
