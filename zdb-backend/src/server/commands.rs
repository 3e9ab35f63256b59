//! Command dispatch of the embedded hoster: 0-db's command table (matched case-insensitively by
//! prefix, in 0-db's order) and each command's checks and replies, error texts included.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sha1::Digest as _;

use super::format::{decode_cursor, encode_cursor, NsProps, CURSOR_BYTES, NAMESPACE_BYTES_MAX};
use super::namespace::{Loc, Namespace, Refusal, SetOutcome};
use super::{Out, Session, Shared, DEFAULT_NAMESPACE};
use crate::resp::KEY_BYTES_MAX;

/// Keys returned by one SCAN call. 0-db fills a batch for ~2 ms; a fixed count keeps replies
/// bounded and the behaviour deterministic.
const SCAN_BATCH_MAX: usize = 1024;

/// Longest admin password AUTH accepts (0-db: `-Password too long`).
const AUTH_PASSWORD_BYTES_MAX: usize = 128;

/// Longest password SELECT accepts (0-db's 256-byte buffer).
const SELECT_PASSWORD_BYTES_MAX: usize = 255;

/// Longest NSSET property name and value (0-db's `COMMAND_MAXLEN` and 63-byte value limit).
const NSSET_PROPERTY_BYTES_MAX: usize = 256;
const NSSET_VALUE_BYTES_MAX: usize = 63;

/// Most bytes of RESP framing around one bulk value: `$8388608\r\n` and the closing `\r\n`.
const BULK_FRAMING_BYTES: u64 = 16;

/// Length of a SHA-1 hex proof.
const SHA1_HEX_BYTES: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Asterisk,
    Ping,
    Time,
    Auth,
    Set,
    Get,
    Mget,
    Del,
    Exists,
    Check,
    Scan,
    Length,
    Keytime,
    Info,
    Stop,
    Dbsize,
    Nsnew,
    Nsdel,
    Nslist,
    Nsset,
    Nsinfo,
    Select,
    Flush,
    Prove,
    /// In 0-db's table (so prefixes resolve as in 0-db) but not served here.
    Unsupported,
}

/// 0-db v2.0.7's table, in its order: a prefix runs the first command it matches (`S` is SET,
/// `D` is DATA, `DE` is DEL).
const COMMANDS: &[(&str, Cmd)] = &[
    ("*", Cmd::Asterisk),
    ("WAIT", Cmd::Unsupported),
    ("MIRROR", Cmd::Unsupported),
    ("MASTER", Cmd::Unsupported),
    ("PING", Cmd::Ping),
    ("TIME", Cmd::Time),
    ("AUTH", Cmd::Auth),
    ("HOOKS", Cmd::Unsupported),
    ("INDEX", Cmd::Unsupported),
    ("DATA", Cmd::Unsupported),
    ("SET", Cmd::Set),
    ("SETX", Cmd::Set),
    ("GET", Cmd::Get),
    ("MGET", Cmd::Mget),
    ("DEL", Cmd::Del),
    ("EXISTS", Cmd::Exists),
    ("CHECK", Cmd::Check),
    ("SCAN", Cmd::Scan),
    ("SCANX", Cmd::Scan),
    ("RSCAN", Cmd::Unsupported),
    ("KSCAN", Cmd::Unsupported),
    ("HISTORY", Cmd::Unsupported),
    ("KEYCUR", Cmd::Unsupported),
    ("LENGTH", Cmd::Length),
    ("KEYTIME", Cmd::Keytime),
    ("INFO", Cmd::Info),
    ("STOP", Cmd::Stop),
    ("DBSIZE", Cmd::Dbsize),
    ("NSNEW", Cmd::Nsnew),
    ("NSDEL", Cmd::Nsdel),
    ("NSLIST", Cmd::Nslist),
    ("NSSET", Cmd::Nsset),
    ("NSINFO", Cmd::Nsinfo),
    ("NSJUMP", Cmd::Unsupported),
    ("SELECT", Cmd::Select),
    ("RELOAD", Cmd::Unsupported),
    ("FLUSH", Cmd::Flush),
    (crate::prove::PROVE_COMMAND, Cmd::Prove),
];

/// `strncasecmp(given, name, len(given)) == 0`: `given` is a case-insensitive prefix of `name`.
fn prefix_of(given: &[u8], name: &str) -> bool {
    given.len() <= name.len() && given.eq_ignore_ascii_case(&name.as_bytes()[..given.len()])
}

