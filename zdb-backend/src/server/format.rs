//! On-disk formats of the embedded hoster (data log entries, log header, namespace properties)
//! and its SCAN cursor; every layout is fixed-width little-endian and specified byte by byte in
//! `specs/zdb-hoster.md`.

/// Bytes of an entry header; the key and the value follow it.
pub const ENTRY_HEADER_BYTES: usize = 20;

/// Entry flag: the entry is a tombstone (DEL); its value is empty.
pub const FLAG_DELETED: u8 = 0x01;

/// Bytes of the header at the start of every data log.
pub const LOG_HEADER_BYTES: usize = 16;

/// First 8 bytes of a data log ("zdb-backend embedded log").
pub const LOG_MAGIC: [u8; 8] = *b"ZDBELOG\0";

/// First 8 bytes of a namespace properties file.
pub const PROPS_MAGIC: [u8; 8] = *b"ZDBEPROP";

/// Format version of both files; bumped on any layout change.
pub const FORMAT_VERSION: u32 = 1;

/// SCAN cursor length: the same 17 bytes as 0-db's serialized index key, so clients that check
/// the cursor length see what they expect.
pub const CURSOR_BYTES: usize = 17;

const CURSOR_TAG: u8 = 0x01;

/// Longest namespace name (0-db's `NAMESPACE_MAX_LENGTH`).
pub const NAMESPACE_BYTES_MAX: usize = 128;

/// One entry header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryHeader {
    pub value_crc32: u32,
    pub value_len: u32,
    pub timestamp: u32,
    pub key_len: u8,
    pub flags: u8,
}

impl EntryHeader {
    /// Bytes of the whole entry: header, key, value.
    pub fn entry_bytes(&self) -> u64 {
        ENTRY_HEADER_BYTES as u64 + u64::from(self.key_len) + u64::from(self.value_len)
    }

    pub fn is_deleted(&self) -> bool {
        self.flags & FLAG_DELETED != 0
    }
}

/// Encodes a header; `header_crc32` covers bytes 0..16 and then the key, so a torn or flipped
/// header or key is detected on recovery without reading the value.
pub fn encode_entry_header(h: &EntryHeader, key: &[u8]) -> [u8; ENTRY_HEADER_BYTES] {
    let mut b = [0u8; ENTRY_HEADER_BYTES];
    b[0..4].copy_from_slice(&h.value_crc32.to_le_bytes());
    b[4..8].copy_from_slice(&h.value_len.to_le_bytes());
    b[8..12].copy_from_slice(&h.timestamp.to_le_bytes());
    b[12] = h.key_len;
    b[13] = h.flags;
    // b[14..16] reserved, zero.
    let mut crc = crc32fast::Hasher::new();
    crc.update(&b[0..16]);
    crc.update(key);
    b[16..20].copy_from_slice(&crc.finalize().to_le_bytes());
    b
}

/// Why bytes at some offset are not a valid entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryDefect {
    /// Fewer bytes than header + key: a torn tail if this is the end of the log.
    Short,
    /// Not an entry: bad reserved bits, impossible lengths, or a header CRC mismatch.
    Invalid,
}

/// Decodes the header at the start of `bytes`, which must also hold the key (up to
/// `ENTRY_HEADER_BYTES + 255` bytes are enough). Returns the header; the key is
/// `bytes[ENTRY_HEADER_BYTES..][..key_len]`.
pub fn decode_entry_header(bytes: &[u8], value_bytes_max: u32) -> Result<EntryHeader, EntryDefect> {
    let Some(b) = bytes.get(..ENTRY_HEADER_BYTES) else {
        return Err(EntryDefect::Short);
    };
    let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let h = EntryHeader {
        value_crc32: u32_at(0),
        value_len: u32_at(4),
        timestamp: u32_at(8),
        key_len: b[12],
        flags: b[13],
    };
    // Cheap structural checks first: recovery runs this at every byte offset when resyncing.
    if h.key_len == 0
        || h.flags & !FLAG_DELETED != 0
        || b[14] != 0
        || b[15] != 0
        || h.value_len > value_bytes_max
        || (h.is_deleted() && h.value_len != 0)
    {
        return Err(EntryDefect::Invalid);
    }
    let Some(key) = bytes.get(ENTRY_HEADER_BYTES..ENTRY_HEADER_BYTES + usize::from(h.key_len))
    else {
        return Err(EntryDefect::Short);
    };
    let mut crc = crc32fast::Hasher::new();
    crc.update(&b[0..16]);
    crc.update(key);
    if crc.finalize() != u32_at(16) {
        return Err(EntryDefect::Invalid);
    }
    Ok(h)
}

