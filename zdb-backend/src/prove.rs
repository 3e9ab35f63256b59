//! Answering storage challenges where the shards live (specs/challenge.md, "Prover side"): the
//! embedded hoster's `PROVE` command and the sidecar beside a real 0-db share this. A shard's
//! Merkle tree is built once (one full read) and kept, so each later challenge costs only its
//! sampled chunk reads. The prover never learns what a shard is: it gets an opaque storage key.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;
use prover::challenge::{respond, Challenge, ShardTree};
use prover::merkle::{ChunkTreeBuilder, CHUNK_BYTES};

use crate::client::large_part_key;

/// The RESP command: `PROVE <challenge (58 bytes)> <storage key>` in the selected namespace;
/// the reply is the encoded response as a bulk string, or an error line.
pub const PROVE_COMMAND: &str = "PROVE";
/// Shard trees kept in memory (a 16 MiB shard's tree is ~1 MiB), least recently used evicted;
/// evicted ones are reloaded from the tree directory (leaves only: 32 bytes per KiB of shard).
pub const PROVER_TREES_MAX: usize = 64;
/// Parts whose LENGTH the sidecar asks at once when it learns a shard's layout.
const SIDECAR_LENGTH_BATCH: u32 = 64;
/// Directory (in a hoster's or sidecar's data directory) of kept shard trees.
pub const TREES_DIR: &str = "trees";
/// Magic and version of a kept tree file (`<tree dir>/<id hex>.tree`, specs/challenge.md).
pub const TREE_FILE_MAGIC: &[u8; 8] = b"PTREE\x00\x00\x01";
/// Longest tree file read back: the leaves of a 4 GiB shard (65 536 parts of 64 KiB) plus
/// headers; anything longer is not ours and is rebuilt.
pub const TREE_FILE_BYTES_MAX: u64 = 160 * 1024 * 1024;
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
    /// Lengths of parts 0, 1, 2, … of the large value under `key`, up to the first part not
    /// stored. A network source overrides this to ask for many parts at once.
    fn part_lens(&self, key: &[u8]) -> io::Result<Vec<u64>> {
        let mut lens = Vec::new();
        for i in 0..=u16::MAX {
            match self.part_len(&large_part_key(key, i))? {
                Some(len) => lens.push(len),
                None => break,
            }
        }
        Ok(lens)
    }
    /// What distinguishes equal keys of different stores (the namespace name), so kept trees
    /// of one never answer for another.
    fn scope(&self) -> &[u8] {
        b""
    }
}

/// A shard's tree with its parts (part key, length) in order.
struct KeptTree {
    tree: ShardTree,
    parts: Vec<(Vec<u8>, u64)>,
}

/// A hoster's identity and its cache of shard trees: in memory (bounded) and, when given a
/// directory, on disk, so a tree is built once per shard rather than once per eviction.
pub struct Prover {
    key: SigningKey,
    trees: Mutex<VecDeque<([u8; 32], Arc<KeptTree>)>>,
    tree_dir: Option<PathBuf>,
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
            // The file's name is durable only once its directory is: a power cut must not bring
            // the hoster back with a new identity its verifiers do not know.
            std::fs::File::open(dir)?.sync_all()?;
            Ok(SigningKey::from_bytes(&seed))
        }
        Err(e) => Err(e),
    }
}

impl Prover {
    /// A prover keeping trees in memory only.
    pub fn new(key: SigningKey) -> Self {
        Self {
            key,
            trees: Mutex::new(VecDeque::new()),
            tree_dir: None,
        }
    }

    /// A prover that also keeps each shard's tree leaves under `dir` (created on first use).
    pub fn with_tree_dir(key: SigningKey, dir: PathBuf) -> Self {
        Self {
            tree_dir: Some(dir),
            ..Self::new(key)
        }
    }

