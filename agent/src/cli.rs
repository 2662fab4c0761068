//! The command line: parsing (clap derive), the commands, their output lines and exit codes.
//!
//! stdout carries only a command's result (the snapshot JSON of `collect`, the findings of `check`,
//! the one line of `enroll`, `send` and `validate`); errors and logs go to stderr. Exit codes are
//! sysexits (see [`crate::exit`]), and 1 for `check --fail-on` when a finding reaches the level.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use callhome_shared::api::{EnrollBody, EnrollRequest};
use callhome_shared::rules::Severity;
use clap::{Parser, Subcommand};
use time::OffsetDateTime;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::client_cert::PendingKey;
use crate::config::{self, ConfigError, LoadedConfig};
use crate::deliver::{Collector, DeliverError};
use crate::probes::{AgentHealth, PROBES};
use crate::source::{HostSource, Live, Recorder, Tree};
use crate::state::{Enrollment, StateDir, StateError};
use crate::{exit, snapshot};

/// Environment variable holding the log filter, e.g. `debug` or `info,callhome_agent=debug`.
const LOG_ENV: &str = "CALLHOME_LOG";

#[derive(Debug, Parser)]
#[command(
    name = "callhome-agent",
    version,
    about = "Health snapshots of a Citrix host, delivered to the callhome collector"
)]
pub struct Cli {
    /// Config file. Without this flag, /etc/callhome/agent.toml is read if it exists, else the
    /// built-in defaults apply.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read the host from this directory tree (a capture or a fixture, see docs/host-tree.md)
    /// instead of `/`. For `collect`, `check` and `capture`.
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a snapshot and print it as JSON, exactly as `send` would send it.
    Collect,
    /// Evaluate the host rules on a snapshot of this host (or of `--root DIR`) and print the
    /// findings; needs no collector.
    ///
    /// The snapshot is collected and redacted exactly as `collect` does. Prints a table (severity,
    /// rule, subject, title), each finding's remediation, and a summary line; `--json` prints one
    /// object instead. Exit code: 0 whatever is found, unless `--fail-on LEVEL` is given: then 1
    /// when a finding at or above LEVEL exists (counted before `--min-severity` hides any).
    /// Errors keep their usual codes (78 for the configuration, including an unusable redaction key).
    Check {
        /// One JSON object: catalog_version, host_id, snapshot_id, collected_at, findings, skipped.
        #[arg(long)]
        json: bool,
        /// Show only findings at or above this severity (critical, high, medium, low, info).
        #[arg(long, value_name = "LEVEL")]
        min_severity: Option<Severity>,
        /// Exit 1 when a finding at or above this severity exists.
        #[arg(long, value_name = "LEVEL")]
        fail_on: Option<Severity>,
    },
    /// Trade an enrollment token for this host's credential, and save it in the state directory.
    Enroll {
        /// Collector base URL (https:// only). Default: `collector.url` from the config.
        #[arg(long, value_name = "URL")]
        collector: Option<String>,
        /// Enrollment token from the collector operator (starts with `chet_`).
        #[arg(long, value_name = "TOKEN")]
        token: String,
        /// PEM file of the CA that signed the collector's certificate; only it is trusted, and it
        /// is kept for `send`. Default: `collector.ca_file`, else the system's roots (none with
        /// `--pin`: the pinned key is then the trust anchor).
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// Pin the collector's public key: `sha256//BASE64` as `callhome-collector tls pin` prints it
        /// (or 64 hex digits); repeat it to allow several keys. Without `--ca`, the pinned key is the
        /// only trust anchor (chain, name and dates are not checked, as for an SSH host key); with
        /// it, both must pass. Kept for `send` and `run`. Default: `collector.pin_sha256`.
        #[arg(long = "pin", value_name = "PIN")]
        pins: Vec<crate::pin::Pin>,
    },
    /// Collect once, spool the snapshot, and deliver the spool (oldest first, one try each).
    ///
    /// Prints `stored ID` and exits 0 when the collector stored it; prints `spooled ID` and exits 75
    /// when it waits in the spool instead (65: refused and quarantined; 74: could be neither spooled
    /// nor sent).
    Send,
    /// The daemon: snapshots on the `[schedule]`, spooled, delivered with retries.
    ///
    /// Takes a snapshot at each slot of the cron line plus a random splay, spools it and delivers
    /// the spool with backoff. Delivers what the spool holds first. Stops on SIGTERM or SIGINT.
    Run,
    /// What waits in the spool, how old it is and why (the last delivery error).
    ///
    /// Also what was dropped from a full spool and what was quarantined, with the reasons.
    Spool {
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Write the files and command outputs the probes read into a host tree (docs/host-tree.md), so
    /// that `collect --root DIR` reproduces this host offline. Hand it to support as
    /// `tar --zstd -cf host.tar.zst -C DIR .`
    Capture {
        /// A new or empty directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Check the config and print every problem found; exit 78 when there is one.
    Validate,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are "errors" that print to stdout and exit 0.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(found) = err.downcast_ref::<crate::check::FindingsAtOrAbove>() {
                // Not an error of the agent: the verdict the caller asked for.
                eprintln!("check: {found}");
                return ExitCode::from(crate::check::FINDINGS_EXIT_CODE);
            }
            match err.downcast_ref::<ConfigError>() {
                // One line per problem, each marked, so that every one is seen (and greppable).
                Some(invalid @ ConfigError::Invalid { .. }) => {
                    for line in invalid.to_string().lines() {
                        eprintln!("error: {line}");
                    }
                }
                _ => eprintln!("error: {err:#}"),
            }
            ExitCode::from(exit_code_of(&err))
        }
    }
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Validate = cli.command {
        return validate(cli.config.as_deref());
    }
    let loaded = config::load(cli.config.as_deref(), PROBES)?;
    tracing::debug!(config = %loaded.origin(), "config loaded");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let source: Arc<dyn HostSource> = match &cli.root {
        None => Arc::new(Live),
        Some(root) => {
            if !matches!(
                cli.command,
                Command::Collect | Command::Check { .. } | Command::Capture { .. }
            ) {
                return Err(ConfigError::Missing(
                    "`--root` works with `collect`, `check` and `capture` only".into(),
                )
                .into());
            }
            Arc::new(
                Tree::open(root).with_context(|| format!("cannot read the host tree {}", root.display()))?,
            )
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Collect => collect(&loaded, &source).await,
            Command::Check {
                json,
                min_severity,
                fail_on,
            } => check(&loaded, &source, json, min_severity, fail_on).await,
            Command::Capture { out } => capture(&loaded, source, &out).await,
            Command::Enroll {
                collector,
                token,
                ca,
                pins,
            } => enroll(&loaded, collector.as_deref(), &token, ca.as_deref(), pins).await,
            Command::Send => send(&loaded, &source).await,
            Command::Run => crate::daemon::run(&Arc::new(loaded.config.clone()), &source).await,
            Command::Spool { json } => spool(&loaded, json),
            Command::Validate => Ok(()),
        }
    });
    // A probe that timed out may still hold a blocking thread: do not wait for it.
    runtime.shutdown_background();
    result
}