#[cfg(test)]
fn lookup(name: &[u8]) -> Option<Cmd> {
    lookup_entry(name).map(|(_, c)| c)
}

/// The table entry a name runs: its full name (the metrics' `command` label) and command.
fn lookup_entry(name: &[u8]) -> Option<(&'static str, Cmd)> {
    COMMANDS.iter().find(|(n, _)| prefix_of(name, n)).copied()
}

fn err(message: &'static str) -> Out {
    Out::Error(message)
}

/// 0-db's `command_args_validate`: exact count, no empty argument.
fn validate(args: &[Vec<u8>], expected: usize) -> Result<(), Out> {
    if args.len() != expected {
        return Err(err("Unexpected arguments"));
    }
    if args.iter().any(Vec::is_empty) {
        return Err(err("Invalid argument"));
    }
    Ok(())
}

fn admin(shared: &Shared, session: &Session) -> Result<(), Out> {
    if session.admin {
        Ok(())
    } else {
        shared.stats.unauthorized.fetch_add(1, Ordering::Relaxed);
        Err(err("Permission denied"))
    }
}

fn namespace_arg(arg: &[u8]) -> Result<(), Out> {
    if arg.len() > NAMESPACE_BYTES_MAX {
        Err(err("Namespace too long"))
    } else {
        Ok(())
    }
}

/// C's `atoll`: optional sign, leading digits, anything after ignored, 0 when none.
fn atoll(bytes: &[u8]) -> i64 {
    let s = bytes.trim_ascii_start();
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for &d in digits.iter().take_while(|d| d.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    if neg {
        -n
    } else {
        n
    }
}

/// Compares a given password or proof with the expected one in time independent of where they
/// differ, so response timing does not reveal a secret byte by byte (only its length).
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn sha1_hex(nonce: &str, password: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(nonce.as_bytes());
    h.update(b":");
    h.update(password);
    hex::encode(h.finalize())
}

fn refused(r: Refusal) -> Out {
    Out::Error(r)
}

/// Runs blocking storage work off the async threads. A panicked task (a bug) becomes an error
/// reply instead of taking the connection down.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Out> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| err("Internal Error"))
}

pub(crate) async fn dispatch(
    shared: &Arc<Shared>,
    session: &mut Session,
    args: Vec<Vec<u8>>,
) -> Out {
    let entry = args.first().and_then(|name| lookup_entry(name));
    if let Some(m) = shared.metrics.get() {
        m.command(entry.map_or(super::UNKNOWN_COMMAND, |(name, _)| name));
    }
    let Some((_, cmd)) = entry else {
        shared.stats.failed.fetch_add(1, Ordering::Relaxed);
        return err("Command not supported");
    };
    shared.stats.commands.fetch_add(1, Ordering::Relaxed);
    let result = match cmd {
        Cmd::Asterisk => Err(err("This is not a valid command")),
        Cmd::Ping => Ok(Out::Status("PONG")),
        Cmd::Time => Ok(time()),
        Cmd::Auth => auth(shared, session, &args),
        Cmd::Set => set(shared, session, args).await,
        Cmd::Get => get(session, &args).await,
        Cmd::Mget => mget(shared, session, &args).await,
        Cmd::Del => del(shared, session, &args).await,
        Cmd::Exists => exists(session, &args),
        Cmd::Check => check(session, &args).await,
        Cmd::Scan => scan(session, &args),
        Cmd::Length => length(session, &args, false),
        Cmd::Keytime => length(session, &args, true),
        Cmd::Info => Ok(info(shared)),
        Cmd::Stop => Err(err("Unauthorized")),
        Cmd::Dbsize => Ok(Out::Int(session.ns.stats().entries as i64)),
        Cmd::Nsnew => nsnew(shared, session, &args).await,
        Cmd::Nsdel => nsdel(shared, session, &args).await,
        Cmd::Nslist => Ok(Out::Array(
            shared
                .all_namespaces()
                .iter()
                .map(|ns| Out::Bulk(ns.name().to_vec()))
                .collect(),
        )),
        Cmd::Nsset => nsset(shared, session, &args).await,
        Cmd::Nsinfo => nsinfo(shared, session, &args),
        Cmd::Select => select(shared, session, &args),
        Cmd::Flush => flush(session),
        Cmd::Prove => prove(shared, session, &args).await,
        Cmd::Unsupported => Err(err("Command not supported")),
    };
    result.unwrap_or_else(|e| e)
}

