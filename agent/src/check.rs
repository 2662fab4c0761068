//! `check`: the host rules of the shared catalog, evaluated here on a snapshot collected exactly as
//! `collect` makes it (probes, `--root`, redaction), with no collector involved (SPEC §4).
//!
//! Output: a table (severity, rule, subject, title), then each finding's remediation and reference,
//! then one summary line; or with `--json` one object ([`Report`]). `--min-severity` hides lesser
//! findings from either output. The exit code is 0 whatever was found, unless `--fail-on LEVEL` is
//! given: then 1 when any finding (shown or not) is at or above LEVEL ([`FindingsAtOrAbove`]).

use std::fmt::Write as _;

use callhome_shared::Snapshot;
use callhome_shared::rules::{Finding, Severity, evaluate_host};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// What `check` found on one snapshot, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub catalog_version: String,
    pub host_id: Uuid,
    pub snapshot_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub collected_at: OffsetDateTime,
    /// Most severe first; only those at or above `--min-severity`.
    pub findings: Vec<Finding>,
    /// Rules that had no input to judge (a section absent, a value unknown).
    pub skipped: Vec<String>,
    /// Findings of every severity, also those `--min-severity` hides.
    #[serde(skip)]
    pub all: Vec<Finding>,
    #[serde(skip)]
    pub min_severity: Option<Severity>,
}

impl Report {
    /// Evaluates the host rules on `snapshot`; `min_severity` filters what is shown.
    pub fn new(snapshot: &Snapshot, min_severity: Option<Severity>) -> Report {
        let evaluation = evaluate_host(snapshot);
        let findings = evaluation
            .findings
            .iter()
            .filter(|f| min_severity.is_none_or(|min| f.severity >= min))
            .cloned()
            .collect();
        Report {
            catalog_version: evaluation.catalog_version,
            host_id: snapshot.host.host_id,
            snapshot_id: snapshot.id,
            collected_at: snapshot.collected_at,
            findings,
            skipped: evaluation.skipped,
            all: evaluation.findings,
            min_severity,
        }
    }

    /// Findings at or above `level`, shown or not.
    pub fn at_or_above(&self, level: Severity) -> usize {
        self.all.iter().filter(|f| f.severity >= level).count()
    }

    /// The `--fail-on` verdict: an error when a finding is at or above `level`.
    pub fn fail_on(&self, level: Option<Severity>) -> Result<(), FindingsAtOrAbove> {
        match level {
            Some(level) if self.at_or_above(level) > 0 => Err(FindingsAtOrAbove {
                count: self.at_or_above(level),
                level,
            }),
            _ => Ok(()),
        }
    }

    /// The human-readable form: table, remediations, summary.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        if self.findings.is_empty() {
            out.push_str("No findings");
            if let Some(min) = self.min_severity {
                let _ = write!(out, " at or above {min}");
            }
            out.push_str(".\n");
        } else {
            let subject = |f: &Finding| {
                if f.subject.is_empty() {
                    "-"
                } else {
                    f.subject.as_str()
                }
                .to_owned()
            };
            let rule_w = width("RULE", self.findings.iter().map(|f| f.rule.clone()));
            let subject_w = width("SUBJECT", self.findings.iter().map(subject));
            let _ = writeln!(
                out,
                "{:<8}  {:<rule_w$}  {:<subject_w$}  TITLE",
                "SEVERITY", "RULE", "SUBJECT"
            );
            for f in &self.findings {
                let _ = writeln!(
                    out,
                    "{:<8}  {:<rule_w$}  {:<subject_w$}  {}",
                    f.severity.as_str(),
                    f.rule,
                    subject(f),
                    f.title
                );
            }
            out.push_str("\nRemediation:\n");
            for f in &self.findings {
                let about = if f.subject.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", f.subject)
                };
                let _ = writeln!(out, "\n{}{about}: {}", f.rule, f.remediation);
                let _ = writeln!(out, "  see {}", f.reference);
            }
            out.push('\n');
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// One line: findings by severity (all of them), what the filter hid, rules skipped.
    pub fn summary(&self) -> String {
        let counts: Vec<String> = Severity::ALL
            .iter()
            .map(|s| format!("{} {s}", self.all.iter().filter(|f| f.severity == *s).count()))
            .collect();
        let mut line = format!("{} finding(s): {}", self.all.len(), counts.join(", "));
        let hidden = self.all.len() - self.findings.len();
        if let Some(min) = self.min_severity
            && hidden > 0
        {
            let _ = write!(line, " ({hidden} below {min} not shown)");
        }
        let _ = write!(
            line,
            "; {} rule(s) skipped for lack of data; catalog {}",
            self.skipped.len(),
            self.catalog_version
        );
        line
    }
}

fn width(header: &str, values: impl Iterator<Item = String>) -> usize {
    values.map(|v| v.chars().count()).fold(header.len(), usize::max)
}

/// `--fail-on` tripped: exit 1.
#[derive(Debug, thiserror::Error)]
#[error("{count} finding(s) at or above {level} (--fail-on {level})")]
pub struct FindingsAtOrAbove {
    pub count: usize,
    pub level: Severity,
}

