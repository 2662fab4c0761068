//! Where probes get their raw input: the spec layer of insights-core. Probes read files, run commands,
//! ask for filesystem usage and try TCP connects only through [`HostSource`], which has three
//! implementations:
//!
//! - [`Live`]: this machine (real files, real commands under a timeout).
//! - [`Tree`]: a directory laid out like `/`, with command outputs and the other non-file facts under
//!   `.callhome/` (format: `docs/host-tree.md`). `--root DIR` selects it; fixtures under
//!   `tests/fixtures/hosts/` are trees.
//! - [`Recorder`]: wraps another source and remembers every answer, so that `capture` can write the
//!   tree that reproduces exactly what the probes saw.
//!
//! Paths are absolute host paths (`/etc/krb5.conf`), whichever the source. A source never interprets
//! what it reads: parsing is the probes' job.

mod live;
mod record;
mod tree;

use std::io;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub use live::Live;
pub use record::Recorder;
pub use tree::{META_DIR, Tree};

/// Largest command output kept (stdout and stderr each); the rest is cut and `truncated` set.
pub const MAX_COMMAND_OUTPUT: usize = 1 << 20;

/// Raw facts about a host.
pub trait HostSource: Send + Sync + std::fmt::Debug {
    /// The first `cap` bytes of a file.
    fn read_head(&self, path: &str, cap: u64) -> io::Result<FileData>;
    /// The last `cap` bytes of a file (log tails: never a 200 MiB file whole).
    fn read_tail(&self, path: &str, cap: u64) -> io::Result<FileData>;
    /// The entries of a directory, sorted by name.
    fn list_dir(&self, path: &str) -> io::Result<Vec<DirEntry>>;
    /// Size, kind and modification time of a path (following symlinks).
    fn metadata(&self, path: &str) -> io::Result<Metadata>;
    /// Runs `argv` (program and arguments, no shell) with `LC_ALL=C` and stops it at `timeout`.
    /// A program that is not installed is an error of kind `NotFound`.
    fn run(&self, argv: &[&str], timeout: Duration) -> io::Result<CommandOutput>;
    /// Space and inodes of the filesystem mounted at `mount_point` (statvfs(3)).
    fn statvfs(&self, mount_point: &str) -> io::Result<FsUsage>;
    /// Opens (and closes) a TCP connection to `host:port`; the time it took.
    fn tcp_connect(&self, host: &str, port: u16, timeout: Duration) -> io::Result<Duration>;
    /// The current time on this host; a tree's capture time, so that fixtures never age.
    fn now(&self) -> OffsetDateTime;
    /// Whether this is the live host (some facts, like the agent's own, only make sense there).
    fn is_live(&self) -> bool {
        false
    }
    /// Whether a probe may answer from a result it cached in the agent's state directory instead of
    /// asking the host again. Only the live host: a tree answers from its files alone, and a
    /// [`Recorder`] (which keeps this default) must see every read to write a faithful tree.
    fn may_use_cache(&self) -> bool {
        false
    }
}

impl<T: HostSource + ?Sized> HostSource for std::sync::Arc<T> {
    fn read_head(&self, path: &str, cap: u64) -> io::Result<FileData> {
        (**self).read_head(path, cap)
    }
    fn read_tail(&self, path: &str, cap: u64) -> io::Result<FileData> {
        (**self).read_tail(path, cap)
    }
    fn list_dir(&self, path: &str) -> io::Result<Vec<DirEntry>> {
        (**self).list_dir(path)
    }
    fn metadata(&self, path: &str) -> io::Result<Metadata> {
        (**self).metadata(path)
    }
    fn run(&self, argv: &[&str], timeout: Duration) -> io::Result<CommandOutput> {
        (**self).run(argv, timeout)
    }
    fn statvfs(&self, mount_point: &str) -> io::Result<FsUsage> {
        (**self).statvfs(mount_point)
    }
    fn tcp_connect(&self, host: &str, port: u16, timeout: Duration) -> io::Result<Duration> {
        (**self).tcp_connect(host, port, timeout)
    }
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
    fn is_live(&self) -> bool {
        (**self).is_live()
    }
    fn may_use_cache(&self) -> bool {
        (**self).may_use_cache()
    }
}

/// Bytes read from a file, and whether the file held more than that.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileData {
    pub bytes: Vec<u8>,
    /// The file's length when read.
    pub len: u64,
    /// The file held more than `bytes`: the cap cut it.
    pub truncated: bool,
}

impl FileData {
    /// The bytes as text; invalid UTF-8 becomes U+FFFD.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub len: u64,
    pub is_dir: bool,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub modified: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommandOutput {
    /// Exit code; `None` when a signal ended it.
    pub status: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// statvfs(3) figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsUsage {
    /// Fragment size (`f_frsize`): the unit of the block counts.
    pub block_size: u64,
    pub blocks: u64,
    /// Blocks available to unprivileged users (`f_bavail`).
    pub blocks_available: u64,
    pub files: u64,
    pub files_free: u64,
}

/// The directory name under `.callhome/commands/` of a command line: each argument with every byte
/// outside `[A-Za-z0-9._-]` written `%XX`, the arguments joined by `+` (so `rpm -q XenDesktopVDA` is
/// `rpm+-q+XenDesktopVDA`). Unambiguous, and portable to any filesystem.
pub fn command_key(argv: &[&str]) -> String {
    let mut key = String::new();
    for (i, arg) in argv.iter().enumerate() {
        if i > 0 {
            key.push('+');
        }
        for b in arg.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
                key.push(char::from(b));
            } else {
                key.push_str(&format!("%{b:02X}"));
            }
        }
    }
    key
}

/// The key of a TCP connect in `.callhome/tcp.json`.
pub fn tcp_key(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

/// The error a source returns for an absent file or program.
pub(crate) fn not_found(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{what}: not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_keys_are_readable_and_unambiguous() {
        assert_eq!(
            command_key(&["rpm", "-q", "XenDesktopVDA"]),
            "rpm+-q+XenDesktopVDA"
        );
        assert_eq!(
            command_key(&["/opt/Citrix/VDA/bin/ctxreg", "read"]),
            "%2Fopt%2FCitrix%2FVDA%2Fbin%2Fctxreg+read"
        );
        assert_ne!(command_key(&["a b"]), command_key(&["a", "b"]));
        assert_eq!(command_key(&["x%y+z"]), "x%25y%2Bz");
    }
}
