//! Admin commands over judgements: findings, suppressions, the critical queue, scores, and running
//! the periodic judgements by hand. They read and write the database directly, like the other admin
//! commands, so they work with or without `serve` running.

use clap::Subcommand;
use time::OffsetDateTime;
use uuid::Uuid;

use callhome_shared::rules::Severity;

use crate::cli::{CliError, Output, print_json, print_table, short_ts};
use crate::config::Config;
use crate::store::audit::Actor;
use crate::store::jobs::JobSettings;
use crate::store::risk::{FindingFilter, FindingState};
use crate::store::{NewSuppression, Store};

#[derive(Debug, Subcommand)]
pub enum FindingCommand {
    /// List an org's findings, most severe first.
    List {
        org: String,
        /// Only this environment's.
        #[arg(long)]
        env: Option<String>,
        /// Only this host's.
        #[arg(long)]
        host: Option<Uuid>,
        /// Only findings at or above this severity (critical, high, medium, low, info).
        #[arg(long, value_parser = parse_severity)]
        severity: Option<Severity>,
        /// Only this rule's.
        #[arg(long)]
        rule: Option<String>,
        /// open, resolved or all.
        #[arg(long, default_value = "open", value_parser = parse_state)]
        state: FindingState,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum SuppressCommand {
    /// Suppress a rule for an org, one environment (--env) or one host (--host).
    Add {
        org: String,
        #[arg(long)]
        rule: String,
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        host: Option<Uuid>,
        /// Why (shown to every TAM who sees the finding).
        #[arg(long)]
        reason: String,
        /// Who decided.
        #[arg(long)]
        author: String,
        /// Days until it expires.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u16).range(1..=730))]
        days: u16,
    },
    /// List an org's suppressions.
    List {
        org: String,
        #[command(flatten)]
        output: Output,
    },
    /// End a suppression now.
    End {
        id: i64,
        #[arg(long)]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Open critical entries by deadline (Priority and Priority Plus orgs).
    List {
        #[arg(long)]
        org: Option<String>,
        /// Closed entries too.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Acknowledge an entry: records who and when.
    Ack {
        id: i64,
        #[arg(long)]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScoreCommand {
    /// An org's score, its environments' and hosts', with what makes them.
    Show {
        org: String,
        #[command(flatten)]
        output: Output,
    },
    /// Daily score history of an org, or of one environment (--env).
    History {
        org: String,
        #[arg(long)]
        env: Option<String>,
        #[arg(long, default_value_t = 30)]
        days: u16,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChangeCommand {
    /// Record a planned change (e.g. a VDA upgrade) for an environment. Findings first seen inside
    /// it are change-related; Priority Plus alerts for them wait until it ends.
    Add {
        org: String,
        env: String,
        /// Start, RFC 3339 (e.g. 2026-12-05T20:00:00Z).
        #[arg(long, value_parser = parse_time)]
        start: OffsetDateTime,
        /// End, RFC 3339.
        #[arg(long, value_parser = parse_time)]
        end: OffsetDateTime,
        #[arg(long)]
        description: String,
        #[arg(long)]
        author: String,
    },
    /// List an org's change windows, newest first.
    List {
        org: String,
        #[command(flatten)]
        output: Output,
    },
    /// Cancel a change window.
    Cancel { id: i64 },
}

fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("`{s}` is not an RFC 3339 time (like 2026-12-05T20:00:00Z): {e}"))
}

#[derive(Debug, Subcommand)]
pub enum CapacityCommand {
    /// Session load against CPU and memory headroom at the observed peak, per host and environment.
    Show {
        org: String,
        #[arg(long)]
        env: Option<String>,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Run the periodic judgements once now (fleet and trend rules, scores, catalog change).
    Run,
    /// The background job runs of the serving replicas, newest first (one per job and period
    /// across all replicas), as JSON.
    Runs {
        /// Only this job: judgements, rescore or retention.
        #[arg(long)]
        name: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

fn parse_state(s: &str) -> Result<FindingState, String> {
    match s {
        "open" => Ok(FindingState::Open),
        "resolved" => Ok(FindingState::Resolved),
        "all" => Ok(FindingState::All),
        _ => Err(format!("unknown state `{s}` (open, resolved, all)")),
    }
}

pub fn findings(store: &Store, cmd: &FindingCommand, now: OffsetDateTime) -> Result<(), CliError> {
    let FindingCommand::List {
        org,
        env,
        host,
        severity,
        rule,
        state,
        output,
    } = cmd;
    let filter = FindingFilter {
        environment: env.clone(),
        host: *host,
        min_severity: *severity,
        rule: rule.clone(),
        state: *state,
    };
    let rows = store.list_findings(org, &filter, now)?;
    if output.json {
        return print_json(&rows);
    }
    print_table(
        &[
            "ID",
            "SEVERITY",
            "RULE",
            "ENVIRONMENT",
            "HOST",
            "STATE",
            "SINCE",
            "TITLE",
        ],
        rows.iter().map(|f| {
            let state = match (&f.resolved_at, f.suppressed) {
                (Some(_), _) => "resolved",
                (None, true) => "suppressed",
                (None, false) => "open",
            };
            vec![
                f.id.to_string(),
                f.severity.to_string(),
                f.rule.clone(),
                f.environment.clone(),
                f.hostname.clone().unwrap_or_else(|| "-".to_owned()),
                state.to_owned(),
                short_ts(&f.first_seen),
                f.title.clone(),
            ]
        }),
    );
    Ok(())
}

pub fn suppress(store: &Store, cmd: &SuppressCommand, now: OffsetDateTime) -> Result<(), CliError> {
    match cmd {
        SuppressCommand::Add {
            org,
            rule,
            env,
            host,
            reason,
            author,
            days,
        } => {
            let s = store.add_suppression(
                &NewSuppression {
                    org: org.clone(),
                    environment: env.clone(),
                    host: *host,
                    rule: rule.clone(),
                    reason: reason.clone(),
                    author: author.clone(),
                    expires_at: now + time::Duration::days(i64::from(*days)),
                },
                &Actor::cli(),
                now,
            )?;
            eprintln!(
                "suppression {} of {} in org {} until {}",
                s.id,
                s.rule,
                s.org,
                short_ts(&s.expires_at)
            );
        }
        SuppressCommand::List { org, output } => {
            let rows = store.list_suppressions(org, now)?;
            if output.json {
                return print_json(&rows);
            }
            print_table(
                &["ID", "RULE", "SCOPE", "STATE", "EXPIRES_AT", "AUTHOR", "REASON"],
                rows.iter().map(|s| {
                    let scope = match (&s.environment, &s.host_id) {
                        (_, Some(h)) => format!("host {h}"),
                        (Some(e), None) => format!("env {e}"),
                        (None, None) => "org".to_owned(),
                    };
                    vec![
                        s.id.to_string(),
                        s.rule.clone(),
                        scope,
                        if s.active { "active" } else { "ended" }.to_owned(),
                        short_ts(&s.expires_at),
                        s.author.clone(),
                        s.reason.clone(),
                    ]
                }),
            );
        }
        SuppressCommand::End { id, by } => {
            if store.end_suppression(*id, by, &Actor::cli(), now)? {
                eprintln!("ended suppression {id}");
            } else {
                eprintln!("suppression {id} had already ended");
            }
        }
    }
    Ok(())
}

pub fn queue(store: &Store, cmd: &QueueCommand, now: OffsetDateTime) -> Result<(), CliError> {
    match cmd {
        QueueCommand::List { org, all, output } => {
            let rows = store.list_queue(org.as_deref(), *all, now)?;
            if output.json {
                return print_json(&rows);
            }
            print_table(
                &["ID", "ORG", "TIER", "HOST", "RULE", "DEADLINE", "STATE", "TITLE"],
                rows.iter().map(|q| {
                    let state = if let Some(reason) = &q.close_reason {
                        format!("closed ({reason})")
                    } else if let Some(by) = &q.acknowledged_by {
                        format!("acknowledged by {by}")
                    } else if q.overdue {
                        "OVERDUE".to_owned()
                    } else {
                        "open".to_owned()
                    };
                    vec![
                        q.id.to_string(),
                        q.org.clone(),
                        q.tier.clone(),
                        q.hostname.clone().unwrap_or_else(|| q.environment.clone()),
                        q.rule.clone(),
                        short_ts(&q.response_deadline),
                        state,
                        q.title.clone(),
                    ]
                }),
            );
        }
        QueueCommand::Ack { id, by } => {
            if store.acknowledge(*id, by, &Actor::cli(), now)? {
                eprintln!("acknowledged queue entry {id}");
            } else {
                eprintln!("queue entry {id} was already acknowledged");
            }
        }
    }
    Ok(())
}

pub fn score(store: &Store, cmd: &ScoreCommand, now: OffsetDateTime) -> Result<(), CliError> {
    match cmd {
        ScoreCommand::Show { org, output } => {
            let s = store.org_scores(org, now)?;
            if output.json {
                return print_json(&s);
            }
            let fmt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
            if !s.scored {
                println!(
                    "org {} ({}): not scored (scores are for Priority and Priority Plus)",
                    s.org,
                    s.tier.as_deref().unwrap_or("lapsed")
                );
            } else {
                println!(
                    "org {} ({}): score {}",
                    s.org,
                    s.tier.as_deref().unwrap_or("-"),
                    fmt(s.score)
                );
            }
            print_table(
                &["ENVIRONMENT", "HOST", "SCORE"],
                s.environments.iter().flat_map(|e| {
                    std::iter::once(vec![e.name.clone(), "(environment)".to_owned(), fmt(e.score)]).chain(
                        e.hosts
                            .iter()
                            .map(|h| vec![e.name.clone(), h.hostname.clone(), fmt(h.score)]),
                    )
                }),
            );
        }
        ScoreCommand::History {
            org,
            env,
            days,
            output,
        } => {
            let rows = store.score_history(org, env.as_deref(), i64::from(*days), now)?;
            if output.json {
                return print_json(&rows);
            }
            print_table(
                &["DAY", "SCORE"],
                rows.iter().map(|(d, s)| vec![d.clone(), format!("{s:.1}")]),
            );
        }
    }
    Ok(())
}

pub fn job_runs(store: &Store, name: Option<&str>, limit: u32) -> Result<(), CliError> {
    print_json(&store.job_runs(name, limit)?)
}

pub fn jobs(store: &Store, config: &Config, now: OffsetDateTime) -> Result<(), CliError> {
    let report = store.run_jobs(now, &JobSettings::from(&config.jobs))?;
    print_json(&report)
}

pub fn capacity(
    store: &Store,
    config: &Config,
    cmd: &CapacityCommand,
    now: OffsetDateTime,
) -> Result<(), CliError> {
    let CapacityCommand::Show { org, env, output } = cmd;
    let envs = store.capacity(org, env.as_deref(), now, &JobSettings::from(&config.jobs))?;
    if output.json {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            environment: &'a str,
            #[serde(flatten)]
            capacity: &'a crate::capacity::EnvironmentCapacity,
        }
        let rows: Vec<Row<'_>> = envs
            .iter()
            .map(|(e, c)| Row {
                environment: e,
                capacity: c,
            })
            .collect();
        return print_json(&rows);
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    for (name, c) in &envs {
        println!(
            "environment {name}: {} sessions at peak, room for about {} more ({} hosts unknown, {} running hot; ceiling {} %)",
            c.sessions_at_peak,
            c.spare_sessions,
            c.hosts_unknown,
            c.hot_hosts.len(),
            c.ceiling_percent
        );
        print_table(
            &[
                "HOST",
                "PEAK_SESSIONS",
                "CPU_%",
                "MEM_%",
                "HEADROOM",
                "LIMITED_BY",
                "HOT",
            ],
            c.hosts.iter().map(|h| {
                vec![
                    h.hostname.clone(),
                    opt(h.peak_sessions.map(|v| v.to_string())),
                    opt(h.cpu_percent_at_peak.map(|v| format!("{v:.0}"))),
                    opt(h.memory_used_percent_at_peak.map(|v| format!("{v:.0}"))),
                    opt(h.headroom_sessions.map(|v| v.to_string())),
                    opt(h.limited_by.map(|l| format!("{l:?}").to_lowercase())),
                    if h.running_hot { "yes" } else { "" }.to_owned(),
                ]
            }),
        );
    }
    Ok(())
}

pub fn change(store: &Store, cmd: &ChangeCommand, now: OffsetDateTime) -> Result<(), CliError> {
    match cmd {
        ChangeCommand::Add {
            org,
            env,
            start,
            end,
            description,
            author,
        } => {
            let w = store.add_change_window(
                &crate::store::NewChangeWindow {
                    org: org.clone(),
                    environment: env.clone(),
                    starts_at: *start,
                    ends_at: *end,
                    description: description.clone(),
                    author: author.clone(),
                },
                &Actor::cli(),
                now,
            )?;
            eprintln!(
                "change window {} for {}/{} from {} to {}",
                w.id,
                w.org,
                w.environment,
                short_ts(&w.starts_at),
                short_ts(&w.ends_at)
            );
        }
        ChangeCommand::List { org, output } => {
            let rows = store.list_change_windows(org)?;
            if output.json {
                return print_json(&rows);
            }
            print_table(
                &[
                    "ID",
                    "ENVIRONMENT",
                    "START",
                    "END",
                    "STATE",
                    "FINDINGS",
                    "AUTHOR",
                    "DESCRIPTION",
                ],
                rows.iter().map(|w| {
                    vec![
                        w.id.to_string(),
                        w.environment.clone(),
                        short_ts(&w.starts_at),
                        short_ts(&w.ends_at),
                        if w.cancelled_at.is_some() {
                            "cancelled"
                        } else {
                            "planned"
                        }
                        .to_owned(),
                        w.findings.to_string(),
                        w.author.clone(),
                        w.description.clone(),
                    ]
                }),
            );
        }
        ChangeCommand::Cancel { id } => {
            if store.cancel_change_window(*id, &Actor::cli(), now)? {
                eprintln!("cancelled change window {id}");
            } else {
                eprintln!("change window {id} was already cancelled");
            }
        }
    }
    Ok(())
}
