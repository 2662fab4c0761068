//! Fleet rules: judgements over an environment's hosts together, run by the collector. Their input
//! is a summary of each host the collector keeps (not snapshots), so that a fleet of thousands is
//! judged without reading a snapshot body.

use std::collections::{BTreeMap, BTreeSet};
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
pub static FLEET_RULES: &[FleetRule] = &[STALE, STALE_LONG, VDA_VERSIONS, CONTROLLERS, CLOCK_SKEW];

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

/// FLEET-STALE-002 fires past this silence, whatever the schedule (FLEET-STALE-001 then stays quiet).
pub const STALE_LONG_SECS: i64 = 7 * 86_400;
/// FLEET-SKEW-001 fires past this clock difference between a host and the collector, in seconds:
/// well above the upload's own latency, and well under the 300 s Kerberos tolerance, so a drifting
/// clock is caught before logons and registration fail.
pub const CLOCK_SKEW_MAX_SECS: f64 = 120.0;

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

pub const STALE_LONG: FleetRule = FleetRule {
    info: RuleInfo {
        id: "FLEET-STALE-002",
        scope: Scope::Fleet,
        severity: Severity::Critical,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "No snapshot from {hostname} for {silent_days} days",
        rationale: "A week without a snapshot is no longer a network hiccup: the agent is gone, broken or \
            blocked, or the host was decommissioned without being removed, and its risk is unknown.",
        remediation: "Find out whether the host still exists; if it does, restore the agent (service, \
            credential, network path to the collector); if not, remove the host from the collector.",
        reference: "docs/runbook.md",
        evidence: &["hostname", "last_received_at", "silent_days", "interval_secs"],
    },
    eval: stale_long,
};

pub const VDA_VERSIONS: FleetRule = FleetRule {
    info: RuleInfo {
        id: "FLEET-VER-001",
        scope: Scope::Fleet,
        severity: Severity::Low,
        likelihood: Rating::Medium,
        impact: Rating::Low,
        title: "{version_count} VDA versions across {hosts} hosts: {summary}",
        rationale: "Hosts of one environment on different VDA versions behave differently for the same \
            users (features, fixes, policies), which makes incidents hard to reproduce; a leftover old \
            version misses security fixes.",
        remediation: "Finish the rollout: update the remaining hosts (or their master image) to the \
            target VDA version, checking the Linux VDA release notes and the controllers' supported \
            VDA versions.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/whats-new.html",
        evidence: &["version_count", "hosts", "summary", "versions"],
    },
    eval: vda_versions,
};

pub const CONTROLLERS: FleetRule = FleetRule {
    info: RuleInfo {
        id: "FLEET-CTRL-001",
        scope: Scope::Fleet,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::Medium,
        title: "{configuration_count} different controller lists across {hosts} hosts",
        rationale: "VDAs of one environment that list different Delivery Controllers register unevenly: \
            a host pointing at a retired or single controller loses registration when that controller \
            goes down, while the others fail over.",
        remediation: "Set the same `ListOfDDCs` on every host (`/opt/Citrix/VDA/sbin/ctxsetup.sh`, \
            `/opt/Citrix/VDA/bin/ctxreg`, or once in the master image), or move to policy-based \
            registration, then restart `ctxvda`.",
        reference: "https://docs.citrix.com/en-us/citrix-virtual-apps-desktops/manage-deployment/vda-registration.html",
        evidence: &["configuration_count", "hosts", "configurations"],
    },
    eval: controllers,
};

pub const CLOCK_SKEW: FleetRule = FleetRule {
    info: RuleInfo {
        id: "FLEET-SKEW-001",
        scope: Scope::Fleet,
        severity: Severity::High,
        likelihood: Rating::Medium,
        impact: Rating::High,
        title: "Clock of {hostname} differs from the collector's by {skew_secs} s",
        rationale: "A host whose clock drifts from the rest of the world is on its way to the Kerberos \
            skew limit (300 s by default), after which logons and VDA registration fail; its snapshot \
            times are also wrong.",
        remediation: "Point chronyd or ntpd at the domain's time source, check `chronyc tracking` and \
            `timedatectl`, and look for a hypervisor time sync fighting NTP.",
        reference: "https://chrony-project.org/doc/4.5/chronyc.html",
        evidence: &["hostname", "skew_secs", "threshold_secs"],
    },
    eval: clock_skew,
};

/// Each host's silence in seconds and its schedule interval.
fn silences(input: &FleetInput) -> impl Iterator<Item = (&FleetHost, i64, u64)> {
    input.hosts.iter().map(|h| {
        let interval = h.schedule_interval_secs.unwrap_or(input.default_interval_secs);
        let since = h.last_received_at.unwrap_or(h.enrolled_at);
        (h, (input.now - since).whole_seconds(), interval)
    })
}

