//! The collector's configuration file (TOML). Every key, its default and its meaning live here, in one
//! place; unknown keys are refused with the key's name and line.
//!
//! ```toml
//! listen = "0.0.0.0:8443"          # address of the HTTPS listener; `serve --listen` overrides it
//!
//! [tls]                            # both or neither; neither = self-signed cert in DATA_DIR/tls/
//! cert_file = "/etc/callhome/tls/cert.pem"   # PEM chain, leaf first; relative paths are relative
//! key_file = "/etc/callhome/tls/key.pem"     # to the config file's directory
//! client_auth = "off"              # "required": agents present a client certificate from the agent
//!                                  # CA (DATA_DIR/agent-ca) bound to their credential's host, org
//!                                  # and environment (mutual TLS); enrollment and the console need none
//! client_cert_validity_secs = 7776000  # 90 days: client certificates the agent CA signs; agents
//!                                  # renew when less than a third is left
//!
//! [limits]
//! max_body_bytes = 4194304         # 4 MiB: request body as sent (compressed)
//! max_decompressed_bytes = 16777216  # 16 MiB: snapshot JSON after decompression
//! max_enroll_body_bytes = 16384    # 16 KiB: body of POST /v1/enroll
//! header_read_timeout_secs = 10    # time to receive the request headers
//! request_timeout_secs = 30        # time to read the body and answer
//! tls_handshake_timeout_secs = 10
//! max_inflight_snapshots = 64      # snapshot posts admitted at once; the next one gets 429
//! retry_after_secs = 5             # Retry-After of a 429 or 503 (plus up to half again, at random)
//! shutdown_drain_secs = 10         # on SIGTERM/SIGINT: time in-flight requests get to finish
//! agent_posts_per_minute = 60      # snapshot posts per agent credential (token bucket), then 429
//! agent_posts_burst = 60           # posts an agent may make at once (a spool replay)
//! requests_per_minute_per_ip = 1200  # every request from one client address, then 429
//! max_connections = 4096           # open connections; past it new ones are closed at once
//! max_connections_per_ip = 256     # open connections from one client address
//!
//! [jobs]                           # periodic judgements: fleet and trend rules, scores
//! interval_secs = 300              # how often they run (also once at start)
//! default_schedule_interval_secs = 4500  # assumed agent interval when an agent does not report one
//! trend_window_days = 30           # history that capacity forecasts look at
//! snapshot_retention_days = 30     # raw snapshots kept (each host's latest always)
//! score_history_days = 730         # daily score history kept
//!
//! [webhook]                        # Priority Plus critical alerts; no url = no alerts sent
//! url = "https://alerts.example.com/callhome"  # https; http only to a loopback address
//! secret_file = "/etc/callhome/webhook.secret" # HMAC-SHA256 key (required with url); relative
//!                                  # paths are relative to the config file's directory
//! ca_file = "/etc/callhome/webhook-ca.pem"     # optional: trust only this CA, not the system's
//! timeout_secs = 10                # per attempt
//! max_age_secs = 86400             # an alert undelivered after this long is given up (logged)
//!
//! [console]                        # TAM console sign-in (browser sessions and lock-out)
//! session_idle_minutes = 30        # a session unused this long ends (each request extends it)
//! session_max_hours = 12           # a session ends this long after sign-in, however busy
//! lockout_failures = 5             # failed sign-ins for one login within lockout_minutes that lock
//!                                  # it; one address is locked after 4 times as many (any logins)
//! lockout_minutes = 15             # the window failures are counted in, and how long a lock lasts
//!
//! [metrics]                        # GET /metrics, Prometheus text format
//! enabled = true                   # false: /metrics answers 404
//! bearer_token_file = "/etc/callhome/metrics.token"  # optional: scrapers from other addresses
//!                                  # send `Authorization: Bearer <file's content>`; loopback
//!                                  # needs no token; without it only loopback may scrape
//! stale_after_secs = 9000          # a host with no snapshot for this long counts as stale
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "0.0.0.0:8443";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: SocketAddr,
    /// PostgreSQL URL; unset: the embedded SQLite file in the data directory.
    pub database_url: Option<String>,
    pub tls: TlsConfig,
    pub limits: Limits,
    pub jobs: JobsConfig,
    pub webhook: WebhookConfig,
    pub console: ConsoleConfig,
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            database_url: None,
            tls: TlsConfig::default(),
            limits: Limits::default(),
            jobs: JobsConfig::default(),
            webhook: WebhookConfig::default(),
            console: ConsoleConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// `[metrics]`: who may scrape `/metrics` (`http::metrics`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// The token a scraper from a non-loopback address must present; none: loopback only.
    pub bearer_token_file: Option<PathBuf>,
    /// Twice the agents' default interval (hourly plus up to 15 minutes of splay), as the fleet
    /// rule that flags silent hosts counts.
    pub stale_after_secs: u64,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            bearer_token_file: None,
            stale_after_secs: 9000,
        }
    }
}