fn time() -> Out {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Out::Array(vec![
        Out::Bulk(now.as_secs().to_string().into_bytes()),
        Out::Bulk(now.subsec_micros().to_string().into_bytes()),
    ])
}

fn auth(shared: &Shared, session: &mut Session, args: &[Vec<u8>]) -> Result<Out, Out> {
    match args.len() {
        2 => {
            let Some(expected) = &shared.admin_password else {
                return Err(err("Authentication disabled"));
            };
            validate(args, 2)?;
            if args[1].len() > AUTH_PASSWORD_BYTES_MAX {
                return Err(err("Password too long"));
            }
            if same_secret(&args[1], expected) {
                session.admin = true;
                Ok(Out::Status("OK"))
            } else {
                Err(err("Access denied"))
            }
        }
        3 => {
            validate(args, 3)?;
            if !prefix_of(&args[1], "SECURE") {
                return Err(err("Only SECURE extra method supported"));
            }
            if prefix_of(&args[2], "CHALLENGE") {
                let nonce = hex::encode(rand::random::<[u8; 8]>());
                session.nonce = Some(nonce.clone());
                return Ok(Out::StatusOwned(nonce));
            }
            let Some(password) = &shared.admin_password else {
                return Err(err("Authentication disabled"));
            };
            let Some(nonce) = session.nonce.take() else {
                return Err(err(
                    "No CHALLENGE requested, secure authentication not available",
                ));
            };
            if args[2].len() != SHA1_HEX_BYTES {
                // 0-db keeps the nonce when the proof is malformed.
                session.nonce = Some(nonce);
                return Err(err("Invalid hash length"));
            }
            if same_secret(&args[2], sha1_hex(&nonce, password).as_bytes()) {
                session.admin = true;
                Ok(Out::Status("OK"))
            } else {
                Err(err("Access denied"))
            }
        }
        _ => Err(err("Unexpected arguments")),
    }
}

fn select(shared: &Shared, session: &mut Session, args: &[Vec<u8>]) -> Result<Out, Out> {
    if args.len() < 2 {
        return Err(err("Invalid argument"));
    }
    namespace_arg(&args[1])?;
    let ns = shared
        .namespace(&args[1])
        .ok_or_else(|| err("Namespace not found"))?;
    let props = ns.props();
    let mut writable = true;
    if let Some(password) = &props.password {
        if args.len() < 3 {
            if !props.public {
                return Err(err("Namespace protected and private"));
            }
            writable = false;
        } else if args.len() > 4 {
            return Err(err("Too many arguments"));
        } else if args.len() == 3 {
            if args[2].len() > SELECT_PASSWORD_BYTES_MAX {
                return Err(err("Password too long"));
            }
            if !same_secret(&args[2], password) {
                return Err(err("Access denied"));
            }
        } else {
            if !prefix_of(&args[2], "SECURE") {
                return Err(err("Only SECURE extra method supported"));
            }
            let Some(nonce) = &session.nonce else {
                return Err(err(
                    "No CHALLENGE requested, secure authentication not available",
                ));
            };
            if args[3].len() != SHA1_HEX_BYTES {
                return Err(err("Invalid hash length"));
            }
            if !same_secret(&args[3], sha1_hex(nonce, password).as_bytes()) {
                return Err(err("Access denied"));
            }
        }
    }
    session.ns = ns;
    session.writable = writable;
    Ok(Out::Status("OK"))
}

/// The checks every key command shares: argument count, no empty key, key length.
fn key_arg(args: &[Vec<u8>]) -> Result<&[u8], Out> {
    validate(args, 2)?;
    if args[1].len() > KEY_BYTES_MAX {
        return Err(err("Invalid key"));
    }
    Ok(&args[1])
}

