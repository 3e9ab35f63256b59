//! The embedded hoster's fixed layouts (`server::format`): entry headers as recovery reads them,
//! namespace properties files, the data log header and SCAN cursors. Checksums are recomputed on
//! request (control byte) so the fuzzer gets past them; what decodes must encode back identically.

use zdb_backend::server::format::{
    decode_cursor, decode_entry_header, encode_cursor, encode_entry_header, log_header_valid,
    NsProps, ENTRY_HEADER_BYTES,
};
use zdb_backend::VALUE_BYTES_MAX;

use crate::{control, fix_crc32};

pub fn run(data: &[u8]) {
    let (ctl, rest) = control(data);
    let mut bytes = rest.to_vec();
    match ctl % 4 {
        0 => entry(&mut bytes, ctl & 0x80 != 0),
        1 => props(&mut bytes, ctl & 0x80 != 0),
        2 => {
            if let Some(offset) = decode_cursor(&bytes) {
                assert_eq!(encode_cursor(offset).as_slice(), bytes, "cursor round trip");
            }
        }
        _ => {
            let _ = log_header_valid(&bytes);
        }
    }
}

fn entry(bytes: &mut [u8], fix: bool) {
    if fix {
        let key_len = bytes.get(12).map_or(0, |&k| usize::from(k));
        // The header CRC covers bytes 0..16 and the key; patch it in place of the stored one.
        if bytes.len() >= ENTRY_HEADER_BYTES + key_len {
            let mut crc = crc32fast::Hasher::new();
            crc.update(&bytes[..16]);
            crc.update(&bytes[ENTRY_HEADER_BYTES..ENTRY_HEADER_BYTES + key_len]);
            bytes[16..20].copy_from_slice(&crc.finalize().to_le_bytes());
        }
    }
    let limit = VALUE_BYTES_MAX as u32;
    if let Ok(h) = decode_entry_header(bytes, limit) {
        let key = &bytes[ENTRY_HEADER_BYTES..ENTRY_HEADER_BYTES + usize::from(h.key_len)];
        assert_eq!(
            encode_entry_header(&h, key).as_slice(),
            &bytes[..ENTRY_HEADER_BYTES],
            "entry header round trip"
        );
        assert!(h.entry_bytes() >= (ENTRY_HEADER_BYTES + key.len()) as u64);
    }
}

fn props(bytes: &mut [u8], fix: bool) {
    if fix && bytes.len() >= 4 {
        let end = bytes.len() - 4;
        fix_crc32(bytes, 0..end, end);
    }
    if let Ok(p) = NsProps::decode(bytes) {
        assert_eq!(p.encode(), bytes, "properties round trip");
    }
}
