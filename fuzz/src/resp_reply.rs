//! The client's reply parser (`read_reply`, `read_reply_into`), several replies per input in reads
//! of fuzzed sizes; every reply read re-encodes to bytes that read back the same.

use zdb_backend::resp::{IntoReply, RespReader};
use zdb_backend::Reply;

use crate::resp_request::{step, wire, Chunked};
use crate::{block_on, control};

/// Replies read from one input before stopping.
const REPLIES_PER_INPUT_MAX: usize = 8;

/// RESP bytes of a reply, as the embedded hoster writes them.
pub fn encode_reply(reply: &Reply, out: &mut Vec<u8>) {
    match reply {
        Reply::Status(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
        Reply::Error(s) => out.extend_from_slice(format!("-{s}\r\n").as_bytes()),
        Reply::Integer(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
        Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
        Reply::Bulk(b) => {
            out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Array(items) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for item in items {
                encode_reply(item, out);
            }
        }
    }
}

pub fn run(data: &[u8]) {
    let (ctl, rest) = control(data);
    // The second byte picks how each reply is read: whole, or into a buffer of a given length.
    let (mode, rest) = control(rest);
    let wire = wire(ctl, rest);
    let mut reader = RespReader::new(Chunked::new(&wire, step(ctl)));
    for i in 0..REPLIES_PER_INPUT_MAX {
        if mode & (1 << (i % 8)) != 0 {
            let mut dest = vec![0u8; usize::from(mode) * 37 % 1500];
            match block_on(reader.read_reply_into(&mut dest)) {
                Ok(IntoReply::Filled | IntoReply::WrongLength(_) | IntoReply::Other(_)) => {}
                Err(_) => break,
            }
            continue;
        }
        match block_on(reader.read_reply()) {
            Ok(reply) => {
                let mut again = Vec::new();
                encode_reply(&reply, &mut again);
                let reread = block_on(RespReader::new(again.as_slice()).read_reply());
                assert_eq!(reread.ok().as_ref(), Some(&reply), "reply round trip");
            }
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        }
    }
}
