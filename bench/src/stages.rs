//! Single-stage throughput limits of the codec on this machine (AES-256-GCM, Reed-Solomon encode,
//! BLAKE3 chunk tree, plain BLAKE3), measured in-process so `archiver bench` can report pipeline
//! figures as ratios of what each stage alone can do in the same run.

use std::time::Instant;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use reed_solomon_erasure::galois_8::ReedSolomon;

use archiver::codec::PIECE_BYTES;

/// Bytes per second of each stage, one core.
#[derive(Clone, Copy, Debug, Default)]
pub struct StageLimits {
    pub aes_gcm: f64,
    pub rs_4_2: f64,
    pub rs_16_4: f64,
    /// BLAKE3 over 1 KiB chunks + the rs_merkle tree (what each shard costs), per shard byte.
    pub merkle_chunks: f64,
    pub blake3: f64,
    pub memcpy: f64,
}

impl StageLimits {
    /// The codec's single-core bound per byte of segment data for k+m: encrypt every byte, encode,
    /// and hash (k+m)/k bytes of shards twice (the chunk tree for the shard root, plain BLAKE3 for
    /// the part hashes).
    pub fn codec_bound(&self, k: usize, m: usize) -> f64 {
        let rs = if k >= 16 { self.rs_16_4 } else { self.rs_4_2 };
        let expansion = (k + m) as f64 / k as f64;
        let per_byte = 1.0 / self.aes_gcm
            + 1.0 / rs
            + expansion / self.merkle_chunks
            + expansion / self.blake3;
        1.0 / per_byte
    }

    /// Share of the codec's per-byte cost that the part hashes take for k+m.
    pub fn part_hash_share(&self, k: usize, m: usize) -> f64 {
        let expansion = (k + m) as f64 / k as f64;
        (expansion / self.blake3) * self.codec_bound(k, m)
    }
}

fn best_of<F: FnMut()>(rounds: usize, bytes: usize, mut f: F) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..rounds {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    bytes as f64 / best.max(1e-9)
}

/// Measures each stage over `bytes` of pseudo-random data (best of 3 runs).
pub fn measure(bytes: usize) -> StageLimits {
    let bytes = bytes.max(PIECE_BYTES as usize * 16);
    let mut data = vec![0u8; bytes];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    let mut out = StageLimits::default();

    let aes = Aes256Gcm::new_from_slice(&[7u8; 32]).ok();
    let mut buf = data.clone();
    out.aes_gcm = best_of(3, bytes, || {
        if let Some(aes) = &aes {
            for (i, frame) in buf.chunks_mut(PIECE_BYTES as usize - 16).enumerate() {
                let mut n = [0u8; 12];
                n[..8].copy_from_slice(&(i as u64).to_le_bytes());
                let _ = aes.encrypt_inout_detached(&Nonce::from(n), b"aad", frame.into());
            }
        }
    });

    for (k, m, slot) in [(4usize, 2usize, 0), (16, 4, 1)] {
        let shard = bytes / k;
        let mut shards: Vec<Vec<u8>> = data.chunks(shard).take(k).map(<[u8]>::to_vec).collect();
        shards.extend((0..m).map(|_| vec![0u8; shard]));
        let rate = match ReedSolomon::new(k, m) {
            Ok(rs) => best_of(3, shard * k, || {
                let _ = rs.encode(&mut shards);
            }),
            Err(_) => 0.0,
        };
        if slot == 0 {
            out.rs_4_2 = rate;
        } else {
            out.rs_16_4 = rate;
        }
    }

    out.merkle_chunks = best_of(3, bytes, || {
        std::hint::black_box(prover::shard_root(&data));
    });
    out.blake3 = best_of(3, bytes, || {
        std::hint::black_box(blake3::hash(&data));
    });
    let mut dst = vec![0u8; bytes];
    out.memcpy = best_of(3, bytes, || {
        dst.copy_from_slice(&data);
        std::hint::black_box(&dst);
    });
    out
}
