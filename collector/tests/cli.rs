//! The real `callhome-collector` binary in a temporary data directory: the admin commands, and `serve`
//! over a real socket with real TLS.

// Test helpers outside `#[test]` functions: a failed unwrap is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_callhome-collector");
const EX_CONFIG: i32 = 78;

struct DataDir {
    dir: tempfile::TempDir,
}

impl DataDir {
    fn new() -> DataDir {
        DataDir {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir").arg(self.path()).args(args);
        cmd.env_remove("CALLHOME_LOG");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs a command that must succeed; on failure, shows what it printed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{}", describe(args, &out));
        String::from_utf8(out.stdout).unwrap()
    }
}

fn describe(args: &[&str], out: &Output) -> String {
    format!(
        "callhome-collector {args:?} exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn admin_commands_manage_orgs_contracts_envs_and_tokens() {
    let data = DataDir::new();
    assert_eq!(data.ok(&["host", "list", "--json"]).trim(), "[]");

    data.ok(&["org", "add", "ORG-1", "--name", "Example Corp"]);
    data.ok(&[
        "contract",
        "add",
        "ORG-1",
        "--product",
        "cvad",
        "--tier",
        "priority-plus",
        "--start",
        "2026-01-01",
        "--end",
        "2027-12-31",
    ]);

    let args = [
        "contract",
        "add",
        "ORG-1",
        "--product",
        "cvad",
        "--tier",
        "priority",
        "--start",
        "2027-12-31",
        "--end",
        "2026-01-01",
    ];
    let out = data.run(&args);
    assert_eq!(out.status.code(), Some(EX_CONFIG), "{}", describe(&args, &out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not after its start"),
        "{}",
        describe(&args, &out)
    );

    let args = [
        "contract",
        "add",
        "ORG-2",
        "--product",
        "cvad",
        "--tier",
        "select",
        "--start",
        "2026-01-01",
        "--end",
        "2027-12-31",
    ];
    let out = data.run(&args);
    assert_eq!(out.status.code(), Some(EX_CONFIG), "{}", describe(&args, &out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown org `ORG-2`"),
        "{}",
        describe(&args, &out)
    );

    let args = [
        "contract",
        "add",
        "ORG-1",
        "--product",
        "cvad",
        "--tier",
        "gold",
        "--start",
        "2026-01-01",
        "--end",
        "2027-12-31",
    ];
    let out = data.run(&args);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&args, &out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown tier `gold`"),
        "{}",
        describe(&args, &out)
    );

    data.ok(&["env", "add", "ORG-1", "prod-eu"]);
    let stdout = data.ok(&["token", "issue", "ORG-1", "prod-eu"]);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].starts_with("chet_") && lines[0].len() == 5 + 64,
        "{stdout}"
    );

    let listed = data.ok(&["token", "list", "ORG-1", "--json"]);
    assert!(
        !listed.contains(lines[0]),
        "token list must never show a token: {listed}"
    );
    let tokens: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let token_id = tokens[0]["id"].as_str().unwrap().to_owned();
    data.ok(&["token", "revoke", &token_id]);
    let table = data.ok(&["token", "list", "ORG-1"]);
    assert!(table.contains("revoked"), "{table}");

    let orgs = data.ok(&["org", "list"]);
    assert!(orgs.contains("ORG-1") && orgs.contains("priority-plus"), "{orgs}");
    assert!(data.ok(&["env", "list", "ORG-1"]).contains("prod-eu"));
    assert!(data.ok(&["contract", "list", "ORG-1"]).contains("2027-12-31"));
    assert_eq!(data.ok(&["host", "list", "--json"]).trim(), "[]");
}

#[test]
fn bad_config_exits_78_naming_the_key_and_line() {
    let data = DataDir::new();
    let config = data.path().join("collector.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:8443\"\n[limits]\nmax_body = 5\n").unwrap();
    let args = ["--config", config.to_str().unwrap(), "validate"];
    let out = data.run(&args);
    assert_eq!(out.status.code(), Some(EX_CONFIG), "{}", describe(&args, &out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("max_body") && stderr.contains("line 3"),
        "{stderr}"
    );
}

/// A running `serve`: its stderr is read line by line on a thread.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(data: &DataDir) -> Server {
        let mut child = data
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first log line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        panic!(
            "no log line with {needle:?}; the server logged:\n{}",
            self.seen.join("\n")
        );
    }

    fn addr(&mut self) -> String {
        let line = self.wait_for("listening on https://");
        let addr = line.split("listening on https://").nth(1).unwrap();
        addr.split_whitespace().next().unwrap().to_owned()
    }

    fn fingerprint(&mut self) -> String {
        let line = self.wait_for("SHA-256 fingerprint ");
        let fp = line.split("SHA-256 fingerprint ").nth(1).unwrap();
        fp.trim_end_matches(')').to_owned()
    }

    /// SIGTERM, then the exit status (killing it if it does not stop in time).
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "serve did not stop after SIGTERM; it logged:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over TLS to `addr`, trusting only `ca` (the collector's own certificate), as `name`.
fn https_get(addr: &str, name: &str, ca: &Path, path: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config =
            rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = connector
            .connect(ServerName::try_from(name.to_owned()).unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
        let request = format!("GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        // The server may close without a TLS close_notify; what was read until then is the answer.
        let _ = tls.read_to_end(&mut response).await;
        String::from_utf8_lossy(&response).into_owned()
    })
}

#[test]
fn serve_answers_healthz_over_tls_and_reuses_its_certificate() {
    let data = DataDir::new();
    let cert: PathBuf = data.path().join("tls/cert.pem");

    let mut server = Server::start(&data);
    let addr = server.addr();
    let fingerprint = server.fingerprint();
    assert!(
        server
            .wait_for("SHA-256 fingerprint")
            .contains("generated self-signed TLS certificate")
    );
    assert!(server.wait_for("embedded SQLite at ").contains("callhome.db"));
    let response = https_get(&addr, "localhost", &cert, "/healthz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"ok\""), "{response}");
    let response = https_get(&addr, "127.0.0.1", &cert, "/readyz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.path().join("tls/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let status = server.terminate();
    assert!(status.success(), "serve exited {status} after SIGTERM");

    let mut again = Server::start(&data);
    let addr = again.addr();
    assert!(
        again
            .wait_for("SHA-256 fingerprint")
            .contains("reusing self-signed TLS certificate")
    );
    assert_eq!(again.fingerprint(), fingerprint);
    let response = https_get(&addr, "localhost", &cert, "/healthz");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}
