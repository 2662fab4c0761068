//! Spool tests, split by concern as Vector's disk buffer tests are: `basic` (store, list, deliver),
//! `size_limits` (bounds and drop accounting), `known_errors` (full disk, crash mid-write, corrupt
//! files), `model` (random operation sequences with crashes, checked against a model).

mod basic;
mod known_errors;
mod model;
mod size_limits;

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::fs::{DirEntry, OsFs, SpoolFs};
use super::{Limits, Spool};

/// A fault to inject into the next matching operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `write_synced` fails with ENOSPC before writing anything.
    DiskFull,
    /// `write_synced` writes half of the bytes and then "the process dies": the call fails and every
    /// later call fails too, until [`FaultyFs::restart`].
    CrashMidWrite,
    /// `rename` fails as if the process died just before it.
    CrashBeforeRename,
    /// `sync_dir` fails as if the process died right after the rename.
    CrashAfterRename,
}

/// The real filesystem with faults on demand.
#[derive(Debug, Default)]
pub struct FaultyFs {
    inner: OsFs,
    state: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    next: Vec<Fault>,
    dead: bool,
}

impl FaultyFs {
    pub fn new() -> Arc<FaultyFs> {
        Arc::new(FaultyFs::default())
    }

    pub fn inject(&self, fault: Fault) {
        self.state.lock().unwrap().next.push(fault);
    }

    /// The process "starts again": calls work again.
    pub fn restart(&self) {
        let mut state = self.state.lock().unwrap();
        state.dead = false;
        state.next.clear();
    }

    fn take(&self, wanted: &[Fault]) -> io::Result<Option<Fault>> {
        let mut state = self.state.lock().unwrap();
        if state.dead {
            return Err(io::Error::other("process is dead"));
        }
        if let Some(pos) = state.next.iter().position(|f| wanted.contains(f)) {
            let fault = state.next.remove(pos);
            if fault != Fault::DiskFull {
                state.dead = true;
            }
            return Ok(Some(fault));
        }
        Ok(None)
    }

    fn alive(&self) -> io::Result<()> {
        self.take(&[]).map(|_| ())
    }
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash")
}

impl SpoolFs for FaultyFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.alive()?;
        self.inner.create_dir_all(dir)
    }

    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        match self.take(&[Fault::DiskFull, Fault::CrashMidWrite])? {
            Some(Fault::DiskFull) => Err(io::Error::from_raw_os_error(28)), // ENOSPC
            Some(_) => {
                std::fs::write(path, &bytes[..bytes.len() / 2])?;
                Err(crashed())
            }
            None => self.inner.write_synced(path, bytes),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if self.take(&[Fault::CrashBeforeRename])?.is_some() {
            return Err(crashed());
        }
        self.inner.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.take(&[Fault::CrashAfterRename])?.is_some() {
            return Err(crashed());
        }
        self.inner.sync_dir(dir)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.alive()?;
        self.inner.read(path)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.alive()?;
        self.inner.remove(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        self.alive()?;
        self.inner.list(dir)
    }
}

pub const ROOMY: Limits = Limits {
    max_files: 1000,
    max_bytes: 64 << 20,
};

/// A state directory with a spool over `fs`.
pub fn spool_with(fs: Arc<dyn SpoolFs>, limits: Limits) -> (tempfile::TempDir, Spool) {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), limits, fs).unwrap();
    (dir, spool)
}

/// A snapshot body as the agent spools it: zstd JSON naming `id`.
pub fn body(id: Uuid, pad: usize) -> Vec<u8> {
    let json = serde_json::json!({"id": id, "pad": "x".repeat(pad)});
    zstd::encode_all(serde_json::to_vec(&json).unwrap().as_slice(), 3).unwrap()
}

/// Ids in the order taken.
pub fn ids(n: usize) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::now_v7()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "now_v7 must be monotonic within the process");
    ids
}

pub fn entry_ids(spool: &Spool) -> Vec<Uuid> {
    spool.entries().unwrap().iter().map(|e| e.id).collect()
}

/// Every file under `dir`, recursively, relative.
pub fn files_under(dir: &Path) -> HashSet<PathBuf> {
    let mut out = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}