async fn collect(loaded: &LoadedConfig, source: &Arc<dyn HostSource>) -> anyhow::Result<()> {
    let config = Arc::new(loaded.config.clone());
    let host_id = StateDir::new(&config.state_dir).host_id_or_ephemeral();
    let health = crate::daemon::agent_health_readonly(&config);
    let snapshot = crate::daemon::prepare_snapshot(&config, source, health, host_id)
        .await
        .context("cannot redact the snapshot")?;
    if let Err(error) = snapshot.validate() {
        tracing::error!(%error, "the snapshot breaks the schema: the collector would refuse it");
    }
    println!("{}", snapshot.to_json_pretty());
    Ok(())
}

/// `check`: collect as `collect` does, evaluate the host rules, print the findings.
async fn check(
    loaded: &LoadedConfig,
    source: &Arc<dyn HostSource>,
    json: bool,
    min_severity: Option<Severity>,
    fail_on: Option<Severity>,
) -> anyhow::Result<()> {
    let config = Arc::new(loaded.config.clone());
    let host_id = StateDir::new(&config.state_dir).host_id_or_ephemeral();
    let health = crate::daemon::agent_health_readonly(&config);
    let snapshot = crate::daemon::prepare_snapshot(&config, source, health, host_id)
        .await
        .context("cannot redact the snapshot")?;
    let report = crate::check::Report::new(&snapshot, min_severity);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).context("cannot print the findings")?
        );
    } else {
        print!("{}", report.to_table());
    }
    report.fail_on(fail_on)?;
    Ok(())
}