/// Silent past twice its schedule (a missed run can be a reboot; two are not).
fn overdue(silent: i64, interval: u64) -> bool {
    silent > i64::try_from(interval.saturating_mul(2)).unwrap_or(i64::MAX)
}

fn stale(input: &FleetInput) -> Vec<FleetHit> {
    silences(input)
        .filter(|(_, silent, interval)| overdue(*silent, *interval) && *silent <= STALE_LONG_SECS)
        .map(|(h, silent, interval)| FleetHit {
            host: Some(h.host_id),
            hit: Hit::host_wide()
                .with("hostname", h.hostname.clone())
                .with("last_received_at", h.last_received_at.and_then(rfc3339))
                .with("silent_hours", silent / 3600)
                .with("interval_secs", interval),
        })
        .collect()
}

fn stale_long(input: &FleetInput) -> Vec<FleetHit> {
    // Also overdue by its own schedule: a weekly agent silent for 8 days is on time.
    silences(input)
        .filter(|(_, silent, interval)| overdue(*silent, *interval) && *silent > STALE_LONG_SECS)
        .map(|(h, silent, interval)| FleetHit {
            host: Some(h.host_id),
            hit: Hit::host_wide()
                .with("hostname", h.hostname.clone())
                .with("last_received_at", h.last_received_at.and_then(rfc3339))
                .with("silent_days", silent / 86_400)
                .with("interval_secs", interval),
        })
        .collect()
}

fn vda_versions(input: &FleetInput) -> Vec<FleetHit> {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for v in input.hosts.iter().filter_map(|h| h.vda_version.as_deref()) {
        *counts.entry(v).or_default() += 1;
    }
    if counts.len() < 2 {
        return Vec::new();
    }
    let hosts: u64 = counts.values().sum();
    // Most common first (the target of the rollout, usually), then by version.
    let mut by_count: Vec<(&str, u64)> = counts.into_iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let summary: Vec<String> = by_count
        .iter()
        .map(|(v, n)| format!("{v} ({n} {})", if *n == 1 { "host" } else { "hosts" }))
        .collect();
    let versions: Vec<serde_json::Value> = by_count
        .iter()
        .map(|(v, n)| serde_json::json!({ "version": v, "hosts": n }))
        .collect();
    vec![FleetHit {
        host: None,
        hit: Hit::host_wide()
            .with("version_count", by_count.len())
            .with("hosts", hosts)
            .with("summary", summary.join(", "))
            .with("versions", versions),
    }]
}

/// A controller list as a set: order, case, surrounding blanks and a trailing root dot do not matter.
fn controller_set(list: &[String]) -> BTreeSet<String> {
    list.iter()
        .map(|c| c.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect()
}

/// Hostnames listed per configuration in the evidence, at most.
const HOSTNAMES_PER_CONFIGURATION: usize = 5;

fn controllers(input: &FleetInput) -> Vec<FleetHit> {
    let mut groups: BTreeMap<BTreeSet<String>, Vec<&str>> = BTreeMap::new();
    for h in &input.hosts {
        if let Some(list) = &h.controllers {
            groups.entry(controller_set(list)).or_default().push(&h.hostname);
        }
    }
    if groups.len() < 2 {
        return Vec::new();
    }
    let hosts: usize = groups.values().map(Vec::len).sum();
    let mut groups: Vec<(BTreeSet<String>, Vec<&str>)> = groups.into_iter().collect();
    groups.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.0.cmp(&b.0)));
    let configurations: Vec<serde_json::Value> = groups
        .iter()
        .map(|(set, names)| {
            let mut shown = names.clone();
            shown.sort_unstable();
            shown.truncate(HOSTNAMES_PER_CONFIGURATION);
            serde_json::json!({ "controllers": set, "hosts": names.len(), "hostnames": shown })
        })
        .collect();
    vec![FleetHit {
        host: None,
        hit: Hit::host_wide()
            .with("configuration_count", groups.len())
            .with("hosts", hosts)
            .with("configurations", configurations),
    }]
}

fn clock_skew(input: &FleetInput) -> Vec<FleetHit> {
    input
        .hosts
        .iter()
        .filter_map(|h| {
            let skew = h.clock_skew_secs?;
            (skew.abs() > CLOCK_SKEW_MAX_SECS).then(|| FleetHit {
                host: Some(h.host_id),
                hit: Hit::host_wide()
                    .with("hostname", h.hostname.clone())
                    .with("skew_secs", (skew * 10.0).round() / 10.0)
                    .with("threshold_secs", CLOCK_SKEW_MAX_SECS),
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "fleet_tests.rs"]
mod tests;
