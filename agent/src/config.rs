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
//! # proxy = "http://proxy.example.com:3128" # HTTPS proxy (CONNECT); default: HTTPS_PROXY/ALL_PROXY
//!                                         # from the environment, with NO_PROXY honoured
//! # pin_sha256 = ["sha256//BASE64="]      # SHA-256 pins of the collector's public key (SPKI), as
//!                                         # `callhome-collector tls pin` prints them (64 hex digits
//!                                         # also accepted). Alone, a pin is the trust anchor: chain,
//!                                         # name and dates are not checked, as for an SSH host key.
//!                                         # With ca_file, both must pass. List two for a rotation.
//!                                         # Default: the pins given to `enroll --pin`, if any.
//!
//! [schedule]                        # for `run`
//! cron = "0 * * * *"                # crontab(5) line in UTC (or @hourly, @daily, ...)
//! splay_secs = 900                  # random delay after each slot, drawn afresh every run
//!
//! [spool]                           # snapshots waiting for the collector, in STATE_DIR/spool
//! max_files = 1000                  # when full, the oldest are dropped (and reported)
//! max_bytes = 67108864              # 64 MiB
//! write_pause_ms = 0                # TESTING ONLY: pause in the middle of each spool write
//!
//! [retry]                           # exponential backoff with full jitter between attempts
//! base_ms = 1000
//! cap_secs = 600
//! max_elapsed_secs = 3600           # then wait for the next scheduled run
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
//!
//! [updates]                         # the `updates` probe
//! max_cache_age_secs = 86400        # reuse the pending-update counts (kept in STATE_DIR/cache) while
//!                                   # the package database and metadata are unchanged, at most this
//!                                   # long; 0: ask the package tool every time
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
    /// Hourly: a TAM sees a host's state at most about an hour and a quarter old (with the splay),
    /// and 100,000 agents make 28 snapshots a second, spread evenly by the splay.
    pub const SCHEDULE_CRON: &str = "0 * * * *";
    /// Up to 15 minutes after each slot (issue 4).
    pub const SCHEDULE_SPLAY_SECS: u64 = 900;
    /// 1000 hourly snapshots: six weeks of collector outage before the oldest are dropped.
    pub const SPOOL_MAX_FILES: u64 = 1000;
    /// A healthy host's snapshot is under 16 KiB compressed; 64 MiB leaves room for larger ones.
    pub const SPOOL_MAX_BYTES: u64 = 64 << 20;
    pub const RETRY_BASE_MS: u64 = 1000;
    /// Ten minutes: after an outage, a fleet's retries spread over that much time.
    pub const RETRY_CAP_SECS: u64 = 600;
    /// An hour of retrying, then the next scheduled run tries again.
    pub const RETRY_MAX_ELAPSED_SECS: u64 = 3600;
    /// A day: pending updates also change when a repository publishes, which the local metadata
    /// only shows after the next `apt update` / dnf metadata refresh, themselves daily by default.
    pub const UPDATES_MAX_CACHE_AGE_SECS: u64 = 86_400;
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
    pub updates: UpdatesConfig,
    /// What is hashed or dropped before a snapshot leaves the host.
    pub redaction: crate::redact::RedactionConfig,
    pub schedule: ScheduleConfig,
    pub spool: SpoolConfig,
    pub retry: RetryConfig,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// crontab(5) line, evaluated in UTC; 6 fields (leading seconds) accepted.
    pub cron: Spanned<String>,
    /// Random delay after each slot, drawn afresh for every run.
    pub splay_secs: Spanned<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    pub max_files: Spanned<u64>,
    pub max_bytes: Spanned<u64>,
    /// Testing only: a pause in the middle of every spool write, so that crash tests can kill the
    /// agent while a file is half written.
    pub write_pause_ms: Spanned<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First backoff step; attempt n waits a random time in [0, min(cap, base * 2^n)].
    pub base_ms: Spanned<u64>,
    pub cap_secs: Spanned<u64>,
    /// How long one burst of retries may last before waiting for the next scheduled run.
    pub max_elapsed_secs: Spanned<u64>,
}

