//! Group commit for ingest: one writer thread per store takes every snapshot waiting at that
//! moment, stores them in one transaction (each inside its own savepoint, so one bad snapshot fails
//! alone) and commits once. Each request gets its answer only after that commit: durability is
//! unchanged, but one fsync (SQLite) or one WAL flush (PostgreSQL) now covers a whole group, and on
//! PostgreSQL a few statements do (`ingest.rs`).
//!
//! No timer: a group is whatever arrived while the previous one was committing, so a lone snapshot
//! is written at once and a burst shares commits.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::db::{Connection, TransactionBehavior};
use super::ingest::{self, Item};
use super::{AgentIdentity, Inserted, NewSnapshot, Store, StoreError};

/// Snapshots per transaction at most: bounds the time a group holds SQLite's write lock.
const MAX_GROUP: usize = 256;
/// Snapshots waiting for the writer at most; a request beyond it waits on the blocking pool.
const QUEUE: usize = 4096;

pub(super) struct Job {
    pub agent: AgentIdentity,
    pub snapshot: NewSnapshot,
    pub compressed: Vec<u8>,
    pub now: OffsetDateTime,
    pub reply: oneshot::Sender<Result<Inserted, StoreError>>,
    /// Dropped after the reply (the request's place in the ingest queue).
    pub hold: Box<dyn Send>,
}

impl Job {
    fn item(&self) -> Item<'_> {
        Item {
            agent: &self.agent,
            snapshot: &self.snapshot,
            compressed: &self.compressed,
            now: self.now,
        }
    }
}

pub(super) struct Writer {
    jobs: mpsc::SyncSender<Job>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

/// What groups have been committed so far (for tests and the benchmark's report).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroupStats {
    pub groups: u64,
    pub snapshots: u64,
    pub largest: u64,
}

impl Writer {
    /// Starts the writer on `conn`: the store's own connection for SQLite (one writer per file),
    /// a connection of its own for PostgreSQL.
    pub(super) fn start(
        store: Store,
        conn: Arc<Mutex<Connection>>,
        stats: Arc<Mutex<GroupStats>>,
    ) -> Result<Writer, StoreError> {
        let (jobs, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("ingest-writer".into())
            .spawn(move || run(&store, &conn, &rx, &stats))
            .map_err(|e| StoreError::Task(format!("cannot start the ingest writer: {e}")))?;
        Ok(Writer {
            jobs,
            thread: Some(thread),
        })
    }

    /// Queues a job; blocks while the queue is full (call it from the blocking pool).
    pub(super) fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Task("the ingest writer has stopped".to_owned()))
    }

    /// Stops taking jobs and waits until the queued ones are written.
    pub(super) fn stop(mut self) {
        let thread = self.thread.take();
        drop(self);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn run(store: &Store, conn: &Mutex<Connection>, rx: &mpsc::Receiver<Job>, stats: &Mutex<GroupStats>) {
    let checkpointer = Checkpointer::start(store, conn);
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let results = {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            if guard.is_closed() {
                match store.new_connection() {
                    Ok(fresh) => *guard = fresh,
                    Err(e) => tracing::warn!(error = %e, "cannot reconnect to the database"),
                }
            }
            write_group(&guard, &group)
        };
        {
            let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
            s.groups += 1;
            s.snapshots += group.len() as u64;
            s.largest = s.largest.max(group.len() as u64);
        }
        if let Some(c) = &checkpointer {
            c.committed();
        }
        for (job, result) in group.into_iter().zip(results) {
            // The request may have gone (client cut): its snapshot is stored all the same, and
            // the agent's retry with the same id will be a duplicate.
            // The place in the queue first: the agent may post again as soon as it has the answer.
            drop(job.hold);
            let _ = job.reply.send(result);
        }
    }
}