async fn set(shared: &Shared, session: &Session, mut args: Vec<Vec<u8>>) -> Result<Out, Out> {
    if args.len() == 4 {
        // A caller-chosen timestamp is for replication: admin only, as in 0-db.
        admin(shared, session)?;
    } else if args.len() != 3 {
        return Err(err("Unexpected arguments"));
    }
    if args[1].len() > KEY_BYTES_MAX {
        return Err(err("Key too large"));
    }
    if !session.writable {
        return Err(err("Namespace is in read-only mode"));
    }
    session.ns.writable().map_err(refused)?;
    if args[1].is_empty() {
        return Err(err("Invalid argument, key needed"));
    }
    let timestamp = args.get(3).map(|t| atoll(t) as u32);
    let value = std::mem::take(&mut args[2]);
    let key = std::mem::take(&mut args[1]);
    let ns = Arc::clone(&session.ns);
    blocking(move || match ns.set(&key, &value, timestamp) {
        Ok(SetOutcome::Stored) => Ok(Out::Bulk(key)),
        Ok(SetOutcome::Unchanged) => Ok(Out::Nil),
        Err(r) => Err(refused(r)),
    })
    .await?
}

async fn read_one(ns: &Arc<Namespace>, key: &[u8]) -> Out {
    let Some(loc) = ns.lookup(key) else {
        return Out::Nil;
    };
    let reader = Arc::clone(ns);
    match blocking(move || reader.read_value(&loc)).await {
        Ok(Ok(value)) => Out::Bulk(value),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot read payload");
            err("Internal Error")
        }
        Err(e) => e,
    }
}

/// Reads shard parts from the session's namespace for the prover.
struct NamespaceParts(Arc<Namespace>);

impl crate::prove::PartSource for NamespaceParts {
    fn scope(&self) -> &[u8] {
        self.0.name()
    }

    fn part_len(&self, key: &[u8]) -> std::io::Result<Option<u64>> {
        Ok(self.0.lookup(key).map(|loc| u64::from(loc.value_len)))
    }

    fn read(&self, key: &[u8], offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        let loc = self
            .0
            .lookup(key)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "part vanished"))?;
        self.0.read_value_range(&loc, offset, len)
    }
}

/// `PROVE <challenge> <key>`: answers a storage challenge for the shard stored under `key`.
async fn prove(shared: &Arc<Shared>, session: &Session, args: &[Vec<u8>]) -> Result<Out, Out> {
    if args.len() != 3 {
        return Err(err("Invalid arguments"));
    }
    if args[2].len() > KEY_BYTES_MAX {
        return Err(err("Invalid key"));
    }
    session.ns.readable().map_err(refused)?;
    let (challenge, key) = (args[1].clone(), args[2].clone());
    let parts = NamespaceParts(Arc::clone(&session.ns));
    let prover = Arc::clone(&shared.prover);
    match blocking(move || prover.answer(&parts, &key, &challenge)).await? {
        Ok(response) => Ok(Out::Bulk(response)),
        Err(e) => Err(Out::ErrorOwned(e.to_string())),
    }
}

async fn get(session: &Session, args: &[Vec<u8>]) -> Result<Out, Out> {
    let key = key_arg(args)?;
    session.ns.readable().map_err(refused)?;
    Ok(read_one(&session.ns, key).await)
}

async fn mget(shared: &Shared, session: &Session, args: &[Vec<u8>]) -> Result<Out, Out> {
    if args.len() < 2 {
        return Err(err("Invalid arguments"));
    }
    if args[1..].iter().any(|k| k.len() > KEY_BYTES_MAX) {
        return Err(err("Invalid key"));
    }
    session.ns.readable().map_err(refused)?;
    let locs: Vec<Option<Loc>> = args[1..].iter().map(|k| session.ns.lookup(k)).collect();
    // Sized before anything is read: a reply over the cap (value bytes) is refused unbuilt.
    let value_bytes: u64 = locs
        .iter()
        .map(|loc| loc.map_or(0, |l| u64::from(l.value_len)))
        .sum();
    if value_bytes > shared.limits.reply_bytes_max as u64 {
        return Err(err(super::ERR_REPLY_TOO_LARGE));
    }
    let framing = (locs.len() as u64 + 1) * BULK_FRAMING_BYTES;
    let ns = Arc::clone(&session.ns);
    blocking(move || {
        let mut out = Vec::with_capacity((value_bytes + framing) as usize);
        super::push_header(&mut out, b'*', locs.len() as u64);
        for loc in locs {
            let Some(loc) = loc else {
                out.extend_from_slice(b"$-1\r\n");
                continue;
            };
            let mark = out.len();
            super::push_header(&mut out, b'$', u64::from(loc.value_len));
            let start = out.len();
            out.resize(start + loc.value_len as usize, 0);
            match ns.read_value_into(&loc, &mut out[start..]) {
                Ok(()) => out.extend_from_slice(b"\r\n"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read payload");
                    out.truncate(mark);
                    out.extend_from_slice(b"-Internal Error\r\n");
                }
            }
        }
        Out::Encoded(out)
    })
    .await
}

