//! Byte layout of segment files: the 64-byte segment header and the CRC-protected block records
//! (specs/segment.md). Parsing never trusts a length it has not bounds-checked.

use crate::error::{ArchiveError, Result};

/// First 8 bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"POASEG01";
pub const SEGMENT_HEADER_BYTES: usize = 64;
/// Tag at offset 4 of every record: lets recovery tell a torn record from stray bytes.
pub const RECORD_MAGIC: [u8; 4] = *b"PABR";
/// Fixed part of a record before the variable payloads.
pub const RECORD_HEADER_BYTES: usize = 92;
/// Trailing CRC32.
pub const RECORD_TRAILER_BYTES: usize = 4;
/// Marks "no justification" in the justification length field.
pub const JUSTIFICATION_NONE: u32 = u32::MAX;
/// Marks a deleted key in a state change's value length field.
pub const VALUE_DELETED: u32 = u32::MAX;
/// Largest block body accepted. Substrate's default max block is 5 MiB; 16 MiB leaves room for other
/// PoA chains while keeping one record far below the segment size.
pub const BLOCK_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Largest justification accepted (a GRANDPA justification for 1,000 authorities is ~100 KiB).
pub const JUSTIFICATION_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Largest encoded state-change set handed over with one block.
pub const CHANGES_BYTES_MAX: usize = 16 * 1024 * 1024;

/// The header that opens a segment file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub segment: u64,
    /// Number of the first block this segment holds (the next expected block when it was created).
    pub first_number: u64,
    /// Hash of the block before `first_number` ([0; 32] at the start of the archive).
    pub prev_hash: [u8; 32],
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut out = [0u8; SEGMENT_HEADER_BYTES];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..16].copy_from_slice(&self.segment.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_number.to_le_bytes());
        // 24..32 reserved, zero.
        out[32..64].copy_from_slice(&self.prev_hash);
        out
    }

    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() < SEGMENT_HEADER_BYTES {
            return Err(format!(
                "header truncated: {} of {SEGMENT_HEADER_BYTES} bytes",
                bytes.len()
            ));
        }
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err("bad magic: not a segment file".into());
        }
        if bytes[24..32] != [0u8; 8] {
            return Err("reserved header bytes are not zero".into());
        }
        Ok(Self {
            segment: u64_at(bytes, 8),
            first_number: u64_at(bytes, 16),
            prev_hash: hash_at(bytes, 32),
        })
    }
}

/// One change to the chain's current state that a block produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub key: Vec<u8>,
    /// `None` deletes the key.
    pub value: Option<Vec<u8>>,
}

/// A finalized block as the archive receives it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BlockRecord {
    pub number: u64,
    pub hash: [u8; 32],
    pub parent_hash: [u8; 32],
    /// The block bytes as the chain encodes them (SCALE for Substrate chains).
    pub block: Vec<u8>,
    pub justification: Option<Vec<u8>>,
    /// State changes to apply atomically with this block.
    pub changes: Vec<StateChange>,
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
pub(crate) fn hash_at(b: &[u8], at: usize) -> [u8; 32] {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[at..at + 32]);
    a
}

