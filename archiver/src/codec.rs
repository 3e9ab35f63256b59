//! The segment codec: a sealed segment file → AES-256-GCM frames → Reed-Solomon k+m shards, each
//! with the Merkle root of its chunk tree; and back.
//!
//! Frame f of the ciphertext is piece f mod k of stripe f div k: each data-shard piece is one whole
//! frame (plaintext + tag), so data shards decrypt piecewise without reassembly copies. Plaintext is
//! read straight into the shard buffers and encrypted in place: a segment is held once (plus parity),
//! never several times over. Encoding is deterministic (per-segment key bound to the segment's
//! content hash and every encoding parameter, nonce = frame index), so a retried dispersal rewrites
//! identical bytes and no (key, nonce) pair ever encrypts two different plaintexts.

use std::io::Read;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use reed_solomon_erasure::galois_8::ReedSolomon;

use crate::error::{ArchiveError, Result};
use crate::keys::{EncodingParams, MasterKey};
use crate::manifest::{
    frame_count, Manifest, CIPHER_AES_256_GCM, COMPRESSION_NONE, COMPRESSION_ZSTD,
    MANIFEST_VERSION, TAG_BYTES,
};

/// Bytes of one shard piece = one AEAD frame with its tag. 256 KiB keeps a stripe (k+m pieces) small
/// for streaming while the per-frame tag and the zero padding of the last stripe stay negligible.
pub const PIECE_BYTES: u32 = 256 * 1024;
/// Plaintext bytes per AEAD frame at full piece size.
pub const FRAME_PLAIN_BYTES: u32 = PIECE_BYTES - TAG_BYTES as u32;

/// Piece size for a payload: `PIECE_BYTES`, or for a payload smaller than one full stripe just
/// enough (in whole Merkle chunks) for one stripe, so a small segment is not padded to
/// k × 256 KiB per shard set.
pub fn piece_bytes_for(payload_bytes: u64, k: usize) -> usize {
    let chunk = prover::CHUNK_BYTES as u64;
    let needed = payload_bytes.div_ceil(k as u64) + TAG_BYTES as u64;
    needed
        .div_ceil(chunk)
        .saturating_mul(chunk)
        .clamp(chunk, PIECE_BYTES as u64) as usize
}

/// Shards of one segment, ready to disperse.
pub struct EncodedSegment {
    /// The manifest without its chain link (`prev_manifest_hash` is set by the disperser).
    pub manifest: Manifest,
    pub shards: Vec<Vec<u8>>,
}

/// What the codec needs to know about a sealed segment.
#[derive(Clone, Copy, Debug)]
pub struct SegmentIdentity {
    pub segment: u64,
    pub first_number: u64,
    pub last_number: u64,
    pub first_hash: [u8; 32],
    pub last_hash: [u8; 32],
    pub blocks_root: [u8; 32],
    pub segment_hash: [u8; 32],
    pub segment_bytes: u64,
    /// `COMPRESSION_NONE` or `COMPRESSION_ZSTD`.
    pub compression: u8,
    /// Bytes the reader yields: `segment_bytes`, or the compressed length.
    pub payload_bytes: u64,
}

fn nonce(frame: u64) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&frame.to_le_bytes());
    Nonce::from(n)
}

/// Associated data of frame `f`: binds the frame to its segment, position and the payload's length,
/// so frames cannot be reordered, dropped, truncated or moved to another segment.
fn aad(segment: u64, payload_bytes: u64, frame: u64, frames: u64) -> [u8; 36] {
    let mut a = [0u8; 36];
    a[0..4].copy_from_slice(b"PAFR");
    a[4..12].copy_from_slice(&segment.to_le_bytes());
    a[12..20].copy_from_slice(&payload_bytes.to_le_bytes());
    a[20..28].copy_from_slice(&frame.to_le_bytes());
    a[28..36].copy_from_slice(&frames.to_le_bytes());
    a
}

fn rs(k: usize, m: usize) -> Result<ReedSolomon> {
    ReedSolomon::new(k, m).map_err(|e| ArchiveError::Codec(format!("reed-solomon {k}+{m}: {e:?}")))
}

fn cipher(
    key: &MasterKey,
    segment: u64,
    segment_hash: &[u8; 32],
    params: &EncodingParams,
) -> Result<Aes256Gcm> {
    let k = key.segment_key(segment, segment_hash, params);
    Aes256Gcm::new_from_slice(k.as_ref())
        .map_err(|_| ArchiveError::Codec("segment key length".into()))
}

