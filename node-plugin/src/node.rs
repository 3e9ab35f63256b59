//! The reference Proof-of-Authority node: authors Aura blocks of signed transfers with all the
//! authority keys of a development network, finalizes them with GRANDPA-style justifications,
//! keeps the current state in RocksDB, hands every finalized block to its plugin and prunes old
//! bodies only below the plugin's watermark. A non-authoring node imports finalized blocks from
//! elsewhere (the archive, another node) through the same verifier that a sync uses.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::chain_db::{BlockBytes, ChainDb, ChainDbError, StateChanges, StoredBlock};
use crate::consensus::{Authorities, ConsensusError};
use crate::runtime::{self, AccountId32, Changes, InvalidTransaction, State};
use crate::substrate::{
    extrinsics_root, Block, Digest, DigestItem, GrandpaJustification, Hash, Header, Justifications,
    AURA_ENGINE_ID, GRANDPA_ENGINE_ID,
};

/// State key of the chain spec (JSON) in the genesis state: whoever holds the genesis state
/// (a syncing node, the archive) knows the chain's parameters.
pub const CHAIN_SPEC_KEY: &[u8] = b":chain_spec";
/// Transactions waiting in the pool at most; submissions beyond are refused (memory bound).
pub const POOL_TRANSACTIONS_MAX: usize = 8192;
/// Transactions one block takes at most.
pub const BLOCK_TRANSACTIONS_MAX: usize = 1024;
/// Recent blocks whose state the node can still answer for (by undoing their changes from the
/// best state), as a Substrate node keeps 256 recent states; older states come from the archive.
pub const RECENT_STATES_MAX: usize = 256;
/// Buffered head notifications per subscriber before a slow subscriber starts missing some
/// (followers fill gaps by number, so a miss costs nothing but a fetch).
pub const HEAD_CHANNEL_CAPACITY: usize = 1024;

/// Parameters fixed at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// Chain name; also the seed of the development keys.
    pub name: String,
    pub authorities: u32,
    /// Endowed development accounts.
    pub accounts: u32,
    /// A justification every this many blocks (1 = every block).
    pub justification_period: u32,
    /// The runtime's format ([`runtime::RUNTIME_FORMAT`]); specs written before it was recorded
    /// read as format 1.
    #[serde(default = "legacy_runtime_format")]
    pub runtime_format: u32,
}

fn legacy_runtime_format() -> u32 {
    1
}

impl ChainSpec {
    pub fn dev(authorities: u32) -> Self {
        Self {
            name: "poa-dev".into(),
            authorities,
            accounts: 16,
            justification_period: 1,
            runtime_format: runtime::RUNTIME_FORMAT,
        }
    }

    /// Refuses a spec of another runtime format, naming both formats.
    pub fn check_runtime_format(&self) -> Result<(), NodeError> {
        if self.runtime_format == runtime::RUNTIME_FORMAT {
            return Ok(());
        }
        Err(NodeError::Setup(format!(
            "chain {:?} was made by runtime format {} and this build runs runtime format {} (Substrate extrinsics, metadata and storage layout); start a new chain (a new node database and archive) or use the release that made it",
            self.name,
            self.runtime_format,
            runtime::RUNTIME_FORMAT
        )))
    }

    /// The genesis state and header.
    pub fn genesis(&self) -> (BTreeMap<Vec<u8>, Vec<u8>>, Header) {
        let auth = Authorities::dev(&self.name, self.authorities);
        let mut state =
            runtime::genesis_state(&self.name, &self.name, auth.public_keys(), self.accounts);
        state.insert(
            CHAIN_SPEC_KEY.to_vec(),
            serde_json::to_vec(self).unwrap_or_default(),
        );
        let header = Header {
            parent_hash: [0; 32],
            number: 0,
            state_root: runtime::state_root(&state),
            extrinsics_root: extrinsics_root(&[]),
            digest: Digest::default(),
        };
        (state, header)
    }
}

/// Node errors; each names its block or transaction.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Db(#[from] ChainDbError),
    #[error(transparent)]
    Consensus(#[from] ConsensusError),
    #[error("invalid transaction: {0}")]
    InvalidTransaction(#[from] InvalidTransaction),
    #[error("transaction pool full ({POOL_TRANSACTIONS_MAX} waiting)")]
    PoolFull,
    #[error("block {number}: {reason}")]
    InvalidBlock { number: u64, reason: String },
    #[error("plugin: {0}")]
    Plugin(String),
    #[error("node data: {0}")]
    Setup(String),
}

/// A finalized block as the node hands it to its plugin.
#[derive(Clone, Copy, Debug)]
pub struct FinalizedBlock<'a> {
    pub number: u64,
    pub hash: Hash,
    pub parent_hash: Hash,
    /// SCALE `Block` (header ‖ extrinsics).
    pub block: &'a [u8],
    /// SCALE `Justifications`, when this block carries any.
    pub justifications: Option<&'a [u8]>,
    /// The state entries this block wrote (the whole genesis state for block 0); `None`
    /// deletes the key.
    pub changes: &'a [(Vec<u8>, Option<Vec<u8>>)],
}

/// What a node needs from the thing it feeds (the archive, in-process).
pub trait FinalityPlugin: Send {
    /// The first block the plugin does not hold yet; on start the node replays from there.
    fn next_needed(&self) -> u64;
    /// Takes one finalized block; blocks come in order, each exactly once per run.
    fn on_finalized(&mut self, block: &FinalizedBlock<'_>) -> Result<(), String>;
    /// Blocks below this number may be deleted from the node: the archive provably holds them.
    fn prune_watermark(&self) -> u64;
    /// A finalized block the plugin holds (block bytes, justifications), for a node whose
    /// database lost it (power loss). None when the plugin does not hold it.
    fn held_block(&self, number: u64) -> Result<Option<BlockBytes>, String> {
        let _ = number;
        Ok(None)
    }
}

/// Node settings beyond the chain spec.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub data_dir: PathBuf,
    pub spec: ChainSpec,
    /// 0 = author the next block as soon as the last one is done (tests, benchmarks).
    pub block_time_ms: u64,
    /// Bodies and justifications of the newest `retention` blocks are always kept locally.
    pub retention: u64,
    /// Development load: transfers between the endowed accounts put in each block.
    pub transfers_per_block: u32,
    /// Stop authoring after this block (None: run until stopped).
    pub stop_at: Option<u64>,
}

