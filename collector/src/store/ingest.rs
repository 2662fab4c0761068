//! Storing snapshots inside the ingest writer's transaction, a group at a time (see `writer.rs`).
//!
//! A group is cut into rounds of distinct hosts. Each round does, per table, one statement on
//! PostgreSQL whatever its size: the snapshot rows with their trend points, the hosts' state
//! (newest snapshot time, score, open findings), the hosts' new state, the `last_seen` of the
//! findings observed again. Each statement costs the server a round trip, a bind and an execute
//! whatever its rows, and there were four per snapshot before (2,413 to 2,682 snapshots/s before,
//! 3,735 to 5,010/s since, in 15 to 60 s runs on 2026-12-06; `docs/capacity.md`). What only some
//! snapshots do (a finding opened or resolved, a queue entry, a score that moved) is written
//! snapshot by snapshot, as before.
//!
//! SQLite has no round trips to save: there the same steps run row by row, with the statements SQLite
//! plans best.
//!
//! A host appears at most once per round, so each snapshot is judged against its host's state as
//! the previous snapshots of the group left it.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::db::{self, Connection, OptionalExtension, Value, params, params_from_iter};
use super::{AgentIdentity, Inserted, NewSnapshot, StoreError, risk, to_json, ts};

/// One snapshot to store, with the identity it was posted under and when it was received.
#[derive(Debug, Clone, Copy)]
pub(super) struct Item<'a> {
    pub agent: &'a AgentIdentity,
    pub snapshot: &'a NewSnapshot,
    pub compressed: &'a [u8],
    pub now: OffsetDateTime,
}

/// Snapshots per round at most: each round size is a statement of its own, prepared once per
/// connection.
const ROUND: usize = 64;