/// Encodes a segment's payload read from `reader` (exactly `id.payload_bytes` bytes) into k+m shards.
/// `buffers` are recycled shard buffers (any number, any length): reusing them spares the page
/// faults of fresh memory, which cost as much as a codec stage on a VM.
pub fn encode_segment(
    key: &MasterKey,
    id: &SegmentIdentity,
    k: usize,
    m: usize,
    reader: &mut impl Read,
    mut buffers: Vec<Vec<u8>>,
) -> Result<EncodedSegment> {
    let piece = piece_bytes_for(id.payload_bytes, k);
    let frame_plain = piece as u32 - TAG_BYTES as u32;
    let params = EncodingParams {
        format_version: MANIFEST_VERSION,
        cipher: CIPHER_AES_256_GCM,
        compression: id.compression,
        data_shards: k as u8,
        parity_shards: m as u8,
        frame_plain_bytes: frame_plain,
        piece_bytes: piece as u32,
        payload_bytes: id.payload_bytes,
        segment_bytes: id.segment_bytes,
    };
    let aes = cipher(key, id.segment, &id.segment_hash, &params)?;
    let frames = frame_count(id.payload_bytes, frame_plain);
    let stripes = frames.div_ceil(k as u64);
    let shard_bytes = stripes as usize * piece;
    let mut shards: Vec<Vec<u8>> = (0..k + m)
        .map(|_| {
            let mut b = buffers.pop().unwrap_or_default();
            // Only newly added bytes are zeroed; padding is zeroed explicitly below.
            b.resize(shard_bytes, 0);
            b.truncate(shard_bytes);
            b
        })
        .collect();
    // 1. Plaintext straight into place (one sequential read); padding zeroed.
    let plain_len =
        |f: u64| (id.payload_bytes - f * frame_plain as u64).min(frame_plain as u64) as usize;
    for f in 0..stripes * k as u64 {
        let offset = (f / k as u64) as usize * piece;
        let buf = &mut shards[(f % k as u64) as usize][offset..offset + piece];
        if f >= frames {
            buf.fill(0);
            continue;
        }
        let plain = plain_len(f);
        reader
            .read_exact(&mut buf[..plain])
            .map_err(|e| ArchiveError::SegmentCorrupt {
                segment: id.segment,
                reason: format!("reading frame {f}: {e}"),
            })?;
        buf[plain + TAG_BYTES..].fill(0);
    }
    // 2. Encrypt in place, data shards split over both cores (frames are independent).
    let encrypt_group = |first: usize, group: &mut [Vec<u8>]| -> Result<()> {
        for (g, shard) in group.iter_mut().enumerate() {
            let mut f = (first + g) as u64;
            while f < frames {
                let plain = plain_len(f);
                let offset = (f / k as u64) as usize * piece;
                let buf = &mut shard[offset..offset + piece];
                let tag = aes
                    .encrypt_inout_detached(
                        &nonce(f),
                        &aad(id.segment, id.payload_bytes, f, frames),
                        (&mut buf[..plain]).into(),
                    )
                    .map_err(|_| ArchiveError::Codec("frame encryption".into()))?;
                buf[plain..plain + TAG_BYTES].copy_from_slice(tag.as_slice());
                f += k as u64;
            }
        }
        Ok(())
    };
    let split = k.div_ceil(2);
    let (lo, hi) = shards[..k].split_at_mut(split);
    std::thread::scope(|s| {
        let other = s.spawn(|| encrypt_group(split, hi));
        let mine = encrypt_group(0, lo);
        let other = other
            .join()
            .unwrap_or_else(|_| Err(ArchiveError::Task("encrypt thread panicked".into())));
        mine.and(other)
    })?;
    // 3. Parity, the shard columns split over both cores (Reed-Solomon is column-wise).
    let codec = rs(k, m)?;
    let half = shard_bytes / 2;
    let (data, parity) = shards.split_at_mut(k);
    let (mut p_lo, mut p_hi): (Vec<&mut [u8]>, Vec<&mut [u8]>) =
        parity.iter_mut().map(|p| p.split_at_mut(half)).unzip();
    let d_lo: Vec<&[u8]> = data.iter().map(|d| &d[..half]).collect();
    let d_hi: Vec<&[u8]> = data.iter().map(|d| &d[half..]).collect();
    std::thread::scope(|s| {
        let other = s.spawn(|| codec.encode_sep(&d_hi, &mut p_hi));
        let mine = codec.encode_sep(&d_lo, &mut p_lo);
        let other = other
            .join()
            .unwrap_or(Err(reed_solomon_erasure::Error::InvalidIndex));
        mine.and(other)
    })
    .map_err(|e| ArchiveError::Codec(format!("reed-solomon encode: {e:?}")))?;
    let shard_roots = shard_roots(&shards)?;
    let part_bytes = crate::hosters::SHARD_PART_BYTES;
    let part_hashes = part_hashes(&shards, part_bytes)?;
    let manifest = Manifest {
        segment: id.segment,
        data_shards: k as u8,
        parity_shards: m as u8,
        first_number: id.first_number,
        last_number: id.last_number,
        first_hash: id.first_hash,
        last_hash: id.last_hash,
        blocks_root: id.blocks_root,
        segment_hash: id.segment_hash,
        segment_bytes: id.segment_bytes,
        cipher: CIPHER_AES_256_GCM,
        compression: id.compression,
        payload_bytes: id.payload_bytes,
        frame_plain_bytes: frame_plain,
        piece_bytes: piece as u32,
        chunk_bytes: prover::CHUNK_BYTES as u32,
        shard_bytes: shard_bytes as u64,
        prev_manifest_hash: [0; 32],
        shard_roots,
        part_bytes: part_bytes as u32,
        part_hashes,
    };
    Ok(EncodedSegment { manifest, shards })
}