/// The exit code of `--fail-on` (1, as `grep` and linters use it for "found").
pub const FINDINGS_EXIT_CODE: u8 = 1;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use callhome_shared::snapshot::{AgentInfo, HostIdentity, HostRole, SCHEMA_VERSION};
    use time::macros::datetime;

    fn finding(rule: &str, severity: Severity, subject: &str, title: &str) -> Finding {
        Finding {
            rule: rule.into(),
            severity,
            subject: subject.into(),
            title: title.into(),
            evidence: BTreeMap::from([("n".to_owned(), serde_json::Value::from(1))]),
            remediation: format!("fix {rule}"),
            reference: format!("https://docs.example/{rule}"),
        }
    }

    fn report(all: Vec<Finding>, min: Option<Severity>) -> Report {
        Report {
            catalog_version: "2026.11.1".into(),
            host_id: Uuid::from_u128(1),
            snapshot_id: Uuid::from_u128(2),
            collected_at: datetime!(2026-11-20 09:00 UTC),
            findings: all
                .iter()
                .filter(|f| min.is_none_or(|m| f.severity >= m))
                .cloned()
                .collect(),
            skipped: vec!["TIME-SKEW-001".into()],
            all,
            min_severity: min,
        }
    }

    fn sample() -> Vec<Finding> {
        vec![
            finding(
                "SVC-VDA-001",
                Severity::Critical,
                "ctxvda.service",
                "The VDA service is failed",
            ),
            finding(
                "VDA-REG-002",
                Severity::High,
                "",
                "VDA lost its registration 4 times",
            ),
            finding("SVC-FAILED-001", Severity::Low, "", "1 systemd unit(s) failed"),
        ]
    }

    #[test]
    fn table_aligns_columns_and_lists_remediations() {
        let text = report(sample(), None).to_table();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "SEVERITY  RULE            SUBJECT         TITLE");
        assert_eq!(
            lines[1],
            "critical  SVC-VDA-001     ctxvda.service  The VDA service is failed"
        );
        assert_eq!(
            lines[2],
            "high      VDA-REG-002     -               VDA lost its registration 4 times"
        );
        assert!(text.contains(
            "\nSVC-VDA-001 (ctxvda.service): fix SVC-VDA-001\n  see https://docs.example/SVC-VDA-001\n"
        ));
        assert!(text.contains("\nVDA-REG-002: fix VDA-REG-002\n"));
        assert_eq!(
            *lines.last().unwrap(),
            "3 finding(s): 1 critical, 1 high, 0 medium, 1 low, 0 info; 1 rule(s) skipped for lack of \
             data; catalog 2026.11.1"
        );
    }

    #[test]
    fn min_severity_hides_and_says_so() {
        let r = report(sample(), Some(Severity::High));
        let text = r.to_table();
        assert!(!text.contains("SVC-FAILED-001"), "{text}");
        assert!(
            r.summary().contains("(1 below high not shown)"),
            "{}",
            r.summary()
        );
        let none = report(vec![], Some(Severity::Medium)).to_table();
        assert!(none.starts_with("No findings at or above medium.\n"), "{none}");
    }

    #[test]
    fn fail_on_counts_every_finding_at_or_above() {
        let r = report(sample(), Some(Severity::Critical));
        assert!(r.fail_on(None).is_ok());
        let err = r.fail_on(Some(Severity::High)).unwrap_err();
        assert_eq!(err.count, 2);
        assert_eq!(err.to_string(), "2 finding(s) at or above high (--fail-on high)");
        // Hidden by --min-severity, still counted.
        assert_eq!(r.fail_on(Some(Severity::Low)).unwrap_err().count, 3);
        assert!(report(vec![], None).fail_on(Some(Severity::Info)).is_ok());
    }

    #[test]
    fn json_has_the_promised_shape() {
        let json = serde_json::to_value(report(sample(), Some(Severity::High))).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "catalog_version",
                "collected_at",
                "findings",
                "host_id",
                "skipped",
                "snapshot_id"
            ]
        );
        assert_eq!(json["collected_at"], "2026-11-20T09:00:00Z");
        assert_eq!(json["findings"].as_array().unwrap().len(), 2);
        let f = &json["findings"][0];
        for key in [
            "rule",
            "severity",
            "subject",
            "title",
            "evidence",
            "remediation",
            "reference",
        ] {
            assert!(f.get(key).is_some(), "finding lacks {key}: {f}");
        }
        assert_eq!(f["severity"], "critical");
    }

    #[test]
    fn report_evaluates_the_catalog_on_a_snapshot() {
        let snapshot = Snapshot {
            id: Uuid::from_u128(2),
            schema_version: SCHEMA_VERSION,
            agent: AgentInfo {
                version: "0.1.0".into(),
            },
            host: HostIdentity {
                host_id: Uuid::from_u128(1),
                hostname: "vda01".into(),
                role: HostRole::Vda,
                os: "x".into(),
                kernel: "y".into(),
            },
            collected_at: datetime!(2026-11-20 09:00 UTC),
            collection_ms: 1,
            sections: Default::default(),
            probes: Default::default(),
            errors: vec![],
        };
        let r = Report::new(&snapshot, None);
        assert!(r.findings.is_empty());
        // Every rule over sections is skipped without them; the two that read the envelope
        // (agent version, probe errors) judge it.
        assert_eq!(r.skipped.len(), callhome_shared::rules::HOST_RULES.len() - 2);
        assert!(
            !r.skipped
                .iter()
                .any(|id| id == "AGENT-VER-001" || id == "PROBE-ERR-001")
        );
        assert_eq!(
            (r.host_id, r.snapshot_id),
            (Uuid::from_u128(1), Uuid::from_u128(2))
        );
    }
}
