//! The spool: snapshots waiting for the collector, on disk, in `STATE_DIR/spool/`.
//!
//! # Design
//!
//! One snapshot is one file, `<snapshot id>.snap` (format in [`format`]), holding the exact request
//! body (zstd JSON) behind a header with a CRC-32. Vector's disk buffer (`disk_v2/mod.rs`) is the
//! model for writing the guarantees down; unlike its ledger and data files, a file per snapshot needs
//! no ledger: snapshots are few (one an hour) and the directory listing *is* the queue.
//!
//! # Invariants
//!
//! 1. **A snapshot is spooled before its first send.** [`Spool::store`] returns only after the file
//!    is complete and durable: written under a temporary name, fsynced, renamed into place, and the
//!    directory fsynced. A crash at any point leaves either no `.snap` file or a whole one.
//! 2. **Temporary files are never delivered.** Names starting with `.tmp-` are leftovers of a crash
//!    mid-write; [`Spool::open`] removes them and listings skip them.
//! 3. **A file leaves the spool in exactly three ways:** after the collector's 2xx for its id
//!    ([`Spool::remove`]), moved to `quarantine/` with a reason ([`Spool::quarantine`]), or dropped
//!    as the oldest when the spool is over its bounds. Nothing else deletes a `.snap` file.
//! 4. **Oldest first.** Entries are listed in snapshot id order; ids are UUIDv7, whose leading 48
//!    bits are the time taken in milliseconds, so id order is the order the snapshots were taken.
//! 5. **Replays are harmless.** A crash between the collector's 2xx and the unlink sends that
//!    snapshot again after restart; the collector keys on the snapshot id and answers 200
//!    `duplicate` without a second row (SPEC §5). So is a `send` running beside `run`: removals and
//!    moves tolerate a file that another process already took.
//! 6. **Bounded.** After every store the spool holds at most `max_files` files and `max_bytes`
//!    bytes, except that the snapshot just stored is never dropped to make room for older ones (so a
//!    single snapshot larger than `max_bytes` is still kept, alone). The ids dropped are returned so
//!    that the next snapshot reports how many ([`HealthBook`]).
//! 7. **Corruption is contained.** A file that fails its checksum, has a foreign header, or whose
//!    body does not decompress to JSON naming the same id is moved to `quarantine/` beside a
//!    `.reason` file, and delivery goes on with the next. A quarantined file is never sent again
//!    (and is kept, not deleted, for a support engineer to look at).
//! 8. **Failures are reported, not fatal.** A full disk while storing is an error the caller logs;
//!    the spool stays as it was, minus the temporary file.

pub mod format;
pub mod fs;
pub mod health;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use time::OffsetDateTime;
use uuid::Uuid;

pub use self::fs::{OsFs, SpoolFs};
pub use self::health::{HealthBook, HealthRecord};

/// Folder under the state directory.
pub const SPOOL_DIR: &str = "spool";
/// Folder under the spool.
pub const QUARANTINE_DIR: &str = "quarantine";
const SUFFIX: &str = ".snap";
const REASON_SUFFIX: &str = ".reason";

/// Largest decompressed body a spool file may hold: the collector's default limit.
pub const MAX_DECOMPRESSED: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },
}

impl SpoolError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
        move |error| SpoolError::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    /// True when the disk (or the quota) is full: worth a clearer message.
    pub fn is_disk_full(&self) -> bool {
        match self {
            SpoolError::Io { error, .. } => {
                matches!(
                    error.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
            }
        }
    }
}

/// The bounds of the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_files: u64,
    pub max_bytes: u64,
}

/// One spooled snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: Uuid,
    pub bytes: u64,
}

impl Entry {
    fn file_name(&self) -> String {
        file_name(self.id)
    }

    /// When the snapshot was taken, from its UUIDv7 timestamp.
    pub fn taken_at(&self) -> Option<OffsetDateTime> {
        let (secs, nanos) = self.id.get_timestamp()?.to_unix();
        let secs = i64::try_from(secs).ok()?;
        OffsetDateTime::from_unix_timestamp(secs)
            .ok()
            .map(|t| t + time::Duration::nanoseconds(i64::from(nanos)))
    }
}

