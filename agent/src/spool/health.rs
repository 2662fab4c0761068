//! What the agent remembers about its deliveries across runs (`STATE_DIR/health.json`), so that a
//! `send` after a `run` (or a restart) reports the same counts. Written atomically after each change.
//!
//! Dropped snapshots are counted with two monotonic numbers instead of one resettable counter:
//! `dropped_total` (every snapshot ever dropped from a full spool, or lost because it could be
//! neither spooled nor sent) and `dropped_reported` (the highest `dropped_total` that a snapshot the
//! collector acknowledged was taken with, its *dropped mark*). A new snapshot reports the
//! difference. With a plain counter reset at each delivery, a drop that happened after the delivered
//! snapshot was taken, but before it was delivered, would never reach the collector.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::fs::{SpoolFs, write_atomic};

pub const HEALTH_FILE: &str = "health.json";

/// Longest error text kept (it goes into every snapshot's `agent` section).
const MAX_ERROR_LEN: usize = 500;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthRecord {
    pub dropped_total: u64,
    pub dropped_reported: u64,
    pub quarantined_total: u64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_delivery: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_error_at: Option<OffsetDateTime>,
}

impl HealthRecord {
    /// Dropped snapshots that no acknowledged snapshot has reported yet.
    pub fn dropped_unreported(&self) -> u64 {
        self.dropped_total.saturating_sub(self.dropped_reported)
    }
}

/// The health record and where it lives.
#[derive(Debug)]
pub struct HealthBook {
    fs: Arc<dyn SpoolFs>,
    dir: PathBuf,
    record: HealthRecord,
}

impl HealthBook {
    /// Reads `dir/health.json`; a missing or unreadable file starts from zero (it holds counters, not
    /// data: losing it must not stop delivery).
    pub fn open(fs: Arc<dyn SpoolFs>, dir: &Path) -> HealthBook {
        let path = dir.join(HEALTH_FILE);
        let record = match fs.read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                tracing::warn!(path = %path.display(), %error, "delivery health file unreadable: starting from zero");
                HealthRecord::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HealthRecord::default(),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the delivery health file");
                HealthRecord::default()
            }
        };
        HealthBook {
            fs,
            dir: dir.to_path_buf(),
            record,
        }
    }

    pub fn record(&self) -> &HealthRecord {
        &self.record
    }

    /// `n` snapshots were dropped (spool full, or neither spooled nor sent).
    pub fn dropped(&mut self, n: u64) {
        if n > 0 {
            self.record.dropped_total += n;
            self.save();
        }
    }

    pub fn quarantined(&mut self, n: u64) {
        if n > 0 {
            self.record.quarantined_total += n;
            self.save();
        }
    }

    /// The collector acknowledged a snapshot taken with `dropped_mark`.
    pub fn delivered(&mut self, dropped_mark: u64, at: OffsetDateTime) {
        self.record.dropped_reported = self.record.dropped_reported.max(dropped_mark);
        self.record.last_delivery = Some(at);
        self.record.last_error = None;
        self.record.last_error_at = None;
        self.save();
    }

    pub fn failed(&mut self, error: &str, at: OffsetDateTime) {
        let error: String = error.chars().take(MAX_ERROR_LEN).collect();
        if self.record.last_error.as_deref() == Some(error.as_str()) {
            // Same error again: keep when it started, spare the disk a write per retry.
            return;
        }
        self.record.last_error = Some(error);
        self.record.last_error_at = Some(at);
        self.save();
    }

    fn save(&self) {
        let bytes = match serde_json::to_vec_pretty(&self.record) {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::error!(%error, "cannot encode the delivery health record");
                return;
            }
        };
        if let Err(error) = write_atomic(self.fs.as_ref(), &self.dir, HEALTH_FILE, &bytes) {
            // Counters only: a full disk must not stop delivery. The in-memory record stays right.
            tracing::warn!(dir = %self.dir.display(), %error, "cannot save the delivery health record");
        }
    }
}