/// Merkle roots of all shards, computed on both cores: hashing is the codec's costliest stage.
fn shard_roots(shards: &[Vec<u8>]) -> Result<Vec<[u8; 32]>> {
    let half = shards.len().div_ceil(2);
    let (a, b) = shards.split_at(half);
    std::thread::scope(|s| {
        let first = s.spawn(|| a.iter().map(|x| prover::shard_root(x)).collect::<Vec<_>>());
        let mut second: Vec<[u8; 32]> = b.iter().map(|x| prover::shard_root(x)).collect();
        let mut roots = first
            .join()
            .map_err(|_| ArchiveError::Task("shard hashing thread panicked".into()))?;
        roots.append(&mut second);
        Ok(roots)
    })
}

/// BLAKE3 of every stored part of every shard, shard-major, on both cores.
fn part_hashes(shards: &[Vec<u8>], part_bytes: usize) -> Result<Vec<[u8; 32]>> {
    let hash_all = |group: &[Vec<u8>]| -> Vec<[u8; 32]> {
        group
            .iter()
            .flat_map(|s| s.chunks(part_bytes).map(|p| *blake3::hash(p).as_bytes()))
            .collect()
    };
    let half = shards.len().div_ceil(2);
    let (a, b) = shards.split_at(half);
    std::thread::scope(|s| {
        let first = s.spawn(|| hash_all(a));
        let mut second = hash_all(b);
        let mut hashes = first
            .join()
            .map_err(|_| ArchiveError::Task("part hashing thread panicked".into()))?;
        hashes.append(&mut second);
        Ok(hashes)
    })
}

/// Byte range of part `p` in a shard.
fn part_range(manifest: &Manifest, p: usize) -> std::ops::Range<usize> {
    let part = manifest.part_bytes as usize;
    let start = p * part;
    start..(start + part).min(manifest.shard_bytes as usize)
}

/// The parts of shard `i` that do not match their hashes (all of them for a wrong length), in
/// order. `skip` parts are known unreadable already and counted as damaged without hashing.
pub fn damaged_parts(manifest: &Manifest, i: usize, shard: &[u8], skip: &[usize]) -> Vec<usize> {
    let parts = manifest.parts_per_shard();
    if shard.len() as u64 != manifest.shard_bytes {
        return (0..parts).collect();
    }
    (0..parts)
        .filter(|&p| {
            skip.contains(&p)
                || manifest.part_hash(i, p)
                    != Some(blake3::hash(&shard[part_range(manifest, p)]).as_bytes())
        })
        .collect()
}

