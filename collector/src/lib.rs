//! The callhome collector: authenticates agents, checks their org's contract and stores the snapshots
//! they post, durably and exactly once per snapshot id.
//!
//! Modules in data-flow order: `server` (TCP + TLS accept loop) hands each connection to the `http`
//! router; `http::snapshots` checks the credential (`store`), the contract (`entitlement`), then reads
//! and decompresses the body (`ingest`), decodes it (`callhome_shared`) and stores it (`store`).
//! `cli` holds the command line and the admin commands, which work on the data directory directly.
//!
//! Invariants:
//! - A 2xx to `POST /v1/snapshots` means the snapshot is committed (`synchronous=FULL`).
//! - At most `limits.max_inflight_snapshots` snapshot posts are between admission and commit; one more
//!   is answered 429 with `Retry-After` before its body is read (`http::admission`). After SIGTERM,
//!   requests are answered 503 `shutting_down` while those in flight finish (`server`).
//! - A snapshot id is stored once; a replay is answered 200 `duplicate`.
//! - Org and environment come from the agent's credential, never from the body.
//! - Tokens and credentials are stored only as SHA-256 hashes and never logged.

pub mod account_cmd;
pub mod agent_ca;
pub mod audit_cmd;
pub mod capacity;
pub mod cli;
pub mod config;
pub mod csv_export;
pub mod diff;
pub mod entitlement;
pub mod http;
pub mod ingest;
pub mod jobs;
pub mod metrics;
pub mod password;
pub mod risk_cmd;
pub mod rules_cmd;
pub mod score;
pub mod secret;
pub mod seed_cmd;
pub mod server;
pub mod store;
pub mod tls;
pub mod webhook;
