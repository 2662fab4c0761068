//! Section `agent`: the agent's own health: spool depth, last delivery, snapshots dropped.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `agent` probe: the running agent itself (also under `--root`, which only changes the host read).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentSection {
    pub version: String,
    /// Snapshots waiting in the spool.
    pub spool_depth: u64,
    /// Their size on disk.
    pub spool_bytes: u64,
    /// The last snapshot the collector stored (2xx).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_delivery: Option<OffsetDateTime>,
    /// Snapshots the full spool dropped (oldest first) since the last delivery.
    pub dropped_since_last_delivery: u64,
    /// Spool files moved aside (corrupt, or refused for good by the collector), all time.
    pub quarantined: u64,
    /// Why the last delivery attempt failed, if it did.
    pub last_error: Option<String>,
    /// The longest wait between two snapshots the agent's schedule allows, in seconds: the longest
    /// gap between consecutive slots of its cron line (over its next slots) plus the maximum splay.
    /// The collector's staleness rule measures silence against it. `None`: the schedule could not be
    /// read, or an older agent that did not say.
    #[serde(default)]
    pub schedule_interval_secs: Option<u64>,
}