fn encode_changes(changes: &[StateChange], out: &mut Vec<u8>) {
    out.extend_from_slice(&(changes.len() as u32).to_le_bytes());
    for c in changes {
        out.extend_from_slice(&(c.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&c.key);
        match &c.value {
            Some(v) => {
                out.extend_from_slice(&(v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend_from_slice(&VALUE_DELETED.to_le_bytes()),
        }
    }
}

fn changes_len(changes: &[StateChange]) -> usize {
    4 + changes
        .iter()
        .map(|c| 8 + c.key.len() + c.value.as_ref().map_or(0, Vec::len))
        .sum::<usize>()
}

fn decode_changes(mut b: &[u8]) -> std::result::Result<Vec<StateChange>, String> {
    let take_u32 = |b: &mut &[u8]| -> std::result::Result<u32, String> {
        if b.len() < 4 {
            return Err("state changes truncated".into());
        }
        let v = u32_at(b, 0);
        *b = &b[4..];
        Ok(v)
    };
    let take = |b: &mut &[u8], n: usize| -> std::result::Result<Vec<u8>, String> {
        if b.len() < n {
            return Err("state changes truncated".into());
        }
        let (head, tail) = b.split_at(n);
        *b = tail;
        Ok(head.to_vec())
    };
    let count = take_u32(&mut b)? as usize;
    // Each change needs at least 8 bytes: refuse counts the payload cannot hold before allocating.
    if count > b.len() / 8 {
        return Err(format!("state change count {count} exceeds the payload"));
    }
    let mut changes = Vec::with_capacity(count);
    for _ in 0..count {
        let key_len = take_u32(&mut b)? as usize;
        let key = take(&mut b, key_len)?;
        let value_len = take_u32(&mut b)?;
        let value = if value_len == VALUE_DELETED {
            None
        } else {
            Some(take(&mut b, value_len as usize)?)
        };
        changes.push(StateChange { key, value });
    }
    if !b.is_empty() {
        return Err("trailing bytes after state changes".into());
    }
    Ok(changes)
}

impl BlockRecord {
    /// Checks the size limits; the error names the block.
    pub fn check_limits(&self) -> Result<()> {
        let too_large = |what, bytes, max| ArchiveError::BlockTooLarge {
            number: self.number,
            what,
            bytes,
            max,
        };
        if self.block.len() > BLOCK_BYTES_MAX {
            return Err(too_large("block", self.block.len(), BLOCK_BYTES_MAX));
        }
        if let Some(j) = &self.justification {
            if j.len() > JUSTIFICATION_BYTES_MAX {
                return Err(too_large("justification", j.len(), JUSTIFICATION_BYTES_MAX));
            }
        }
        let c = changes_len(&self.changes);
        if c > CHANGES_BYTES_MAX {
            return Err(too_large("state changes", c, CHANGES_BYTES_MAX));
        }
        Ok(())
    }

    /// Encoded length of this record in a segment file.
    pub fn encoded_len(&self) -> usize {
        RECORD_HEADER_BYTES
            + self.block.len()
            + self.justification.as_ref().map_or(0, Vec::len)
            + changes_len(&self.changes)
            + RECORD_TRAILER_BYTES
    }

    /// Appends the record's bytes to `out`. Call [`check_limits`](Self::check_limits) first.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let total = self.encoded_len();
        out.reserve(total);
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&RECORD_MAGIC);
        out.extend_from_slice(&self.number.to_le_bytes());
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.parent_hash);
        out.extend_from_slice(&(self.block.len() as u32).to_le_bytes());
        let just_len = self
            .justification
            .as_ref()
            .map_or(JUSTIFICATION_NONE, |j| j.len() as u32);
        out.extend_from_slice(&just_len.to_le_bytes());
        out.extend_from_slice(&(changes_len(&self.changes) as u32).to_le_bytes());
        out.extend_from_slice(&self.block);
        if let Some(j) = &self.justification {
            out.extend_from_slice(j);
        }
        encode_changes(&self.changes, out);
        let crc = crc32fast::hash(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(out.len() - start, total);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

/// Outcome of looking for one record at the start of `bytes`.
#[derive(Debug)]
pub enum RecordScan {
    /// A complete, valid record of `len` bytes.
    Complete { record: BlockRecord, len: usize },
    /// The bytes end before the record does (a torn tail after a crash, or just more to read).
    Incomplete,
    /// The bytes are not a valid record.
    Invalid(String),
}

/// Upper bound of one record, from the payload limits: a length field above it is garbage.
pub const RECORD_BYTES_MAX: usize = RECORD_HEADER_BYTES
    + BLOCK_BYTES_MAX
    + JUSTIFICATION_BYTES_MAX
    + CHANGES_BYTES_MAX
    + RECORD_TRAILER_BYTES;

/// Reads the total length field of a record, if 4 bytes are there.
pub fn record_len_prefix(bytes: &[u8]) -> Option<usize> {
    (bytes.len() >= 4).then(|| u32_at(bytes, 0) as usize)
}

/// Parses one record from the start of `bytes`.
pub fn scan_record(bytes: &[u8]) -> RecordScan {
    let Some(total) = record_len_prefix(bytes) else {
        return RecordScan::Incomplete;
    };
    if !(RECORD_HEADER_BYTES + RECORD_TRAILER_BYTES..=RECORD_BYTES_MAX).contains(&total) {
        return RecordScan::Invalid(format!("record length {total} out of range"));
    }
    if bytes.len() >= 8 && bytes[4..8] != RECORD_MAGIC {
        return RecordScan::Invalid("bad record magic".into());
    }
    if bytes.len() < total {
        return RecordScan::Incomplete;
    }
    let rec = &bytes[..total];
    let crc_stored = u32_at(rec, total - 4);
    if crc32fast::hash(&rec[..total - 4]) != crc_stored {
        return RecordScan::Invalid("record CRC mismatch".into());
    }
    let block_len = u32_at(rec, 80) as usize;
    let just_field = u32_at(rec, 84);
    let just_len = if just_field == JUSTIFICATION_NONE {
        0
    } else {
        just_field as usize
    };
    let changes_len = u32_at(rec, 88) as usize;
    if RECORD_HEADER_BYTES + block_len + just_len + changes_len + RECORD_TRAILER_BYTES != total {
        return RecordScan::Invalid("payload lengths do not add up to the record length".into());
    }
    let mut at = RECORD_HEADER_BYTES;
    let block = rec[at..at + block_len].to_vec();
    at += block_len;
    let justification = (just_field != JUSTIFICATION_NONE).then(|| rec[at..at + just_len].to_vec());
    at += just_len;
    let changes = match decode_changes(&rec[at..at + changes_len]) {
        Ok(c) => c,
        Err(e) => return RecordScan::Invalid(e),
    };
    RecordScan::Complete {
        record: BlockRecord {
            number: u64_at(rec, 8),
            hash: hash_at(rec, 16),
            parent_hash: hash_at(rec, 48),
            block,
            justification,
            changes,
        },
        len: total,
    }
}

/// A parsed segment: its header and every record with its byte offset.
pub type ParsedSegment = (SegmentHeader, Vec<(u64, BlockRecord)>);

/// Parses a whole sealed segment file: header, then records until the end. Every byte must belong
/// to a valid record. The error is (byte offset, reason).
pub fn parse_segment(bytes: &[u8]) -> std::result::Result<ParsedSegment, (u64, String)> {
    let header = SegmentHeader::decode(bytes).map_err(|e| (0, e))?;
    let mut at = SEGMENT_HEADER_BYTES;
    let mut records = Vec::new();
    while at < bytes.len() {
        match scan_record(&bytes[at..]) {
            RecordScan::Complete { record, len } => {
                records.push((at as u64, record));
                at += len;
            }
            RecordScan::Incomplete => return Err((at as u64, "record truncated".into())),
            RecordScan::Invalid(reason) => return Err((at as u64, reason)),
        }
    }
    Ok((header, records))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> BlockRecord {
        BlockRecord {
            number: 7,
            hash: [0x11; 32],
            parent_hash: [0x22; 32],
            block: vec![1, 2, 3],
            justification: Some(vec![9]),
            changes: vec![
                StateChange {
                    key: b"k".to_vec(),
                    value: Some(b"v".to_vec()),
                },
                StateChange {
                    key: b"d".to_vec(),
                    value: None,
                },
            ],
        }
    }

    #[test]
    fn record_round_trip_and_every_truncation() {
        let rec = sample();
        let bytes = rec.encode();
        assert_eq!(bytes.len(), rec.encoded_len());
        match scan_record(&bytes) {
            RecordScan::Complete { record, len } => {
                assert_eq!(record, rec);
                assert_eq!(len, bytes.len());
            }
            other => panic!("{other:?}"),
        }
        for cut in 0..bytes.len() {
            assert!(matches!(scan_record(&bytes[..cut]), RecordScan::Incomplete));
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                !matches!(scan_record(&bad), RecordScan::Complete { .. }),
                "flip at {i}"
            );
        }
    }

    /// Test vector from specs/segment.md.
    #[test]
    fn spec_test_vector() {
        let rec = BlockRecord {
            number: 1,
            hash: [0xAA; 32],
            parent_hash: [0xBB; 32],
            block: b"blk".to_vec(),
            justification: None,
            changes: vec![],
        };
        let hex = hex::encode(rec.encode());
        let expected = concat!(
            "67000000",
            "50414252",
            "0100000000000000",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            "03000000",
            "ffffffff",
            "04000000",
            "626c6b",
            "00000000",
        );
        assert_eq!(&hex[..expected.len()], expected);
        let crc = crc32fast::hash(&rec.encode()[..0x67 - 4]);
        assert_eq!(&hex[expected.len()..], hex::encode(crc.to_le_bytes()));
        assert_eq!(hex::encode(crc.to_le_bytes()), SPEC_RECORD_CRC_HEX);
        let header = SegmentHeader {
            segment: 2,
            first_number: 1000,
            prev_hash: [0xCC; 32],
        };
        assert_eq!(
            hex::encode(header.encode()),
            concat!(
                "504f415345473031",
                "0200000000000000",
                "e803000000000000",
                "0000000000000000",
                "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
            )
        );
    }

    /// CRC of the spec's test record, as printed in specs/segment.md.
    const SPEC_RECORD_CRC_HEX: &str = "b37c5a86";
}
