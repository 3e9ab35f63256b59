//! Answering storage challenges where the shards live (specs/challenge.md, "Prover side"): the
//! embedded hoster's `PROVE` command and the sidecar beside a real 0-db share this. A shard's
//! Merkle tree is built once (one full read) and kept, so each later challenge costs only its
//! sampled chunk reads. The prover never learns what a shard is: it gets an opaque storage key.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use prover::challenge::{respond, Challenge, ShardTree};
use prover::merkle::{ChunkTreeBuilder, CHUNK_BYTES};

use crate::client::large_part_key;

/// The RESP command: `PROVE <challenge (58 bytes)> <storage key>` in the selected namespace;
/// the reply is the encoded response as a bulk string, or an error line.
pub const PROVE_COMMAND: &str = "PROVE";
/// Shard trees kept in memory (a 16 MiB shard's tree is ~1 MiB); older ones are rebuilt on use.
pub const PROVER_TREES_MAX: usize = 64;
/// File in a hoster's data directory holding its ed25519 identity seed (mode 0600).
pub const IDENTITY_FILE: &str = "identity.key";

/// Why a challenge could not be answered; each names its subject.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The challenge bytes were refused (the reason names the field).
    #[error("{0}")]
    Challenge(String),
    #[error("no shard stored under key {key}")]
    ShardMissing { key: String },
    #[error("reading shard {key}: {source}")]
    Read {
        key: String,
        #[source]
        source: io::Error,
    },
    #[error("answering: {0}")]
    Respond(String),
}

/// Where a prover reads shard parts (the embedded namespace, or a 0-db over the network).
pub trait PartSource: Send + Sync {
    /// Length of the value stored under `key` (one part's key), None when it is not stored.
    fn part_len(&self, key: &[u8]) -> io::Result<Option<u64>>;
    /// `len` bytes of the value stored under `key`, from `offset`.
    fn read(&self, key: &[u8], offset: u64, len: usize) -> io::Result<Vec<u8>>;
}

/// A shard's tree with its parts (part key, length) in order.
struct KeptTree {
    tree: ShardTree,
    parts: Vec<(Vec<u8>, u64)>,
}

/// A hoster's identity and its cache of shard trees.
pub struct Prover {
    key: SigningKey,
    trees: Mutex<VecDeque<(Vec<u8>, Arc<KeptTree>)>>,
}

impl std::fmt::Debug for Prover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prover")
            .field("id", &hex::encode(self.id()))
            .finish()
    }
}

/// Loads the identity seed from `dir`, creating it (random, mode 0600) on first use.
pub fn load_or_create_identity(dir: &Path) -> io::Result<SigningKey> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(IDENTITY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is {} bytes, not a 32-byte seed",
                        path.display(),
                        bytes.len()
                    ),
                )
            })?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let seed: [u8; 32] = rand::random();
            std::fs::create_dir_all(dir)?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            f.write_all(&seed)?;
            f.sync_all()?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(e),
    }
}

impl Prover {
    pub fn new(key: SigningKey) -> Self {
        Self {
            key,
            trees: Mutex::new(VecDeque::new()),
        }
    }

    /// The hoster id challenges are bound to: its ed25519 public key.
    pub fn id(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The tree of the shard under `key` and its parts (part key, length), cached.
    fn tree(&self, src: &dyn PartSource, key: &[u8]) -> Result<Arc<KeptTree>, ProveError> {
        if let Ok(trees) = self.trees.lock() {
            if let Some((_, t)) = trees.iter().find(|(k, _)| k == key) {
                return Ok(t.clone());
            }
        }
        let read_err = |source| ProveError::Read {
            key: hex::encode(key),
            source,
        };
        let mut parts = Vec::new();
        for i in 0..=u16::MAX {
            let part_key = large_part_key(key, i);
            match src.part_len(&part_key).map_err(read_err)? {
                Some(len) => parts.push((part_key, len)),
                None => break,
            }
        }
        if parts.is_empty() {
            return Err(ProveError::ShardMissing {
                key: hex::encode(key),
            });
        }
        let mut builder = ChunkTreeBuilder::new();
        for (part_key, len) in &parts {
            let bytes = src.read(part_key, 0, *len as usize).map_err(read_err)?;
            builder.update(&bytes);
        }
        let tree = Arc::new(KeptTree {
            tree: ShardTree::from_leaves(builder.finish_leaves()),
            parts,
        });
        if let Ok(mut trees) = self.trees.lock() {
            if trees.len() >= PROVER_TREES_MAX {
                trees.pop_front();
            }
            trees.push_back((key.to_vec(), tree.clone()));
        }
        Ok(tree)
    }

    /// Answers an encoded challenge for the shard stored under `key`; returns the encoded
    /// response. Blocking (reads through `src`): run it off the async executor.
    pub fn answer(
        &self,
        src: &dyn PartSource,
        key: &[u8],
        challenge: &[u8],
    ) -> Result<Vec<u8>, ProveError> {
        let challenge =
            Challenge::decode(challenge).map_err(|e| ProveError::Challenge(e.to_string()))?;
        let tree = self.tree(src, key)?;
        let (tree, parts) = (&tree.tree, &tree.parts);
        let id = self.id();
        // Chunks never straddle parts: parts are 8 MiB, a multiple of the 1 KiB chunk.
        let chunk = |index: u64| -> Option<Vec<u8>> {
            let mut offset = index.checked_mul(CHUNK_BYTES as u64)?;
            for (part_key, len) in parts {
                if offset < *len {
                    let n = (*len - offset).min(CHUNK_BYTES as u64) as usize;
                    return src.read(part_key, offset, n).ok();
                }
                offset -= len;
            }
            None
        };
        let response = respond(&challenge, tree, chunk, &id, &self.key)
            .map_err(|e| ProveError::Respond(e.to_string()))?;
        Ok(response.encode())
    }
}

/// Shard parts read from a (real) 0-db over its protocol. 0-db has no range reads, so a challenged
/// chunk costs a read of the part that holds it; parts read during one answer are kept for the
/// rest of that answer (at most the shard's size).
struct ZdbParts {
    client: crate::ZdbClient,
    rt: tokio::runtime::Handle,
    parts: Mutex<std::collections::HashMap<Vec<u8>, Arc<Vec<u8>>>>,
}

impl PartSource for ZdbParts {
    fn part_len(&self, key: &[u8]) -> io::Result<Option<u64>> {
        self.rt
            .block_on(self.client.length(key))
            .map_err(io::Error::other)
    }

