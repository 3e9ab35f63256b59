//! Measures client + embedded hoster throughput on loopback: 8 MiB and 64 KiB SET/GET over a
//! pool of connections. `cargo run --release -p zdb-backend --example loopback_throughput`;
//! add `null` to replace the data logs by a sink and measure the protocol path alone, `sync` to
//! fsync before every acknowledgement (the hoster's default).
//! Dev-dependency `tempfile` is the only extra; nothing here is used by the library.
#![allow(clippy::unwrap_used)]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use zdb_backend::{
    ClientOptions, DataLog, FileStorage, HosterConfig, HosterServer, HosterServerConfig,
    HosterStorage, ZdbClient, VALUE_BYTES_MAX,
};

/// Real namespaces and properties, but data logs that keep nothing (reads return zeros).
struct NullStorage(FileStorage);

struct NullLog(AtomicU64);

impl HosterStorage for NullStorage {
    fn namespaces(&self) -> io::Result<Vec<Vec<u8>>> {
        self.0.namespaces()
    }
    fn create_namespace(&self, name: &[u8], props: &[u8]) -> io::Result<()> {
        self.0.create_namespace(name, props)
    }
    fn read_props(&self, name: &[u8]) -> io::Result<Vec<u8>> {
        self.0.read_props(name)
    }
    fn write_props(&self, name: &[u8], props: &[u8]) -> io::Result<()> {
        self.0.write_props(name, props)
    }
    fn open_log(&self, _name: &[u8]) -> io::Result<Box<dyn DataLog>> {
        Ok(Box::new(NullLog(AtomicU64::new(0))))
    }
}

impl DataLog for NullLog {
    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.0.load(Ordering::SeqCst))
    }
    fn write_at(&self, offset: u64, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.0.fetch_max(offset + len as u64, Ordering::SeqCst);
        Ok(())
    }
    fn read_at(&self, _offset: u64, buf: &mut [u8]) -> io::Result<()> {
        buf.fill(0);
        Ok(())
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.0.store(len, Ordering::SeqCst);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

async fn run(c: &ZdbClient, value_bytes: usize, count: usize, tasks: usize) {
    let value = vec![0x5Au8; value_bytes];
    let total = (value_bytes * count) as f64 / (1024.0 * 1024.0);
    let per_task = count / tasks;

    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let c = c.clone();
        let value = value.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                c.set(format!("{value_bytes}-{t}-{i}").as_bytes(), &value)
                    .await
                    .unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let set_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                let v = c
                    .get(format!("{value_bytes}-{t}-{i}").as_bytes())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(v.len(), value_bytes);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let get_s = start.elapsed().as_secs_f64();
    println!(
        "{value_bytes:>8} B x {count:>5}: SET {:>7.0} MiB/s ({:>6.0} op/s), GET {:>7.0} MiB/s ({:>6.0} op/s)",
        total / set_s,
        count as f64 / set_s,
        total / get_s,
        count as f64 / get_s
    );
}

#[tokio::main]
async fn main() {
    // ZDB_BENCH_DIR picks the file system (e.g. /dev/shm to take the disk out of the picture).
    let dir = match std::env::var("ZDB_BENCH_DIR") {
        Ok(base) => tempfile::tempdir_in(base).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    };
    let mut cfg = HosterServerConfig::new(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        dir.path().to_path_buf(),
    );
    // Protocol throughput; `archiver bench --hoster-writes` measures the cost of fsync.
    cfg.sync = std::env::args().any(|a| a == "sync");
    let server = if std::env::args().any(|a| a == "null") {
        let storage = NullStorage(FileStorage::open(dir.path()).unwrap());
        HosterServer::bind_with_storage(cfg, Arc::new(storage))
            .await
            .unwrap()
    } else {
        HosterServer::bind(cfg).await.unwrap()
    };
    let addr = server.local_addr();
    tokio::spawn(server.run(std::future::pending()));
    let c = ZdbClient::new(
        HosterConfig {
            address: addr.to_string(),
            namespace: "default".into(),
            password: None,
            admin_password: None,
        },
        ClientOptions::default(),
    );
    run(&c, VALUE_BYTES_MAX, 128, 4).await;
    run(&c, 64 * 1024, 8192, 4).await;
    run(&c, 64 * 1024, 8192, 1).await;
}
