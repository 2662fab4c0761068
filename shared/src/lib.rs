//! What the callhome agent and collector must agree on: the snapshot schema (v1), its sections, and
//! the HTTP API's request and response bodies.
//!
//! Architecture invariant: this crate knows nothing of I/O, HTTP or storage. It is serde types, their
//! validation and the decoding rules both sides apply, so that a change to the wire is a change here
//! and shows up in the golden test (`tests/golden.rs`).

pub mod api;
pub mod rules;
pub mod sections;
pub mod snapshot;

pub use sections::*;
pub use snapshot::{
    AgentInfo, DecodeError, HostIdentity, HostRole, ProbeError, ProbeOutcome, ProbeReport, SCHEMA_VERSION,
    Snapshot, decode_snapshot,
};