/// What [`Spool::store`] did besides storing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// Oldest snapshots dropped to stay within the bounds.
    pub dropped: Vec<Uuid>,
}

/// A quarantined file and why it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quarantined {
    pub file: String,
    pub reason: String,
    pub modified: Option<SystemTime>,
}

/// Why a spooled file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is damaged or not ours: quarantine it.
    #[error("{0}")]
    Corrupt(String),
    /// Gone: another process delivered it meanwhile.
    #[error("already gone")]
    Gone,
    #[error(transparent)]
    Io(#[from] SpoolError),
}

#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    quarantine: PathBuf,
    limits: Limits,
    fs: Arc<dyn SpoolFs>,
}

fn file_name(id: Uuid) -> String {
    format!("{}{SUFFIX}", id.as_hyphenated())
}

impl Spool {
    /// Opens (creating) `state_dir/spool` and removes the temporary files a crash left.
    pub fn open(state_dir: &Path, limits: Limits, fs: Arc<dyn SpoolFs>) -> Result<Spool, SpoolError> {
        let dir = state_dir.join(SPOOL_DIR);
        let quarantine = dir.join(QUARANTINE_DIR);
        fs.create_dir_all(&quarantine)
            .map_err(SpoolError::io(&quarantine))?;
        let spool = Spool {
            dir,
            quarantine,
            limits,
            fs,
        };
        for entry in spool.fs.list(&spool.dir).map_err(SpoolError::io(&spool.dir))? {
            if entry.name.starts_with(fs::TEMP_PREFIX) {
                let path = spool.dir.join(&entry.name);
                tracing::info!(file = %path.display(), "removing a spool file left incomplete by a crash");
                if let Err(error) = spool.fs.remove(&path)
                    && error.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(SpoolError::io(&path)(error));
                }
            }
        }
        Ok(spool)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn quarantine_dir(&self) -> &Path {
        &self.quarantine
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The spooled snapshots, oldest first. Files whose names are not `<uuid>.snap` are not
    /// entries (temporary files, or something an operator put there).
    pub fn entries(&self) -> Result<Vec<Entry>, SpoolError> {
        let mut entries: Vec<Entry> = self
            .fs
            .list(&self.dir)
            .map_err(SpoolError::io(&self.dir))?
            .into_iter()
            .filter_map(|e| {
                let id = e.name.strip_suffix(SUFFIX)?;
                let id = Uuid::try_parse(id).ok()?;
                // Only the canonical name: `Uuid::try_parse` also accepts other spellings.
                (file_name(id) == e.name).then_some(Entry { id, bytes: e.len })
            })
            .collect();
        entries.sort_by_key(|e| e.id);
        Ok(entries)
    }

    /// Writes one snapshot (invariant 1), then drops the oldest others while over the bounds
    /// (invariant 6). `body` is the zstd-compressed JSON; `dropped_mark` goes into the header.
    pub fn store(&self, id: Uuid, dropped_mark: u64, body: &[u8]) -> Result<Stored, SpoolError> {
        let bytes = format::encode(id, dropped_mark, body);
        let name = file_name(id);
        fs::write_atomic(self.fs.as_ref(), &self.dir, &name, &bytes)
            .map_err(SpoolError::io(&self.dir.join(&name)))?;
        self.enforce_limits(id)
    }

    fn enforce_limits(&self, keep: Uuid) -> Result<Stored, SpoolError> {
        let entries = self.entries()?;
        let mut files = entries.len() as u64;
        let mut bytes: u64 = entries.iter().map(|e| e.bytes).sum();
        let mut stored = Stored::default();
        for entry in &entries {
            if files <= self.limits.max_files && bytes <= self.limits.max_bytes {
                break;
            }
            if entry.id == keep {
                continue;
            }
            let path = self.dir.join(entry.file_name());
            match self.fs.remove(&path) {
                Ok(()) => stored.dropped.push(entry.id),
                // Delivered by another process meanwhile: it left, it was not dropped.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(SpoolError::io(&path)(e)),
            }
            files -= 1;
            bytes = bytes.saturating_sub(entry.bytes);
        }
        if !stored.dropped.is_empty() {
            self.fs.sync_dir(&self.dir).map_err(SpoolError::io(&self.dir))?;
            tracing::warn!(
                dropped = stored.dropped.len(),
                max_files = self.limits.max_files,
                max_bytes = self.limits.max_bytes,
                "spool full: dropped the oldest snapshots"
            );
        }
        Ok(stored)
    }

    /// Reads and checks one entry (invariant 7): `Corrupt` means quarantine it.
    pub fn load(&self, entry: &Entry) -> Result<format::Record, LoadError> {
        let path = self.dir.join(entry.file_name());
        let bytes = match self.fs.read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(LoadError::Gone),
            Err(e) => return Err(SpoolError::io(&path)(e).into()),
        };
        let record = format::decode(&bytes).map_err(LoadError::Corrupt)?;
        if record.id != entry.id {
            return Err(LoadError::Corrupt(format!(
                "file name says snapshot {} but the header says {}",
                entry.id, record.id
            )));
        }
        format::verify_body(&record, MAX_DECOMPRESSED).map_err(LoadError::Corrupt)?;
        Ok(record)
    }

