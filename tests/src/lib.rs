//! Harness for the end-to-end tests: starts the real `callhome-collector` and `callhome-agent` binaries
//! in temporary directories, on loopback, with real TLS and a real SQLite file, and prints their logs
//! when a test fails (ripgrep's `tests/util.rs` is the model).
//!
//! The binaries are the ones `cargo test` builds into the target directory (`target/debug/`); the
//! agent and collector crates have integration tests of their own, which makes cargo build both before
//! any test runs. `CALLHOME_BIN_DIR` overrides the directory, e.g. to test installed packages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tempfile::TempDir;

pub mod webdriver;

/// Path of one of the workspace's binaries.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("CALLHOME_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            // target/debug/deps/e2e-HASH -> target/debug
            let exe = std::env::current_exe().unwrap();
            exe.parent().and_then(Path::parent).unwrap().to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not found: run the suite with `cargo test` from the workspace root (it builds the binaries), \
         or `cargo build --workspace` first",
        path.display()
    );
    path
}

/// Runs a command to completion and describes it fully when it did not do what the test expected.
pub fn describe(cmd: &Command, out: &Output) -> String {
    format!(
        "command: {cmd:?}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(mut cmd: Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if std::env::var_os("CALLHOME_E2E_VERBOSE").is_some() {
        eprintln!("{}", describe(&cmd, &out));
    }
    out
}

