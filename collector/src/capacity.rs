//! Capacity of an environment: session load against each host's CPU and memory headroom at its
//! observed peak, from the trend points the collector keeps per snapshot (`TrendPoint`).
//!
//! The model is deliberately simple and conservative: a host's peak is its snapshot with the most
//! sessions in the last [`WINDOW_DAYS`] days; all CPU load and memory in use at that peak is charged
//! to its sessions (the base load of the OS is spread over them, so a session looks dearer than it is
//! and the headroom errs low); more sessions fit until the first of CPU or memory reaches [`CEILING`].

use callhome_shared::rules::{HostTrend, TrendPoint, trend};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// Fraction of CPU (load per CPU) and of memory a host may reach at its peak before it counts as full:
/// past it logons slow down and a burst has nowhere to go.
pub const CEILING: f64 = 0.85;
/// How far back the peak is looked for, before each host's newest point.
pub const WINDOW_DAYS: i64 = 30;

/// What limits a host's headroom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Limit {
    Cpu,
    Memory,
}

/// One host's load at its observed peak and the sessions it has room for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostCapacity {
    pub host_id: Uuid,
    pub hostname: String,
    /// The snapshot with the most sessions in the window; `None` when no snapshot counted sessions.
    #[serde(with = "time::serde::rfc3339::option")]
    pub peak_at: Option<OffsetDateTime>,
    pub peak_sessions: Option<u32>,
    pub cpu_count: Option<u32>,
    /// Load per CPU at the peak, in percent (100 = every CPU busy).
    pub cpu_percent_at_peak: Option<f64>,
    pub memory_used_percent_at_peak: Option<f64>,
    /// More sessions that fit before CPU or memory reaches [`CEILING`]; 0 when already past it;
    /// `None` when unknowable (no session at the peak, or neither CPU nor memory known).
    pub headroom_sessions: Option<u32>,
    /// The resource that runs out first; `None` with the headroom.
    pub limited_by: Option<Limit>,
    /// CAP-HOT-001 fires on this host's history.
    pub running_hot: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnvironmentCapacity {
    /// [`CEILING`] in percent, for the reader of the report.
    pub ceiling_percent: f64,
    pub hosts: Vec<HostCapacity>,
    /// Hosts on which CAP-HOT-001 fires, in host order.
    pub hot_hosts: Vec<Uuid>,
    /// Sum of the hosts' peak sessions. Peaks need not coincide, so this is an upper bound of the
    /// environment's simultaneous load.
    pub sessions_at_peak: u32,
    /// Sum of the known headrooms: the sessions the environment can take on at its hosts' peaks.
    pub spare_sessions: u32,
    /// Hosts whose headroom is unknown (not counted in `spare_sessions`).
    pub hosts_unknown: u32,
}

pub fn assess_environment(hosts: &[HostTrend]) -> EnvironmentCapacity {
    let assessed: Vec<HostCapacity> = hosts.iter().map(assess_host).collect();
    EnvironmentCapacity {
        ceiling_percent: CEILING * 100.0,
        hot_hosts: assessed
            .iter()
            .filter(|h| h.running_hot)
            .map(|h| h.host_id)
            .collect(),
        sessions_at_peak: assessed
            .iter()
            .filter_map(|h| h.peak_sessions)
            .fold(0u32, u32::saturating_add),
        spare_sessions: assessed
            .iter()
            .filter_map(|h| h.headroom_sessions)
            .fold(0u32, u32::saturating_add),
        hosts_unknown: u32::try_from(assessed.iter().filter(|h| h.headroom_sessions.is_none()).count())
            .unwrap_or(u32::MAX),
        hosts: assessed,
    }
}

