//! The live host: real files, real commands under a timeout, statvfs, real TCP connects.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::{CommandOutput, DirEntry, FileData, FsUsage, HostSource, MAX_COMMAND_OUTPUT, Metadata};

#[derive(Debug, Default, Clone, Copy)]
pub struct Live;

impl HostSource for Live {
    fn read_head(&self, path: &str, cap: u64) -> io::Result<FileData> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let mut bytes = Vec::new();
        // /proc files report length 0: read up to the cap whatever the metadata says.
        file.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
        let truncated = bytes.len() as u64 > cap;
        bytes.truncate(usize::try_from(cap).unwrap_or(usize::MAX));
        Ok(FileData {
            len: len.max(bytes.len() as u64),
            bytes,
            truncated,
        })
    }

    fn read_tail(&self, path: &str, cap: u64) -> io::Result<FileData> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        if len <= cap {
            // Small, or a /proc file whose length is unknown: same as reading the head.
            return self.read_head(path, cap);
        }
        file.seek(SeekFrom::Start(len - cap))?;
        let mut bytes = Vec::new();
        file.take(cap).read_to_end(&mut bytes)?;
        Ok(FileData {
            bytes,
            len,
            truncated: true,
        })
    }

    fn list_dir(&self, path: &str) -> io::Result<Vec<DirEntry>> {
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Follow symlinks; an entry that vanished or dangles is skipped, not fatal.
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            entries.push(DirEntry {
                name,
                metadata: metadata_of(&meta),
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    fn metadata(&self, path: &str) -> io::Result<Metadata> {
        Ok(metadata_of(&std::fs::metadata(path)?))
    }

    fn run(&self, argv: &[&str], timeout: Duration) -> io::Result<CommandOutput> {
        run_command(argv, timeout)
    }

    fn statvfs(&self, mount_point: &str) -> io::Result<FsUsage> {
        let st = rustix::fs::statvfs(mount_point).map_err(io::Error::from)?;
        Ok(FsUsage {
            block_size: st.f_frsize,
            blocks: st.f_blocks,
            blocks_available: st.f_bavail,
            files: st.f_files,
            files_free: st.f_ffree,
        })
    }

    fn tcp_connect(&self, host: &str, port: u16, timeout: Duration) -> io::Result<Duration> {
        let started = Instant::now();
        let addrs: Vec<_> = (host, port).to_socket_addrs()?.collect();
        let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host}: no address"));
        for addr in addrs {
            let left = timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(_stream) => return Ok(started.elapsed()),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn is_live(&self) -> bool {
        true
    }

    fn may_use_cache(&self) -> bool {
        true
    }
}

fn metadata_of(meta: &std::fs::Metadata) -> Metadata {
    Metadata {
        len: meta.len(),
        is_dir: meta.is_dir(),
        modified: meta.modified().ok().map(OffsetDateTime::from),
    }
}

/// Runs a program with `LC_ALL=C` (stable, parseable output), no stdin, output capped, stopped at
/// `timeout`.
fn run_command(argv: &[&str], timeout: Duration) -> io::Result<CommandOutput> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command line"))?;
    let mut child = Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .map(|s| std::thread::spawn(move || read_capped(s)));
    let stderr = child
        .stderr
        .take()
        .map(|s| std::thread::spawn(move || read_capped(s)));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{program} did not finish within {} ms", timeout.as_millis()),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let join =
        |h: Option<std::thread::JoinHandle<Vec<u8>>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(CommandOutput {
        status: status.code(),
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

/// Reads a pipe to its end, keeping the first [`MAX_COMMAND_OUTPUT`] bytes: the rest is drained so
/// the child never blocks on a full pipe.
fn read_capped(mut pipe: impl Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_COMMAND_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_head_and_tail_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"0123456789").unwrap();
        let path = path.to_str().unwrap();
        let head = Live.read_head(path, 4).unwrap();
        assert_eq!(
            (head.bytes.as_slice(), head.len, head.truncated),
            (&b"0123"[..], 10, true)
        );
        let tail = Live.read_tail(path, 4).unwrap();
        assert_eq!(
            (tail.bytes.as_slice(), tail.len, tail.truncated),
            (&b"6789"[..], 10, true)
        );
        let whole = Live.read_tail(path, 100).unwrap();
        assert_eq!((whole.bytes.len(), whole.truncated), (10, false));
    }

    #[test]
    fn proc_files_are_read_despite_their_zero_length() {
        let data = Live.read_head("/proc/self/status", 1 << 16).unwrap();
        assert!(data.text().contains("Name:"));
    }

    #[test]
    fn commands_run_with_output_status_and_timeout() {
        let out = Live
            .run(
                &["sh", "-c", "echo hi; echo err >&2; exit 3"],
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(
            (out.stdout_text().as_str(), out.stderr_text().as_str(), out.status),
            ("hi\n", "err\n", Some(3))
        );
        let slow = Live.run(&["sleep", "5"], Duration::from_millis(50)).unwrap_err();
        assert_eq!(slow.kind(), io::ErrorKind::TimedOut);
        let missing = Live
            .run(&["/nonexistent/ctxreg"], Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn tcp_connect_to_a_loopback_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(
            Live.tcp_connect("127.0.0.1", port, Duration::from_secs(2))
                .is_ok()
        );
        drop(listener);
        assert!(
            Live.tcp_connect("127.0.0.1", port, Duration::from_secs(2))
                .is_err()
        );
    }
}
