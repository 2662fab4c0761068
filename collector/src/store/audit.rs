//! The audit log: who did what, when and from where, for every admin and TAM action.
//!
//! Invariants:
//! 1. A row is written in the same transaction as the write it describes, so an action and its
//!    audit row commit (or roll back) together.
//! 2. No secret is ever written: no password, token or token hash; `details` holds only small,
//!    non-secret facts (a token's name, a rule id, a suppression's expiry).
//! 3. A TAM sees only the rows of the orgs they are assigned to (filtered in SQL); rows with no org
//!    (sign-ins, user administration) are for admins.

use super::db::{Connection, params};
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
    let sql = format!(
        "SELECT id, at, actor, actor_kind, action, target, org_id, address, details FROM audit
         WHERE (CAST(?1 AS TEXT) IS NULL OR org_id = ?1)
           AND (CAST(?2 AS TEXT) IS NULL OR lower(actor) = ?2)
           AND (CAST(?3 AS TEXT) IS NULL OR at >= ?3)
           AND (CAST(?4 AS TEXT) IS NULL OR org_id IN ({}))
         ORDER BY at DESC, id DESC LIMIT ?5",
        conn.json_array_text("?4")
    );
    let rows = conn
        .prepare_cached(&sql)?
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::config::ConsoleConfig;
    use crate::entitlement::Tier;
    use crate::password::Hasher;
    use crate::store::accounts::SignIn;
    use crate::store::{NewChangeWindow, NewSuppression, Revoked};

    const PASSWORD: &str = "the tam password 1";

    fn t0() -> OffsetDateTime {
        time::macros::datetime!(2026-11-20 09:00 UTC)
    }

    fn admin() -> Actor {
        Actor::user("root", Role::Admin, Some("192.0.2.1"))
    }

    fn tam() -> Actor {
        Actor::user("tam1", Role::Tam, Some("198.51.100.7"))
    }

    fn all(store: &Store) -> Vec<AuditEntry> {
        store
            .list_audit(&AuditFilter::default(), &Visibility::All)
            .unwrap()
    }

    /// The newest row, checked to be the only new one since `before` rows.
    fn newest(store: &Store, before: usize) -> AuditEntry {
        let rows = all(store);
        assert_eq!(rows.len(), before + 1, "{rows:#?}");
        rows[0].clone()
    }

    fn check(e: &AuditEntry, actor: &Actor, action: &str, target: &str, org: Option<&str>) {
        assert_eq!(e.actor, actor.who, "{e:?}");
        assert_eq!(e.actor_kind, actor.kind.as_str(), "{e:?}");
        assert_eq!(e.address, actor.address, "{e:?}");
        assert_eq!(e.action, action, "{e:?}");
        assert_eq!(e.target, target, "{e:?}");
        assert_eq!(e.org.as_deref(), org, "{e:?}");
    }

    #[tokio::test]
    async fn each_action_writes_one_row_without_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(dir.path());
        let h = Hasher::insecure_for_tests();
        let c = ConsoleConfig::default();
        let cli = Actor {
            who: "cli:ops".to_owned(),
            kind: ActorKind::Cli,
            address: "local".to_owned(),
        };
        let mut secrets: Vec<String> = vec![PASSWORD.to_owned(), "a new password 2".to_owned()];
        let n = std::cell::Cell::new(0);
        let step = |store: &Store, actor: &Actor, action: &str, target: &str, org: Option<&str>| {
            let e = newest(store, n.get());
            check(&e, actor, action, target, org);
            n.set(n.get() + 1);
            e
        };

        store.add_org("ORG-1", "One", &cli, t0()).unwrap();
        step(&store, &cli, "org_add", "ORG-1", Some("ORG-1"));
        let start = time::macros::date!(2026 - 01 - 01);
        let end = time::macros::date!(2026 - 12 - 31);
        let contract = store
            .add_contract("ORG-1", "cvad", Tier::Priority, start, end, &cli, t0())
            .unwrap();
        step(
            &store,
            &cli,
            "contract_add",
            &contract.id.to_string(),
            Some("ORG-1"),
        );
        store.add_environment("ORG-1", "prod", t0()).unwrap();

        store
            .add_user(
                "TAM1",
                "Tam One",
                Role::Tam,
                &h.hash(PASSWORD).unwrap(),
                &cli,
                t0(),
            )
            .unwrap();
        step(&store, &cli, "user_add", "tam1", None);
        store.assign_tam("tam1", "ORG-1", &admin(), t0()).unwrap();
        step(&store, &admin(), "tam_assign", "tam1", Some("ORG-1"));
        // A no-op writes nothing.
        assert!(!store.assign_tam("tam1", "ORG-1", &admin(), t0()).unwrap());
        assert_eq!(all(&store).len(), n.get());

        // Sign-ins: accepted, refused with a known and an unknown login.
        let ok = store
            .sign_in("tam1", PASSWORD.into(), Some("198.51.100.7".into()), &h, c, t0())
            .await
            .unwrap();
        assert!(matches!(ok, SignIn::Accepted(_)));
        step(&store, &tam(), "sign_in", "tam1", None);
        store
            .sign_in(
                "tam1",
                "wrong password!".into(),
                Some("203.0.113.9".into()),
                &h,
                c,
                t0(),
            )
            .await
            .unwrap();
        let e = step(
            &store,
            &Actor::user("tam1", Role::Tam, Some("203.0.113.9")),
            "sign_in_failed",
            "tam1",
            None,
        );
        assert_eq!(e.details["reason"], "bad_credentials");
        secrets.push("wrong password!".to_owned());
        let typed = format!("  Nobody{}", "x".repeat(100));
        store
            .sign_in(&typed, "guess".into(), None, &h, c, t0())
            .await
            .unwrap();
        let unknown = Actor {
            who: typed.chars().take(64).collect(),
            kind: ActorKind::Unknown,
            address: "unknown".to_owned(),
        };
        step(&store, &unknown, "sign_in_failed", &unknown.who, None);

        let session = store.create_session(1, None, None, c, t0()).await.unwrap();
        secrets.push(session.token.expose().to_owned());
        secrets.push(session.token.hash());
        store
            .delete_session(session.token.hash(), tam(), t0())
            .await
            .unwrap();
        step(&store, &tam(), "sign_out", "tam1", None);

        let api = store.issue_api_token("tam1", "nightly", &admin(), t0()).unwrap();
        secrets.push(api.token.expose().to_owned());
        secrets.push(api.token.hash());
        let e = step(&store, &admin(), "api_token_issue", &api.id, None);
        assert_eq!(e.details["name"], "nightly");
        // Revoked by the token itself: the row names the id, never the token.
        let r = store
            .revoke_api_token(api.token.expose(), &admin(), t0())
            .unwrap();
        assert_eq!(r, Revoked::Now);
        step(&store, &admin(), "api_token_revoke", &api.id, None);

        let enroll = store
            .issue_token("ORG-1", "prod", time::Duration::days(1), &cli, t0())
            .unwrap();
        secrets.push(enroll.token.expose().to_owned());
        secrets.push(enroll.token.hash());
        step(&store, &cli, "enrollment_token_issue", &enroll.id, Some("ORG-1"));
        store.revoke_token(enroll.token.expose(), &cli, t0()).unwrap();
        step(&store, &cli, "enrollment_token_revoke", &enroll.id, Some("ORG-1"));
        assert_eq!(
            store.revoke_token(&enroll.id, &cli, t0()).unwrap(),
            Revoked::Already
        );
        assert_eq!(all(&store).len(), n.get());

        let s = store
            .add_suppression(
                &NewSuppression {
                    org: "ORG-1".into(),
                    environment: Some("prod".into()),
                    host: None,
                    rule: "FLEET-STALE-001".into(),
                    reason: "decommissioning".into(),
                    author: "tam1".into(),
                    expires_at: t0() + time::Duration::days(3),
                },
                &tam(),
                t0(),
            )
            .unwrap();
        step(
            &store,
            &tam(),
            "suppression_add",
            &s.id.to_string(),
            Some("ORG-1"),
        );
        assert!(store.end_suppression(s.id, "tam1", &tam(), t0()).unwrap());
        step(
            &store,
            &tam(),
            "suppression_end",
            &s.id.to_string(),
            Some("ORG-1"),
        );

        let w = store
            .add_change_window(
                &NewChangeWindow {
                    org: "ORG-1".into(),
                    environment: "prod".into(),
                    starts_at: t0() + time::Duration::days(1),
                    ends_at: t0() + time::Duration::days(2),
                    description: "upgrade".into(),
                    author: "tam1".into(),
                },
                &tam(),
                t0(),
            )
            .unwrap();
        step(&store, &tam(), "change_add", &w.id.to_string(), Some("ORG-1"));
        assert!(store.cancel_change_window(w.id, &tam(), t0()).unwrap());
        step(&store, &tam(), "change_cancel", &w.id.to_string(), Some("ORG-1"));

        store
            .set_password("tam1", &h.hash("a new password 2").unwrap(), &cli, t0())
            .unwrap();
        step(&store, &cli, "password_change", "tam1", None);
        store.unassign_tam("tam1", "ORG-1", &admin(), t0()).unwrap();
        step(&store, &admin(), "tam_unassign", "tam1", Some("ORG-1"));
        store.disable_user("tam1", &cli, t0()).unwrap();
        step(&store, &cli, "user_disable", "tam1", None);

        let dump = serde_json::to_string(&all(&store)).unwrap();
        for secret in &secrets {
            assert!(!dump.contains(secret.as_str()), "{secret} in {dump}");
        }
        // The whole table, raw, too.
        let conn = store.lock();
        let raw: String = conn
            .prepare("SELECT actor || target || address || details FROM audit")
            .unwrap()
            .query_map([], |r| r.get::<String>(0))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .join("|");
        for secret in &secrets {
            assert!(!raw.contains(secret.as_str()), "{secret}");
        }
    }

    #[test]
    fn the_list_filters_and_a_tam_sees_only_their_orgs() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(dir.path());
        store.add_org("ORG-1", "One", &admin(), t0()).unwrap();
        store
            .add_org("ORG-2", "Two", &tam(), t0() + time::Duration::hours(1))
            .unwrap();
        store
            .add_org("ORG-3", "Three", &admin(), t0() + time::Duration::hours(2))
            .unwrap();
        store
            .add_user(
                "tam2",
                "T",
                Role::Tam,
                &Hasher::insecure_for_tests().hash(PASSWORD).unwrap(),
                &admin(),
                t0() + time::Duration::hours(3),
            )
            .unwrap();
        let targets = |rows: Vec<AuditEntry>| rows.into_iter().map(|e| e.target).collect::<Vec<_>>();
        let list = |f: AuditFilter, v: &Visibility| targets(store.list_audit(&f, v).unwrap());
        assert_eq!(
            list(AuditFilter::default(), &Visibility::All),
            ["tam2", "ORG-3", "ORG-2", "ORG-1"]
        );
        let org = |o: &str| AuditFilter {
            org: Some(o.into()),
            ..Default::default()
        };
        assert_eq!(list(org("ORG-2"), &Visibility::All), ["ORG-2"]);
        let actor = AuditFilter {
            actor: Some("ROOT".into()),
            ..Default::default()
        };
        assert_eq!(list(actor, &Visibility::All), ["tam2", "ORG-3", "ORG-1"]);
        let since = AuditFilter {
            since: Some(t0() + time::Duration::hours(1)),
            limit: Some(2),
            ..Default::default()
        };
        assert_eq!(list(since, &Visibility::All), ["tam2", "ORG-3"]);

        // A TAM: only rows of their orgs, never the org-less ones (user admin, sign-ins).
        let v = Visibility::Orgs(BTreeSet::from(["ORG-1".to_owned(), "ORG-3".to_owned()]));
        assert_eq!(list(AuditFilter::default(), &v), ["ORG-3", "ORG-1"]);
        assert!(list(org("ORG-2"), &v).is_empty());
        assert!(list(AuditFilter::default(), &Visibility::Orgs(BTreeSet::new())).is_empty());
    }
}
