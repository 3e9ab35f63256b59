//! Durability of the embedded hoster (restart, torn tail, bit rot, injected disk faults) and
//! the client's health handling (dead hoster fails fast, recovers; stuck hoster times out).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{self, Seek as _, SeekFrom, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use zdb_backend::{
    ClientOptions, DataLog, FileStorage, Health, HosterStorage, ZdbClient, ZdbError,
};

#[tokio::test]
async fn restart_keeps_data_and_pooled_clients_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let addr = hoster.addr;
    let c = client(addr, "default");
    c.ensure_namespace(false).await.unwrap();
    let other = client(addr, "second");
    other.ensure_namespace(true).await.unwrap();
    for i in 0..50u32 {
        c.set(format!("k{i}").as_bytes(), &pattern(1000 + i as usize, i))
            .await
            .unwrap();
    }
    c.del(b"k7").await.unwrap();
    c.set(b"k8", b"overwritten").await.unwrap();
    other.set(b"x", b"y").await.unwrap();
    hoster.stop().await;

    // Same directory, same port: the client's pooled connections are stale and get replaced.
    let hoster = TestHoster::start_at(dir.path(), addr, None).await;
    for i in 0..50u32 {
        let got = c.get(format!("k{i}").as_bytes()).await.unwrap();
        match i {
            7 => assert_eq!(got, None),
            8 => assert_eq!(got.unwrap(), b"overwritten"),
            _ => assert_eq!(got.unwrap(), pattern(1000 + i as usize, i)),
        }
    }
    assert_eq!(c.ns_info().await.unwrap().entries, 49);
    assert_eq!(other.get(b"x").await.unwrap().unwrap(), b"y");
    // Namespace properties survive too.
    assert!(other.ns_info().await.unwrap().worm);
    assert!(matches!(
        other.set(b"x", b"z").await,
        Err(ZdbError::Worm { .. })
    ));

    // An abrupt stop (server future dropped) keeps everything acknowledged as well.
    c.set(b"late", b"write").await.unwrap();
    hoster.kill().await;
    let hoster = TestHoster::start_at(dir.path(), addr, None).await;
    assert_eq!(c.get(b"late").await.unwrap().unwrap(), b"write");
    hoster.stop().await;
}

/// A child process that is killed (SIGKILL) and reaped however the test ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const KILL9_DIR_ENV: &str = "ZDB_BACKEND_KILL9_CHILD_DIR";

