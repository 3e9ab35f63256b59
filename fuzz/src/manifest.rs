//! Manifests, placements and the encrypted manifest, placement and head records a fresh machine
//! reads from the hosters (`archiver::manifest`). The plaintext decoders are fuzzed directly and through a
//! seal/open round trip under a fixed key; raw records go to `open_*` as they come off the wire.

use archiver::manifest::{
    open_head, open_manifest_record, open_placement_record, seal_manifest_record,
    seal_placement_record, Manifest, Placement,
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
            let segment = claimed_segment(rest);
            if let Ok(m) = Manifest::decode(segment, rest) {
                let sealed = seal_manifest_record(&key(), &m).unwrap();
                assert_eq!(
                    seal_manifest_record(&key(), &m).unwrap(),
                    sealed,
                    "deterministic"
                );
                let m2 = open_manifest_record(&key(), segment, &sealed).unwrap();
                assert_eq!(m2, m, "manifest record seal/open round trip");
            }
        }
        3 => {
            let segment = claimed_segment(rest);
            if let Ok(p) = Placement::decode(segment, rest) {
                let sealed = seal_placement_record(&key(), &p).unwrap();
                let p2 = open_placement_record(&key(), segment, p.generation, &sealed).unwrap();
                assert_eq!(p2, Placement::decode(segment, &p.encode()).unwrap());
            }
        }
        _ => {
            // Raw records: almost always refused by the AEAD, which must not panic on any shape.
            let segment = claimed_segment(rest);
            let _ = open_manifest_record(&key(), segment, rest);
            let _ = open_placement_record(&key(), segment, u32::from(ctl), rest);
            let _ = open_head(&key(), segment, rest);
        }
    }
}