/// Rebuilds, part-stripe by part-stripe, every part that is missing or damaged: `shards[i]` is
/// `None` for a shard not had at all, `damaged[i]` lists the bad parts of a shard that was read.
/// Each part-stripe needs any k intact parts, so damage spread over every shard is survived as
/// long as no stripe lost more than m. With `data_only`, parity is not rebuilt.
pub fn reconstruct_parts(
    manifest: &Manifest,
    shards: &mut [Option<Vec<u8>>],
    damaged: &[Vec<usize>],
    data_only: bool,
) -> Result<()> {
    if damaged.iter().all(Vec::is_empty) {
        return reconstruct(manifest, shards, data_only);
    }
    let k = manifest.data_shards as usize;
    let n = manifest.shards_total();
    let codec = rs(k, n - k)?;
    let shard_bytes = manifest.shard_bytes as usize;
    // Shards not had at all, fixed before the first stripe fills them in.
    let absent: Vec<bool> = shards.iter().map(Option::is_none).collect();
    for p in 0..manifest.parts_per_shard() {
        let range = part_range(manifest, p);
        let bad = |i: usize| absent[i] || damaged.get(i).is_some_and(|d| d.contains(&p));
        let rebuild: Vec<usize> = (0..n)
            .filter(|&i| bad(i) && (!data_only || i < k))
            .collect();
        if rebuild.is_empty() {
            continue;
        }
        let mut row: Vec<Option<Vec<u8>>> = (0..n)
            .map(|i| match &shards[i] {
                Some(s) if !bad(i) => Some(s[range.clone()].to_vec()),
                _ => None,
            })
            .collect();
        // Stays None for parity not rebuilt (data only): never read below.
        let good = row.iter().filter(|r| r.is_some()).count();
        if good < k {
            return Err(ArchiveError::NotEnoughShards {
                segment: manifest.segment,
                available: good,
                needed: k,
                detail: format!("part-stripe {p}"),
            });
        }
        let res = if data_only {
            codec.reconstruct_data(&mut row)
        } else {
            codec.reconstruct(&mut row)
        };
        res.map_err(|e| {
            ArchiveError::Codec(format!(
                "segment {} part-stripe {p}: reconstruct: {e:?}",
                manifest.segment
            ))
        })?;
        for i in rebuild {
            let part = row[i].take().unwrap_or_default();
            let shard = shards[i].get_or_insert_with(|| vec![0; shard_bytes]);
            shard[range.clone()].copy_from_slice(&part);
        }
    }
    Ok(())
}

/// Does this shard's content match the manifest's root for index `i`?
pub fn shard_matches(manifest: &Manifest, i: usize, shard: &[u8]) -> bool {
    shard.len() as u64 == manifest.shard_bytes
        && manifest.shard_roots.get(i) == Some(&prover::shard_root(shard))
}

/// Rebuilds missing shards in place. `shards[i]` is `Some` for every verified shard; at least k must be.
pub fn reconstruct(
    manifest: &Manifest,
    shards: &mut [Option<Vec<u8>>],
    data_only: bool,
) -> Result<()> {
    let k = manifest.data_shards as usize;
    let m = manifest.parity_shards as usize;
    let have = shards.iter().filter(|s| s.is_some()).count();
    if have < k {
        return Err(ArchiveError::NotEnoughShards {
            segment: manifest.segment,
            available: have,
            needed: k,
            detail: "reconstruct".into(),
        });
    }
    let codec = rs(k, m)?;
    let res = if data_only {
        codec.reconstruct_data(shards)
    } else {
        codec.reconstruct(shards)
    };
    res.map_err(|e| {
        ArchiveError::Codec(format!("segment {}: reconstruct: {e:?}", manifest.segment))
    })
}

/// Largest segment a decoder will decompress into: bounds memory against a forged manifest.
const DECOMPRESSED_BYTES_MAX: u64 =
    crate::config::SEGMENT_SIZE_BYTES_MAX + 2 * crate::record::RECORD_BYTES_MAX as u64;

