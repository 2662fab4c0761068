//! Back-pressure: the collector never admits more snapshot posts than it can commit, and says so with
//! an answer the agent can act on rather than a queue it waits in.
//!
//! - A full ingest queue: `POST /v1/snapshots` past `limits.max_inflight_snapshots` is answered 429
//!   `too_many_requests` with `Retry-After`, after authentication and before its body is read.
//! - Shutting down: from the shutdown signal on, every request (but `/healthz`) that reaches the router
//!   is answered 503 `shutting_down` with `Retry-After` and `Connection: close`, `/readyz` included, so
//!   a load balancer stops sending; requests admitted before the signal finish.
//!
//! A permit is held from admission until the commit is done, also when the client has gone or the
//! request timed out (the commit runs on in its own task, holding the permit), so that the drain at
//! shutdown can wait for the last commit ([`Admission::wait_idle`]).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{AppError, AppState};
use crate::config::Limits;

/// At most one "shedding load" warning per interval; the ones in between are counted into the next.
const SHED_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// The ingest queue's permits and the draining flag, shared by all clones of the [`AppState`].
#[derive(Debug)]
pub struct Admission {
    permits: Arc<Semaphore>,
    max_inflight: u32,
    retry_after_secs: u64,
    draining: AtomicBool,
    shed: ShedLog,
    random: SystemRandom,
}

/// The right to run one snapshot post up to its commit; dropping it frees the place.
#[derive(Debug)]
pub struct IngestPermit {
    _permit: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(limits: &Limits) -> Admission {
        Admission {
            permits: Arc::new(Semaphore::new(to_usize(limits.max_inflight_snapshots))),
            max_inflight: limits.max_inflight_snapshots,
            retry_after_secs: limits.retry_after_secs,
            draining: AtomicBool::new(false),
            shed: ShedLog::default(),
            random: SystemRandom::new(),
        }
    }

    /// A place in the ingest queue, or 429 at once: never a wait, which would only move the queue
    /// from the agent (which has a durable spool) into the collector's memory.
    pub fn try_admit(&self) -> Result<IngestPermit, AppError> {
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => Ok(IngestPermit { _permit: permit }),
            Err(_) => {
                self.shed.record(self.max_inflight);
                Err(AppError::TooManyRequests {
                    retry_after: self.retry_after(),
                })
            }
        }
    }

    /// Snapshot posts admitted and not yet committed (or refused).
    pub fn in_flight(&self) -> usize {
        to_usize(self.max_inflight).saturating_sub(self.permits.available_permits())
    }

    /// Snapshot posts refused with 429 since the collector started.
    pub fn refused_total(&self) -> u64 {
        self.shed.total.load(Ordering::Relaxed)
    }

    /// From now on, requests that reach the router are answered 503 `shutting_down`.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Waits until every admitted snapshot post has committed (or failed), up to `timeout`; false when
    /// some were still running then.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.permits.acquire_many(self.max_inflight))
            .await
            .is_ok_and(|acquired| acquired.is_ok())
    }

    /// `retry_after_secs` plus a random 0..=`retry_after_secs / 2`. Agents that were refused in the
    /// same second and honour the header to the letter would otherwise all return in the same second.
    pub fn retry_after(&self) -> u64 {
        let spread = self.retry_after_secs / 2;
        if spread == 0 {
            return self.retry_after_secs;
        }
        let mut bytes = [0u8; 8];
        // Without randomness the un-jittered value is still a correct answer.
        if self.random.fill(&mut bytes).is_err() {
            return self.retry_after_secs;
        }
        self.retry_after_secs + u64::from_le_bytes(bytes) % (spread + 1)
    }
}

fn to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Counts refusals and warns about them at most once per [`SHED_WARN_INTERVAL`], so that a storm of
/// 429s is visible in the log without being the log.
#[derive(Debug, Default)]
struct ShedLog {
    total: AtomicU64,
    since_warn: AtomicU64,
    last_warn: Mutex<Option<Instant>>,
}

impl ShedLog {
    fn record(&self, max_inflight: u32) {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.since_warn.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last_warn.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < SHED_WARN_INTERVAL) {
            return;
        }
        let window = last.map(|at| now.duration_since(at));
        *last = Some(now);
        drop(last);
        let refused = self.since_warn.swap(0, Ordering::Relaxed);
        match window {
            None => tracing::warn!(
                refused,
                max_inflight_snapshots = max_inflight,
                "shedding load: ingest queue full, snapshot posts refused with 429 (warning at most every {} s)",
                SHED_WARN_INTERVAL.as_secs()
            ),
            Some(window) => tracing::warn!(
                refused,
                max_inflight_snapshots = max_inflight,
                "shedding load: ingest queue full, snapshot posts refused with 429 in the last {} s",
                window.as_secs()
            ),
        }
    }
}

/// Middleware: while draining, answer 503 `shutting_down` to everything but the liveness probe.
pub async fn reject_while_draining(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.admission.is_draining() && request.uri().path() != "/healthz" {
        return AppError::ShuttingDown {
            retry_after: state.admission.retry_after(),
        }
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_inflight_snapshots: u32, retry_after_secs: u64) -> Admission {
        Admission::new(&Limits {
            max_inflight_snapshots,
            retry_after_secs,
            ..Limits::default()
        })
    }

    #[test]
    fn retry_after_is_jittered_by_up_to_half() {
        let a = admission(1, 10);
        let seen: std::collections::BTreeSet<u64> = (0..500).map(|_| a.retry_after()).collect();
        assert!(seen.iter().all(|s| (10..=15).contains(s)), "{seen:?}");
        // 500 draws over 6 values: all 6 come up unless the generator is broken.
        assert_eq!(seen.len(), 6, "{seen:?}");
        assert_eq!(admission(1, 1).retry_after(), 1);
        assert!((2..=3).contains(&admission(1, 2).retry_after()));
    }

    #[tokio::test]
    async fn permits_bound_the_queue_and_come_back_on_drop() {
        let a = admission(2, 5);
        let p1 = a.try_admit().unwrap();
        let p2 = a.try_admit().unwrap();
        assert_eq!(a.in_flight(), 2);
        let refused = a.try_admit().unwrap_err();
        assert!(
            matches!(refused, AppError::TooManyRequests { retry_after } if (5..=7).contains(&retry_after))
        );
        assert!(a.try_admit().is_err());
        assert_eq!(a.refused_total(), 2);
        assert!(!a.wait_idle(Duration::from_millis(20)).await);
        drop(p1);
        assert_eq!(a.in_flight(), 1);
        let p3 = a.try_admit().unwrap();
        drop((p2, p3));
        assert_eq!(a.in_flight(), 0);
        assert!(a.wait_idle(Duration::from_millis(20)).await);
    }

    #[test]
    fn draining_is_a_one_way_flag() {
        let a = admission(1, 5);
        assert!(!a.is_draining());
        a.start_draining();
        assert!(a.is_draining());
    }
}
