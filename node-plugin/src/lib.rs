//! Chain adapter for Substrate Proof-of-Authority chains (Aura + GRANDPA): the chain-specific
//! half of the archive, kept out of the chain-agnostic `archiver` library.
//!
//! What is here now:
//! - [`substrate`]: the SCALE block format (header, digest items, opaque extrinsics,
//!   justifications), the BLAKE2b-256 block hash, and decoding of untrusted bytes into typed
//!   errors. The byte layout and a test vector are in `specs/substrate-block.md`.
//! - [`synthetic`]: a deterministic, seeded, resumable generator of a realistic synthetic chain
//!   for demos, tests and benchmarks, with a caller-chosen marker in every block.
//!
//! Not here yet (later work, nothing in this crate pretends otherwise): the reference PoA node,
//! the follower that fetches finalized blocks from a node's JSON-RPC, and the hooks that let a
//! node prune block bodies once the archive holds them.

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
    Justifications, AURA_ENGINE_ID, GRANDPA_ENGINE_ID,
};
pub use synthetic::{SyntheticBlock, SyntheticChain};