struct ChainState {
    state: State,
    best: (u64, Hash, Header),
    finalized: (u64, Hash),
    /// Finalized blocks not yet handed to the plugin start here.
    plugin_next: u64,
    /// Next transfer nonce the development load generator uses per account.
    load_round: u64,
    /// The newest blocks' undo lists (number, hash, each changed key's value before the
    /// block), newest last, at most [`RECENT_STATES_MAX`].
    recent: VecDeque<(u64, Hash, Changes)>,
}

/// Where a submitted transaction is (see [`Node::tx_status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxStatus {
    InPool,
    InBlock(u64, Hash),
    Gone,
}

/// A transaction waiting for a block.
struct PoolTx {
    bytes: Vec<u8>,
    sender: AccountId32,
}

#[derive(Default)]
struct Pool {
    txs: Vec<PoolTx>,
    /// Per sender: transactions waiting (their nonces follow the account's).
    pending: BTreeMap<AccountId32, u32>,
}

struct NodeInner {
    cfg: NodeConfig,
    db: ChainDb,
    spec: ChainSpec,
    genesis: Hash,
    authorities: Authorities,
    chain: Mutex<ChainState>,
    pool: Mutex<Pool>,
    new_heads: broadcast::Sender<Header>,
    finalized_heads: broadcast::Sender<Header>,
    plugin: Mutex<Option<Box<dyn FinalityPlugin>>>,
    stop: AtomicBool,
}

/// A running node (cheap to clone).
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("data_dir", &self.inner.cfg.data_dir)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a node lock is a bug; keep serving rather than cascade panics.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn decode_header(number: u64, bytes: &[u8]) -> Result<Header, NodeError> {
    Header::from_bytes(bytes).map_err(|e| NodeError::InvalidBlock {
        number,
        reason: e.to_string(),
    })
}

fn decode_block_hash(number: u64, bytes: &[u8]) -> Result<Hash, NodeError> {
    Block::from_bytes(bytes)
        .map(|b| b.hash())
        .map_err(|e| NodeError::InvalidBlock {
            number,
            reason: e.to_string(),
        })
}

impl Node {
    /// Opens the node's database, creating genesis from `cfg.spec` on first start (a stored spec
    /// wins over `cfg.spec` afterwards), then replays finalized blocks the plugin lacks.
    pub fn open(
        cfg: NodeConfig,
        plugin: Option<Box<dyn FinalityPlugin>>,
    ) -> Result<Self, NodeError> {
        std::fs::create_dir_all(&cfg.data_dir)
            .map_err(|e| NodeError::Setup(format!("create {}: {e}", cfg.data_dir.display())))?;
        let db = ChainDb::open(&cfg.data_dir.join("chain"))?;
        let spec = match db.spec()? {
            Some(raw) => serde_json::from_slice::<ChainSpec>(&raw)
                .map_err(|e| NodeError::Setup(format!("stored chain spec: {e}")))?,
            None => {
                let (genesis_state, header) = cfg.spec.genesis();
                let changes: Changes = genesis_state
                    .into_iter()
                    .map(|(k, v)| (k, Some(v)))
                    .collect();
                let hash = header.hash();
                let spec_json = serde_json::to_vec(&cfg.spec)
                    .map_err(|e| NodeError::Setup(format!("encode chain spec: {e}")))?;
                db.put_block(
                    &StoredBlock {
                        number: 0,
                        hash,
                        header: &header.encode(),
                        body: &Vec::<Vec<u8>>::new().encode(),
                        justifications: None,
                        changes: &changes,
                        keep_body: true,
                    },
                    Some((0, hash)),
                    Some(&spec_json),
                )?;
                cfg.spec.clone()
            }
        };
        Self::start(cfg, spec, db, plugin)
    }

    /// Opens a node whose database was filled by a sync (genesis already imported).
    fn start(
        cfg: NodeConfig,
        spec: ChainSpec,
        db: ChainDb,
        plugin: Option<Box<dyn FinalityPlugin>>,
    ) -> Result<Self, NodeError> {
        spec.check_runtime_format()?;
        let state = State {
            entries: db.state()?,
        };
        let authorities = match runtime::authorities_in(&state.entries) {
            Some(keys) if keys.len() == spec.authorities as usize => {
                let dev = Authorities::dev(&spec.name, spec.authorities);
                if dev.public_keys() == keys.as_slice() {
                    dev
                } else {
                    Authorities::from_public(keys)
                }
            }
            _ => {
                return Err(NodeError::Setup(
                    "genesis state has no valid authority set".into(),
                ))
            }
        };
        let (best_n, best_h) = db
            .best()?
            .ok_or_else(|| NodeError::Setup("no best block".into()))?;
        let best_header = decode_header(
            best_n,
            &db.header(best_n)?
                .ok_or_else(|| NodeError::Setup(format!("best block {best_n} has no header")))?,
        )?;
        let genesis_header = decode_header(
            0,
            &db.header(0)?
                .ok_or_else(|| NodeError::Setup("no genesis header".into()))?,
        )?;
        let finalized = db.finalized()?.unwrap_or((0, genesis_header.hash()));
        let plugin_next = plugin.as_ref().map_or(finalized.0 + 1, |p| p.next_needed());
        let node = Self {
            inner: Arc::new(NodeInner {
                genesis: genesis_header.hash(),
                chain: Mutex::new(ChainState {
                    state,
                    best: (best_n, best_h, best_header),
                    finalized,
                    plugin_next,
                    load_round: 0,
                    recent: VecDeque::new(),
                }),
                pool: Mutex::new(Pool::default()),
                new_heads: broadcast::channel(HEAD_CHANNEL_CAPACITY).0,
                finalized_heads: broadcast::channel(HEAD_CHANNEL_CAPACITY).0,
                plugin: Mutex::new(plugin),
                stop: AtomicBool::new(false),
                authorities,
                spec,
                db,
                cfg,
            }),
        };
        // The plugin may be ahead of the node after a power loss: take back what it holds.
        node.reconcile_with_plugin()?;
        // The plugin may be behind the node after a crash: hand it what it lacks.
        {
            let mut chain = lock(&node.inner.chain);
            node.feed_plugin(&mut chain)?;
        }
        Ok(node)
    }

