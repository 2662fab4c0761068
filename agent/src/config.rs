//! The agent's TOML configuration (default `/etc/callhome/agent.toml`).
//!
//! Every key, with its default (the defaults live in [`defaults`] and nowhere else):
//!
//! ```toml
//! state_dir = "/var/lib/callhome"   # host id, enrollment credential, the collector's CA copy
//! role = "vda"                      # vda | controller | storefront | other
//! # hostname = "vda01"              # override the name the host reports (default: the system's)
//!
//! [collector]
//! # url = "https://callhome.example.com"  # used by `enroll` without --collector, and by `send`
//! # ca_file = "/etc/callhome/ca.pem"      # trust ONLY these roots (default: the system roots)
//! timeout_secs = 30
//!
//! [redaction]                       # what leaves the host (module `redact`)
//! hostnames = "keep"                # keep | hash | drop; also ip_addresses, user_names, domain_names
//! # key_file = "/etc/callhome/redaction.key"  # secret for "hash"; required as soon as one is "hash"
//!
//! [probes.system]                   # one table per probe, named as in `probes::PROBES`
//! enabled = true                    # default: the probe table's default
//! timeout_secs = 5
//!
//! [controllers]                     # the `controllers` probe's checks of each Delivery Controller
//! port = 80                         # registration port tried on each controller
//! connect_timeout_ms = 2000         # TCP connect timeout per controller
//!
//! [certificates]                    # the `certificates` probe
//! paths = []                        # more files or directories (*.pem, *.crt, *.cer) to check,
//!                                   # besides the Linux VDA's TLS keystore
//! ```
//!
//! Unknown keys are refused (the error names the key and its line). Parsing stops at the first
//! syntax error, as TOML does; the checks that follow ([`Config::problems`]) report every problem at
//! once, the way `validate` needs them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use callhome_shared::HostRole;
use serde::Deserialize;
use toml::Spanned;

use crate::probes::{PlannedProbe, Probe};

/// Where the config is read from when `--config` is not given. If no file is there, the agent runs on
/// the built-in defaults.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/callhome/agent.toml";

/// The default of every key, in one place.
pub mod defaults {
    pub const STATE_DIR: &str = "/var/lib/callhome";
    pub const COLLECTOR_TIMEOUT_SECS: u64 = 30;
    pub const PROBE_TIMEOUT_SECS: u64 = 5;
    /// Most bytes a probe reads from one file: logs are read from their tail up to this.
    pub const PROBE_MAX_READ_BYTES: u64 = 1 << 20;
    /// The port a VDA registers with its Delivery Controllers on (Citrix: "Communication Ports Used
    /// by Citrix Technologies", VDA to Delivery Controller, TCP 80).
    pub const CONTROLLERS_PORT: u16 = 80;
    pub const CONTROLLERS_CONNECT_TIMEOUT_MS: u64 = 2000;
}

/// Longest hostname a snapshot may carry (the schema's limit for names).
const MAX_HOSTNAME_LEN: usize = 255;

/// Longest controller connect timeout: longer would not fit in a probe's default time.
const MAX_CONNECT_TIMEOUT_MS: u64 = 60_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Holds the host id, the enrollment and the copy of the collector's CA.
    pub state_dir: PathBuf,
    pub role: HostRole,
    /// Overrides the hostname the system reports.
    pub hostname: Option<String>,
    pub collector: CollectorConfig,
    /// Per-probe settings keyed by probe name; the span locates a name in the file for error messages.
    pub probes: BTreeMap<Spanned<String>, ProbeConfig>,
    pub controllers: ControllersConfig,
    pub certificates: CertificatesConfig,
    /// What is hashed or dropped before a snapshot leaves the host.
    pub redaction: crate::redact::RedactionConfig,
}

/// `[controllers]`: how the `controllers` probe checks each Delivery Controller.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControllersConfig {
    /// Registration port tried on each controller.
    pub port: Spanned<u16>,
    /// TCP connect timeout per controller, in milliseconds.
    pub connect_timeout_ms: Spanned<u64>,
}

