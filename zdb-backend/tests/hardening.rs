//! The embedded hoster's defences over real TCP: who may touch a private namespace, refusing an
//! open hoster off loopback, durable-before-acknowledged writes with group commit, a poisoned
//! log after a failed fsync, recovery that verifies every entry, and the resource bounds
//! (connection cap, idle/read/write timeouts, reply cap).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{self, Seek as _, SeekFrom, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use zdb_backend::resp::{encode_request, RespReader};
use zdb_backend::{
    DataLog, FileStorage, HosterError, HosterLimits, HosterServer, HosterServerConfig,
    HosterStorage, Reply, ZdbError, VALUE_BYTES_MAX,
};

const ADMIN: &str = "admin-secret";

/// One raw connection: a request, then its reply.
struct Raw {
    reader: RespReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Self {
        let (r, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        Self {
            reader: RespReader::new(r),
            writer,
        }
    }

    async fn call(&mut self, args: &[&[u8]]) -> Reply {
        let mut req = Vec::new();
        encode_request(&mut req, args);
        self.writer.write_all(&req).await.unwrap();
        self.reader.read_reply().await.unwrap()
    }
}

fn error(text: &str) -> Reply {
    Reply::Error(text.to_owned())
}

fn ok() -> Reply {
    Reply::Status("OK".to_owned())
}

fn nsinfo_field(reply: &Reply, field: &str) -> String {
    let Reply::Bulk(b) = reply else {
        panic!("NSINFO answered {reply:?}")
    };
    let text = String::from_utf8(b.clone()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}: ")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {field} in {text}"))
}

/// Admin creates namespace `name` with password `pw`, private, optionally worm, holding
/// `secret` → `value`.
async fn private_namespace(addr: SocketAddr, name: &str, worm: bool) {
    let mut admin = Raw::connect(addr).await;
    assert_eq!(admin.call(&[b"AUTH", ADMIN.as_bytes()]).await, ok());
    let n = name.as_bytes();
    assert_eq!(admin.call(&[b"NSNEW", n]).await, ok());
    assert_eq!(admin.call(&[b"NSSET", n, b"password", b"pw"]).await, ok());
    assert_eq!(admin.call(&[b"NSSET", n, b"public", b"0"]).await, ok());
    assert_eq!(admin.call(&[b"SELECT", n, b"pw"]).await, ok());
    assert_eq!(
        admin.call(&[b"SET", b"secret", b"value"]).await,
        Reply::Bulk(b"secret".to_vec())
    );
    if worm {
        assert_eq!(admin.call(&[b"NSSET", n, b"worm", b"1"]).await, ok());
    }
}