pub fn assess_host(host: &HostTrend) -> HostCapacity {
    let points = trend::recent_points(&host.points, WINDOW_DAYS);
    let peak = peak(points);
    let load = peak.and_then(|p| p.load_per_cpu);
    let memory = peak.and_then(|p| p.memory_used_percent).map(|m| m / 100.0);
    let sessions = peak.and_then(|p| p.sessions);
    let (headroom_sessions, limited_by) = match sessions {
        Some(n) if n > 0 => headroom(n, load, memory),
        _ => (None, None),
    };
    let running_hot = !(trend::RUNNING_HOT.eval)(host).is_empty();
    HostCapacity {
        host_id: host.host_id,
        hostname: host.hostname.clone(),
        peak_at: peak.map(|p| p.at),
        peak_sessions: sessions,
        cpu_count: peak.and_then(|p| p.cpu_count),
        cpu_percent_at_peak: load.map(|l| round1(l * 100.0)),
        memory_used_percent_at_peak: peak.and_then(|p| p.memory_used_percent).map(round1),
        headroom_sessions,
        limited_by,
        running_hot,
    }
}

/// The point with the most sessions; among equals the most loaded (then the newest), so the peak
/// shows the worst the host has carried that load at.
fn peak(points: &[TrendPoint]) -> Option<&TrendPoint> {
    let pressure = |p: &TrendPoint| {
        let load = p.load_per_cpu.unwrap_or(0.0);
        let mem = p.memory_used_percent.unwrap_or(0.0) / 100.0;
        load.max(mem)
    };
    points.iter().filter(|p| p.sessions.is_some()).max_by(|a, b| {
        a.sessions
            .cmp(&b.sessions)
            .then_with(|| pressure(a).total_cmp(&pressure(b)))
            .then_with(|| a.at.cmp(&b.at))
    })
}

