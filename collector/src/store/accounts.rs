//! TAM console accounts: users (admins and TAMs), which orgs a TAM is assigned to, browser sessions,
//! API tokens for scripts, and the failed sign-ins the lock-out counts.
//!
//! Secrets: a session's cookie and an API token are 256 random bits, stored as their SHA-256 (like
//! agent credentials); passwords only as Argon2id hashes (`crate::password`), verified off the
//! database lock. Invariants:
//! 1. A disabled user has no session and no usable token: every lookup joins `users` and requires
//!    `disabled_at IS NULL`, and disabling deletes the user's sessions.
//! 2. Revoking a token or signing out takes effect on the next request: nothing is cached.
//! 3. A session ends `session_idle_minutes` after its last use or `session_max_hours` after sign-in,
//!    whichever comes first. `last_used_at` is written at most once a minute (one write per click
//!    would make every page view an fsync), so the idle timeout is exact to within that minute.
//! 4. Lock-out: a login with `lockout_failures` failed sign-ins within `lockout_minutes`, or an
//!    address with four times that many, is refused for `lockout_minutes` after the last of them,
//!    even with the right password. Attempts while locked are not recorded, so a lock ends on time
//!    instead of being extended forever by whoever hammers it. A successful sign-in clears the
//!    login's failures, never the address's (one valid account must not reset an attacker's count).

use std::collections::BTreeSet;

use super::db::{Connection, OptionalExtension, params};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::audit::{self, Action, Actor, ActorKind};
use super::{Revoked, Store, StoreError, require_org, ts};
use crate::config::ConsoleConfig;
use crate::password::{Hasher, PasswordHash};
use crate::secret::{self, Secret};

/// How often a session's or token's `last_used_at` is written at most (invariant 3).
const TOUCH_INTERVAL: time::Duration = time::Duration::minutes(1);
const MAX_USER_AGENT_CHARS: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Tam,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Tam => "tam",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "tam" => Ok(Role::Tam),
            other => Err(format!("unknown role `{other}`: use admin or tam")),
        }
    }
}

/// A user as listed by `user list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub disabled_at: Option<String>,
    /// The orgs a TAM is assigned to (empty for admins, who see every org).
    pub orgs: Vec<String>,
}

/// Which orgs a user may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// Admins: every org, present and future.
    All,
    /// TAMs: the orgs they are assigned to.
    Orgs(BTreeSet<String>),
}

impl Visibility {
    pub fn contains(&self, org: &str) -> bool {
        match self {
            Visibility::All => true,
            Visibility::Orgs(orgs) => orgs.contains(org),
        }
    }
}

/// An enabled user as loaded for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user_id: i64,
    pub login: String,
    pub name: String,
    pub role: Role,
    pub visibility: Visibility,
}

/// A live session, as found from its cookie.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub account: Account,
    /// SHA-256 of the cookie's token: the session's id.
    pub id: String,
    pub csrf: String,
}

/// A session just created: the cookie's token, shown once.
#[derive(Debug)]
pub struct NewSession {
    pub token: Secret,
    pub csrf: String,
    pub expires_at: OffsetDateTime,
}

/// How a sign-in attempt ended. The reasons for a refusal stay inside the collector (logs): the
/// person signing in gets one message for all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    Accepted(Account),
    Refused(Refusal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Unknown login, disabled user or wrong password.
    BadCredentials,
    /// Too many recent failures for this login or from this address (invariant 4).
    LockedOut,
}

/// A TAM or admin API token as listed: never the token itself, which the store never had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiTokenInfo {
    pub id: String,
    pub login: String,
    pub name: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

#[derive(Debug)]
pub struct IssuedApiToken {
    pub id: String,
    pub token: Secret,
}

impl Store {
    // ---- users (admin commands) ----

    pub fn add_user(
        &self,
        login: &str,
        name: &str,
        role: Role,
        password: &PasswordHash,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<User, StoreError> {
        let login = normalize_login(login)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(
                "a user's name must be 1 to 200 printable characters".to_owned(),
            ));
        }
        let conn = self.lock();
        let tx = conn.transaction()?;
        let created_at = ts(now);
        let inserted: Option<i64> = tx
            .query_row(
                "INSERT INTO users (login, display_name, role, password_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(login) DO NOTHING RETURNING id",
                params![login, name, role.as_str(), password.as_str(), created_at],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = inserted else {
            return Err(StoreError::Conflict(format!("user `{login}` already exists")));
        };
        let details = serde_json::json!({ "role": role.as_str() });
        audit::record(&tx, actor, Action::UserAdd, &login, None, details, now)?;
        tx.commit()?;
        Ok(User {
            id,
            login,
            name: name.to_owned(),
            role,
            created_at,
            disabled_at: None,
            orgs: Vec::new(),
        })
    }