/// Minutes as a duration, capped far beyond any valid setting (an unvalidated value cannot overflow).
fn minutes(n: u64) -> time::Duration {
    time::Duration::minutes(i64::try_from(n.min(1 << 32)).unwrap_or(0))
}

/// `[console]`: sessions and the sign-in lock-out (`http::auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// OWASP's session guidance: 15 to 30 minutes idle for a low-to-medium-risk application.
    pub session_idle_minutes: u64,
    /// A working day: a TAM signs in once a morning.
    pub session_max_hours: u64,
    pub lockout_failures: u32,
    pub lockout_minutes: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            session_idle_minutes: 30,
            session_max_hours: 12,
            lockout_failures: 5,
            lockout_minutes: 15,
        }
    }
}

impl ConsoleConfig {
    pub fn session_idle(&self) -> time::Duration {
        minutes(self.session_idle_minutes)
    }
    pub fn session_max(&self) -> time::Duration {
        minutes(self.session_max_hours.saturating_mul(60))
    }
    pub fn lockout_window(&self) -> time::Duration {
        minutes(self.lockout_minutes)
    }
    /// Failures from one address (whatever the logins) that lock that address.
    pub fn lockout_failures_per_address(&self) -> u32 {
        self.lockout_failures.saturating_mul(4)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Fleet rules (staleness), forecasts and environment/org scores run this often. Staleness is
    /// measured in hours, so minutes of delay do not matter; each run holds the writer briefly per
    /// environment.
    pub interval_secs: u64,
    /// The agent default (hourly with up to 15 minutes of splay), for agents that do not say.
    pub default_schedule_interval_secs: u64,
    pub trend_window_days: u32,
    /// Raw snapshots older than this are deleted (each host's latest is always kept).
    pub snapshot_retention_days: u32,
    /// Daily score history older than this is deleted (two years by default).
    pub score_history_days: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            interval_secs: 300,
            default_schedule_interval_secs: 4500,
            trend_window_days: 30,
            snapshot_retention_days: 30,
            score_history_days: 730,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub url: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub timeout_secs: u64,
    pub max_age_secs: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: None,
            secret_file: None,
            ca_file: None,
            timeout_secs: 10,
            max_age_secs: 86_400,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    pub client_cert_validity_secs: u64,
}

/// Client certificates issued for 90 days: short enough that a stolen key does not last, long enough
/// that a host offline for weeks still renews.
pub const DEFAULT_CLIENT_CERT_VALIDITY_SECS: u64 = 90 * 86_400;
/// Longest client certificate validity accepted: 398 days, the CA/Browser Forum's cap for TLS
/// certificates.
const MAX_CLIENT_CERT_VALIDITY_SECS: u64 = 398 * 86_400;
/// Shortest: a certificate must outlive the request that fetched it.
const MIN_CLIENT_CERT_VALIDITY_SECS: u64 = 60;

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            client_auth: ClientAuth::Off,
            client_cert_validity_secs: DEFAULT_CLIENT_CERT_VALIDITY_SECS,
        }
    }
}

impl TlsConfig {
    pub fn client_cert_validity(&self) -> time::Duration {
        time::Duration::seconds(i64::try_from(self.client_cert_validity_secs).unwrap_or(i64::MAX))
    }
}