#[tokio::test]
async fn anonymous_client_cannot_read_write_delete_or_reconfigure_a_private_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), Some(ADMIN)).await;
    for (name, worm) in [("vault", false), ("vault-worm", true)] {
        private_namespace(hoster.addr, name, worm).await;
        let n = name.as_bytes();
        let mut anon = Raw::connect(hoster.addr).await;
        // No way in without the password, and no admin without the admin password.
        assert_eq!(
            anon.call(&[b"SELECT", n]).await,
            error("Namespace protected and private")
        );
        assert_eq!(
            anon.call(&[b"SELECT", n, b"guess"]).await,
            error("Access denied")
        );
        assert_eq!(
            anon.call(&[b"AUTH", b"guess"]).await,
            error("Access denied")
        );
        // Still in `default`: the data commands never reach the private namespace.
        assert_eq!(anon.call(&[b"GET", b"secret"]).await, Reply::Nil);
        assert_eq!(
            anon.call(&[b"DEL", b"secret"]).await,
            error("Key not found")
        );
        anon.call(&[b"SET", b"secret", b"overwritten"]).await;
        assert_eq!(anon.call(&[b"DEL", b"secret"]).await, ok());
        // Namespace administration is the admin's.
        for prop in [
            &[b"password".as_slice(), b"*"],
            &[b"public", b"1"],
            &[b"worm", b"0"],
            &[b"maxsize", b"1"],
            &[b"lock", b"1"],
            &[b"freeze", b"1"],
        ] {
            assert_eq!(
                anon.call(&[b"NSSET", n, prop[0], prop[1]]).await,
                error("Permission denied"),
                "NSSET {name} {:?}",
                String::from_utf8_lossy(prop[0])
            );
        }
        assert_eq!(anon.call(&[b"NSDEL", n]).await, error("Permission denied"));
        assert_eq!(
            anon.call(&[b"NSNEW", b"squat"]).await,
            error("Permission denied")
        );
        // Everything is as the admin left it.
        let mut owner = Raw::connect(hoster.addr).await;
        assert_eq!(owner.call(&[b"SELECT", n, b"pw"]).await, ok());
        assert_eq!(
            owner.call(&[b"GET", b"secret"]).await,
            Reply::Bulk(b"value".to_vec())
        );
        let info = owner.call(&[b"NSINFO", n]).await;
        assert_eq!(nsinfo_field(&info, "password"), "yes");
        assert_eq!(nsinfo_field(&info, "public"), "no");
        assert_eq!(nsinfo_field(&info, "worm"), if worm { "yes" } else { "no" });
        assert_eq!(nsinfo_field(&info, "locked"), "no");
    }
    // 0-db's public + password: anyone reads, only the password holder writes or deletes.
    let mut admin = Raw::connect(hoster.addr).await;
    assert_eq!(admin.call(&[b"AUTH", ADMIN.as_bytes()]).await, ok());
    assert_eq!(
        admin.call(&[b"NSSET", b"vault", b"public", b"1"]).await,
        ok()
    );
    let mut anon = Raw::connect(hoster.addr).await;
    assert_eq!(anon.call(&[b"SELECT", b"vault"]).await, ok());
    assert_eq!(
        anon.call(&[b"GET", b"secret"]).await,
        Reply::Bulk(b"value".to_vec())
    );
    assert_eq!(
        anon.call(&[b"SET", b"secret", b"x"]).await,
        error("Namespace is in read-only mode")
    );
    assert_eq!(
        anon.call(&[b"DEL", b"secret"]).await,
        error("Namespace is in read-only mode")
    );
    hoster.stop().await;
}

#[tokio::test]
async fn admin_deletes_a_namespace_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), Some(ADMIN)).await;
    let addr = hoster.addr;
    private_namespace(addr, "gone", true).await;
    let mut user = Raw::connect(addr).await;
    assert_eq!(user.call(&[b"SELECT", b"gone", b"pw"]).await, ok());
    let mut admin = Raw::connect(addr).await;
    assert_eq!(admin.call(&[b"AUTH", ADMIN.as_bytes()]).await, ok());
    assert_eq!(
        admin.call(&[b"NSDEL", b"default"]).await,
        error("Cannot remove default namespace")
    );
    assert_eq!(
        admin.call(&[b"NSDEL", b"nope"]).await,
        error("This namespace doesn't exists")
    );
    assert_eq!(admin.call(&[b"SELECT", b"gone", b"pw"]).await, ok());
    assert_eq!(
        admin.call(&[b"NSDEL", b"gone"]).await,
        error("Cannot remove namespace you're currently using.")
    );
    assert_eq!(admin.call(&[b"SELECT", b"default"]).await, ok());
    assert_eq!(admin.call(&[b"NSDEL", b"gone"]).await, ok());
    assert_eq!(
        admin.call(&[b"NSINFO", b"gone"]).await,
        error("Namespace not found")
    );
    // A connection still on it can no longer write there.
    assert!(matches!(
        user.call(&[b"SET", b"late", b"write"]).await,
        Reply::Error(_)
    ));
    hoster.stop().await;
    assert!(!data_file(dir.path(), "gone").exists());
    let hoster = TestHoster::start_at(dir.path(), addr, Some(ADMIN)).await;
    let mut admin = Raw::connect(addr).await;
    assert_eq!(admin.call(&[b"AUTH", ADMIN.as_bytes()]).await, ok());
    assert_eq!(
        admin.call(&[b"NSINFO", b"gone"]).await,
        error("Namespace not found")
    );
    assert_eq!(admin.call(&[b"NSNEW", b"gone"]).await, ok());
    assert_eq!(admin.call(&[b"SELECT", b"gone"]).await, ok());
    assert_eq!(admin.call(&[b"GET", b"secret"]).await, Reply::Nil);
    hoster.stop().await;
}

