//! A minimal W3C WebDriver client for the browser tests: starts `chromedriver` on a loopback port
//! and drives one headless Debian Chromium session through it, with reqwest on the harness's tokio
//! runtime (a WebDriver crate would bring a second HTTP stack for the dozen commands used here).
//!
//! Every command has a timeout, so a wedged chromedriver or browser fails the test instead of
//! hanging the suite. Chromium runs with the flags that keep it off the network (this machine has
//! none but loopback and the package registries) and a fresh profile; the collector's self-signed
//! test certificate is accepted through the `acceptInsecureCerts` capability, nothing broader.
//!
//! `.ci/run` installs the `chromium` and `chromium-driver` packages; `CALLHOME_CHROMIUM` and
//! `CALLHOME_CHROMEDRIVER` point elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL_HINT: &str =
    "install Debian's packages: `apt-get install -y chromium chromium-driver` (.ci/run does this in CI)";

/// How long chromedriver may take to answer `/status` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest any one WebDriver command may take (a page load included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Page loads, as the browser counts them (below [`COMMAND_TIMEOUT`], so the browser's own error wins).
const PAGE_LOAD_MS: u64 = 20_000;

/// How much of chromedriver's log a failing test prints.
const LOG_TAIL_LINES: usize = 40;

/// The W3C element reference key.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The browser's arguments: headless, no sandbox (CI runs as root), and none of Chromium's own
/// network traffic (updates, sync, field trials, QUIC probes), which this machine refuses.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,800",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} not found at {path}: {INSTALL_HINT}")]
    NotInstalled { what: &'static str, path: PathBuf },
    #[error("cannot start chromedriver ({path}): {source}")]
    Spawn { path: PathBuf, source: std::io::Error },
    #[error("chromedriver did not become ready within {timeout:?}: {detail}\n--- chromedriver log\n{log}")]
    NotReady {
        timeout: Duration,
        detail: String,
        log: String,
    },
    #[error("WebDriver {command}: {source}")]
    Transport { command: String, source: reqwest::Error },
    #[error("WebDriver {command}: HTTP {status}: {error}: {message}")]
    Command {
        command: String,
        status: u16,
        error: String,
        message: String,
    },
    #[error("WebDriver {command}: unexpected answer: {detail}")]
    Protocol { command: String, detail: String },
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout { timeout: Duration, what: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl Error {
    /// The W3C error code (`no such element`, ...), when the driver answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Command { error, .. } => Some(error),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// A chromedriver process with one Chromium session. Dropping it ends the session and kills
/// chromedriver's whole process group, so no browser outlives the test.
#[derive(Debug)]
pub struct Browser {
    child: Option<Child>,
    base: String,
    session: Option<String>,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
    dir: TempDir,
}

fn executable(var: &str, default: &str, what: &'static str) -> Result<PathBuf> {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::NotInstalled { what, path })
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| Error::Io {
        path: PathBuf::from("127.0.0.1:0"),
        source,
    })?;
    let port = listener
        .local_addr()
        .map_err(|source| Error::Io {
            path: PathBuf::from("127.0.0.1:0"),
            source,
        })?
        .port();
    Ok(port)
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium session.
    pub fn start() -> Result<Browser> {
        let chromium = executable("CALLHOME_CHROMIUM", CHROMIUM, "Chromium")?;
        let driver = executable("CALLHOME_CHROMEDRIVER", CHROMEDRIVER, "ChromeDriver")?;
        let dir = tempfile::Builder::new()
            .prefix("callhome-browser-")
            .tempdir()
            .map_err(|source| Error::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let port = free_port()?;
        let log = dir.path().join("chromedriver.log");
        let child = {
            use std::os::unix::process::CommandExt;
            Command::new(&driver)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own group, so that drop can end chromedriver and every browser it started.
                .process_group(0)
                .spawn()
                .map_err(|source| Error::Spawn {
                    path: driver.clone(),
                    source,
                })?
        };
        let rt = crate::runtime();
        // Plain HTTP to chromedriver; reqwest still wants a TLS configuration (no default provider).
        let client = rt.block_on(async {
            let tls =
                rustls::ClientConfig::builder_with_provider(rustls::crypto::ring::default_provider().into())
                    .with_safe_default_protocol_versions()
                    .map(|b| {
                        b.with_root_certificates(rustls::RootCertStore::empty())
                            .with_no_client_auth()
                    });
            let builder = reqwest::Client::builder()
                .timeout(COMMAND_TIMEOUT)
                .connect_timeout(Duration::from_secs(5))
                .no_proxy();
            let builder = match tls {
                Ok(tls) => builder.tls_backend_preconfigured(tls),
                Err(_) => builder,
            };
            builder.build()
        });
        let client = client.map_err(|source| Error::Transport {
            command: "client".to_owned(),
            source,
        })?;
        let mut browser = Browser {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            session: None,
            client,
            rt,
            dir,
        };
        browser.wait_ready()?;
        browser.new_session(&chromium)?;
        Ok(browser)
    }

    fn driver_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Error::NotReady {
                    timeout: START_TIMEOUT,
                    detail: format!("chromedriver exited with {status}"),
                    log: self.driver_log(),
                });
            }
            let last = match self.raw("GET", "/status", None, Duration::from_secs(2)) {
                Ok(v) if v["ready"] == true => return Ok(()),
                Ok(v) => format!("status {v}"),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(Error::NotReady {
                    timeout: START_TIMEOUT,
                    detail: last,
                    log: self.driver_log(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn new_session(&mut self, chromium: &Path) -> Result<()> {
        let profile = self.dir.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    // The collector's self-signed test certificate, and only for this session.
                    "acceptInsecureCerts": true,
                    "pageLoadStrategy": "normal",
                    "timeouts": { "pageLoad": PAGE_LOAD_MS, "script": 5_000, "implicit": 0 },
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": args,
                    },
                },
            },
        });
        let value = self
            .raw("POST", "/session", Some(caps), COMMAND_TIMEOUT)
            .map_err(|e| match e {
                Error::Command {
                    command,
                    status,
                    error,
                    message,
                } => Error::Command {
                    command,
                    status,
                    error,
                    message: format!("{message}\n--- chromedriver log\n{}", self.driver_log()),
                },
                other => other,
            })?;
        let id = value["sessionId"].as_str().ok_or_else(|| Error::Protocol {
            command: "new session".to_owned(),
            detail: value.to_string(),
        })?;
        self.session = Some(id.to_owned());
        Ok(())
    }

    /// One request to chromedriver; the W3C `value` of the answer, or its error.
    fn raw(&self, method: &str, path: &str, body: Option<Value>, timeout: Duration) -> Result<Value> {
        let command = format!("{method} {path}");
        let url = format!("{}{path}", self.base);
        let client = &self.client;
        self.rt.block_on(async {
            let request = match method {
                "GET" => client.get(&url),
                "DELETE" => client.delete(&url),
                _ => client
                    .post(&url)
                    .header("content-type", "application/json; charset=utf-8")
                    .body(body.unwrap_or_else(|| json!({})).to_string()),
            };
            let transport = |source| Error::Transport {
                command: command.clone(),
                source,
            };
            let response = request.timeout(timeout).send().await.map_err(transport)?;
            let status = response.status().as_u16();
            let bytes = response.bytes().await.map_err(transport)?;
            let mut answer: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
                command: command.clone(),
                detail: format!(
                    "HTTP {status}, not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                ),
            })?;
            let value = answer["value"].take();
            if (200..300).contains(&status) {
                return Ok(value);
            }
            Err(Error::Command {
                command: command.clone(),
                status,
                error: value["error"].as_str().unwrap_or("unknown error").to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            })
        })
    }

    /// A command on the session.
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let session = self.session.as_deref().ok_or_else(|| Error::Protocol {
            command: format!("{method} {path}"),
            detail: "the session has ended".to_owned(),
        })?;
        self.raw(
            method,
            &format!("/session/{session}{path}"),
            body,
            COMMAND_TIMEOUT,
        )
    }

    fn string(value: Value, command: &str) -> Result<String> {
        match value {
            Value::String(s) => Ok(s),
            other => Err(Error::Protocol {
                command: command.to_owned(),
                detail: format!("expected a string, got {other}"),
            }),
        }
    }

    /// Navigates and waits for the page to load (the session's page-load strategy).
    pub fn goto(&self, url: &str) -> Result<()> {
        self.cmd("POST", "/url", Some(json!({ "url": url })))?;
        Ok(())
    }

    pub fn current_url(&self) -> Result<String> {
        Self::string(self.cmd("GET", "/url", None)?, "current url")
    }

    /// The path of the current URL (`/signin`), query and fragment dropped.
    pub fn current_path(&self) -> Result<String> {
        let url = self.current_url()?;
        let after_scheme = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
        Ok(path.split(['?', '#']).next().unwrap_or("/").to_owned())
    }

    pub fn title(&self) -> Result<String> {
        Self::string(self.cmd("GET", "/title", None)?, "title")
    }

    pub fn source(&self) -> Result<String> {
        Self::string(self.cmd("GET", "/source", None)?, "page source")
    }

    fn element_id(value: &Value, command: &str) -> Result<String> {
        value[ELEMENT_KEY]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Protocol {
                command: command.to_owned(),
                detail: format!("no element reference in {value}"),
            })
    }

    /// The first element matching a CSS selector (`no such element` when none does).
    pub fn find(&self, css: &str) -> Result<Element<'_>> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        Ok(Element {
            browser: self,
            id: Self::element_id(&v, "find element")?,
            css: css.to_owned(),
        })
    }

    /// Every element matching a CSS selector, in document order.
    pub fn find_all(&self, css: &str) -> Result<Vec<Element<'_>>> {
        let v = self.cmd(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        let list = v.as_array().ok_or_else(|| Error::Protocol {
            command: "find elements".to_owned(),
            detail: v.to_string(),
        })?;
        list.iter()
            .map(|e| {
                Ok(Element {
                    browser: self,
                    id: Self::element_id(e, "find elements")?,
                    css: css.to_owned(),
                })
            })
            .collect()
    }

    /// Polls until an element matches (a page that is still loading after a form submission).
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element<'_>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.find(css) {
                Ok(e) => return Ok(e),
                Err(e) if e.code() == Some("no such element") && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(e) if e.code() == Some("no such element") => {
                    return Err(Error::Timeout {
                        timeout,
                        what: format!("an element matching `{css}`"),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Polls until the current path is `path` (after a click that submits a form).
    pub fn wait_for_path(&self, path: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.current_path()?;
            if now == path {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    timeout,
                    what: format!("the path {path} (still at {now})"),
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Runs a synchronous script in the page; its return value.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// The viewport as PNG, written to `path` (parent folders created).
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let encoded = Self::string(self.cmd("GET", "/screenshot", None)?, "screenshot")?;
        let png = base64_decode(&encoded).ok_or_else(|| Error::Protocol {
            command: "screenshot".to_owned(),
            detail: "not base64".to_owned(),
        })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        std::fs::write(path, png).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
    }

    /// Ends the session (the browser exits); the driver is killed on drop.
    pub fn quit(&mut self) -> Result<()> {
        if let Some(session) = self.session.take() {
            self.raw(
                "DELETE",
                &format!("/session/{session}"),
                None,
                Duration::from_secs(10),
            )?;
        }
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.session.is_some() {
            let _ = self.quit();
        }
        if let Some(mut child) = self.child.take() {
            // The group is chromedriver's own (process_group(0)): its id is the child's pid.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.driver_log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "--- chromedriver log, last {} lines\n{}",
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// An element of the current page.
#[derive(Debug)]
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
    css: String,
}

impl Element<'_> {
    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }

    /// The selector it was found by, for messages.
    pub fn selector(&self) -> &str {
        &self.css
    }

    /// Its rendered text, as a user sees it.
    pub fn text(&self) -> Result<String> {
        Browser::string(
            self.browser.cmd("GET", &self.path("/text"), None)?,
            "element text",
        )
    }

    /// An attribute's value, `None` when it has none.
    pub fn attribute(&self, name: &str) -> Result<Option<String>> {
        match self
            .browser
            .cmd("GET", &self.path(&format!("/attribute/{name}")), None)?
        {
            Value::Null => Ok(None),
            v => Browser::string(v, "element attribute").map(Some),
        }
    }

    pub fn click(&self) -> Result<()> {
        self.browser.cmd("POST", &self.path("/click"), None)?;
        Ok(())
    }

    pub fn clear(&self) -> Result<()> {
        self.browser.cmd("POST", &self.path("/clear"), None)?;
        Ok(())
    }

    /// Types `text` into it, key by key.
    pub fn send_keys(&self, text: &str) -> Result<()> {
        self.browser
            .cmd("POST", &self.path("/value"), Some(json!({ "text": text })))?;
        Ok(())
    }

    /// The first descendant matching a CSS selector.
    pub fn find(&self, css: &str) -> Result<Element<'_>> {
        let v = self.browser.cmd(
            "POST",
            &self.path("/element"),
            Some(json!({ "using": "css selector", "value": css })),
        )?;
        Ok(Element {
            browser: self.browser,
            id: Browser::element_id(&v, "find element")?,
            css: format!("{} {css}", self.css),
        })
    }
}

/// Standard base64 (with padding, as WebDriver sends screenshots); `None` on anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let bytes: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::base64_decode;

    #[test]
    fn base64_decodes_padded_text_and_refuses_garbage() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("Zg==").unwrap(), b"f");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode("iVBORw0K\nGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
        assert!(base64_decode("Zm9").is_none());
        assert!(base64_decode("Zm!v").is_none());
        assert!(base64_decode("Z===").is_none());
    }
}
