//! Segment files as recovery and restore read them (`archiver::record`): the segment header, one
//! record at a time (`scan_record`, the log's replay) and whole segments (`parse_segment`). Record
//! CRCs are recomputed on request (control byte); what decodes must encode back to its bytes.

use archiver::record::{
    parse_segment, scan_record, RecordScan, SegmentHeader, RECORD_HEADER_BYTES,
    RECORD_TRAILER_BYTES, SEGMENT_HEADER_BYTES,
};

use crate::{control, fix_crc32, u32_at};

/// Recomputes the CRC of every record of a segment body whose length field fits, walking them as
/// `parse_segment` would.
fn fix_record_crcs(bytes: &mut [u8], mut at: usize) {
    while let Some(total) = u32_at(bytes, at).map(|t| t as usize) {
        if total < RECORD_HEADER_BYTES + RECORD_TRAILER_BYTES || at + total > bytes.len() {
            return;
        }
        fix_crc32(bytes, at..at + total - 4, at + total - 4);
        at += total;
    }
}

pub fn run(data: &[u8]) {
    let (ctl, rest) = control(data);
    let mut bytes = rest.to_vec();
    if ctl % 2 == 0 {
        if ctl & 0x80 != 0 {
            fix_record_crcs(&mut bytes, 0);
        }
        match scan_record(&bytes) {
            RecordScan::Complete { record, len } => {
                assert!(len <= bytes.len());
                assert_eq!(record.encode(), &bytes[..len], "record round trip");
                assert!(
                    record.check_limits().is_ok(),
                    "decoded a record over the limits"
                );
            }
            RecordScan::Incomplete | RecordScan::Invalid(_) => {}
        }
        return;
    }
    if let Ok(header) = SegmentHeader::decode(&bytes) {
        assert_eq!(header.encode().as_slice(), &bytes[..SEGMENT_HEADER_BYTES]);
    }
    if ctl & 0x80 != 0 {
        fix_record_crcs(&mut bytes, SEGMENT_HEADER_BYTES);
    }
    if let Ok((header, records)) = parse_segment(&bytes) {
        let mut again = header.encode().to_vec();
        for (offset, record) in &records {
            assert_eq!(*offset as usize, again.len(), "record offsets");
            record.encode_into(&mut again);
        }
        assert_eq!(again, bytes, "segment round trip");
    }
}
