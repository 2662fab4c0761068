//! What the TAM JSON API needs beyond the console's read models: cheap "which org owns this id"
//! lookups (so a handler checks the caller's visibility before loading anything else of the
//! object), the TAMs of orgs, and async wrappers of the admin commands' synchronous operations.

use super::db::{self, OptionalExtension};
use time::OffsetDateTime;
use uuid::Uuid;

use super::accounts::Visibility;
use super::audit::Actor;
use super::risk::{self, ChangeWindow, QueueEntry, Suppression};
use super::{NewChangeWindow, NewSuppression, Store, StoreError};

/// The kinds of object an API path names by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned {
    Host,
    QueueEntry,
    Suppression,
    ChangeWindow,
}

impl Owned {
    fn sql(self) -> &'static str {
        match self {
            Owned::Host => "SELECT org_id FROM hosts WHERE host_id = ?1",
            Owned::QueueEntry => "SELECT org_id FROM queue WHERE id = ?1",
            Owned::Suppression => "SELECT org_id FROM suppressions WHERE id = ?1",
            Owned::ChangeWindow => "SELECT org_id FROM change_windows WHERE id = ?1",
        }
    }
}

impl Store {
    /// The org that owns object `id` of kind `kind`; `None` when there is no such object.
    pub async fn owner_of(&self, kind: Owned, id: String) -> Result<Option<String>, StoreError> {
        self.blocking(move |conn| {
            // Bound with the column's type (PostgreSQL compares no text with a bigint); an id
            // that is not a number names nothing.
            let id = match kind {
                Owned::Host => db::Value::Text(id),
                _ => match id.parse::<i64>() {
                    Ok(n) => db::Value::Integer(n),
                    Err(_) => return Ok(None),
                },
            };
            Ok(conn
                .prepare_cached(kind.sql())?
                .query_row([id], |r| r.get(0))
                .optional()?)
        })
        .await
    }

    /// The owner of host `host` (a shorthand of [`Store::owner_of`]).
    pub async fn host_owner(&self, host: Uuid) -> Result<Option<String>, StoreError> {
        self.owner_of(Owned::Host, host.to_string()).await
    }

    /// Queue entries of the orgs `visibility` allows (filtered in SQL), open ones first by
    /// deadline; `all`: closed ones too.
    pub async fn queue_visible(
        &self,
        visibility: Visibility,
        all: bool,
        now: OffsetDateTime,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        self.blocking(move |conn| {
            let orgs = match visibility {
                Visibility::All => None,
                Visibility::Orgs(orgs) => Some(orgs.into_iter().collect::<Vec<_>>()),
            };
            risk::list_queue(conn, None, orgs.as_deref(), all, now)
        })
        .await
    }

    /// Queue entry `id` of org `org` (open or closed).
    pub async fn queue_entry(
        &self,
        org: String,
        id: i64,
        now: OffsetDateTime,
    ) -> Result<QueueEntry, StoreError> {
        self.blocking(move |conn| {
            risk::list_queue(conn, Some(&org), None, true, now)?
                .into_iter()
                .find(|e| e.id == id)
                .ok_or_else(|| StoreError::NotFound(format!("no queue entry {id}")))
        })
        .await
    }

    pub async fn suppressions_of(
        &self,
        org: String,
        now: OffsetDateTime,
    ) -> Result<Vec<Suppression>, StoreError> {
        let store = self.clone();
        run(move || store.list_suppressions(&org, now)).await
    }

    pub async fn suppress(
        &self,
        new: NewSuppression,
        actor: Actor,
        now: OffsetDateTime,
    ) -> Result<Suppression, StoreError> {
        let store = self.clone();
        run(move || store.add_suppression(&new, &actor, now)).await
    }

    /// Ends suppression `id`; `false` when it had ended already.
    pub async fn end_suppression_async(
        &self,
        id: i64,
        actor: Actor,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let store = self.clone();
        run(move || store.end_suppression(id, &actor.who, &actor, now)).await
    }

    /// Suppression `id` as listed (after a change).
    pub async fn suppression(
        &self,
        org: String,
        id: i64,
        now: OffsetDateTime,
    ) -> Result<Suppression, StoreError> {
        self.suppressions_of(org, now)
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("no suppression {id}")))
    }

    pub async fn change_windows_of(&self, org: String) -> Result<Vec<ChangeWindow>, StoreError> {
        let store = self.clone();
        run(move || store.list_change_windows(&org)).await
    }

    pub async fn plan_change(
        &self,
        new: NewChangeWindow,
        actor: Actor,
        now: OffsetDateTime,
    ) -> Result<ChangeWindow, StoreError> {
        let store = self.clone();
        run(move || store.add_change_window(&new, &actor, now)).await
    }

    /// Cancels change window `id`; `false` when it was cancelled already.
    pub async fn cancel_change(
        &self,
        id: i64,
        actor: Actor,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let store = self.clone();
        run(move || store.cancel_change_window(id, &actor, now)).await
    }

    /// Change window `id` as listed (after a change).
    pub async fn change_window(&self, org: String, id: i64) -> Result<ChangeWindow, StoreError> {
        self.change_windows_of(org)
            .await?
            .into_iter()
            .find(|w| w.id == id)
            .ok_or_else(|| StoreError::NotFound(format!("no change window {id}")))
    }

    /// Whether `org`'s effective tier today is scored (Priority, Priority Plus).
    pub async fn org_scored(&self, org: String, now: OffsetDateTime) -> Result<bool, StoreError> {
        let store = self.clone();
        run(move || {
            let conn = store.lock();
            super::require_org(&conn, &org)?;
            drop(conn);
            Ok(risk::is_scored(store.org_tier(&org, now.date())?))
        })
        .await
    }

    /// Daily score history of an org or one of its environments (async).
    pub async fn score_history_async(
        &self,
        org: String,
        environment: Option<String>,
        days: i64,
        now: OffsetDateTime,
    ) -> Result<Vec<(String, f64)>, StoreError> {
        let store = self.clone();
        run(move || store.score_history(&org, environment.as_deref(), days, now)).await
    }
}

/// Runs a synchronous store operation on the blocking pool.
async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}