async fn enroll(
    loaded: &LoadedConfig,
    collector: Option<&str>,
    token: &str,
    ca: Option<&Path>,
    pins: Vec<crate::pin::Pin>,
) -> anyhow::Result<()> {
    let config = &loaded.config;
    let url = collector.or(config.collector_url()).ok_or_else(|| {
        ConfigError::Missing(format!(
            "no collector URL: pass `--collector URL` or set `collector.url` in {}",
            loaded.origin()
        ))
    })?;
    let ca = ca.or(config.collector_ca_file());
    let pins = if pins.is_empty() {
        config.collector_pins()?
    } else {
        pins
    };
    let client = Collector::with_proxy(
        url,
        ca,
        &pins,
        config.collector_timeout(),
        config.collector_proxy(),
    )?;
    // Read before enrolling: a CA file that vanishes in between must not leave a credential that
    // `send` cannot use.
    let ca_pem = ca
        .map(|path| {
            std::fs::read(path)
                .map_err(|e| ConfigError::Missing(format!("cannot read CA file {}: {e}", path.display())))
        })
        .transpose()?;

    let state = StateDir::new(&config.state_dir);
    let host_id = state.host_id().context("cannot keep this host's id")?;
    let host = snapshot::host_identity(config, &Live, host_id);
    let request = EnrollRequest {
        token: token.to_string(),
        host_id,
        hostname: host.hostname,
        role: config.role,
        agent_version: crate::AGENT_VERSION.to_string(),
    };
    // The client key is made here and stays here: the collector gets its CSR.
    let pending = PendingKey::generate(host_id).context("cannot make the client key pair")?;
    let body = EnrollBody::new(request, Some(pending.csr_pem().to_owned()));
    tracing::info!(collector = client.base_url(), %host_id, pins = pins.len(), "enrolling");
    let response = client.enroll(&body).await.context("enrollment failed")?;
    if response.host_id != host_id {
        tracing::warn!(sent = %host_id, assigned = %response.host_id, "collector assigned another host id");
    }
    let identity = response
        .client_certificate
        .as_ref()
        .map(|cert| pending.complete(&cert.certificate))
        .transpose()
        .context("the collector's client certificate cannot be used")?;
    state
        .save_collector_ca(ca_pem.as_deref())
        .context("cannot keep a copy of the collector's CA")?;
    state
        .save_collector_pins(&pins)
        .context("cannot keep the collector's public key pins")?;
    // Before the credential, which makes the enrollment complete: a crash in between is mended by
    // enrolling again, as any failed enrollment.
    state
        .save_client_identity(identity.as_ref().map(|(_, file)| file.as_str()))
        .context("cannot save the client certificate")?;
    let enrollment = Enrollment {
        credential: response.credential,
        host_id: response.host_id,
        org: response.org,
        environment: response.environment,
        collector_url: client.base_url().to_string(),
        enrolled_at: OffsetDateTime::now_utc(),
    };
    state
        .save_enrollment(&enrollment)
        .context("cannot save the enrollment")?;
    if let Some((identity, _)) = &identity {
        tracing::info!(not_after = %identity.not_after, "client certificate saved");
    }
    println!(
        "enrolled host {} into org {}, environment {}",
        enrollment.host_id, enrollment.org, enrollment.environment
    );
    Ok(())
}

/// `capture`: every enabled probe runs once against a recorder, which then writes the tree.
async fn capture(loaded: &LoadedConfig, source: Arc<dyn HostSource>, out: &Path) -> anyhow::Result<()> {
    let config = Arc::new(loaded.config.clone());
    let recorder = Arc::new(Recorder::new(source));
    let recording: Arc<dyn HostSource> = recorder.clone();
    let host_id = StateDir::new(&config.state_dir).host_id_or_ephemeral();
    let snapshot = snapshot::collect(&config, &recording, AgentHealth::default(), host_id, PROBES).await;
    let summary = recorder
        .write_tree(out)
        .with_context(|| format!("cannot write the capture to {}", out.display()))?;
    // What the probes made of it, unredacted like the tree itself: `collect --root` must reproduce it.
    let seen = out.join(crate::source::META_DIR).join("snapshot.json");
    std::fs::write(&seen, snapshot.to_json_pretty() + "\n")
        .with_context(|| format!("cannot write {}", seen.display()))?;
    println!(
        "captured {} files and {} command outputs ({} probes) into {}",
        summary.files,
        summary.commands,
        snapshot.probes.len(),
        out.display()
    );
    Ok(())
}

async fn send(loaded: &LoadedConfig, source: &Arc<dyn HostSource>) -> anyhow::Result<()> {
    let config = Arc::new(loaded.config.clone());
    match crate::daemon::send_once(&config, source).await {
        Ok(line) => {
            println!("{line}");
            Ok(())
        }
        Err(err) => {
            // The result line still goes to stdout: scripts read what became of the snapshot there.
            if let Some(crate::daemon::SendError::Spooled { id, .. }) = err.downcast_ref() {
                println!("spooled {id}");
            }
            Err(err)
        }
    }
}

