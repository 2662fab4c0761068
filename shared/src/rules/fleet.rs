//! Fleet rules: judgements over an environment's hosts together, run by the collector. Their input
//! is a summary of each host the collector keeps (not snapshots), so that a fleet of thousands is
//! judged without reading a snapshot body.

use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Finding, Hit, Rating, RuleInfo, Scope, Severity};

/// What the collector knows of one host of the environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetHost {
    pub host_id: Uuid,
    pub hostname: String,
    /// When the collector last stored a snapshot of it; `None`: enrolled, never sent one.
    pub last_received_at: Option<OffsetDateTime>,
    /// When the host enrolled (staleness of a host that never sent counts from here).
    pub enrolled_at: OffsetDateTime,
    /// The interval the agent's schedule promises (`agent.schedule_interval_secs`), if it said.
    pub schedule_interval_secs: Option<u64>,
    /// `vda.version` of its latest snapshot; `None`: no VDA or unknown.
    pub vda_version: Option<String>,
    /// `vda.controllers` of its latest snapshot, as configured.
    pub controllers: Option<Vec<String>>,
    /// The agent's clock minus the collector's, in seconds, measured at its latest post.
    pub clock_skew_secs: Option<f64>,
}

/// One environment, as the fleet rules see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetInput {
    pub now: OffsetDateTime,
    /// The schedule interval assumed for hosts that do not report theirs.
    pub default_interval_secs: u64,
    pub hosts: Vec<FleetHost>,
}

/// A fleet rule's hit: about one host, or about the environment as a whole (`host: None`).
#[derive(Debug, Clone, PartialEq)]
pub struct FleetHit {
    pub host: Option<Uuid>,
    pub hit: Hit,
}

#[derive(Clone, Copy)]
pub struct FleetRule {
    pub info: RuleInfo,
    pub eval: fn(&FleetInput) -> Vec<FleetHit>,
}

impl fmt::Debug for FleetRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetRule").field("id", &self.info.id).finish()
    }
}

/// Every fleet rule, in catalog order.
pub static FLEET_RULES: &[FleetRule] = &[STALE];

/// Runs every fleet rule; each finding with the host it is about (`None`: the environment).
pub fn evaluate_fleet(input: &FleetInput) -> Vec<(Option<Uuid>, Finding)> {
    let mut out: Vec<(Option<Uuid>, Finding)> = FLEET_RULES
        .iter()
        .flat_map(|rule| {
            (rule.eval)(input)
                .into_iter()
                .map(|h| (h.host, Finding::new(&rule.info, h.hit)))
        })
        .collect();
    out.sort_by(|a, b| {
        b.1.severity
            .cmp(&a.1.severity)
            .then_with(|| a.1.rule.cmp(&b.1.rule))
            .then_with(|| a.0.cmp(&b.0))
            .then_with(|| a.1.subject.cmp(&b.1.subject))
    });
    out
}

fn rfc3339(t: OffsetDateTime) -> Option<String> {
    t.format(&time::format_description::well_known::Rfc3339).ok()
}

pub const STALE: FleetRule = FleetRule {
    info: RuleInfo {
        id: "FLEET-STALE-001",
        scope: Scope::Fleet,
        severity: Severity::High,
        likelihood: Rating::Medium,
        impact: Rating::High,
        title: "No snapshot from {hostname} for {silent_hours} h (schedule every {interval_secs} s)",
        rationale: "A host that stops calling home is a blind spot: whatever breaks there goes unseen \
            until users call.",
        remediation: "Check that the agent runs (`systemctl status callhome-agent`) and can reach the \
            collector (`callhome-agent spool` shows the last error).",
        reference: "docs/runbook.md",
        evidence: &["hostname", "last_received_at", "silent_hours", "interval_secs"],
    },
    eval: stale,
};

fn stale(input: &FleetInput) -> Vec<FleetHit> {
    input
        .hosts
        .iter()
        .filter_map(|h| {
            let interval = h.schedule_interval_secs.unwrap_or(input.default_interval_secs);
            let since = h.last_received_at.unwrap_or(h.enrolled_at);
            let silent = (input.now - since).whole_seconds();
            let limit = i64::try_from(interval.saturating_mul(2)).unwrap_or(i64::MAX);
            (silent > limit).then(|| FleetHit {
                host: Some(h.host_id),
                hit: Hit::host_wide()
                    .with("hostname", h.hostname.clone())
                    .with("last_received_at", h.last_received_at.and_then(rfc3339))
                    .with("silent_hours", silent / 3600)
                    .with("interval_secs", interval),
            })
        })
        .collect()
}
