//! `archiver hoster` as a process: its memory stays bounded under 1,000 idle connections and an
//! MGET that would build 8 GiB; its admin password comes from a 0600 file or the environment,
//! never the command line; it refuses to run open (no admin password) off loopback.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use zdb_backend::resp::encode_request;

use common::{KillOnDrop, EXE};

/// The bound stated for the hoster process in this scenario (the archive's own RSS target).
const HOSTER_RSS_MAX_MIB: u64 = 256;

/// Starts `archiver hoster` with `args` and the environment `env`; returns it and its address.
fn start(data: &Path, args: &[&str], env: &[(&str, &str)]) -> (KillOnDrop, SocketAddr) {
    let mut cmd = Command::new(EXE);
    cmd.args(["hoster", "--data"])
        .arg(data)
        .args(args)
        .env_remove("ARCHIVER_HOSTER_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let addr = line.strip_prefix("listening on ").unwrap().parse().unwrap();
    // Keep draining stdout so the hoster never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// Runs `archiver hoster` expecting it to refuse to start; returns its stderr.
fn refused(data: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(EXE);
    cmd.args(["hoster", "--data"])
        .arg(data)
        .args(args)
        .env_remove("ARCHIVER_HOSTER_ADMIN_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "the hoster started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Sends one request and reads a reply of `expected`'s length (what an exact reply needs).
fn call(stream: &mut TcpStream, args: &[&[u8]], expected: &[u8]) {
    let mut req = Vec::new();
    encode_request(&mut req, args);
    stream.write_all(&req).unwrap();
    let mut reply = vec![0u8; expected.len()];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(expected)
    );
}

fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib / 1024
}

/// Sends one request whose reply is a bulk of `len` bytes and reads it all.
fn read_bulk(stream: &mut TcpStream, args: &[&[u8]], len: usize) {
    let mut req = Vec::new();
    encode_request(&mut req, args);
    stream.write_all(&req).unwrap();
    let header = format!("${len}\r\n");
    let mut buf = vec![0u8; header.len() + len + 2];
    stream.read_exact(&mut buf).unwrap();
    assert_eq!(&buf[..header.len()], header.as_bytes());
}

#[test]
fn rss_stays_bounded_with_1000_idle_connections_and_a_huge_mget() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = start(dir.path(), &["--listen", "127.0.0.1:0"], &[]);
    let pid = child.0.id();
    let value = vec![0x5au8; zdb_backend::VALUE_BYTES_MAX];
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    call(&mut c, &[b"SET", b"big", &value], b"$3\r\nbig\r\n");
    drop(value);
    // Read it once, so the page cache and the hoster's read path are warm.
    read_bulk(&mut c, &[b"GET", b"big"], zdb_backend::VALUE_BYTES_MAX);
    let before = rss_mib(pid);

    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    // Every idle connection was accepted (INFO counts it) before RSS is read.
    let mut info = String::new();
    for _ in 0..1000 {
        let mut req = Vec::new();
        encode_request(&mut req, &[b"INFO"]);
        c.write_all(&req).unwrap();
        let mut reader = BufReader::new(c.try_clone().unwrap());
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        let len: usize = header.trim()[1..].parse().unwrap();
        let mut body = vec![0u8; len + 2];
        reader.read_exact(&mut body).unwrap();
        info = String::from_utf8_lossy(&body).into_owned();
        if info.contains("clients_lifetime: 1001\n") {
            break;
        }
    }
    assert!(info.contains("clients_lifetime: 1001\n"), "{info}");
    let with_idle = rss_mib(pid);

    let mut mget: Vec<&[u8]> = vec![b"MGET"];
    mget.extend(std::iter::repeat_n(&b"big"[..], 1023));
    call(&mut c, &mget, b"-Reply too large\r\n");
    let after_mget = rss_mib(pid);

    // The largest MGET answered (four 8 MiB values), taken whole by the client.
    let mut req = Vec::new();
    encode_request(&mut req, &[b"MGET", b"big", b"big", b"big", b"big"]);
    c.write_all(&req).unwrap();
    let mut reply = vec![0u8; 4 + 4 * (10 + zdb_backend::VALUE_BYTES_MAX + 2)];
    c.read_exact(&mut reply).unwrap();
    assert!(reply.starts_with(b"*4\r\n$8388608\r\n"));
    let after_answered = rss_mib(pid);
    // Each of the 1,000 now sends a request: every one holds its 64 KiB read buffer.
    let mut idle = idle;
    for conn in &mut idle {
        call(conn, &[b"PING"], b"+PONG\r\n");
    }
    let after_pings = rss_mib(pid);
    println!(
        "hoster RSS: {before} MiB before, {with_idle} MiB with 1,000 idle connections, \
         {after_mget} MiB after MGET of 1,023 x 8 MiB (refused), {after_answered} MiB after \
         MGET of 4 x 8 MiB (answered), {after_pings} MiB once all 1,000 sent a request; \
         bound {HOSTER_RSS_MAX_MIB} MiB"
    );
    for rss in [with_idle, after_mget, after_answered, after_pings] {
        assert!(rss < HOSTER_RSS_MAX_MIB, "hoster RSS {rss} MiB");
    }
}

fn write_secret(dir: &Path, name: &str, content: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[test]
fn admin_password_comes_from_a_private_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "correct-horse-battery";
    let data = dir.path().join("data");

    // A file others can read is refused, naming the file and its mode but not the secret.
    let loose = write_secret(dir.path(), "loose", secret, 0o644);
    let loose_arg = loose.to_str().unwrap();
    let stderr = refused(
        &data,
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-password-file",
            loose_arg,
        ],
        &[],
    );
    assert!(stderr.contains(loose_arg), "{stderr}");
    assert!(stderr.contains("0644"), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
    // The secret itself is no longer accepted on the command line.
    let stderr = refused(&data, &["--listen", "127.0.0.1:0", "--admin", secret], &[]);
    assert!(stderr.contains("--admin"), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");

    let file = write_secret(dir.path(), "admin", &format!("{secret}\n"), 0o600);
    let from_file = [
        "--listen",
        "127.0.0.1:0",
        "--admin-password-file",
        file.to_str().unwrap(),
    ];
    let env = [("ARCHIVER_HOSTER_ADMIN_PASSWORD", secret)];
    for (args, env) in [
        (&from_file[..], &[][..]),
        (&["--listen", "127.0.0.1:0"][..], &env[..]),
    ] {
        let (_child, addr) = start(&data, args, env);
        let mut anon = TcpStream::connect(addr).unwrap();
        call(&mut anon, &[b"NSNEW", b"x"], b"-Permission denied\r\n");
        call(&mut anon, &[b"AUTH", b"wrong"], b"-Access denied\r\n");
        let mut admin = TcpStream::connect(addr).unwrap();
        call(&mut admin, &[b"AUTH", secret.as_bytes()], b"+OK\r\n");
    }
}

#[test]
fn open_hoster_off_loopback_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refused(dir.path(), &["--listen", "0.0.0.0:0"], &[]);
    assert!(stderr.contains("without an admin password"), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0"), "{stderr}");
    // With a password the same address is served.
    let (_child, addr) = start(
        dir.path(),
        &["--listen", "0.0.0.0:0"],
        &[("ARCHIVER_HOSTER_ADMIN_PASSWORD", "pw")],
    );
    let mut c = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], addr.port()))).unwrap();
    call(&mut c, &[b"PING"], b"+PONG\r\n");
}

#[test]
fn prover_password_comes_from_a_private_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "namespace-secret";
    let loose = write_secret(dir.path(), "loose", secret, 0o640);
    let run = |args: &[&str]| {
        let out = Command::new(EXE)
            .args([
                "prover",
                "--zdb",
                "127.0.0.1:9",
                "--listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(dir.path().join("prover"))
            .args(args)
            .env_remove("ARCHIVER_PROVER_PASSWORD")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let stderr = run(&["--password-file", loose.to_str().unwrap()]);
    assert!(stderr.contains(loose.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("0640"), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
    let stderr = run(&["--password", secret]);
    assert!(stderr.contains("--password"), "{stderr}");
    assert!(!stderr.contains(secret), "{stderr}");
}