fn spanned<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            cron: spanned(defaults::SCHEDULE_CRON.to_string()),
            splay_secs: spanned(defaults::SCHEDULE_SPLAY_SECS),
        }
    }
}

/// `[updates]`: the `updates` probe's cache of the package tool's answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdatesConfig {
    /// Longest a cached answer is reused; 0 turns the cache off.
    pub max_cache_age_secs: u64,
}

impl Default for UpdatesConfig {
    fn default() -> Self {
        UpdatesConfig {
            max_cache_age_secs: defaults::UPDATES_MAX_CACHE_AGE_SECS,
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

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            max_files: spanned(defaults::SPOOL_MAX_FILES),
            max_bytes: spanned(defaults::SPOOL_MAX_BYTES),
            write_pause_ms: spanned(0),
        }
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            base_ms: spanned(defaults::RETRY_BASE_MS),
            cap_secs: spanned(defaults::RETRY_CAP_SECS),
            max_elapsed_secs: spanned(defaults::RETRY_MAX_ELAPSED_SECS),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// Base URL of the collector, `https://` only.
    pub url: Option<Spanned<String>>,
    /// PEM bundle: when set, only these roots are trusted.
    pub ca_file: Option<Spanned<PathBuf>>,
    pub timeout_secs: Spanned<u64>,
    /// HTTPS proxy URL (`http://` or `https://`, credentials allowed); `None`: the environment's.
    pub proxy: Option<Spanned<String>>,
    /// Pins of the collector's public key (`sha256//BASE64` or hex); empty: no pinning from the
    /// config (the pins saved at enrollment apply, if any).
    pub pin_sha256: Vec<Spanned<String>>,
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
            updates: UpdatesConfig::default(),
            redaction: crate::redact::RedactionConfig::default(),
            schedule: ScheduleConfig::default(),
            spool: SpoolConfig::default(),
            retry: RetryConfig::default(),
        }
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            url: None,
            ca_file: None,
            timeout_secs: Spanned::new(0..0, defaults::COLLECTOR_TIMEOUT_SECS),
            proxy: None,
            pin_sha256: Vec::new(),
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
        for pin in &self.collector.pin_sha256 {
            if let Err(e) = crate::pin::Pin::parse(pin.get_ref()) {
                problems.push(Problem {
                    key: crate::pin::CONFIG_KEY.into(),
                    line: line(pin.span()),
                    message: e.to_string(),
                });
            }
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
        self.delivery_problems(text, &mut problems);
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

    /// The checks of the `[schedule]`, `[spool]`, `[retry]` tables and `collector.proxy`.
    fn delivery_problems(&self, text: &str, problems: &mut Vec<Problem>) {
        let mut check = |key: &str, span: std::ops::Range<usize>, bad: Option<String>| {
            if let Some(message) = bad {
                problems.push(Problem {
                    key: key.into(),
                    line: line_of(text, span.start),
                    message,
                });
            }
        };
        let at_least = |value: u64, min: u64| (value < min).then(|| format!("must be at least {min}"));
        let at_most = |value: u64, max: u64| (value > max).then(|| format!("must be at most {max}"));

        let cron = &self.schedule.cron;
        check(
            "schedule.cron",
            cron.span(),
            crate::schedule::Schedule::new(cron.get_ref(), Duration::ZERO).err(),
        );
        let splay = &self.schedule.splay_secs;
        check(
            "schedule.splay_secs",
            splay.span(),
            at_most(*splay.get_ref(), 86_400),
        );
        let max_files = &self.spool.max_files;
        check(
            "spool.max_files",
            max_files.span(),
            at_least(*max_files.get_ref(), 1),
        );
        let max_bytes = &self.spool.max_bytes;
        check(
            "spool.max_bytes",
            max_bytes.span(),
            at_least(*max_bytes.get_ref(), 64 << 10),
        );
        let pause = &self.spool.write_pause_ms;
        check(
            "spool.write_pause_ms",
            pause.span(),
            at_most(*pause.get_ref(), 60_000),
        );
        let base = &self.retry.base_ms;
        check("retry.base_ms", base.span(), at_least(*base.get_ref(), 1));
        let cap = &self.retry.cap_secs;
        check(
            "retry.cap_secs",
            cap.span(),
            at_least(*cap.get_ref(), 1).or_else(|| {
                (cap.get_ref().saturating_mul(1000) < *base.get_ref())
                    .then(|| "must not be shorter than `retry.base_ms`".to_string())
            }),
        );
        let elapsed = &self.retry.max_elapsed_secs;
        check(
            "retry.max_elapsed_secs",
            elapsed.span(),
            at_least(*elapsed.get_ref(), 1),
        );
        if let Some(proxy) = &self.collector.proxy {
            check(
                "collector.proxy",
                proxy.span(),
                check_proxy_url(proxy.get_ref()).err(),
            );
        }
    }

    /// The `run` schedule. The config was checked at load, so the line parses.
    pub fn schedule(&self) -> Result<crate::schedule::Schedule, ConfigError> {
        crate::schedule::Schedule::new(
            self.schedule.cron.get_ref(),
            Duration::from_secs(*self.schedule.splay_secs.get_ref()),
        )
        .map_err(|e| ConfigError::Missing(format!("schedule.cron: {e}")))
    }

    pub fn spool_limits(&self) -> crate::spool::Limits {
        crate::spool::Limits {
            max_files: *self.spool.max_files.get_ref(),
            max_bytes: *self.spool.max_bytes.get_ref(),
        }
    }

    pub fn spool_write_pause(&self) -> Duration {
        Duration::from_millis(*self.spool.write_pause_ms.get_ref())
    }

    pub fn retry_policy(&self) -> crate::deliver::RetryPolicy {
        crate::deliver::RetryPolicy {
            base: Duration::from_millis(*self.retry.base_ms.get_ref()),
            cap: Duration::from_secs(*self.retry.cap_secs.get_ref()),
            max_elapsed: Duration::from_secs(*self.retry.max_elapsed_secs.get_ref()),
        }
    }

    pub fn collector_proxy(&self) -> Option<&str> {
        self.collector.proxy.as_ref().map(|p| p.get_ref().as_str())
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

    /// The collector's public-key pins from the config; a bad one is an error (`validate` reports it
    /// with its line first).
    pub fn collector_pins(&self) -> Result<Vec<crate::pin::Pin>, ConfigError> {
        self.collector
            .pin_sha256
            .iter()
            .map(|p| {
                crate::pin::Pin::parse(p.get_ref())
                    .map_err(|e| ConfigError::Missing(format!("{}: {e}", crate::pin::CONFIG_KEY)))
            })
            .collect()
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

/// Checks a proxy URL: `http://` (CONNECT over plain TCP, the usual corporate proxy) or `https://`
/// (TLS to the proxy too), with a host and nothing after it. The message never repeats the URL,
/// which may carry a password.
pub fn check_proxy_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "scheme `{}` is not supported; use http:// or https://",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must be scheme://[user:password@]host[:port] and nothing more".into());
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
    fn updates_cache_age() {
        assert_eq!(Config::default().updates.max_cache_age_secs, 86_400);
        let c = Config::from_toml("[updates]\nmax_cache_age_secs = 0\n").unwrap();
        assert_eq!(c.updates.max_cache_age_secs, 0);
        assert!(Config::from_toml("[updates]\nmax_age = 5\n").is_err());
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
    fn delivery_keys_have_their_defaults() {
        let c = parse("");
        let s = c.schedule().unwrap();
        assert_eq!(s.line(), "0 * * * *");
        assert_eq!(s.splay(), Duration::from_secs(900));
        assert_eq!(
            c.spool_limits(),
            crate::spool::Limits {
                max_files: 1000,
                max_bytes: 64 << 20
            }
        );
        assert_eq!(c.spool_write_pause(), Duration::ZERO);
        let r = c.retry_policy();
        assert_eq!(
            (r.base, r.cap, r.max_elapsed),
            (
                Duration::from_secs(1),
                Duration::from_secs(600),
                Duration::from_secs(3600)
            )
        );
        assert_eq!(c.collector_proxy(), None);
    }

    #[test]
    fn delivery_keys_parse() {
        let text = r#"
[collector]
proxy = "http://user:secret@proxy.example.com:3128"
[schedule]
cron = "@daily"
splay_secs = 0
[spool]
max_files = 3
max_bytes = 1048576
write_pause_ms = 200
[retry]
base_ms = 50
cap_secs = 1
max_elapsed_secs = 30
"#;
        let c = parse(text);
        assert!(
            c.problems(text, PROBES).is_empty(),
            "{:?}",
            c.problems(text, PROBES)
        );
        assert_eq!(c.schedule().unwrap().line(), "@daily");
        assert_eq!(c.spool_limits().max_files, 3);
        assert_eq!(c.spool_write_pause(), Duration::from_millis(200));
        assert_eq!(c.retry_policy().base, Duration::from_millis(50));
        assert_eq!(
            c.collector_proxy(),
            Some("http://user:secret@proxy.example.com:3128")
        );
    }

    #[test]
    fn bad_delivery_keys_are_all_reported_with_their_lines() {
        let text = r#"[collector]
proxy = "socks5://user:secret@proxy:1080"
[schedule]
cron = "61 * * * *"
splay_secs = 100000
[spool]
max_files = 0
max_bytes = 10
[retry]
base_ms = 5000
cap_secs = 1
max_elapsed_secs = 0
"#;
        let problems = parse(text).problems(text, PROBES);
        let got: Vec<(&str, Option<usize>)> = problems.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(
            got,
            vec![
                ("collector.proxy", Some(2)),
                ("schedule.cron", Some(4)),
                ("schedule.splay_secs", Some(5)),
                ("spool.max_files", Some(7)),
                ("spool.max_bytes", Some(8)),
                ("retry.cap_secs", Some(11)),
                ("retry.max_elapsed_secs", Some(12)),
            ],
            "{problems:?}"
        );
        assert!(
            !problems.iter().any(|p| p.message.contains("secret")),
            "a proxy password leaked into a message: {problems:?}"
        );
        let err = Config::from_toml("[schedule]\ncorn = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("corn") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn collector_pins_parse_and_bad_ones_are_named_with_their_lines() {
        let pin = crate::pin::Pin::of_spki(b"collector key");
        let text =
            format!("[collector]\npin_sha256 = [\n  \"{pin}\",\n  \"sha256//short\",\n  \"not-a-pin\",\n]\n");
        let c = parse(&text);
        let problems = c.problems(&text, PROBES);
        let got: Vec<(&str, Option<usize>)> = problems.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert_eq!(
            got,
            [
                ("collector.pin_sha256", Some(4)),
                ("collector.pin_sha256", Some(5))
            ],
            "{problems:?}"
        );
        assert!(problems[0].message.contains("sha256//short"), "{problems:?}");
        assert!(c.collector_pins().is_err());

        let text = format!("[collector]\npin_sha256 = [\"{pin}\"]\n");
        let c = parse(&text);
        assert!(c.problems(&text, PROBES).is_empty());
        assert_eq!(c.collector_pins().unwrap(), vec![pin]);
        assert!(parse("").collector_pins().unwrap().is_empty());
        // A single string instead of a list is a type error with its line.
        let err = Config::from_toml(&format!("[collector]\npin_sha256 = \"{pin}\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("pin_sha256") || err.contains("line 2"), "{err}");
    }

    #[test]
    fn explicit_missing_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(Some(&dir.path().join("nope.toml")), PROBES).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }
}
