//! The audit log: who did what, when and from where, for every admin and TAM action.
//!
//! Invariants:
//! 1. A row is written in the same transaction as the write it describes, so an action and its
//!    audit row commit (or roll back) together.
//! 2. No secret is ever written: no password, token or token hash; `details` holds only small,
//!    non-secret facts (a token's name, a rule id, a suppression's expiry).
//! 3. A TAM sees only the rows of the orgs they are assigned to (filtered in SQL); rows with no org
//!    (sign-ins, user administration) are for admins.

use rusqlite::{Connection, params};
use serde::Serialize;
use time::OffsetDateTime;

use super::accounts::{Account, Role, Visibility};
use super::{Store, StoreError, ts};

/// A failed sign-in's login is recorded as typed, at most this long.
const MAX_TYPED_LOGIN_CHARS: usize = 64;
/// `audit list` and `GET /v1/audit` return at most this many rows.
pub const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    Admin,
    Tam,
    /// An admin command run on the collector's own machine.
    Cli,
    /// A failed sign-in with a login that names no enabled user.
    Unknown,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Admin => "admin",
            ActorKind::Tam => "tam",
            ActorKind::Cli => "cli",
            ActorKind::Unknown => "unknown",
        }
    }
}

impl From<Role> for ActorKind {
    fn from(role: Role) -> ActorKind {
        match role {
            Role::Admin => ActorKind::Admin,
            Role::Tam => ActorKind::Tam,
        }
    }
}

/// Who acts, and from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub who: String,
    pub kind: ActorKind,
    /// The client's address, `local` for a command on the server.
    pub address: String,
}

impl Actor {
    /// The Unix user running an admin command: `$SUDO_USER` (who ran `sudo`) before `$USER`.
    pub fn cli() -> Actor {
        let user = ["SUDO_USER", "USER"]
            .iter()
            .filter_map(|v| std::env::var(v).ok())
            .find(|u| !u.trim().is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        Actor {
            who: format!("cli:{}", truncate(user.trim(), MAX_TYPED_LOGIN_CHARS)),
            kind: ActorKind::Cli,
            address: "local".to_owned(),
        }
    }

    pub fn account(account: &Account, address: Option<&str>) -> Actor {
        Actor::user(&account.login, account.role, address)
    }

    pub fn user(login: &str, role: Role, address: Option<&str>) -> Actor {
        Actor {
            who: login.to_owned(),
            kind: role.into(),
            address: address.unwrap_or("unknown").to_owned(),
        }
    }
}

/// The fixed vocabulary of audited actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SignIn,
    SignInFailed,
    SignOut,
    UserAdd,
    UserDisable,
    PasswordChange,
    TamAssign,
    TamUnassign,
    ApiTokenIssue,
    ApiTokenRevoke,
    EnrollmentTokenIssue,
    EnrollmentTokenRevoke,
    QueueAck,
    SuppressionAdd,
    SuppressionEnd,
    ChangeAdd,
    ChangeCancel,
    OrgAdd,
    ContractAdd,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::SignIn => "sign_in",
            Action::SignInFailed => "sign_in_failed",
            Action::SignOut => "sign_out",
            Action::UserAdd => "user_add",
            Action::UserDisable => "user_disable",
            Action::PasswordChange => "password_change",
            Action::TamAssign => "tam_assign",
            Action::TamUnassign => "tam_unassign",
            Action::ApiTokenIssue => "api_token_issue",
            Action::ApiTokenRevoke => "api_token_revoke",
            Action::EnrollmentTokenIssue => "enrollment_token_issue",
            Action::EnrollmentTokenRevoke => "enrollment_token_revoke",
            Action::QueueAck => "queue_ack",
            Action::SuppressionAdd => "suppression_add",
            Action::SuppressionEnd => "suppression_end",
            Action::ChangeAdd => "change_add",
            Action::ChangeCancel => "change_cancel",
            Action::OrgAdd => "org_add",
            Action::ContractAdd => "contract_add",
        }
    }
}

/// One audit row as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub actor_kind: String,
    pub action: String,
    pub target: String,
    pub org: Option<String>,
    pub address: String,
    pub details: serde_json::Value,
}

/// What `audit list` and `GET /v1/audit` select; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub org: Option<String>,
    pub actor: Option<String>,
    /// RFC 3339, compared as stored (UTC, fixed width).
    pub since: Option<OffsetDateTime>,
    pub limit: Option<u32>,
}

/// Writes one audit row on `conn` (inside the caller's transaction: invariant 1).
pub fn record(
    conn: &Connection,
    actor: &Actor,
    action: Action,
    target: &str,
    org: Option<&str>,
    details: serde_json::Value,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO audit (at, actor, actor_kind, action, target, org_id, address, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        ts(now),
        actor.who,
        actor.kind.as_str(),
        action.as_str(),
        target,
        org,
        actor.address,
        details.to_string()
    ])?;
    Ok(())
}

/// The login of a failed sign-in as recorded: as typed, bounded, control characters dropped.
pub fn typed_login(login: &str) -> String {
    truncate(
        &login.chars().filter(|c| !c.is_control()).collect::<String>(),
        MAX_TYPED_LOGIN_CHARS,
    )
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn list(
    conn: &Connection,
    filter: &AuditFilter,
    visibility: &Visibility,
) -> Result<Vec<AuditEntry>, StoreError> {
    let orgs_json = match visibility {
        Visibility::All => None,
        Visibility::Orgs(orgs) => {
            Some(serde_json::to_string(orgs).map_err(|e| StoreError::Invalid(e.to_string()))?)
        }
    };
    let limit = filter.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let actor = filter.actor.as_deref().map(|a| a.trim().to_lowercase());
    let rows = conn
        .prepare_cached(
            "SELECT id, at, actor, actor_kind, action, target, org_id, address, details FROM audit
             WHERE (?1 IS NULL OR org_id = ?1)
               AND (?2 IS NULL OR lower(actor) = ?2)
               AND (?3 IS NULL OR at >= ?3)
               AND (?4 IS NULL OR org_id IN (SELECT value FROM json_each(?4)))
             ORDER BY at DESC, id DESC LIMIT ?5",
        )?
        .query_map(
            params![
                filter.org,
                actor,
                filter.since.map(ts),
                orgs_json,
                i64::from(limit)
            ],
            |r| {
                let details: String = r.get(8)?;
                Ok(AuditEntry {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    actor_kind: r.get(3)?,
                    action: r.get(4)?,
                    target: r.get(5)?,
                    org: r.get(6)?,
                    address: r.get(7)?,
                    details: serde_json::from_str(&details)
                        .map_err(|e| super::conversion_error(8, e.to_string()))?,
                })
            },
        )?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

impl Store {
    /// Audit rows matching `filter` that `visibility` allows (invariant 3), newest first.
    pub fn list_audit(
        &self,
        filter: &AuditFilter,
        visibility: &Visibility,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        list(&self.lock(), filter, visibility)
    }

    pub async fn list_audit_async(
        &self,
        filter: AuditFilter,
        visibility: Visibility,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.blocking(move |conn| list(conn, &filter, &visibility)).await
    }
}
