//! Crash recovery of the embedded hoster: a namespace whose properties file and data log are made
//! up is opened the way a restarting hoster opens it (index rebuilt by scanning, torn tail cut,
//! damage skipped). It must open or refuse with an error; what it serves must be a value of the
//! log under its key.

use std::io;
use std::sync::{Arc, Mutex};

use zdb_backend::server::format::{encode_entry_header, encode_log_header, EntryHeader, NsProps};
use zdb_backend::server::replay_namespace;
use zdb_backend::{DataLog, HosterStorage};

use crate::control;

const NAME: &[u8] = b"fuzz";

/// One namespace in memory: its properties bytes and its data log.
struct MemoryStorage {
    props: Vec<u8>,
    log: Arc<Mutex<Vec<u8>>>,
}

struct MemoryLog(Arc<Mutex<Vec<u8>>>);

fn lock(log: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl DataLog for MemoryLog {
    fn size_bytes(&self) -> io::Result<u64> {
        Ok(lock(&self.0).len() as u64)
    }
    fn write_at(&self, offset: u64, parts: &[&[u8]]) -> io::Result<()> {
        let mut log = lock(&self.0);
        let mut at = usize::try_from(offset).map_err(io::Error::other)?;
        for part in parts {
            if log.len() < at + part.len() {
                log.resize(at + part.len(), 0);
            }
            log[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        Ok(())
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let log = lock(&self.0);
        let at = usize::try_from(offset).map_err(io::Error::other)?;
        let src = log
            .get(at..at + buf.len())
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        lock(&self.0).truncate(usize::try_from(len).map_err(io::Error::other)?);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

impl HosterStorage for MemoryStorage {
    fn namespaces(&self) -> io::Result<Vec<Vec<u8>>> {
        Ok(vec![NAME.to_vec()])
    }
    fn create_namespace(&self, _: &[u8], _: &[u8]) -> io::Result<()> {
        Err(io::Error::other("not in the fuzz storage"))
    }
    fn read_props(&self, _: &[u8]) -> io::Result<Vec<u8>> {
        Ok(self.props.clone())
    }
    fn write_props(&self, _: &[u8], _: &[u8]) -> io::Result<()> {
        Err(io::Error::other("not in the fuzz storage"))
    }
    fn open_log(&self, _: &[u8]) -> io::Result<Box<dyn DataLog>> {
        Ok(Box::new(MemoryLog(Arc::clone(&self.log))))
    }
}

/// A data log of well-formed entries from a simple description, so the fuzzer starts from (and
/// mutates) logs that recover to something: per entry a key length byte, a value length byte, a
/// flag byte, then the key and value bytes.
pub fn synthesize_log(mut spec: &[u8]) -> Vec<u8> {
    let mut log = encode_log_header().to_vec();
    while let [key_len, value_len, flags, tail @ ..] = spec {
        let (key_len, value_len) = (usize::from(*key_len).max(1), usize::from(*value_len));
        if tail.len() < key_len + value_len {
            // A torn last entry: what a crash mid-append leaves.
            log.extend_from_slice(tail);
            break;
        }
        let (key, tail) = tail.split_at(key_len);
        let (value, tail) = tail.split_at(value_len);
        let deleted = flags & 1 != 0;
        let value: &[u8] = if deleted { &[] } else { value };
        let h = EntryHeader {
            value_crc32: crc32fast::hash(value),
            value_len: value.len() as u32,
            timestamp: u32::from(*flags),
            key_len: key_len as u8,
            flags: u8::from(deleted),
        };
        log.extend_from_slice(&encode_entry_header(&h, key));
        log.extend_from_slice(key);
        log.extend_from_slice(value);
        spec = tail;
    }
    log
}

pub fn run(data: &[u8]) {
    let (ctl, rest) = control(data);
    let log = match ctl % 4 {
        // Raw log bytes (behind a valid log header most of the time).
        0 | 1 => {
            let mut log = if ctl % 4 == 0 {
                encode_log_header().to_vec()
            } else {
                Vec::new()
            };
            log.extend_from_slice(rest);
            log
        }
        // Well-formed entries, then damage: a byte flipped at a fuzzed position.
        _ => {
            let mut log = synthesize_log(rest);
            if ctl % 4 == 3 && log.len() > 16 {
                let at = 16 + usize::from(ctl) * 7919 % (log.len() - 16);
                log[at] ^= ctl | 1;
            }
            log
        }
    };
    let before = log.clone();
    let storage = MemoryStorage {
        props: NsProps::new(NAME).encode(),
        log: Arc::new(Mutex::new(log)),
    };
    if let Ok(live) = replay_namespace(&storage, NAME) {
        let after = lock(&storage.log).clone();
        // Recovery only cuts (a torn or damaged tail) or writes a fresh header to an empty log.
        if before.len() >= 16 {
            assert!(
                before.starts_with(&after),
                "recovery changed kept log bytes"
            );
        }
        for (key, value) in &live {
            assert!(!key.is_empty() && key.len() <= 255);
            let needle = [key.as_slice(), value.as_slice()].concat();
            assert!(
                after.windows(needle.len()).any(|w| w == needle.as_slice()),
                "served a value that is not in the log"
            );
        }
    }
}
