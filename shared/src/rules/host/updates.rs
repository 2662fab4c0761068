//! Area UPD: pending reboots and updates. Security fixes that are installed but not running (kernel,
//! glibc) or not installed at all leave the host exposed.

use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::snapshot::Snapshot;

/// UPD-REBOOT-001 fires once a reboot has been pending longer than this (days): past a typical
/// monthly patch window's slack, the host runs a kernel older than what is installed.
pub const REBOOT_PENDING_MAX_DAYS: i64 = 14;
/// UPD-PEND-001 fires at this many pending updates or more: a host patched monthly rarely has more
/// than a few dozen waiting.
pub const PENDING_UPDATES_MAX: u64 = 50;

pub const REBOOT_PENDING: HostRule = HostRule {
    info: RuleInfo {
        id: "UPD-REBOOT-001",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::Medium,
        title: "Reboot pending for {pending_days} days",
        rationale: "Updates installed but not running (a new kernel, glibc, OpenSSL) give no protection; \
            the longer the reboot waits, the more the running system differs from the installed one, \
            and the riskier the eventual reboot.",
        remediation: "Drain the host in its delivery group (maintenance mode), reboot it, and check that \
            the VDA registers again; schedule reboots in the delivery group's reboot schedule.",
        reference: "https://access.redhat.com/solutions/27943",
        evidence: &["pending_days", "since", "packages"],
    },
    eval: reboot_pending,
};

pub const SECURITY_PENDING: HostRule = HostRule {
    info: RuleInfo {
        id: "UPD-SEC-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::Medium,
        impact: Rating::High,
        title: "{security_updates} security updates pending",
        rationale: "A multi-user session host exposes every unpatched local vulnerability to all of its \
            users; pending security advisories are known, published holes.",
        remediation: "Apply them in the next maintenance window (`dnf upgrade --security` or \
            `apt-get upgrade` with the security pocket), after checking the Linux VDA's supported OS \
            versions, then reboot if asked.",
        reference: "https://docs.redhat.com/en/documentation/red_hat_enterprise_linux/9/html/managing_and_monitoring_security_updates/index",
        evidence: &["security_updates", "pending_updates"],
    },
    eval: security_pending,
};

pub const MANY_PENDING: HostRule = HostRule {
    info: RuleInfo {
        id: "UPD-PEND-001",
        scope: Scope::Host,
        severity: Severity::Low,
        likelihood: Rating::Low,
        impact: Rating::Medium,
        title: "{pending_updates} package updates pending",
        rationale: "Many pending updates mean the host is not patched regularly: bug fixes are missing, \
            and the eventual large update is harder to test and to roll back.",
        remediation: "Patch the host regularly (monthly at least), ideally from a tested master image, \
            and keep the package cache fresh so the count stays meaningful.",
        reference: "https://docs.redhat.com/en/documentation/red_hat_enterprise_linux/9/html/managing_software_with_the_dnf_tool/index",
        evidence: &["pending_updates", "threshold"],
    },
    eval: many_pending,
};

fn reboot_pending(s: &Snapshot) -> Outcome {
    let Some(u) = &s.sections.updates else {
        return Outcome::Skipped;
    };
    match (u.reboot_required, u.reboot_required_since) {
        (None, _) => Outcome::Skipped,
        (Some(false), _) => Outcome::pass(),
        // Pending, but since when is unknown: its age cannot be judged.
        (Some(true), None) => Outcome::Skipped,
        (Some(true), Some(since)) => {
            let days = (s.collected_at - since).whole_days();
            Outcome::fire_if(days > REBOOT_PENDING_MAX_DAYS, || {
                Hit::host_wide()
                    .with("pending_days", days)
                    .with(
                        "since",
                        since.format(&time::format_description::well_known::Rfc3339).ok(),
                    )
                    .with("packages", u.reboot_packages.clone())
            })
        }
    }
}

fn security_pending(s: &Snapshot) -> Outcome {
    let Some(u) = &s.sections.updates else {
        return Outcome::Skipped;
    };
    let Some(n) = u.pending_security_updates else {
        return Outcome::Skipped;
    };
    Outcome::fire_if(n > 0, || {
        Hit::host_wide()
            .with("security_updates", n)
            .with("pending_updates", u.pending_updates)
    })
}

fn many_pending(s: &Snapshot) -> Outcome {
    let Some(n) = s.sections.updates.as_ref().and_then(|u| u.pending_updates) else {
        return Outcome::Skipped;
    };
    Outcome::fire_if(n >= PENDING_UPDATES_MAX, || {
        Hit::host_wide()
            .with("pending_updates", n)
            .with("threshold", PENDING_UPDATES_MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{COLLECTED_AT, fires, passes, skipped, snapshot_with};
    use crate::sections::UpdatesSection;

    fn updates(f: impl FnOnce(&mut UpdatesSection)) -> Snapshot {
        let mut u = UpdatesSection {
            package_family: Some("rpm".to_owned()),
            ..Default::default()
        };
        f(&mut u);
        snapshot_with(|s| s.updates = Some(u))
    }

    fn reboot_since(days: i64) -> Snapshot {
        updates(|u| {
            u.reboot_required = Some(true);
            u.reboot_required_since = Some(COLLECTED_AT - time::Duration::days(days));
            u.reboot_packages = vec!["kernel".to_owned()];
        })
    }

    #[test]
    fn old_pending_reboot_fires() {
        let f = fires(&REBOOT_PENDING, &reboot_since(20));
        assert_eq!(f.title, "Reboot pending for 20 days");
        assert_eq!(f.evidence["since"], "2026-10-31T09:00:00Z");
    }

    #[test]
    fn recent_or_no_pending_reboot_passes() {
        passes(&REBOOT_PENDING, &reboot_since(14));
        passes(&REBOOT_PENDING, &updates(|u| u.reboot_required = Some(false)));
    }

    #[test]
    fn reboot_skipped_when_unknown_or_undated() {
        skipped(&REBOOT_PENDING, &updates(|_| {}));
        skipped(&REBOOT_PENDING, &updates(|u| u.reboot_required = Some(true)));
        skipped(&REBOOT_PENDING, &snapshot_with(|_| {}));
    }

    #[test]
    fn security_updates_fire() {
        let f = fires(
            &SECURITY_PENDING,
            &updates(|u| {
                u.pending_updates = Some(12);
                u.pending_security_updates = Some(3);
            }),
        );
        assert_eq!(f.title, "3 security updates pending");
        passes(
            &SECURITY_PENDING,
            &updates(|u| u.pending_security_updates = Some(0)),
        );
        skipped(&SECURITY_PENDING, &updates(|u| u.pending_updates = Some(12)));
    }

    #[test]
    fn many_pending_updates_fire_at_the_threshold() {
        let f = fires(&MANY_PENDING, &updates(|u| u.pending_updates = Some(50)));
        assert_eq!(f.title, "50 package updates pending");
        passes(&MANY_PENDING, &updates(|u| u.pending_updates = Some(49)));
        skipped(&MANY_PENDING, &updates(|_| {}));
    }
}
