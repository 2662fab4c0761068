//! The load itself. Closed loop: each of C connections sends its next snapshot as soon as the last
//! one is answered, for the highest sustained rate. Open loop: snapshots are due at a fixed rate R
//! whatever the answers, and a snapshot's latency runs from when it was due, so a server that falls
//! behind shows it in the latency instead of slowing the generator down (no coordinated omission).
//!
//! Only the window after the warm-up is measured; every answer of the run is also counted in the
//! totals, which are what the store must hold afterwards.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use callhome_shared::api::{SENT_AT_HEADER, SNAPSHOTS_PATH};
use http::{HeaderValue, Request, header};
use http_body_util::Full;
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::client::{Conn, Target};
use crate::pool::Pool;
use crate::procstat::{self, Sampler, ServerUsage};
use crate::template::format_time;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Closed,
    Open { rate: f64 },
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub mode: Mode,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
    pub server_pids: Vec<u32>,
}

/// What one worker saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Answered 2xx within the window, in microseconds.
    pub latencies_us: Vec<u32>,
    pub window_status: BTreeMap<u16, u64>,
    pub window_errors: BTreeMap<&'static str, u64>,
    pub total_status: BTreeMap<u16, u64>,
    pub total_errors: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn error(&mut self, in_window: bool, kind: &'static str) {
        *self.total_errors.entry(kind).or_default() += 1;
        if in_window {
            *self.window_errors.entry(kind).or_default() += 1;
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.window_status {
            *self.window_status.entry(k).or_default() += v;
        }
        for (k, v) in other.total_status {
            *self.total_status.entry(k).or_default() += v;
        }
        for (k, v) in other.window_errors {
            *self.window_errors.entry(k).or_default() += v;
        }
        for (k, v) in other.total_errors {
            *self.total_errors.entry(k).or_default() += v;
        }
    }
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Outcome {
    pub tally: Tally,
    /// Wall time from the first request to the last answer.
    pub elapsed: Duration,
    pub server: Option<ServerUsage>,
    /// The generator's own CPU over the window, in cores.
    pub loadgen_cpu_cores: f64,
    /// Open loop: the longest a request waited past its due time to be sent (every connection
    /// busy, or the generator itself behind).
    pub open_loop_max_lag: Option<Duration>,
    /// Open loop: requests due in the window that were never sent because the run ended first.
    pub open_loop_unsent: Option<u64>,
}

struct Ctx {
    target: Target,
    host: HeaderValue,
    pool: Arc<Pool>,
    mode: Mode,
    start: Instant,
    warm: Instant,
    end: Instant,
    timeout: Duration,
    slot: AtomicU64,
    max_lag_us: AtomicU64,
}

pub async fn run(target: &Target, pool: Arc<Pool>, plan: &Plan) -> Result<Outcome> {
    // Handshakes before the clock starts: the window measures requests, not connection set-up.
    let mut conns = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        conns.push(
            target
                .connect()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("connecting to {}", target.authority))?,
        );
    }
    let start = Instant::now();
    let ctx = Arc::new(Ctx {
        target: target.clone(),
        host: HeaderValue::from_str(&target.authority).context("Host header")?,
        pool,
        mode: plan.mode,
        start,
        warm: start + plan.warmup,
        end: start + plan.warmup + plan.duration,
        timeout: plan.timeout,
        slot: AtomicU64::new(0),
        max_lag_us: AtomicU64::new(0),
    });
    let sampler = tokio::spawn(sample(ctx.warm, ctx.end, plan.server_pids.clone()));
    let mut workers = tokio::task::JoinSet::new();
    for conn in conns {
        workers.spawn(worker(Arc::clone(&ctx), conn));
    }
    let mut tally = Tally::default();
    while let Some(t) = workers.join_next().await {
        tally.merge(t.context("a load worker failed")??);
    }
    let elapsed = start.elapsed();
    let open_loop_unsent = match plan.mode {
        Mode::Open { rate } => {
            // Slots i with warm <= start + i/rate < end.
            let first = (plan.warmup.as_secs_f64() * rate).ceil() as u64;
            let past = ((plan.warmup + plan.duration).as_secs_f64() * rate).ceil() as u64;
            let sent = tally.window_status.values().sum::<u64>() + tally.window_errors.values().sum::<u64>();
            Some(past.saturating_sub(first).saturating_sub(sent))
        }
        Mode::Closed => None,
    };
    let (server, loadgen_cpu_cores) = sampler.await.context("the /proc sampler failed")??;
    Ok(Outcome {
        tally,
        elapsed,
        server,
        loadgen_cpu_cores,
        open_loop_max_lag: matches!(plan.mode, Mode::Open { .. })
            .then(|| Duration::from_micros(ctx.max_lag_us.load(Ordering::Relaxed))),
        open_loop_unsent,
    })
}

