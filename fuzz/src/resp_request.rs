//! The hoster's request reader (`RespReader::read_request`), fed in reads of fuzzed sizes, several
//! pipelined requests per input; every request read re-encodes to bytes that read back the same.

use tokio::io::{AsyncRead, ReadBuf};
use zdb_backend::resp::{encode_request, RespReader};

use crate::{block_on, control};

/// Requests read from one input before stopping (a pipelining client).
const REQUESTS_PER_INPUT_MAX: usize = 8;

/// Filler bytes the input may ask for (×4 per unit, up to 256 KiB): large bulks reach the reader's
/// direct-read and buffer-wrap paths that short inputs never do.
const FILLER_UNIT_BYTES: usize = 4;

/// A byte slice that hands out at most `step` bytes per read, like a socket.
pub struct Chunked<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl<'a> Chunked<'a> {
    pub fn new(bytes: &'a [u8], step: usize) -> Self {
        Self { bytes, step }
    }
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = self.step.min(self.bytes.len()).min(buf.remaining());
        buf.put_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        std::task::Poll::Ready(Ok(()))
    }
}

/// The wire bytes of an input: with the control byte's top bit set, the next 4 bytes ask for a run
/// of filler (u16 LE units) at a position (u16 LE) of the rest.
pub fn wire(ctl: u8, rest: &[u8]) -> Vec<u8> {
    if ctl & 0x80 == 0 || rest.len() < 4 {
        return rest.to_vec();
    }
    let units = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
    let body = &rest[4..];
    let at = usize::from(u16::from_le_bytes([rest[2], rest[3]])).min(body.len());
    let mut out = Vec::with_capacity(body.len() + units * FILLER_UNIT_BYTES);
    out.extend_from_slice(&body[..at]);
    out.resize(at + units * FILLER_UNIT_BYTES, b'x');
    out.extend_from_slice(&body[at..]);
    out
}

/// Read size from the control byte: 1..=64 bytes, or everything at once.
pub fn step(ctl: u8) -> usize {
    match ctl & 0x7f {
        0x7f => usize::MAX,
        n => usize::from(n % 64) + 1,
    }
}

pub fn run(data: &[u8]) {
    let (ctl, rest) = control(data);
    let wire = wire(ctl, rest);
    let mut reader = RespReader::new(Chunked::new(&wire, step(ctl)));
    for _ in 0..REQUESTS_PER_INPUT_MAX {
        match block_on(reader.read_request()) {
            Ok(Some(args)) => {
                let mut again = Vec::new();
                let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                encode_request(&mut again, &refs);
                let reread = block_on(RespReader::new(again.as_slice()).read_request());
                assert_eq!(
                    reread.ok().flatten().as_ref(),
                    Some(&args),
                    "request round trip"
                );
            }
            Ok(None) => break,
            Err(e) => {
                // What the server would answer before closing: must not panic either.
                let _ = e.server_message();
                let _ = e.to_string();
                break;
            }
        }
    }
}
