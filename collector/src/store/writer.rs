//! Group commit for ingest: one writer thread per store takes every snapshot waiting at that
//! moment, stores them in one transaction (each inside its own savepoint, so one bad snapshot fails
//! alone) and commits once. Each request gets its answer only after that commit: durability is
//! unchanged, but one fsync (SQLite) or one WAL flush (PostgreSQL) now covers a whole group.
//!
//! No timer: a group is whatever arrived while the previous one was committing, so a lone snapshot
//! is written at once and a burst shares commits.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::db::{Connection, TransactionBehavior};
use super::{AgentIdentity, Inserted, NewSnapshot, Store, StoreError, insert_snapshot_in};

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
        for (job, result) in group.into_iter().zip(results) {
            // The request may have gone (client cut): its snapshot is stored all the same, and
            // the agent's retry with the same id will be a duplicate.
            let _ = job.reply.send(result);
        }
    }
}

/// One transaction for the group; each snapshot in a savepoint. When the commit fails, nothing of
/// the group is durable and every snapshot of it gets the error.
fn write_group(conn: &Connection, group: &[Job]) -> Vec<Result<Inserted, StoreError>> {
    let failed_all = |e: &dyn std::fmt::Display| {
        group
            .iter()
            .map(|_| Err(StoreError::Unavailable(e.to_string())))
            .collect()
    };
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return failed_all(&e),
    };
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        if let Err(e) = tx.execute_batch("SAVEPOINT snapshot") {
            return failed_all(&e);
        }
        let result = insert_snapshot_in(&tx, &job.agent, &job.snapshot, &job.compressed, job.now);
        let end = if result.is_ok() {
            "RELEASE snapshot"
        } else {
            "ROLLBACK TO snapshot; RELEASE snapshot"
        };
        if let Err(e) = tx.execute_batch(end) {
            return failed_all(&e);
        }
        results.push(result);
    }
    match tx.commit() {
        Ok(()) => results,
        Err(e) => failed_all(&e),
    }
}
