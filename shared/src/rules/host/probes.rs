//! Area PROBE: probes that failed or timed out. Their area is unknown, and every rule over it is
//! skipped, so the host looks healthier than it is known to be.

use std::collections::BTreeMap;

use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::snapshot::{ProbeOutcome, Snapshot};

pub const PROBE_FAILED: HostRule = HostRule {
    info: RuleInfo {
        id: "PROBE-ERR-001",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::Medium,
        title: "Probe {probe} {outcome}: its area is unknown",
        rationale: "A probe that fails or times out leaves its whole area (disks, VDA, certificates...) \
            unjudged: the rules over it are skipped, and a real problem there stays hidden.",
        remediation: "Read the error (evidence `message`); reproduce with `callhome-agent collect` on the \
            host (logs on stderr), then fix the cause (a missing tool, a permission, a slow command) or \
            raise the probe's timeout in the agent config.",
        reference: "https://man7.org/linux/man-pages/man1/timeout.1.html",
        evidence: &["probe", "outcome", "message"],
    },
    eval: probe_failed,
};

fn probe_failed(s: &Snapshot) -> Outcome {
    // Judged on the envelope, which every snapshot has: never skipped.
    let mut failed: BTreeMap<&str, (&str, Option<&str>)> = BTreeMap::new();
    for (name, report) in &s.probes {
        let outcome = match report.outcome {
            ProbeOutcome::Failed => "failed",
            ProbeOutcome::TimedOut => "timed out",
            ProbeOutcome::Ok | ProbeOutcome::NoData => continue,
        };
        failed.insert(name, (outcome, None));
    }
    // An error without a matching report is still a failure; keep the first message per probe.
    for e in &s.errors {
        let entry = failed.entry(e.probe.as_str()).or_insert(("failed", None));
        entry.1.get_or_insert(e.message.as_str());
    }
    Outcome::Hits(
        failed
            .into_iter()
            .map(|(probe, (outcome, message))| {
                Hit::about(probe)
                    .with("probe", probe)
                    .with("outcome", outcome)
                    .with("message", message.unwrap_or("no error message reported"))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{fires, fires_all, passes, snapshot_with};
    use crate::snapshot::{ProbeError, ProbeReport};

    fn report(outcome: ProbeOutcome) -> ProbeReport {
        ProbeReport {
            outcome,
            duration_ms: 5,
        }
    }

    #[test]
    fn a_timed_out_probe_fires_with_its_message() {
        let mut s = snapshot_with(|_| {});
        s.probes.insert("disks".to_owned(), report(ProbeOutcome::Ok));
        s.probes
            .insert("updates".to_owned(), report(ProbeOutcome::TimedOut));
        s.errors.push(ProbeError {
            probe: "updates".to_owned(),
            message: "timed out after 10 s".to_owned(),
        });
        let f = fires(&PROBE_FAILED, &s);
        assert_eq!(f.subject, "updates");
        assert_eq!(f.title, "Probe updates timed out: its area is unknown");
        assert_eq!(f.evidence["message"], "timed out after 10 s");
    }

    #[test]
    fn failures_without_report_or_message_still_fire() {
        let mut s = snapshot_with(|_| {});
        s.probes.insert("vda".to_owned(), report(ProbeOutcome::Failed));
        s.errors.push(ProbeError {
            probe: "certificates".to_owned(),
            message: "permission denied".to_owned(),
        });
        let found = fires_all(&PROBE_FAILED, &s);
        let got: Vec<(&str, &serde_json::Value)> = found
            .iter()
            .map(|f| (f.subject.as_str(), &f.evidence["message"]))
            .collect();
        assert_eq!(
            got,
            [
                ("certificates", &serde_json::json!("permission denied")),
                ("vda", &serde_json::json!("no error message reported")),
            ]
        );
    }

    #[test]
    fn healthy_or_absent_probes_pass() {
        let mut s = snapshot_with(|_| {});
        s.probes.insert("vda".to_owned(), report(ProbeOutcome::NoData));
        s.probes.insert("disks".to_owned(), report(ProbeOutcome::Ok));
        passes(&PROBE_FAILED, &s);
        passes(&PROBE_FAILED, &snapshot_with(|_| {}));
    }
}