/// `[tls] client_auth`: whether the agent routes need a client certificate (mutual TLS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificate is asked for. Agents that send a CSR still get certificates, so that
    /// `required` can be turned on later without enrolling them again.
    #[default]
    Off,
    /// The TLS handshake asks for a certificate and verifies any presented against the agent CA; the
    /// snapshot and renewal routes refuse a request without one, or with one bound to another host.
    Required,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_body_bytes: u64,
    pub max_decompressed_bytes: u64,
    pub max_enroll_body_bytes: u64,
    pub header_read_timeout_secs: u64,
    pub request_timeout_secs: u64,
    pub tls_handshake_timeout_secs: u64,
    /// Snapshot posts admitted at once (from authentication to commit); one more is answered 429
    /// `too_many_requests` with `Retry-After` before its body is read. SQLite has a single writer, so
    /// admitting more than it can commit only grows a queue of bodies in memory: the worst case held
    /// is this times (`max_body_bytes` + `max_decompressed_bytes`), 1.25 GiB at the defaults, while 64 real
    /// snapshots (~16 KiB compressed, some 100 KiB of JSON) hold under 8 MiB. 64 keeps the writer busy (bodies are
    /// read and decompressed in parallel, commits take milliseconds) while a refused agent learns at
    /// once to come back later, instead of waiting out a long queue and timing out.
    pub max_inflight_snapshots: u32,
    /// The `Retry-After` (seconds) of a 429 and of a 503 while shutting down. Each answer adds a
    /// random 0 to `retry_after_secs / 2`, so that a fleet turned away in the same second does not
    /// come back in the same second, in step, and get turned away again.
    pub retry_after_secs: u64,
    /// After SIGTERM/SIGINT: how long requests in flight may take to finish before their connections
    /// are closed. Below systemd's default `TimeoutStopSec` (90 s) and Kubernetes' default grace
    /// period (30 s), so the collector exits by itself before it is killed.
    pub shutdown_drain_secs: u64,
    /// Snapshot posts per agent credential: a token bucket refilled at this rate a minute. A
    /// healthy agent posts about once an hour; the burst lets it replay a spool after an outage.
    pub agent_posts_per_minute: u32,
    pub agent_posts_burst: u32,
    /// Every request from one client address (also the console and enrollment): a token bucket
    /// with a burst of the same size. `/healthz` and `/readyz` are exempt (load balancers). The
    /// address is the TCP peer's: behind a proxy or load balancer that does not pass TCP through,
    /// every request comes from its address, so raise this (and `max_connections_per_ip`) to the
    /// whole fleet's rate there; agents behind one NAT gateway share it too.
    pub requests_per_minute_per_ip: u32,
    /// Open connections at once; the next one is closed before its TLS handshake.
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 * 1024 * 1024,
            max_decompressed_bytes: 16 * 1024 * 1024,
            max_enroll_body_bytes: 16 * 1024,
            header_read_timeout_secs: 10,
            request_timeout_secs: 30,
            tls_handshake_timeout_secs: 10,
            max_inflight_snapshots: 64,
            retry_after_secs: 5,
            shutdown_drain_secs: 10,
            agent_posts_per_minute: 60,
            agent_posts_burst: 60,
            requests_per_minute_per_ip: 1200,
            max_connections: 4096,
            max_connections_per_ip: 256,
        }
    }
}

impl Limits {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.tls_handshake_timeout_secs)
    }
    pub fn shutdown_drain(&self) -> Duration {
        Duration::from_secs(self.shutdown_drain_secs)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config file {path}:\n  - {}", problems.join("\n  - "))]
    Invalid { path: PathBuf, problems: Vec<String> },
}

