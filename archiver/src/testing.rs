//! Test doubles for the hoster boundary: an in-memory hoster whose faults are switched on at run
//! time (down, fail the Nth call, flip bits in what it returns, hang). Used by unit tests, the
//! seeded simulation and other crates' tests; real hosters are always 0-db servers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::config::HosterEntry;
use crate::hosters::{HostError, HostResult, HosterSet, ShardHost};

/// An in-memory hoster with injectable faults.
#[derive(Debug)]
pub struct MemoryHost {
    name: String,
    domain: String,
    shards: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    meta: Mutex<HashMap<Vec<u8>, Vec<u8>>>,
    down: AtomicBool,
    hang: AtomicBool,
    flip_reads: AtomicBool,
    calls: AtomicU64,
    /// Fail the call whose 1-based index equals this (0 = never).
    fail_call: AtomicU64,
    /// Its challenge identity (derived from the name, so tests are reproducible).
    identity: ed25519_dalek::SigningKey,
}

/// `n` in-memory hosters `h0`, `h1`, … over three failure domains (`d{i mod 3}`), the config
/// entries naming them (placeholder addresses: the set is what is used) and the set of them: what
/// library tests archive to.
pub fn memory_hosters(n: usize) -> (Vec<Arc<MemoryHost>>, Vec<HosterEntry>, HosterSet) {
    let hosts: Vec<Arc<MemoryHost>> = (0..n)
        .map(|i| Arc::new(MemoryHost::new(&format!("h{i}"), &format!("d{}", i % 3))))
        .collect();
    let entries = (0..n)
        .map(|i| HosterEntry {
            name: format!("h{i}"),
            address: format!("127.0.0.1:{}", 1 + i),
            namespace: "ns".into(),
            password: None,
            admin_password: None,
            domain: format!("d{}", i % 3),
            public_key: None,
            prover: None,
        })
        .collect();
    let set = HosterSet::new(
        hosts
            .iter()
            .map(|h| h.clone() as Arc<dyn ShardHost>)
            .collect(),
    );
    (hosts, entries, set)
}

impl MemoryHost {
    pub fn new(name: &str, domain: &str) -> Self {
        Self {
            name: name.into(),
            domain: domain.into(),
            shards: Mutex::default(),
            meta: Mutex::default(),
            down: AtomicBool::new(false),
            hang: AtomicBool::new(false),
            flip_reads: AtomicBool::new(false),
            calls: AtomicU64::new(0),
            fail_call: AtomicU64::new(0),
            identity: ed25519_dalek::SigningKey::from_bytes(
                blake3::hash(format!("memory hoster {name}").as_bytes()).as_bytes(),
            ),
        }
    }

    /// Its challenge identity, as a config's `public_key` spells it.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.identity.verifying_key().to_bytes())
    }

    /// Stores `data` under `key` behind the archive's back (an orphan, as a failed upload
    /// leaves one).
    pub fn insert_raw(&self, key: &[u8], data: &[u8]) {
        if let Ok(mut m) = self.shards.lock() {
            m.insert(key.to_vec(), data.to_vec());
        }
    }

    /// Whether a shard is stored under `key`.
    pub fn holds(&self, key: &[u8]) -> bool {
        self.shards.lock().is_ok_and(|m| m.contains_key(key))
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
    /// Every call waits forever (the caller's timeout must save it).
    pub fn set_hang(&self, hang: bool) {
        self.hang.store(hang, Ordering::SeqCst);
    }
    /// Shard reads return the data with one bit flipped.
    pub fn set_flip_reads(&self, flip: bool) {
        self.flip_reads.store(flip, Ordering::SeqCst);
    }
    /// Flips one stored bit of every shard at byte `offset` (rot at rest, unlike `set_flip_reads`);
    /// returns how many shards it hit.
    pub fn rot_stored_shards(&self, offset: usize) -> usize {
        let Ok(mut shards) = self.shards.lock() else {
            return 0;
        };
        let mut hit = 0;
        for v in shards.values_mut() {
            if let Some(b) = v.get_mut(offset) {
                *b ^= 0x10;
                hit += 1;
            }
        }
        hit
    }
    /// Fails the `n`-th call from now (1 = the next one).
    pub fn fail_nth_call(&self, n: u64) {
        let now = self.calls.load(Ordering::SeqCst);
        self.fail_call.store(now + n, Ordering::SeqCst);
    }
    pub fn shard_count(&self) -> usize {
        self.shards.lock().map(|m| m.len()).unwrap_or(0)
    }
    /// Drops every stored shard (a hoster that lost its disk).
    pub fn wipe_shards(&self) {
        if let Ok(mut m) = self.shards.lock() {
            m.clear();
        }
    }
    /// All stored values, for searching for leaked plaintext.
    pub fn all_bytes(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        if let Ok(m) = self.shards.lock() {
            out.extend(m.values().cloned());
        }
        if let Ok(m) = self.meta.lock() {
            out.extend(m.values().cloned());
        }
        out
    }

    async fn enter(&self) -> HostResult<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(HostError::Injected(format!("{} is down", self.name)));
        }
        if self.fail_call.load(Ordering::SeqCst) == n {
            return Err(HostError::Injected(format!(
                "{} failed call {n}",
                self.name
            )));
        }
        Ok(())
    }
}