async fn del(shared: &Shared, session: &Session, args: &[Vec<u8>]) -> Result<Out, Out> {
    if args.len() == 3 {
        admin(shared, session)?;
    } else {
        validate(args, 2)?;
    }
    if args[1].len() > KEY_BYTES_MAX {
        return Err(err("Invalid key"));
    }
    if !session.writable {
        return Err(err("Namespace is in read-only mode"));
    }
    session.ns.writable().map_err(refused)?;
    let timestamp = args.get(2).map(|t| atoll(t) as u32);
    let key = args[1].clone();
    let ns = Arc::clone(&session.ns);
    blocking(move || {
        ns.del(&key, timestamp)
            .map(|()| Out::Status("OK"))
            .map_err(refused)
    })
    .await?
}

fn exists(session: &Session, args: &[Vec<u8>]) -> Result<Out, Out> {
    let key = key_arg(args)?;
    session.ns.readable().map_err(refused)?;
    Ok(Out::Int(i64::from(session.ns.lookup(key).is_some())))
}

async fn check(session: &Session, args: &[Vec<u8>]) -> Result<Out, Out> {
    let key = key_arg(args)?.to_vec();
    session.ns.readable().map_err(refused)?;
    let ns = Arc::clone(&session.ns);
    match blocking(move || ns.check(&key)).await? {
        None => Ok(Out::Nil),
        Some(Ok(ok)) => Ok(Out::Int(i64::from(ok))),
        Some(Err(e)) => {
            tracing::warn!(error = %e, "cannot read entry for CHECK");
            Err(err("Internal Error"))
        }
    }
}

fn length(session: &Session, args: &[Vec<u8>], timestamp: bool) -> Result<Out, Out> {
    let key = key_arg(args)?;
    session.ns.readable().map_err(refused)?;
    Ok(match session.ns.lookup(key) {
        None => Out::Nil,
        Some(loc) if timestamp => Out::Int(i64::from(loc.timestamp)),
        Some(loc) => Out::Int(i64::from(loc.value_len)),
    })
}

fn scan(session: &Session, args: &[Vec<u8>]) -> Result<Out, Out> {
    session.ns.readable().map_err(refused)?;
    let after = match args.get(1) {
        None => None,
        Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| err("Invalid key format"))?),
    };
    let batch = session.ns.scan(after, SCAN_BATCH_MAX);
    let Some(&(last, ..)) = batch.last() else {
        return Err(err("No more data"));
    };
    let cursor = encode_cursor(last);
    debug_assert_eq!(cursor.len(), CURSOR_BYTES);
    let items = batch
        .into_iter()
        .map(|(_, key, len, ts)| {
            Out::Array(vec![
                Out::Bulk(key.to_vec()),
                Out::Int(i64::from(len)),
                Out::Int(i64::from(ts)),
            ])
        })
        .collect();
    Ok(Out::Array(vec![
        Out::Bulk(cursor.to_vec()),
        Out::Array(items),
    ]))
}

fn info(shared: &Shared) -> Out {
    let stats = &shared.stats;
    let now = std::time::SystemTime::now();
    let boot = shared
        .boot
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let uptime = now
        .duration_since(shared.boot)
        .unwrap_or_default()
        .as_secs();
    let mut s = String::new();
    let _ = write!(
        s,
        "# server\nserver_name: 0-db (zdb)\nserver_revision: zdb-backend embedded hoster {}\n\
         engine_revision: zdb-backend {}\nboot_time: {boot}\nuptime: {uptime}\n\n\
         # clients\nclients_lifetime: {}\nclients_refused: {}\n\n\
         # internals\nsequential_key_size: 4\n\n\
         # stats\ncommands_executed: {}\ncommands_failed: {}\ncommands_unauthorized: {}\n\
         network_rx_bytes: {}\nnetwork_tx_bytes: {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION"),
        stats.clients.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed),
        stats.commands.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
        stats.unauthorized.load(Ordering::Relaxed),
        stats.rx_bytes.load(Ordering::Relaxed),
        stats.tx_bytes.load(Ordering::Relaxed),
    );
    Out::Bulk(s.into_bytes())
}

