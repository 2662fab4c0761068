//! The command line: `serve`, and the admin commands that manage orgs, contracts, environments,
//! enrollment tokens and hosts directly in the data directory's database (no server needed; they also
//! work while `serve` runs, thanks to SQLite's WAL).
//!
//! Exit codes: 0 success; 2 bad usage (clap); 78 (`EX_CONFIG`) a config or argument the user must fix
//! (invalid config file, unknown org, contract dates, ...); 1 anything else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use time::{Date, OffsetDateTime};

use crate::config::Config;
use crate::entitlement::{self, Tier};
use crate::risk_cmd;
use crate::store::audit::Actor;
use crate::store::{Revoked, Store, StoreError, ts};

/// `EX_CONFIG` from sysexits.h.
const EX_CONFIG: u8 = 78;

#[derive(Debug, Parser)]
#[command(
    name = "callhome-collector",
    version,
    about = "callhome collector: receives health snapshots from callhome agents over HTTPS"
)]
pub struct Cli {
    /// Directory holding the database (callhome.db) and the generated TLS certificate (tls/).
    #[arg(long, global = true, value_name = "DIR", default_value = ".")]
    pub data_dir: PathBuf,
    /// Collector config file (TOML). Without it, defaults apply.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// PostgreSQL database instead of the embedded SQLite file, e.g.
    /// postgres://callhome@127.0.0.1:5432/callhome (overrides `database_url` in the config file).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTPS server until SIGTERM or SIGINT.
    Serve {
        /// Address to listen on (overrides `listen` in the config file); port 0 picks a free port.
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Check the config file and exit: 0 when valid, 78 when not.
    Validate,
    /// The TLS certificate in use.
    #[command(subcommand)]
    Tls(crate::tls::TlsCommand),
    /// Customer orgs (ORG-IDs).
    #[command(subcommand)]
    Org(OrgCommand),
    /// Support contracts of an org.
    #[command(subcommand)]
    Contract(ContractCommand),
    /// Environments (named deployments) of an org.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Enrollment tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Enrolled hosts.
    #[command(subcommand)]
    Host(HostCommand),
    /// Findings: what the rules found on hosts and environments.
    #[command(subcommand)]
    Finding(risk_cmd::FindingCommand),
    /// Suppressions: rules a TAM decided to silence for an org, environment or host.
    #[command(subcommand)]
    Suppress(risk_cmd::SuppressCommand),
    /// The critical queue of Priority and Priority Plus orgs.
    #[command(subcommand)]
    Queue(risk_cmd::QueueCommand),
    /// Risk scores and their history.
    #[command(subcommand)]
    Score(risk_cmd::ScoreCommand),
    /// Planned changes (change windows) of an org's environments.
    #[command(subcommand)]
    Change(risk_cmd::ChangeCommand),
    /// Capacity: session headroom at the observed peak, per environment.
    #[command(subcommand)]
    Capacity(risk_cmd::CapacityCommand),
    /// The periodic judgements.
    #[command(subcommand)]
    Jobs(risk_cmd::JobsCommand),
    /// The rule catalog.
    #[command(subcommand)]
    Rules(crate::rules_cmd::RulesCommand),
    /// TAM console users (admins and TAMs).
    #[command(subcommand)]
    User(crate::account_cmd::UserCommand),
    /// Which orgs a TAM sees.
    #[command(subcommand)]
    Tam(crate::account_cmd::TamCommand),
    /// API tokens of console users, for scripts.
    #[command(subcommand)]
    ApiToken(crate::account_cmd::ApiTokenCommand),
    /// The audit log: who did what, when and from where.
    #[command(subcommand)]
    Audit(crate::audit_cmd::AuditCommand),
    /// Fill a data directory with synthetic customers, hosts and snapshots (demos, tests, benchmarks).
    Seed(crate::seed_cmd::SeedArgs),
}

#[derive(Debug, Args)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Add an org.
    Add {
        /// The customer's ORG-ID.
        org: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// List orgs with their effective tier today.
    List(Output),
}

#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Add a support contract (one product line, 1 to 5 years, both dates included).
    Add {
        org: String,
        /// Product line, e.g. `cvad`.
        #[arg(long)]
        product: String,
        /// select, priority or priority-plus.
        #[arg(long, value_parser = parse_tier)]
        tier: Tier,
        /// First day covered (YYYY-MM-DD).
        #[arg(long, value_parser = entitlement::parse_date)]
        start: Date,
        /// Last day covered (YYYY-MM-DD).
        #[arg(long, value_parser = entitlement::parse_date)]
        end: Date,
    },
    /// List an org's contracts.
    List {
        org: String,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum EnvCommand {
    /// Add an environment to an org.
    Add { org: String, env: String },
    /// List an org's environments.
    List {
        org: String,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue an enrollment token for one org and environment; prints the token alone on stdout.
    Issue {
        org: String,
        env: String,
        /// Days until the token expires.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u16).range(1..=3650))]
        expires_in_days: u16,
    },
    /// List an org's tokens (ids and state; the tokens themselves are never stored).
    List {
        org: String,
        #[command(flatten)]
        output: Output,
    },
    /// Revoke a token by its id (`tok_…`, see `token list`).
    Revoke { token_id: String },
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// List enrolled hosts with their snapshot count and last contact.
    List {
        /// Only this org's hosts.
        #[arg(long)]
        org: Option<String>,
        /// Only this environment's hosts (with --org).
        #[arg(long, requires = "org")]
        env: Option<String>,
        #[command(flatten)]
        output: Output,
    },
}

fn parse_tier(s: &str) -> Result<Tier, String> {
    s.parse()
}

/// Why a command failed, and so its exit code.
#[derive(Debug)]
pub enum CliError {
    /// The user must fix an argument or the config: exit 78.
    Usage(String),
    Failed(anyhow::Error),
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        if e.is_usage() || matches!(e, StoreError::SchemaTooNew { .. }) {
            CliError::Usage(e.to_string())
        } else {
            CliError::Failed(e.into())
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        // `serve` on a database from a newer collector (a downgrade): 78, so that systemd does not
        // restart it in a loop (RestartPreventExitStatus=78) and the message says what to do.
        if matches!(
            e.downcast_ref::<StoreError>(),
            Some(StoreError::SchemaTooNew { .. })
        ) {
            return CliError::Usage(format!("{e:#}"));
        }
        CliError::Failed(e)
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EX_CONFIG)
        }
        Err(CliError::Failed(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; `CALLHOME_LOG` takes `tracing` targets syntax (`info`,
/// `warn,callhome_collector=debug`), default `info`.
fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;

    let spec = std::env::var("CALLHOME_LOG").unwrap_or_default();
    let (filter, bad) = if spec.trim().is_empty() {
        (Targets::new().with_default(LevelFilter::INFO), None)
    } else {
        match spec.parse::<Targets>() {
            Ok(t) => (t, None),
            Err(e) => (Targets::new().with_default(LevelFilter::INFO), Some(e)),
        }
    };
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(filter)
        .init();
    if let Some(e) = bad {
        tracing::warn!("ignoring CALLHOME_LOG={spec:?}: {e}; logging at info");
    }
}

fn load_config(cli: &Cli) -> Result<Config, CliError> {
    match &cli.config {
        Some(path) => Config::load(path).map_err(|e| CliError::Usage(e.to_string())),
        None => Ok(Config::default()),
    }
}

/// Threads for blocking work (decoding and judging snapshots, database reads). Tokio's default
/// of 512 lets a burst of posts start a thread each; on a small machine they then spend their time
/// switching between each other rather than working. A few per core keep the cores busy while
/// some wait on the database.
fn blocking_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    (cores * 4).max(8)
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    let now = OffsetDateTime::now_utc();
    match &cli.command {
        Command::Serve { listen } => {
            let mut config = load_config(&cli)?;
            if let Some(listen) = listen {
                config.listen = *listen;
            }
            if let Some(url) = &cli.database_url {
                config.database_url = Some(url.clone());
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(blocking_threads())
                .build()
                .map_err(|e| CliError::Failed(e.into()))?;
            runtime.block_on(crate::server::serve(config, &cli.data_dir))?;
            Ok(())
        }
        Command::Validate => {
            load_config(&cli)?;
            match &cli.config {
                Some(path) => println!("{}: valid", path.display()),
                None => println!("no --config given: the defaults apply"),
            }
            Ok(())
        }
        Command::Tls(cmd) => crate::tls::command(cmd, &load_config(&cli)?.tls, &cli.data_dir)
            .map_err(|e| CliError::Failed(e.into())),
        Command::Org(cmd) => org(&open(&cli)?, cmd, now),
        Command::Contract(cmd) => contract(&open(&cli)?, cmd, now),
        Command::Env(cmd) => env(&open(&cli)?, cmd, now),
        Command::Token(cmd) => token(&open(&cli)?, cmd, now),
        Command::Finding(cmd) => risk_cmd::findings(&open(&cli)?, cmd, now),
        Command::Suppress(cmd) => risk_cmd::suppress(&open(&cli)?, cmd, now),
        Command::Queue(cmd) => risk_cmd::queue(&open(&cli)?, cmd, now),
        Command::Score(cmd) => risk_cmd::score(&open(&cli)?, cmd, now),
        Command::Change(cmd) => risk_cmd::change(&open(&cli)?, cmd, now),
        Command::Capacity(cmd) => risk_cmd::capacity(&open(&cli)?, &load_config(&cli)?, cmd, now),
        Command::Jobs(risk_cmd::JobsCommand::Run) => risk_cmd::jobs(&open(&cli)?, &load_config(&cli)?, now),
        Command::Jobs(risk_cmd::JobsCommand::Runs { name, limit }) => {
            risk_cmd::job_runs(&open(&cli)?, name.as_deref(), *limit)
        }
        Command::Rules(cmd) => Ok(crate::rules_cmd::run(cmd)?),
        Command::User(cmd) => crate::account_cmd::user(&open(&cli)?, cmd, now),
        Command::Tam(cmd) => crate::account_cmd::tam(&open(&cli)?, cmd, now),
        Command::ApiToken(cmd) => crate::account_cmd::api_token(&open(&cli)?, cmd, now),
        Command::Seed(args) => crate::seed_cmd::run(&open(&cli)?, args, now),
        Command::Audit(cmd) => crate::audit_cmd::run(&open(&cli)?, cmd),
        Command::Host(HostCommand::List { org, env, output }) => {
            let hosts = open(&cli)?.list_hosts(org.as_deref(), env.as_deref())?;
            if output.json {
                return print_json(&hosts);
            }
            print_table(
                &[
                    "HOST_ID",
                    "ORG",
                    "ENVIRONMENT",
                    "HOSTNAME",
                    "ROLE",
                    "SNAPSHOTS",
                    "LAST_SEEN",
                    "ENROLLED_AT",
                ],
                hosts.iter().map(|h| {
                    vec![
                        h.host_id.to_string(),
                        h.org.clone(),
                        h.environment.clone(),
                        h.hostname.clone(),
                        h.role.clone(),
                        h.snapshots.to_string(),
                        h.last_seen.as_deref().map_or("never".to_owned(), short_ts),
                        short_ts(&h.enrolled_at),
                    ]
                }),
            );
            Ok(())
        }
    }
}

fn open(cli: &Cli) -> Result<Store, CliError> {
    let url = match &cli.database_url {
        Some(url) => Some(url.clone()),
        None if cli.config.is_some() => load_config(cli)?.database_url,
        None => None,
    };
    Ok(Store::open_configured(&cli.data_dir, url.as_deref())?)
}

fn org(store: &Store, cmd: &OrgCommand, now: OffsetDateTime) -> Result<(), CliError> {
    match cmd {
        OrgCommand::Add { org, name } => {
            let org = store.add_org(org, name, &Actor::cli(), now)?;
            eprintln!("added org {} ({})", org.id, org.name);
        }
        OrgCommand::List(output) => {
            #[derive(Serialize)]
            struct Row {
                id: String,
                name: String,
                /// Effective tier today; null when lapsed.
                tier: Option<String>,
                created_at: String,
            }
            let mut rows = Vec::new();
            for o in store.list_orgs()? {
                let tier = store.org_tier(&o.id, now.date())?;
                rows.push(Row {
                    tier: tier.map(|t| t.to_string()),
                    id: o.id,
                    name: o.name,
                    created_at: o.created_at,
                });
            }
            if output.json {
                return print_json(&rows);
            }
            print_table(
                &["ORG", "NAME", "TIER", "CREATED_AT"],
                rows.iter().map(|r| {
                    vec![
                        r.id.clone(),
                        r.name.clone(),
                        r.tier.clone().unwrap_or_else(|| "lapsed".to_owned()),
                        short_ts(&r.created_at),
                    ]
                }),
            );
        }
    }
    Ok(())
}

fn contract(store: &Store, cmd: &ContractCommand, now: OffsetDateTime) -> Result<(), CliError> {
    match cmd {
        ContractCommand::Add {
            org,
            product,
            tier,
            start,
            end,
        } => {
            let c = store.add_contract(org, product, *tier, *start, *end, &Actor::cli(), now)?;
            eprintln!(
                "added contract {} for org {}: {} {} from {} to {}",
                c.id, c.org, c.product, c.tier, c.start, c.end
            );
        }
        ContractCommand::List { org, output } => {
            let contracts = store.list_contracts(org)?;
            if output.json {
                return print_json(&contracts);
            }
            let today = now.date();
            print_table(
                &["ID", "PRODUCT", "TIER", "START", "END", "STATUS"],
                contracts.iter().map(|c| {
                    let status = if c.term().is_active(today) {
                        "active"
                    } else if c.start > today {
                        "future"
                    } else {
                        "expired"
                    };
                    vec![
                        c.id.to_string(),
                        c.product.clone(),
                        c.tier.to_string(),
                        c.start.to_string(),
                        c.end.to_string(),
                        status.to_owned(),
                    ]
                }),
            );
        }
    }
    Ok(())
}

fn env(store: &Store, cmd: &EnvCommand, now: OffsetDateTime) -> Result<(), CliError> {
    match cmd {
        EnvCommand::Add { org, env } => {
            store.add_environment(org, env, now)?;
            eprintln!("added environment {env} to org {org}");
        }
        EnvCommand::List { org, output } => {
            let envs = store.list_environments(org)?;
            if output.json {
                return print_json(&envs);
            }
            print_table(
                &["ENVIRONMENT", "HOSTS", "CREATED_AT"],
                envs.iter()
                    .map(|e| vec![e.name.clone(), e.hosts.to_string(), short_ts(&e.created_at)]),
            );
        }
    }
    Ok(())
}

fn token(store: &Store, cmd: &TokenCommand, now: OffsetDateTime) -> Result<(), CliError> {
    match cmd {
        TokenCommand::Issue {
            org,
            env,
            expires_in_days,
        } => {
            let issued = store.issue_token(
                org,
                env,
                time::Duration::days(i64::from(*expires_in_days)),
                &Actor::cli(),
                now,
            )?;
            eprintln!(
                "issued enrollment token {} for org {org}, environment {env}, expiring {}",
                issued.id, issued.expires_at
            );
            println!("{}", issued.token.expose());
        }
        TokenCommand::List { org, output } => {
            let tokens = store.list_tokens(org)?;
            if output.json {
                return print_json(&tokens);
            }
            let now_ts = ts(now);
            print_table(
                &["ID", "ENVIRONMENT", "STATUS", "USES", "CREATED_AT", "EXPIRES_AT"],
                tokens.iter().map(|t| {
                    let status = if t.revoked_at.is_some() {
                        "revoked"
                    } else if t.expires_at <= now_ts {
                        "expired"
                    } else {
                        "active"
                    };
                    vec![
                        t.id.clone(),
                        t.environment.clone(),
                        status.to_owned(),
                        t.uses.to_string(),
                        short_ts(&t.created_at),
                        short_ts(&t.expires_at),
                    ]
                }),
            );
        }
        TokenCommand::Revoke { token_id } => match store.revoke_token(token_id, &Actor::cli(), now)? {
            Revoked::Now => eprintln!("revoked token {token_id}"),
            Revoked::Already => eprintln!("token {token_id} was already revoked"),
        },
    }
    Ok(())
}

pub(crate) fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Failed(e.into()))?;
    println!("{text}");
    Ok(())
}

/// Columns padded to their widest cell; the last column is not padded.
pub(crate) fn print_table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// `2026-11-29T04:36:23.123456Z` -> `2026-11-29T04:36:23Z` for tables.
pub(crate) fn short_ts(t: &str) -> String {
    match t.split_once('.') {
        Some((seconds, _)) => format!("{seconds}Z"),
        None => t.to_owned(),
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
    fn global_flags_parse_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "callhome-collector",
            "token",
            "issue",
            "ORG-1",
            "prod",
            "--data-dir",
            "/tmp/x",
        ])
        .unwrap();
        assert_eq!(cli.data_dir, PathBuf::from("/tmp/x"));
        assert!(matches!(
            cli.command,
            Command::Token(TokenCommand::Issue {
                expires_in_days: 30,
                ..
            })
        ));
    }

    #[test]
    fn bad_tier_is_a_usage_error_naming_the_tiers() {
        let err = Cli::try_parse_from([
            "callhome-collector",
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
        ])
        .unwrap_err();
        assert!(err.to_string().contains("priority-plus"), "{err}");
    }

    #[test]
    fn short_timestamps() {
        assert_eq!(short_ts("2026-11-29T04:36:23.123456Z"), "2026-11-29T04:36:23Z");
        assert_eq!(short_ts("never"), "never");
    }
}
