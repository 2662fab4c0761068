//! Schema migrations: an ordered list, applied in one transaction and tracked with `PRAGMA
//! user_version` (the number of migrations applied). A migration, once released, is never edited: a
//! change is a new entry at the end.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

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
];

/// The schema version this binary writes.
pub fn supported_version() -> i64 {
    MIGRATIONS.len() as i64
}

fn user_version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

/// Refuses a database made by a newer collector before anything is written to it.
pub fn check_not_newer(conn: &Connection) -> Result<i64, StoreError> {
    let found = user_version(conn)?;
    let supported = supported_version();
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    Ok(found)
}

/// Applies the migrations this database lacks, all in one transaction. Returns the versions it
/// went from and to.
pub fn apply(conn: &mut Connection) -> Result<(i64, i64), StoreError> {
    if check_not_newer(conn)? == supported_version() {
        return Ok((supported_version(), supported_version()));
    }
    // IMMEDIATE takes the write lock first, so two processes starting together migrate once.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let from = check_not_newer(&tx)?;
    for sql in MIGRATIONS.iter().skip(usize::try_from(from).unwrap_or(0)) {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "user_version", supported_version())?;
    tx.commit()?;
    Ok((from, supported_version()))
}