pub fn encode_log_header() -> [u8; LOG_HEADER_BYTES] {
    let mut b = [0u8; LOG_HEADER_BYTES];
    b[0..8].copy_from_slice(&LOG_MAGIC);
    b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&b[0..12]);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    b
}

pub fn log_header_valid(b: &[u8]) -> bool {
    b.len() >= LOG_HEADER_BYTES && b[..LOG_HEADER_BYTES] == encode_log_header()
}

/// Persistent namespace properties (NSSET). `lock`/`freeze` are runtime-only, as in 0-db.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NsProps {
    pub name: Vec<u8>,
    pub public: bool,
    pub worm: bool,
    pub password: Option<Vec<u8>>,
    /// 0 = unlimited.
    pub maxsize_bytes: u64,
}

impl NsProps {
    /// A new namespace: public, no password, unlimited, not worm (as 0-db).
    pub fn new(name: &[u8]) -> Self {
        Self {
            name: name.to_vec(),
            public: true,
            ..Self::default()
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let password = self.password.as_deref().unwrap_or_default();
        let mut b = Vec::with_capacity(28 + self.name.len() + password.len());
        b.extend_from_slice(&PROPS_MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        let flags = u8::from(self.public)
            | (u8::from(self.worm) << 1)
            | (u8::from(self.password.is_some()) << 2);
        b.push(flags);
        // Lengths are bounded where names and passwords are accepted (128 and 255 bytes).
        b.push(self.name.len().min(255) as u8);
        b.push(password.len().min(255) as u8);
        b.push(0);
        b.extend_from_slice(&self.maxsize_bytes.to_le_bytes());
        b.extend_from_slice(&self.name[..self.name.len().min(255)]);
        b.extend_from_slice(&password[..password.len().min(255)]);
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() < 28 {
            return Err(format!("{} bytes, at least 28 expected", b.len()));
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body).to_le_bytes() != crc {
            return Err("CRC mismatch".to_owned());
        }
        if body[0..8] != PROPS_MAGIC {
            return Err("bad magic".to_owned());
        }
        let version = u32::from_le_bytes([body[8], body[9], body[10], body[11]]);
        if version != FORMAT_VERSION {
            return Err(format!(
                "format version {version}, {FORMAT_VERSION} expected"
            ));
        }
        let flags = body[12];
        let name_len = usize::from(body[13]);
        let password_len = usize::from(body[14]);
        if flags & !0x07 != 0 || body[15] != 0 {
            return Err("reserved bits set".to_owned());
        }
        // `encode` writes no password bytes without the flag: such a file is not one it wrote.
        if flags & 0x04 == 0 && password_len != 0 {
            return Err("password bytes without the password flag".to_owned());
        }
        if body.len() != 24 + name_len + password_len {
            return Err("lengths do not match the file size".to_owned());
        }
        let mut maxsize = [0u8; 8];
        maxsize.copy_from_slice(&body[16..24]);
        let name = body[24..24 + name_len].to_vec();
        let password = body[24 + name_len..].to_vec();
        Ok(Self {
            name,
            public: flags & 0x01 != 0,
            worm: flags & 0x02 != 0,
            password: (flags & 0x04 != 0).then_some(password),
            maxsize_bytes: u64::from_le_bytes(maxsize),
        })
    }
}

/// SCAN cursor: tag byte, then the log offset of the last entry returned (u64 LE), then zeros.
pub fn encode_cursor(offset: u64) -> [u8; CURSOR_BYTES] {
    let mut c = [0u8; CURSOR_BYTES];
    c[0] = CURSOR_TAG;
    c[1..9].copy_from_slice(&offset.to_le_bytes());
    c
}

pub fn decode_cursor(c: &[u8]) -> Option<u64> {
    if c.len() != CURSOR_BYTES || c[0] != CURSOR_TAG || c[9..].iter().any(|&b| b != 0) {
        return None;
    }
    let mut o = [0u8; 8];
    o.copy_from_slice(&c[1..9]);
    Some(u64::from_le_bytes(o))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The test vector of specs/zdb-hoster.md: key "k1", value "hello", timestamp 0x01020304.
    #[test]
    fn entry_test_vector_matches_spec() {
        let value = b"hello";
        let h = EntryHeader {
            value_crc32: crc32fast::hash(value),
            value_len: 5,
            timestamp: 0x0102_0304,
            key_len: 2,
            flags: 0,
        };
        let mut entry = encode_entry_header(&h, b"k1").to_vec();
        entry.extend_from_slice(b"k1");
        entry.extend_from_slice(value);
        assert_eq!(
            hex::encode(&entry),
            "86a61036050000000403020102000000a87de5366b3168656c6c6f"
        );
        assert_eq!(decode_entry_header(&entry, 8 << 20), Ok(h));
        assert_eq!(h.entry_bytes(), entry.len() as u64);

        let tomb = EntryHeader {
            value_crc32: 0,
            value_len: 0,
            timestamp: 0x0102_0304,
            key_len: 2,
            flags: FLAG_DELETED,
        };
        let mut t = encode_entry_header(&tomb, b"k1").to_vec();
        t.extend_from_slice(b"k1");
        assert_eq!(
            hex::encode(&t),
            "00000000000000000403020102010000d66550146b31"
        );
        assert_eq!(
            hex::encode(encode_log_header()),
            "5a4442454c4f4700010000003900d2a3"
        );
    }

    #[test]
    fn decode_rejects_damage() {
        let h = EntryHeader {
            value_crc32: 7,
            value_len: 3,
            timestamp: 1,
            key_len: 1,
            flags: 0,
        };
        let mut e = encode_entry_header(&h, b"x").to_vec();
        e.push(b'x');
        assert_eq!(decode_entry_header(&e[..10], 100), Err(EntryDefect::Short));
        assert_eq!(decode_entry_header(&e[..20], 100), Err(EntryDefect::Short));
        assert_eq!(decode_entry_header(&e, 2), Err(EntryDefect::Invalid));
        for i in 0..e.len() {
            let mut bad = e.clone();
            bad[i] ^= 0x10;
            assert!(decode_entry_header(&bad, 100).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn props_round_trip_and_reject_damage() {
        let p = NsProps {
            name: b"ns".to_vec(),
            public: false,
            worm: true,
            password: Some(b"pw".to_vec()),
            maxsize_bytes: 1 << 40,
        };
        let b = p.encode();
        assert_eq!(NsProps::decode(&b).unwrap(), p);
        let mut bad = b.clone();
        bad[13] ^= 1;
        assert!(NsProps::decode(&bad).is_err());
        assert!(NsProps::decode(&b[..10]).is_err());
        let empty_pw = NsProps {
            password: Some(Vec::new()),
            ..p
        };
        assert_eq!(NsProps::decode(&empty_pw.encode()).unwrap(), empty_pw);
        // Found by the `hoster_format` fuzz target: password bytes without the password flag
        // decoded as "no password", silently dropping them; such a file is refused now.
        let mut no_flag = NsProps::new(b"ns").encode();
        no_flag[14] = 1;
        no_flag.insert(26, b'x');
        let end = no_flag.len() - 4;
        let crc = crc32fast::hash(&no_flag[..end]);
        no_flag[end..].copy_from_slice(&crc.to_le_bytes());
        let err = NsProps::decode(&no_flag).unwrap_err();
        assert!(err.contains("password flag"), "{err}");
    }

    #[test]
    fn cursor_round_trip() {
        let c = encode_cursor(123_456);
        assert_eq!(decode_cursor(&c), Some(123_456));
        assert_eq!(decode_cursor(&c[..16]), None);
        let mut bad = c;
        bad[0] = 9;
        assert_eq!(decode_cursor(&bad), None);
    }
}