    pub fn spec(&self) -> &ChainSpec {
        &self.inner.spec
    }

    /// After a power loss the node's database may lack finalized blocks its plugin (the archive)
    /// already holds. Imports them from the plugin, each verified by [`check_block`] as a sync
    /// does, so the node continues the archived chain instead of authoring a fork of it. Returns
    /// how many blocks were imported.
    fn reconcile_with_plugin(&self) -> Result<u64, NodeError> {
        let (want, finalized, best) = {
            let c = lock(&self.inner.chain);
            (c.plugin_next, c.finalized.0, c.best.0)
        };
        if want <= finalized + 1 {
            return Ok(0);
        }
        let archived_last = want - 1;
        // Blocks the node holds but never saw finalized must be the archived ones.
        for n in finalized + 1..=best.min(archived_last) {
            let (block, _) = self.held_block(n)?;
            let archived = decode_block_hash(n, &block)?;
            let local = self.header(n)?.map(|h| h.hash());
            if local != Some(archived) {
                return Err(NodeError::Setup(format!(
                    "block {n}: the node holds {} but its archive holds the finalized block 0x{}; remove the node's database and sync it from the archive",
                    local.map_or("nothing".into(), |h| format!("0x{}", hex::encode(h))),
                    hex::encode(archived)
                )));
            }
        }
        let mut imported = 0;
        for n in best + 1..=archived_last {
            let (block, justifications) = self.held_block(n)?;
            self.import_finalized(&block, justifications.as_deref(), true)?;
            imported += 1;
        }
        let mut chain = lock(&self.inner.chain);
        if chain.finalized.0 < archived_last {
            // The node held every archived block, only not as finalized.
            let (block, justifications) = self.held_block(archived_last)?;
            let hash = decode_block_hash(archived_last, &block)?;
            self.inner
                .db
                .finalize(archived_last, &hash, justifications.as_deref())?;
            chain.finalized = (archived_last, hash);
        }
        tracing::warn!(
            imported,
            finalized = chain.finalized.0,
            "the node's database was behind its archive (power loss?): took the archived finalized blocks back"
        );
        Ok(imported)
    }

    /// Finalized block `n` from the plugin; an error when the plugin has none or no such block.
    fn held_block(&self, n: u64) -> Result<BlockBytes, NodeError> {
        lock(&self.inner.plugin)
            .as_ref()
            .map_or(Ok(None), |p| p.held_block(n))
            .map_err(NodeError::Plugin)?
            .ok_or_else(|| {
                NodeError::Plugin(format!(
                    "the plugin holds blocks up to its next needed one but returned none for block {n}"
                ))
            })
    }

    pub fn genesis_hash(&self) -> Hash {
        self.inner.genesis
    }

    pub fn authorities(&self) -> &Authorities {
        &self.inner.authorities
    }

    pub fn db(&self) -> &ChainDb {
        &self.inner.db
    }

    pub fn best(&self) -> (u64, Hash) {
        let c = lock(&self.inner.chain);
        (c.best.0, c.best.1)
    }

    pub fn finalized(&self) -> (u64, Hash) {
        lock(&self.inner.chain).finalized
    }

    pub fn state_root(&self) -> Hash {
        lock(&self.inner.chain).state.root()
    }

    /// The current state (a copy).
    pub fn state(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        lock(&self.inner.chain).state.entries.clone()
    }

    /// Whether the node holds the state after block `number`: the best block's, or one of
    /// the last [`RECENT_STATES_MAX`] blocks' (by undoing the newer blocks' changes).
    fn undo_lists_after(chain: &ChainState, number: u64) -> Option<Vec<&Changes>> {
        if number > chain.best.0 {
            return None;
        }
        let oldest_undoable = chain.recent.front().map_or(chain.best.0, |(n, _, _)| n - 1);
        (number >= oldest_undoable).then(|| {
            chain
                .recent
                .iter()
                .rev()
                .take_while(|(n, _, _)| *n > number)
                .map(|(_, _, undo)| undo)
                .collect()
        })
    }

    /// The value of `key` after block `number`; `None` when the node no longer holds that
    /// state (older than [`RECENT_STATES_MAX`] blocks: ask the archive), `Some(None)` when the
    /// key was absent then.
    pub fn storage_at(&self, key: &[u8], number: u64) -> Option<Option<Vec<u8>>> {
        let chain = lock(&self.inner.chain);
        let undos = Self::undo_lists_after(&chain, number)?;
        let mut value = chain.state.entries.get(key).cloned();
        // Newest first: the last undo applied is the oldest block after `number`.
        for undo in undos {
            if let Some((_, old)) = undo.iter().find(|(k, _)| k.as_slice() == key) {
                value = old.clone();
            }
        }
        Some(value)
    }