#[tokio::test]
async fn open_hoster_is_refused_off_loopback_and_allowed_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let any = SocketAddr::from(([0, 0, 0, 0], 0));
    let refused = HosterServer::bind(config(dir.path(), any, None)).await;
    match refused {
        Err(e @ HosterError::OpenNonLoopback { .. }) => {
            assert!(e.to_string().contains("admin password"), "{e}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let with_admin = HosterServer::bind(config(dir.path(), any, Some(ADMIN)))
        .await
        .unwrap();
    drop(with_admin);
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0));
    if std::net::TcpListener::bind(v6).is_ok() {
        drop(
            HosterServer::bind(config(dir.path(), v6, None))
                .await
                .unwrap(),
        );
    }
    let cfg = config(dir.path(), any, Some(ADMIN));
    assert!(!format!("{cfg:?}").contains(ADMIN));
}

/// Storage whose logs count fsyncs, know how much each completed fsync covered, can be made
/// slow (a disk with a real fsync latency), and fail the next fsync on demand.
#[derive(Clone, Default)]
struct Probe {
    syncs: Arc<AtomicUsize>,
    writes: Arc<AtomicUsize>,
    /// Bytes written when the last successful fsync started.
    durable_end: Arc<AtomicU64>,
    written_end: Arc<AtomicU64>,
    sync_delay_ms: Arc<AtomicU64>,
    fail_next_sync: Arc<AtomicBool>,
}

struct ProbeStorage {
    inner: FileStorage,
    probe: Probe,
}

struct ProbeLog {
    inner: Box<dyn DataLog>,
    probe: Probe,
}

impl HosterStorage for ProbeStorage {
    fn namespaces(&self) -> io::Result<Vec<Vec<u8>>> {
        self.inner.namespaces()
    }
    fn create_namespace(&self, name: &[u8], props: &[u8]) -> io::Result<()> {
        self.inner.create_namespace(name, props)
    }
    fn read_props(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        self.inner.read_props(name)
    }
    fn write_props(&self, name: &[u8], props: &[u8]) -> io::Result<()> {
        self.inner.write_props(name, props)
    }
    fn open_log(&self, name: &[u8]) -> io::Result<Box<dyn DataLog>> {
        let inner = self.inner.open_log(name)?;
        self.probe
            .written_end
            .store(inner.size_bytes()?, Ordering::SeqCst);
        Ok(Box::new(ProbeLog {
            inner,
            probe: self.probe.clone(),
        }))
    }
}

impl DataLog for ProbeLog {
    fn size_bytes(&self) -> io::Result<u64> {
        self.inner.size_bytes()
    }
    fn write_at(&self, offset: u64, parts: &[&[u8]]) -> io::Result<()> {
        self.inner.write_at(offset, parts)?;
        self.probe.writes.fetch_add(1, Ordering::SeqCst);
        let end = offset + parts.iter().map(|p| p.len() as u64).sum::<u64>();
        self.probe.written_end.fetch_max(end, Ordering::SeqCst);
        Ok(())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
    fn sync(&self) -> io::Result<()> {
        let covers = self.probe.written_end.load(Ordering::SeqCst);
        let delay = self.probe.sync_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            // A disk whose fsync takes this long (what makes group commit matter).
            std::thread::sleep(Duration::from_millis(delay));
        }
        if self.probe.fail_next_sync.swap(false, Ordering::SeqCst) {
            return Err(io::Error::other("injected fsync failure"));
        }
        self.inner.sync()?;
        self.probe.syncs.fetch_add(1, Ordering::SeqCst);
        self.probe.durable_end.fetch_max(covers, Ordering::SeqCst);
        Ok(())
    }
}

async fn start_probed(dir: &std::path::Path, probe: &Probe, sync: bool) -> TestHoster {
    let storage = Arc::new(ProbeStorage {
        inner: FileStorage::open(dir).unwrap(),
        probe: probe.clone(),
    });
    let mut cfg = config(&std::path::PathBuf::from("/nonexistent"), loopback(), None);
    cfg.sync = sync;
    let server = HosterServer::bind_with_storage(cfg, storage).await.unwrap();
    TestHoster::spawn_server(server)
}