/// Stores `items` in the caller's transaction and judges each newly stored one that is its host's
/// newest. Any error fails the whole call (the writer then retries snapshot by snapshot).
pub(super) fn store_group(tx: &Connection, items: &[Item<'_>]) -> Result<Vec<Inserted>, StoreError> {
    let mut out = Vec::with_capacity(items.len());
    let mut start = 0;
    while start < items.len() {
        let end = round_end(items, start);
        out.extend(store_round(tx, &items[start..end])?);
        start = end;
    }
    Ok(out)
}

/// Where the round beginning at `start` ends: before a host or snapshot id it already has, at a
/// change of day (the hosts' state is read for one day's score history) or at [`ROUND`].
fn round_end(items: &[Item<'_>], start: usize) -> usize {
    let day = items[start].now.date();
    let (mut hosts, mut ids) = (HashSet::new(), HashSet::new());
    let mut end = start;
    while let Some(item) = items.get(end) {
        if end - start == ROUND
            || item.now.date() != day
            || !hosts.insert(item.agent.host_id)
            || !ids.insert(item.snapshot.id)
        {
            break;
        }
        end += 1;
    }
    end
}

fn store_round(tx: &Connection, items: &[Item<'_>]) -> Result<Vec<Inserted>, StoreError> {
    let stored = insert_rows(tx, items)?;
    for (item, _) in items.iter().zip(&stored).filter(|(_, s)| !**s) {
        warn_if_replayed_elsewhere(tx, item)?;
    }
    let hosts: Vec<Uuid> = items
        .iter()
        .zip(&stored)
        .filter(|(_, s)| **s)
        .map(|(i, _)| i.agent.host_id)
        .collect();
    // The latest receipt time of the round: which suppressions are active, as of this write.
    let now = items
        .iter()
        .map(|i| i.now)
        .max()
        .unwrap_or_else(OffsetDateTime::now_utc);
    let mut states = if hosts.is_empty() {
        HashMap::new()
    } else {
        risk::read_hosts(tx, &hosts, now)?
    };
    let mut deferred = Deferred::default();
    let mut out = Vec::with_capacity(items.len());
    for (item, stored) in items.iter().zip(stored) {
        let newest = if stored {
            let state = states.remove(&item.agent.host_id).ok_or_else(|| {
                StoreError::NotFound(format!("host {} is not enrolled", item.agent.host_id))
            })?;
            judge(tx, item, state, &mut deferred)?
        } else {
            false
        };
        // The host was heard from, replay or not (written with the newest snapshot otherwise).
        if !newest {
            deferred.seen.push(Seen {
                host_id: item.agent.host_id.to_string(),
                last_seen: ts(item.now),
                skew: item.snapshot.judged.clock_skew_secs,
            });
        }
        out.push(if stored {
            Inserted::Stored
        } else {
            Inserted::Duplicate
        });
    }
    deferred.write(tx)?;
    Ok(out)
}

/// The snapshot rows and, for those not already stored, their trend points (a stored snapshot's
/// trend point goes with it, replay or not of an older one). True for each row stored now.
fn insert_rows(tx: &Connection, items: &[Item<'_>]) -> Result<Vec<bool>, StoreError> {
    let rows = items.iter().map(Row::of).collect::<Result<Vec<_>, _>>()?;
    match tx.backend() {
        db::Backend::Postgres => {
            let sql = insert_rows_sql(rows.len());
            let values: Vec<Value> = rows.into_iter().flat_map(Row::values).collect();
            let mut stmt = tx.prepare_cached(sql)?;
            let returned: HashSet<String> = stmt
                .query_map(params_from_iter(values), |r| r.get::<String>(0))?
                .collect::<Result<_, _>>()?;
            Ok(items
                .iter()
                .map(|i| returned.contains(&i.snapshot.id.to_string()))
                .collect())
        }
        db::Backend::Sqlite => {
            let mut stored = Vec::with_capacity(rows.len());
            for row in rows {
                let values = row.values();
                let n = tx
                    .prepare_cached(
                        "INSERT INTO snapshots (id, host_id, org_id, env_id, schema_version, collected_at,
                                                received_at, body_encoding, body, body_len)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'zstd', ?8, ?9)
                         ON CONFLICT(id) DO NOTHING",
                    )?
                    .execute(params_from_iter(&values[..9]))?;
                if n == 1 {
                    tx.prepare_cached(
                        "INSERT INTO trend_points (snapshot_id, host_id, collected_at, point) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![values[0], values[1], values[5], values[9]])?;
                }
                stored.push(n == 1);
            }
            Ok(stored)
        }
    }
}

/// One `snapshots` row and its trend point, in the order of [`insert_rows_sql`]'s columns.
struct Row {
    id: String,
    host_id: String,
    org_id: String,
    env_id: i64,
    schema_version: i64,
    collected_at: String,
    received_at: String,
    body: Vec<u8>,
    body_len: i64,
    point: String,
}

impl Row {
    fn of(item: &Item<'_>) -> Result<Row, StoreError> {
        let s = item.snapshot;
        Ok(Row {
            id: s.id.to_string(),
            host_id: item.agent.host_id.to_string(),
            org_id: item.agent.org.clone(),
            env_id: item.agent.env_id,
            schema_version: i64::from(s.schema_version),
            collected_at: ts(s.collected_at),
            received_at: ts(item.now),
            body: item.compressed.to_vec(),
            body_len: i64::try_from(s.body.len()).unwrap_or(i64::MAX),
            point: to_json(&s.judged.trend)?,
        })
    }

    fn values(self) -> [Value; 10] {
        [
            Value::Text(self.id),
            Value::Text(self.host_id),
            Value::Text(self.org_id),
            Value::Integer(self.env_id),
            Value::Integer(self.schema_version),
            Value::Text(self.collected_at),
            Value::Text(self.received_at),
            Value::Blob(self.body),
            Value::Integer(self.body_len),
            Value::Text(self.point),
        ]
    }
}

/// PostgreSQL: `n` (1 to [`ROUND`]) snapshot rows and their trend points in one statement, returning
/// the ids stored (a conflicting id, already stored, is not returned and gets no trend point). Made
/// once per size, at first use.
fn insert_rows_sql(n: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    let sql = SQL.get_or_init(|| (1..=ROUND).map(build_insert_rows_sql).collect());
    &sql[n.clamp(1, ROUND) - 1]
}

fn build_insert_rows_sql(n: usize) -> String {
    const TYPES: [&str; 10] = [
        "TEXT", "TEXT", "TEXT", "BIGINT", "BIGINT", "TEXT", "TEXT", "BYTEA", "BIGINT", "TEXT",
    ];
    let rows: Vec<String> = (0..n)
        .map(|r| {
            let cols: Vec<String> = TYPES
                .iter()
                .enumerate()
                .map(|(c, ty)| format!("CAST(?{} AS {ty})", r * TYPES.len() + c + 1))
                .collect();
            format!("({})", cols.join(", "))
        })
        .collect();
    format!(
        "WITH v (id, host_id, org_id, env_id, schema_version, collected_at, received_at, body, body_len, point)
              AS (VALUES {}),
         s AS (INSERT INTO snapshots (id, host_id, org_id, env_id, schema_version, collected_at,
                                      received_at, body_encoding, body, body_len)
               SELECT id, host_id, org_id, env_id, schema_version, collected_at, received_at, 'zstd', body, body_len
               FROM v ON CONFLICT (id) DO NOTHING RETURNING id),
         t AS (INSERT INTO trend_points (snapshot_id, host_id, collected_at, point)
               SELECT v.id, v.host_id, v.collected_at, v.point FROM v JOIN s ON s.id = v.id)
         SELECT id FROM s",
        rows.join(",\n")
    )
}

fn warn_if_replayed_elsewhere(tx: &Connection, item: &Item<'_>) -> Result<(), StoreError> {
    let owner: Option<String> = tx
        .query_row(
            "SELECT host_id FROM snapshots WHERE id = ?1",
            [item.snapshot.id.to_string()],
            |r| r.get(0),
        )
        .optional()?;
    if owner.as_deref() != Some(item.agent.host_id.to_string().as_str()) {
        tracing::warn!(snapshot_id = %item.snapshot.id, host_id = %item.agent.host_id, stored_for = ?owner,
            "snapshot id replayed by a different host; keeping the stored one");
    }
    Ok(())
}

/// Judges a newly stored snapshot against its host's `state` when it is the host's newest (a spool
/// replay of an older one must not reopen what a newer one resolved): findings, queue, score.
/// True when it was the newest; the host's new state and the findings seen again go to `deferred`.
fn judge(
    tx: &Connection,
    item: &Item<'_>,
    state: risk::HostState,
    deferred: &mut Deferred,
) -> Result<bool, StoreError> {
    let (agent, snapshot, now) = (item.agent, item.snapshot, item.now);
    let collected = ts(snapshot.collected_at);
    if state
        .latest_collected_at
        .as_ref()
        .is_some_and(|l| *l >= collected)
    {
        return Ok(false);
    }
    let judged = &snapshot.judged;
    let controllers = judged.controllers.as_ref().map(to_json).transpose()?;
    deferred.latest.push(Latest {
        host_id: agent.host_id.to_string(),
        snapshot_id: snapshot.id.to_string(),
        collected_at: collected,
        interval: judged.schedule_interval_secs.and_then(|v| i64::try_from(v).ok()),
        vda_version: judged.vda_version.clone(),
        controllers,
        catalog_version: judged.catalog_version.clone(),
        last_seen: ts(now),
        skew: judged.clock_skew_secs,
    });
    let located: Vec<risk::Located> = judged
        .findings
        .iter()
        .map(|f| (Some(agent.host_id), f.clone()))
        .collect();
    let judgement = risk::Judgement {
        org: &agent.org,
        env_id: agent.env_id,
        host: Some(agent.host_id),
        source: risk::Source::Host,
        observed_at: snapshot.collected_at,
        snapshot: Some(snapshot.id),
        tier: agent.tier,
    };
    let (score, recorded) = (state.score, state.recorded);
    let host = risk::apply_host(tx, &judgement, agent.host_id, state, &located, now)?;
    deferred.seen_again.push(host.seen_again);
    let known = risk::Known {
        items: host.items,
        recorded: Some(recorded),
    };
    risk::rescore_host_with(tx, agent.host_id, agent.tier, score, known, now)?;
    if !host.applied.touched.is_empty() && risk::is_scored(agent.tier) {
        risk::mark_dirty(tx, agent.env_id, &agent.org, now)?;
    }
    Ok(true)
}

/// The writes every snapshot of a round makes, written together at its end. Nothing the round
/// reads depends on them: the round's hosts are distinct and their state was read before.
#[derive(Default)]
struct Deferred {
    /// Hosts whose newest snapshot this is.
    latest: Vec<Latest>,
    /// Hosts heard from by an older or repeated snapshot: only `last_seen` and the clock skew.
    seen: Vec<Seen>,
    seen_again: Vec<risk::SeenAgain>,
}

#[derive(Serialize)]
struct Latest {
    host_id: String,
    snapshot_id: String,
    collected_at: String,
    interval: Option<i64>,
    vda_version: Option<String>,
    controllers: Option<String>,
    catalog_version: String,
    last_seen: String,
    skew: Option<f64>,
}

#[derive(Serialize)]
struct Seen {
    host_id: String,
    last_seen: String,
    skew: Option<f64>,
}

impl Deferred {
    fn write(self, tx: &Connection) -> Result<(), StoreError> {
        risk::mark_seen_again(tx, &self.seen_again)?;
        match tx.backend() {
            // `= ANY(ARRAY(..))` for the rows to change: an init plan evaluated once and primary-key
            // lookups, whatever plan the prepared statement settles on.
            db::Backend::Postgres => {
                if !self.latest.is_empty() {
                    tx.prepare_cached(
                        "UPDATE hosts h SET latest_snapshot_id = x.snapshot_id, latest_collected_at = x.collected_at,
                                schedule_interval_secs = x.interval, vda_version = x.vda_version,
                                controllers = x.controllers, catalog_version = x.catalog_version,
                                last_seen = x.last_seen, clock_skew_secs = COALESCE(x.skew, h.clock_skew_secs)
                         FROM json_to_recordset(CAST(?1 AS JSON)) AS x(host_id TEXT, snapshot_id TEXT,
                              collected_at TEXT, interval BIGINT, vda_version TEXT, controllers TEXT,
                              catalog_version TEXT, last_seen TEXT, skew DOUBLE PRECISION)
                         WHERE h.host_id = ANY(ARRAY(SELECT y.host_id FROM json_to_recordset(CAST(?1 AS JSON)) AS y(host_id TEXT)))
                           AND h.host_id = x.host_id",
                    )?
                    .execute(params![to_json(&self.latest)?])?;
                }
                if !self.seen.is_empty() {
                    tx.prepare_cached(
                        "UPDATE hosts h SET last_seen = x.last_seen, clock_skew_secs = COALESCE(x.skew, h.clock_skew_secs)
                         FROM json_to_recordset(CAST(?1 AS JSON)) AS x(host_id TEXT, last_seen TEXT, skew DOUBLE PRECISION)
                         WHERE h.host_id = ANY(ARRAY(SELECT y.host_id FROM json_to_recordset(CAST(?1 AS JSON)) AS y(host_id TEXT)))
                           AND h.host_id = x.host_id",
                    )?
                    .execute(params![to_json(&self.seen)?])?;
                }
            }
            db::Backend::Sqlite => {
                for l in &self.latest {
                    tx.prepare_cached(
                        "UPDATE hosts SET latest_snapshot_id = ?2, latest_collected_at = ?3, schedule_interval_secs = ?4,
                                vda_version = ?5, controllers = ?6, catalog_version = ?7,
                                last_seen = ?8, clock_skew_secs = COALESCE(?9, clock_skew_secs)
                         WHERE host_id = ?1",
                    )?
                    .execute(params![
                        l.host_id,
                        l.snapshot_id,
                        l.collected_at,
                        l.interval,
                        l.vda_version,
                        l.controllers,
                        l.catalog_version,
                        l.last_seen,
                        l.skew
                    ])?;
                }
                for s in &self.seen {
                    tx.prepare_cached(
                        "UPDATE hosts SET last_seen = ?2, clock_skew_secs = COALESCE(?3, clock_skew_secs) WHERE host_id = ?1",
                    )?
                    .execute(params![s.host_id, s.last_seen, s.skew])?;
                }
            }
        }
        Ok(())
    }
}