impl Default for ControllersConfig {
    fn default() -> Self {
        ControllersConfig {
            port: Spanned::new(0..0, defaults::CONTROLLERS_PORT),
            connect_timeout_ms: Spanned::new(0..0, defaults::CONTROLLERS_CONNECT_TIMEOUT_MS),
        }
    }
}

/// `[certificates]`: what the `certificates` probe reads besides the VDA's own TLS keystore.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertificatesConfig {
    /// Files (PEM or DER) or directories (their `*.pem`, `*.crt`, `*.cer` files).
    pub paths: Vec<Spanned<PathBuf>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// Base URL of the collector, `https://` only.
    pub url: Option<Spanned<String>>,
    /// PEM bundle: when set, only these roots are trusted.
    pub ca_file: Option<Spanned<PathBuf>>,
    pub timeout_secs: Spanned<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProbeConfig {
    /// `None`: the default from the probe table.
    pub enabled: Option<bool>,
    /// `None`: [`defaults::PROBE_TIMEOUT_SECS`].
    pub timeout_secs: Option<Spanned<u64>>,
    /// `None`: [`defaults::PROBE_MAX_READ_BYTES`].
    pub max_read_bytes: Option<Spanned<u64>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from(defaults::STATE_DIR),
            role: HostRole::default(),
            hostname: None,
            collector: CollectorConfig::default(),
            probes: BTreeMap::new(),
            controllers: ControllersConfig::default(),
            certificates: CertificatesConfig::default(),
            redaction: crate::redact::RedactionConfig::default(),
        }
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            url: None,
            ca_file: None,
            timeout_secs: Spanned::new(0..0, defaults::COLLECTOR_TIMEOUT_SECS),
        }
    }
}

/// One thing wrong with a config that parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `collector.url` or `probes.cpu`.
    pub key: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: `{}`: {}", self.key, self.message),
            None => write!(f, "`{}`: {}", self.key, self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    /// TOML syntax, a wrong type or an unknown key; toml's message names the key and the line.
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// One line per problem, each prefixed with the file, as compilers do.
    #[error("{}", problems.iter().map(|p| format!("{origin}: {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { origin: String, problems: Vec<Problem> },
    /// A setting a command needs and neither the command line nor the config gives.
    #[error("{0}")]
    Missing(String),
}

/// A config and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file read, or `None` when running on built-in defaults.
    pub path: Option<PathBuf>,
}

impl LoadedConfig {
    /// For messages: the file, or "built-in defaults".
    pub fn origin(&self) -> String {
        origin(self.path.as_deref())
    }
}

fn origin(path: Option<&Path>) -> String {
    match path {
        Some(p) => p.display().to_string(),
        None => "built-in defaults".to_string(),
    }
}

/// Reads and checks the config. `explicit` is the `--config` argument: a file given explicitly must
/// exist; without it, a missing [`DEFAULT_CONFIG_PATH`] means built-in defaults.
pub fn load(explicit: Option<&Path>, probes: &[Probe]) -> Result<LoadedConfig, ConfigError> {
    let path = explicit.unwrap_or(Path::new(DEFAULT_CONFIG_PATH));
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
            tracing::debug!(path = %path.display(), "no config file: using built-in defaults");
            let config = Config::default();
            check(&config, "", None, probes)?;
            return Ok(LoadedConfig { config, path: None });
        }
        Err(error) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                error,
            });
        }
    };
    let config = Config::from_toml(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    check(&config, &text, Some(path), probes)?;
    Ok(LoadedConfig {
        config,
        path: Some(path.to_path_buf()),
    })
}

fn check(config: &Config, text: &str, path: Option<&Path>, probes: &[Probe]) -> Result<(), ConfigError> {
    let problems = config.problems(text, probes);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            origin: origin(path),
            problems,
        })
    }
}

