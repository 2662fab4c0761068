//! Schema migrations: an ordered list, applied in one transaction and tracked as the number of
//! migrations applied (SQLite: `PRAGMA user_version`; PostgreSQL: the `schema_version` table). A
//! migration, once released, is never edited: a change is a new entry at the end.
//!
//! The migrations are written in SQLite's dialect; [`postgres_ddl`] maps their column types onto
//! PostgreSQL's, so the two schemas cannot drift apart.

use super::StoreError;
use super::db::{Backend, Connection, TransactionBehavior};

/// Serializes migrations between replicas starting together (`pg_advisory_xact_lock` key).
const PG_MIGRATION_LOCK: i64 = 0x6361_6c6c_686f_6d65; // "callhome"

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: orgs, contracts, environments, enrollment tokens, hosts, credentials, snapshots.
    r#"
    CREATE TABLE orgs (
        id          TEXT PRIMARY KEY,            -- the customer's ORG-ID
        name        TEXT NOT NULL,
        created_at  TEXT NOT NULL
    ) STRICT;

    CREATE TABLE contracts (
        id          INTEGER PRIMARY KEY,
        org_id      TEXT NOT NULL REFERENCES orgs(id),
        product     TEXT NOT NULL,
        tier        TEXT NOT NULL CHECK (tier IN ('select', 'priority', 'priority-plus')),
        start_date  TEXT NOT NULL,               -- YYYY-MM-DD, included
        end_date    TEXT NOT NULL,               -- YYYY-MM-DD, included
        created_at  TEXT NOT NULL,
        CHECK (end_date > start_date)
    ) STRICT;
    CREATE INDEX contracts_org ON contracts(org_id);

    CREATE TABLE environments (
        id          INTEGER PRIMARY KEY,
        org_id      TEXT NOT NULL REFERENCES orgs(id),
        name        TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        UNIQUE (org_id, name)
    ) STRICT;

    CREATE TABLE enrollment_tokens (
        id          TEXT PRIMARY KEY,            -- public id, shown by `token list`
        token_hash  TEXT NOT NULL UNIQUE,        -- SHA-256 hex of the token; the token is never stored
        org_id      TEXT NOT NULL REFERENCES orgs(id),
        env_id      INTEGER NOT NULL REFERENCES environments(id),
        created_at  TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        revoked_at  TEXT,
        uses        INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE INDEX enrollment_tokens_org ON enrollment_tokens(org_id);

    CREATE TABLE hosts (
        host_id       TEXT PRIMARY KEY,
        org_id        TEXT NOT NULL REFERENCES orgs(id),
        env_id        INTEGER NOT NULL REFERENCES environments(id),
        hostname      TEXT NOT NULL,
        role          TEXT NOT NULL,
        agent_version TEXT NOT NULL,
        enrolled_at   TEXT NOT NULL,
        last_seen     TEXT
    ) STRICT;
    CREATE INDEX hosts_org_env ON hosts(org_id, env_id);

    CREATE TABLE credentials (
        id              INTEGER PRIMARY KEY,
        credential_hash TEXT NOT NULL UNIQUE,    -- SHA-256 hex of the credential
        host_id         TEXT NOT NULL REFERENCES hosts(host_id),
        created_at      TEXT NOT NULL,
        revoked_at      TEXT
    ) STRICT;
    CREATE INDEX credentials_host ON credentials(host_id);

    CREATE TABLE snapshots (
        id             TEXT PRIMARY KEY,         -- the agent's UUIDv7: the idempotency key
        host_id        TEXT NOT NULL REFERENCES hosts(host_id),
        org_id         TEXT NOT NULL REFERENCES orgs(id),
        env_id         INTEGER NOT NULL REFERENCES environments(id),
        schema_version INTEGER NOT NULL,
        collected_at   TEXT NOT NULL,
        received_at    TEXT NOT NULL,
        body_encoding  TEXT NOT NULL DEFAULT 'zstd',
        body           BLOB NOT NULL,            -- the JSON as received (decompressed), zstd-compressed
        body_len       INTEGER NOT NULL          -- length of the JSON before compression
    ) STRICT;
    CREATE INDEX snapshots_host_collected ON snapshots(host_id, collected_at);
    "#,
    // 2: findings and their lifecycle, suppressions, the critical queue, the webhook outbox,
    // capacity trend points, score history, and what the collector knows of each host's latest state.
    r#"
    ALTER TABLE hosts ADD COLUMN latest_snapshot_id TEXT;
    ALTER TABLE hosts ADD COLUMN latest_collected_at TEXT;
    ALTER TABLE hosts ADD COLUMN schedule_interval_secs INTEGER;
    ALTER TABLE hosts ADD COLUMN vda_version TEXT;
    ALTER TABLE hosts ADD COLUMN controllers TEXT;          -- JSON array, as configured on the host
    ALTER TABLE hosts ADD COLUMN clock_skew_secs REAL;      -- agent clock minus collector clock
    ALTER TABLE hosts ADD COLUMN catalog_version TEXT;      -- catalog its latest snapshot was judged by
    ALTER TABLE hosts ADD COLUMN score REAL;                -- current host score; NULL: not scored

    CREATE TABLE trend_points (
        snapshot_id  TEXT PRIMARY KEY REFERENCES snapshots(id) ON DELETE CASCADE,
        host_id      TEXT NOT NULL REFERENCES hosts(host_id),
        collected_at TEXT NOT NULL,
        point        TEXT NOT NULL                -- JSON of callhome_shared::rules::TrendPoint
    ) STRICT;
    CREATE INDEX trend_points_host ON trend_points(host_id, collected_at);

    CREATE TABLE findings (
        id                INTEGER PRIMARY KEY,
        org_id            TEXT NOT NULL REFERENCES orgs(id),
        env_id            INTEGER NOT NULL REFERENCES environments(id),
        host_id           TEXT REFERENCES hosts(host_id),   -- NULL: about the environment
        source            TEXT NOT NULL CHECK (source IN ('host', 'fleet', 'trend')),
        rule_id           TEXT NOT NULL,
        subject           TEXT NOT NULL,
        severity          TEXT NOT NULL,
        title             TEXT NOT NULL,
        evidence          TEXT NOT NULL,                    -- JSON object
        first_seen        TEXT NOT NULL,                    -- observed (snapshot time, or job time)
        detected_at       TEXT NOT NULL,                    -- when the collector learned of it
        last_seen         TEXT NOT NULL,
        first_snapshot    TEXT,
        last_snapshot     TEXT,
        resolved_at       TEXT,
        resolved_snapshot TEXT
    ) STRICT;
    -- At most one open finding per (scope, rule, subject): the lifecycle's identity.
    CREATE UNIQUE INDEX findings_open ON findings(env_id, COALESCE(host_id, ''), rule_id, subject)
        WHERE resolved_at IS NULL;
    CREATE INDEX findings_host ON findings(host_id, resolved_at);
    CREATE INDEX findings_org ON findings(org_id, resolved_at);

    CREATE TABLE suppressions (
        id          INTEGER PRIMARY KEY,
        org_id      TEXT NOT NULL REFERENCES orgs(id),
        env_id      INTEGER REFERENCES environments(id),   -- NULL: the whole org
        host_id     TEXT REFERENCES hosts(host_id),        -- NULL: every host in scope
        rule_id     TEXT NOT NULL,                         -- stable across catalog versions
        reason      TEXT NOT NULL,
        author      TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        expires_at  TEXT NOT NULL,
        ended_at    TEXT,
        ended_by    TEXT
    ) STRICT;
    CREATE INDEX suppressions_org ON suppressions(org_id, rule_id);

    CREATE TABLE queue (
        id                   INTEGER PRIMARY KEY,
        finding_id           INTEGER NOT NULL REFERENCES findings(id),
        org_id               TEXT NOT NULL REFERENCES orgs(id),
        tier                 TEXT NOT NULL,
        detected_at          TEXT NOT NULL,
        response_deadline    TEXT NOT NULL,
        restoration_deadline TEXT,
        acknowledged_at      TEXT,
        acknowledged_by      TEXT,
        closed_at            TEXT,
        close_reason         TEXT
    ) STRICT;
    CREATE INDEX queue_open ON queue(closed_at, response_deadline);
    -- A finding has at most one open entry; a suppression that ends re-queues it with a new deadline.
    CREATE UNIQUE INDEX queue_finding_open ON queue(finding_id) WHERE closed_at IS NULL;

    CREATE TABLE webhook_outbox (
        id              INTEGER PRIMARY KEY,
        queue_id        INTEGER NOT NULL REFERENCES queue(id),
        event           TEXT NOT NULL,
        body            TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        delivered_at    TEXT,
        gave_up_at      TEXT,
        last_error      TEXT
    ) STRICT;
    CREATE INDEX webhook_outbox_due ON webhook_outbox(next_attempt_at) WHERE delivered_at IS NULL AND gave_up_at IS NULL;

    CREATE TABLE score_history (
        scope       TEXT NOT NULL CHECK (scope IN ('host', 'env', 'org')),
        scope_id    TEXT NOT NULL,                 -- host id, env id, org id
        day         TEXT NOT NULL,                 -- YYYY-MM-DD (UTC): the day's latest score
        score       REAL NOT NULL,
        findings    INTEGER NOT NULL,
        updated_at  TEXT NOT NULL,
        PRIMARY KEY (scope, scope_id, day)
    ) STRICT;

    CREATE TABLE scores (
        scope       TEXT NOT NULL CHECK (scope IN ('env', 'org')),
        scope_id    TEXT NOT NULL,
        score       REAL NOT NULL,
        explanation TEXT NOT NULL,                 -- JSON of the contributions
        computed_at TEXT NOT NULL,
        PRIMARY KEY (scope, scope_id)
    ) STRICT;

    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;
    "#,
    // 3: TAM console accounts: users, TAM assignments to orgs, browser sessions, API tokens, and
    // failed sign-ins for the lock-out.
    r#"
    CREATE TABLE users (
        id             INTEGER PRIMARY KEY,
        login          TEXT NOT NULL UNIQUE,        -- lowercase
        display_name   TEXT NOT NULL,
        role           TEXT NOT NULL CHECK (role IN ('admin', 'tam')),
        password_hash  TEXT NOT NULL,               -- Argon2id, PHC string
        created_at     TEXT NOT NULL,
        disabled_at    TEXT
    ) STRICT;

    CREATE TABLE tam_orgs (
        user_id     INTEGER NOT NULL REFERENCES users(id),
        org_id      TEXT NOT NULL REFERENCES orgs(id),
        assigned_at TEXT NOT NULL,
        PRIMARY KEY (user_id, org_id)
    ) STRICT;
    CREATE INDEX tam_orgs_org ON tam_orgs(org_id);

    CREATE TABLE sessions (
        id            TEXT PRIMARY KEY,             -- SHA-256 hex of the cookie's token
        user_id       INTEGER NOT NULL REFERENCES users(id),
        csrf_token    TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        last_used_at  TEXT NOT NULL,                -- idle expiry counts from here
        expires_at    TEXT NOT NULL,                -- absolute expiry
        ip            TEXT,
        user_agent    TEXT
    ) STRICT;
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE INDEX sessions_expires ON sessions(expires_at);

    CREATE TABLE api_tokens (
        id            TEXT PRIMARY KEY,             -- public id, shown by `api-token list`
        token_hash    TEXT NOT NULL UNIQUE,         -- SHA-256 hex of the chtt_ token
        user_id       INTEGER NOT NULL REFERENCES users(id),
        name          TEXT NOT NULL,
        created_at    TEXT NOT NULL,
        last_used_at  TEXT,
        revoked_at    TEXT
    ) STRICT;
    CREATE INDEX api_tokens_user ON api_tokens(user_id);

    CREATE TABLE sign_in_failures (
        id     INTEGER PRIMARY KEY,
        login  TEXT NOT NULL,                       -- as typed, lowercased: unknown logins count too
        ip     TEXT,
        at     TEXT NOT NULL
    ) STRICT;
    CREATE INDEX sign_in_failures_login ON sign_in_failures(login, at);
    CREATE INDEX sign_in_failures_ip ON sign_in_failures(ip, at);
    CREATE INDEX sign_in_failures_at ON sign_in_failures(at);
    "#,
    // 4: planned changes: change windows per environment. Findings first seen inside one are
    // change-related; Priority Plus alerts for them wait for the window's end.
    r#"
    CREATE TABLE change_windows (
        id           INTEGER PRIMARY KEY,
        org_id       TEXT NOT NULL REFERENCES orgs(id),
        env_id       INTEGER NOT NULL REFERENCES environments(id),
        starts_at    TEXT NOT NULL,
        ends_at      TEXT NOT NULL,
        description  TEXT NOT NULL,
        author       TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        cancelled_at TEXT,
        CHECK (ends_at > starts_at)
    ) STRICT;
    CREATE INDEX change_windows_env ON change_windows(env_id, starts_at);
    "#,
    // 5: indexes for the console's read models, so
    // that the customers and org pages answer from index ranges on 1,000 orgs and 50,000 hosts.
    r#"
    -- Per org: last contact (one seek), and hosts per environment and VDA version (covering).
    CREATE INDEX IF NOT EXISTS hosts_org_seen ON hosts(org_id, last_seen);
    CREATE INDEX IF NOT EXISTS hosts_org_version ON hosts(org_id, env_id, vda_version);
    -- Open findings per org by severity (open criticals), with what the suppression check needs.
    CREATE INDEX IF NOT EXISTS findings_open_org_severity
        ON findings(org_id, severity, rule_id, env_id, host_id) WHERE resolved_at IS NULL;
    -- Open findings per org by rule (stale hosts, findings grouped by rule).
    CREATE INDEX IF NOT EXISTS findings_open_org_rule
        ON findings(org_id, rule_id, severity, env_id, host_id) WHERE resolved_at IS NULL;
    "#,
    // 6: when each host's trend was last judged, so the periodic jobs skip hosts with no new
    // snapshot since.
    r#"
    ALTER TABLE hosts ADD COLUMN trend_judged_at TEXT;
    -- The jobs walk each environment's hosts; hosts_org_env needs the org first.
    CREATE INDEX hosts_env ON hosts(env_id);
    -- Environments whose host findings changed since their score was computed: rescored within
    -- seconds by the jobs task (the full run every few minutes catches anything missed).
    CREATE TABLE dirty_scores (
        env_id  INTEGER PRIMARY KEY REFERENCES environments(id),
        org_id  TEXT NOT NULL REFERENCES orgs(id),
        since   TEXT NOT NULL
    ) STRICT;
    "#,
    // 7: health-check reports as generated, so that a report can say what changed since the
    // previous one.
    r#"
    CREATE TABLE reports (
        id           INTEGER PRIMARY KEY,
        org_id       TEXT NOT NULL REFERENCES orgs(id),
        generated_at TEXT NOT NULL,
        generated_by TEXT NOT NULL
    ) STRICT;
    CREATE INDEX reports_org ON reports(org_id, generated_at);
    "#,
    // 8: the audit log of admin and TAM actions (`store::audit`). No foreign keys: a row outlives
    // what it names, and a failed sign-in names no user.
    r#"
    CREATE TABLE audit (
        id         INTEGER PRIMARY KEY,
        at         TEXT NOT NULL,
        actor      TEXT NOT NULL,
        actor_kind TEXT NOT NULL,
        action     TEXT NOT NULL,
        target     TEXT NOT NULL,
        org_id     TEXT,
        address    TEXT NOT NULL,
        details    TEXT NOT NULL
    ) STRICT;
    CREATE INDEX audit_at ON audit(at);
    CREATE INDEX audit_org ON audit(org_id, at);
    "#,
    // 9: background jobs coordinated between replicas (`store::coord`): one lease per job, and a
    // row per run; and the index retention deletes by.
    r#"
    CREATE TABLE job_leases (
        name        TEXT PRIMARY KEY,
        period      INTEGER NOT NULL,             -- the period (unix time / interval) last claimed
        holder      TEXT NOT NULL,                -- replica id
        started_at  TEXT NOT NULL,
        lease_until TEXT NOT NULL,                -- another replica may take over after this
        finished_at TEXT
    ) STRICT;
    CREATE TABLE job_runs (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL,
        period      INTEGER NOT NULL,
        holder      TEXT NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        outcome     TEXT
    ) STRICT;
    CREATE INDEX job_runs_name ON job_runs(name, period);
    CREATE INDEX snapshots_received ON snapshots(received_at);
    CREATE INDEX hosts_latest_snapshot ON hosts(latest_snapshot_id);
    "#,
    // 10: retention finds a host's latest snapshot through the host's primary key instead; this
    // index cost ingest a page write per snapshot.
    r#"
    DROP INDEX IF EXISTS hosts_latest_snapshot;
    "#,
];

