//! RESP framing as 0-db speaks it: request encoding, and a bounded, incremental reader for replies
//! (client side) and requests (server side) that never panics on what the network sends.

use std::io::Write as _;

use bytes::BufMut as _;
use tokio::io::{AsyncRead, AsyncReadExt as _};

/// Largest single argument (value) 0-db accepts: exactly 8 MiB (`REDIS_MAX_PAYLOAD` in 0-db's
/// `redis.h`). One byte more and 0-db answers `-Payload too big` and closes the connection, so
/// anything larger has to be split over several keys (see `ZdbClient::set_large`).
pub const VALUE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Most arguments in one request, command name included (0-db's hard limit, `-Too many
/// arguments`): 0-db allocates the argument table up front from the announced count.
pub const ARGS_MAX: usize = 1024;

/// Longest key: 0-db stores the key length in one byte (`MAX_KEY_LENGTH = (1 << 8) - 1`).
pub const KEY_BYTES_MAX: usize = 255;

/// Longest header line (`*N`, `$N`, `+status`, `-error`, `:int`) accepted. 0-db reads requests
/// through an 8 KiB buffer, so no line it can parse or send is longer; refusing longer lines keeps a
/// peer from making us buffer without end.
pub const LINE_BYTES_MAX: usize = 8 * 1024;

/// Largest whole request the server reader accepts: one SET of an 8 MiB value plus its key and an
/// optional timestamp, or an MGET of 1023 maximal keys (≈ 255 KiB), both fit with room to spare.
/// Without it 1024 arguments of 8 MiB each would be 8 GiB of allocation from one peer.
pub const REQUEST_BYTES_MAX: usize = VALUE_BYTES_MAX + 1024 * 1024;

/// Deepest reply nesting the client accepts. 0-db's deepest reply is SCAN's
/// `*2 [cursor, *M [ *3 [...] ] ]`, three levels.
pub const REPLY_DEPTH_MAX: usize = 4;

/// Most elements in one reply array. Bounds the allocation a hostile hoster can cause with one
/// header line; MGET answers at most 1023 items and a SCAN batch a few thousand.
pub const REPLY_ARRAY_LEN_MAX: usize = 1 << 20;

/// Most payload bytes in one reply (all bulks of an array together): a hoster could otherwise make
/// the client buffer 1023 × 8 MiB for one MGET. The client never asks for more than one value.
pub const REPLY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Size of the reader's buffer. Large enough that small requests and replies arrive in one read,
/// while payloads bigger than half of it are read straight into their final buffer.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;

const CRLF: &[u8] = b"\r\n";

/// A framing error: the byte stream is no longer usable and the connection must be closed.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed by peer")]
    Closed,
    #[error("connection closed in the middle of a message")]
    UnexpectedEof,
    #[error("line longer than {LINE_BYTES_MAX} bytes")]
    LineTooLong,
    #[error("line not terminated by CRLF")]
    MissingCrlf,
    #[error("request is not an array (inline commands are not supported)")]
    ArrayExpected,
    #[error("request argument is not a bulk string")]
    BulkExpected,
    #[error("request without arguments")]
    MissingArguments,
    #[error("{count} arguments, at most {ARGS_MAX}")]
    TooManyArguments { count: i64 },
    #[error("payload of {len} bytes, at most {max}")]
    PayloadTooBig { len: i64, max: usize },
    #[error("invalid length or integer {line:?}")]
    BadNumber { line: String },
    #[error("unknown reply type byte 0x{0:02x}")]
    BadType(u8),
    #[error("reply nested deeper than {REPLY_DEPTH_MAX}")]
    TooDeep,
    #[error("reply array of {len} elements, at most {REPLY_ARRAY_LEN_MAX}")]
    ArrayTooLong { len: i64 },
}