impl Config {
    /// Parses TOML; the error names the key and the line.
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// Every problem with a parsed config, in file order where lines are known. `text` is the file the
    /// config came from, used only to turn spans into line numbers.
    pub fn problems(&self, text: &str, probes: &[Probe]) -> Vec<Problem> {
        let line = |span: std::ops::Range<usize>| line_of(text, span.start);
        let mut problems = Vec::new();

        if !self.state_dir.is_absolute() {
            problems.push(Problem {
                key: "state_dir".into(),
                line: None,
                message: format!("must be an absolute path, not `{}`", self.state_dir.display()),
            });
        }
        if let Some(hostname) = &self.hostname {
            let trimmed = hostname.trim();
            if trimmed.is_empty() || trimmed.len() > MAX_HOSTNAME_LEN {
                problems.push(Problem {
                    key: "hostname".into(),
                    line: None,
                    message: format!("must be 1 to {MAX_HOSTNAME_LEN} bytes long"),
                });
            }
        }
        if let Some(url) = &self.collector.url
            && let Err(message) = check_collector_url(url.get_ref())
        {
            problems.push(Problem {
                key: "collector.url".into(),
                line: line(url.span()),
                message,
            });
        }
        if let Some(ca_file) = &self.collector.ca_file
            && let Err(e) = crate::deliver::read_ca_file(ca_file.get_ref())
        {
            problems.push(Problem {
                key: "collector.ca_file".into(),
                line: line(ca_file.span()),
                message: e.to_string(),
            });
        }
        if *self.collector.timeout_secs.get_ref() == 0 {
            problems.push(Problem {
                key: "collector.timeout_secs".into(),
                line: line(self.collector.timeout_secs.span()),
                message: "must be at least 1".into(),
            });
        }
        for (name, settings) in &self.probes {
            if !probes.iter().any(|p| p.name == name.get_ref()) {
                let known: Vec<&str> = probes.iter().map(|p| p.name).collect();
                problems.push(Problem {
                    key: format!("probes.{}", name.get_ref()),
                    line: line(name.span()),
                    message: format!(
                        "unknown probe `{}`; known probes: {}",
                        name.get_ref(),
                        known.join(", ")
                    ),
                });
            }
            if let Some(timeout) = &settings.timeout_secs
                && *timeout.get_ref() == 0
            {
                problems.push(Problem {
                    key: format!("probes.{}.timeout_secs", name.get_ref()),
                    line: line(timeout.span()),
                    message: "must be at least 1".into(),
                });
            }
            if let Some(cap) = &settings.max_read_bytes
                && *cap.get_ref() < 4096
            {
                problems.push(Problem {
                    key: format!("probes.{}.max_read_bytes", name.get_ref()),
                    line: line(cap.span()),
                    message: "must be at least 4096".into(),
                });
            }
        }
        if *self.controllers.port.get_ref() == 0 {
            problems.push(Problem {
                key: "controllers.port".into(),
                line: line(self.controllers.port.span()),
                message: "must be a TCP port, 1 to 65535".into(),
            });
        }
        let connect_ms = *self.controllers.connect_timeout_ms.get_ref();
        if !(1..=MAX_CONNECT_TIMEOUT_MS).contains(&connect_ms) {
            problems.push(Problem {
                key: "controllers.connect_timeout_ms".into(),
                line: line(self.controllers.connect_timeout_ms.span()),
                message: format!("must be 1 to {MAX_CONNECT_TIMEOUT_MS}"),
            });
        }
        for path in &self.certificates.paths {
            if !path.get_ref().is_absolute() {
                problems.push(Problem {
                    key: "certificates.paths".into(),
                    line: line(path.span()),
                    message: format!("must be absolute paths, not `{}`", path.get_ref().display()),
                });
            }
        }
        problems.extend(self.redaction.problems(&line));
        problems.sort_by_key(|p| p.line.unwrap_or(0));
        problems
    }

    /// Port and timeout of the `controllers` probe's TCP connects.
    pub fn controllers_port(&self) -> u16 {
        *self.controllers.port.get_ref()
    }

    pub fn controllers_connect_timeout(&self) -> Duration {
        Duration::from_millis(*self.controllers.connect_timeout_ms.get_ref())
    }

    /// The extra certificate paths of `[certificates]`.
    pub fn certificate_paths(&self) -> impl Iterator<Item = &Path> {
        self.certificates.paths.iter().map(|p| p.get_ref().as_path())
    }