    /// The whole state after block `number`, if the node holds it (see [`Self::storage_at`]).
    pub fn state_at(&self, number: u64) -> Option<BTreeMap<Vec<u8>, Vec<u8>>> {
        let chain = lock(&self.inner.chain);
        let undos = Self::undo_lists_after(&chain, number)?;
        let mut state = State {
            entries: chain.state.entries.clone(),
        };
        for undo in undos {
            state.apply_changes(undo);
        }
        Some(state.entries)
    }

    pub fn subscribe_new_heads(&self) -> broadcast::Receiver<Header> {
        self.inner.new_heads.subscribe()
    }

    pub fn subscribe_finalized(&self) -> broadcast::Receiver<Header> {
        self.inner.finalized_heads.subscribe()
    }

    /// Asks a running `run_author` or follower loop to return.
    pub fn stop(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
    }

    pub fn stopping(&self) -> bool {
        self.inner.stop.load(Ordering::SeqCst)
    }

    /// The plugin's current prune watermark (0 without a plugin).
    pub fn prune_watermark(&self) -> u64 {
        lock(&self.inner.plugin)
            .as_ref()
            .map_or(0, |p| p.prune_watermark())
    }

    /// Validates an extrinsic (its own bytes) against the current state and the pool, as the
    /// next block would see it, then queues it. Returns its hash (Substrate's: BLAKE2b-256 of
    /// the length-prefixed extrinsic).
    pub fn submit(&self, extrinsic: &[u8]) -> Result<Hash, NodeError> {
        let chain = lock(&self.inner.chain);
        let mut pool = lock(&self.inner.pool);
        if pool.txs.len() >= POOL_TRANSACTIONS_MAX {
            return Err(NodeError::PoolFull);
        }
        let best = (block_number_u32(chain.best.0)?, chain.best.1);
        let valid = runtime::executive::validate_transaction(
            &chain.state.entries,
            best,
            extrinsic,
            |who| pool.pending.get(who).copied().unwrap_or(0),
        )?;
        *pool.pending.entry(valid.sender).or_insert(0) += 1;
        pool.txs.push(PoolTx {
            bytes: extrinsic.to_vec(),
            sender: valid.sender,
        });
        Ok(runtime::extrinsic::extrinsic_hash(extrinsic))
    }

    /// Where `extrinsic` (its own bytes) is: waiting in the pool, in a block numbered `from`
    /// or later, or gone (dropped as invalid when a block was built). Taken under the chain
    /// lock, so no block is half-built meanwhile.
    pub fn tx_status(&self, extrinsic: &[u8], from: u64) -> Result<TxStatus, NodeError> {
        let chain = lock(&self.inner.chain);
        if lock(&self.inner.pool)
            .txs
            .iter()
            .any(|t| t.bytes == extrinsic)
        {
            return Ok(TxStatus::InPool);
        }
        for n in from..=chain.best.0 {
            let Some((bytes, _)) = self.local_block(n)? else {
                continue;
            };
            let block = Block::from_bytes(&bytes).map_err(|e| NodeError::InvalidBlock {
                number: n,
                reason: e.to_string(),
            })?;
            if block.extrinsics.iter().any(|x| x == extrinsic) {
                return Ok(TxStatus::InBlock(n, block.hash()));
            }
        }
        Ok(TxStatus::Gone)
    }

    /// The next nonce of `who`: its account's, plus its transactions waiting in the pool
    /// (`system_accountNextIndex`).
    pub fn next_nonce(&self, who: &AccountId32) -> u32 {
        let chain = lock(&self.inner.chain);
        let pool = lock(&self.inner.pool);
        chain
            .state
            .account(who)
            .nonce
            .saturating_add(pool.pending.get(who).copied().unwrap_or(0))
    }

    /// Development load: `transfers_per_block` transfers between endowed accounts, signed by
    /// their ed25519 development keys.
    fn generate_load(&self, chain: &mut ChainState) {
        let n = self.inner.cfg.transfers_per_block;
        let accounts = self.inner.spec.accounts.max(2);
        for _ in 0..n {
            let round = chain.load_round;
            chain.load_round += 1;
            let from = (round % accounts as u64) as u32;
            let to = ((round / accounts as u64 + 1 + from as u64) % accounts as u64) as u32;
            if from == to {
                continue;
            }
            let signer = runtime::dev_signer(&self.inner.spec.name, from);
            let to_id = runtime::dev_signer(&self.inner.spec.name, to).account();
            let from_id = signer.account();
            // One pool lock per transfer: the nonce, the pending count and the push agree.
            let mut pool = lock(&self.inner.pool);
            if pool.txs.len() >= POOL_TRANSACTIONS_MAX {
                return;
            }
            let nonce = chain
                .state
                .account(&from_id)
                .nonce
                .saturating_add(pool.pending.get(&from_id).copied().unwrap_or(0));
            let amount = 1 + round as u128 % 1000;
            let bytes =
                runtime::signed_transfer(&signer, self.inner.genesis, to_id, amount, nonce, true);
            *pool.pending.entry(from_id).or_insert(0) += 1;
            pool.txs.push(PoolTx {
                bytes,
                sender: from_id,
            });
        }
    }

    /// Takes up to a block's worth of transactions out of the pool.
    fn take_from_pool(&self) -> Vec<Vec<u8>> {
        let mut pool = lock(&self.inner.pool);
        let take = pool.txs.len().min(BLOCK_TRANSACTIONS_MAX);
        let txs: Vec<PoolTx> = pool.txs.drain(..take).collect();
        for t in &txs {
            if let Some(p) = pool.pending.get_mut(&t.sender) {
                *p = p.saturating_sub(1);
                if *p == 0 {
                    pool.pending.remove(&t.sender);
                }
            }
        }
        txs.into_iter().map(|t| t.bytes).collect()
    }

