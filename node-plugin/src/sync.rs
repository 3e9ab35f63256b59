//! New-validator sync: rebuild a node's database from the archive's hosters alone. Every segment
//! is verified by the archive layer (manifest chain, shard roots, AEAD, content hash, block-hash
//! root), every block by the chain layer (parent links, Aura seal, extrinsics root, execution to
//! the header's state root, GRANDPA justifications by ≥ 2/3 of the genesis authority set), and
//! the chain must contain the operator's trusted hash. Blocks are committed only up to a justified
//! block, one atomic write per block, so a `kill -9` resumes where it stopped.

use std::path::{Path, PathBuf};

use archiver::restore::verify_segment_blocks;
use archiver::RemoteArchive;

use crate::chain_db::{ChainDb, StoredBlock};
use crate::consensus::Authorities;
use crate::node::{check_block, check_genesis, init_from_genesis, CheckedBlock, NodeError};
use crate::runtime::State;
use crate::substrate::{Hash, Header};

/// Sync errors: each names the segment and block at fault.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("archive: {0}")]
    Archive(#[from] archiver::ArchiveError),
    #[error("segment {segment}, block {number}: {reason}")]
    Block {
        segment: u64,
        number: u64,
        reason: String,
    },
    #[error("node database: {0}")]
    Node(#[from] NodeError),
    #[error("the trusted hash 0x{trusted} is not in the archived chain (blocks 0..={last})")]
    TrustedHashNotFound { trusted: String, last: u64 },
    #[error(transparent)]
    Db(#[from] crate::chain_db::ChainDbError),
}

/// What to sync.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    pub data_dir: PathBuf,
    pub trusted_hash: Hash,
    /// Bodies of the newest `retention` blocks are kept locally (older ones stay in the archive).
    pub retention: u64,
}

/// What a sync did.
#[derive(Clone, Debug, Default)]
pub struct SyncReport {
    /// Blocks verified and committed in this run.
    pub blocks: u64,
    /// Segment plaintext bytes read in this run.
    pub bytes: u64,
    pub segments: u64,
    /// Blocks already present from an interrupted run.
    pub resumed_from: u64,
    pub head: u64,
    pub head_hash: Hash,
    pub state_root: Hash,
    pub trusted_number: u64,
}

/// A checked block waiting for a justification: (block, bytes, justifications, segment).
type Pending = (CheckedBlock, Vec<u8>, Option<Vec<u8>>, u64);

/// Progress after each committed batch: (blocks committed, last block in the archive, bytes).
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64, u64);

fn block_err(segment: u64, number: u64) -> impl Fn(NodeError) -> SyncError {
    move |e| SyncError::Block {
        segment,
        number,
        reason: e.to_string(),
    }
}

