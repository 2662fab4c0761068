//! Trend rules: judgements over one host's recent history (capacity forecasts), run by the
//! collector. The collector keeps one small [`TrendPoint`] per stored snapshot, so a forecast never
//! reads snapshot bodies.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Finding, Hit, RuleInfo};
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
pub static TREND_RULES: &[TrendRule] = &[];

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