fn valid_new_name(name: &[u8]) -> bool {
    name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
        && name != DEFAULT_NAMESPACE
}

async fn nsnew(shared: &Arc<Shared>, session: &Session, args: &[Vec<u8>]) -> Result<Out, Out> {
    admin(shared, session)?;
    validate(args, 2)?;
    namespace_arg(&args[1])?;
    let name = args[1].clone();
    if !valid_new_name(&name) {
        return Err(err("This name is not allowed"));
    }
    let shared = Arc::clone(shared);
    blocking(move || {
        // Held across creation so two NSNEW of one name cannot both create it.
        let mut map = shared
            .namespaces
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if shared.closed.load(Ordering::SeqCst) {
            return Err(err("Could not create namespace"));
        }
        if map.contains_key(&name) {
            return Err(err("This namespace is not available"));
        }
        let created = shared
            .storage
            .create_namespace(&name, &NsProps::new(&name).encode())
            .map_err(|e| e.to_string())
            .and_then(|()| {
                Namespace::open(shared.storage.as_ref(), &name, shared.sync)
                    .map_err(|e| e.to_string())
            });
        match created {
            Ok(ns) => {
                map.insert(name, Arc::new(ns));
                Ok(Out::Status("OK"))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot create namespace");
                Err(err("Could not create namespace"))
            }
        }
    })
    .await?
}

/// NSDEL (admin): the namespace and its data are deleted; connections that selected it can no
/// longer write there (reads of what they already located still work until they SELECT again).
async fn nsdel(shared: &Arc<Shared>, session: &Session, args: &[Vec<u8>]) -> Result<Out, Out> {
    admin(shared, session)?;
    validate(args, 2)?;
    namespace_arg(&args[1])?;
    let name = args[1].clone();
    if name == DEFAULT_NAMESPACE {
        return Err(err("Cannot remove default namespace"));
    }
    if session.ns.name() == name.as_slice() {
        return Err(err("Cannot remove namespace you're currently using."));
    }
    let shared = Arc::clone(shared);
    blocking(move || {
        let mut map = shared
            .namespaces
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ns = map
            .get(&name)
            .cloned()
            .ok_or_else(|| err("This namespace doesn't exists"))?;
        if shared.closed.load(Ordering::SeqCst) {
            return Err(err("Could not delete this namespace"));
        }
        // Closed first: a write in progress finishes, none starts on files about to go.
        ns.close();
        match shared.storage.delete_namespace(&name) {
            Ok(()) => {
                map.remove(&name);
                Ok(Out::Status("OK"))
            }
            Err(e) => {
                ns.set_closed(false);
                tracing::warn!(error = %e, "cannot delete namespace");
                Err(err("Could not delete this namespace"))
            }
        }
    })
    .await?
}

async fn nsset(shared: &Arc<Shared>, session: &Session, args: &[Vec<u8>]) -> Result<Out, Out> {
    admin(shared, session)?;
    validate(args, 4)?;
    namespace_arg(&args[1])?;
    if args[2].len() > NSSET_PROPERTY_BYTES_MAX || args[3].len() > NSSET_VALUE_BYTES_MAX {
        return Err(err("Argument too long"));
    }
    let ns = shared
        .namespace(&args[1])
        .ok_or_else(|| err("Namespace not found"))?;
    let property = args[2].as_slice();
    let value = args[3].clone();
    let on = value.first() == Some(&b'1');
    // Runtime-only properties, allowed on the default namespace too.
    match property {
        b"mode" => {
            if value != b"user" {
                // This hoster keeps every namespace in user-key mode, like `0-db --mode user`.
                return Err(err(
                    "This server instance is configured to use a single runtime mode",
                ));
            }
            if !ns.is_empty() {
                return Err(err("Cannot change mode of used namespace"));
            }
            return Ok(Out::Status("OK"));
        }
        b"lock" => {
            ns.set_lock(on);
            return Ok(Out::Status("OK"));
        }
        b"freeze" => {
            ns.set_freeze(on);
            return Ok(Out::Status("OK"));
        }
        _ => {}
    }
    if ns.name() == DEFAULT_NAMESPACE {
        return Err(err("Cannot update default namespace"));
    }
    let change: Box<dyn FnOnce(&mut NsProps) + Send> = match property {
        b"maxsize" => {
            let size = atoll(&value).max(0) as u64;
            Box::new(move |p| p.maxsize_bytes = size)
        }
        b"password" => {
            let password = (value != b"*").then_some(value);
            Box::new(move |p| p.password = password)
        }
        b"public" => Box::new(move |p| p.public = on),
        b"worm" => Box::new(move |p| p.worm = on),
        _ => return Err(err("Invalid property")),
    };
    let storage = Arc::clone(&shared.storage);
    match blocking(move || ns.update_props(storage.as_ref(), change)).await? {
        Ok(()) => Ok(Out::Status("OK")),
        Err(e) => {
            tracing::warn!(error = %e, "cannot persist namespace properties");
            Err(err("Internal Server Error"))
        }
    }
}