/// Decrypts the data shards (all present, verified) into the plaintext segment (decompressing when
/// the manifest says so) and checks it against the manifest's segment hash. Decrypts in place.
pub fn decode_segment(
    key: &MasterKey,
    manifest: &Manifest,
    data_shards: &mut [Vec<u8>],
) -> Result<Vec<u8>> {
    let k = manifest.data_shards as usize;
    let corrupt = |reason: String| ArchiveError::SegmentCorrupt {
        segment: manifest.segment,
        reason,
    };
    if data_shards.len() != k {
        return Err(ArchiveError::Codec(
            "decode needs exactly the data shards".into(),
        ));
    }
    let aes = cipher(
        key,
        manifest.segment,
        &manifest.segment_hash,
        &manifest.encoding_params(),
    )?;
    let frames = frame_count(manifest.payload_bytes, manifest.frame_plain_bytes);
    let piece = manifest.piece_bytes as usize;
    let mut remaining = manifest.payload_bytes;
    let mut payload =
        Vec::with_capacity(manifest.payload_bytes.min(DECOMPRESSED_BYTES_MAX) as usize);
    for f in 0..frames {
        let plain = remaining.min(manifest.frame_plain_bytes as u64) as usize;
        remaining -= plain as u64;
        let offset = (f / k as u64) as usize * piece;
        let shard = &mut data_shards[(f % k as u64) as usize];
        if shard.len() < offset + piece {
            return Err(corrupt(format!("shard too short for frame {f}")));
        }
        let buf = &mut shard[offset..offset + piece];
        let (msg, rest) = buf.split_at_mut(plain);
        let tag = Tag::try_from(&rest[..TAG_BYTES])
            .map_err(|_| ArchiveError::Codec("tag length".into()))?;
        aes.decrypt_inout_detached(
            &nonce(f),
            &aad(manifest.segment, manifest.payload_bytes, f, frames),
            msg.into(),
            &tag,
        )
        .map_err(|_| ArchiveError::Decrypt {
            segment: manifest.segment,
            frame: f,
        })?;
        payload.extend_from_slice(msg);
    }
    let plaintext = match manifest.compression {
        COMPRESSION_NONE => payload,
        COMPRESSION_ZSTD => {
            if manifest.segment_bytes > DECOMPRESSED_BYTES_MAX {
                return Err(corrupt(format!(
                    "{} bytes is over the decompression bound",
                    manifest.segment_bytes
                )));
            }
            let out = zstd::bulk::decompress(&payload, manifest.segment_bytes as usize)
                .map_err(|e| corrupt(format!("zstd: {e}")))?;
            if out.len() as u64 != manifest.segment_bytes {
                return Err(corrupt(
                    "decompressed length differs from the manifest".into(),
                ));
            }
            out
        }
        other => return Err(corrupt(format!("unknown compression id {other}"))),
    };
    if *blake3::hash(&plaintext).as_bytes() != manifest.segment_hash {
        return Err(corrupt(
            "restored plaintext does not match the manifest's segment hash".into(),
        ));
    }
    Ok(plaintext)
}

/// Compresses a whole segment for `COMPRESSION_ZSTD`.
pub fn compress(segment: u64, plaintext: &[u8]) -> Result<Vec<u8>> {
    zstd::bulk::compress(plaintext, ZSTD_LEVEL)
        .map_err(|e| ArchiveError::Codec(format!("segment {segment}: zstd: {e}")))
}