/// Runs the sync. See the module docs.
pub async fn sync(
    remote: &RemoteArchive,
    opts: &SyncOptions,
    progress: Progress<'_>,
) -> Result<SyncReport, SyncError> {
    let chain = remote.manifest_chain().await?;
    let archive_last = chain.last().map_or(0, |m| m.manifest.last_number);
    let mut report = SyncReport::default();
    let mut ctx: Option<(ChainDb, State, Authorities, Hash)> = open_existing(&opts.data_dir)?;
    let mut next = match &ctx {
        Some((db, ..)) => db.best()?.map_or(0, |(n, _)| n + 1),
        None => 0,
    };
    report.resumed_from = next;
    let mut trusted: Option<u64> = None;
    // Blocks checked but waiting for a justification before they are committed.
    let mut pending: Vec<Pending> = Vec::new();
    let mut prev_last: Option<Hash> = None;
    for meta in &chain {
        let m = &meta.manifest;
        let segment = m.segment;
        if m.last_number < next {
            prev_last = Some(m.last_hash);
            // Already imported: the trusted hash may lie here; the local db has it.
            if trusted.is_none() {
                if let Some((db, ..)) = &ctx {
                    trusted = db.number_by_hash(&opts.trusted_hash)?;
                }
            }
            continue;
        }
        let (plain, _) = remote.read_segment(meta).await?;
        report.bytes += plain.len() as u64;
        report.segments += 1;
        let records = verify_segment_blocks(meta, &plain, prev_last)?;
        prev_last = Some(m.last_hash);
        drop(plain);
        for rec in records {
            let n = rec.number;
            if n < next {
                continue;
            }
            if rec.hash == opts.trusted_hash {
                trusted = Some(n);
            }
            if n == 0 {
                let genesis_state: Vec<(Vec<u8>, Vec<u8>)> = rec
                    .changes
                    .iter()
                    .filter_map(|c| c.value.clone().map(|v| (c.key.clone(), v)))
                    .collect();
                check_genesis(&rec.block, &genesis_state).map_err(block_err(segment, 0))?;
                init_from_genesis(&opts.data_dir, &rec.block, &genesis_state)
                    .map_err(block_err(segment, 0))?;
                ctx = open_existing(&opts.data_dir)?;
                next = 1;
                report.blocks += 1;
                continue;
            }
            let Some((db, state, authorities, _genesis)) = ctx.as_mut() else {
                return Err(SyncError::Block {
                    segment,
                    number: n,
                    reason: "the archive does not start with a genesis block".into(),
                });
            };
            let parent = match pending.last() {
                Some((c, ..)) => (n - 1, c.hash),
                None => db.best()?.unwrap_or((0, [0; 32])),
            };
            let checked = check_block(
                authorities,
                parent,
                state,
                &rec.block,
                rec.justification.as_deref(),
            )
            .map_err(block_err(segment, n))?;
            if checked.hash != rec.hash {
                return Err(SyncError::Block {
                    segment,
                    number: n,
                    reason: "the record's hash is not its header's hash".into(),
                });
            }
            let justified = checked.justified;
            pending.push((checked, rec.block, rec.justification, segment));
            if justified {
                for (c, block, js, seg) in pending.drain(..) {
                    let number = u64::from(c.header.number);
                    commit(
                        db,
                        &c,
                        &block,
                        js.as_deref(),
                        number + opts.retention > archive_last,
                    )
                    .map_err(block_err(seg, number))?;
                    report.blocks += 1;
                }
                next = n + 1;
            }
        }
        progress(report.blocks, archive_last, report.bytes);
    }
    let Some((db, ..)) = &ctx else {
        return Err(SyncError::Block {
            segment: 0,
            number: 0,
            reason: "the archive holds no blocks".into(),
        });
    };
    if trusted.is_none() {
        trusted = db.number_by_hash(&opts.trusted_hash)?;
    }
    let (head, head_hash) = db.best()?.unwrap_or((0, [0; 32]));
    let Some(trusted_number) = trusted.filter(|t| *t <= head) else {
        return Err(SyncError::TrustedHashNotFound {
            trusted: hex::encode(opts.trusted_hash),
            last: head,
        });
    };
    // The committed state must equal the state root of the committed head (the pending tail was
    // executed into `state` but not committed, so re-read what the database holds).
    let committed = State {
        entries: db.state()?,
    };
    let head_header = db
        .header(head)?
        .and_then(|b| Header::from_bytes(&b).ok())
        .ok_or_else(|| SyncError::Block {
            segment: 0,
            number: head,
            reason: "imported head has no readable header".into(),
        })?;
    if committed.root() != head_header.state_root {
        return Err(SyncError::Block {
            segment: 0,
            number: head,
            reason: "the imported state does not match the head's state root".into(),
        });
    }
    report.head = head;
    report.head_hash = head_hash;
    report.state_root = head_header.state_root;
    report.trusted_number = trusted_number;
    Ok(report)
}

fn commit(
    db: &ChainDb,
    c: &CheckedBlock,
    block: &[u8],
    justifications: Option<&[u8]>,
    keep_body: bool,
) -> Result<(), NodeError> {
    let number = u64::from(c.header.number);
    // The block was decoded from these bytes, so its header is their prefix.
    let header_len = parity_scale_codec::Encode::encoded_size(&c.header);
    db.put_block(
        &StoredBlock {
            number,
            hash: c.hash,
            header: &block[..header_len],
            body: &block[header_len..],
            justifications,
            changes: &c.changes,
            keep_body,
        },
        Some((number, c.hash)),
        None,
    )?;
    Ok(())
}

/// Opens a partially synced database: its state, authority set and genesis hash.
fn open_existing(
    data_dir: &Path,
) -> Result<Option<(ChainDb, State, Authorities, Hash)>, SyncError> {
    let db_path = data_dir.join("chain");
    if !db_path.exists() {
        return Ok(None);
    }
    let db = ChainDb::open(&db_path)?;
    let Some(genesis_header) = db.header(0)? else {
        return Ok(None);
    };
    let genesis = Header::from_bytes(&genesis_header)
        .map_err(|e| NodeError::Setup(format!("genesis header: {e}")))?
        .hash();
    let state = State {
        entries: db.state()?,
    };
    let keys = crate::runtime::authorities_in(&state.entries)
        .ok_or_else(|| NodeError::Setup("the local genesis state has no authority set".into()))?;
    Ok(Some((db, state, Authorities::from_public(keys), genesis)))
}
