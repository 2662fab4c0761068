//! `callhome-collector audit list`: the audit log of admin and TAM actions, newest first.

use clap::Subcommand;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cli::{CliError, Output, print_json, print_table, short_ts};
use crate::store::Store;
use crate::store::accounts::Visibility;
use crate::store::audit::{AuditFilter, MAX_LIMIT};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit entries, newest first.
    List {
        /// Only entries about this org.
        #[arg(long)]
        org: Option<String>,
        /// Only entries by this actor (a login, or `cli:USER` for commands run on the server).
        #[arg(long)]
        actor: Option<String>,
        /// Only entries at or after this time (RFC 3339, e.g. 2026-11-20T09:00:00Z).
        #[arg(long, value_parser = parse_since)]
        since: Option<OffsetDateTime>,
        /// At most this many entries.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LIMIT)))]
        limit: u32,
        #[command(flatten)]
        output: Output,
    },
}

fn parse_since(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("`{s}` is not an RFC 3339 time: {e}"))
}

pub fn run(store: &Store, cmd: &AuditCommand) -> Result<(), CliError> {
    let AuditCommand::List {
        org,
        actor,
        since,
        limit,
        output,
    } = cmd;
    let filter = AuditFilter {
        org: org.clone(),
        actor: actor.clone(),
        since: *since,
        limit: Some(*limit),
    };
    // An admin on the server sees everything.
    let rows = store.list_audit(&filter, &Visibility::All)?;
    if output.json {
        return print_json(&rows);
    }
    print_table(
        &[
            "AT", "ACTOR", "KIND", "ACTION", "TARGET", "ORG", "ADDRESS", "DETAILS",
        ],
        rows.iter().map(|e| {
            vec![
                short_ts(&e.at),
                e.actor.clone(),
                e.actor_kind.clone(),
                e.action.clone(),
                e.target.clone(),
                e.org.clone().unwrap_or_else(|| "-".to_owned()),
                e.address.clone(),
                e.details.to_string(),
            ]
        }),
    );
    Ok(())
}