/// `spool`: what waits, how old, and why.
fn spool(loaded: &LoadedConfig, json: bool) -> anyhow::Result<()> {
    let report = crate::daemon::spool_report(&loaded.config).context("cannot read the spool")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "spool {}: {} snapshot(s), {} bytes (limits: {} files, {} bytes)",
        report.dir.display(),
        report.depth,
        report.bytes,
        report.max_files,
        report.max_bytes
    );
    if !report.waiting.is_empty() {
        println!(
            "{:<36}  {:<20}  {:>8}  {:>8}",
            "SNAPSHOT", "TAKEN", "AGE", "BYTES"
        );
        for w in &report.waiting {
            let taken = w
                .taken_at
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                .unwrap_or_else(|| "?".into());
            let age = w.age_secs.map_or("?".into(), crate::daemon::human_age);
            println!("{:<36}  {:<20}  {:>8}  {:>8}", w.id, taken, age, w.bytes);
        }
    }
    let when = |t: Option<time::OffsetDateTime>| {
        t.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_else(|| "never".into())
    };
    println!("last delivery: {}", when(report.last_delivery));
    if let Some(error) = &report.last_error {
        println!("last error ({}): {error}", when(report.last_error_at));
    }
    println!(
        "dropped (spool full) and not yet reported to the collector: {} (all time: {})",
        report.dropped_unreported, report.dropped_total
    );
    println!(
        "quarantined: {} (all time: {}) in {}",
        report.quarantine.len(),
        report.quarantined_total,
        report.dir.join(crate::spool::QUARANTINE_DIR).display()
    );
    for q in &report.quarantine {
        println!("  {}: {}", q.file, q.reason);
    }
    Ok(())
}

/// `validate`: every problem on its own line on stderr, exit 78 if there is any.
fn validate(path: Option<&Path>) -> anyhow::Result<()> {
    let loaded = config::load(path, PROBES)?;
    println!("{}: ok", loaded.origin());
    Ok(())
}

/// The exit code for an error: the first typed error in its chain decides.
pub fn exit_code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<crate::check::FindingsAtOrAbove>().is_some() {
            return crate::check::FINDINGS_EXIT_CODE;
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return exit::CONFIG;
        }
        if let Some(e) = cause.downcast_ref::<StateError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<DeliverError>() {
            return e.exit_code();
        }
        if let Some(e) = cause.downcast_ref::<crate::daemon::SendError>() {
            return e.exit_code();
        }
        // An unusable redaction key is the operator's to fix, and must not read as `check --fail-on`'s 1.
        if let Some(crate::redact::RedactError::NoKey | crate::redact::RedactError::Key { .. }) =
            cause.downcast_ref::<crate::redact::RedactError>()
        {
            return exit::CONFIG;
        }
    }
    1
}

/// Logs to stderr, filtered by `CALLHOME_LOG` (tracing `Targets` syntax), `info` by default.
fn init_logging() {
    let spec = std::env::var(LOG_ENV).unwrap_or_default();
    let default = || Targets::new().with_default(LevelFilter::INFO);
    let (targets, bad) = match spec.trim() {
        "" => (default(), None),
        s => match s.parse::<Targets>() {
            Ok(t) => (t, None),
            Err(e) => (default(), Some(e)),
        },
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    // Fails only if a subscriber is already set, which leaves that one in place.
    let _ = tracing_subscriber::registry().with(fmt).with(targets).try_init();
    if let Some(error) = bad {
        tracing::warn!(%error, value = %spec, "{LOG_ENV} is not a valid filter: logging at info");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn typed_errors_decide_the_exit_code() {
        let e = anyhow::Error::new(StateError::NotEnrolled { path: "/x".into() }).context("send");
        assert_eq!(exit_code_of(&e), 78);
        let e = anyhow::Error::new(DeliverError::Timeout {
            url: "https://x".into(),
            secs: 1,
        });
        assert_eq!(exit_code_of(&e), 75);
        assert_eq!(exit_code_of(&anyhow::anyhow!("other")), 1);
        let e = anyhow::Error::new(crate::redact::RedactError::NoKey).context("cannot redact the snapshot");
        assert_eq!(exit_code_of(&e), 78);
        let e = anyhow::Error::new(crate::check::FindingsAtOrAbove {
            count: 1,
            level: Severity::High,
        });
        assert_eq!(exit_code_of(&e), 1);
    }
}
