//! `archiver bench --challenges`: storage-challenge figures. Proof generation per sample with the
//! shard's tree kept (hot), verification per sample, proof bytes per sample, and audit rounds per
//! second over the 0-db protocol against an embedded hoster process; beside each, the limit it is
//! made of, measured in the same run (one BLAKE3 chunk hash, one ed25519 signature check).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use archiver::hosters::ShardHost;
use ed25519_dalek::{Signer, SigningKey, Verifier};
use prover::challenge::{verify, Challenge, Response};
use zdb_backend::prove::{PartSource, Prover};

const SHARD_BYTES: usize = 16 * 1024 * 1024;
const SAMPLES: u16 = 64;
const ROUNDS: u32 = 200;
const TARGET_GEN_MS: f64 = 1.0;
const TARGET_VERIFY_US: f64 = 20.0;
const TARGET_PROOF_BYTES: f64 = 2048.0;

struct Memory(Vec<Vec<u8>>);

impl PartSource for Memory {
    fn part_len(&self, key: &[u8]) -> std::io::Result<Option<u64>> {
        let i = key
            .len()
            .checked_sub(2)
            .map(|at| u16::from_le_bytes([key[at], key[at + 1]]));
        Ok(i.and_then(|i| self.0.get(i as usize))
            .map(|p| p.len() as u64))
    }
    fn read(&self, key: &[u8], offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let at = key.len() - 2;
        let part = &self.0[u16::from_le_bytes([key[at], key[at + 1]]) as usize];
        Ok(part[offset as usize..offset as usize + len].to_vec())
    }
}

fn challenge(seq: u64) -> Challenge {
    Challenge {
        nonce: rand::random(),
        timestamp_ms: seq,
        segment: 1,
        shard: 2,
        samples: SAMPLES,
    }
}

pub async fn run() -> Result<()> {
    let shard: Vec<u8> = (0..SHARD_BYTES)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
        .collect();
    let parts: Vec<Vec<u8>> = shard
        .chunks(zdb_backend::VALUE_BYTES_MAX)
        .map(<[u8]>::to_vec)
        .collect();
    let source = Memory(parts);
    let key = SigningKey::from_bytes(&[7; 32]);
    let public = key.verifying_key();
    let prover = Prover::new(key.clone());
    let root = prover::merkle::shard_root(&shard);
    println!("challenge bench: 16 MiB shard, {SAMPLES} samples per challenge, {ROUNDS} rounds");

    // Stage limits.
    let t = Instant::now();
    let mut sink = 0u8;
    for c in shard.chunks(1024).take(16_384) {
        sink ^= blake3::hash(c).as_bytes()[0];
    }
    let chunk_hash_us = t.elapsed().as_secs_f64() * 1e6 / 16_384.0;
    let sig = key.sign(b"x");
    let t = Instant::now();
    for _ in 0..1000 {
        public.verify(b"x", &sig).context("ed25519 check")?;
    }
    let sig_check_us = t.elapsed().as_secs_f64() * 1e3;
    std::hint::black_box(sink);

    let t = Instant::now();
    prover
        .answer(&source, b"shard-key", &challenge(0).encode())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut gen = 0.0;
    let mut ver = 0.0;
    let mut bytes = 0usize;
    for r in 1..=ROUNDS {
        let c = challenge(u64::from(r));
        let t = Instant::now();
        let encoded = prover
            .answer(&source, b"shard-key", &c.encode())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        gen += t.elapsed().as_secs_f64();
        bytes += encoded.len();
        let t = Instant::now();
        let response = Response::decode(&encoded).context("decode response")?;
        verify(
            &c,
            &response,
            &public,
            &public.to_bytes(),
            root,
            SHARD_BYTES as u64,
            0,
            1_000,
        )
        .context("verify response")?;
        ver += t.elapsed().as_secs_f64();
    }
    let samples = f64::from(ROUNDS) * f64::from(SAMPLES);
    let gen_ms = gen * 1e3 / samples;
    let ver_us = ver * 1e6 / samples;
    let per_sample = bytes as f64 / samples;
    println!("  tree build (first challenge of a shard, kept afterwards): {build_ms:.1} ms");
    println!(
        "  proof generation per sample (hot): {gen_ms:.4} ms (target <= {TARGET_GEN_MS} ms: {}); one 1 KiB chunk hash {chunk_hash_us:.2} us",
        if gen_ms <= TARGET_GEN_MS { "met" } else { "MISSED" }
    );
    println!(
        "  verification per sample: {ver_us:.1} us (target <= {TARGET_VERIFY_US} us: {}); one ed25519 check {sig_check_us:.1} us, shared by the {SAMPLES} samples",
        if ver_us <= TARGET_VERIFY_US { "met" } else { "MISSED" }
    );
    println!(
        "  proof bytes per sample: {per_sample:.0} (target <= {TARGET_PROOF_BYTES}: {})",
        if per_sample <= TARGET_PROOF_BYTES {
            "met"
        } else {
            "MISSED"
        }
    );

    // Audit rounds per second over the wire: one embedded hoster process, one stored shard.
    let dir = tempfile::tempdir().context("create bench directory")?;
    let exe = archiver_cli::cluster::archiver_exe()?;
    let hosters = archiver_cli::cluster::start_hosters(&exe, dir.path(), 1, 1)?;
    let mut entry = hosters[0].entry();
    entry.public_key = hosters[0].public_key.clone();
    let host: Arc<dyn ShardHost> = Arc::new(archiver::hosters::ZdbHost::new(
        &entry,
        zdb_backend::ClientOptions::default(),
    ));
    host.prepare().await.context("prepare hoster")?;
    host.put_shard(b"bench-shard", &shard)
        .await
        .context("store shard")?;
    let hoster_key =
        archiver::audit::parse_hoster_key(entry.public_key.as_deref().unwrap_or_default())
            .map_err(anyhow::Error::msg)?;
    let t = Instant::now();
    let mut lat = Vec::new();
    for _ in 0..ROUNDS {
        let c = challenge(0);
        let s = Instant::now();
        let encoded = host
            .prove(b"bench-shard", &c.encode())
            .await
            .context("prove")?;
        let response = Response::decode(&encoded).context("decode")?;
        verify(
            &c,
            &response,
            &hoster_key,
            &hoster_key.to_bytes(),
            root,
            SHARD_BYTES as u64,
            0,
            1_000,
        )
        .context("verify over the wire")?;
        lat.push(s.elapsed().as_secs_f64() * 1e3);
    }
    let secs = t.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "audit rounds over the 0-db protocol ({SAMPLES} samples, hoster process on loopback): {:.0} rounds/s, latency p50 {:.2} ms, p99 {:.2} ms",
        f64::from(ROUNDS) / secs.max(1e-9),
        lat[lat.len() / 2],
        lat[(lat.len() - 1) * 99 / 100]
    );
    drop(hosters);
    Ok(())
}