#[tokio::test]
async fn every_acknowledged_write_is_fsynced_first_and_no_sync_skips_it() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Probe::default();
    let hoster = start_probed(dir.path(), &probe, true).await;
    let c = client(hoster.addr, "default");
    for i in 0..20u32 {
        c.set(format!("k{i}").as_bytes(), &pattern(10_000, i))
            .await
            .unwrap();
        // One writer: when its reply arrives, everything written is covered by an fsync.
        assert_eq!(
            probe.durable_end.load(Ordering::SeqCst),
            probe.written_end.load(Ordering::SeqCst),
            "SET k{i} acknowledged before its fsync"
        );
    }
    c.del(b"k3").await.unwrap();
    assert_eq!(
        probe.durable_end.load(Ordering::SeqCst),
        probe.written_end.load(Ordering::SeqCst),
        "DEL acknowledged before its fsync"
    );
    hoster.stop().await;

    let probe = Probe::default();
    let hoster = start_probed(dir.path(), &probe, false).await;
    let c = client(hoster.addr, "default");
    let at_open = probe.syncs.load(Ordering::SeqCst);
    for i in 0..20u32 {
        c.set(format!("n{i}").as_bytes(), b"v").await.unwrap();
    }
    assert_eq!(probe.syncs.load(Ordering::SeqCst), at_open);
    hoster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_fsyncs() {
    const WRITERS: u32 = 16;
    const EACH: u32 = 20;
    let dir = tempfile::tempdir().unwrap();
    let probe = Probe::default();
    probe.sync_delay_ms.store(5, Ordering::SeqCst);
    let hoster = start_probed(dir.path(), &probe, true).await;
    let c = ZdbClient_with_connections(hoster.addr, WRITERS as usize);
    let syncs_before = probe.syncs.load(Ordering::SeqCst);
    let writes_before = probe.writes.load(Ordering::SeqCst);
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                c.set(format!("w{w}-{i}").as_bytes(), &pattern(4096, w * 100 + i))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let syncs = probe.syncs.load(Ordering::SeqCst) - syncs_before;
    let writes = probe.writes.load(Ordering::SeqCst) - writes_before;
    println!("{writes} writes from {WRITERS} concurrent writers, {syncs} fsyncs");
    assert_eq!(writes, (WRITERS * EACH) as usize);
    assert!(
        syncs * 3 <= writes,
        "{syncs} fsyncs for {writes} writes: no group commit"
    );
    hoster.stop().await;
}