    /// The hoster id challenges are bound to: its ed25519 public key.
    pub fn id(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The tree of the shard under `key` and its parts (part key, length), cached.
    fn tree(&self, src: &dyn PartSource, key: &[u8]) -> Result<Arc<KeptTree>, ProveError> {
        let id = tree_id(src.scope(), key);
        if let Ok(mut trees) = self.trees.lock() {
            if let Some(pos) = trees.iter().position(|(k, _)| *k == id) {
                // Least recently used goes first: move a hit to the back.
                if let Some(hit) = trees.remove(pos) {
                    let tree = hit.1.clone();
                    trees.push_back(hit);
                    return Ok(tree);
                }
            }
        }
        let read_err = |source| ProveError::Read {
            key: hex::encode(key),
            source,
        };
        let parts: Vec<(Vec<u8>, u64)> = src
            .part_lens(key)
            .map_err(read_err)?
            .into_iter()
            .enumerate()
            .map(|(i, len)| (large_part_key(key, i as u16), len))
            .collect();
        let file = self
            .tree_dir
            .as_ref()
            .map(|d| d.join(format!("{}.tree", hex::encode(id))));
        if parts.is_empty() {
            // The shard is gone (deleted, or moved away by a repair): so is its kept tree.
            if let Some(f) = &file {
                let _ = std::fs::remove_file(f);
            }
            return Err(ProveError::ShardMissing {
                key: hex::encode(key),
            });
        }
        let lens: Vec<u64> = parts.iter().map(|(_, len)| *len).collect();
        // A kept file counts only if it was made from parts of exactly these lengths; a shard
        // rewritten since is rebuilt. (Rotten bytes under the same lengths are what challenges
        // exist to catch: the kept leaves then disagree with the chunks read.)
        let leaves = match file.as_deref().and_then(|f| read_tree_file(f, &lens)) {
            Some(leaves) => leaves,
            None => {
                let mut builder = ChunkTreeBuilder::new();
                for (part_key, len) in &parts {
                    let bytes = src.read(part_key, 0, *len as usize).map_err(read_err)?;
                    builder.update(&bytes);
                }
                let leaves = builder.finish_leaves();
                if let Some(f) = &file {
                    if let Err(e) = write_tree_file(f, &lens, &leaves) {
                        // Only a cache: answering still works, the next eviction rebuilds.
                        tracing::warn!(file = %f.display(), error = %e, "cannot keep shard tree");
                    }
                }
                leaves
            }
        };
        let tree = Arc::new(KeptTree {
            tree: ShardTree::from_leaves(leaves),
            parts,
        });
        if let Ok(mut trees) = self.trees.lock() {
            if trees.len() >= PROVER_TREES_MAX {
                trees.pop_front();
            }
            trees.push_back((id, tree.clone()));
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
        // Chunks never straddle parts: part sizes (8 MiB, or the archiver's 64 KiB shard parts) are
        // multiples of the 1 KiB chunk.
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

/// Names a shard's kept tree: BLAKE3 of (scope length u32 LE ‖ scope ‖ key).
fn tree_id(scope: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(&(scope.len() as u32).to_le_bytes());
    h.update(scope);
    h.update(key);
    *h.finalize().as_bytes()
}

/// Tree file: magic (8) ‖ part count u32 LE ‖ leaf count u64 LE ‖ part lengths u64 LE each ‖
/// leaves 32 bytes each ‖ BLAKE3 of everything before (32).
pub fn encode_tree_file(part_lens: &[u64], leaves: &[[u8; 32]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(52 + part_lens.len() * 8 + leaves.len() * 32);
    out.extend_from_slice(TREE_FILE_MAGIC);
    out.extend_from_slice(&(part_lens.len() as u32).to_le_bytes());
    out.extend_from_slice(&(leaves.len() as u64).to_le_bytes());
    for len in part_lens {
        out.extend_from_slice(&len.to_le_bytes());
    }
    for leaf in leaves {
        out.extend_from_slice(leaf);
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Written to a temporary name and renamed, so a crash leaves the old file or none; a torn or
/// foreign file fails its checksum.
fn write_tree_file(path: &Path, part_lens: &[u64], leaves: &[[u8; 32]]) -> io::Result<()> {
    let out = encode_tree_file(part_lens, leaves);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &out)?;
    std::fs::rename(&tmp, path)
}

/// The leaves of a kept tree file, if it is intact and was made from parts of `part_lens`.
fn read_tree_file(path: &Path, part_lens: &[u64]) -> Option<Vec<[u8; 32]>> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > TREE_FILE_BYTES_MAX {
        return None;
    }
    decode_tree_file(&std::fs::read(path).ok()?, part_lens)
}

/// The leaves in tree file bytes, if they are intact and were made from parts of `part_lens`
/// (untrusted bytes: anything else is `None`, never a panic).
pub fn decode_tree_file(bytes: &[u8], part_lens: &[u64]) -> Option<Vec<[u8; 32]>> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != sum || !body.starts_with(TREE_FILE_MAGIC) {
        return None;
    }
    let rest = &body[TREE_FILE_MAGIC.len()..];
    let part_count = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let leaf_count = usize::try_from(u64::from_le_bytes(rest.get(4..12)?.try_into().ok()?)).ok()?;
    let lens_end = 12usize.checked_add(part_count.checked_mul(8)?)?;
    let lens = rest.get(12..lens_end)?;
    if part_count != part_lens.len()
        || lens
            .chunks_exact(8)
            .zip(part_lens)
            .any(|(b, want)| b != want.to_le_bytes())
    {
        return None;
    }
    let total: u64 = part_lens.iter().sum();
    if leaf_count as u64 != total.div_ceil(CHUNK_BYTES as u64) {
        return None;
    }
    let leaves = rest.get(lens_end..)?;
    if leaves.len() != leaf_count.checked_mul(32)? {
        return None;
    }
    leaves.chunks_exact(32).map(|c| c.try_into().ok()).collect()
}

/// Shard parts read from a (real) 0-db over its protocol. 0-db has no range reads, so a challenged
/// chunk costs a read of the part that holds it; parts read during one answer are kept for the
/// rest of that answer (at most the shard's size).
struct ZdbParts {
    client: crate::ZdbClient,
    namespace: Vec<u8>,
    rt: tokio::runtime::Handle,
    parts: Mutex<std::collections::HashMap<Vec<u8>, Arc<Vec<u8>>>>,
}

impl PartSource for ZdbParts {
    fn scope(&self) -> &[u8] {
        &self.namespace
    }

    fn part_len(&self, key: &[u8]) -> io::Result<Option<u64>> {
        self.rt
            .block_on(self.client.length(key))
            .map_err(io::Error::other)
    }

    fn part_lens(&self, key: &[u8]) -> io::Result<Vec<u64>> {
        // LENGTH of SIDECAR_LENGTH_BATCH parts at a time, concurrently over the pool: a 16 MiB
        // shard in 64 KiB parts is 256 parts, 4 round trips instead of 257.
        self.rt.block_on(async {
            let mut lens = Vec::new();
            let mut next: u32 = 0;
            while next <= u32::from(u16::MAX) {
                let end = (next + SIDECAR_LENGTH_BATCH).min(u32::from(u16::MAX) + 1);
                let asks = (next..end).map(|i| {
                    let part_key = large_part_key(key, i as u16);
                    let client = &self.client;
                    async move { client.length(&part_key).await }
                });
                for len in crate::join::join_all(asks).await {
                    match len.map_err(io::Error::other)? {
                        Some(len) => lens.push(len),
                        None => return Ok(lens),
                    }
                }
                next = end;
            }
            Ok(lens)
        })
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
                            namespace: namespace.as_bytes().to_vec(),
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use prover::challenge::{verify, Response};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A shard in 64 KiB parts, counting reads of whole parts (tree builds).
    struct Parts {
        parts: Vec<Vec<u8>>,
        full_reads: AtomicUsize,
    }

    impl PartSource for Parts {
        fn part_len(&self, key: &[u8]) -> io::Result<Option<u64>> {
            let i = u16::from_le_bytes([key[key.len() - 2], key[key.len() - 1]]) as usize;
            Ok(self.parts.get(i).map(|p| p.len() as u64))
        }
        fn read(&self, key: &[u8], offset: u64, len: usize) -> io::Result<Vec<u8>> {
            let i = u16::from_le_bytes([key[key.len() - 2], key[key.len() - 1]]) as usize;
            if offset == 0 && len == self.parts[i].len() {
                self.full_reads.fetch_add(1, Ordering::Relaxed);
            }
            Ok(self.parts[i][offset as usize..offset as usize + len].to_vec())
        }
    }

    fn shard(len: usize) -> (Vec<u8>, Parts) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let parts = Parts {
            parts: bytes.chunks(64 * 1024).map(<[u8]>::to_vec).collect(),
            full_reads: AtomicUsize::new(0),
        };
        (bytes, parts)
    }

    fn prove_and_check(prover: &Prover, src: &Parts, root: [u8; 32], len: u64) {
        let c = Challenge {
            nonce: rand::random(),
            timestamp_ms: 1,
            segment: 3,
            shard: 1,
            samples: 16,
        };
        let bytes = prover.answer(src, b"k", &c.encode()).unwrap();
        let r = Response::decode(&bytes).unwrap();
        let key = prover.key.verifying_key();
        verify(&c, &r, &key, &prover.id(), root, len, 0, 1000).unwrap();
    }

    #[test]
    fn trees_are_kept_on_disk_and_rebuilt_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        let seed = SigningKey::from_bytes(&[7; 32]);
        let (bytes, src) = shard(300 * 1024);
        let root = prover::merkle::shard_root(&bytes);
        let first = Prover::with_tree_dir(seed.clone(), dir.path().join(TREES_DIR));
        prove_and_check(&first, &src, root, bytes.len() as u64);
        assert_eq!(src.full_reads.load(Ordering::Relaxed), 5, "one build");
        assert_eq!(
            std::fs::read_dir(dir.path().join(TREES_DIR))
                .unwrap()
                .count(),
            1
        );

        // A new process (empty memory) answers from the kept file: no whole-part reads.
        let second = Prover::with_tree_dir(seed.clone(), dir.path().join(TREES_DIR));
        prove_and_check(&second, &src, root, bytes.len() as u64);
        assert_eq!(src.full_reads.load(Ordering::Relaxed), 5, "no rebuild");

        // A damaged file is not trusted: rebuilt, and the proof still verifies.
        let file = std::fs::read_dir(dir.path().join(TREES_DIR))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut raw = std::fs::read(&file).unwrap();
        raw[40] ^= 1;
        std::fs::write(&file, &raw).unwrap();
        let third = Prover::with_tree_dir(seed.clone(), dir.path().join(TREES_DIR));
        prove_and_check(&third, &src, root, bytes.len() as u64);
        assert_eq!(src.full_reads.load(Ordering::Relaxed), 10, "rebuilt once");

        // Same key, other lengths (the shard was rewritten): rebuilt from the new parts.
        let (bytes2, src2) = shard(200 * 1024);
        let root2 = prover::merkle::shard_root(&bytes2);
        let fourth = Prover::with_tree_dir(seed, dir.path().join(TREES_DIR));
        prove_and_check(&fourth, &src2, root2, bytes2.len() as u64);
        assert_eq!(src2.full_reads.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn the_memory_cache_keeps_recently_used_trees() {
        let prover = Prover::new(SigningKey::from_bytes(&[9; 32]));
        let (bytes, src) = shard(64 * 1024);
        let root = prover::merkle::shard_root(&bytes);
        prove_and_check(&prover, &src, root, bytes.len() as u64);
        // Fill the cache with other shards while touching the first one each time: it stays.
        for i in 0..PROVER_TREES_MAX * 2 {
            let key = format!("other-{i}");
            let c = Challenge {
                nonce: [1; 32],
                timestamp_ms: 1,
                segment: 0,
                shard: 0,
                samples: 1,
            };
            prover.answer(&src, key.as_bytes(), &c.encode()).unwrap();
            prove_and_check(&prover, &src, root, bytes.len() as u64);
        }
        assert_eq!(
            src.full_reads.load(Ordering::Relaxed),
            1 + PROVER_TREES_MAX * 2
        );
    }
}