/// SQLite's WAL checkpoints on a thread of their own. By default the connection whose commit takes
/// the WAL past 1,000 pages copies it into the database file and fsyncs that, inside the commit: a
/// fifth of the writer's time, during which no group is written. A passive checkpoint from another
/// connection copies what it can without blocking the writer; the writer's own automatic
/// checkpoint stays, at a larger size, in case this thread falls behind.
struct Checkpointer {
    notify: Option<mpsc::SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// How long commits are let pile up between checkpoints: a page changed by several groups is then
/// copied once.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// The writer's own automatic checkpoint, in pages (4 KiB each), only reached if the thread lags.
const WRITER_AUTOCHECKPOINT_PAGES: i64 = 16_384;

impl Checkpointer {
    /// `None` for PostgreSQL, or when the thread cannot be set up (the writer then checkpoints as
    /// SQLite does by default).
    fn start(store: &Store, writer_conn: &Mutex<Connection>) -> Option<Checkpointer> {
        let super::Location::Sqlite(path) = store.location() else {
            return None;
        };
        let conn = match super::open_sqlite(path) {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the WAL checkpoint connection; the writer checkpoints");
                return None;
            }
        };
        {
            let guard = writer_conn.lock().unwrap_or_else(|p| p.into_inner());
            let sqlite = guard.sqlite()?;
            if let Err(e) = sqlite.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES) {
                tracing::warn!(error = %e, "cannot move WAL checkpoints off the writer");
                return None;
            }
        }
        let (notify, rx) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    std::thread::sleep(CHECKPOINT_EVERY);
                    // Commits made during the pause are covered by this checkpoint.
                    while rx.try_recv().is_ok() {}
                    if let Some(sqlite) = conn.sqlite()
                        && let Err(e) = sqlite.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "WAL checkpoint failed");
                    }
                }
            });
        match thread {
            Ok(thread) => Some(Checkpointer {
                notify: Some(notify),
                thread: Some(thread),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the WAL checkpoint thread");
                None
            }
        }
    }

    fn committed(&self) {
        if let Some(n) = &self.notify {
            // Full: a checkpoint is already due.
            let _ = n.try_send(());
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.notify.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One transaction for the group. First without savepoints: a savepoint copies every page it
/// touches before changing it, a large share of a group's writes. Should any snapshot fail, that
/// attempt is rolled back and the group written again with a savepoint per snapshot, so that the bad
/// one fails alone. When the commit fails, nothing of the group is durable and every snapshot of it
/// gets the error.
fn write_group(conn: &Connection, group: &[Job]) -> Vec<Result<Inserted, StoreError>> {
    match write_group_at_once(conn, group) {
        Ok(results) => results,
        Err(GroupError::Snapshot) => write_group_one_by_one(conn, group),
        Err(GroupError::Database(e)) => failed_all(group, &e),
    }
}

enum GroupError {
    /// A snapshot of the group failed: the transaction was rolled back.
    Snapshot,
    /// Beginning or committing failed: the database, not a snapshot.
    Database(super::db::Error),
}

fn failed_all(group: &[Job], e: &dyn std::fmt::Display) -> Vec<Result<Inserted, StoreError>> {
    group
        .iter()
        .map(|_| Err(StoreError::Unavailable(e.to_string())))
        .collect()
}

fn write_group_at_once(
    conn: &Connection,
    group: &[Job],
) -> Result<Vec<Result<Inserted, StoreError>>, GroupError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(GroupError::Database)?;
    let items: Vec<Item<'_>> = group.iter().map(Job::item).collect();
    // Dropping `tx` on an error rolls back.
    let results = ingest::store_group(&tx, &items).map_err(|_| GroupError::Snapshot)?;
    tx.commit().map_err(GroupError::Database)?;
    Ok(results.into_iter().map(Ok).collect())
}

fn write_group_one_by_one(conn: &Connection, group: &[Job]) -> Vec<Result<Inserted, StoreError>> {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return failed_all(group, &e),
    };
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        if let Err(e) = tx.execute_batch("SAVEPOINT snapshot") {
            return failed_all(group, &e);
        }
        let result = ingest::store_group(&tx, &[job.item()]).and_then(|r| {
            r.into_iter()
                .next()
                .ok_or_else(|| StoreError::Task("no result for the snapshot".to_owned()))
        });
        let end = if result.is_ok() {
            "RELEASE snapshot"
        } else {
            "ROLLBACK TO snapshot; RELEASE snapshot"
        };
        if let Err(e) = tx.execute_batch(end) {
            return failed_all(group, &e);
        }
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => failed_all(group, &e),
    }
}