#[allow(non_snake_case)]
fn ZdbClient_with_connections(addr: SocketAddr, n: usize) -> zdb_backend::ZdbClient {
    zdb_backend::ZdbClient::new(
        hoster_config(addr, "default"),
        zdb_backend::ClientOptions {
            connections_max: n,
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn a_failed_fsync_poisons_the_log_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let probe = Probe::default();
    let hoster = start_probed(dir.path(), &probe, true).await;
    let c = client(hoster.addr, "default");
    c.set(b"before", b"durable").await.unwrap();
    probe.fail_next_sync.store(true, Ordering::SeqCst);
    let failed = c.set(b"during", b"lost?").await;
    assert!(
        matches!(&failed, Err(ZdbError::Server { message, .. }) if message.contains("Cannot write data right now")),
        "{failed:?}"
    );
    // The disk "works" again, but what it dropped is unknown: writes stay refused.
    for key in [&b"after"[..], b"before"] {
        let again = c.set(key, b"new value").await;
        assert!(matches!(again, Err(ZdbError::Server { .. })), "{again:?}");
    }
    assert!(c.del(b"before").await.is_err());
    // Reads still work.
    assert_eq!(c.get(b"before").await.unwrap().unwrap(), b"durable");
    hoster.stop().await;

    let hoster = start_probed(dir.path(), &Probe::default(), true).await;
    let c = client(hoster.addr, "default");
    assert_eq!(c.get(b"before").await.unwrap().unwrap(), b"durable");
    c.set(b"after", b"restart").await.unwrap();
    assert_eq!(c.get(b"after").await.unwrap().unwrap(), b"restart");
    hoster.stop().await;
}

#[tokio::test]
async fn a_damaged_value_in_the_middle_reads_missing_and_the_rest_survives() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), Some(ADMIN)).await;
    let addr = hoster.addr;
    let mut admin = Raw::connect(addr).await;
    assert_eq!(admin.call(&[b"AUTH", ADMIN.as_bytes()]).await, ok());
    assert_eq!(admin.call(&[b"NSNEW", b"shards"]).await, ok());
    drop(admin);
    let mut cfg = hoster_config(addr, "shards");
    cfg.admin_password = Some(ADMIN.to_owned());
    let c = client_with(cfg.clone());
    // An older value of the victim first: recovery must not bring it back.
    c.set(b"victim", &pattern(3000, 99)).await.unwrap();
    for i in 0..5u32 {
        c.set(format!("k{i}").as_bytes(), &pattern(3000, i))
            .await
            .unwrap();
    }
    let victim = pattern(3000, 7);
    c.set(b"victim", &victim).await.unwrap();
    for i in 5..10u32 {
        c.set(format!("k{i}").as_bytes(), &pattern(3000, i))
            .await
            .unwrap();
    }
    c.ensure_namespace(true).await.unwrap();
    hoster.stop().await;

    // Flip one byte in the middle of the victim's value (an entry in the middle of the log).
    let data = data_file(dir.path(), "shards");
    let bytes = std::fs::read(&data).unwrap();
    let at = bytes.windows(64).position(|w| w == &victim[..64]).unwrap() + 1500;
    let mut f = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
    f.seek(SeekFrom::Start(at as u64)).unwrap();
    f.write_all(&[bytes[at] ^ 0x40]).unwrap();
    drop(f);
    let size_before = bytes.len() as u64;

    let hoster = TestHoster::start_at(dir.path(), addr, Some(ADMIN)).await;
    let c = client_with(cfg.clone());
    assert_eq!(c.get(b"victim").await.unwrap(), None, "damaged key");
    for i in 0..10u32 {
        let key = format!("k{i}");
        assert_eq!(
            c.get(key.as_bytes()).await.unwrap().unwrap(),
            pattern(3000, i),
            "{key}"
        );
        assert_eq!(c.check(key.as_bytes()).await.unwrap(), Some(true));
    }
    assert_eq!(std::fs::metadata(&data).unwrap().len(), size_before);
    let mut admin = Raw::connect(addr).await;
    let info = admin.call(&[b"NSINFO", b"shards"]).await;
    assert_eq!(nsinfo_field(&info, "stats_data_faults"), "1");
    assert_eq!(nsinfo_field(&info, "worm"), "yes");
    // Repair stores it again, worm or not, and that survives a restart.
    c.set(b"victim", &victim).await.unwrap();
    hoster.stop().await;
    let hoster = TestHoster::start_at(dir.path(), addr, Some(ADMIN)).await;
    let c = client_with(cfg);
    assert_eq!(c.get(b"victim").await.unwrap().unwrap(), victim);
    assert_eq!(c.get(b"k9").await.unwrap().unwrap(), pattern(3000, 9));
    hoster.stop().await;
}

async fn start_limited(dir: &std::path::Path, limits: HosterLimits) -> TestHoster {
    let mut cfg: HosterServerConfig = config(dir, loopback(), None);
    cfg.limits = limits;
    TestHoster::spawn_server(HosterServer::bind(cfg).await.unwrap())
}

/// Reads until the server closes the connection; returns the bytes and when it closed.
async fn until_closed(stream: &mut TcpStream) -> (Vec<u8>, Instant) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, Instant::now()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open"),
        }
    }
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = start_limited(
        dir.path(),
        HosterLimits {
            connections_max: 2,
            ..Default::default()
        },
    )
    .await;
    let mut a = Raw::connect(hoster.addr).await;
    let mut b = Raw::connect(hoster.addr).await;
    assert_eq!(a.call(&[b"PING"]).await, Reply::Status("PONG".into()));
    assert_eq!(b.call(&[b"PING"]).await, Reply::Status("PONG".into()));
    let mut third = TcpStream::connect(hoster.addr).await.unwrap();
    let (got, _) = until_closed(&mut third).await;
    assert!(got.is_empty());
    // The two served connections are unaffected.
    assert_eq!(a.call(&[b"PING"]).await, Reply::Status("PONG".into()));
    let info = b.call(&[b"INFO"]).await;
    let Reply::Bulk(info) = info else { panic!() };
    assert!(String::from_utf8_lossy(&info).contains("clients_refused: 1"));
    hoster.stop().await;
}