/// The schema version this binary writes.
pub fn supported_version() -> i64 {
    MIGRATIONS.len() as i64
}

pub(crate) fn current_version(conn: &Connection) -> Result<i64, StoreError> {
    match conn.sqlite() {
        Some(sqlite) => Ok(sqlite.pragma_query_value(None, "user_version", |row| row.get(0))?),
        None => {
            conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
            let version: Option<i64> =
                conn.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))?;
            Ok(version.unwrap_or(0))
        }
    }
}

pub(crate) fn set_version(conn: &Connection, version: i64) -> Result<(), StoreError> {
    match conn.sqlite() {
        Some(sqlite) => sqlite.pragma_update(None, "user_version", version)?,
        None => {
            conn.execute("DELETE FROM schema_version", [])?;
            conn.execute("INSERT INTO schema_version (version) VALUES (?1)", [version])?;
        }
    }
    Ok(())
}

/// Refuses a database made by a newer collector before anything is written to it.
pub fn check_not_newer(conn: &Connection) -> Result<i64, StoreError> {
    let found = current_version(conn)?;
    let supported = supported_version();
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    Ok(found)
}

/// Applies the migrations this database lacks, all in one transaction. Returns the versions it
/// went from and to.
pub fn apply(conn: &Connection) -> Result<(i64, i64), StoreError> {
    if check_not_newer(conn)? == supported_version() {
        return Ok((supported_version(), supported_version()));
    }
    // SQLite: IMMEDIATE takes the write lock first. PostgreSQL: an advisory lock held to the commit.
    // Either way two processes starting together migrate once; the second sees the new version.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if tx.backend() == Backend::Postgres {
        tx.query_row(
            "SELECT pg_advisory_xact_lock(?1)",
            [PG_MIGRATION_LOCK],
            |_| Ok(()),
        )?;
    }
    let from = check_not_newer(&tx)?;
    for sql in MIGRATIONS.iter().skip(usize::try_from(from).unwrap_or(0)) {
        match tx.backend() {
            Backend::Sqlite => tx.execute_batch(sql)?,
            Backend::Postgres => tx.execute_batch(&postgres_ddl(sql))?,
        }
    }
    set_version(&tx, supported_version())?;
    tx.commit()?;
    Ok((from, supported_version()))
}