impl RespError {
    /// The error line 0-db sends before closing the connection for this framing error, if any
    /// (`None` when the peer is gone or the failure is ours).
    pub fn server_message(&self) -> Option<&'static str> {
        match self {
            Self::Io(_) | Self::Closed | Self::UnexpectedEof => None,
            Self::ArrayExpected => Some("Malformed request, array expected"),
            Self::MissingArguments => Some("Missing arguments"),
            Self::TooManyArguments { .. } => Some("Too many arguments"),
            Self::PayloadTooBig { .. } => Some("Payload too big"),
            Self::LineTooLong
            | Self::MissingCrlf
            | Self::BulkExpected
            | Self::BadNumber { .. }
            | Self::BadType(_)
            | Self::TooDeep
            | Self::ArrayTooLong { .. } => Some("Malformed query string"),
        }
    }
}

/// One reply as 0-db sends it.
#[derive(Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+...`
    Status(String),
    /// `-...`
    Error(String),
    /// `:n`
    Integer(i64),
    /// `$n` with its payload.
    Bulk(Vec<u8>),
    /// `$-1`
    Nil,
    /// `*n`
    Array(Vec<Reply>),
    /// `*-1`
    NilArray,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Status(s) => write!(f, "+{s}"),
            Self::Error(s) => write!(f, "-{s}"),
            Self::Integer(n) => write!(f, ":{n}"),
            // Values can be 8 MiB: never dump them whole into a log line or an error.
            Self::Bulk(b) => write!(f, "${} {}", b.len(), short_hex(b)),
            Self::Nil => write!(f, "$-1"),
            Self::Array(items) => f.debug_list().entries(items).finish(),
            Self::NilArray => write!(f, "*-1"),
        }
    }
}

/// Hex of at most the first and last few bytes: enough to recognise a key in an error message
/// without turning a 255-byte key (or a value) into a paragraph.
pub fn short_hex(bytes: &[u8]) -> String {
    const EDGE: usize = 8;
    if bytes.len() <= 2 * EDGE + 4 {
        hex::encode(bytes)
    } else {
        format!(
            "{}…{} ({} bytes)",
            hex::encode(&bytes[..EDGE]),
            hex::encode(&bytes[bytes.len() - EDGE..]),
            bytes.len()
        )
    }
}

/// Appends one complete request (an array of bulk strings) to `out`.
pub fn encode_request(out: &mut Vec<u8>, args: &[&[u8]]) {
    push_line(out, b'*', args.len() as u64);
    for arg in args {
        push_line(out, b'$', arg.len() as u64);
        out.extend_from_slice(arg);
        out.extend_from_slice(CRLF);
    }
}

/// Appends a request whose last argument (`last_len` bytes) is sent separately, so a large value
/// goes to the socket straight from the caller's buffer (vectored write) instead of being copied:
/// `out` ends with the `$<last_len>\r\n` header; the caller then writes the value and `\r\n`.
pub fn encode_request_head(out: &mut Vec<u8>, leading: &[&[u8]], last_len: usize) {
    push_line(out, b'*', leading.len() as u64 + 1);
    for arg in leading {
        push_line(out, b'$', arg.len() as u64);
        out.extend_from_slice(arg);
        out.extend_from_slice(CRLF);
    }
    push_line(out, b'$', last_len as u64);
}

fn push_line(out: &mut Vec<u8>, kind: u8, n: u64) {
    out.push(kind);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{n}");
    out.extend_from_slice(CRLF);
}

/// A header line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Status(String),
    Error(String),
    Integer(i64),
    /// `$n`, `-1` = nil.
    Bulk(i64),
    /// `*n`, `-1` = nil array.
    Array(i64),
}

/// Parses one line (without its CRLF). Pure, so malformed input is easy to test exhaustively.
pub fn parse_line(line: &[u8]) -> Result<Line, RespError> {
    let Some((&kind, rest)) = line.split_first() else {
        return Err(RespError::BadType(b'\r'));
    };
    match kind {
        b'+' => Ok(Line::Status(String::from_utf8_lossy(rest).into_owned())),
        b'-' => Ok(Line::Error(String::from_utf8_lossy(rest).into_owned())),
        b':' => Ok(Line::Integer(parse_int(rest)?)),
        b'$' => Ok(Line::Bulk(parse_int(rest)?)),
        b'*' => Ok(Line::Array(parse_int(rest)?)),
        other => Err(RespError::BadType(other)),
    }
}

