//! Admin commands for the TAM console's accounts: `user`, `tam` (org assignments) and `api-token`.
//! Like the other admin commands they work on the data directory, with or without a running server.
//!
//! Passwords are read from the first line of standard input (never from an argument, which `ps` and
//! shell history would show), or generated and printed once with `--generate-password`. A token is
//! printed alone on stdout, once; everything else goes to stderr, so `$(…)` captures just the secret.

use std::io::{BufRead, IsTerminal};

use clap::Subcommand;
use time::OffsetDateTime;

use crate::cli::{CliError, Output, print_json, print_table, short_ts};
use crate::password::{self, Hasher};
use crate::store::accounts::Role;
use crate::store::audit::Actor;
use crate::store::{Revoked, Store};

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a console user; the password is read from stdin (first line) unless generated.
    Add {
        /// Sign-in name: letters, digits, `.`, `_`, `-`, `@` (compared lowercase).
        login: String,
        /// admin (sees every org, manages nothing more yet) or tam (sees the orgs assigned to it).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Generate a strong password and print it once on stdout instead of reading one.
        #[arg(long)]
        generate_password: bool,
    },
    /// List users, their role, state and (TAMs) orgs.
    List(Output),
    /// Disable a user: their sessions end and their API tokens stop working.
    Disable { login: String },
    /// Set a user's password (read from stdin, first line); their sessions end.
    Passwd { login: String },
}

#[derive(Debug, Subcommand)]
pub enum TamCommand {
    /// Let a TAM see an org.
    Assign { login: String, org: String },
    /// Stop a TAM seeing an org.
    Unassign { login: String, org: String },
}

#[derive(Debug, Subcommand)]
pub enum ApiTokenCommand {
    /// Issue an API token (`chtt_…`) for scripts; prints the token alone on stdout, once.
    Issue {
        login: String,
        /// What the token is for, e.g. `weekly report`.
        #[arg(long)]
        name: String,
    },
    /// List API tokens (ids and state; the tokens themselves are never stored).
    List {
        /// Only this user's tokens.
        login: Option<String>,
        #[command(flatten)]
        output: Output,
    },
    /// Revoke an API token by its id (`tt_…`, see `api-token list`); effective on its next request.
    Revoke { id: String },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// The first line of stdin, without its line ending, checked against the password policy.
fn read_password() -> Result<String, CliError> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!(
            "password (at least {} characters), then Enter:",
            password::MIN_PASSWORD_CHARS
        );
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).map_err(|e| {
        CliError::Failed(anyhow::Error::new(e).context("cannot read the password from stdin"))
    })?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password).to_owned();
    if password.is_empty() {
        return Err(CliError::Usage(
            "no password on stdin: pipe one in, or use --generate-password".to_owned(),
        ));
    }
    password::check_policy(&password).map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(password)
}

fn hash(password: &str) -> Result<password::PasswordHash, CliError> {
    Hasher::new().hash(password).map_err(|e| match e {
        password::PasswordError::TooShort | password::PasswordError::TooLong => {
            CliError::Usage(e.to_string())
        }
        other => CliError::Failed(other.into()),
    })
}

pub fn user(store: &Store, cmd: &UserCommand, now: OffsetDateTime) -> Result<(), CliError> {
    match cmd {
        UserCommand::Add {
            login,
            role,
            name,
            generate_password,
        } => {
            let password = if *generate_password {
                password::generate().map_err(|e| CliError::Failed(e.into()))?
            } else {
                read_password()?
            };
            let user = store.add_user(login, name, *role, &hash(&password)?, &Actor::cli(), now)?;
            eprintln!("added {} {} ({})", user.role, user.login, user.name);
            if *generate_password {
                println!("{password}");
            }
        }
        UserCommand::List(output) => {
            let users = store.list_users()?;
            if output.json {
                return print_json(&users);
            }
            print_table(
                &["LOGIN", "NAME", "ROLE", "STATE", "ORGS", "CREATED_AT"],
                users.iter().map(|u| {
                    vec![
                        u.login.clone(),
                        u.name.clone(),
                        u.role.to_string(),
                        if u.disabled_at.is_some() {
                            "disabled"
                        } else {
                            "active"
                        }
                        .to_owned(),
                        match u.role {
                            Role::Admin => "all".to_owned(),
                            Role::Tam if u.orgs.is_empty() => "-".to_owned(),
                            Role::Tam => u.orgs.join(","),
                        },
                        short_ts(&u.created_at),
                    ]
                }),
            );
        }
        UserCommand::Disable { login } => {
            if store.disable_user(login, &Actor::cli(), now)? {
                eprintln!("disabled {login}: sessions ended, API tokens no longer work");
            } else {
                eprintln!("{login} was already disabled");
            }
        }
        UserCommand::Passwd { login } => {
            let password = read_password()?;
            store.set_password(login, &hash(&password)?, &Actor::cli(), now)?;
            eprintln!("password of {login} changed; their sessions ended");
        }
    }
    Ok(())
}

pub fn tam(store: &Store, cmd: &TamCommand, now: OffsetDateTime) -> Result<(), CliError> {
    match cmd {
        TamCommand::Assign { login, org } => {
            if store.assign_tam(login, org, &Actor::cli(), now)? {
                eprintln!("{login} now sees org {org}");
            } else {
                eprintln!("{login} already saw org {org}");
            }
        }
        TamCommand::Unassign { login, org } => {
            if store.unassign_tam(login, org, &Actor::cli(), now)? {
                eprintln!("{login} no longer sees org {org}");
            } else {
                eprintln!("{login} was not assigned to org {org}");
            }
        }
    }
    Ok(())
}

pub fn api_token(store: &Store, cmd: &ApiTokenCommand, now: OffsetDateTime) -> Result<(), CliError> {
    match cmd {
        ApiTokenCommand::Issue { login, name } => {
            let issued = store.issue_api_token(login, name, &Actor::cli(), now)?;
            eprintln!("issued API token {} for {login} ({name})", issued.id);
            println!("{}", issued.token.expose());
        }
        ApiTokenCommand::List { login, output } => {
            let tokens = store.list_api_tokens(login.as_deref())?;
            if output.json {
                return print_json(&tokens);
            }
            print_table(
                &["ID", "LOGIN", "NAME", "STATUS", "LAST_USED", "CREATED_AT"],
                tokens.iter().map(|t| {
                    vec![
                        t.id.clone(),
                        t.login.clone(),
                        t.name.clone(),
                        if t.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        }
                        .to_owned(),
                        t.last_used_at.as_deref().map_or("never".to_owned(), short_ts),
                        short_ts(&t.created_at),
                    ]
                }),
            );
        }
        ApiTokenCommand::Revoke { id } => match store.revoke_api_token(id, &Actor::cli(), now)? {
            Revoked::Now => eprintln!("revoked API token {id}"),
            Revoked::Already => eprintln!("API token {id} was already revoked"),
        },
    }
    Ok(())
}