/// zstd's default level: ~150 MB/s per core here; higher levels cost more than they save on
/// block data.
const ZSTD_LEVEL: i32 = 3;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn identity(data: &[u8]) -> SegmentIdentity {
        SegmentIdentity {
            segment: 5,
            first_number: 1,
            last_number: 2,
            first_hash: [1; 32],
            last_hash: [2; 32],
            blocks_root: [3; 32],
            segment_hash: *blake3::hash(data).as_bytes(),
            segment_bytes: data.len() as u64,
            compression: COMPRESSION_NONE,
            payload_bytes: data.len() as u64,
        }
    }

    fn data(len: usize) -> Vec<u8> {
        let mut x = 0x1234_5678u32;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// Every shard damaged in a different part (and one shard missing altogether): each
    /// part-stripe keeps k intact parts, so every shard is rebuilt exactly.
    #[test]
    fn part_stripes_rebuild_damage_spread_over_every_shard() {
        let key = MasterKey::from_bytes([3; 32]);
        let plain = data(PIECE_BYTES as usize * 9 + 333);
        let id = identity(&plain);
        let enc = encode_segment(&key, &id, 4, 2, &mut plain.as_slice(), Vec::new()).unwrap();
        let m = &enc.manifest;
        let parts = m.parts_per_shard();
        assert!(parts >= 6, "{parts}");
        for data_only in [true, false] {
            let mut shards: Vec<Option<Vec<u8>>> = enc.shards.iter().cloned().map(Some).collect();
            let mut damaged = vec![Vec::new(); 6];
            for (i, shard) in shards.iter_mut().enumerate().take(5) {
                let s = shard.as_mut().unwrap();
                s[i * m.part_bytes as usize + 7] ^= 0x40;
                damaged[i] = damaged_parts(m, i, s, &[]);
                assert_eq!(damaged[i], vec![i]);
            }
            shards[5] = None;
            reconstruct_parts(m, &mut shards, &damaged, data_only).unwrap();
            for (i, s) in shards.iter().enumerate() {
                if data_only && i >= 4 {
                    continue;
                }
                assert_eq!(
                    s.as_ref(),
                    Some(&enc.shards[i]),
                    "shard {i} data_only {data_only}"
                );
            }
        }
        // Two damaged parts in one stripe plus a missing shard: m + 1 lost, a clear error.
        let mut shards: Vec<Option<Vec<u8>>> = enc.shards.iter().cloned().map(Some).collect();
        shards[5] = None;
        let mut damaged = vec![Vec::new(); 6];
        damaged[0] = vec![2];
        damaged[1] = vec![2];
        assert!(matches!(
            reconstruct_parts(m, &mut shards, &damaged, true),
            Err(ArchiveError::NotEnoughShards { .. })
        ));
    }

    #[test]
    fn round_trip_with_lost_shards() {
        let key = MasterKey::from_bytes([3; 32]);
        for len in [1usize, 1000, PIECE_BYTES as usize * 5 + 17] {
            let plain = data(len);
            let id = identity(&plain);
            let enc = encode_segment(&key, &id, 4, 2, &mut plain.as_slice(), Vec::new()).unwrap();
            for (i, s) in enc.shards.iter().enumerate() {
                assert!(shard_matches(&enc.manifest, i, s));
            }
            // Lose two data shards.
            let mut shards: Vec<Option<Vec<u8>>> = enc.shards.iter().cloned().map(Some).collect();
            shards[0] = None;
            shards[2] = None;
            reconstruct(&enc.manifest, &mut shards, true).unwrap();
            let mut data_shards: Vec<Vec<u8>> =
                shards.into_iter().take(4).map(Option::unwrap).collect();
            let out = decode_segment(&key, &enc.manifest, &mut data_shards).unwrap();
            assert_eq!(out, plain);
            // Deterministic: encoding again gives the same shards.
            // Recycled, dirty buffers of other sizes give the same shards.
            let dirty = vec![
                vec![0xFF; 3],
                vec![0xEE; 2 * PIECE_BYTES as usize + 5],
                vec![0xDD; 10],
            ];
            let again = encode_segment(&key, &id, 4, 2, &mut plain.as_slice(), dirty).unwrap();
            assert_eq!(again.shards, enc.shards);
        }
    }

    #[test]
    fn compressed_round_trip() {
        let key = MasterKey::from_bytes([3; 32]);
        let plain: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8 / 8).collect();
        let packed = compress(5, &plain).unwrap();
        assert!(packed.len() < plain.len() / 4);
        let mut id = identity(&plain);
        id.compression = COMPRESSION_ZSTD;
        id.payload_bytes = packed.len() as u64;
        let enc = encode_segment(&key, &id, 3, 2, &mut packed.as_slice(), Vec::new()).unwrap();
        assert_eq!(enc.manifest.compression, COMPRESSION_ZSTD);
        let manifest = Manifest::decode(5, &enc.manifest.encode()).unwrap();
        let mut data = enc.shards[..3].to_vec();
        assert_eq!(decode_segment(&key, &manifest, &mut data).unwrap(), plain);
    }

    #[test]
    fn wrong_key_and_tampering_are_detected() {
        let key = MasterKey::from_bytes([3; 32]);
        let plain = data(100_000);
        let id = identity(&plain);
        let enc = encode_segment(&key, &id, 2, 1, &mut plain.as_slice(), Vec::new()).unwrap();
        let mut shards = enc.shards[..2].to_vec();
        let other = MasterKey::from_bytes([4; 32]);
        let err = decode_segment(&other, &enc.manifest, &mut shards.clone()).unwrap_err();
        assert!(
            matches!(
                err,
                ArchiveError::Decrypt {
                    segment: 5,
                    frame: 0
                }
            ),
            "{err}"
        );
        // 100 kB is one frame, all in data shard 0 (shard 1 holds only padding).
        shards[0][10] ^= 1;
        assert!(!shard_matches(&enc.manifest, 0, &shards[0]));
        let err = decode_segment(&key, &enc.manifest, &mut shards).unwrap_err();
        assert!(
            matches!(err, ArchiveError::Decrypt { segment: 5, .. }),
            "{err}"
        );
        // Plaintext does not appear in any shard.
        let needle = &plain[5000..5032];
        for s in &enc.shards {
            assert!(!s.windows(32).any(|w| w == needle));
        }
    }
}