#[tokio::test]
async fn idle_and_slow_requests_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = start_limited(
        dir.path(),
        HosterLimits {
            idle_timeout_ms: 300,
            read_timeout_ms: 300,
            ..Default::default()
        },
    )
    .await;
    // Idle: served, then closed after the idle timeout.
    let mut idle = TcpStream::connect(hoster.addr).await.unwrap();
    idle.write_all(b"*1\r\n$4\r\nPING\r\n").await.unwrap();
    let start = Instant::now();
    let (got, closed) = until_closed(&mut idle).await;
    assert_eq!(got, b"+PONG\r\n");
    let idle_ms = closed.duration_since(start).as_millis();
    // A request that started but never finishes arriving.
    let mut slow = TcpStream::connect(hoster.addr).await.unwrap();
    slow.write_all(b"*2\r\n$3\r\nGET\r\n$10\r\nabc")
        .await
        .unwrap();
    let start = Instant::now();
    let (got, closed) = until_closed(&mut slow).await;
    assert!(got.is_empty(), "{got:?}");
    let slow_ms = closed.duration_since(start).as_millis();
    println!("idle connection closed after {idle_ms} ms, slow request after {slow_ms} ms");
    assert!((250..10_000).contains(&idle_ms), "{idle_ms}");
    assert!((250..10_000).contains(&slow_ms), "{slow_ms}");
    hoster.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_read_its_replies_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = start_limited(
        dir.path(),
        HosterLimits {
            write_timeout_ms: 300,
            ..Default::default()
        },
    )
    .await;
    let c = client(hoster.addr, "default");
    c.set(b"big", &pattern(VALUE_BYTES_MAX, 1)).await.unwrap();
    let mut stream = TcpStream::connect(hoster.addr).await.unwrap();
    let mut req = Vec::new();
    const ASKED: usize = 8;
    for _ in 0..ASKED {
        encode_request(&mut req, &[b"GET", b"big"]);
    }
    stream.write_all(&req).await.unwrap();
    // The scenario itself: a client that stops reading for longer than the write timeout.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (got, _) = until_closed(&mut stream).await;
    println!(
        "{} of {} reply bytes reached the client before the hoster gave up",
        got.len(),
        ASKED * (VALUE_BYTES_MAX + 14)
    );
    assert!(got.len() < ASKED * VALUE_BYTES_MAX);
    // The hoster still serves others.
    assert_eq!(
        c.length(b"big").await.unwrap(),
        Some(VALUE_BYTES_MAX as u64)
    );
    hoster.stop().await;
}

#[tokio::test]
async fn mget_over_the_reply_cap_is_refused_and_under_it_answered() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = start_limited(dir.path(), HosterLimits::default()).await;
    let c = client(hoster.addr, "default");
    let value = pattern(VALUE_BYTES_MAX, 3);
    c.set(b"big", &value).await.unwrap();
    let mut keys: Vec<&[u8]> = vec![b"MGET"];
    keys.extend(std::iter::repeat_n(&b"big"[..], 1023));
    match c.command(&keys).await {
        Err(ZdbError::Server { message, .. }) => {
            assert!(
                message.ends_with(zdb_backend::server::ERR_REPLY_TOO_LARGE),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Four values (32 MiB) fit the default cap; a missing key costs nothing.
    let reply = c
        .command(&[b"MGET", b"big", b"missing", b"big", b"big", b"big"])
        .await
        .unwrap();
    let Reply::Array(items) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(items.len(), 5);
    assert_eq!(items[1], Reply::Nil);
    for i in [0, 2, 3, 4] {
        assert!(items[i] == Reply::Bulk(value.clone()), "item {i}");
    }
    hoster.stop().await;
}
