//! Request bodies built before the clock starts, so that compressing them does not take CPU from the
//! server during the measured window (both share this machine). Each body is used once: every
//! request carries a fresh snapshot id, or the collector would answer `duplicate` from a cheaper
//! path. When a run outlasts the pool, workers build the rest as they go, and the report says how
//! many.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::agents::Agent;
use crate::template::{Compressor, Template};

/// One agent as the workers need it.
#[derive(Debug)]
pub struct FleetAgent {
    pub host_id: Uuid,
    /// `Bearer chac_…`, made once.
    pub authorization: HeaderValue,
    pub template: usize,
}

#[derive(Debug)]
pub struct Fleet {
    pub agents: Vec<FleetAgent>,
    pub templates: Vec<Template>,
}

impl Fleet {
    /// Each agent sends the template it was enrolled with (or, for a name no longer in the template
    /// directory, one chosen by its position).
    pub fn new(agents: &[Agent], templates: Vec<Template>) -> Result<Fleet> {
        anyhow::ensure!(!agents.is_empty(), "no agents");
        let agents = agents
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let template = templates
                    .iter()
                    .position(|t| t.name == a.template)
                    .unwrap_or(i % templates.len());
                Ok(FleetAgent {
                    host_id: a.host_id,
                    authorization: HeaderValue::from_str(&format!("Bearer {}", a.credential))
                        .context("a credential that is not a valid header value")?,
                    template,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Fleet { agents, templates })
    }

    /// Request `k`'s agent: round robin, so every agent posts at the same rate.
    fn agent_of(&self, k: usize) -> usize {
        k % self.agents.len()
    }

    fn json(&self, agent: usize, collected_at: OffsetDateTime) -> Vec<u8> {
        let a = &self.agents[agent];
        self.templates[a.template].json_for(a.host_id, Uuid::now_v7(), collected_at)
    }
}

thread_local! {
    static COMPRESSOR: RefCell<Option<Compressor>> = const { RefCell::new(None) };
}

#[derive(Debug)]
pub struct Pool {
    pub fleet: Fleet,
    bodies: Vec<Bytes>,
    next: AtomicUsize,
    built_live: AtomicU64,
    json_bytes: u64,
    cycle: bool,
}

impl Pool {
    /// Builds `size` bodies on `threads` threads. Bodies of one agent carry increasing
    /// `collected_at` (a microsecond apart in pool order), as a real host's snapshots do. With
    /// `cycle`, [`Pool::take`] goes round the pool again instead of building more.
    pub fn build(fleet: Fleet, size: usize, threads: usize, cycle: bool) -> Result<Pool> {
        anyhow::ensure!(size > 0 || !cycle, "an empty pool cannot be cycled");
        let base = OffsetDateTime::now_utc();
        let threads = threads.clamp(1, size.max(1));
        let chunk = size.div_ceil(threads).max(1);
        let parts: Vec<Result<(Vec<Bytes>, u64)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let fleet = &fleet;
                    s.spawn(move || {
                        let range = (t * chunk).min(size)..((t + 1) * chunk).min(size);
                        let mut compressor = Compressor::new()?;
                        let mut arena = BytesMut::new();
                        let mut ends = Vec::with_capacity(range.len());
                        let mut json_bytes = 0u64;
                        for k in range {
                            let at = base + time::Duration::microseconds(k as i64);
                            let json = fleet.json(fleet.agent_of(k), at);
                            json_bytes += json.len() as u64;
                            let body = compressor.compress(&json)?;
                            if arena.capacity() - arena.len() < body.len() {
                                // Room for about a thousand more: few, large allocations.
                                arena.reserve(body.len() * 1024);
                            }
                            arena.extend_from_slice(&body);
                            ends.push(arena.len());
                        }
                        // One allocation per thread, sliced: no per-body allocation to keep.
                        let arena = arena.freeze();
                        let mut start = 0;
                        let bodies = ends
                            .into_iter()
                            .map(|end| {
                                let b = arena.slice(start..end);
                                start = end;
                                b
                            })
                            .collect();
                        Ok((bodies, json_bytes))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a pool builder panicked")))
                })
                .collect()
        });
        let mut bodies = Vec::with_capacity(size);
        let mut json_bytes = 0;
        for part in parts {
            let (b, j) = part?;
            bodies.extend(b);
            json_bytes += j;
        }
        Ok(Pool {
            fleet,
            bodies,
            next: AtomicUsize::new(0),
            built_live: AtomicU64::new(0),
            json_bytes,
            cycle,
        })
    }

    /// The next request: its agent and body.
    pub fn take(&self) -> Result<(usize, Bytes)> {
        let mut k = self.next.fetch_add(1, Ordering::Relaxed);
        if self.cycle {
            k %= self.bodies.len();
        }
        let agent = self.fleet.agent_of(k);
        if let Some(body) = self.bodies.get(k) {
            return Ok((agent, body.clone()));
        }
        self.built_live.fetch_add(1, Ordering::Relaxed);
        let json = self.fleet.json(agent, OffsetDateTime::now_utc());
        let body = COMPRESSOR.with(|c| {
            let mut c = c.borrow_mut();
            let compressor = match c.as_mut() {
                Some(c) => c,
                None => c.insert(Compressor::new()?),
            };
            compressor.compress(&json)
        })?;
        Ok((agent, Bytes::from(body)))
    }

    pub fn prebuilt(&self) -> usize {
        self.bodies.len()
    }

    pub fn cycles(&self) -> bool {
        self.cycle
    }

    pub fn built_live(&self) -> u64 {
        self.built_live.load(Ordering::Relaxed)
    }

    pub fn mean_body_bytes(&self) -> f64 {
        if self.bodies.is_empty() {
            return 0.0;
        }
        self.bodies.iter().map(|b| b.len() as f64).sum::<f64>() / self.bodies.len() as f64
    }

    pub fn mean_json_bytes(&self) -> f64 {
        if self.bodies.is_empty() {
            return 0.0;
        }
        self.json_bytes as f64 / self.bodies.len() as f64
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashSet;
    use std::path::Path;

    fn fleet(n: usize) -> Fleet {
        let templates = crate::template::load_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/golden"),
        )
        .unwrap();
        let agents: Vec<Agent> = (0..n)
            .map(|i| Agent {
                host_id: Uuid::new_v4(),
                credential: format!("chac_{i}"),
                template: templates[i % templates.len()].name.clone(),
            })
            .collect();
        Fleet::new(&agents, templates).unwrap()
    }

    #[test]
    fn every_body_is_a_fresh_snapshot_of_its_agent_and_the_pool_runs_on_past_its_end() {
        let pool = Pool::build(fleet(3), 10, 2, false).unwrap();
        assert_eq!(pool.prebuilt(), 10);
        let mut ids = HashSet::new();
        let mut last_at = [None; 3];
        for k in 0..13 {
            let (agent, body) = pool.take().unwrap();
            assert_eq!(agent, k % 3);
            let s = callhome_shared::decode_snapshot(&zstd::decode_all(&body[..]).unwrap()).unwrap();
            assert_eq!(s.host.host_id, pool.fleet.agents[agent].host_id);
            assert!(ids.insert(s.id), "snapshot id {} used twice", s.id);
            if let Some(prev) = last_at[agent] {
                assert!(s.collected_at > prev, "collected_at must grow per agent");
            }
            last_at[agent] = Some(s.collected_at);
        }
        assert_eq!(pool.built_live(), 3);
        assert!(pool.mean_body_bytes() > 0.0 && pool.mean_body_bytes() < pool.mean_json_bytes());
    }

    #[test]
    fn a_cycled_pool_goes_round_without_building() {
        let pool = Pool::build(fleet(2), 4, 1, true).unwrap();
        let first: Vec<_> = (0..4).map(|_| pool.take().unwrap()).collect();
        let again: Vec<_> = (0..4).map(|_| pool.take().unwrap()).collect();
        assert_eq!(first, again);
        assert_eq!(pool.built_live(), 0);
        assert!(Pool::build(fleet(2), 0, 1, true).is_err());
    }
}