    pub fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let conn = self.lock();
        let mut users: Vec<User> = conn
            .prepare(
                "SELECT id, login, display_name, role, created_at, disabled_at FROM users ORDER BY login",
            )?
            .query_map([], |r| {
                let role: String = r.get(3)?;
                Ok(User {
                    id: r.get(0)?,
                    login: r.get(1)?,
                    name: r.get(2)?,
                    role: role.parse().map_err(|e: String| super::conversion_error(3, e))?,
                    created_at: r.get(4)?,
                    disabled_at: r.get(5)?,
                    orgs: Vec::new(),
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = conn.prepare("SELECT org_id FROM tam_orgs WHERE user_id = ?1 ORDER BY org_id")?;
        for user in &mut users {
            user.orgs = stmt
                .query_map([user.id], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
        }
        Ok(users)
    }

    /// Disables a user and ends their sessions; their tokens stop working with them. `false` when
    /// the user was disabled already.
    pub fn disable_user(&self, login: &str, actor: &Actor, now: OffsetDateTime) -> Result<bool, StoreError> {
        let conn = self.lock();
        let tx = conn.transaction()?;
        let (id, disabled_at) = require_user(&tx, login)?;
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
        if disabled_at.is_some() {
            tx.commit()?;
            return Ok(false);
        }
        tx.execute(
            "UPDATE users SET disabled_at = ?2 WHERE id = ?1",
            params![id, ts(now)],
        )?;
        let login = login.trim().to_lowercase();
        audit::record(
            &tx,
            actor,
            Action::UserDisable,
            &login,
            None,
            serde_json::json!({}),
            now,
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Replaces a user's password and ends their sessions (whoever knew the old one is signed out).
    pub fn set_password(
        &self,
        login: &str,
        password: &PasswordHash,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let conn = self.lock();
        let tx = conn.transaction()?;
        let (id, _) = require_user(&tx, login)?;
        tx.execute(
            "UPDATE users SET password_hash = ?2 WHERE id = ?1",
            params![id, password.as_str()],
        )?;
        tx.execute("DELETE FROM sessions WHERE user_id = ?1", [id])?;
        let login = login.trim().to_lowercase();
        let details = serde_json::json!({});
        audit::record(&tx, actor, Action::PasswordChange, &login, None, details, now)?;
        tx.commit()?;
        Ok(())
    }

    /// Assigns a TAM to an org; `false` when already assigned. Admins see every org and cannot be
    /// assigned.
    pub fn assign_tam(
        &self,
        login: &str,
        org: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let conn = self.lock();
        let tx = conn.transaction()?;
        let (id, _) = require_user(&tx, login)?;
        if user_role(&tx, id)? == Role::Admin {
            return Err(StoreError::Invalid(format!(
                "`{login}` is an admin and sees every org: only TAMs are assigned to orgs"
            )));
        }
        require_org(&tx, org)?;
        let inserted = tx.execute(
            "INSERT INTO tam_orgs (user_id, org_id, assigned_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(user_id, org_id) DO NOTHING",
            params![id, org, ts(now)],
        )?;
        if inserted == 1 {
            let login = login.trim().to_lowercase();
            let details = serde_json::json!({});
            audit::record(&tx, actor, Action::TamAssign, &login, Some(org), details, now)?;
        }
        tx.commit()?;
        Ok(inserted == 1)
    }

    /// `false` when the TAM was not assigned to the org.
    pub fn unassign_tam(
        &self,
        login: &str,
        org: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let conn = self.lock();
        let tx = conn.transaction()?;
        let (id, _) = require_user(&tx, login)?;
        let deleted = tx.execute(
            "DELETE FROM tam_orgs WHERE user_id = ?1 AND org_id = ?2",
            params![id, org],
        )?;
        if deleted == 1 {
            let login = login.trim().to_lowercase();
            let details = serde_json::json!({});
            audit::record(&tx, actor, Action::TamUnassign, &login, Some(org), details, now)?;
        }
        tx.commit()?;
        Ok(deleted == 1)
    }

    /// The orgs a user may see: all for an admin, the assigned ones for a TAM.
    pub fn visible_orgs(&self, user_id: i64) -> Result<Visibility, StoreError> {
        let conn = self.lock();
        let role = user_role(&conn, user_id)?;
        visibility(&conn, user_id, role)
    }

    // ---- API tokens ----

    pub fn issue_api_token(
        &self,
        login: &str,
        name: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<IssuedApiToken, StoreError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(
                "a token's name must be 1 to 100 printable characters".to_owned(),
            ));
        }
        let token = secret::new_tam_token()?;
        let id = format!("tt_{}", secret::random_hex(8)?);
        let conn = self.lock();
        let tx = conn.transaction()?;
        let (user_id, disabled_at) = require_user(&tx, login)?;
        if disabled_at.is_some() {
            return Err(StoreError::Invalid(format!("user `{login}` is disabled")));
        }
        tx.execute(
            "INSERT INTO api_tokens (id, token_hash, user_id, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, token.hash(), user_id, name, ts(now)],
        )?;
        let details = serde_json::json!({ "user": login.trim().to_lowercase(), "name": name });
        audit::record(&tx, actor, Action::ApiTokenIssue, &id, None, details, now)?;
        tx.commit()?;
        Ok(IssuedApiToken { id, token })
    }

    /// Every token, or one user's.
    pub fn list_api_tokens(&self, login: Option<&str>) -> Result<Vec<ApiTokenInfo>, StoreError> {
        let conn = self.lock();
        let user = login.map(|l| require_user(&conn, l)).transpose()?.map(|u| u.0);
        let rows = conn
            .prepare(
                "SELECT t.id, u.login, t.name, t.created_at, t.last_used_at, t.revoked_at
                 FROM api_tokens t JOIN users u ON u.id = t.user_id
                 WHERE CAST(?1 AS BIGINT) IS NULL OR t.user_id = ?1
                 ORDER BY u.login, t.created_at, t.id",
            )?
            .query_map([user], |r| {
                Ok(ApiTokenInfo {
                    id: r.get(0)?,
                    login: r.get(1)?,
                    name: r.get(2)?,
                    created_at: r.get(3)?,
                    last_used_at: r.get(4)?,
                    revoked_at: r.get(5)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub fn revoke_api_token(
        &self,
        id: &str,
        actor: &Actor,
        now: OffsetDateTime,
    ) -> Result<Revoked, StoreError> {
        let conn = self.lock();
        let tx = conn.transaction()?;
        let found: Option<(String, Option<String>)> = tx
            .query_row(
                "SELECT id, revoked_at FROM api_tokens WHERE id = ?1 OR token_hash = ?2",
                params![id, secret::hash_secret(id)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        // The audit target is the token's id, never what was typed (which may be the token).
        match found {
            None => Err(StoreError::NotFound(format!(
                "unknown API token id `{id}` (see `api-token list`)"
            ))),
            Some((_, Some(_))) => Ok(Revoked::Already),
            Some((token_id, None)) => {
                tx.execute(
                    "UPDATE api_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    params![token_id, ts(now)],
                )?;
                let details = serde_json::json!({});
                audit::record(&tx, actor, Action::ApiTokenRevoke, &token_id, None, details, now)?;
                tx.commit()?;
                Ok(Revoked::Now)
            }
        }
    }

    /// The enabled user a live (unrevoked) token belongs to.
    pub async fn authenticate_api_token(
        &self,
        token: String,
        now: OffsetDateTime,
    ) -> Result<Option<Account>, StoreError> {
        self.blocking(move |conn| {
            let row: Option<(String, i64, Option<String>)> = conn
                .query_row(
                    "SELECT t.id, t.user_id, t.last_used_at FROM api_tokens t JOIN users u ON u.id = t.user_id
                     WHERE t.token_hash = ?1 AND t.revoked_at IS NULL AND u.disabled_at IS NULL",
                    [secret::hash_secret(&token)],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((id, user_id, last_used_at)) = row else {
                return Ok(None);
            };
            if last_used_at.is_none_or(|l| l < ts(now - TOUCH_INTERVAL)) {
                conn.execute(
                    "UPDATE api_tokens SET last_used_at = ?2 WHERE id = ?1",
                    params![id, ts(now)],
                )?;
            }
            account(conn, user_id).map(Some)
        })
        .await
    }

    // ---- sessions ----

    pub async fn create_session(
        &self,
        user_id: i64,
        ip: Option<String>,
        user_agent: Option<String>,
        config: ConsoleConfig,
        now: OffsetDateTime,
    ) -> Result<NewSession, StoreError> {
        let token = secret::new_session_token()?;
        let csrf = secret::random_hex(32)?;
        let expires_at = now + config.session_max();
        let user_agent = user_agent.map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect::<String>());
        let id = token.hash();
        let csrf_stored = csrf.clone();
        self.blocking(move |conn| {
            // Sessions that ended are no use to anyone: sweep them while we write anyway.
            conn.execute(
                "DELETE FROM sessions WHERE expires_at <= ?1 OR last_used_at <= ?2",
                params![ts(now), ts(now - config.session_idle())],
            )?;
            conn.execute(
                "INSERT INTO sessions (id, user_id, csrf_token, created_at, last_used_at, expires_at, ip, user_agent)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7)",
                params![id, user_id, csrf_stored, ts(now), ts(expires_at), ip, user_agent],
            )?;
            Ok::<_, StoreError>(())
        })
        .await?;
        Ok(NewSession {
            token,
            csrf,
            expires_at,
        })
    }

    /// The live session a cookie's token opens, extending its idle timeout; `None` when it is unknown,
    /// ended (and then deleted) or its user is disabled.
    pub async fn authenticate_session(
        &self,
        token: String,
        config: ConsoleConfig,
        now: OffsetDateTime,
    ) -> Result<Option<SessionInfo>, StoreError> {
        self.blocking(move |conn| {
            let id = secret::hash_secret(&token);
            let row: Option<(i64, String, String, String)> = conn
                .query_row(
                    "SELECT s.user_id, s.csrf_token, s.last_used_at, s.expires_at
                     FROM sessions s JOIN users u ON u.id = s.user_id
                     WHERE s.id = ?1 AND u.disabled_at IS NULL",
                    [&id],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((user_id, csrf, last_used_at, expires_at)) = row else {
                return Ok(None);
            };
            // Fixed-width timestamps: text order is time order.
            if expires_at <= ts(now) || last_used_at <= ts(now - config.session_idle()) {
                conn.execute("DELETE FROM sessions WHERE id = ?1", [&id])?;
                return Ok(None);
            }
            if last_used_at < ts(now - TOUCH_INTERVAL) {
                conn.execute(
                    "UPDATE sessions SET last_used_at = ?2 WHERE id = ?1",
                    params![id, ts(now)],
                )?;
            }
            Ok(Some(SessionInfo {
                account: account(conn, user_id)?,
                id,
                csrf,
            }))
        })
        .await
    }

    /// Ends a session (sign-out), by its id (the SHA-256 of its token).
    pub async fn delete_session(
        &self,
        id: String,
        actor: Actor,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            if tx.execute("DELETE FROM sessions WHERE id = ?1", [id])? == 1 {
                let details = serde_json::json!({});
                audit::record(&tx, &actor, Action::SignOut, &actor.who, None, details, now)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    // ---- sign-in ----

    /// Checks a login and password under the lock-out (invariant 4). The password is verified on the
    /// blocking pool without holding the database; an unknown or disabled login, or a locked one, is
    /// verified against a dummy hash so that every refusal takes as long as a wrong password.
    pub async fn sign_in(
        &self,
        login: &str,
        password: String,
        ip: Option<String>,
        hasher: &Hasher,
        config: ConsoleConfig,
        now: OffsetDateTime,
    ) -> Result<SignIn, StoreError> {
        let typed = audit::typed_login(login);
        let login = login.trim().to_lowercase();
        let lookup_login = login.clone();
        let lookup_ip = ip.clone();
        let (locked, user) = self
            .blocking(move |conn| {
                let locked = is_locked(conn, &lookup_login, lookup_ip.as_deref(), &config, now)?;
                let user: Option<(i64, String, String)> = conn
                    .query_row(
                        "SELECT id, password_hash, role FROM users WHERE login = ?1 AND disabled_at IS NULL",
                        [&lookup_login],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                Ok::<_, StoreError>((locked, user))
            })
            .await?;
        let hasher = hasher.clone();
        let stored = user.as_ref().map(|u| u.1.clone());
        let matches = tokio::task::spawn_blocking(move || match stored {
            Some(stored) if !locked => hasher.verify(&password, &stored),
            _ => {
                hasher.verify_dummy();
                false
            }
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?;
        let user_id = user.as_ref().map(|u| u.0);
        let kind = user
            .as_ref()
            .and_then(|u| u.2.parse::<Role>().ok())
            .map_or(ActorKind::Unknown, ActorKind::from);
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            // A failure is audited as the login was typed; a success as the account's login.
            let failed = |reason: &str| {
                let actor = Actor {
                    who: typed.clone(),
                    kind,
                    address: ip.clone().unwrap_or_else(|| "unknown".to_owned()),
                };
                (actor, serde_json::json!({ "reason": reason }))
            };
            let outcome = match (locked, matches, user_id) {
                (true, _, _) => {
                    let (actor, details) = failed("locked_out");
                    audit::record(&tx, &actor, Action::SignInFailed, &actor.who, None, details, now)?;
                    SignIn::Refused(Refusal::LockedOut)
                }
                (false, true, Some(user_id)) => {
                    tx.execute("DELETE FROM sign_in_failures WHERE login = ?1", [&login])?;
                    let account = account(&tx, user_id)?;
                    let actor = Actor::account(&account, ip.as_deref());
                    let details = serde_json::json!({});
                    audit::record(&tx, &actor, Action::SignIn, &actor.who, None, details, now)?;
                    SignIn::Accepted(account)
                }
                _ => {
                    tx.execute(
                        "DELETE FROM sign_in_failures WHERE at < ?1",
                        [ts(now - config.lockout_window() * 2)],
                    )?;
                    tx.execute(
                        "INSERT INTO sign_in_failures (login, ip, at) VALUES (?1, ?2, ?3)",
                        params![login, ip, ts(now)],
                    )?;
                    let (actor, details) = failed("bad_credentials");
                    audit::record(&tx, &actor, Action::SignInFailed, &actor.who, None, details, now)?;
                    SignIn::Refused(Refusal::BadCredentials)
                }
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }
}

/// Logins appear on command lines and in logs: 1 to 64 of lowercase letters, digits, `.`, `_`, `-`,
/// `@` (so an e-mail address works), starting with a letter or digit. Compared lowercase.
fn normalize_login(login: &str) -> Result<String, StoreError> {
    let login = login.trim().to_lowercase();
    let ok = !login.is_empty()
        && login.len() <= 64
        && login.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && login
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(login)
    } else {
        Err(StoreError::Invalid(format!(
            "invalid login `{login}`: use 1 to 64 letters, digits, `.`, `_`, `-` or `@`, starting with a letter or digit"
        )))
    }
}

/// The user's id and `disabled_at`, or `NotFound`.
fn require_user(conn: &Connection, login: &str) -> Result<(i64, Option<String>), StoreError> {
    let login = login.trim().to_lowercase();
    conn.query_row(
        "SELECT id, disabled_at FROM users WHERE login = ?1",
        [&login],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("unknown user `{login}` (see `user list`)")))
}

fn user_role(conn: &Connection, user_id: i64) -> Result<Role, StoreError> {
    let role: String = conn
        .query_row("SELECT role FROM users WHERE id = ?1", [user_id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("no user with id {user_id}")))?;
    role.parse().map_err(StoreError::Invalid)
}

fn visibility(conn: &Connection, user_id: i64, role: Role) -> Result<Visibility, StoreError> {
    Ok(match role {
        Role::Admin => Visibility::All,
        Role::Tam => Visibility::Orgs(
            conn.prepare_cached("SELECT org_id FROM tam_orgs WHERE user_id = ?1")?
                .query_map([user_id], |r| r.get(0))?
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn account(conn: &Connection, user_id: i64) -> Result<Account, StoreError> {
    let (login, name, role): (String, String, String) = conn.query_row(
        "SELECT login, display_name, role FROM users WHERE id = ?1",
        [user_id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let role: Role = role.parse().map_err(StoreError::Invalid)?;
    Ok(Account {
        user_id,
        visibility: visibility(conn, user_id, role)?,
        login,
        name,
        role,
    })
}

/// Invariant 4: locked when the latest failure is less than a window old and it is at least the
/// `threshold`-th within one window.
fn is_locked(
    conn: &Connection,
    login: &str,
    ip: Option<&str>,
    config: &ConsoleConfig,
    now: OffsetDateTime,
) -> Result<bool, StoreError> {
    let window = config.lockout_window();
    let mut checks = vec![("login", login, config.lockout_failures)];
    if let Some(ip) = ip {
        checks.push(("ip", ip, config.lockout_failures_per_address()));
    }
    for (column, value, threshold) in checks {
        let sql = format!(
            "SELECT at FROM sign_in_failures WHERE {column} = ?1 AND at > ?2 ORDER BY at DESC LIMIT ?3"
        );
        let times: Vec<String> = conn
            .prepare_cached(&sql)?
            .query_map(params![value, ts(now - window * 2), i64::from(threshold)], |r| {
                r.get(0)
            })?
            .collect::<Result<_, _>>()?;
        let (Some(newest), Some(oldest)) = (times.first(), times.last()) else {
            continue;
        };
        if times.len() < threshold as usize || newest.as_str() <= ts(now - window).as_str() {
            continue;
        }
        let newest_at = OffsetDateTime::parse(newest, &Rfc3339)
            .map_err(|e| StoreError::Invalid(format!("corrupt time `{newest}` in sign_in_failures: {e}")))?;
        if oldest.as_str() > ts(newest_at - window).as_str() {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(dir.path());
        (dir, store)
    }

    fn t0() -> OffsetDateTime {
        time::macros::datetime!(2026-11-20 09:00 UTC)
    }

    fn add(store: &Store, h: &Hasher, login: &str, role: Role, password: &str) -> User {
        store
            .add_user(
                login,
                "Some One",
                role,
                &h.hash(password).unwrap(),
                &Actor::cli(),
                t0(),
            )
            .unwrap()
    }

    #[test]
    fn users_roles_and_visibility() {
        let (_dir, store) = store();
        let h = Hasher::insecure_for_tests();
        store.add_org("ORG-1", "One", &Actor::cli(), t0()).unwrap();
        store.add_org("ORG-2", "Two", &Actor::cli(), t0()).unwrap();
        let admin = add(&store, &h, "Root", Role::Admin, "admin password!");
        assert_eq!(admin.login, "root");
        let tam = add(&store, &h, "tam1", Role::Tam, "tam password 1");
        let err = store
            .add_user(
                "ROOT",
                "x",
                Role::Tam,
                &h.hash("another password").unwrap(),
                &Actor::cli(),
                t0(),
            )
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        for bad in ["", " ", "-x", "a b", "a/b", &"a".repeat(65)] {
            assert!(
                store
                    .add_user(
                        bad,
                        "x",
                        Role::Tam,
                        &h.hash("another password").unwrap(),
                        &Actor::cli(),
                        t0()
                    )
                    .is_err(),
                "{bad:?}"
            );
        }

        assert_eq!(store.visible_orgs(admin.id).unwrap(), Visibility::All);
        assert_eq!(
            store.visible_orgs(tam.id).unwrap(),
            Visibility::Orgs(BTreeSet::new())
        );
        assert!(store.assign_tam("tam1", "ORG-1", &Actor::cli(), t0()).unwrap());
        assert!(!store.assign_tam("tam1", "ORG-1", &Actor::cli(), t0()).unwrap());
        assert!(store.assign_tam("tam1", "NOPE", &Actor::cli(), t0()).is_err());
        assert!(store.assign_tam("root", "ORG-1", &Actor::cli(), t0()).is_err());
        let v = store.visible_orgs(tam.id).unwrap();
        assert!(v.contains("ORG-1") && !v.contains("ORG-2"));
        assert!(Visibility::All.contains("ORG-2"));
        let listed = store.list_users().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].orgs, vec!["ORG-1".to_owned()]);
        assert!(
            store
                .unassign_tam("tam1", "ORG-1", &Actor::cli(), OffsetDateTime::now_utc())
                .unwrap()
        );
        assert!(
            !store
                .unassign_tam("tam1", "ORG-1", &Actor::cli(), OffsetDateTime::now_utc())
                .unwrap()
        );
        assert_eq!(
            store.visible_orgs(tam.id).unwrap(),
            Visibility::Orgs(BTreeSet::new())
        );
    }

    #[tokio::test]
    async fn sign_in_checks_the_password_and_disabled_users() {
        let (_dir, store) = store();
        let h = Hasher::insecure_for_tests();
        let c = ConsoleConfig::default();
        let user = add(&store, &h, "tam1", Role::Tam, "tam password 1");
        let ok = store
            .sign_in("TAM1 ", "tam password 1".into(), None, &h, c, t0())
            .await
            .unwrap();
        assert!(matches!(ok, SignIn::Accepted(ref a) if a.user_id == user.id && a.login == "tam1"));
        for (login, pw) in [("tam1", "tam password 2"), ("nobody", "tam password 1")] {
            let r = store.sign_in(login, pw.into(), None, &h, c, t0()).await.unwrap();
            assert_eq!(r, SignIn::Refused(Refusal::BadCredentials));
        }
        assert!(store.disable_user("tam1", &Actor::cli(), t0()).unwrap());
        assert!(!store.disable_user("tam1", &Actor::cli(), t0()).unwrap());
        let r = store
            .sign_in("tam1", "tam password 1".into(), None, &h, c, t0())
            .await
            .unwrap();
        assert_eq!(r, SignIn::Refused(Refusal::BadCredentials));
    }

    #[tokio::test]
    async fn lockout_per_login_and_per_address() {
        let (_dir, store) = store();
        let h = Hasher::insecure_for_tests();
        let c = ConsoleConfig::default();
        add(&store, &h, "tam1", Role::Tam, "tam password 1");
        let ip = || Some("192.0.2.7".to_owned());
        let mut at = t0();
        for _ in 0..5 {
            let r = store
                .sign_in("tam1", "wrong password!".into(), ip(), &h, c, at)
                .await
                .unwrap();
            assert_eq!(r, SignIn::Refused(Refusal::BadCredentials));
            at += time::Duration::minutes(2);
        }
        // Locked now, even with the right password, and attempts do not extend the lock.
        let last_failure = at - time::Duration::minutes(2);
        for minutes in [0, 5, 14] {
            let r = store
                .sign_in(
                    "tam1",
                    "tam password 1".into(),
                    ip(),
                    &h,
                    c,
                    last_failure + time::Duration::minutes(minutes),
                )
                .await
                .unwrap();
            assert_eq!(r, SignIn::Refused(Refusal::LockedOut), "+{minutes} min");
        }
        // 15 minutes after the 5th failure it opens; success clears the login's count.
        let open = last_failure + time::Duration::minutes(15) + time::Duration::seconds(1);
        let r = store
            .sign_in("tam1", "tam password 1".into(), ip(), &h, c, open)
            .await
            .unwrap();
        assert!(matches!(r, SignIn::Accepted(_)), "{r:?}");
        let r = store
            .sign_in("tam1", "wrong password!".into(), ip(), &h, c, open)
            .await
            .unwrap();
        assert_eq!(r, SignIn::Refused(Refusal::BadCredentials));

        // Failures spread wider than the window do not lock.
        add(&store, &h, "tam2", Role::Tam, "tam password 2");
        let mut at = t0();
        for _ in 0..8 {
            let r = store
                .sign_in("tam2", "wrong password!".into(), None, &h, c, at)
                .await
                .unwrap();
            assert_eq!(r, SignIn::Refused(Refusal::BadCredentials));
            at += time::Duration::minutes(4);
        }

        // 20 failures from one address over many logins lock the address, for every login.
        let at = t0() + time::Duration::hours(2);
        let other = || Some("198.51.100.9".to_owned());
        for i in 0..20 {
            let r = store
                .sign_in(&format!("guess{i}"), "wrong password!".into(), other(), &h, c, at)
                .await
                .unwrap();
            assert_eq!(r, SignIn::Refused(Refusal::BadCredentials), "{i}");
        }
        let r = store
            .sign_in("tam2", "tam password 2".into(), other(), &h, c, at)
            .await
            .unwrap();
        assert_eq!(r, SignIn::Refused(Refusal::LockedOut));
        let r = store
            .sign_in("tam2", "tam password 2".into(), ip(), &h, c, at)
            .await
            .unwrap();
        assert!(matches!(r, SignIn::Accepted(_)));
    }

    #[tokio::test]
    async fn sessions_expire_when_idle_and_absolutely() {
        let (_dir, store) = store();
        let h = Hasher::insecure_for_tests();
        let c = ConsoleConfig::default();
        let user = add(&store, &h, "tam1", Role::Tam, "tam password 1");
        let s = store
            .create_session(user.id, None, Some("test".into()), c, t0())
            .await
            .unwrap();
        assert_eq!(s.expires_at, t0() + time::Duration::hours(12));
        let token = s.token.expose().to_owned();
        let found = store
            .authenticate_session(token.clone(), c, t0())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.account.user_id, user.id);
        assert_eq!(found.csrf, s.csrf);
        assert_eq!(found.id, s.token.hash());
        assert!(
            store
                .authenticate_session("chs_nope".into(), c, t0())
                .await
                .unwrap()
                .is_none()
        );

        // Used every 20 minutes, it slides past 30 minutes idle...
        let mut at = t0();
        while at + time::Duration::minutes(20) < t0() + time::Duration::hours(12) {
            at += time::Duration::minutes(20);
            assert!(
                store
                    .authenticate_session(token.clone(), c, at)
                    .await
                    .unwrap()
                    .is_some(),
                "{at}"
            );
        }
        // ...until the 12-hour absolute limit.
        let late = t0() + time::Duration::hours(12);
        assert!(
            store
                .authenticate_session(token.clone(), c, late)
                .await
                .unwrap()
                .is_none()
        );

        // Idle 30 minutes: gone, and stays gone.
        let s = store.create_session(user.id, None, None, c, t0()).await.unwrap();
        let token = s.token.expose().to_owned();
        let idle = t0() + time::Duration::minutes(30);
        assert!(
            store
                .authenticate_session(token.clone(), c, idle)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .authenticate_session(token, c, t0())
                .await
                .unwrap()
                .is_none()
        );

        // Sign-out, a new password and disabling end sessions.
        let s = store.create_session(user.id, None, None, c, t0()).await.unwrap();
        store
            .delete_session(s.token.hash(), Actor::cli(), t0())
            .await
            .unwrap();
        assert!(
            store
                .authenticate_session(s.token.expose().into(), c, t0())
                .await
                .unwrap()
                .is_none()
        );
        let s = store.create_session(user.id, None, None, c, t0()).await.unwrap();
        store
            .set_password(
                "tam1",
                &h.hash("a new password").unwrap(),
                &Actor::cli(),
                OffsetDateTime::now_utc(),
            )
            .unwrap();
        assert!(
            store
                .authenticate_session(s.token.expose().into(), c, t0())
                .await
                .unwrap()
                .is_none()
        );
        let s = store.create_session(user.id, None, None, c, t0()).await.unwrap();
        store.disable_user("tam1", &Actor::cli(), t0()).unwrap();
        assert!(
            store
                .authenticate_session(s.token.expose().into(), c, t0())
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn api_tokens_issue_list_revoke() {
        let (_dir, store) = store();
        let h = Hasher::insecure_for_tests();
        add(&store, &h, "tam1", Role::Tam, "tam password 1");
        add(&store, &h, "root", Role::Admin, "admin password!");
        let issued = store
            .issue_api_token("tam1", "nightly report", &Actor::cli(), t0())
            .unwrap();
        assert!(issued.token.expose().starts_with("chtt_"));
        assert!(issued.id.starts_with("tt_"));
        store.issue_api_token("root", "ops", &Actor::cli(), t0()).unwrap();
        assert!(store.issue_api_token("tam1", " ", &Actor::cli(), t0()).is_err());
        assert!(store.issue_api_token("ghost", "x", &Actor::cli(), t0()).is_err());

        let token = issued.token.expose().to_owned();
        let a = store
            .authenticate_api_token(token.clone(), t0())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(a.login, "tam1");
        let listed = store.list_api_tokens(Some("tam1")).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].last_used_at.as_deref(), Some(ts(t0()).as_str()));
        assert_eq!(store.list_api_tokens(None).unwrap().len(), 2);

        assert_eq!(
            store.revoke_api_token(&issued.id, &Actor::cli(), t0()).unwrap(),
            Revoked::Now
        );
        assert_eq!(
            store.revoke_api_token(&issued.id, &Actor::cli(), t0()).unwrap(),
            Revoked::Already
        );
        assert!(store.revoke_api_token("tt_nope", &Actor::cli(), t0()).is_err());
        assert!(store.authenticate_api_token(token, t0()).await.unwrap().is_none());

        // A disabled user's tokens stop working.
        let other = store
            .issue_api_token("tam1", "second", &Actor::cli(), t0())
            .unwrap();
        store.disable_user("tam1", &Actor::cli(), t0()).unwrap();
        assert!(
            store
                .authenticate_api_token(other.token.expose().into(), t0())
                .await
                .unwrap()
                .is_none()
        );
    }
}