fn block(
    number: u64,
    parent: [u8; 32],
    rng: &mut impl rand::RngCore,
    size: usize,
) -> crate::record::BlockRecord {
    let mut body = vec![0u8; size];
    rng.fill_bytes(&mut body);
    body[..6].copy_from_slice(b"MARKER");
    let mut h = blake3::Hasher::new();
    h.update(&number.to_le_bytes());
    h.update(&parent);
    h.update(&body);
    crate::record::BlockRecord {
        number,
        hash: *h.finalize().as_bytes(),
        parent_hash: parent,
        block: body,
        justification: number.is_multiple_of(4).then(|| vec![7u8; 100]),
        changes: vec![crate::record::StateChange {
            key: b"head".to_vec(),
            value: Some(number.to_le_bytes().to_vec()),
        }],
    }
}

/// A chain of `n` synthetic blocks of `size` random bytes (starting `MARKER`), linked by hash,
/// every fourth justified: a pure function of (`n`, `seed`, `size`).
pub fn chain(n: u64, seed: u64, size: usize) -> Vec<crate::record::BlockRecord> {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let mut parent = [0u8; 32];
    (0..n)
        .map(|i| {
            let b = block(i, parent, &mut rng, size);
            parent = b.hash;
            b
        })
        .collect()
}

fn lock_err() -> HostError {
    HostError::Injected("poisoned lock".into())
}

#[async_trait]
impl ShardHost for MemoryHost {
    fn name(&self) -> &str {
        &self.name
    }
    fn domain(&self) -> &str {
        &self.domain
    }
    fn is_down(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }
    async fn prepare(&self) -> HostResult<()> {
        self.enter().await
    }
    async fn put_shard(&self, key: &[u8], data: &[u8]) -> HostResult<()> {
        self.enter().await?;
        self.shards
            .lock()
            .map_err(|_| lock_err())?
            .insert(key.to_vec(), data.to_vec());
        Ok(())
    }
    async fn get_shard(&self, key: &[u8], len: u64) -> HostResult<Option<Vec<u8>>> {
        self.enter().await?;
        let mut value = self
            .shards
            .lock()
            .map_err(|_| lock_err())?
            .get(key)
            .cloned();
        if let Some(v) = value.as_mut() {
            if v.len() as u64 != len {
                return Ok(None);
            }
            if self.flip_reads.load(Ordering::SeqCst) && !v.is_empty() {
                let i = v.len() / 2;
                v[i] ^= 0x01;
            }
        }
        Ok(value)
    }
    async fn has_shard(&self, key: &[u8], len: u64) -> HostResult<bool> {
        self.enter().await?;
        Ok(self
            .shards
            .lock()
            .map_err(|_| lock_err())?
            .get(key)
            .is_some_and(|v| v.len() as u64 == len))
    }
    async fn put_meta(&self, key: &[u8], data: &[u8]) -> HostResult<()> {
        self.enter().await?;
        self.meta
            .lock()
            .map_err(|_| lock_err())?
            .insert(key.to_vec(), data.to_vec());
        Ok(())
    }
    async fn get_meta(&self, key: &[u8]) -> HostResult<Option<Vec<u8>>> {
        self.enter().await?;
        Ok(self.meta.lock().map_err(|_| lock_err())?.get(key).cloned())
    }
    async fn ping(&self) -> HostResult<()> {
        self.enter().await
    }
    async fn list_shards(&self) -> HostResult<crate::hosters::ShardListing> {
        self.enter().await?;
        let shards = self.shards.lock().map_err(|_| lock_err())?;
        Ok(shards
            .keys()
            .map(|k| (k.clone(), vec![k.clone()]))
            .collect())
    }
    async fn delete_shard_keys(&self, keys: &[Vec<u8>]) -> HostResult<()> {
        self.enter().await?;
        let mut shards = self.shards.lock().map_err(|_| lock_err())?;
        for k in keys {
            shards.remove(k);
        }
        Ok(())
    }
    async fn prove(&self, key: &[u8], challenge: &[u8]) -> HostResult<Vec<u8>> {
        self.enter().await?;
        let challenge = prover::challenge::Challenge::decode(challenge)
            .map_err(|e| HostError::Refused(e.to_string()))?;
        let shard = self
            .shards
            .lock()
            .map_err(|_| lock_err())?
            .get(key)
            .cloned()
            .ok_or_else(|| HostError::Refused("Key not found".into()))?;
        let tree = prover::challenge::ShardTree::from_shard(&shard);
        let chunk_bytes = prover::merkle::CHUNK_BYTES;
        let chunk = |i: u64| {
            let start = usize::try_from(i).ok()?.checked_mul(chunk_bytes)?;
            shard
                .get(start..(start + chunk_bytes).min(shard.len()))
                .map(<[u8]>::to_vec)
        };
        let id = self.identity.verifying_key().to_bytes();
        prover::challenge::respond(&challenge, &tree, chunk, &id, &self.identity)
            .map(|r| r.encode())
            .map_err(|e| HostError::Refused(e.to_string()))
    }
    async fn stored_bytes(&self) -> HostResult<u64> {
        self.enter().await?;
        Ok(self
            .shards
            .lock()
            .map_err(|_| lock_err())?
            .values()
            .map(|v| v.len() as u64)
            .sum())
    }
}