/// Sessions that still fit with `sessions` costing `load` and `memory` (fractions) between them.
/// A resource at 0 costs nothing per session and does not limit; both unknown or free: `None`.
fn headroom(sessions: u32, load: Option<f64>, memory: Option<f64>) -> (Option<u32>, Option<Limit>) {
    let fit = |used: Option<f64>, limit: Limit| -> Option<(f64, Limit)> {
        let used = used.filter(|u| *u > 0.0)?;
        let per_session = used / f64::from(sessions);
        Some((((CEILING - used) / per_session).max(0.0), limit))
    };
    let tightest = [fit(load, Limit::Cpu), fit(memory, Limit::Memory)]
        .into_iter()
        .flatten()
        .min_by(|a, b| a.0.total_cmp(&b.0));
    match tightest {
        // Tolerance: 0.5 / (0.5 / 10) is 9.999... in binary, and is 10 sessions.
        Some((more, limit)) => (
            Some(((more + 1e-9).floor()).min(f64::from(u32::MAX)) as u32),
            Some(limit),
        ),
        None => (None, None),
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const START: OffsetDateTime = datetime!(2026-11-01 00:00:00 UTC);

    fn point(hour: i64, sessions: Option<u32>, load: Option<f64>, memory: Option<f64>) -> TrendPoint {
        TrendPoint {
            at: START + time::Duration::hours(hour),
            sessions,
            cpu_count: Some(8),
            load_per_cpu: load,
            memory_used_percent: memory,
            mounts: Vec::new(),
            log_dir_bytes: None,
        }
    }

    fn host(n: u128, points: Vec<TrendPoint>) -> HostTrend {
        HostTrend {
            host_id: Uuid::from_u128(n),
            hostname: format!("vda{n:02}"),
            points,
        }
    }

    #[test]
    fn headroom_is_the_tighter_of_cpu_and_memory() {
        // Peak: 20 sessions at load 0.5 and memory 60 %.
        // CPU: 0.025 a session, (0.85 - 0.5) / 0.025 = 14. Memory: 0.03 a session, 0.25 / 0.03 = 8.33.
        let h = assess_host(&host(
            1,
            vec![
                point(0, Some(5), Some(0.2), Some(30.0)),
                point(1, Some(20), Some(0.5), Some(60.0)),
                point(2, Some(12), Some(0.3), Some(45.0)),
            ],
        ));
        assert_eq!(h.peak_at, Some(START + time::Duration::hours(1)));
        assert_eq!(h.peak_sessions, Some(20));
        assert_eq!(h.cpu_percent_at_peak, Some(50.0));
        assert_eq!(h.memory_used_percent_at_peak, Some(60.0));
        assert_eq!(h.headroom_sessions, Some(8));
        assert_eq!(h.limited_by, Some(Limit::Memory));
        assert!(!h.running_hot);
    }

    #[test]
    fn cpu_limits_when_memory_is_unknown_and_past_the_ceiling_is_zero() {
        // 10 sessions at 0.5: 0.05 a session, 0.35 / 0.05 = 7.
        let h = assess_host(&host(1, vec![point(0, Some(10), Some(0.5), None)]));
        assert_eq!((h.headroom_sessions, h.limited_by), (Some(7), Some(Limit::Cpu)));
        let full = assess_host(&host(2, vec![point(0, Some(30), Some(0.9), Some(70.0))]));
        assert_eq!(
            (full.headroom_sessions, full.limited_by),
            (Some(0), Some(Limit::Cpu))
        );
    }

    #[test]
    fn headroom_is_unknown_without_sessions_or_load() {
        let idle = assess_host(&host(1, vec![point(0, Some(0), Some(0.1), Some(20.0))]));
        assert_eq!(idle.peak_sessions, Some(0));
        assert_eq!(idle.headroom_sessions, None);
        let no_vda = assess_host(&host(2, vec![point(0, None, Some(0.1), Some(20.0))]));
        assert_eq!((no_vda.peak_at, no_vda.headroom_sessions), (None, None));
        let no_system = assess_host(&host(3, vec![point(0, Some(4), None, None)]));
        assert_eq!(
            (no_system.peak_sessions, no_system.headroom_sessions),
            (Some(4), None)
        );
        let empty = assess_host(&host(4, Vec::new()));
        assert_eq!(empty.peak_at, None);
    }

    #[test]
    fn the_peak_is_looked_for_in_the_last_30_days() {
        let h = assess_host(&host(
            1,
            vec![
                point(0, Some(50), Some(0.8), Some(80.0)),
                point(24 * 40, Some(10), Some(0.25), Some(40.0)),
            ],
        ));
        assert_eq!(h.peak_sessions, Some(10));
        // 0.025 a session: (0.85 - 0.25) / 0.025 = 24; memory 0.04: 0.45 / 0.04 = 11.25.
        assert_eq!(h.headroom_sessions, Some(11));
    }

    #[test]
    fn environment_totals_and_hot_hosts() {
        // A host hot at 10:00 on three days, with 30 sessions then at load 0.95: no headroom.
        let hot: Vec<TrendPoint> = (0..72)
            .map(|h| {
                if h % 24 == 10 {
                    point(h, Some(30), Some(0.95), Some(70.0))
                } else {
                    point(h, Some(10), Some(0.3), Some(40.0))
                }
            })
            .collect();
        let env = assess_environment(&[
            host(1, vec![point(0, Some(20), Some(0.5), Some(60.0))]),
            host(2, hot),
            host(3, vec![point(0, None, None, None)]),
        ]);
        assert_eq!(env.ceiling_percent, 85.0);
        assert_eq!(env.hot_hosts, vec![Uuid::from_u128(2)]);
        assert_eq!(env.sessions_at_peak, 20 + 30);
        assert_eq!(env.spare_sessions, 8);
        assert_eq!(env.hosts_unknown, 1);
        assert_eq!(env.hosts[1].headroom_sessions, Some(0));
        assert!(env.hosts[1].running_hot);
        let json = serde_json::to_value(&env).unwrap();
        assert_eq!(json["hosts"][0]["limited_by"], "memory");
        assert_eq!(json["hosts"][0]["peak_at"], "2026-11-01T00:00:00Z");
    }
}
