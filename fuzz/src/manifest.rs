//! Manifests, placements and the encrypted metadata and head records a fresh machine reads from
//! the hosters (`archiver::manifest`). The plaintext decoders are fuzzed directly and through a
//! seal/open round trip under a fixed key; raw records go to `open_*` as they come off the wire.

use archiver::manifest::{
    decode_head, decode_metadata, open_head, open_metadata, seal_head, seal_metadata, Manifest,
    Placement,
};
use archiver::MasterKey;

use crate::control;

/// Any fixed key: the point is the parsing, not the secrecy.
fn key() -> MasterKey {
    MasterKey::from_bytes([7; 32])
}

/// The segment the input claims to describe (bytes 8..16 of a manifest or placement), so the
/// "describes another segment" check does not stop every input.
fn claimed_segment(bytes: &[u8]) -> u64 {
    bytes
        .get(8..16)
        .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
}

pub fn run(data: &[u8]) {
    let (ctl, rest) = control(data);
    match ctl % 5 {
        0 => {
            let segment = claimed_segment(rest);
            if let Ok(m) = Manifest::decode(segment, rest) {
                assert_eq!(m.encode(), rest, "manifest round trip");
                let _ = (m.shards_total(), m.block_count(), m.hash());
            }
        }
        1 => {
            let segment = claimed_segment(rest);
            if let Ok(p) = Placement::decode(segment, rest) {
                // Names are NUL-padded: they encode back to the same bytes only without NULs
                // inside a name, which decoding cuts at.
                let again = Placement::decode(segment, &p.encode()).unwrap();
                assert_eq!(again, p, "placement round trip");
                assert!(p.placed() <= p.hosters.len());
            }
        }
        2 => {
            let segment = rest.get(4..).map_or(0, claimed_segment);
            if let Ok((m, p)) = decode_metadata(segment, rest) {
                let sealed = seal_metadata(&key(), &m, &p).unwrap();
                let (m2, p2) = open_metadata(&key(), segment, &sealed).unwrap();
                assert_eq!((m2, p2), (m, p), "metadata seal/open round trip");
            }
        }
        3 => {
            if let Ok(head) = decode_head(rest) {
                let sealed = seal_head(&key(), &head).unwrap();
                assert_eq!(open_head(&key(), &sealed).unwrap(), head, "head round trip");
            }
        }
        _ => {
            // Raw records: almost always refused by the AEAD, which must not panic on any shape.
            let _ = open_metadata(&key(), claimed_segment(rest), rest);
            let _ = open_head(&key(), rest);
        }
    }
}
