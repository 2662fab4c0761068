//! The filesystem as the spool sees it: a handful of operations behind a trait, so that tests can
//! make any of them fail (a full disk, a crash half-way through a write) without a real full disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// One directory entry: its name, size and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub len: u64,
    pub modified: Option<SystemTime>,
}

/// What the spool needs from a filesystem. Every method is one system call or a short fixed
/// sequence of them, so that a fault injected in a test corresponds to one real failure.
pub trait SpoolFs: Send + Sync + std::fmt::Debug {
    /// Creates `dir` and its parents with mode 0700 (the spool holds host data).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates `path` (which must not exist), writes `bytes` and fsyncs the file. Not atomic: a crash
    /// may leave part of it, which is why it is only ever used on a temporary name.
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// rename(2): atomic within one filesystem.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// fsync of a directory, which makes the renames and unlinks inside it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// The regular files in `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>>;
}

/// The real filesystem. `write_pause` (testing only, from `spool.write_pause_ms`) sleeps half-way
/// through each write so that a crash test can kill the process in the middle of one.
#[derive(Debug, Clone, Default)]
pub struct OsFs {
    pub write_pause: Duration,
}

impl SpoolFs for OsFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
    }

    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        if self.write_pause.is_zero() {
            file.write_all(bytes)?;
        } else {
            let (head, tail) = bytes.split_at(bytes.len() / 2);
            file.write_all(head)?;
            file.flush()?;
            std::thread::sleep(self.write_pause);
            file.write_all(tail)?;
        }
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                // Removed between readdir and stat: a concurrent delivery took it.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if !meta.is_file() {
                continue;
            }
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            out.push(DirEntry {
                name,
                len: meta.len(),
                modified: meta.modified().ok(),
            });
        }
        Ok(out)
    }
}

/// Writes `bytes` to `dir/name` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory. After a crash, `dir/name` is the old content or the new, never a mix;
/// the temporary file (named `.tmp-...`) may be left behind and is removed by the next open.
pub fn write_atomic(fs: &dyn SpoolFs, dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(dir, name);
    let target = dir.join(name);
    if let Err(e) = fs.write_synced(&tmp, bytes) {
        // Leave no partial file behind when we still can (a full disk, not a crash).
        let _ = fs.remove(&tmp);
        return Err(e);
    }
    if let Err(e) = fs.rename(&tmp, &target) {
        let _ = fs.remove(&tmp);
        return Err(e);
    }
    fs.sync_dir(dir)
}

/// Prefix of temporary files: never a spool entry, removed when the spool opens.
pub const TEMP_PREFIX: &str = ".tmp-";

fn temp_path(dir: &Path, name: &str) -> PathBuf {
    // The random part keeps two processes (a `send` beside `run`) from sharing a temporary file.
    dir.join(format!("{TEMP_PREFIX}{}-{name}", uuid::Uuid::new_v4().simple()))
}