/// Not a test of its own: `kill_9_loses_nothing_acknowledged` runs this test binary again with
/// only this function and the environment variable set, and it becomes a hoster process to kill.
#[tokio::test]
async fn kill9_child_hoster() {
    let Ok(dir) = std::env::var(KILL9_DIR_ENV) else {
        return;
    };
    let server = zdb_backend::HosterServer::bind(config(Path::new(&dir), loopback(), None))
        .await
        .unwrap();
    println!("ZDB_PORT={}", server.local_addr().port());
    io::stdout().flush().unwrap();
    server.run(std::future::pending()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = KillOnDrop(
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "kill9_child_hoster",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(KILL9_DIR_ENV, dir.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let read_port = tokio::task::spawn_blocking(move || {
        for line in io::BufReader::new(stdout).lines() {
            // The harness may print "test kill9_child_hoster ... " on the same line first.
            if let Some((_, p)) = line.ok()?.split_once("ZDB_PORT=") {
                return p.trim().parse::<u16>().ok();
            }
        }
        None
    });
    let port = match tokio::time::timeout(Duration::from_secs(60), read_port).await {
        Ok(Ok(Some(port))) => port,
        other => {
            panic!("child hoster did not report its port: {other:?}");
        }
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let c = client(addr, "default");

    // Writers run until the process dies under them; only acknowledged writes count.
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..4u32 {
        let c = c.clone();
        let acked = Arc::clone(&acked);
        writers.push(tokio::spawn(async move {
            for i in 0u32.. {
                let key = format!("w{w}-{i}");
                let value = pattern(1 + (i as usize * 7919) % 200_000, w * 1_000_000 + i);
                if c.set(key.as_bytes(), &value).await.is_err() {
                    return;
                }
                acked.lock().unwrap().push((key, value));
            }
        }));
    }
    // Let a good number of writes complete, then SIGKILL in the middle of the stream.
    for _ in 0..10_000 {
        if acked.lock().unwrap().len() >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.len() >= 200,
        "only {} writes acknowledged",
        acked.len()
    );

    let hoster = TestHoster::start(dir.path(), None).await;
    let c = client(hoster.addr, "default");
    for (key, value) in &acked {
        assert_eq!(
            c.get(key.as_bytes()).await.unwrap().as_ref(),
            Some(value),
            "acknowledged key {key} lost or damaged"
        );
        assert_eq!(c.check(key.as_bytes()).await.unwrap(), Some(true));
    }
    hoster.stop().await;
}

fn append_to(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

#[tokio::test]
async fn torn_tail_is_truncated_on_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let addr = hoster.addr;
    let c = client(addr, "default");
    for i in 0..10u32 {
        c.set(format!("k{i}").as_bytes(), &pattern(5000, i))
            .await
            .unwrap();
    }
    hoster.stop().await;
    let data = data_file(dir.path(), "default");
    let good_len = std::fs::metadata(&data).unwrap().len();

    // Three kinds of torn tail, one after the other: a few bytes, random garbage, and a valid
    // header whose entry runs past the end of the file.
    let mut half_entry = Vec::new();
    {
        // Capture a real entry from the log to cut it short: the last 5000-byte value entry.
        let bytes = std::fs::read(&data).unwrap();
        half_entry.extend_from_slice(&bytes[bytes.len() - 5022..bytes.len() - 100]);
    }
    for tail in [vec![0xAB; 7], pattern(3000, 99), half_entry] {
        append_to(&data, &tail);
        let hoster = TestHoster::start_at(dir.path(), addr, None).await;
        for i in 0..10u32 {
            assert_eq!(
                c.get(format!("k{i}").as_bytes()).await.unwrap().unwrap(),
                pattern(5000, i)
            );
        }
        hoster.stop().await;
        assert_eq!(std::fs::metadata(&data).unwrap().len(), good_len);
    }

    // Writes after recovery land right after the last good entry and survive a restart.
    let hoster = TestHoster::start_at(dir.path(), addr, None).await;
    c.set(b"after", b"recovery").await.unwrap();
    hoster.stop().await;
    let hoster = TestHoster::start_at(dir.path(), addr, None).await;
    assert_eq!(c.get(b"after").await.unwrap().unwrap(), b"recovery");
    assert_eq!(c.get(b"k9").await.unwrap().unwrap(), pattern(5000, 9));
    hoster.stop().await;
}

#[tokio::test]
async fn damage_in_the_middle_skips_one_entry_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let addr = hoster.addr;
    let c = client(addr, "default");
    for i in 0..5u32 {
        c.set(format!("k{i}").as_bytes(), &pattern(300, i))
            .await
            .unwrap();
    }
    hoster.stop().await;
    // Entries are 16 (log header) + n × (20 + 2 + 300): damage the header of k2.
    let data = data_file(dir.path(), "default");
    let mut f = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
    f.seek(SeekFrom::Start(16 + 2 * 322 + 5)).unwrap();
    f.write_all(&[0xFF]).unwrap();
    drop(f);
    let hoster = TestHoster::start_at(dir.path(), addr, None).await;
    assert_eq!(c.get(b"k2").await.unwrap(), None);
    for i in [0u32, 1, 3, 4] {
        assert_eq!(
            c.get(format!("k{i}").as_bytes()).await.unwrap().unwrap(),
            pattern(300, i)
        );
    }
    hoster.stop().await;
}

#[tokio::test]
async fn check_detects_a_flipped_bit_in_the_data_file() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let c = client(hoster.addr, "default");
    let value = pattern(10_000, 5);
    c.set(b"victim", &value).await.unwrap();
    c.set(b"bystander", &pattern(10_000, 6)).await.unwrap();
    assert_eq!(c.check(b"victim").await.unwrap(), Some(true));

    let data = data_file(dir.path(), "default");
    let bytes = std::fs::read(&data).unwrap();
    let at = bytes.windows(64).position(|w| w == &value[..64]).unwrap() + 4321;
    let mut f = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
    f.seek(SeekFrom::Start(at as u64)).unwrap();
    f.write_all(&[bytes[at] ^ 0x08]).unwrap();
    drop(f);

    assert_eq!(c.check(b"victim").await.unwrap(), Some(false));
    assert_eq!(c.check(b"bystander").await.unwrap(), Some(true));
    // GET does not verify (as 0-db): the reader's own checksums catch it.
    let got = c.get(b"victim").await.unwrap().unwrap();
    assert_ne!(got, value);
    assert_eq!(got.len(), value.len());
    hoster.stop().await;
}

/// Storage wrapper that fails chosen writes and can flip a bit in every read.
struct FaultyStorage {
    inner: FileStorage,
    writes: Arc<AtomicUsize>,
    fail_write_number: Arc<AtomicUsize>,
    flip_reads: Arc<AtomicBool>,
}

struct FaultyLog {
    inner: Box<dyn DataLog>,
    writes: Arc<AtomicUsize>,
    fail_write_number: Arc<AtomicUsize>,
    flip_reads: Arc<AtomicBool>,
}

impl HosterStorage for FaultyStorage {
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
        Ok(Box::new(FaultyLog {
            inner: self.inner.open_log(name)?,
            writes: Arc::clone(&self.writes),
            fail_write_number: Arc::clone(&self.fail_write_number),
            flip_reads: Arc::clone(&self.flip_reads),
        }))
    }
}

impl DataLog for FaultyLog {
    fn size_bytes(&self) -> io::Result<u64> {
        self.inner.size_bytes()
    }
    fn write_at(&self, offset: u64, parts: &[&[u8]]) -> io::Result<()> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_write_number.load(Ordering::SeqCst) {
            // A torn write: the first part lands, then the disk fails.
            self.inner.write_at(offset, &parts[..1])?;
            return Err(io::Error::other("injected write failure"));
        }
        self.inner.write_at(offset, parts)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)?;
        if self.flip_reads.load(Ordering::SeqCst) && !buf.is_empty() {
            let last = buf.len() - 1;
            buf[last] ^= 0x01;
        }
        Ok(())
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.inner.truncate(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.inner.sync()
    }
}