    /// Authors one block on top of the best block (and finalizes when its number is a multiple
    /// of the justification period). Returns its number.
    pub fn produce_block(&self) -> Result<u64, NodeError> {
        let mut chain = lock(&self.inner.chain);
        self.generate_load(&mut chain);
        let (parent_n, parent_h, parent_header) = chain.best.clone();
        let number = parent_n + 1;
        let number_u32 = block_number_u32(number)?;
        let parent_slot = parent_header.digest.aura_slot().unwrap_or(0);
        let slot = match self.inner.cfg.block_time_ms {
            0 => parent_slot + 1,
            t => (now_ms() / t).max(parent_slot + 1),
        };
        let pre_digest = Digest {
            logs: vec![DigestItem::PreRuntime(
                AURA_ENGINE_ID,
                slot.to_le_bytes().to_vec(),
            )],
        };
        // Transactions invalidated since submission (e.g. by another in this block) are dropped.
        let (extrinsics, changes) = runtime::executive::build_block(
            &chain.state.entries,
            number_u32,
            parent_h,
            &pre_digest,
            now_ms(),
            self.take_from_pool(),
        )
        .map_err(|e| NodeError::InvalidBlock {
            number,
            reason: e.to_string(),
        })?;
        let mut state = std::mem::take(&mut chain.state);
        let undo = state.apply_changes(&changes);
        let mut header = Header {
            parent_hash: parent_h,
            number: number_u32,
            state_root: state.root(),
            extrinsics_root: extrinsics_root(&extrinsics),
            digest: pre_digest,
        };
        chain.state = state;
        if let Err(e) = self.inner.authorities.seal(&mut header, slot) {
            chain.state.apply_changes(&undo);
            return Err(e.into());
        }
        let hash = header.hash();
        let justifications = (number % self.inner.spec.justification_period.max(1) as u64 == 0)
            .then(|| {
                let j = self.inner.authorities.justify(hash, header.number, number);
                Justifications(vec![(GRANDPA_ENGINE_ID, j.encode())]).encode()
            });
        let body = extrinsics.encode();
        let finalized = justifications.as_ref().map(|_| (number, hash));
        if let Err(e) = self.inner.db.put_block(
            &StoredBlock {
                number,
                hash,
                header: &header.encode(),
                body: &body,
                justifications: justifications.as_deref(),
                changes: &changes,
                keep_body: true,
            },
            finalized,
            None,
        ) {
            chain.state.apply_changes(&undo);
            return Err(e.into());
        }
        remember_recent(&mut chain, number, hash, undo);
        chain.best = (number, hash, header.clone());
        let _ = self.inner.new_heads.send(header.clone());
        if let Some(f) = finalized {
            chain.finalized = f;
            self.feed_plugin(&mut chain)?;
            let _ = self.inner.finalized_heads.send(header);
            self.prune(&chain)?;
        }
        Ok(number)
    }

    /// Hands finalized blocks the plugin has not seen to it, in order.
    fn feed_plugin(&self, chain: &mut ChainState) -> Result<(), NodeError> {
        let mut plugin = lock(&self.inner.plugin);
        let Some(plugin) = plugin.as_mut() else {
            chain.plugin_next = chain.finalized.0 + 1;
            return Ok(());
        };
        if chain.plugin_next <= chain.finalized.0 {
            // The archive fsyncs what it takes: the node's own copy must not be the one a power
            // loss can take back, or the archive would be ahead of the node.
            self.inner.db.sync()?;
        }
        while chain.plugin_next <= chain.finalized.0 {
            let n = chain.plugin_next;
            let missing = |what: &str| {
                NodeError::Plugin(format!(
                "the plugin needs block {n} but the node no longer has its {what} (pruned below {})",
                self.inner.db.pruned_below().unwrap_or(0)
            ))
            };
            let header = self.inner.db.header(n)?.ok_or_else(|| missing("header"))?;
            let body = self.inner.db.body(n)?.ok_or_else(|| missing("body"))?;
            let changes = self
                .inner
                .db
                .changes(n)?
                .ok_or_else(|| missing("state changes"))?;
            let justifications = self.inner.db.justifications(n)?;
            let h = decode_header(n, &header)?;
            let mut block = header;
            block.extend_from_slice(&body);
            plugin
                .on_finalized(&FinalizedBlock {
                    number: n,
                    hash: h.hash(),
                    parent_hash: h.parent_hash,
                    block: &block,
                    justifications: justifications.as_deref(),
                    changes: &changes,
                })
                .map_err(NodeError::Plugin)?;
            chain.plugin_next = n + 1;
        }
        Ok(())
    }

    /// Deletes bodies below min(plugin watermark, finalized − retention + 1). Without a plugin
    /// nothing is pruned: no one else would keep the history.
    fn prune(&self, chain: &ChainState) -> Result<(), NodeError> {
        let watermark = self.prune_watermark();
        let retained_from = (chain.finalized.0 + 1).saturating_sub(self.inner.cfg.retention);
        let below = watermark.min(retained_from).min(chain.plugin_next);
        if below > self.inner.db.pruned_below()? {
            self.inner.db.prune(below)?;
        }
        Ok(())
    }

    /// Re-checks the prune watermark (the archive advances it in the background).
    pub fn prune_now(&self) -> Result<u64, NodeError> {
        let chain = lock(&self.inner.chain);
        self.prune(&chain)?;
        Ok(self.inner.db.pruned_below()?)
    }

