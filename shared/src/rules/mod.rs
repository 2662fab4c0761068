//! The rule catalog: judgements over snapshots, shared by the agent (`check`) and the collector.
//!
//! Modelled on insights-core's rules: a rule is a pure function of typed sections (never a file,
//! never the network) that yields zero or more hits; its wording (title, rationale, remediation,
//! reference) lives beside it as data, the title with `{placeholders}` filled from the evidence.
//! A rule whose inputs are absent (section missing, value unknown) is *skipped*, never fired and
//! never counted as healthy.
//!
//! Invariants:
//! 1. Rule ids (`AREA-TOPIC-NNN`) are stable forever: suppressions and finding history key on them.
//!    A rule whose meaning changes gets a new id; a retired id is never reused.
//! 2. A finding is identified on its host by `(rule, subject)`: the subject names the object it is
//!    about (a mount point, a unit, a certificate path), or is empty for host-wide findings.
//! 3. Evaluation is deterministic: the same snapshot gives the same findings in the same order. Time
//!    comparisons use the snapshot's `collected_at`, not the evaluator's clock.
//! 4. [`CATALOG_VERSION`] changes whenever a rule is added, removed or changes what it fires on; the
//!    collector then re-evaluates the latest snapshot of every host.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::snapshot::Snapshot;

pub mod doc;
pub mod fleet;
mod host;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod trend;

pub use fleet::{FLEET_RULES, FleetHit, FleetHost, FleetInput, FleetRule, evaluate_fleet};
pub use host::HOST_RULES;
pub use trend::{HostTrend, MountUsage, TREND_RULES, TrendPoint, TrendRule, evaluate_trend};

/// Bumped with every change to what the catalog fires on (see invariant 4).
pub const CATALOG_VERSION: &str = "2026.11.1";

/// How bad a finding is. Ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Most severe first.
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown severity `{s}` (critical, high, medium, low, info)"))
    }
}

/// Likelihood that the condition turns into an incident, and the impact if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Low,
    Medium,
    High,
}

impl Rating {
    pub fn as_str(self) -> &'static str {
        match self {
            Rating::Low => "low",
            Rating::Medium => "medium",
            Rating::High => "high",
        }
    }
}

/// What a rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One host's snapshot.
    Host,
    /// An environment's hosts together (collector only).
    Fleet,
    /// One host's history of snapshots (collector only).
    Trend,
}

/// A rule's catalog entry: everything but its logic.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RuleInfo {
    /// `AREA-TOPIC-NNN`, e.g. `VDA-REG-001`. Stable forever.
    pub id: &'static str,
    pub scope: Scope,
    pub severity: Severity,
    pub likelihood: Rating,
    pub impact: Rating,
    /// One line; `{name}` placeholders are filled from the evidence.
    pub title: &'static str,
    /// Why it matters: what breaks, for whom.
    pub rationale: &'static str,
    /// What to do, concretely.
    pub remediation: &'static str,
    /// A document that backs the rule (vendor docs, man page, KB).
    pub reference: &'static str,
    /// The evidence fields every hit reports.
    pub evidence: &'static [&'static str],
}

/// What a rule found about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The object within the host (see invariant 2); empty for host-wide.
    pub subject: String,
    pub evidence: BTreeMap<String, Value>,
}

impl Hit {
    pub fn host_wide() -> Hit {
        Hit::about("")
    }

    pub fn about(subject: impl Into<String>) -> Hit {
        Hit {
            subject: subject.into(),
            evidence: BTreeMap::new(),
        }
    }

    /// Adds an evidence field (builder style).
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Hit {
        self.evidence.insert(key.to_owned(), value.into());
        self
    }
}

/// A host rule's verdict on one snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The inputs it needs are absent: no judgement.
    Skipped,
    /// Judged; empty means healthy.
    Hits(Vec<Hit>),
}

impl Outcome {
    /// No hit (the rule judged the host healthy).
    pub fn pass() -> Outcome {
        Outcome::Hits(Vec::new())
    }

    pub fn fire(hit: Hit) -> Outcome {
        Outcome::Hits(vec![hit])
    }

    /// `fire(hit)` when `cond`, else `pass()`.
    pub fn fire_if(cond: bool, hit: impl FnOnce() -> Hit) -> Outcome {
        if cond {
            Outcome::fire(hit())
        } else {
            Outcome::pass()
        }
    }
}

/// A host rule: its catalog entry and its logic.
#[derive(Clone, Copy)]
pub struct HostRule {
    pub info: RuleInfo,
    pub eval: fn(&Snapshot) -> Outcome,
}

impl fmt::Debug for HostRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostRule").field("id", &self.info.id).finish()
    }
}

/// A finding as reported: the rule's entry rendered with one hit's evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: String,
    pub severity: Severity,
    pub subject: String,
    pub title: String,
    pub evidence: BTreeMap<String, Value>,
    pub remediation: String,
    pub reference: String,
}

impl Finding {
    pub fn new(info: &RuleInfo, hit: Hit) -> Finding {
        Finding {
            rule: info.id.to_owned(),
            severity: info.severity,
            title: render(info.title, &hit.evidence),
            subject: hit.subject,
            evidence: hit.evidence,
            remediation: info.remediation.to_owned(),
            reference: info.reference.to_owned(),
        }
    }
}

/// The result of evaluating every host rule on one snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub catalog_version: String,
    /// Most severe first, then by rule id and subject.
    pub findings: Vec<Finding>,
    /// Rules that could not judge for lack of input.
    pub skipped: Vec<String>,
}

/// Runs every host rule over `snapshot`.
pub fn evaluate_host(snapshot: &Snapshot) -> Evaluation {
    let mut findings = Vec::new();
    let mut skipped = Vec::new();
    for rule in HOST_RULES {
        match (rule.eval)(snapshot) {
            Outcome::Skipped => skipped.push(rule.info.id.to_owned()),
            Outcome::Hits(hits) => findings.extend(hits.into_iter().map(|h| Finding::new(&rule.info, h))),
        }
    }
    sort_findings(&mut findings);
    Evaluation {
        catalog_version: CATALOG_VERSION.to_owned(),
        findings,
        skipped,
    }
}

/// Most severe first, then by rule id and subject.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.subject.cmp(&b.subject))
    });
}

/// Every rule's catalog entry: host, then fleet, then trend rules, each in catalog order.
pub fn catalog() -> impl Iterator<Item = &'static RuleInfo> {
    HOST_RULES
        .iter()
        .map(|r| &r.info)
        .chain(FLEET_RULES.iter().map(|r| &r.info))
        .chain(TREND_RULES.iter().map(|r| &r.info))
}

/// The entry of rule `id`.
pub fn rule_info(id: &str) -> Option<&'static RuleInfo> {
    catalog().find(|r| r.id == id)
}

/// Fills `{name}` placeholders from `evidence`; strings go in bare, other values as JSON. An unknown
/// placeholder stays as written (a catalog test keeps that from shipping).
pub fn render(template: &str, evidence: &BTreeMap<String, Value>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match evidence.get(name) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(v) => out.push_str(&v.to_string()),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `{name}` placeholders of a template.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        names.push(&after[..end]);
        rest = &after[end + 1..];
    }
    names
}

#[cfg(test)]
mod tests;