/// Runs and requires success; returns stdout.
pub fn run_ok(cmd: Command) -> String {
    let desc = format!("{cmd:?}");
    let out = run(cmd);
    assert!(
        out.status.success(),
        "expected success\n{}",
        describe_str(&desc, &out)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn describe_str(cmd: &str, out: &Output) -> String {
    format!(
        "command: {cmd}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A collector process on a loopback port with its own data directory.
#[derive(Debug)]
pub struct Collector {
    pub dir: TempDir,
    pub addr: SocketAddr,
    child: Option<Child>,
    log: PathBuf,
    extra_config: Option<String>,
}

impl Collector {
    /// A data directory with one org (`ACME`, Priority Plus, active), one environment (`prod`), and a
    /// running server.
    pub fn start_with_demo_org() -> Collector {
        let c = Collector::new(None);
        c.seed_org("ACME", "2026-01-01", "2027-12-31");
        c.env_add("ACME", "prod");
        c.start()
    }

    /// A data directory, not yet serving. `config` is TOML written to `DIR/collector.toml` and passed
    /// with `--config`.
    pub fn new(config: Option<&str>) -> Collector {
        let dir = tempfile::Builder::new()
            .prefix("callhome-e2e-")
            .tempdir()
            .unwrap();
        let log = dir.path().join("collector.log");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        Collector {
            dir,
            addr,
            child: None,
            log,
            extra_config: config.map(str::to_owned),
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(bin("callhome-collector"));
        cmd.arg("--data-dir").arg(self.dir.path());
        if let Some(config) = &self.extra_config {
            let path = self.dir.path().join("collector.toml");
            std::fs::write(&path, config).unwrap();
            cmd.arg("--config").arg(path);
        }
        cmd.env("CALLHOME_LOG", "debug");
        cmd
    }

    /// An admin command against the data directory; panics with its output when it fails.
    pub fn admin(&self, args: &[&str]) -> String {
        let mut cmd = self.command();
        cmd.args(args);
        run_ok(cmd)
    }

    /// An admin command with `stdin` piped in (a password); panics with its output when it fails.
    pub fn admin_with_stdin(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut cmd = self.command();
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", describe(&cmd, &out));
        String::from_utf8(out.stdout).unwrap()
    }

    /// An admin command whose failure the test wants to look at.
    pub fn admin_output(&self, args: &[&str]) -> Output {
        let mut cmd = self.command();
        cmd.args(args);
        run(cmd)
    }

    pub fn seed_org(&self, org: &str, start: &str, end: &str) {
        self.admin(&["org", "add", org, "--name", &format!("{org} Corp")]);
        self.admin(&[
            "contract",
            "add",
            org,
            "--product",
            "cvad",
            "--tier",
            "priority-plus",
            "--start",
            start,
            "--end",
            end,
        ]);
    }

    pub fn env_add(&self, org: &str, env: &str) {
        self.admin(&["env", "add", org, env]);
    }

    pub fn issue_token(&self, org: &str, env: &str) -> String {
        let out = self.admin(&["token", "issue", org, env]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "token issue must print the token alone: {out:?}");
        lines[0].to_string()
    }

    pub fn hosts(&self) -> Vec<serde_json::Value> {
        let out = self.admin(&["host", "list", "--json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("host list --json: {e}: {out}"))
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("tls/cert.pem")
    }

    /// Starts `serve` and waits until `/healthz` answers 200 over HTTPS.
    pub fn start(mut self) -> Collector {
        self.spawn();
        self
    }

    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "collector already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = self.command();
        cmd.args(["serve", "--listen", &self.addr.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(cmd.spawn().unwrap());
        self.wait_healthy();
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let rt = runtime();
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!(
                    "collector exited with {status} before it was healthy\n{}",
                    self.log_text()
                );
            }
            if self.cert_path().exists() {
                let url = format!("{}/healthz", self.url());
                let cert = self.cert_path();
                let healthy = rt.block_on(async {
                    let resp = https_client(&cert).get(&url).send().await;
                    resp.is_ok_and(|r| r.status() == 200)
                });
                if healthy {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "collector not healthy after 30 s\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGKILL: the store must not depend on a clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("collector running").id()
    }

    /// Sends SIGTERM (through `kill(1)`: the harness has no unsafe code) and returns at once.
    pub fn signal_term(&self) {
        let pid = self.pid().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid}: {status}");
    }

    /// Whether `serve` is still running (false once it exited; its status is then gone).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait().unwrap()) {
            Some(None) => true,
            Some(Some(_)) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Waits up to `timeout` for `serve` to exit; `None` when it is still running (it stays owned, and
    /// is killed on drop).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status; panics (with the log) when it does not stop within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> std::process::ExitStatus {
        self.signal_term();
        match self.wait_exit(timeout) {
            Some(status) => status,
            None => panic!(
                "collector still running {timeout:?} after SIGTERM\n{}",
                self.log_text()
            ),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "--- collector log ({})\n{}",
                self.dir.path().display(),
                self.log_text()
            );
        }
    }
}

/// An agent with its own config file and state directory.
#[derive(Debug)]
pub struct Agent {
    pub dir: TempDir,
}

impl Agent {
    pub fn new() -> Agent {
        Agent::with_config("")
    }

    /// `extra` is appended to a config that sets `state_dir` (and nothing else).
    pub fn with_config(extra: &str) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("callhome-agent-")
            .tempdir()
            .unwrap();
        let state = dir.path().join("state");
        let config = format!("state_dir = {:?}\n{extra}", state.display().to_string());
        std::fs::write(dir.path().join("agent.toml"), config).unwrap();
        Agent { dir }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("callhome-agent"));
        cmd.arg("--config")
            .arg(self.dir.path().join("agent.toml"))
            .args(args);
        cmd.env("CALLHOME_LOG", "debug");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        run(self.command(args))
    }

    pub fn run_ok(&self, args: &[&str]) -> String {
        run_ok(self.command(args))
    }

    pub fn enroll(&self, collector: &Collector, token: &str) -> String {
        let cert = collector.cert_path();
        self.run_ok(&[
            "enroll",
            "--collector",
            &collector.url(),
            "--token",
            token,
            "--ca",
            cert.to_str().unwrap(),
        ])
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The credential the agent saved at enrollment.
    pub fn credential(&self) -> String {
        let path = self.state_dir().join("enrollment.json");
        let text = std::fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["credential"]
            .as_str()
            .expect("credential in enrollment.json")
            .to_string()
    }

    pub fn collect(&self) -> serde_json::Value {
        let out = self.run_ok(&["collect"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("collect printed no JSON: {e}\n{out}"))
    }
}

impl Default for Agent {
    fn default() -> Self {
        Agent::new()
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An HTTPS client that trusts exactly `ca` (PEM), on rustls with ring, as the agent is.
pub fn https_client(ca: &Path) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .https_only(true)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// What a raw request got back.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

/// POSTs `body` to `path` as an agent would, with optional credential and content encoding.
pub fn post(
    collector: &Collector,
    path: &str,
    credential: Option<&str>,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> Reply {
    let cert = collector.cert_path();
    let url = format!("{}{path}", collector.url());
    runtime().block_on(async move {
        // reqwest's client needs a runtime to be built in.
        let mut req = https_client(&cert)
            .post(url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(c) = credential {
            req = req.bearer_auth(c);
        }
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
        Reply {
            status,
            headers,
            body,
        }
    })
}

/// Peak resident memory of a process in bytes (`VmHWM` in `/proc/PID/status`).
pub fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// A rustls client configuration that trusts exactly `ca` (PEM), on ring.
pub fn tls_client_config(ca: &Path) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// One HTTPS connection driven byte by byte (blocking), for what a client library hides: a request
/// whose body arrives later, a connection opened before a shutdown and used after it.
#[derive(Debug)]
pub struct RawHttps {
    stream: rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>,
}

/// What a [`RawHttps`] request got back.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    /// Names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl RawHttps {
    /// Connects and completes the TLS handshake; no request is sent yet.
    pub fn connect(collector: &Collector) -> RawHttps {
        let mut tcp = std::net::TcpStream::connect(collector.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let config = std::sync::Arc::new(tls_client_config(&collector.cert_path()));
        let name = rustls::pki_types::ServerName::from(collector.addr.ip());
        let mut conn = rustls::ClientConnection::new(config, name).unwrap();
        while conn.is_handshaking() {
            conn.complete_io(&mut tcp).unwrap();
        }
        RawHttps {
            stream: rustls::StreamOwned::new(conn, tcp),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// The head of `POST /v1/snapshots` with a JSON body of `content_length` bytes to follow.
    pub fn snapshot_head(credential: &str, content_length: usize) -> String {
        format!(
            "POST /v1/snapshots HTTP/1.1\r\nhost: collector\r\nauthorization: Bearer {credential}\r\n\
             content-type: application/json\r\ncontent-length: {content_length}\r\n\r\n"
        )
    }

    /// Reads one response (the collector always sends `content-length`).
    pub fn read_reply(&mut self) -> RawReply {
        use std::io::Read;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(
                n > 0,
                "connection closed before a complete response head: {buf:?}"
            );
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line: {head:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("no content-length: {head:?}"));
        let mut body = buf[head_end..].to_vec();
        while body.len() < length {
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "connection closed inside the body");
            body.extend_from_slice(&chunk[..n]);
        }
        let body = serde_json::from_slice(&body)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into_owned()));
        RawReply {
            status,
            headers,
            body,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Delivery: the daemon, the collector's stored ids, a fake collector and a CONNECT proxy.
// ---------------------------------------------------------------------------------------------

/// Agent config for the delivery tests: a snapshot every second, no splay, a short backoff, and no
/// `updates` probe (its package-manager query can take a second here, longer than the schedule).
pub const FAST_SCHEDULE: &str = r#"
[collector]
timeout_secs = 5
[schedule]
cron = "* * * * * *"
splay_secs = 0
[retry]
base_ms = 50
cap_secs = 1
max_elapsed_secs = 600
[probes.updates]
enabled = false
"#;

impl Collector {
    /// Ids of the stored snapshots in the order they were inserted (SQLite rowid order: the ids are
    /// a `TEXT PRIMARY KEY` of a rowid table, so the rowid grows with every insert), read from the
    /// database file directly, read-only.
    pub fn stored_ids(&self) -> Vec<String> {
        self.stored_snapshots().into_iter().map(|(id, _)| id).collect()
    }

    /// Stored snapshots (id, JSON body) in insertion order.
    pub fn stored_snapshots(&self) -> Vec<(String, serde_json::Value)> {
        let path = self.dir.path().join("callhome.db");
        if !path.exists() {
            return Vec::new();
        }
        let conn = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, body FROM snapshots ORDER BY rowid")
            .unwrap();
        stmt.query_map([], |row| {
            let id: String = row.get(0)?;
            let body: Vec<u8> = row.get(1)?;
            Ok((id, body))
        })
        .unwrap()
        .map(|r| {
            let (id, body) = r.unwrap();
            let json = zstd::decode_all(body.as_slice()).unwrap();
            (id, serde_json::from_slice(&json).unwrap())
        })
        .collect()
    }
}

/// Sends a signal with kill(1): the tests need SIGTERM and SIGKILL without unsafe code.
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// A running `callhome-agent run`, logging to a file.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    pub log: PathBuf,
}

/// One `cycle` line of the daemon's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    pub snapshot: String,
    pub outcome: String,
    pub spool_depth: u64,
    pub dropped: u64,
}

/// `key=value` of a tracing fmt line.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!(" {key}=");
    let start = line.find(&pat)? + pat.len();
    let rest = &line[start..];
    Some(rest.split(' ').next().unwrap_or(rest).trim_matches('"'))
}

impl Agent {
    /// Starts `run`; its stderr goes to `DIR/run-N.log` (N counts the starts).
    pub fn spawn_run(&self) -> Daemon {
        let n = std::fs::read_dir(self.dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("run-")
            })
            .count();
        let log = self.dir.path().join(format!("run-{n}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = self.command(&["run"]);
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        Daemon {
            child: Some(cmd.spawn().unwrap()),
            log,
        }
    }

    /// Every daemon log of this agent, in start order.
    pub fn run_logs(&self) -> String {
        let mut out = String::new();
        for n in 0.. {
            match std::fs::read_to_string(self.dir.path().join(format!("run-{n}.log"))) {
                Ok(text) => out.push_str(&text),
                Err(_) => break,
            }
        }
        out
    }

    /// `spool --json`.
    pub fn spool_json(&self) -> serde_json::Value {
        let out = self.run_ok(&["spool", "--json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("spool --json: {e}\n{out}"))
    }

    /// Names of the files in the spool directory (not the quarantine).
    pub fn spool_files(&self) -> Vec<String> {
        let dir = self.state_dir().join("spool");
        let mut names: Vec<String> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .filter_map(|e| {
                    let e = e.ok()?;
                    e.file_type()
                        .ok()?
                        .is_file()
                        .then(|| e.file_name().to_string_lossy().into_owned())
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Writes an enrollment for `url` trusting `ca` (PEM), as `enroll` would, without a collector:
    /// for tests against a fake collector.
    pub fn write_enrollment(&self, url: &str, ca: &Path) {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let state = self.state_dir();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&state)
            .unwrap();
        let host_id = uuid::Uuid::new_v4();
        std::fs::write(state.join("host_id"), format!("{host_id}\n")).unwrap();
        let enrollment = serde_json::json!({
            "credential": format!("chac_{}", "1".repeat(64)),
            "host_id": host_id,
            "org": "ACME",
            "environment": "prod",
            "collector_url": url,
            "enrolled_at": "2026-01-01T00:00:00Z",
        });
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(state.join("enrollment.json"))
            .unwrap();
        std::io::Write::write_all(&mut f, enrollment.to_string().as_bytes()).unwrap();
        std::fs::copy(ca, state.join("collector-ca.pem")).unwrap();
    }
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The `cycle` lines so far.
    pub fn cycles(&self) -> Vec<Cycle> {
        cycles_in(&self.log_text())
    }

    /// Waits until `done(self)` or panics after `timeout` with the log.
    pub fn wait_until(&self, timeout: Duration, what: &str, mut done: impl FnMut(&Daemon) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}\n--- agent log\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits; returns how long it took to exit and its status.
    pub fn terminate(&mut self) -> (Duration, std::process::ExitStatus) {
        let mut child = self.child.take().expect("daemon running");
        let t0 = Instant::now();
        signal(child.id(), "TERM");
        let deadline = t0 + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return (t0.elapsed(), status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "agent did not stop within 20 s of SIGTERM\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- agent log ({})\n{}", self.log.display(), self.log_text());
        }
    }
}

/// The `cycle` lines of a daemon log.
pub fn cycles_in(log: &str) -> Vec<Cycle> {
    log.lines()
        .filter(|l| l.contains(" cycle "))
        .filter_map(|l| {
            Some(Cycle {
                snapshot: field(l, "snapshot")?.to_string(),
                outcome: field(l, "outcome")?.to_string(),
                spool_depth: field(l, "spool_depth")?.parse().ok()?,
                dropped: field(l, "dropped")?.parse().ok()?,
            })
        })
        .collect()
}

/// Snapshot ids of the log lines with this message (`spooled`, `delivered`), in log order.
pub fn ids_logged(log: &str, message: &str) -> Vec<String> {
    let needle = format!(" {message} ");
    log.lines()
        .filter(|l| l.contains(&needle) || l.ends_with(&format!(" {message}")))
        .filter_map(|l| field(l, "snapshot").map(str::to_owned))
        .collect()
}

/// One request the fake collector received.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub at: Instant,
    pub method: String,
    pub path: String,
}

/// What the fake collector answers: status, extra headers, JSON body.
pub type Answer = (u16, Vec<(String, String)>, String);

/// A tiny HTTPS server on loopback that answers every request with what `answer` says for the
/// n-th request, and records them all. Its certificate (rcgen, for 127.0.0.1) is in `ca_path`.
#[derive(Debug)]
pub struct FakeCollector {
    pub addr: SocketAddr,
    pub ca_path: PathBuf,
    _dir: TempDir,
    seen: std::sync::Arc<std::sync::Mutex<Vec<SeenRequest>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeCollector {
    pub fn start(answer: impl Fn(usize) -> Answer + Send + Sync + 'static) -> FakeCollector {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, key.cert.pem()).unwrap();
        let cert_der = key.cert.der().clone();
        let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
        let config =
            rustls::ServerConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert_der], key_der)
                .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let answer = std::sync::Arc::new(answer);
        let seen2 = seen.clone();
        let thread = std::thread::spawn(move || {
            let rt = runtime();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (tcp, _) = tokio::select! {
                        r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                        _ = &mut stop_rx => return,
                    };
                    let acceptor = acceptor.clone();
                    let seen = seen2.clone();
                    let answer = answer.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 8192];
                        let header_end = loop {
                            if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                                break pos + 4;
                            }
                            match tls.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        };
                        let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
                        let mut first = head.lines().next().unwrap_or("").split(' ');
                        let method = first.next().unwrap_or("").to_string();
                        let path = first.next().unwrap_or("").to_string();
                        let len: usize = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        while buf.len() < header_end + len {
                            match tls.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let n = {
                            let mut seen = seen.lock().unwrap();
                            seen.push(SeenRequest {
                                at: Instant::now(),
                                method,
                                path,
                            });
                            seen.len() - 1
                        };
                        let (status, headers, body) = answer(n);
                        let mut response = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                            body.len()
                        );
                        for (k, v) in headers {
                            response.push_str(&format!("{k}: {v}\r\n"));
                        }
                        response.push_str("\r\n");
                        response.push_str(&body);
                        let _ = tls.write_all(response.as_bytes()).await;
                        let _ = tls.shutdown().await;
                    });
                }
            });
        });
        FakeCollector {
            addr,
            ca_path,
            _dir: dir,
            seen,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The requests so far.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeCollector {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An HTTP CONNECT proxy on loopback (as squid would be), counting the tunnels it opened.
#[derive(Debug)]
pub struct ConnectProxy {
    pub addr: SocketAddr,
    tunnels: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConnectProxy {
    pub fn start() -> ConnectProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let tunnels = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let tunnels2 = tunnels.clone();
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let (mut client, _) = tokio::select! {
                        r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                        _ = &mut stop_rx => return,
                    };
                    let tunnels = tunnels2.clone();
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        let mut byte = [0u8; 1];
                        while !buf.ends_with(b"\r\n\r\n") {
                            match client.read(&mut byte).await {
                                Ok(1) => buf.push(byte[0]),
                                _ => return,
                            }
                        }
                        let head = String::from_utf8_lossy(&buf).into_owned();
                        let mut first = head.lines().next().unwrap_or("").split(' ');
                        if first.next() != Some("CONNECT") {
                            let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n").await;
                            return;
                        }
                        let target = first.next().unwrap_or("").to_string();
                        tunnels.lock().unwrap().push(target.clone());
                        let Ok(mut upstream) = tokio::net::TcpStream::connect(&target).await else {
                            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                            return;
                        };
                        if client
                            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            .await
                            .is_err()
                        {
                            return;
                        }
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    });
                }
            });
        });
        ConnectProxy {
            addr,
            tunnels,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The `host:port` of every tunnel opened so far.
    pub fn tunnels(&self) -> Vec<String> {
        self.tunnels.lock().unwrap().clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fixture hosts: trees under `tests/fixtures/hosts/` read by `collect --root`.
// ---------------------------------------------------------------------------------------------

/// `systemctl show ctxvda.service ...` as the fixture trees name its recorded output.
pub const CTXVDA_SHOW: &str = "systemctl+show+ctxvda.service+--property%3DLoadState%2CActiveState%2CSubState%2CResult%2CUnitFileState%2CNRestarts%2CActiveEnterTimestampMonotonic%2CStateChangeTimestampMonotonic";

/// A fixture host tree by name.
pub fn fixture_host(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hosts")
        .join(name)
}

/// Copies a tree, symlinks as symlinks.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The healthy RPM-family VDA (`rpm-healthy`) copied to `dir/name`, captured at `captured_at`, with
/// `ctxvda` failed when `vda_down` (rule SVC-VDA-001, critical).
pub fn rpm_host(dir: &Path, name: &str, captured_at: &str, vda_down: bool) -> PathBuf {
    let root = dir.join(name);
    copy_tree(&fixture_host("rpm-healthy"), &root);
    let capture = root.join(".callhome/capture.json");
    let mut meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&capture).unwrap()).unwrap();
    meta["captured_at"] = captured_at.into();
    std::fs::write(&capture, serde_json::to_vec(&meta).unwrap()).unwrap();
    if vda_down {
        let stdout = root.join(".callhome/commands").join(CTXVDA_SHOW).join("stdout");
        std::fs::write(
            stdout,
            "Result=exit-code\nNRestarts=0\nLoadState=loaded\nActiveState=failed\nSubState=failed\n\
             UnitFileState=enabled\nStateChangeTimestampMonotonic=41123456\nActiveEnterTimestampMonotonic=0\n",
        )
        .unwrap();
    }
    root
}

/// What `send` does, for a host read from a tree (`send` itself reads only the live host): the
/// snapshot exactly as `collect --root` prints it, posted with the agent's credential; the
/// snapshot as sent.
pub fn send_tree(agent: &Agent, collector: &Collector, root: &Path) -> serde_json::Value {
    let snapshot = agent.run_ok(&["collect", "--root", root.to_str().unwrap()]);
    let reply = post(
        collector,
        callhome_shared::api::SNAPSHOTS_PATH,
        Some(&agent.credential()),
        None,
        snapshot.clone().into_bytes(),
    );
    assert_eq!(reply.status, 201, "{reply:?}");
    serde_json::from_str(&snapshot).unwrap()
}

/// A PostgreSQL database of a test's own: in the cluster `CALLHOME_PG_CLUSTER_URL` names
/// (`scripts/test` starts one), or else in a throwaway cluster started with
/// `scripts/pg-test-cluster` and stopped when this is dropped.
#[derive(Debug)]
pub struct PgDatabase {
    pub url: String,
    cluster: Option<(TempDir, PathBuf)>,
}

impl PgDatabase {
    pub fn create() -> PgDatabase {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let (base, cluster) = match std::env::var("CALLHOME_PG_CLUSTER_URL") {
            Ok(url) if !url.is_empty() => (url, None),
            _ => {
                let dir = tempfile::Builder::new().prefix("callhome-pg-").tempdir().unwrap();
                // The server runs as `postgres` when the tests run as root: it must reach the dir.
                std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755))
                    .unwrap();
                let data = dir.path().join("data");
                let mut cmd = Command::new(root.join("scripts/pg-test-cluster"));
                cmd.arg("start")
                    .arg(&data)
                    .arg(free_port().to_string())
                    .env("PG_FSYNC", "off");
                let url = run_ok(cmd).trim().to_owned();
                (url, Some((dir, data)))
            }
        };
        let name = format!("e2e_{}", uuid::Uuid::new_v4().simple());
        let mut cmd = Command::new("psql");
        cmd.args([base.as_str(), "-qAtc", &format!("CREATE DATABASE {name}")]);
        run_ok(cmd);
        let (prefix, _) = base.rsplit_once('/').expect("database URL ends with /DBNAME");
        PgDatabase {
            url: format!("{prefix}/{name}"),
            cluster,
        }
    }

    /// Runs one SQL statement and returns psql's unaligned output.
    pub fn query(&self, sql: &str) -> String {
        let mut cmd = Command::new("psql");
        cmd.args([self.url.as_str(), "-qAtc", sql]);
        run_ok(cmd)
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Some((_, data)) = &self.cluster {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let _ = Command::new(root.join("scripts/pg-test-cluster"))
                .arg("stop")
                .arg(data)
                .output();
        }
    }
}
