//! Chain adapter for Substrate Proof-of-Authority chains (Aura + GRANDPA): the chain-specific
//! half of the archive, kept out of the chain-agnostic `archiver` library.
//!
//! What is here:
//! - [`substrate`]: the SCALE block format (header, digest items, opaque extrinsics,
//!   justifications), the BLAKE2b-256 block hash, and decoding of untrusted bytes into typed
//!   errors (`specs/substrate-block.md`).
//! - [`synthetic`]: a deterministic, seeded, resumable synthetic chain for demos and benchmarks.
//! - The reference PoA node: [`consensus`] (Aura seals, GRANDPA-style justifications),
//!   [`runtime`] (signed transfers, state root), [`chain_db`] (its RocksDB), [`node`] (authoring,
//!   import, the `FinalityPlugin` hooks and pruning) — `specs/chain.md`.
//! - [`plugin`]: the in-process archive plugin and its read-back-verified prune watermark.
//! - [`rpc`]: Substrate-compatible JSON-RPC over the node and the archive; [`follow`]: archiving
//!   a node reached only over RPC; [`sync`]: new-validator sync from the hosters.

pub mod archived_calls;
pub mod chain_db;
pub mod consensus;
pub mod follow;
pub mod node;
pub mod plugin;
pub mod rpc;
pub mod runtime;
pub mod substrate;
pub mod sync;
pub mod synthetic;

pub use substrate::{
    blake2_256, extrinsics_root, extrinsics_root_of_encoded, Block, ChainFormatError,
    ConsensusEngineId, Digest, DigestItem, GrandpaJustification, Hash, Header, Justification,
    Justifications, AURA_ENGINE_ID, GRANDPA_ENGINE_ID, METADATA_KEY, RESERVED_KEY_PREFIX,
    RUNTIME_VERSION_KEY,
};
pub use synthetic::{SyntheticBlock, SyntheticChain};
