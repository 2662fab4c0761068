//! Bodies of the agent-facing HTTP API under `/v1`. Both sides use these types, so a change here is a
//! protocol change.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::HostRole;

pub const ENROLL_PATH: &str = "/v1/enroll";
pub const SNAPSHOTS_PATH: &str = "/v1/snapshots";

/// Prefix of enrollment tokens and agent credentials: makes a leaked secret recognisable to secret
/// scanners and tells the two apart at a glance.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "chet_";
pub const AGENT_CREDENTIAL_PREFIX: &str = "chac_";
/// Prefix of the API tokens TAMs and admins use in scripts (`Authorization: Bearer chtt_…`).
pub const TAM_TOKEN_PREFIX: &str = "chtt_";

/// `POST /v1/enroll`: trade an enrollment token for a credential bound to one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub token: String,
    pub host_id: Uuid,
    pub hostname: String,
    pub role: HostRole,
    pub agent_version: String,
}

/// Answer to a successful enrollment (201). The credential is shown once; the collector keeps only its
/// hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub credential: String,
    pub host_id: Uuid,
    pub org: String,
    pub environment: String,
}

/// Answer to `POST /v1/snapshots`: 201 with `Stored` the first time, 200 with `Duplicate` for a replay
/// of a snapshot id already stored. Both mean "delete it from your spool".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotAccepted {
    pub id: Uuid,
    pub status: IngestStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestStatus {
    Stored,
    Duplicate,
}

/// Body of every 4xx and 5xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    /// Stable, machine-readable reason, e.g. `malformed_json`, `unknown_credential`, `contract_lapsed`.
    pub error: String,
    /// For a person: what was wrong and, where it helps, what to do.
    pub message: String,
}

/// Request header with the agent's clock at the moment it sent (RFC 3339): the collector compares
/// it with its own clock to measure the host's clock skew, also for snapshots replayed from a spool.
pub const SENT_AT_HEADER: &str = "x-callhome-sent-at";