    /// Authors blocks until stopped or `stop_at` is reached, one per slot.
    pub fn run_author(&self) -> Result<(), NodeError> {
        loop {
            if self.stopping() {
                return Ok(());
            }
            if let Some(stop_at) = self.inner.cfg.stop_at {
                if self.best().0 >= stop_at {
                    // Keep pruning as the archive catches up, until asked to stop.
                    self.prune_now()?;
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            }
            let t = self.inner.cfg.block_time_ms;
            if let Some(slot) = now_ms().checked_div(t) {
                let now = now_ms();
                let next_slot_at = ((slot + 1) * t).max(now);
                std::thread::sleep(Duration::from_millis(next_slot_at - now));
            }
            self.produce_block()?;
        }
    }

    /// Verifies and imports a finalized block made elsewhere (a follower node, a sync).
    pub fn import_finalized(
        &self,
        block_bytes: &[u8],
        justifications: Option<&[u8]>,
        keep_body: bool,
    ) -> Result<u64, NodeError> {
        let mut chain = lock(&self.inner.chain);
        let (best_n, best_h, _) = chain.best.clone();
        let checked = check_block(
            &self.inner.authorities,
            (best_n, best_h),
            &mut chain.state,
            block_bytes,
            justifications,
        )?;
        let number = best_n + 1;
        let header_len = checked.header.encoded_size();
        let keep = keep_body;
        if let Err(e) = self.inner.db.put_block(
            &StoredBlock {
                number,
                hash: checked.hash,
                header: &block_bytes[..header_len],
                body: &block_bytes[header_len..],
                justifications,
                changes: &checked.changes,
                keep_body: keep,
            },
            Some((number, checked.hash)),
            None,
        ) {
            chain.state.apply_changes(&checked.undo);
            return Err(e.into());
        }
        remember_recent(&mut chain, number, checked.hash, checked.undo.clone());
        chain.best = (number, checked.hash, checked.header.clone());
        chain.finalized = (number, checked.hash);
        if keep {
            self.feed_plugin(&mut chain)?;
        } else {
            chain.plugin_next = number + 1;
        }
        let _ = self.inner.new_heads.send(checked.header.clone());
        let _ = self.inner.finalized_heads.send(checked.header);
        self.prune(&chain)?;
        Ok(number)
    }

    /// The header at `number` (headers are never pruned).
    pub fn header(&self, number: u64) -> Result<Option<Header>, NodeError> {
        self.inner
            .db
            .header(number)?
            .map(|b| decode_header(number, &b))
            .transpose()
    }

    pub fn number_of(&self, hash: &Hash) -> Result<Option<u64>, NodeError> {
        Ok(self.inner.db.number_by_hash(hash)?)
    }

    /// The block bytes and justifications held locally (None when pruned or unknown).
    pub fn local_block(&self, number: u64) -> Result<Option<BlockBytes>, NodeError> {
        let (Some(header), Some(body)) =
            (self.inner.db.header(number)?, self.inner.db.body(number)?)
        else {
            return Ok(None);
        };
        let mut block = header;
        block.extend_from_slice(&body);
        Ok(Some((block, self.inner.db.justifications(number)?)))
    }
}

/// A block that passed [`check_block`].
#[derive(Debug)]
pub struct CheckedBlock {
    pub header: Header,
    pub hash: Hash,
    pub extrinsics: Vec<Vec<u8>>,
    pub changes: StateChanges,
    /// What undoes `changes` (each changed key's value before the block).
    pub undo: StateChanges,
    pub justified: bool,
}

/// Full verification of the block after `parent`: SCALE well-formed, number and parent hash
/// follow, extrinsics root, Aura seal by the slot's author, justification (if any) by a
/// supermajority, and execution reaching the header's state root. `state` is advanced on
/// success and unchanged on error.
pub fn check_block(
    authorities: &Authorities,
    parent: (u64, Hash),
    state: &mut State,
    block_bytes: &[u8],
    justifications: Option<&[u8]>,
) -> Result<CheckedBlock, NodeError> {
    let number = parent.0 + 1;
    let bad = |reason: String| NodeError::InvalidBlock { number, reason };
    let block = Block::from_bytes(block_bytes).map_err(|e| bad(e.to_string()))?;
    let header = block.header;
    if u64::from(header.number) != number {
        return Err(bad(format!("its header says number {}", header.number)));
    }
    if header.parent_hash != parent.1 {
        return Err(bad(format!(
            "parent hash 0x{} is not block {}'s hash 0x{}",
            hex::encode(header.parent_hash),
            parent.0,
            hex::encode(parent.1)
        )));
    }
    if extrinsics_root(&block.extrinsics) != header.extrinsics_root {
        return Err(bad(
            "extrinsics do not match the header's extrinsics root".into()
        ));
    }
    authorities.check_seal(&header)?;
    let hash = header.hash();
    let mut justified = false;
    if let Some(j) = justifications {
        let js = Justifications::from_bytes(j).map_err(|e| bad(e.to_string()))?;
        if let Some(frnk) = js.get(GRANDPA_ENGINE_ID) {
            let gj = GrandpaJustification::from_bytes(frnk).map_err(|e| bad(e.to_string()))?;
            authorities.check_justification(&gj, &hash, header.number)?;
            justified = true;
        }
    }
    // The runtime sees the digest as it was before sealing (as in Substrate).
    let mut pre_digest = header.digest.clone();
    if matches!(pre_digest.logs.last(), Some(DigestItem::Seal(..))) {
        pre_digest.logs.pop();
    }
    let (changes, undo) = state
        .execute_block(
            header.number,
            header.parent_hash,
            &pre_digest,
            &block.extrinsics,
        )
        .map_err(|e| bad(e.to_string()))?;
    let root = state.root();
    if root != header.state_root {
        state.apply_changes(&undo);
        return Err(bad(format!(
            "executing it gives state root 0x{}, the header says 0x{}",
            hex::encode(root),
            hex::encode(header.state_root)
        )));
    }
    Ok(CheckedBlock {
        header,
        hash,
        extrinsics: block.extrinsics,
        changes,
        undo,
        justified,
    })
}

/// Checks a genesis block and its full state (as archived with block 0): returns the state, the
/// spec and the authority set it defines.
pub fn check_genesis(
    block_bytes: &[u8],
    genesis_state: &[(Vec<u8>, Vec<u8>)],
) -> Result<(State, ChainSpec, Authorities, Hash), NodeError> {
    let bad = |reason: String| NodeError::InvalidBlock { number: 0, reason };
    let block = Block::from_bytes(block_bytes).map_err(|e| bad(e.to_string()))?;
    if block.header.number != 0 || !block.extrinsics.is_empty() {
        return Err(bad("not a genesis block".into()));
    }
    let state = State {
        entries: genesis_state.iter().cloned().collect(),
    };
    if state.root() != block.header.state_root {
        return Err(bad(
            "the archived genesis state does not match the genesis state root".into(),
        ));
    }
    let spec: ChainSpec = state
        .entries
        .get(CHAIN_SPEC_KEY)
        .and_then(|raw| serde_json::from_slice(raw).ok())
        .ok_or_else(|| bad("genesis state has no chain spec".into()))?;
    spec.check_runtime_format()?;
    let keys = runtime::authorities_in(&state.entries)
        .ok_or_else(|| bad("genesis state has no authority set".into()))?;
    let hash = block.header.hash();
    Ok((state, spec, Authorities::from_public(keys), hash))
}

/// Creates a node database from a verified genesis (sync's first step).
pub fn init_from_genesis(
    data_dir: &std::path::Path,
    block_bytes: &[u8],
    genesis_state: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), NodeError> {
    let (_, spec, _, hash) = check_genesis(block_bytes, genesis_state)?;
    std::fs::create_dir_all(data_dir)
        .map_err(|e| NodeError::Setup(format!("create {}: {e}", data_dir.display())))?;
    let db = ChainDb::open(&data_dir.join("chain"))?;
    if db.spec()?.is_some() {
        return Ok(());
    }
    let header = Header::decode(&mut &block_bytes[..]).map_err(|e| NodeError::InvalidBlock {
        number: 0,
        reason: e.to_string(),
    })?;
    let header_len = header.encoded_size();
    let spec_json =
        serde_json::to_vec(&spec).map_err(|e| NodeError::Setup(format!("encode spec: {e}")))?;
    db.put_block(
        &StoredBlock {
            number: 0,
            hash,
            header: &block_bytes[..header_len],
            body: &block_bytes[header_len..],
            justifications: None,
            changes: &genesis_state
                .iter()
                .map(|(k, v)| (k.clone(), Some(v.clone())))
                .collect::<Changes>(),
            keep_body: true,
        },
        Some((0, hash)),
        Some(&spec_json),
    )?;
    Ok(())
}

/// Keeps `undo` of block `number` in the recent-state window, dropping the oldest beyond it.
fn remember_recent(chain: &mut ChainState, number: u64, hash: Hash, undo: Changes) {
    chain.recent.push_back((number, hash, undo));
    while chain.recent.len() > RECENT_STATES_MAX {
        chain.recent.pop_front();
    }
}

/// A block number as the header's `u32`.
fn block_number_u32(number: u64) -> Result<u32, NodeError> {
    u32::try_from(number).map_err(|_| NodeError::InvalidBlock {
        number,
        reason: "block number exceeds u32".into(),
    })
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A 4-authority development node in `dir` authoring on demand (no block time), keeping 1,000
/// bodies, for the RPC modules' tests.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn test_node(dir: &std::path::Path, transfers_per_block: u32) -> Node {
    Node::open(
        NodeConfig {
            data_dir: dir.to_path_buf(),
            spec: ChainSpec::dev(4),
            block_time_ms: 0,
            retention: 1000,
            transfers_per_block,
            stop_at: None,
        },
        None,
    )
    .unwrap()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(dir: &std::path::Path, retention: u64) -> NodeConfig {
        NodeConfig {
            data_dir: dir.to_path_buf(),
            spec: ChainSpec {
                justification_period: 4,
                ..ChainSpec::dev(4)
            },
            block_time_ms: 0,
            retention,
            transfers_per_block: 3,
            stop_at: None,
        }
    }

    struct Recorder {
        next: u64,
        watermark: u64,
        blocks: Arc<Mutex<Vec<(u64, BlockBytes)>>>,
    }

    impl FinalityPlugin for Recorder {
        fn next_needed(&self) -> u64 {
            self.next
        }
        fn on_finalized(&mut self, b: &FinalizedBlock<'_>) -> Result<(), String> {
            assert_eq!(b.number, self.next);
            self.next += 1;
            lock(&self.blocks).push((
                b.number,
                (b.block.to_vec(), b.justifications.map(<[u8]>::to_vec)),
            ));
            Ok(())
        }
        fn prune_watermark(&self) -> u64 {
            self.watermark
        }
    }

    #[test]
    fn authors_finalizes_feeds_plugin_and_prunes_only_below_its_watermark() {
        let dir = tempfile::tempdir().unwrap();
        let blocks = Arc::new(Mutex::new(Vec::new()));
        let plugin = Recorder {
            next: 0,
            watermark: 10,
            blocks: blocks.clone(),
        };
        let node = Node::open(cfg(dir.path(), 5), Some(Box::new(plugin))).unwrap();
        for _ in 0..30 {
            node.produce_block().unwrap();
        }
        assert_eq!(node.best().0, 30);
        assert_eq!(node.finalized().0, 28);
        let got = lock(&blocks);
        assert_eq!(got.len(), 29, "genesis..=28 handed over");
        assert!(got[28].1 .1.is_some() && got[27].1 .1.is_none());
        // Watermark 10 < retention bound 24: only below 10 pruned.
        assert_eq!(node.db().pruned_below().unwrap(), 10);
        assert!(node.local_block(9).unwrap().is_none());
        assert!(node.local_block(10).unwrap().is_some());
        assert!(node.header(3).unwrap().is_some());

        // A second node imports the first's finalized blocks through full verification.
        let dir2 = tempfile::tempdir().unwrap();
        let genesis_state: Vec<(Vec<u8>, Vec<u8>)> =
            cfg(dir.path(), 5).spec.genesis().0.into_iter().collect();
        init_from_genesis(dir2.path(), &got[0].1 .0, &genesis_state).unwrap();
        let follower = Node::open(cfg(dir2.path(), 1000), None).unwrap();
        for (n, (block, j)) in got.iter().skip(1) {
            assert_eq!(
                follower
                    .import_finalized(block, j.as_deref(), true)
                    .unwrap(),
                *n
            );
        }
        assert_eq!(follower.state_root(), {
            let h = node.header(28).unwrap().unwrap();
            h.state_root
        });
        // A forged block (state root changed, seal no longer valid) is refused with its number.
        let mut forged = got[5].1 .0.clone();
        forged[40] ^= 1;
        let err = follower
            .import_finalized(&forged, None, true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("block 29"), "{err}");
    }

    #[test]
    fn recent_states_are_held_and_older_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::open(
            NodeConfig {
                transfers_per_block: 1,
                ..cfg(dir.path(), 1000)
            },
            None,
        )
        .unwrap();
        let blocks = RECENT_STATES_MAX as u64 + 20;
        for _ in 0..blocks {
            node.produce_block().unwrap();
        }
        let number_key = runtime::storage::number_key();
        let oldest_held = blocks - RECENT_STATES_MAX as u64;
        for n in [
            oldest_held,
            oldest_held + 1,
            blocks / 2 + 100,
            blocks - 1,
            blocks,
        ] {
            let state = node.state_at(n).unwrap();
            // Each held state is exactly the one the block's header commits to.
            assert_eq!(
                runtime::state_root(&state),
                node.header(n).unwrap().unwrap().state_root,
                "block {n}"
            );
            let number = node.storage_at(&number_key, n).unwrap().unwrap();
            assert_eq!(number, (n as u32).encode(), "block {n}");
        }
        assert!(node.state_at(oldest_held - 1).is_none());
        assert!(node.storage_at(&number_key, oldest_held - 1).is_none());
        assert!(node.storage_at(&number_key, blocks + 1).is_none());
    }