    fn read(&self, key: &[u8], offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let cached = self.parts.lock().ok().and_then(|p| p.get(key).cloned());
        let part = match cached {
            Some(p) => p,
            None => {
                let value = self
                    .rt
                    .block_on(self.client.get(key))
                    .map_err(io::Error::other)?
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "part vanished"))?;
                let value = Arc::new(value);
                if let Ok(mut p) = self.parts.lock() {
                    p.insert(key.to_vec(), value.clone());
                }
                value
            }
        };
        let start = usize::try_from(offset).map_err(io::Error::other)?;
        part.get(start..start + len)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "range beyond the part"))
    }
}

fn error_line(out: &mut Vec<u8>, message: &str) {
    out.push(b'-');
    out.extend(
        message
            .bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

/// The prover sidecar beside a real 0-db (`archiver prover --zdb`): answers `PING`, `SELECT` of
/// the namespace it reads, and `PROVE`, reading shards from `zdb`. Everything else is refused.
pub async fn serve_sidecar(
    listener: tokio::net::TcpListener,
    prover: Arc<Prover>,
    zdb: crate::ZdbClient,
    namespace: String,
) -> io::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    loop {
        let (stream, peer) = listener.accept().await?;
        let (prover, zdb, namespace) = (prover.clone(), zdb.clone(), namespace.clone());
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut reader = crate::resp::RespReader::new(read);
            loop {
                let args = match reader.read_request().await {
                    Ok(Some(args)) => args,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "prover connection ended");
                        return;
                    }
                };
                let mut out = Vec::new();
                let name = args
                    .first()
                    .map(|a| a.to_ascii_uppercase())
                    .unwrap_or_default();
                match name.as_slice() {
                    b"PING" => out.extend_from_slice(b"+PONG\r\n"),
                    b"SELECT" if args.get(1).map(Vec::as_slice) == Some(namespace.as_bytes()) => {
                        out.extend_from_slice(b"+OK\r\n");
                    }
                    b"SELECT" => error_line(&mut out, "Namespace not found"),
                    b"PROVE" if args.len() == 3 => {
                        let source = ZdbParts {
                            client: zdb.clone(),
                            rt: tokio::runtime::Handle::current(),
                            parts: Mutex::default(),
                        };
                        let prover = prover.clone();
                        let (challenge, key) = (args[1].clone(), args[2].clone());
                        let answer = tokio::task::spawn_blocking(move || {
                            prover.answer(&source, &key, &challenge)
                        })
                        .await;
                        match answer {
                            Ok(Ok(response)) => {
                                out.extend_from_slice(
                                    format!("${}\r\n", response.len()).as_bytes(),
                                );
                                out.extend_from_slice(&response);
                                out.extend_from_slice(b"\r\n");
                            }
                            Ok(Err(e)) => error_line(&mut out, &e.to_string()),
                            Err(_) => error_line(&mut out, "Internal Error"),
                        }
                    }
                    b"PROVE" => error_line(&mut out, "Invalid arguments"),
                    _ => error_line(&mut out, "Command not supported"),
                }
                if write.write_all(&out).await.is_err() {
                    return;
                }
            }
        });
    }
}
