//! Compatibility check against a real 0-db binary: the same raw requests go to a real `zdb`
//! and to the embedded hoster and their replies are compared byte for byte, then the client's
//! behaviours run against both.
//! `cargo run -p zdb-backend --example real_zdb_compat -- /path/to/zdb`
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use zdb_backend::resp::encode_request;
use zdb_backend::{
    ClientOptions, HosterConfig, HosterServer, HosterServerConfig, NsInfo, Reply, ZdbClient,
    ZdbError, VALUE_BYTES_MAX,
};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_real(
    bin: &str,
    dir: &std::path::Path,
    admin: Option<&str>,
) -> (KillOnDrop, SocketAddr) {
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", "127.0.0.1", "--port", &port.to_string()])
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--index")
        .arg(dir.join("index"))
        .args(["--datasize", "64M", "--mode", "user"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(a) = admin {
        cmd.args(["--admin", a]);
    }
    let child = KillOnDrop(cmd.spawn().unwrap());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..500 {
        if TcpStream::connect(addr).await.is_ok() {
            return (child, addr);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("real zdb did not start");
}

async fn start_embedded(dir: &std::path::Path, admin: Option<&str>) -> SocketAddr {
    let mut cfg = HosterServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)), dir.to_path_buf());
    cfg.admin_password = admin.map(str::to_owned);
    let server = HosterServer::bind(cfg).await.unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    addr
}

fn req(args: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(&mut out, args);
    out
}

async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let _ = s.shutdown().await;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

fn raw_cases() -> Vec<(&'static str, Vec<u8>)> {
    let long_key = [b'x'; 256];
    let sel_x = req(&[b"SELECT", b"x", b"p"]);
    let with_x = |r: Vec<u8>| [sel_x.clone(), r].concat();
    vec![
        ("inline", b"PING\r\n".to_vec()),
        ("ping", req(&[b"PING"])),
        ("prefix", req(&[b"pi"])),
        ("empty command", req(&[b""])),
        ("unknown", req(&[b"BOGUS"])),
        ("set", req(&[b"SET", b"k", b"v"])),
        ("set same", req(&[b"SET", b"k", b"v"])),
        ("get", req(&[b"GET", b"k"])),
        ("get missing", req(&[b"GET", b"nope"])),
        ("exists", req(&[b"EXISTS", b"k"])),
        ("length", req(&[b"LENGTH", b"k"])),
        ("check", req(&[b"CHECK", b"k"])),
        ("check missing", req(&[b"CHECK", b"nope"])),
        ("mget", req(&[b"MGET", b"k", b"nope"])),
        ("dbsize", req(&[b"DBSIZE"])),
        ("del", req(&[b"DEL", b"k"])),
        ("del again", req(&[b"DEL", b"k"])),
        ("get deleted", req(&[b"GET", b"k"])),
        ("set long key", req(&[b"SET", &long_key, b"v"])),
        ("get long key", req(&[b"GET", &long_key])),
        ("get empty key", req(&[b"GET", b""])),
        ("set empty key", req(&[b"SET", b"", b"v"])),
        ("get no key", req(&[b"GET"])),
        ("set no value", req(&[b"SET", b"k"])),
        ("scan empty", req(&[b"SCAN"])),
        ("scan bad cursor", req(&[b"SCAN", b"abc"])),
        ("auth disabled", req(&[b"AUTH", b"x"])),
        ("nsnew", req(&[b"NSNEW", b"x"])),
        ("nsnew again", req(&[b"NSNEW", b"x"])),
        ("nsnew default", req(&[b"NSNEW", b"default"])),
        ("nsnew slash", req(&[b"NSNEW", b"a/b"])),
        ("nsset password", req(&[b"NSSET", b"x", b"password", b"p"])),
        ("nsset public", req(&[b"NSSET", b"x", b"public", b"0"])),
        ("nsset bogus", req(&[b"NSSET", b"x", b"bogus", b"1"])),
        ("nsset default", req(&[b"NSSET", b"default", b"worm", b"1"])),
        ("nsset missing ns", req(&[b"NSSET", b"zz", b"worm", b"1"])),
        ("select protected", req(&[b"SELECT", b"x"])),
        ("select wrong", req(&[b"SELECT", b"x", b"bad"])),
        ("select missing", req(&[b"SELECT", b"zz"])),
        (
            "select secure no challenge",
            req(&[
                b"SELECT",
                b"x",
                b"SECURE",
                b"0123456789012345678901234567890123456789",
            ]),
        ),
        ("select ok + set", with_x(req(&[b"SET", b"a", b"1"]))),
        ("nsset worm", req(&[b"NSSET", b"x", b"worm", b"1"])),
        ("worm overwrite", with_x(req(&[b"SET", b"a", b"2"]))),
        ("worm same", with_x(req(&[b"SET", b"a", b"1"]))),
        ("worm del", with_x(req(&[b"DEL", b"a"]))),
        ("worm del missing", with_x(req(&[b"DEL", b"zz"]))),
        (
            "public readonly",
            [
                req(&[b"NSSET", b"x", b"public", b"1"]),
                req(&[b"SELECT", b"x"]),
                req(&[b"SET", b"b", b"1"]),
                req(&[b"GET", b"a"]),
            ]
            .concat(),
        ),
        (
            "maxsize",
            [
                req(&[b"NSNEW", b"m"]),
                req(&[b"NSSET", b"m", b"maxsize", b"3"]),
                req(&[b"SELECT", b"m"]),
                req(&[b"SET", b"a", b"12"]),
                req(&[b"SET", b"b", b"12"]),
                req(&[b"SET", b"a", b"123"]),
            ]
            .concat(),
        ),
        (
            "pipelined",
            [
                req(&[b"SET", b"p", b"1"]),
                req(&[b"GET", b"p"]),
                req(&[b"GET", b"p"]),
            ]
            .concat(),
        ),
        ("too many args", b"*1025\r\n".to_vec()),
        ("not bulk", b"*1\r\n:5\r\n".to_vec()),
        (
            "payload too big",
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$8388609\r\n".to_vec(),
        ),
        ("flush", req(&[b"FLUSH"])),
    ]
}

fn nsinfo_core(i: &NsInfo) -> String {
    format!(
        "entries={} size={} limit={} public={} password={} worm={} mode={}",
        i.entries, i.data_size_bytes, i.data_limits_bytes, i.public, i.password, i.worm, i.mode
    )
}

fn client(addr: SocketAddr, ns: &str, password: Option<&str>, admin: Option<&str>) -> ZdbClient {
    ZdbClient::new(
        HosterConfig {
            address: addr.to_string(),
            namespace: ns.into(),
            password: password.map(str::to_owned),
            admin_password: admin.map(str::to_owned),
        },
        ClientOptions::default(),
    )
}

/// Client behaviours; returns a transcript to compare between the two servers.
async fn client_suite(addr: SocketAddr, admin: Option<&str>) -> Vec<String> {
    let mut t = Vec::new();
    let owner = client(addr, "shards", Some("pw"), admin);
    t.push(format!(
        "ensure: {:?}",
        owner
            .ensure_namespace(true)
            .await
            .map_err(|e| e.to_string())
    ));
    t.push(format!(
        "ensure again: {:?}",
        owner
            .ensure_namespace(true)
            .await
            .map_err(|e| e.to_string())
    ));
    t.push(format!("ping: {:?}", owner.ping().await.is_ok()));
    owner.set(b"k", b"v").await.unwrap();
    t.push(format!(
        "same again (worm): {:?}",
        owner.set(b"k", b"v").await.is_ok()
    ));
    t.push(format!(
        "overwrite (worm): {}",
        matches!(owner.set(b"k", b"w").await, Err(ZdbError::Worm { .. }))
    ));
    t.push(format!(
        "del (worm): {}",
        matches!(owner.del(b"k").await, Err(ZdbError::Worm { .. }))
    ));
    t.push(format!("get: {:?}", owner.get(b"k").await.unwrap()));
    t.push(format!(
        "exists/length/check: {:?} {:?} {:?}",
        owner.exists(b"k").await.unwrap(),
        owner.length(b"k").await.unwrap(),
        owner.check(b"k").await.unwrap()
    ));
    let max = vec![7u8; VALUE_BYTES_MAX];
    owner.set(b"max", &max).await.unwrap();
    t.push(format!(
        "8 MiB back: {}",
        owner.get(b"max").await.unwrap().unwrap() == max
    ));
    let big: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    owner.set_large(b"big", &big).await.unwrap();
    t.push(format!(
        "20 MiB back: {}",
        owner
            .get_large(b"big", big.len() as u64)
            .await
            .unwrap()
            .unwrap()
            == big
    ));
    t.push(format!(
        "wrong len: {}",
        matches!(
            owner.get_large(b"big", 5).await,
            Err(ZdbError::LengthMismatch { .. })
        )
    ));
    t.push(format!(
        "nsinfo: {}",
        nsinfo_core(&owner.ns_info().await.unwrap())
    ));
    let reader = client(addr, "shards", None, None);
    t.push(format!(
        "public read: {:?}",
        reader.get(b"k").await.map_err(|e| e.to_string())
    ));
    t.push(format!(
        "public write: {}",
        matches!(reader.set(b"n", b"1").await, Err(ZdbError::ReadOnly { .. }))
    ));
    let wrong = client(addr, "shards", Some("bad"), None);
    t.push(format!(
        "wrong pw: {}",
        matches!(wrong.get(b"k").await, Err(ZdbError::AccessDenied { .. }))
    ));
    let other = client(addr, "other", None, None);
    let created = other.ensure_namespace(false).await;
    t.push(format!(
        "create without admin: {}",
        match &created {
            Ok(()) => "ok".to_owned(),
            Err(ZdbError::PermissionDenied { .. }) => "permission denied".to_owned(),
            Err(e) => e.to_string(),
        }
    ));
    let over = vec![1u8; VALUE_BYTES_MAX + 1];
    let sent = owner.command(&[b"SET", b"over", &over]).await;
    t.push(format!(
        "oversized raw SET: {}",
        match sent {
            Err(ZdbError::PayloadTooBig { .. }) => "PayloadTooBig".to_owned(),
            Err(e) => format!("other error: {e}"),
            Ok(r) => format!("{r:?}"),
        }
    ));
    t.push(format!(
        "after oversize: {:?}",
        owner.get(b"k").await.map_err(|e| e.to_string())
    ));
    let Reply::Array(names) = owner.command(&[b"NSLIST"]).await.unwrap() else {
        panic!()
    };
    let mut names: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    names.sort();
    t.push(format!("nslist: {names:?}"));
    t
}

#[tokio::main]
async fn main() {
    let bin = std::env::args()
        .nth(1)
        .expect("usage: real_zdb_compat /path/to/zdb");
    let mut mismatches = 0;
    let real_dir = tempfile::tempdir().unwrap();
    let ours_dir = tempfile::tempdir().unwrap();
    let (_real, real) = start_real(&bin, real_dir.path(), None).await;
    let ours = start_embedded(ours_dir.path(), None).await;
    for (name, bytes) in raw_cases() {
        let a = exchange(real, &bytes).await;
        let b = exchange(ours, &bytes).await;
        if a == b {
            println!("same  {name}: {:?}", String::from_utf8_lossy(&a));
        } else {
            mismatches += 1;
            println!(
                "DIFF  {name}:\n   zdb:  {:?}\n   ours: {:?}",
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b)
            );
        }
    }
    for admin in [None, Some("adm")] {
        let real_dir = tempfile::tempdir().unwrap();
        let ours_dir = tempfile::tempdir().unwrap();
        let (_real, real) = start_real(&bin, real_dir.path(), admin).await;
        let ours = start_embedded(ours_dir.path(), admin).await;
        // With an admin password, the admin client first (it creates the namespace), then a
        // client without it against the existing namespace.
        let runs = if admin.is_some() {
            vec![admin, None]
        } else {
            vec![None]
        };
        for client_admin in runs {
            let a = client_suite(real, client_admin).await;
            let b = client_suite(ours, client_admin).await;
            for (x, y) in a.iter().zip(&b) {
                if x == y {
                    println!("same  [admin {admin:?}/{client_admin:?}] {x}");
                } else {
                    mismatches += 1;
                    println!(
                        "DIFF  [admin {admin:?}/{client_admin:?}]\n   zdb:  {x}\n   ours: {y}"
                    );
                }
            }
        }
    }
    println!("{mismatches} difference(s)");
}