#[tokio::test]
async fn injected_disk_faults_are_reported_and_poison_writes_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let writes = Arc::new(AtomicUsize::new(0));
    let fail_write_number = Arc::new(AtomicUsize::new(usize::MAX));
    let flip_reads = Arc::new(AtomicBool::new(false));
    let storage = || {
        Arc::new(FaultyStorage {
            inner: FileStorage::open(dir.path()).unwrap(),
            writes: Arc::clone(&writes),
            fail_write_number: Arc::clone(&fail_write_number),
            flip_reads: Arc::clone(&flip_reads),
        })
    };
    let hoster = TestHoster::start_with_storage(storage(), None).await;
    let c = client(hoster.addr, "default");
    c.set(b"a", b"first").await.unwrap();
    // The next write fails halfway.
    fail_write_number.store(writes.load(Ordering::SeqCst) + 1, Ordering::SeqCst);
    match c.set(b"b", b"second").await {
        Err(ZdbError::Server { message, .. }) => {
            assert!(message.contains("Cannot write data right now"), "{message}");
        }
        other => panic!("expected a write error, got {other:?}"),
    }
    // The log is poisoned: every later write fails until a restart; reads go on.
    assert!(matches!(
        c.set(b"c", b"third").await,
        Err(ZdbError::Server { .. })
    ));
    assert_eq!(c.get(b"b").await.unwrap(), None);

    // Reads that flip a bit: GET returns what the disk gave, CHECK says corrupt.
    flip_reads.store(true, Ordering::SeqCst);
    assert_eq!(c.check(b"a").await.unwrap(), Some(false));
    assert_ne!(c.get(b"a").await.unwrap().unwrap(), b"first");
    flip_reads.store(false, Ordering::SeqCst);
    assert_eq!(c.check(b"a").await.unwrap(), Some(true));
    hoster.stop().await;

    // After a restart the torn entry is gone (cut off at once, else by recovery) and writes
    // work again.
    let hoster = TestHoster::start_with_storage(storage(), None).await;
    let c = client(hoster.addr, "default");
    assert_eq!(c.get(b"a").await.unwrap().unwrap(), b"first");
    assert_eq!(c.get(b"b").await.unwrap(), None);
    assert_eq!(c.get(b"c").await.unwrap(), None);
    c.set(b"c", b"third").await.unwrap();
    hoster.stop().await;
    let hoster = TestHoster::start_with_storage(storage(), None).await;
    let c = client(hoster.addr, "default");
    assert_eq!(c.get(b"c").await.unwrap().unwrap(), b"third");
    hoster.stop().await;
}

