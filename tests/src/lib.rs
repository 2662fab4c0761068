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