    #[test]
    fn a_chain_of_another_runtime_format_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(dir.path(), 5);
        drop(Node::open(c.clone(), None).unwrap());
        // As a database written before the runtime format was recorded holds its spec.
        let legacy =
            br#"{"name":"poa-dev","authorities":4,"accounts":16,"justification_period":4}"#;
        {
            let db = ChainDb::open(&dir.path().join("chain")).unwrap();
            let header = db.header(0).unwrap().unwrap();
            let hash = Header::from_bytes(&header).unwrap().hash();
            db.put_block(
                &StoredBlock {
                    number: 0,
                    hash,
                    header: &header,
                    body: &Vec::<Vec<u8>>::new().encode(),
                    justifications: None,
                    changes: &[],
                    keep_body: true,
                },
                Some((0, hash)),
                Some(legacy),
            )
            .unwrap();
        }
        let err = Node::open(c.clone(), None).unwrap_err().to_string();
        assert!(
            err.contains("runtime format 1") && err.contains("runtime format 2"),
            "{err}"
        );
        // An archived genesis of the old format is refused the same way.
        let (mut state, header) = c.spec.genesis();
        state.insert(CHAIN_SPEC_KEY.to_vec(), legacy.to_vec());
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = state.into_iter().collect();
        let block = crate::substrate::Block {
            header: Header {
                state_root: runtime::state_root(&pairs.iter().cloned().collect()),
                ..header
            },
            extrinsics: vec![],
        };
        let err = check_genesis(&block.encode(), &pairs)
            .unwrap_err()
            .to_string();
        assert!(err.contains("runtime format 1"), "{err}");
    }

    #[test]
    fn bad_transactions_are_refused_at_submission() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::open(
            NodeConfig {
                transfers_per_block: 0,
                ..cfg(dir.path(), 5)
            },
            None,
        )
        .unwrap();
        let alice = runtime::dev_signer("poa-dev", 0);
        let bob = runtime::dev_signer("poa-dev", 1).account();
        let genesis = node.genesis_hash();
        let ok = runtime::signed_transfer(&alice, genesis, bob, 5, 0, true);
        let hash = node.submit(&ok).unwrap();
        assert_eq!(hash, runtime::extrinsic::extrinsic_hash(&ok));
        let err = node.submit(&ok).unwrap_err().to_string();
        assert!(err.contains("stale nonce"), "{err}");
        let future = runtime::signed_transfer(&alice, genesis, bob, 5, 5, true);
        let err = node.submit(&future).unwrap_err().to_string();
        assert!(err.contains("future nonce"), "{err}");
        let next = runtime::signed_transfer(&alice, genesis, bob, 5, 1, true);
        node.submit(&next).unwrap();
        assert_eq!(node.next_nonce(&alice.account()), 2);
        assert!(node
            .submit(&[1, 2, 3])
            .unwrap_err()
            .to_string()
            .contains("malformed"));
        let wrong_chain = runtime::signed_transfer(&alice, [9; 32], bob, 5, 2, true);
        let err = node.submit(&wrong_chain).unwrap_err().to_string();
        assert!(err.contains("bad signature"), "{err}");
        assert_eq!(node.tx_status(&next, 1).unwrap(), TxStatus::InPool);
        node.produce_block().unwrap();
        let a = State {
            entries: node.state(),
        }
        .account(&alice.account());
        assert_eq!(a.nonce, 2);
        assert!(matches!(
            node.tx_status(&next, 1).unwrap(),
            TxStatus::InBlock(1, _)
        ));
        assert_eq!(node.tx_status(&wrong_chain, 1).unwrap(), TxStatus::Gone);
    }
}