#[tokio::test]
async fn dead_hoster_fails_fast_and_recovers_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let addr = hoster.addr;
    let c = ZdbClient::new(
        hoster_config(addr, "default"),
        ClientOptions {
            // Long enough that the window cannot pass during the test.
            down_retry_ms: 600_000,
            ..ClientOptions::default()
        },
    );
    c.set(b"k", b"v").await.unwrap();
    hoster.stop().await;

    // First call: the pooled connection is dead, the reconnect is refused -> Down.
    let first = c.get(b"k").await.unwrap_err();
    assert!(first.is_unavailable(), "{first:?}");
    assert!(matches!(c.health(), Health::Down { .. }));
    // Every later call fails at once, without trying to connect.
    for _ in 0..100 {
        assert!(matches!(
            c.get(b"k").await,
            Err(ZdbError::HosterDown { .. })
        ));
    }
    assert!(matches!(
        c.set(b"k2", b"v").await,
        Err(ZdbError::HosterDown { .. })
    ));

    // Back on the same address: ordinary calls still fail fast inside the window...
    let hoster = TestHoster::start_at(dir.path(), addr, None).await;
    assert!(matches!(
        c.get(b"k").await,
        Err(ZdbError::HosterDown { .. })
    ));
    // ...but the health probe goes through and marks it Up.
    c.ping().await.unwrap();
    assert_eq!(c.health(), Health::Up);
    assert_eq!(c.get(b"k").await.unwrap().unwrap(), b"v");
    hoster.stop().await;
}

#[tokio::test]
async fn down_hoster_is_retried_after_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let hoster = TestHoster::start(dir.path(), None).await;
    let addr = hoster.addr;
    let c = ZdbClient::new(
        hoster_config(addr, "default"),
        ClientOptions {
            down_retry_ms: 20,
            ..ClientOptions::default()
        },
    );
    c.set(b"k", b"v").await.unwrap();
    hoster.stop().await;
    assert!(c.get(b"k").await.is_err());
    assert!(matches!(c.health(), Health::Down { .. }));
    let hoster = TestHoster::start_at(dir.path(), addr, None).await;
    // Poll until a call after the retry window reaches the hoster again (bounded).
    let mut recovered = None;
    for _ in 0..500 {
        match c.get(b"k").await {
            Ok(v) => {
                recovered = v;
                break;
            }
            Err(ZdbError::HosterDown { .. }) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("unexpected error: {e:?}"),
        }
    }
    assert_eq!(recovered.unwrap(), b"v");
    assert_eq!(c.health(), Health::Up);
    hoster.stop().await;
}

#[tokio::test]
async fn stuck_hoster_times_out_then_fails_fast() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let c = ZdbClient::new(
        hoster_config(addr, "default"),
        ClientOptions {
            connect_timeout_ms: 200,
            request_timeout_ms: 200,
            down_retry_ms: 600_000,
            ..ClientOptions::default()
        },
    );
    // The handshake (SELECT) never gets an answer: a connect timeout.
    assert!(matches!(
        c.get(b"k").await,
        Err(ZdbError::Timeout {
            what: "connect",
            ..
        })
    ));
    assert!(matches!(
        c.get(b"k").await,
        Err(ZdbError::HosterDown { .. })
    ));
    // The probe tries (and times out) again; the state stays Down.
    assert!(matches!(c.ping().await, Err(ZdbError::Timeout { .. })));
    assert!(matches!(c.health(), Health::Down { .. }));
    holder.abort();
}