    /// Deletes an entry the collector acknowledged (invariant 3).
    pub fn remove(&self, id: Uuid) -> Result<(), SpoolError> {
        let path = self.dir.join(file_name(id));
        match self.fs.remove(&path) {
            Ok(()) => self.fs.sync_dir(&self.dir).map_err(SpoolError::io(&self.dir)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SpoolError::io(&path)(e)),
        }
    }

    /// Moves an entry to `quarantine/` and writes why beside it (invariant 7). Returns false when the
    /// file was already gone.
    pub fn quarantine(&self, id: Uuid, reason: &str) -> Result<bool, SpoolError> {
        let name = file_name(id);
        // The reason first: a crash between the two leaves a reason without a file, never a
        // quarantined file without its reason.
        let reason_name = format!("{name}{REASON_SUFFIX}");
        let text = format!("{reason}\n");
        fs::write_atomic(self.fs.as_ref(), &self.quarantine, &reason_name, text.as_bytes())
            .map_err(SpoolError::io(&self.quarantine.join(&reason_name)))?;
        let from = self.dir.join(&name);
        match self.fs.rename(&from, &self.quarantine.join(&name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = self.fs.remove(&self.quarantine.join(&reason_name));
                return Ok(false);
            }
            Err(e) => return Err(SpoolError::io(&from)(e)),
        }
        self.fs
            .sync_dir(&self.quarantine)
            .map_err(SpoolError::io(&self.quarantine))?;
        self.fs.sync_dir(&self.dir).map_err(SpoolError::io(&self.dir))?;
        tracing::warn!(snapshot = %id, %reason, dir = %self.quarantine.display(), "spool file quarantined");
        Ok(true)
    }

    /// The quarantined files with their reasons, oldest first by name.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>, SpoolError> {
        let listing = self
            .fs
            .list(&self.quarantine)
            .map_err(SpoolError::io(&self.quarantine))?;
        let mut out: Vec<Quarantined> = listing
            .iter()
            .filter(|e| !e.name.ends_with(REASON_SUFFIX) && !e.name.starts_with(fs::TEMP_PREFIX))
            .map(|e| {
                let reason_path = self.quarantine.join(format!("{}{REASON_SUFFIX}", e.name));
                let reason = self
                    .fs
                    .read(&reason_path)
                    .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                    .unwrap_or_else(|_| "no reason recorded".to_string());
                Quarantined {
                    file: e.name.clone(),
                    reason,
                    modified: e.modified,
                }
            })
            .collect();
        out.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(out)
    }
}