/// SQLite DDL to PostgreSQL DDL: `INTEGER PRIMARY KEY` (a rowid alias) becomes an identity column,
/// `INTEGER` `bigint` (SQLite's integers are 64-bit), `REAL` `double precision`, `BLOB` `bytea`,
/// `TEXT` text compared byte by byte (`COLLATE "C"`, SQLite's `BINARY`: the store relies on
/// text order being time order for its timestamps), and `STRICT` goes.
pub fn postgres_ddl(sqlite: &str) -> String {
    let mut out = String::with_capacity(sqlite.len() * 5 / 4);
    for line in sqlite.lines() {
        // Comments hold prose that must not be rewritten.
        let (code, comment) = match line.find("--") {
            Some(i) => line.split_at(i),
            None => (line, ""),
        };
        let code = code
            .replace(
                "INTEGER PRIMARY KEY",
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            )
            .replace(") STRICT;", ");");
        let mut mapped = String::with_capacity(code.len());
        for (i, word) in code.split(' ').enumerate() {
            if i > 0 {
                mapped.push(' ');
            }
            let (bare, rest) = word.split_at(word.find([',', ')', ';']).unwrap_or(word.len()));
            let bare = match bare {
                "INTEGER" => "BIGINT",
                "REAL" => "DOUBLE PRECISION",
                "BLOB" => "BYTEA",
                "TEXT" => "TEXT COLLATE \"C\"",
                other => other,
            };
            mapped.push_str(bare);
            mapped.push_str(rest);
        }
        out.push_str(&mapped);
        out.push_str(comment);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_ddl_maps_types_and_keeps_comments() {
        let ddl = postgres_ddl(
            "CREATE TABLE t (\n  id INTEGER PRIMARY KEY,\n  n INTEGER NOT NULL, -- INTEGER stays here\n  s TEXT,\n  r REAL, b BLOB\n) STRICT;\nALTER TABLE t ADD COLUMN x TEXT;",
        );
        assert!(
            ddl.contains("id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"),
            "{ddl}"
        );
        assert!(ddl.contains("n BIGINT NOT NULL, -- INTEGER stays here"), "{ddl}");
        assert!(ddl.contains("s TEXT COLLATE \"C\","), "{ddl}");
        assert!(ddl.contains("r DOUBLE PRECISION, b BYTEA"), "{ddl}");
        assert!(
            ddl.contains(");\nALTER TABLE t ADD COLUMN x TEXT COLLATE \"C\";"),
            "{ddl}"
        );
        assert!(!ddl.contains("STRICT"));
    }
}
