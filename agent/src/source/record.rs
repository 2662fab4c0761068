//! `capture`: a source that remembers every answer of another, and writes them as a host tree that
//! reproduces exactly what the probes saw (format: `docs/host-tree.md`).

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::tree::TcpResult;
use super::{
    CommandOutput, DirEntry, FileData, FsUsage, HostSource, META_DIR, Metadata, command_key, tcp_key,
};

#[derive(Debug)]
pub struct Recorder<S> {
    inner: S,
    started: OffsetDateTime,
    log: Mutex<Log>,
}

#[derive(Debug, Default)]
struct Log {
    /// Content read, per path: the longest read wins (head and tail reads of one file are rare).
    contents: BTreeMap<String, Vec<u8>>,
    metadata: BTreeMap<String, Metadata>,
    commands: BTreeMap<String, Result<CommandOutput, String>>,
    statvfs: BTreeMap<String, FsUsage>,
    tcp: BTreeMap<String, TcpResult>,
}

impl<S: HostSource> Recorder<S> {
    pub fn new(inner: S) -> Recorder<S> {
        let started = inner.now();
        Recorder {
            inner,
            started,
            log: Mutex::new(Log::default()),
        }
    }

    fn with_log(&self, f: impl FnOnce(&mut Log)) {
        // A poisoned lock means a probe panicked mid-record; what was recorded is still good.
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut log);
    }

    fn record_file(&self, path: &str, data: &FileData) {
        let meta = self.inner.metadata(path).ok();
        self.with_log(|log| {
            let slot = log.contents.entry(path.to_string()).or_default();
            if data.bytes.len() >= slot.len() {
                *slot = data.bytes.clone();
            }
            if let Some(meta) = meta {
                log.metadata.insert(path.to_string(), meta);
            }
        });
    }

    /// Writes the tree into `out` (which must be empty or absent). Returns how many files, commands
    /// and other facts it holds.
    pub fn write_tree(&self, out: &Path) -> io::Result<CaptureSummary> {
        if out.exists() && std::fs::read_dir(out)?.next().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{}: not empty; capture writes into a new or empty directory",
                    out.display()
                ),
            ));
        }
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let meta_dir = out.join(META_DIR);
        std::fs::create_dir_all(meta_dir.join("commands"))?;
        let host = |p: &str| out.join(p.trim_start_matches('/'));

        for (path, meta) in &log.metadata {
            if meta.is_dir {
                std::fs::create_dir_all(host(path))?;
            }
        }
        for (path, meta) in &log.metadata {
            if !meta.is_dir && !log.contents.contains_key(path) {
                // Known only by its size and time (a directory listing): an empty stand-in, with the
                // real figures in files.json.
                write_file(&host(path), b"")?;
            }
        }
        for (path, bytes) in &log.contents {
            write_file(&host(path), bytes)?;
        }
        for (key, result) in &log.commands {
            let dir = meta_dir.join("commands").join(key);
            std::fs::create_dir_all(&dir)?;
            match result {
                Ok(output) => {
                    write_file(&dir.join("stdout"), &output.stdout)?;
                    if !output.stderr.is_empty() {
                        write_file(&dir.join("stderr"), &output.stderr)?;
                    }
                    if output.status != Some(0) {
                        let status = output.status.map_or("signal".to_string(), |s| s.to_string());
                        write_file(&dir.join("status"), format!("{status}\n").as_bytes())?;
                    }
                }
                Err(error) => write_file(&dir.join("error"), format!("{error}\n").as_bytes())?,
            }
        }
        let files: BTreeMap<&String, &Metadata> = log.metadata.iter().filter(|(_, m)| !m.is_dir).collect();
        write_json(&meta_dir.join("files.json"), &files)?;
        write_json(&meta_dir.join("statvfs.json"), &log.statvfs)?;
        write_json(&meta_dir.join("tcp.json"), &log.tcp)?;
        #[derive(Serialize)]
        struct Capture<'a> {
            #[serde(with = "time::serde::rfc3339")]
            captured_at: OffsetDateTime,
            agent_version: &'a str,
        }
        write_json(
            &meta_dir.join("capture.json"),
            &Capture {
                captured_at: self.started,
                agent_version: crate::AGENT_VERSION,
            },
        )?;
        Ok(CaptureSummary {
            files: log.contents.len() + files.len(),
            commands: log.commands.len(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureSummary {
    pub files: usize,
    pub commands: usize,
}

fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes)
}

fn write_json(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    text.push('\n');
    write_file(path, text.as_bytes())
}

impl<S: HostSource> HostSource for Recorder<S> {
    fn read_head(&self, path: &str, cap: u64) -> io::Result<FileData> {
        let data = self.inner.read_head(path, cap)?;
        self.record_file(path, &data);
        Ok(data)
    }

    fn read_tail(&self, path: &str, cap: u64) -> io::Result<FileData> {
        let data = self.inner.read_tail(path, cap)?;
        self.record_file(path, &data);
        Ok(data)
    }

    fn list_dir(&self, path: &str) -> io::Result<Vec<DirEntry>> {
        let entries = self.inner.list_dir(path)?;
        self.with_log(|log| {
            let base = path.trim_end_matches('/');
            log.metadata.insert(
                path.to_string(),
                Metadata {
                    len: 0,
                    is_dir: true,
                    modified: None,
                },
            );
            for e in &entries {
                log.metadata
                    .insert(format!("{base}/{}", e.name), e.metadata.clone());
            }
        });
        Ok(entries)
    }

    fn metadata(&self, path: &str) -> io::Result<Metadata> {
        let meta = self.inner.metadata(path)?;
        self.with_log(|log| {
            log.metadata.insert(path.to_string(), meta.clone());
        });
        Ok(meta)
    }

    fn run(&self, argv: &[&str], timeout: Duration) -> io::Result<CommandOutput> {
        let result = self.inner.run(argv, timeout);
        // A program that is not installed is recorded by its absence from the tree.
        let not_installed = matches!(&result, Err(e) if e.kind() == io::ErrorKind::NotFound);
        if !not_installed {
            let recorded = result.as_ref().map(Clone::clone).map_err(ToString::to_string);
            self.with_log(|log| {
                log.commands.insert(command_key(argv), recorded);
            });
        }
        result
    }

    fn statvfs(&self, mount_point: &str) -> io::Result<FsUsage> {
        let usage = self.inner.statvfs(mount_point)?;
        self.with_log(|log| {
            log.statvfs.insert(mount_point.to_string(), usage);
        });
        Ok(usage)
    }

    fn tcp_connect(&self, host: &str, port: u16, timeout: Duration) -> io::Result<Duration> {
        let result = self.inner.tcp_connect(host, port, timeout);
        let recorded = match &result {
            Ok(took) => TcpResult {
                ms: Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX)),
                error: None,
                kind: None,
            },
            Err(e) => TcpResult {
                ms: None,
                error: Some(e.to_string()),
                kind: Some(
                    match e.kind() {
                        io::ErrorKind::ConnectionRefused => "refused",
                        io::ErrorKind::TimedOut => "timed_out",
                        io::ErrorKind::NotFound => "not_found",
                        _ => "other",
                    }
                    .to_string(),
                ),
            },
        };
        self.with_log(|log| {
            log.tcp.insert(tcp_key(host, port), recorded);
        });
        result
    }

    fn now(&self) -> OffsetDateTime {
        self.started
    }

    fn is_live(&self) -> bool {
        self.inner.is_live()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Live, Tree};
    use super::*;

    #[test]
    fn a_recorded_session_replays_identically_from_its_tree() {
        let src = tempfile::tempdir().unwrap();
        let log = src.path().join("app.log");
        std::fs::write(&log, "a\nb\nc\n").unwrap();
        let log = log.to_str().unwrap();
        let rec = Recorder::new(Live);
        let head = rec.read_head(log, 100).unwrap();
        let tail = rec.read_tail(log, 2).unwrap();
        let out = rec
            .run(&["sh", "-c", "echo out; exit 2"], Duration::from_secs(5))
            .unwrap();
        assert!(rec.run(&["/nonexistent/tool"], Duration::from_secs(1)).is_err());
        let usage = rec.statvfs("/").unwrap();
        let listing = rec.list_dir(src.path().to_str().unwrap()).unwrap();

        let out_dir = tempfile::tempdir().unwrap();
        let tree_dir = out_dir.path().join("tree");
        rec.write_tree(&tree_dir).unwrap();
        let tree = Tree::open(&tree_dir).unwrap();
        assert_eq!(tree.read_head(log, 100).unwrap(), head);
        assert_eq!(tree.read_tail(log, 2).unwrap().bytes, tail.bytes);
        assert_eq!(
            tree.run(&["sh", "-c", "echo out; exit 2"], Duration::from_secs(1))
                .unwrap(),
            out
        );
        assert_eq!(
            tree.run(&["/nonexistent/tool"], Duration::from_secs(1))
                .unwrap_err()
                .kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(tree.statvfs("/").unwrap(), usage);
        let replayed = tree.list_dir(src.path().to_str().unwrap()).unwrap();
        assert_eq!(replayed, listing);
        assert_eq!(tree.now(), rec.now());
        assert!(
            rec.write_tree(&tree_dir).is_err(),
            "capture must not write into a non-empty directory"
        );
    }
}