fn nsinfo(shared: &Shared, session: &Session, args: &[Vec<u8>]) -> Result<Out, Out> {
    validate(args, 2)?;
    namespace_arg(&args[1])?;
    let ns = shared
        .namespace(&args[1])
        .ok_or_else(|| err("Namespace not found"))?;
    let st = ns.stats();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let mb = |n: u64| n as f64 / (1024.0 * 1024.0);
    // 0-db keeps ~42 bytes per key in memory plus the key; reported as the index size.
    let index_bytes = st.entries * 42 + st.live_key_bytes;
    let mut s = String::new();
    let _ = write!(
        s,
        "# namespace\nname: {}\nentries: {}\npublic: {}\nworm: {}\nlocked: {}\npassword: {}\n\
         data_size_bytes: {}\ndata_size_mb: {:.2}\ndata_limits_bytes: {}\n\
         index_size_bytes: {}\nindex_size_kb: {:.2}\nnext_internal_id: 0x00000000\nmode: userkey\n\
         stats_index_io_errors: 0\nstats_index_io_error_last: 0\nstats_index_faults: 0\n\
         stats_data_io_errors: 0\nstats_data_io_error_last: 0\nstats_data_faults: {}\n",
        String::from_utf8_lossy(ns.name()),
        st.entries,
        yes_no(st.props.public),
        yes_no(st.props.worm),
        yes_no(st.locked || st.frozen),
        yes_no(st.props.password.is_some()),
        st.live_value_bytes,
        mb(st.live_value_bytes),
        st.props.maxsize_bytes,
        index_bytes,
        index_bytes as f64 / 1024.0,
        st.damaged_entries,
    );
    if st.props.maxsize_bytes > 0 {
        let available = st.props.maxsize_bytes.saturating_sub(st.live_value_bytes);
        let _ = writeln!(s, "space_available: {available}");
    }
    if session.admin {
        let _ = writeln!(s, "data_log_bytes: {}", st.log_bytes);
    }
    Ok(Out::Bulk(s.into_bytes()))
}

fn flush(session: &Session) -> Result<Out, Out> {
    let props = session.ns.props();
    if props.public || props.password.is_none() {
        return Err(err("Flushing public namespace denied"));
    }
    // 0-db v2.0.7 answers +OK here without flushing anything; so does this hoster.
    Ok(Out::Status("OK"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_match_by_prefix_in_0db_order() {
        assert_eq!(lookup(b"SET"), Some(Cmd::Set));
        assert_eq!(lookup(b"se"), Some(Cmd::Set));
        assert_eq!(lookup(b"S"), Some(Cmd::Set));
        assert_eq!(lookup(b"D"), Some(Cmd::Unsupported));
        assert_eq!(lookup(b"dE"), Some(Cmd::Del));
        assert_eq!(lookup(b"NSI"), Some(Cmd::Nsinfo));
        assert_eq!(lookup(b""), Some(Cmd::Asterisk));
        assert_eq!(lookup(b"SETXY"), None);
        assert_eq!(lookup(b"BOGUS"), None);
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
        assert!(!same_secret(b"", b"a"));
    }

    #[test]
    fn atoll_is_lenient_like_c() {
        assert_eq!(atoll(b"123abc"), 123);
        assert_eq!(atoll(b"-5"), -5);
        assert_eq!(atoll(b"x"), 0);
        assert_eq!(atoll(b"99999999999999999999999"), i64::MAX);
    }
}