/// Strict decimal i64: optional `-`, 1..=19 digits, nothing else.
pub fn parse_int(digits: &[u8]) -> Result<i64, RespError> {
    let bad = || RespError::BadNumber {
        line: String::from_utf8_lossy(&digits[..digits.len().min(32)]).into_owned(),
    };
    let (negative, body) = match digits.split_first() {
        Some((b'-', body)) => (true, body),
        _ => (false, digits),
    };
    if body.is_empty() || body.len() > 19 || !body.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let mut n: i64 = 0;
    for &d in body {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(i64::from(d - b'0')))
            .ok_or_else(bad)?;
    }
    Ok(if negative { -n } else { n })
}

/// What `read_reply_into` did with a reply.
#[derive(Debug, PartialEq, Eq)]
pub enum IntoReply {
    /// A bulk of exactly the destination's length, now in the destination.
    Filled,
    /// A bulk of another length: its bytes were read and discarded (the stream stays usable).
    WrongLength(u64),
    /// Anything else (nil, error, ...).
    Other(Reply),
}

/// Buffered RESP reader over one byte stream. Incremental: it reads only what the next message
/// needs, so it works on a socket where the peer waits for our answer.
pub struct RespReader<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
}

impl<R: AsyncRead + Unpin> RespReader<R> {
    /// The buffer is allocated on the first read, so a connection that never sends anything
    /// (an idle one on a busy hoster) costs no buffer.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Box::default(),
            pos: 0,
            end: 0,
        }
    }

    /// Waits until at least one unconsumed byte is buffered; `Ok(0)` at end of stream. Lets a
    /// server time the wait for a request (idle) apart from its arrival (read timeout).
    pub async fn wait_for_data(&mut self) -> Result<usize, RespError> {
        if self.buffered() > 0 {
            return Ok(self.buffered());
        }
        self.fill().await
    }

    /// Bytes received but not consumed yet (a pipelining peer has more requests waiting).
    pub fn buffered(&self) -> usize {
        self.end - self.pos
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> Result<usize, RespError> {
        if self.buf.is_empty() {
            self.buf = vec![0; READ_BUFFER_BYTES].into_boxed_slice();
        }
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        let n = self.inner.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }

    /// Reads one CRLF-terminated line and parses it. `Closed` only when the stream ended exactly
    /// at a message boundary.
    pub async fn read_line(&mut self) -> Result<Line, RespError> {
        let mut searched = 0;
        loop {
            let window = &self.buf[self.pos + searched..self.end];
            if let Some(i) = window.iter().position(|&b| b == b'\n') {
                let nl = self.pos + searched + i;
                if nl == self.pos || self.buf[nl - 1] != b'\r' {
                    return Err(RespError::MissingCrlf);
                }
                let parsed = parse_line(&self.buf[self.pos..nl - 1]);
                self.pos = nl + 1;
                return parsed;
            }
            searched = self.end - self.pos;
            if searched >= LINE_BYTES_MAX {
                return Err(RespError::LineTooLong);
            }
            if self.fill().await? == 0 {
                return Err(if self.pos == self.end {
                    RespError::Closed
                } else {
                    RespError::UnexpectedEof
                });
            }
        }
    }

    /// Fills `dest` from the stream: buffered bytes first, then straight from the socket when
    /// the rest is large (no intermediate copy).
    async fn read_exact_into(&mut self, dest: &mut [u8]) -> Result<(), RespError> {
        let mut done = self.take_buffered(dest);
        while done < dest.len() {
            let rest = dest.len() - done;
            if rest >= READ_BUFFER_BYTES / 2 {
                let n = self.inner.read(&mut dest[done..]).await?;
                if n == 0 {
                    return Err(RespError::UnexpectedEof);
                }
                done += n;
            } else {
                if self.fill().await? == 0 {
                    return Err(RespError::UnexpectedEof);
                }
                done += self.take_buffered(&mut dest[done..]);
            }
        }
        Ok(())
    }

    fn take_buffered(&mut self, dest: &mut [u8]) -> usize {
        let n = dest.len().min(self.end - self.pos);
        dest[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        n
    }

    /// Reads a payload of `len` bytes into a new Vec of exactly that size, without zero-filling
    /// it first, followed by its CRLF.
    async fn read_bulk_body(&mut self, len: usize) -> Result<Vec<u8>, RespError> {
        let mut out = Vec::with_capacity(len);
        let n = len.min(self.end - self.pos);
        out.extend_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        while out.len() < len {
            let rest = len - out.len();
            if rest >= READ_BUFFER_BYTES / 2 {
                let n = self.inner.read_buf(&mut (&mut out).limit(rest)).await?;
                if n == 0 {
                    return Err(RespError::UnexpectedEof);
                }
            } else {
                if self.fill().await? == 0 {
                    return Err(RespError::UnexpectedEof);
                }
                let n = rest.min(self.end - self.pos);
                out.extend_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
            }
        }
        self.expect_crlf().await?;
        Ok(out)
    }

    async fn expect_crlf(&mut self) -> Result<(), RespError> {
        let mut crlf = [0u8; 2];
        self.read_exact_into(&mut crlf).await?;
        if crlf == *CRLF {
            Ok(())
        } else {
            Err(RespError::MissingCrlf)
        }
    }

    async fn discard(&mut self, mut n: u64) -> Result<(), RespError> {
        let mut scratch = [0u8; 4096];
        while n > 0 {
            let step = n.min(scratch.len() as u64) as usize;
            self.read_exact_into(&mut scratch[..step]).await?;
            n -= step as u64;
        }
        Ok(())
    }

    /// Reads one request (array of bulk strings), enforcing 0-db's limits. `Ok(None)` when the
    /// peer closed the connection between requests.
    pub async fn read_request(&mut self) -> Result<Option<Vec<Vec<u8>>>, RespError> {
        if self.pos == self.end && self.fill().await? == 0 {
            return Ok(None);
        }
        // Checked on the first byte, before a line end arrives: an inline command is refused at
        // once, as 0-db does, instead of waiting for (or buffering) a whole line.
        if self.buf[self.pos] != b'*' {
            return Err(RespError::ArrayExpected);
        }
        let count = match self.read_line().await {
            Ok(Line::Array(n)) => n,
            Ok(_) => return Err(RespError::ArrayExpected),
            Err(RespError::Closed) => return Err(RespError::UnexpectedEof),
            Err(e) => return Err(e),
        };
        if count <= 0 {
            return Err(RespError::MissingArguments);
        }
        if count > ARGS_MAX as i64 {
            return Err(RespError::TooManyArguments { count });
        }
        let mut args = Vec::with_capacity(count as usize);
        let mut total: usize = 0;
        for _ in 0..count {
            let len = match self.read_line().await {
                Ok(Line::Bulk(n)) => n,
                Ok(_) => return Err(RespError::BulkExpected),
                Err(RespError::Closed) => return Err(RespError::UnexpectedEof),
                Err(e) => return Err(e),
            };
            if len < 0 {
                return Err(RespError::BulkExpected);
            }
            if len > VALUE_BYTES_MAX as i64 {
                return Err(RespError::PayloadTooBig {
                    len,
                    max: VALUE_BYTES_MAX,
                });
            }
            total += len as usize;
            if total > REQUEST_BYTES_MAX {
                return Err(RespError::PayloadTooBig {
                    len: total as i64,
                    max: REQUEST_BYTES_MAX,
                });
            }
            args.push(self.read_bulk_body(len as usize).await?);
        }
        Ok(Some(args))
    }

    /// Reads one complete reply (arrays included, iteratively so depth is bounded).
    pub async fn read_reply(&mut self) -> Result<Reply, RespError> {
        // Open arrays: items so far and how many are still expected.
        let mut stack: Vec<(Vec<Reply>, usize)> = Vec::new();
        let mut bytes: usize = 0;
        loop {
            let line = match self.read_line().await {
                Err(RespError::Closed) if !stack.is_empty() => {
                    return Err(RespError::UnexpectedEof)
                }
                other => other?,
            };
            let mut item = match line {
                Line::Status(s) => Reply::Status(s),
                Line::Error(s) => Reply::Error(s),
                Line::Integer(n) => Reply::Integer(n),
                Line::Bulk(n) if n < 0 => Reply::Nil,
                Line::Bulk(n) => {
                    let len = usize::try_from(n).unwrap_or(usize::MAX);
                    bytes = bytes.saturating_add(len);
                    if len > VALUE_BYTES_MAX.max(LINE_BYTES_MAX) || bytes > REPLY_BYTES_MAX {
                        return Err(RespError::PayloadTooBig {
                            len: n,
                            max: VALUE_BYTES_MAX,
                        });
                    }
                    Reply::Bulk(self.read_bulk_body(len).await?)
                }
                Line::Array(n) if n < 0 => Reply::NilArray,
                Line::Array(0) => Reply::Array(Vec::new()),
                Line::Array(n) => {
                    if n > REPLY_ARRAY_LEN_MAX as i64 {
                        return Err(RespError::ArrayTooLong { len: n });
                    }
                    if stack.len() >= REPLY_DEPTH_MAX {
                        return Err(RespError::TooDeep);
                    }
                    let n = n as usize;
                    stack.push((Vec::with_capacity(n.min(1024)), n));
                    continue;
                }
            };
            // Attach the finished item to its parent, closing every array it completes.
            loop {
                match stack.last_mut() {
                    None => return Ok(item),
                    Some((items, remaining)) => {
                        items.push(item);
                        *remaining -= 1;
                        if *remaining > 0 {
                            break;
                        }
                    }
                }
                match stack.pop() {
                    Some((items, _)) => item = Reply::Array(items),
                    None => return Err(RespError::TooDeep),
                }
            }
        }
    }

    /// Reads one reply; a bulk of exactly `dest.len()` bytes lands in `dest` (a part of a larger
    /// value is read in place, no copy).
    pub async fn read_reply_into(&mut self, dest: &mut [u8]) -> Result<IntoReply, RespError> {
        match self.read_line().await? {
            Line::Bulk(n) if n >= 0 => {
                if n as u64 == dest.len() as u64 {
                    self.read_exact_into(dest).await?;
                    self.expect_crlf().await?;
                    Ok(IntoReply::Filled)
                } else if n as u64 <= VALUE_BYTES_MAX as u64 {
                    self.discard(n as u64).await?;
                    self.expect_crlf().await?;
                    Ok(IntoReply::WrongLength(n as u64))
                } else {
                    Err(RespError::PayloadTooBig {
                        len: n,
                        max: VALUE_BYTES_MAX,
                    })
                }
            }
            Line::Bulk(_) => Ok(IntoReply::Other(Reply::Nil)),
            Line::Status(s) => Ok(IntoReply::Other(Reply::Status(s))),
            Line::Error(s) => Ok(IntoReply::Other(Reply::Error(s))),
            Line::Integer(n) => Ok(IntoReply::Other(Reply::Integer(n))),
            // 0-db never answers GET with an array; reject rather than parse a surprise.
            Line::Array(_) => Err(RespError::BadType(b'*')),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn reply(bytes: &[u8]) -> Result<Reply, RespError> {
        RespReader::new(bytes).read_reply().await
    }

    async fn request(bytes: &[u8]) -> Result<Option<Vec<Vec<u8>>>, RespError> {
        RespReader::new(bytes).read_request().await
    }

    #[test]
    fn encodes_requests() {
        let mut out = Vec::new();
        encode_request(&mut out, &[b"SET", b"k", b"hello"]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n");
        let mut head = Vec::new();
        encode_request_head(&mut head, &[b"SET", b"k"], 5);
        head.extend_from_slice(b"hello\r\n");
        assert_eq!(head, out);
    }

    #[tokio::test]
    async fn parses_every_reply_kind() {
        assert_eq!(reply(b"+OK\r\n").await.unwrap(), Reply::Status("OK".into()));
        assert_eq!(
            reply(b"-Key not found\r\n").await.unwrap(),
            Reply::Error("Key not found".into())
        );
        assert_eq!(reply(b":-42\r\n").await.unwrap(), Reply::Integer(-42));
        assert_eq!(reply(b"$-1\r\n").await.unwrap(), Reply::Nil);
        assert_eq!(reply(b"*-1\r\n").await.unwrap(), Reply::NilArray);
        assert_eq!(
            reply(b"$4\r\na\r\nb\r\n").await.unwrap(),
            Reply::Bulk(b"a\r\nb".to_vec())
        );
        assert_eq!(reply(b"*0\r\n").await.unwrap(), Reply::Array(vec![]));
        let scan = b"*2\r\n$3\r\ncur\r\n*1\r\n*3\r\n$1\r\nk\r\n:5\r\n:7\r\n";
        assert_eq!(
            reply(scan).await.unwrap(),
            Reply::Array(vec![
                Reply::Bulk(b"cur".to_vec()),
                Reply::Array(vec![Reply::Array(vec![
                    Reply::Bulk(b"k".to_vec()),
                    Reply::Integer(5),
                    Reply::Integer(7)
                ])])
            ])
        );
    }

    #[tokio::test]
    async fn rejects_malformed_replies_without_panicking() {
        let cases: &[&[u8]] = &[
            b"",
            b"\r\n",
            b"?x\r\n",
            b"+OK\n",
            b":12a\r\n",
            b":\r\n",
            b":99999999999999999999\r\n",
            b"$5\r\nab\r\n",
            b"$2\r\nabXY",
            b"$-\r\n",
            b"$99999999999\r\n",
            b"*2\r\n:1\r\n",
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
            b"*9999999999\r\n",
            b"+OK",
        ];
        for case in cases {
            assert!(reply(case).await.is_err(), "accepted {case:?}");
        }
        let long = [b"+".as_slice(), &[b'a'; LINE_BYTES_MAX + 10]].concat();
        assert!(matches!(reply(&long).await, Err(RespError::LineTooLong)));
    }

    #[tokio::test]
    async fn parses_requests_and_enforces_limits() {
        let args = request(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").await.unwrap();
        assert_eq!(args, Some(vec![b"GET".to_vec(), b"k".to_vec()]));
        assert_eq!(request(b"").await.unwrap(), None);
        assert!(matches!(
            request(b"PING\r\n").await,
            Err(RespError::ArrayExpected)
        ));
        assert!(matches!(
            request(b"*0\r\n").await,
            Err(RespError::MissingArguments)
        ));
        assert!(matches!(
            request(b"*1025\r\n").await,
            Err(RespError::TooManyArguments { .. })
        ));
        assert!(matches!(
            request(b"*1\r\n:1\r\n").await,
            Err(RespError::BulkExpected)
        ));
        assert!(matches!(
            request(b"*1\r\n$8388609\r\n").await,
            Err(RespError::PayloadTooBig { .. })
        ));
        assert!(matches!(
            request(b"*2\r\n$3\r\nGET\r\n").await,
            Err(RespError::UnexpectedEof)
        ));
        assert!(request(b"*1\r\n$3\r\nGETxx").await.is_err());
        for e in [
            RespError::ArrayExpected,
            RespError::PayloadTooBig { len: 1, max: 0 },
        ] {
            assert!(e.server_message().is_some());
        }
    }

    #[tokio::test]
    async fn reads_large_bulk_in_place_and_discards_wrong_length() {
        let value: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut wire = format!("${}\r\n", value.len()).into_bytes();
        wire.extend_from_slice(&value);
        wire.extend_from_slice(b"\r\n+OK\r\n");
        let mut reader = RespReader::new(wire.as_slice());
        let mut dest = vec![0u8; value.len()];
        assert_eq!(
            reader.read_reply_into(&mut dest).await.unwrap(),
            IntoReply::Filled
        );
        assert_eq!(dest, value);
        assert_eq!(
            reader.read_reply().await.unwrap(),
            Reply::Status("OK".into())
        );

        let mut reader = RespReader::new(wire.as_slice());
        let mut small = [0u8; 3];
        assert_eq!(
            reader.read_reply_into(&mut small).await.unwrap(),
            IntoReply::WrongLength(value.len() as u64)
        );
        assert_eq!(
            reader.read_reply().await.unwrap(),
            Reply::Status("OK".into())
        );

        let mut reader = RespReader::new(wire.as_slice());
        assert_eq!(reader.read_reply().await.unwrap(), Reply::Bulk(value));
    }

    #[test]
    fn short_hex_shortens_long_keys() {
        assert_eq!(short_hex(b"ab"), "6162");
        let long = short_hex(&[7u8; 100]);
        assert!(long.contains("(100 bytes)"), "{long}");
    }
}
