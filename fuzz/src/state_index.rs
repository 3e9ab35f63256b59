//! Entries of the archive's state-history index (`archiver::state_index`, read back from the
//! local store on every historical state query): `Entry::decode` on any bytes; what decodes
//! encodes back to the same bytes. With control bit 1 the input is a value instead, whose entry
//! must decode to itself.

use archiver::state_index::Entry;

use crate::control;

pub fn run(data: &[u8]) {
    let (ctl, rest) = control(data);
    if ctl & 1 != 0 {
        let value = (ctl & 2 == 0).then_some(rest);
        let entry = Entry::for_value(value);
        assert_eq!(Entry::decode(&entry.encode()).unwrap(), entry, "value round trip");
        return;
    }
    if let Ok(entry) = Entry::decode(rest) {
        assert_eq!(entry.encode(), rest, "entry round trip");
    }
}
