//! Area AGENT: callhome's own agent: too old to trust its probes, or losing snapshots.

use std::cmp::Ordering;

use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::snapshot::Snapshot;

/// The oldest agent whose snapshots the catalog fully understands (semver). Raise it when a probe's
/// meaning changes in a way older agents report wrongly.
pub const MIN_SUPPORTED_AGENT_VERSION: &str = "0.1.0";

pub const VERSION_UNSUPPORTED: HostRule = HostRule {
    info: RuleInfo {
        id: "AGENT-VER-001",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::Medium,
        title: "callhome agent {version} is older than the supported minimum {minimum}",
        rationale: "An agent older than the supported minimum misses probes or reports them in a shape \
            the rules no longer trust: the host's findings are incomplete and its score understates \
            the risk.",
        remediation: "Upgrade the `callhome-agent` package on the host (or in the master image) to the \
            current release; the spool and enrollment are kept across upgrades.",
        reference: "https://semver.org/spec/v2.0.0.html",
        evidence: &["version", "minimum"],
    },
    eval: version_unsupported,
};

pub const SPOOL_LOSS: HostRule = HostRule {
    info: RuleInfo {
        id: "AGENT-SPOOL-001",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::High,
        impact: Rating::Low,
        title: "The agent dropped {dropped} snapshots since its last delivery",
        rationale: "The agent keeps undelivered snapshots in a bounded spool and drops the oldest when it \
            is full: the collector's history of this host has holes, usually because the collector \
            was unreachable for long (`last_error` says why).",
        remediation: "Fix what blocks delivery (`callhome-agent spool` shows the last error: network, \
            proxy, certificate, credential), or raise the spool's bounds if outages are expected; \
            inspect quarantined files under the spool's `quarantine/`.",
        reference: "README.md#delivery-spool-schedule-the-daemon",
        evidence: &[
            "dropped",
            "quarantined_total",
            "spool_depth",
            "last_delivery",
            "last_error",
        ],
    },
    eval: spool_loss,
};

/// A semantic version: `MAJOR.MINOR.PATCH[-PRE][+BUILD]`; build metadata does not order.
#[derive(Debug, PartialEq, Eq)]
struct Version<'a> {
    core: [u64; 3],
    pre: Option<&'a str>,
}

impl<'a> Version<'a> {
    fn parse(s: &'a str) -> Option<Version<'a>> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let s = s.split_once('+').map_or(s, |(v, _build)| v);
        let (core, pre) = match s.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, Some(pre)),
            Some(_) => return None,
            None => (s, None),
        };
        let mut parts = core.split('.');
        let mut fields = [0u64; 3];
        for f in &mut fields {
            let p = parts.next()?;
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            *f = p.parse().ok()?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(Version { core: fields, pre })
    }
}

/// Pre-release identifiers compare numerically when both are numeric, else as ASCII, numeric
/// before alphanumeric; a shorter list that is a prefix of the other is lower (semver §11).
fn cmp_pre(a: &str, b: &str) -> Ordering {
    let mut xs = a.split('.');
    let mut ys = b.split('.');
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

impl Ord for Version<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (self.pre, other.pre) {
                (None, None) => Ordering::Equal,
                // A pre-release comes before its release.
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(a), Some(b)) => cmp_pre(a, b),
            })
    }
}

impl PartialOrd for Version<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn version_unsupported(s: &Snapshot) -> Outcome {
    // The envelope always carries a version; only a malformed one leaves nothing to judge.
    let (Some(have), Some(min)) = (
        Version::parse(&s.agent.version),
        Version::parse(MIN_SUPPORTED_AGENT_VERSION),
    ) else {
        return Outcome::Skipped;
    };
    Outcome::fire_if(have < min, || {
        Hit::host_wide()
            .with("version", s.agent.version.clone())
            .with("minimum", MIN_SUPPORTED_AGENT_VERSION)
    })
}

fn spool_loss(s: &Snapshot) -> Outcome {
    let Some(a) = &s.sections.agent else {
        return Outcome::Skipped;
    };
    // `quarantined` counts all time, so it cannot say "since the last delivery": it is reported as
    // context, and a drop is what fires.
    Outcome::fire_if(a.dropped_since_last_delivery > 0, || {
        Hit::host_wide()
            .with("dropped", a.dropped_since_last_delivery)
            .with("quarantined_total", a.quarantined)
            .with("spool_depth", a.spool_depth)
            .with(
                "last_delivery",
                a.last_delivery
                    .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            )
            .with("last_error", a.last_error.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{fires, passes, skipped, snapshot_with};
    use crate::sections::AgentSection;

    fn agent_version(v: &str) -> Snapshot {
        let mut s = snapshot_with(|_| {});
        s.agent.version = v.to_owned();
        s
    }

    #[test]
    fn semver_orders_as_the_spec_says() {
        let order = [
            "0.0.9",
            "0.1.0-alpha",
            "0.1.0-alpha.1",
            "0.1.0-alpha.beta",
            "0.1.0-beta.2",
            "0.1.0-beta.11",
            "0.1.0-rc.1",
            "0.1.0",
            "0.1.1",
            "0.10.0",
            "1.0.0",
        ];
        for pair in order.windows(2) {
            let (a, b) = (Version::parse(pair[0]), Version::parse(pair[1]));
            assert!(a.is_some() && b.is_some(), "{pair:?}");
            assert!(a < b, "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(Version::parse("1.2.3+build.5"), Version::parse("1.2.3"));
        for bad in ["1.2", "1.2.3.4", "1..3", "a.b.c", "1.2.3-", ""] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn old_agent_fires() {
        let f = fires(&VERSION_UNSUPPORTED, &agent_version("0.0.9"));
        assert_eq!(
            f.title,
            "callhome agent 0.0.9 is older than the supported minimum 0.1.0"
        );
        fires(&VERSION_UNSUPPORTED, &agent_version("0.1.0-rc.1"));
    }

    #[test]
    fn current_agent_passes_and_garbage_skips() {
        passes(&VERSION_UNSUPPORTED, &agent_version("0.1.0"));
        passes(&VERSION_UNSUPPORTED, &agent_version("1.4.2+el9"));
        skipped(&VERSION_UNSUPPORTED, &agent_version("unknown"));
    }

    fn agent(dropped: u64, quarantined: u64) -> Snapshot {
        snapshot_with(|s| {
            s.agent = Some(AgentSection {
                version: "0.1.0".to_owned(),
                spool_depth: 200,
                dropped_since_last_delivery: dropped,
                quarantined,
                last_error: Some("connection refused".to_owned()),
                ..Default::default()
            })
        })
    }

    #[test]
    fn dropped_snapshots_fire() {
        let f = fires(&SPOOL_LOSS, &agent(3, 1));
        assert_eq!(f.title, "The agent dropped 3 snapshots since its last delivery");
        assert_eq!(f.evidence["last_error"], "connection refused");
        assert_eq!(f.evidence["quarantined_total"], 1);
    }

    #[test]
    fn no_drop_passes_and_absent_section_skips() {
        passes(&SPOOL_LOSS, &agent(0, 2));
        skipped(&SPOOL_LOSS, &snapshot_with(|_| {}));
    }
}