    /// The probes to run, in table order, each with its timeout and read cap.
    pub fn enabled_probes<'a>(&self, probes: &'a [Probe]) -> Vec<PlannedProbe<'a>> {
        probes
            .iter()
            .filter_map(|probe| {
                let settings = self.probes.get(probe.name);
                let enabled = settings.and_then(|s| s.enabled).unwrap_or(probe.default_enabled);
                let secs = settings
                    .and_then(|s| s.timeout_secs.as_ref())
                    .map_or(defaults::PROBE_TIMEOUT_SECS, |t| *t.get_ref());
                let max_read_bytes = settings
                    .and_then(|s| s.max_read_bytes.as_ref())
                    .map_or(defaults::PROBE_MAX_READ_BYTES, |c| *c.get_ref());
                enabled.then_some(PlannedProbe {
                    probe,
                    timeout: Duration::from_secs(secs),
                    max_read_bytes,
                })
            })
            .collect()
    }

    pub fn collector_url(&self) -> Option<&str> {
        self.collector.url.as_ref().map(|u| u.get_ref().as_str())
    }

    pub fn collector_ca_file(&self) -> Option<&Path> {
        self.collector.ca_file.as_ref().map(|c| c.get_ref().as_path())
    }

    pub fn collector_timeout(&self) -> Duration {
        Duration::from_secs(*self.collector.timeout_secs.get_ref())
    }
}

/// 1-based line of a byte offset; `None` for the empty spans of built-in defaults.
fn line_of(text: &str, offset: usize) -> Option<usize> {
    if text.is_empty() {
        return None;
    }
    let upto = text.get(..offset)?;
    Some(upto.matches('\n').count() + 1)
}

