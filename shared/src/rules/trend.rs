//! Trend rules: judgements over one host's recent history (capacity forecasts), run by the
//! collector. The collector keeps one small [`TrendPoint`] per stored snapshot, so a forecast never
//! reads snapshot bodies.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Finding, Hit, Rating, RuleInfo, Scope, Severity};
use crate::snapshot::Snapshot;

/// The figures of one snapshot that capacity planning needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendPoint {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Active plus disconnected VDA sessions.
    pub sessions: Option<u32>,
    pub cpu_count: Option<u32>,
    /// One-minute load average divided by the logical CPUs.
    pub load_per_cpu: Option<f64>,
    /// Memory in use (total minus available) in percent of total.
    pub memory_used_percent: Option<f64>,
    pub mounts: Vec<MountUsage>,
    /// `vda.log_dir.total_bytes`.
    pub log_dir_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountUsage {
    pub mount_point: String,
    /// Bytes in use, as a non-root writer sees them: total minus available.
    pub used_bytes: u64,
    pub total_bytes: u64,
}

/// One host's history, oldest point first.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTrend {
    pub host_id: Uuid,
    pub hostname: String,
    pub points: Vec<TrendPoint>,
}

#[derive(Clone, Copy)]
pub struct TrendRule {
    pub info: RuleInfo,
    pub eval: fn(&HostTrend) -> Vec<Hit>,
}

impl fmt::Debug for TrendRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrendRule").field("id", &self.info.id).finish()
    }
}

/// Every trend rule, in catalog order.
pub static TREND_RULES: &[TrendRule] = &[DISK_FILLING, VDA_LOGS_FILLING, RUNNING_HOT];

