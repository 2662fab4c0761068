//! A host laid out in a directory (format: `docs/host-tree.md`): fixture trees, captures of real hosts,
//! trees handed over by air-gapped customers.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;

use super::{
    CommandOutput, DirEntry, FileData, FsUsage, HostSource, Metadata, command_key, not_found, tcp_key,
};

/// The folder, at the tree's root, that holds what is not a file of the host.
pub const META_DIR: &str = ".callhome";

#[derive(Debug)]
pub struct Tree {
    root: PathBuf,
    captured_at: OffsetDateTime,
    files: BTreeMap<String, Metadata>,
    statvfs: BTreeMap<String, FsUsage>,
    tcp: BTreeMap<String, TcpResult>,
}

/// `.callhome/capture.json`.
#[derive(Debug, Deserialize)]
struct CaptureInfo {
    #[serde(with = "time::serde::rfc3339")]
    captured_at: OffsetDateTime,
}

/// One entry of `.callhome/tcp.json`: the time a connect took, or why it failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `refused`, `timed_out`, `not_found` or `other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl Tree {
    /// Opens a tree; `.callhome/capture.json` must say when it was captured (the tree's "now").
    pub fn open(root: &Path) -> io::Result<Tree> {
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: not a directory", root.display()),
            ));
        }
        let meta = root.join(META_DIR);
        let capture: CaptureInfo = read_json(&meta.join("capture.json"))?.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a host tree (no {META_DIR}/capture.json)", root.display()),
            )
        })?;
        Ok(Tree {
            root: root.to_path_buf(),
            captured_at: capture.captured_at,
            files: read_json(&meta.join("files.json"))?.unwrap_or_default(),
            statvfs: read_json(&meta.join("statvfs.json"))?.unwrap_or_default(),
            tcp: read_json(&meta.join("tcp.json"))?.unwrap_or_default(),
        })
    }

    /// The tree path of a host path; refuses anything that could leave the tree.
    fn path(&self, host_path: &str) -> io::Result<PathBuf> {
        let rel = Path::new(host_path);
        let mut out = self.root.clone();
        for c in rel.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(part) => out.push(part),
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{host_path}: not a plain path"),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn real_metadata(&self, host_path: &str) -> io::Result<Metadata> {
        let meta = std::fs::metadata(self.path(host_path)?)?;
        let recorded = self.files.get(host_path);
        Ok(Metadata {
            len: recorded.map_or(meta.len(), |m| m.len),
            is_dir: meta.is_dir(),
            // Git keeps no modification times: a tree says them in files.json, else "at capture".
            modified: recorded.and_then(|m| m.modified).or(Some(self.captured_at)),
        })
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl HostSource for Tree {
    fn read_head(&self, path: &str, cap: u64) -> io::Result<FileData> {
        let file = std::fs::File::open(self.path(path)?)?;
        let len = self.real_metadata(path)?.len;
        let mut bytes = Vec::new();
        file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
        let truncated = bytes.len() as u64 > cap || len > cap;
        bytes.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
        Ok(FileData {
            len: len.max(bytes.len() as u64),
            bytes,
            truncated,
        })
    }

    fn read_tail(&self, path: &str, cap: u64) -> io::Result<FileData> {
        let mut file = std::fs::File::open(self.path(path)?)?;
        let on_disk = file.metadata()?.len();
        let len = self.real_metadata(path)?.len.max(on_disk);
        let start = on_disk.saturating_sub(cap);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.take(cap).read_to_end(&mut bytes)?;
        Ok(FileData {
            bytes,
            len,
            truncated: len > cap,
        })
    }

    fn list_dir(&self, path: &str) -> io::Result<Vec<DirEntry>> {
        let dir = self.path(path)?;
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if dir == self.root && name == META_DIR {
                continue;
            }
            let host_path = format!("{}/{name}", path.trim_end_matches('/'));
            let Ok(metadata) = self.real_metadata(&host_path) else {
                continue;
            };
            entries.push(DirEntry { name, metadata });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn metadata(&self, path: &str) -> io::Result<Metadata> {
        self.real_metadata(path)
    }

    fn run(&self, argv: &[&str], _timeout: Duration) -> io::Result<CommandOutput> {
        let dir = self.root.join(META_DIR).join("commands").join(command_key(argv));
        if !dir.is_dir() {
            return Err(not_found(argv.first().copied().unwrap_or("")));
        }
        let optional = |name: &str| match std::fs::read(dir.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
        if let Some(error) = optional("error")? {
            // A capture that could not run the command (timeout, permission) recorded why.
            let text = String::from_utf8_lossy(&error).trim().to_string();
            let kind = if text.contains("did not finish") {
                io::ErrorKind::TimedOut
            } else {
                io::ErrorKind::Other
            };
            return Err(io::Error::new(kind, text));
        }
        let status = match optional("status")? {
            None => Some(0),
            Some(s) => {
                let s = String::from_utf8_lossy(&s).trim().to_string();
                if s == "signal" {
                    None
                } else {
                    Some(s.parse().map_err(|_| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{}/status: `{s}` is not an exit code", dir.display()),
                        )
                    })?)
                }
            }
        };
        Ok(CommandOutput {
            status,
            stdout: optional("stdout")?.unwrap_or_default(),
            stderr: optional("stderr")?.unwrap_or_default(),
        })
    }

    fn statvfs(&self, mount_point: &str) -> io::Result<FsUsage> {
        self.statvfs
            .get(mount_point)
            .copied()
            .ok_or_else(|| not_found(&format!("statvfs {mount_point}")))
    }

    fn tcp_connect(&self, host: &str, port: u16, _timeout: Duration) -> io::Result<Duration> {
        let key = tcp_key(host, port);
        let result = self.tcp.get(&key).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{key}: no connect result in the tree"),
            )
        })?;
        match (&result.ms, &result.error) {
            (Some(ms), None) => Ok(Duration::from_millis(*ms)),
            (_, error) => {
                let kind = match result.kind.as_deref() {
                    Some("refused") => io::ErrorKind::ConnectionRefused,
                    Some("timed_out") => io::ErrorKind::TimedOut,
                    Some("not_found") => io::ErrorKind::NotFound,
                    _ => io::ErrorKind::Other,
                };
                Err(io::Error::new(
                    kind,
                    error.clone().unwrap_or_else(|| "connect failed".into()),
                ))
            }
        }
    }

    fn now(&self) -> OffsetDateTime {
        self.captured_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, Tree) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let meta = root.join(META_DIR);
        std::fs::create_dir_all(meta.join("commands/rpm+-q+XenDesktopVDA")).unwrap();
        std::fs::write(
            meta.join("capture.json"),
            r#"{"captured_at": "2026-11-01T10:00:00Z"}"#,
        )
        .unwrap();
        std::fs::write(
            meta.join("commands/rpm+-q+XenDesktopVDA/stdout"),
            "XenDesktopVDA-2411.0.0-1.el9_x\n",
        )
        .unwrap();
        std::fs::create_dir_all(meta.join("commands/false")).unwrap();
        std::fs::write(meta.join("commands/false/status"), "1\n").unwrap();
        std::fs::write(meta.join("statvfs.json"), r#"{"/": {"block_size": 4096, "blocks": 100, "blocks_available": 3, "files": 10, "files_free": 5}}"#).unwrap();
        std::fs::write(
            meta.join("tcp.json"),
            r#"{"ddc1:80": {"ms": 4}, "ddc2:80": {"error": "connection refused", "kind": "refused"}}"#,
        )
        .unwrap();
        std::fs::write(
            meta.join("files.json"),
            r#"{"/var/log/xdl/vda.log": {"len": 5000000, "is_dir": false, "modified": "2026-10-31T09:00:00Z"}}"#,
        )
        .unwrap();
        std::fs::create_dir_all(root.join("var/log/xdl")).unwrap();
        std::fs::write(root.join("var/log/xdl/vda.log"), "line one\nline two\n").unwrap();
        std::fs::write(root.join("var/log/xdl/jproxy.log"), "x\n").unwrap();
        let tree = Tree::open(root).unwrap();
        (dir, tree)
    }

    #[test]
    fn files_commands_and_recorded_facts_come_from_the_tree() {
        let (_dir, t) = tree();
        assert_eq!(t.now().to_string(), "2026-11-01 10:00:00.0 +00:00:00");
        let out = t
            .run(&["rpm", "-q", "XenDesktopVDA"], Duration::from_secs(1))
            .unwrap();
        assert!(out.success() && out.stdout_text().starts_with("XenDesktopVDA-2411"));
        assert_eq!(t.run(&["false"], Duration::from_secs(1)).unwrap().status, Some(1));
        assert_eq!(
            t.run(&["dpkg-query"], Duration::from_secs(1)).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(t.statvfs("/").unwrap().blocks_available, 3);
        assert_eq!(
            t.tcp_connect("ddc1", 80, Duration::from_secs(1)).unwrap(),
            Duration::from_millis(4)
        );
        assert_eq!(
            t.tcp_connect("ddc2", 80, Duration::from_secs(1))
                .unwrap_err()
                .kind(),
            io::ErrorKind::ConnectionRefused
        );
    }

    #[test]
    fn recorded_length_and_time_override_what_git_keeps() {
        let (_dir, t) = tree();
        let tail = t.read_tail("/var/log/xdl/vda.log", 9).unwrap();
        assert_eq!(
            (tail.text().as_str(), tail.len, tail.truncated),
            ("line two\n", 5_000_000, true)
        );
        let listing = t.list_dir("/var/log/xdl").unwrap();
        let names: Vec<_> = listing.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["jproxy.log", "vda.log"]);
        assert_eq!(
            listing[1].metadata.modified.unwrap().to_string(),
            "2026-10-31 9:00:00.0 +00:00:00"
        );
        assert_eq!(listing[0].metadata.modified, Some(t.now()));
        assert!(t.list_dir("/").unwrap().iter().all(|e| e.name != META_DIR));
    }

    #[test]
    fn paths_cannot_leave_the_tree() {
        let (_dir, t) = tree();
        assert_eq!(
            t.read_head("/../../etc/passwd", 10).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn a_directory_without_capture_json_is_not_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Tree::open(dir.path())
                .unwrap_err()
                .to_string()
                .contains("capture.json")
        );
    }
}