/// The server's CPU and memory over the window, sampled every 200 ms, and the generator's own CPU.
async fn sample(warm: Instant, end: Instant, pids: Vec<u32>) -> Result<(Option<ServerUsage>, f64)> {
    tokio::time::sleep_until(warm).await;
    let own_start = procstat::own_cpu_secs()?;
    let mut sampler = if pids.is_empty() {
        None
    } else {
        Some(Sampler::start(pids)?)
    };
    let mut tick = tokio::time::interval_at(warm + Duration::from_millis(200), Duration::from_millis(200));
    while Instant::now() < end {
        tokio::select! {
            _ = tick.tick() => {}
            () = tokio::time::sleep_until(end) => break,
        }
        if let Some(s) = sampler.as_mut()
            && let Err(e) = s.sample()
        {
            // The server died or exited: the load's own figures still stand.
            eprintln!("warning: stopped sampling the server: {e:#}");
            break;
        }
    }
    let window = (end - warm).as_secs_f64();
    let own = (procstat::own_cpu_secs()? - own_start) / window;
    Ok((sampler.map(|s| s.finish(window)), own))
}

async fn worker(ctx: Arc<Ctx>, conn: Conn) -> Result<Tally> {
    let mut tally = Tally::default();
    let mut conn = Some(conn);
    loop {
        let due = match ctx.mode {
            Mode::Closed => {
                let now = Instant::now();
                if now >= ctx.end {
                    break;
                }
                now
            }
            Mode::Open { rate } => {
                let i = ctx.slot.fetch_add(1, Ordering::Relaxed);
                let due = ctx.start + Duration::from_secs_f64(i as f64 / rate);
                // Past the end nothing more is sent: a server that fell behind leaves due requests
                // unsent, counted as such, instead of stretching the run.
                if due >= ctx.end || Instant::now() >= ctx.end {
                    break;
                }
                tokio::time::sleep_until(due).await;
                let lag = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
                ctx.max_lag_us.fetch_max(lag, Ordering::Relaxed);
                due
            }
        };
        let open_in_window = due >= ctx.warm;
        let c = match conn.as_mut() {
            Some(c) if !c.is_closed() => c,
            _ => match ctx.target.connect().await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    let in_window = match ctx.mode {
                        Mode::Closed => Instant::now() >= ctx.warm,
                        Mode::Open { .. } => open_in_window,
                    };
                    tally.error(in_window, e.kind());
                    conn = None;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (agent, body) = ctx.pool.take()?;
        let req = request(&ctx, agent, body)?;
        let sent = Instant::now();
        let answer = tokio::time::timeout(ctx.timeout, c.send(req)).await;
        let done = Instant::now();
        let (in_window, since) = match ctx.mode {
            Mode::Closed => (done >= ctx.warm && done <= ctx.end, sent),
            Mode::Open { .. } => (open_in_window, due),
        };
        match answer {
            Ok(Ok((status, _))) => {
                let code = status.as_u16();
                *tally.total_status.entry(code).or_default() += 1;
                if in_window {
                    *tally.window_status.entry(code).or_default() += 1;
                    if status.is_success() {
                        let us = u32::try_from((done - since).as_micros()).unwrap_or(u32::MAX);
                        tally.latencies_us.push(us);
                    }
                }
            }
            Ok(Err(e)) => {
                // The answer was lost with the connection: whether it was stored is unknown.
                tally.error(in_window, if e.is_timeout() { "timeout" } else { "connection" });
                conn = None;
            }
            Err(_) => {
                tally.error(in_window, "timeout");
                conn = None;
            }
        }
    }
    Ok(tally)
}

fn request(ctx: &Ctx, agent: usize, body: Bytes) -> Result<Request<Full<Bytes>>> {
    let a = &ctx.pool.fleet.agents[agent];
    Request::post(SNAPSHOTS_PATH)
        .header(header::HOST, ctx.host.clone())
        .header(header::AUTHORIZATION, a.authorization.clone())
        .header(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"))
        .header(SENT_AT_HEADER, format_time(OffsetDateTime::now_utc()))
        .body(Full::new(body))
        .context("building a request")
}

/// The `q` quantile (0..=1) of sorted values, nearest rank.
pub fn quantile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&v, 0.0), Some(1));
        assert_eq!(quantile(&[7], 0.99), Some(7));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn tallies_add_up() {
        let mut a = Tally::default();
        a.total_status.insert(201, 2);
        a.error(true, "timeout");
        let mut b = Tally::default();
        b.total_status.insert(201, 3);
        b.total_status.insert(429, 1);
        b.error(false, "timeout");
        b.latencies_us.push(5);
        a.merge(b);
        assert_eq!(a.total_status[&201], 5);
        assert_eq!(a.total_status[&429], 1);
        assert_eq!(a.total_errors["timeout"], 2);
        assert_eq!(a.window_errors["timeout"], 1);
        assert_eq!(a.latencies_us, vec![5]);
    }
}