impl TrendPoint {
    pub fn from_snapshot(s: &Snapshot) -> TrendPoint {
        let system = s.sections.system.as_ref();
        let vda = s.sections.vda.as_ref();
        TrendPoint {
            at: s.collected_at,
            sessions: vda.and_then(|v| v.sessions).map(|x| x.active + x.disconnected),
            cpu_count: system.map(|x| x.cpu_count),
            load_per_cpu: system
                .filter(|x| x.cpu_count > 0)
                .map(|x| x.load_average.one / f64::from(x.cpu_count)),
            memory_used_percent: system.filter(|x| x.memory.total_bytes > 0).map(|x| {
                let m = x.memory;
                m.total_bytes.saturating_sub(m.available_bytes) as f64 * 100.0 / m.total_bytes as f64
            }),
            mounts: s
                .sections
                .disks
                .as_ref()
                .map(|d| {
                    d.mounts
                        .iter()
                        .map(|m| MountUsage {
                            mount_point: m.mount_point.clone(),
                            used_bytes: m.total_bytes.saturating_sub(m.available_bytes),
                            total_bytes: m.total_bytes,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            log_dir_bytes: vda.and_then(|v| v.log_dir).map(|l| l.total_bytes),
        }
    }
}

/// Runs every trend rule over one host's history.
pub fn evaluate_trend(trend: &HostTrend) -> Vec<Finding> {
    let mut out: Vec<Finding> = TREND_RULES
        .iter()
        .flat_map(|rule| {
            (rule.eval)(trend)
                .into_iter()
                .map(|h| Finding::new(&rule.info, h))
        })
        .collect();
    super::sort_findings(&mut out);
    out
}

/// A forecast under this many days is a finding (issue 5, item 7).
pub const FORECAST_HORIZON_DAYS: f64 = 14.0;
/// Forecasts fit only the points of this many days before the newest one: older growth says little
/// about next week.
pub const FORECAST_WINDOW_DAYS: i64 = 30;
/// A fit needs at least this many points ...
pub const FORECAST_MIN_POINTS: usize = 3;
/// ... spanning at least this many hours, so that one day's noise is not extrapolated to a month.
pub const FORECAST_MIN_SPAN_HOURS: i64 = 24;
/// The VDA's log folder (`vda.log_dir`).
pub const VDA_LOG_DIR: &str = "/var/log/xdl";

/// A point is hot when load per CPU reaches this ...
pub const HOT_LOAD_PER_CPU: f64 = 0.9;
/// ... or memory in use reaches this percentage.
pub const HOT_MEMORY_PERCENT: f64 = 90.0;
/// Running hot takes at least this many hot points in the window ...
pub const HOT_MIN_POINTS: usize = 3;
/// ... on at least this many distinct (UTC) days: a peak that recurs, not one incident.
pub const HOT_MIN_DAYS: usize = 2;
/// Running hot looks at this many days before the newest point.
pub const HOT_WINDOW_DAYS: i64 = 14;

const SECS_PER_DAY: f64 = 86_400.0;

/// The points at most `days` days older than the newest one (the history's own clock, never the
/// evaluator's: invariant 3).
pub fn recent_points(points: &[TrendPoint], days: i64) -> &[TrendPoint] {
    let Some(last) = points.last() else {
        return points;
    };
    let since = last.at - time::Duration::days(days);
    let first = points.partition_point(|p| p.at < since);
    &points[first..]
}

/// A least-squares line through `(at, value)`: growth per day, or `None` when the samples are too
/// few or span too short a time to trust (see the `FORECAST_*` constants).
pub fn growth_per_day(samples: &[(OffsetDateTime, f64)]) -> Option<f64> {
    let (first, last) = (samples.first()?.0, samples.last()?.0);
    if samples.len() < FORECAST_MIN_POINTS || (last - first).whole_hours() < FORECAST_MIN_SPAN_HOURS {
        return None;
    }
    // Days before the newest point: small numbers keep the sums well conditioned.
    let xs: Vec<f64> = samples
        .iter()
        .map(|(at, _)| (*at - last).as_seconds_f64() / SECS_PER_DAY)
        .collect();
    let n = samples.len() as f64;
    let mean_x = xs.iter().sum::<f64>() / n;
    let mean_y = samples.iter().map(|(_, y)| y).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, (_, y)) in xs.iter().zip(samples) {
        sxy += (x - mean_x) * (y - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Days until `free` bytes are gone at `growth` bytes per day; `None` when not growing.
fn days_until_full(free: f64, growth: f64) -> Option<f64> {
    (growth > 0.0).then(|| free.max(0.0) / growth)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The mount that holds `path`: the longest mount point that is `path` or one of its parents.
pub fn mount_holding<'a>(mounts: &'a [MountUsage], path: &str) -> Option<&'a MountUsage> {
    mounts
        .iter()
        .filter(|m| {
            let mp = m.mount_point.trim_end_matches('/');
            mp.is_empty() || path == mp || path.strip_prefix(mp).is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|m| m.mount_point.trim_end_matches('/').len())
}

pub const DISK_FILLING: TrendRule = TrendRule {
    info: RuleInfo {
        id: "CAP-DISK-001",
        scope: Scope::Trend,
        severity: Severity::High,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "{mount} is forecast to be full in {days_until_full} days (growing {growth_bytes_per_day} bytes a day)",
        rationale: "A full filesystem stops what writes to it: on `/` or `/var` the VDA cannot write its \
            logs and session state, new sessions fail to launch and services crash; on `/tmp` user \
            sessions fail. The trend of the last weeks says it will be full before the next review.",
        remediation: "Find what grows (`du -xh --max-depth=2 MOUNT | sort -h`), remove or rotate it \
            (logrotate, journald `SystemMaxUse`, old kernels, core dumps), or extend the filesystem \
            before the forecast date.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/system-requirements.html",
        evidence: &[
            "mount",
            "days_until_full",
            "growth_bytes_per_day",
            "used_bytes",
            "total_bytes",
        ],
    },
    eval: disk_filling,
};

/// Every mount of the newest point (any mount: what fills is what matters), fit over the points of
/// the window that report it.
fn disk_filling(trend: &HostTrend) -> Vec<Hit> {
    let points = recent_points(&trend.points, FORECAST_WINDOW_DAYS);
    let Some(last) = points.last() else {
        return Vec::new();
    };
    last.mounts
        .iter()
        .filter(|now| now.total_bytes > 0)
        .filter_map(|now| {
            let samples: Vec<(OffsetDateTime, f64)> = points
                .iter()
                .filter_map(|p| {
                    let m = p.mounts.iter().find(|m| m.mount_point == now.mount_point)?;
                    Some((p.at, m.used_bytes as f64))
                })
                .collect();
            let growth = growth_per_day(&samples)?;
            let free = now.total_bytes.saturating_sub(now.used_bytes) as f64;
            let days = days_until_full(free, growth)?;
            (days < FORECAST_HORIZON_DAYS).then(|| {
                Hit::about(now.mount_point.clone())
                    .with("mount", now.mount_point.clone())
                    .with("days_until_full", round1(days))
                    .with("growth_bytes_per_day", growth.round() as u64)
                    .with("used_bytes", now.used_bytes)
                    .with("total_bytes", now.total_bytes)
            })
        })
        .collect()
}

pub const VDA_LOGS_FILLING: TrendRule = TrendRule {
    info: RuleInfo {
        id: "CAP-LOG-001",
        scope: Scope::Trend,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::High,
        title: "VDA logs in {log_dir} grow {growth_bytes_per_day} bytes a day: alone they fill {mount} in {days_until_full} days",
        rationale: "The Linux VDA writes its logs under /var/log/xdl; left at a verbose level or never \
            rotated they grow until the filesystem holding /var/log is full, and then the VDA services \
            and the sessions they broker fail.",
        remediation: "Set the VDA's logging back to its default level (`/opt/Citrix/VDA/bin/setlog`, \
            `/etc/xdl/log4j2.xml`), make sure the logs rotate, and remove old logs under /var/log/xdl.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/configure/administration/logging.html",
        evidence: &[
            "log_dir",
            "mount",
            "days_until_full",
            "growth_bytes_per_day",
            "log_dir_bytes",
            "available_bytes",
        ],
    },
    eval: vda_logs_filling,
};

/// The log folder's own growth against the space left on the mount that holds it: it names the VDA's
/// logs as the cause, where CAP-DISK-001 only sees the mount fill (both may fire).
fn vda_logs_filling(trend: &HostTrend) -> Vec<Hit> {
    let points = recent_points(&trend.points, FORECAST_WINDOW_DAYS);
    let Some(last) = points.last() else {
        return Vec::new();
    };
    let (Some(log_bytes), Some(mount)) = (last.log_dir_bytes, mount_holding(&last.mounts, VDA_LOG_DIR))
    else {
        return Vec::new();
    };
    let samples: Vec<(OffsetDateTime, f64)> = points
        .iter()
        .filter_map(|p| Some((p.at, p.log_dir_bytes? as f64)))
        .collect();
    let Some(growth) = growth_per_day(&samples) else {
        return Vec::new();
    };
    let available = mount.total_bytes.saturating_sub(mount.used_bytes);
    let Some(days) = days_until_full(available as f64, growth) else {
        return Vec::new();
    };
    if days >= FORECAST_HORIZON_DAYS {
        return Vec::new();
    }
    vec![
        Hit::about(VDA_LOG_DIR)
            .with("log_dir", VDA_LOG_DIR)
            .with("mount", mount.mount_point.clone())
            .with("days_until_full", round1(days))
            .with("growth_bytes_per_day", growth.round() as u64)
            .with("log_dir_bytes", log_bytes)
            .with("available_bytes", available),
    ]
}

/// Whether a point is over either hot threshold.
pub fn is_hot(p: &TrendPoint) -> bool {
    p.load_per_cpu.is_some_and(|l| l >= HOT_LOAD_PER_CPU)
        || p.memory_used_percent.is_some_and(|m| m >= HOT_MEMORY_PERCENT)
}

pub const RUNNING_HOT: TrendRule = TrendRule {
    info: RuleInfo {
        id: "CAP-HOT-001",
        scope: Scope::Trend,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::Medium,
        title: "Runs hot at its peak: load {peak_load_per_cpu} per CPU, memory {peak_memory_used_percent} % used ({hot_points} of {points} snapshots over {hot_days} days)",
        rationale: "A host that reaches full CPU or memory at its daily peak gives every session on it \
            slow logons and laggy screens, and under memory pressure the kernel kills processes, VDA \
            services included. It has no headroom for one more user or one bad application.",
        remediation: "Lower the session limit of this host (or its machine catalog's load-management \
            policy), add CPUs or memory, or add hosts to the delivery group; check for a runaway \
            process with `top` at the peak hour.",
        reference: "https://docs.citrix.com/en-us/citrix-virtual-apps-desktops/manage-deployment/load-management.html",
        evidence: &[
            "hot_points",
            "points",
            "hot_days",
            "peak_load_per_cpu",
            "peak_memory_used_percent",
            "peak_sessions",
        ],
    },
    eval: running_hot,
};

/// At least [`HOT_MIN_POINTS`] hot points on [`HOT_MIN_DAYS`] days in the window: one spike, or one
/// bad afternoon, is not a capacity problem.
fn running_hot(trend: &HostTrend) -> Vec<Hit> {
    let points = recent_points(&trend.points, HOT_WINDOW_DAYS);
    let hot: Vec<&TrendPoint> = points.iter().filter(|p| is_hot(p)).collect();
    let days: std::collections::BTreeSet<time::Date> = hot.iter().map(|p| p.at.date()).collect();
    if hot.len() < HOT_MIN_POINTS || days.len() < HOT_MIN_DAYS {
        return Vec::new();
    }
    let known = points
        .iter()
        .filter(|p| p.load_per_cpu.is_some() || p.memory_used_percent.is_some())
        .count();
    let peak = |f: fn(&TrendPoint) -> Option<f64>| {
        hot.iter()
            .filter_map(|p| f(p))
            .fold(None, |a: Option<f64>, x| Some(a.map_or(x, |a| a.max(x))))
    };
    vec![
        Hit::host_wide()
            .with("hot_points", hot.len())
            .with("points", known)
            .with("hot_days", days.len())
            .with("peak_load_per_cpu", peak(|p| p.load_per_cpu).map(round2))
            .with(
                "peak_memory_used_percent",
                peak(|p| p.memory_used_percent).map(round1),
            )
            .with("peak_sessions", hot.iter().filter_map(|p| p.sessions).max()),
    ]
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const GIB: u64 = 1 << 30;
    const START: OffsetDateTime = datetime!(2026-11-01 00:00:00 UTC);

    fn point(at: OffsetDateTime) -> TrendPoint {
        TrendPoint {
            at,
            sessions: None,
            cpu_count: None,
            load_per_cpu: None,
            memory_used_percent: None,
            mounts: Vec::new(),
            log_dir_bytes: None,
        }
    }

    fn mount(mount_point: &str, used_bytes: u64, total_bytes: u64) -> MountUsage {
        MountUsage {
            mount_point: mount_point.to_owned(),
            used_bytes,
            total_bytes,
        }
    }

    fn trend(points: Vec<TrendPoint>) -> HostTrend {
        HostTrend {
            host_id: Uuid::from_u128(0xaa),
            hostname: "vda01.example.com".to_owned(),
            points,
        }
    }

    /// `days` daily points; `/var` of 100 GiB using `used(day)` bytes.
    fn var_growing(days: i64, used: impl Fn(i64) -> u64) -> HostTrend {
        trend(
            (0..days)
                .map(|d| {
                    let mut p = point(START + time::Duration::days(d));
                    p.mounts = vec![mount("/", 5 * GIB, 50 * GIB), mount("/var", used(d), 100 * GIB)];
                    p
                })
                .collect(),
        )
    }

    fn findings(rule: &TrendRule, t: &HostTrend) -> Vec<Finding> {
        let found: Vec<Finding> = (rule.eval)(t)
            .into_iter()
            .map(|h| Finding::new(&rule.info, h))
            .collect();
        for f in &found {
            for key in rule.info.evidence {
                assert!(
                    f.evidence.contains_key(*key),
                    "{}: evidence lacks `{key}`",
                    rule.info.id
                );
            }
            assert!(
                !f.title.contains('{'),
                "{}: title not filled: {}",
                rule.info.id,
                f.title
            );
        }
        found
    }

    #[test]
    fn catalog_entries_are_trend_scoped() {
        assert!(TREND_RULES.iter().all(|r| r.info.scope == Scope::Trend));
    }

    #[test]
    fn least_squares_growth_is_exact_on_a_line_and_needs_a_day() {
        let line: Vec<(OffsetDateTime, f64)> = (0..5)
            .map(|h| (START + time::Duration::hours(12 * h), 100.0 + 6.0 * h as f64))
            .collect();
        let g = growth_per_day(&line).unwrap();
        assert!((g - 12.0).abs() < 1e-9, "{g}");
        assert_eq!(growth_per_day(&line[..2]), None, "two points");
        assert_eq!(
            growth_per_day(&line[..2 + 1]).map(f64::round),
            Some(12.0),
            "24 h exactly"
        );
        let short: Vec<_> = (0..10)
            .map(|m| (START + time::Duration::hours(m), m as f64))
            .collect();
        assert_eq!(growth_per_day(&short), None, "9 hours");
    }

    #[test]
    fn disk_fires_when_the_fit_reaches_full_within_14_days() {
        // 2 GiB a day; 10 days of history end at 78 GiB used: 22 GiB left, 11 days.
        let t = var_growing(10, |d| (60 + 2 * d as u64) * GIB);
        let found = findings(&DISK_FILLING, &t);
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.subject, "/var");
        assert_eq!(f.evidence["days_until_full"], 11.0);
        assert_eq!(f.evidence["growth_bytes_per_day"], 2 * GIB);
        assert_eq!(f.evidence["used_bytes"], 78 * GIB);
        assert_eq!(
            f.title,
            format!(
                "/var is forecast to be full in 11.0 days (growing {} bytes a day)",
                2 * GIB
            )
        );
    }

    #[test]
    fn disk_passes_when_slow_flat_shrinking_or_short() {
        // 1 GiB a day with 42 GiB left: 42 days.
        assert!(findings(&DISK_FILLING, &var_growing(10, |d| (49 + d as u64) * GIB)).is_empty());
        assert!(
            findings(&DISK_FILLING, &var_growing(10, |_| 95 * GIB)).is_empty(),
            "flat"
        );
        assert!(
            findings(&DISK_FILLING, &var_growing(10, |d| (95 - d as u64) * GIB)).is_empty(),
            "shrinking"
        );
        assert!(
            findings(&DISK_FILLING, &var_growing(2, |d| (60 + 30 * d as u64) * GIB)).is_empty(),
            "two points"
        );
    }

    #[test]
    fn disk_forecast_ignores_growth_older_than_30_days() {
        // Fast growth 40 to 60 days ago, flat since: no finding.
        let t = var_growing(60, |d| {
            if d < 20 {
                (10 + 4 * d as u64) * GIB
            } else {
                90 * GIB
            }
        });
        assert!(findings(&DISK_FILLING, &t).is_empty());
        // The same history judged on its first 20 days alone fires.
        let early = trend(t.points[..20].to_vec());
        assert_eq!(findings(&DISK_FILLING, &early).len(), 1);
    }

    /// Daily points with `/var/log/xdl` of `log(day)` bytes on `/var` (20 GiB, 15 GiB used).
    fn logs_growing(days: i64, log: impl Fn(i64) -> u64) -> HostTrend {
        trend(
            (0..days)
                .map(|d| {
                    let mut p = point(START + time::Duration::days(d));
                    p.mounts = vec![mount("/", 5 * GIB, 50 * GIB), mount("/var", 15 * GIB, 20 * GIB)];
                    p.log_dir_bytes = Some(log(d));
                    p
                })
                .collect(),
        )
    }

    #[test]
    fn logs_fire_when_their_growth_alone_fills_the_mount_within_14_days() {
        // 512 MiB a day against 5 GiB available on /var: 10 days.
        let t = logs_growing(7, |d| GIB + d as u64 * GIB / 2);
        let found = findings(&VDA_LOGS_FILLING, &t);
        assert_eq!(found.len(), 1, "{found:#?}");
        let f = &found[0];
        assert_eq!(f.subject, "/var/log/xdl");
        assert_eq!(f.evidence["mount"], "/var");
        assert_eq!(f.evidence["days_until_full"], 10.0);
        assert_eq!(f.evidence["available_bytes"], 5 * GIB);
        assert_eq!(f.evidence["log_dir_bytes"], 4 * GIB);
    }

    #[test]
    fn logs_pass_when_slow_rotating_or_unknown() {
        // 100 MiB a day: 51 days.
        assert!(
            findings(
                &VDA_LOGS_FILLING,
                &logs_growing(7, |d| GIB + d as u64 * 100 * (1 << 20))
            )
            .is_empty()
        );
        // Rotated every other day: next to no growth over the window.
        assert!(
            findings(
                &VDA_LOGS_FILLING,
                &logs_growing(8, |d| if d % 2 == 0 { GIB } else { 2 * GIB })
            )
            .is_empty()
        );
        let mut no_logs = logs_growing(7, |d| GIB + d as u64 * GIB);
        no_logs.points.iter_mut().for_each(|p| p.log_dir_bytes = None);
        assert!(findings(&VDA_LOGS_FILLING, &no_logs).is_empty());
    }

    #[test]
    fn the_mount_holding_a_path_is_its_longest_parent() {
        let mounts = [
            mount("/", 0, 1),
            mount("/var", 0, 1),
            mount("/var/log", 0, 1),
            mount("/va", 0, 1),
        ];
        assert_eq!(
            mount_holding(&mounts, "/var/log/xdl").map(|m| m.mount_point.as_str()),
            Some("/var/log")
        );
        assert_eq!(
            mount_holding(&mounts[..2], "/var/log/xdl").map(|m| m.mount_point.as_str()),
            Some("/var")
        );
        assert_eq!(
            mount_holding(&[mount("/va", 0, 1), mount("/", 0, 1)], "/var/log/xdl")
                .map(|m| m.mount_point.as_str()),
            Some("/")
        );
        assert_eq!(mount_holding(&[mount("/home", 0, 1)], "/var/log/xdl"), None);
    }

    /// Hourly points over `days` days; `hot(day, hour)` decides load 0.95 or 0.4 per CPU.
    fn load(days: i64, hot: impl Fn(i64, i64) -> bool) -> HostTrend {
        trend(
            (0..days * 24)
                .map(|h| {
                    let mut p = point(START + time::Duration::hours(h));
                    let is_hot = hot(h / 24, h % 24);
                    p.load_per_cpu = Some(if is_hot { 0.95 } else { 0.4 });
                    p.memory_used_percent = Some(60.0);
                    p.sessions = Some(if is_hot { 30 } else { 10 });
                    p
                })
                .collect(),
        )
    }

    #[test]
    fn hot_fires_on_a_recurring_peak() {
        // Two peak hours a day, every day of a week.
        let t = load(7, |_, hour| hour == 10 || hour == 11);
        let found = findings(&RUNNING_HOT, &t);
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(f.evidence["hot_points"], 14);
        assert_eq!(f.evidence["points"], 168);
        assert_eq!(f.evidence["hot_days"], 7);
        assert_eq!(f.evidence["peak_load_per_cpu"], 0.95);
        assert_eq!(f.evidence["peak_sessions"], 30);
        // Memory alone is hot too.
        let mut mem = load(3, |_, _| false);
        for p in mem.points.iter_mut().filter(|p| p.at.hour() == 9) {
            p.memory_used_percent = Some(93.5);
        }
        assert_eq!(
            findings(&RUNNING_HOT, &mem)[0].evidence["peak_memory_used_percent"],
            93.5
        );
    }

    #[test]
    fn hot_passes_on_spikes_and_one_bad_day() {
        assert!(
            findings(&RUNNING_HOT, &load(7, |day, hour| day == 3 && hour == 10)).is_empty(),
            "one spike"
        );
        assert!(
            findings(
                &RUNNING_HOT,
                &load(7, |day, hour| day == 3 && (9..17).contains(&hour))
            )
            .is_empty(),
            "one bad day"
        );
        // Hot every day, but more than 14 days ago.
        let mut old = load(30, |day, hour| day < 10 && hour == 10);
        old.points.retain(|p| p.at < START + time::Duration::days(30));
        assert!(findings(&RUNNING_HOT, &old).is_empty(), "outside the window");
        assert!(
            findings(&RUNNING_HOT, &trend(Vec::new())).is_empty(),
            "no history"
        );
    }

    #[test]
    fn evaluate_trend_renders_findings_most_severe_first() {
        let mut t = var_growing(10, |d| (60 + 2 * d as u64) * GIB);
        for (i, p) in t.points.iter_mut().enumerate() {
            p.load_per_cpu = Some(if i % 3 == 0 { 1.2 } else { 0.3 });
        }
        let found = evaluate_trend(&t);
        let ids: Vec<&str> = found.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(ids, ["CAP-DISK-001", "CAP-HOT-001"]);
    }
}
