//! A probe's expensive answer kept in the agent's state directory (`STATE_DIR/cache/NAME.json`) and
//! reused while a fingerprint of its inputs is unchanged and the answer is younger than a maximum
//! age. Only on the live host ([`crate::source::HostSource::may_use_cache`]): under `--root` and
//! `capture` the probe always asks its source, so fixtures and captures stay exact.
//!
//! The cache is an optimisation and never a reason to fail: a file that is missing, unreadable, of
//! another shape or for other inputs is a miss, and the next store replaces it. Stores are atomic
//! (temporary file in the same directory, then rename), mode 0600 in a 0700 directory.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Bumped when the file's layout changes: an older file is then a miss.
const FORMAT: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("cannot encode the cached value: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One probe's cache file.
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
    path: PathBuf,
}

/// A value found in the cache, and when it was computed.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit<T> {
    pub value: T,
    pub computed_at: OffsetDateTime,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry<T> {
    format: u32,
    fingerprint: String,
    #[serde(with = "time::serde::rfc3339")]
    computed_at: OffsetDateTime,
    value: T,
}

impl ResultCache {
    pub fn new(dir: &Path, name: &str) -> ResultCache {
        ResultCache {
            dir: dir.to_path_buf(),
            path: dir.join(format!("{name}.json")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached value, if it was computed for `fingerprint` at most `max_age` before `now`.
    pub fn load<T: DeserializeOwned>(
        &self,
        fingerprint: &str,
        now: OffsetDateTime,
        max_age: Duration,
    ) -> Option<Hit<T>> {
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(error) => {
                if error.kind() != io::ErrorKind::NotFound {
                    tracing::debug!(path = %self.path.display(), %error, "cache unreadable: ignored");
                }
                return None;
            }
        };
        let entry: Entry<T> = match serde_json::from_slice(&bytes) {
            Ok(entry) => entry,
            Err(error) => {
                tracing::debug!(path = %self.path.display(), %error, "cache corrupt: ignored");
                return None;
            }
        };
        let age = now - entry.computed_at;
        // A clock set back makes the age negative: the entry cannot be trusted to be fresh.
        let fresh = age >= time::Duration::ZERO && age <= max_age;
        if entry.format != FORMAT || entry.fingerprint != fingerprint || !fresh {
            tracing::debug!(path = %self.path.display(), fresh, "cache stale");
            return None;
        }
        Some(Hit {
            value: entry.value,
            computed_at: entry.computed_at,
        })
    }

    /// Replaces the cached value.
    pub fn store<T: Serialize>(
        &self,
        fingerprint: &str,
        computed_at: OffsetDateTime,
        value: &T,
    ) -> Result<(), CacheError> {
        let entry = Entry {
            format: FORMAT,
            fingerprint: fingerprint.to_string(),
            computed_at,
            value,
        };
        let bytes = serde_json::to_vec(&entry)?;
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |error| CacheError::Io { path, error }
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io_err(&self.dir))?;
        // The pid keeps a concurrent `collect` and the daemon from writing the same temporary file.
        let tmp = self
            .dir
            .join(format!(".{}.tmp{}", file_name(&self.path), std::process::id()));
        let written = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&tmp, &self.path));
        if let Err(error) = written {
            let _ = fs::remove_file(&tmp);
            return Err(CacheError::Io {
                path: self.path.clone(),
                error,
            });
        }
        Ok(())
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use time::macros::datetime;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_value_is_found_for_its_fingerprint_until_it_is_too_old() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(&dir.path().join("cache"), "updates");
        let at = datetime!(2026-11-20 09:00:00 UTC);
        assert_eq!(cache.load::<u64>("fp", at, DAY), None);
        cache.store("fp", at, &42u64).unwrap();

        let hit = cache.load::<u64>("fp", at + time::Duration::hours(23), DAY);
        assert_eq!(
            hit,
            Some(Hit {
                value: 42,
                computed_at: at
            })
        );
        assert_eq!(cache.load::<u64>("other", at, DAY), None);
        assert_eq!(cache.load::<u64>("fp", at + time::Duration::hours(25), DAY), None);
        assert_eq!(cache.load::<u64>("fp", at - time::Duration::hours(1), DAY), None);

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(cache.path()), 0o600);
        assert_eq!(mode(&dir.path().join("cache")), 0o700);
        let left: Vec<_> = fs::read_dir(dir.path().join("cache")).unwrap().collect();
        assert_eq!(left.len(), 1, "temporary file left behind: {left:?}");
    }

    #[test]
    fn a_corrupt_or_foreign_file_is_a_miss_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path(), "updates");
        let at = datetime!(2026-11-20 09:00:00 UTC);
        for junk in [
            &b"{\"format\": 1, \"fingerp"[..],
            b"\xff\xfe",
            br#"{"format": 1, "fingerprint": "fp", "computed_at": "2026-11-20T09:00:00Z", "value": "text"}"#,
            br#"{"format": 0, "fingerprint": "fp", "computed_at": "2026-11-20T09:00:00Z", "value": 1}"#,
        ] {
            fs::write(cache.path(), junk).unwrap();
            assert_eq!(cache.load::<u64>("fp", at, DAY), None);
        }
        cache.store("fp", at, &7u64).unwrap();
        assert_eq!(cache.load::<u64>("fp", at, DAY).map(|h| h.value), Some(7));
    }

    #[test]
    fn a_directory_that_cannot_be_made_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, "").unwrap();
        let cache = ResultCache::new(&file.join("cache"), "updates");
        let at = datetime!(2026-11-20 09:00:00 UTC);
        assert!(matches!(cache.store("fp", at, &1u64), Err(CacheError::Io { .. })));
        assert_eq!(cache.load::<u64>("fp", at, DAY), None);
    }
}