impl Config {
    /// Reads and validates a config file. Relative TLS paths are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for file in [
            &mut config.tls.cert_file,
            &mut config.tls.key_file,
            &mut config.webhook.secret_file,
            &mut config.webhook.ca_file,
            &mut config.metrics.bearer_token_file,
        ]
        .into_iter()
        .flatten()
        {
            if file.is_relative() {
                *file = base.join(&*file);
            }
        }
        config.validate().map_err(|problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })?;
        Ok(config)
    }

    /// Parses TOML text; the error names the key and its line (toml's own rendering).
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// Every problem at once, so that one edit fixes them all.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        match (&self.tls.cert_file, &self.tls.key_file) {
            (Some(_), None) => problems.push("tls.cert_file is set but tls.key_file is not".to_owned()),
            (None, Some(_)) => problems.push("tls.key_file is set but tls.cert_file is not".to_owned()),
            _ => {}
        }
        let validity = self.tls.client_cert_validity_secs;
        if !(MIN_CLIENT_CERT_VALIDITY_SECS..=MAX_CLIENT_CERT_VALIDITY_SECS).contains(&validity) {
            problems.push(format!(
                "tls.client_cert_validity_secs must be {MIN_CLIENT_CERT_VALIDITY_SECS} to \
                 {MAX_CLIENT_CERT_VALIDITY_SECS} (398 days)"
            ));
        }
        let l = &self.limits;
        for (key, value) in [
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_decompressed_bytes", l.max_decompressed_bytes),
            ("limits.max_enroll_body_bytes", l.max_enroll_body_bytes),
            ("limits.header_read_timeout_secs", l.header_read_timeout_secs),
            ("limits.request_timeout_secs", l.request_timeout_secs),
            ("limits.tls_handshake_timeout_secs", l.tls_handshake_timeout_secs),
            (
                "limits.max_inflight_snapshots",
                u64::from(l.max_inflight_snapshots),
            ),
            ("limits.retry_after_secs", l.retry_after_secs),
            ("limits.shutdown_drain_secs", l.shutdown_drain_secs),
            (
                "limits.agent_posts_per_minute",
                u64::from(l.agent_posts_per_minute),
            ),
            ("limits.agent_posts_burst", u64::from(l.agent_posts_burst)),
            (
                "limits.requests_per_minute_per_ip",
                u64::from(l.requests_per_minute_per_ip),
            ),
            ("limits.max_connections", u64::from(l.max_connections)),
            (
                "limits.max_connections_per_ip",
                u64::from(l.max_connections_per_ip),
            ),
        ] {
            if value == 0 {
                problems.push(format!("{key} must be greater than 0"));
            }
        }
        // Bodies are held in memory; a limit above 4 GiB is a typo, not a plan.
        for (key, value) in [
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_decompressed_bytes", l.max_decompressed_bytes),
            ("limits.max_enroll_body_bytes", l.max_enroll_body_bytes),
        ] {
            if value > 4 * 1024 * 1024 * 1024 {
                problems.push(format!("{key} = {value} is more than 4 GiB"));
            }
        }
        // Forecasts read trend points, which retention deletes with their snapshots.
        if self.jobs.snapshot_retention_days < self.jobs.trend_window_days {
            problems.push(format!(
                "jobs.snapshot_retention_days = {} is less than jobs.trend_window_days = {}: forecasts would lose their history",
                self.jobs.snapshot_retention_days, self.jobs.trend_window_days
            ));
        }
        // An agent told to wait longer than a day has, in effect, been told to stop calling home.
        if l.retry_after_secs > 86_400 {
            problems.push(format!(
                "limits.retry_after_secs = {} is more than a day",
                l.retry_after_secs
            ));
        }
        for (key, value) in [
            ("jobs.interval_secs", self.jobs.interval_secs),
            (
                "jobs.default_schedule_interval_secs",
                self.jobs.default_schedule_interval_secs,
            ),
            ("jobs.trend_window_days", u64::from(self.jobs.trend_window_days)),
            (
                "jobs.snapshot_retention_days",
                u64::from(self.jobs.snapshot_retention_days),
            ),
            ("jobs.score_history_days", u64::from(self.jobs.score_history_days)),
            ("webhook.timeout_secs", self.webhook.timeout_secs),
            ("webhook.max_age_secs", self.webhook.max_age_secs),
            ("console.session_idle_minutes", self.console.session_idle_minutes),
            ("console.session_max_hours", self.console.session_max_hours),
            (
                "console.lockout_failures",
                u64::from(self.console.lockout_failures),
            ),
            ("console.lockout_minutes", self.console.lockout_minutes),
            ("metrics.stale_after_secs", self.metrics.stale_after_secs),
        ] {
            if value == 0 {
                problems.push(format!("{key} must be greater than 0"));
            }
        }
        let c = &self.console;
        if c.session_max_hours > 24 * 31 {
            problems.push(format!(
                "console.session_max_hours = {} is more than a month",
                c.session_max_hours
            ));
        }
        if c.session_idle_minutes > c.session_max_hours.saturating_mul(60) {
            problems.push("console.session_idle_minutes is longer than console.session_max_hours".to_owned());
        }
        if c.lockout_minutes > 24 * 60 {
            problems.push(format!(
                "console.lockout_minutes = {} is more than a day",
                c.lockout_minutes
            ));
        }
        if let Some(url) = &self.webhook.url {
            if let Err(e) = crate::webhook::check_url(url) {
                problems.push(format!("webhook.url: {e}"));
            }
            if self.webhook.secret_file.is_none() {
                problems
                    .push("webhook.url is set but webhook.secret_file is not: alerts are signed".to_owned());
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.limits.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(c.limits.max_decompressed_bytes, 16 * 1024 * 1024);
        assert_eq!(c.limits.max_enroll_body_bytes, 16 * 1024);
        assert_eq!(c.limits.header_read_timeout_secs, 10);
        assert_eq!(c.limits.request_timeout_secs, 30);
        assert_eq!(c.limits.tls_handshake_timeout_secs, 10);
        assert_eq!(c.limits.max_inflight_snapshots, 64);
        assert_eq!(c.limits.retry_after_secs, 5);
        assert_eq!(c.limits.shutdown_drain_secs, 10);
        assert!(c.tls.cert_file.is_none());
    }

    #[test]
    fn partial_sections_keep_other_defaults() {
        let c = Config::parse("listen = \"127.0.0.1:9443\"\n[limits]\nmax_body_bytes = 1024\n").unwrap();
        assert_eq!(c.listen.port(), 9443);
        assert_eq!(c.limits.max_body_bytes, 1024);
        assert_eq!(c.limits.request_timeout_secs, 30);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err =
            Config::parse("listen = \"127.0.0.1:9443\"\n\n[limits]\nmax_bodee_bytes = 1\n").unwrap_err();
        assert!(err.contains("max_bodee_bytes"), "{err}");
        assert!(err.contains("line 4"), "{err}");
    }

    #[test]
    fn bad_listen_address_is_refused() {
        let err = Config::parse("listen = \"nowhere\"\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn validation_reports_every_problem() {
        let c = Config::parse("[tls]\ncert_file = \"c.pem\"\n[limits]\nmax_body_bytes = 0\n").unwrap();
        let problems = c.validate().unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn client_auth_and_certificate_validity() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.tls.client_auth, ClientAuth::Off);
        assert_eq!(c.tls.client_cert_validity(), time::Duration::days(90));
        let c =
            Config::parse("[tls]\nclient_auth = \"required\"\nclient_cert_validity_secs = 120\n").unwrap();
        assert_eq!(c.tls.client_auth, ClientAuth::Required);
        assert_eq!(c.tls.client_cert_validity(), time::Duration::minutes(2));
        c.validate().unwrap();
        let err = Config::parse("[tls]\nclient_auth = \"optional\"\n").unwrap_err();
        assert!(err.contains("client_auth") || err.contains("optional"), "{err}");
        for bad in ["59", "34387201"] {
            let c = Config::parse(&format!("[tls]\nclient_cert_validity_secs = {bad}\n")).unwrap();
            let problems = c.validate().unwrap_err();
            assert!(
                problems[0].contains("tls.client_cert_validity_secs"),
                "{problems:?}"
            );
        }
    }

    #[test]
    fn back_pressure_limits_are_validated() {
        let c = Config::parse(
            "[limits]\nmax_inflight_snapshots = 0\nretry_after_secs = 0\nshutdown_drain_secs = 0\n",
        )
        .unwrap();
        let problems = c.validate().unwrap_err();
        for key in [
            "max_inflight_snapshots",
            "retry_after_secs",
            "shutdown_drain_secs",
        ] {
            assert!(problems.iter().any(|p| p.contains(key)), "{key}: {problems:?}");
        }
        let c = Config::parse("[limits]\nretry_after_secs = 90000\n").unwrap();
        assert_eq!(c.validate().unwrap_err().len(), 1);
        let c = Config::parse("[limits]\nmax_inflight_snapshots = 2\nretry_after_secs = 2\n").unwrap();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.limits.max_inflight_snapshots, 2);
    }

    #[test]
    fn webhook_needs_a_secret_and_a_safe_url() {
        let c = Config::parse("[webhook]\nurl = \"http://alerts.example.com/x\"\n").unwrap();
        let problems = c.validate().unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("loopback")), "{problems:?}");
        let c = Config::parse("[webhook]\nurl = \"http://127.0.0.1:9/x\"\nsecret_file = \"s\"\n").unwrap();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.jobs.interval_secs, 300);
    }

    #[test]
    fn console_defaults_and_validation() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.console.session_idle_minutes, 30);
        assert_eq!(c.console.session_max_hours, 12);
        assert_eq!(c.console.lockout_failures, 5);
        assert_eq!(c.console.lockout_minutes, 15);
        assert_eq!(c.console.lockout_failures_per_address(), 20);
        assert_eq!(c.console.session_idle(), time::Duration::minutes(30));
        let c = Config::parse("[console]\nsession_idle_minutes = 5\nlockout_failures = 3\n").unwrap();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.console.session_max_hours, 12);
        let c = Config::parse("[console]\nsession_idle_minutes = 0\nsession_max_hours = 1000\n").unwrap();
        let problems = c.validate().unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        let c = Config::parse("[console]\nsession_idle_minutes = 120\nsession_max_hours = 1\n").unwrap();
        assert_eq!(c.validate().unwrap_err().len(), 1);
        let err = Config::parse("[console]\nsession_idle = 5\n").unwrap_err();
        assert!(err.contains("session_idle"), "{err}");
    }

    #[test]
    fn load_resolves_relative_tls_paths_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collector.toml");
        std::fs::write(&path, "[tls]\ncert_file = \"c.pem\"\nkey_file = \"/abs/k.pem\"\n").unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.tls.cert_file.unwrap(), dir.path().join("c.pem"));
        assert_eq!(c.tls.key_file.unwrap(), PathBuf::from("/abs/k.pem"));
    }
}