/// Checks a collector base URL: `https://` with a host. Plain `http://` is refused: the credential and
/// the snapshots never travel in clear text.
pub fn check_collector_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" => {
            return Err(format!(
                "`{url}` uses plain http://; the agent only talks to the collector over https://"
            ));
        }
        other => {
            return Err(format!(
                "`{url}` has scheme `{other}`; the collector URL must start with https://"
            ));
        }
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "`{url}` has a query or fragment; give the collector's base URL"
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::PROBES;

    fn parse(text: &str) -> Config {
        Config::from_toml(text).unwrap()
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = parse("");
        assert_eq!(c.state_dir, Path::new("/var/lib/callhome"));
        assert_eq!(c.role, HostRole::Vda);
        assert_eq!(c.hostname, None);
        assert_eq!(c.collector_url(), None);
        assert_eq!(c.collector_ca_file(), None);
        assert_eq!(c.collector_timeout(), Duration::from_secs(30));
        assert!(c.problems("", PROBES).is_empty());
        let enabled: Vec<(&str, Duration, u64)> = c
            .enabled_probes(PROBES)
            .into_iter()
            .map(|p| (p.probe.name, p.timeout, p.max_read_bytes))
            .collect();
        let expected: Vec<(&str, Duration, u64)> = PROBES
            .iter()
            .filter(|p| p.default_enabled)
            .map(|p| (p.name, Duration::from_secs(5), 1 << 20))
            .collect();
        assert_eq!(enabled, expected);
    }

    #[test]
    fn built_in_defaults_match_an_empty_file() {
        let d = Config::default();
        let e = parse("");
        assert_eq!(d.state_dir, e.state_dir);
        assert_eq!(d.collector_timeout(), e.collector_timeout());
        assert!(d.problems("", PROBES).is_empty());
    }

    #[test]
    fn every_key_parses() {
        let c = parse(
            r#"
state_dir = "/srv/callhome"
role = "storefront"
hostname = "sf01"
[collector]
url = "https://callhome.example.com/"
timeout_secs = 10
[probes.disks]
enabled = false
[probes.system]
timeout_secs = 2
max_read_bytes = 65536
"#,
        );
        assert_eq!(c.role, HostRole::Storefront);
        assert_eq!(c.hostname.as_deref(), Some("sf01"));
        assert_eq!(c.collector_url(), Some("https://callhome.example.com/"));
        assert_eq!(c.collector_timeout(), Duration::from_secs(10));
        let enabled: Vec<(&str, Duration, u64)> = c
            .enabled_probes(PROBES)
            .into_iter()
            .map(|p| (p.probe.name, p.timeout, p.max_read_bytes))
            .collect();
        assert!(
            enabled.contains(&("system", Duration::from_secs(2), 65536)),
            "{enabled:?}"
        );
        assert!(
            !enabled.iter().any(|(name, _, _)| *name == "disks"),
            "{enabled:?}"
        );
    }

    #[test]
    fn unknown_key_error_names_the_key_and_the_line() {
        let err = Config::from_toml("role = \"vda\"\n\n[collector]\nurll = \"https://x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("urll"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn unknown_key_in_a_probe_table_is_named_with_its_line() {
        let err = Config::from_toml("[probes.system]\nenabled = true\ninterval = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("interval") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn unknown_role_is_refused() {
        let err = Config::from_toml("role = \"mainframe\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("mainframe") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn unknown_probe_is_named_with_its_line() {
        let text = "[probes.system]\nenabled = true\n[probes.gpu]\nenabled = true\n";
        let problems = parse(text).problems(text, PROBES);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "probes.gpu");
        assert_eq!(problems[0].line, Some(3));
        assert!(problems[0].message.contains("unknown probe `gpu`"));
        assert!(problems[0].message.contains("system, disks"));
    }

    #[test]
    fn plain_http_url_is_refused() {
        let text = "[collector]\nurl = \"http://callhome.example.com\"\n";
        let problems = parse(text).problems(text, PROBES);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "collector.url");
        assert_eq!(problems[0].line, Some(2));
        assert!(problems[0].message.contains("https://"), "{problems:?}");
        assert!(check_collector_url("https://127.0.0.1:8443").is_ok());
        assert!(check_collector_url("ftp://x").is_err());
        assert!(check_collector_url("not a url").is_err());
    }

    #[test]
    fn every_problem_is_reported_not_only_the_first() {
        let text = r#"state_dir = "relative/dir"
[collector]
url = "http://collector"
ca_file = "/nonexistent/ca.pem"
timeout_secs = 0
[probes.gpu]
timeout_secs = 0
"#;
        let problems = parse(text).problems(text, PROBES);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "state_dir",
                "collector.url",
                "collector.ca_file",
                "collector.timeout_secs",
                "probes.gpu",
                "probes.gpu.timeout_secs"
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn controllers_and_certificates_tables() {
        let d = parse("");
        assert_eq!(d.controllers_port(), 80);
        assert_eq!(d.controllers_connect_timeout(), Duration::from_millis(2000));
        assert_eq!(d.certificate_paths().count(), 0);
        assert_eq!(Config::default().controllers_port(), 80);

        let c = parse(
            "[controllers]\nport = 443\nconnect_timeout_ms = 500\n[certificates]\npaths = [\"/etc/pki/tls/certs/vda.pem\", \"/etc/ssl/vda\"]\n",
        );
        assert_eq!(c.controllers_port(), 443);
        assert_eq!(c.controllers_connect_timeout(), Duration::from_millis(500));
        let paths: Vec<&Path> = c.certificate_paths().collect();
        assert_eq!(
            paths,
            [Path::new("/etc/pki/tls/certs/vda.pem"), Path::new("/etc/ssl/vda")]
        );

        let err = Config::from_toml("[controllers]\nprot = 80\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("prot") && err.contains("line 2"), "{err}");

        let text = "[controllers]\nport = 0\nconnect_timeout_ms = 0\n[certificates]\npaths = [\"certs\"]\n";
        let problems = parse(text).problems(text, PROBES);
        let keys: Vec<(&str, Option<usize>)> = problems.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(
            keys,
            [
                ("controllers.port", Some(2)),
                ("controllers.connect_timeout_ms", Some(3)),
                ("certificates.paths", Some(5)),
            ],
            "{problems:?}"
        );
    }

    #[test]
    fn load_prefixes_the_path_and_keeps_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "state_dir = \"/tmp\"\nbogus = 1\n").unwrap();
        let err = load(Some(&path), PROBES).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(err.contains("bogus") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(Some(&dir.path().join("nope.toml")), PROBES).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }
}
