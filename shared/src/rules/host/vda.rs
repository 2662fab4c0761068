//! Area VDA: the Linux VDA's registration with its Delivery Controllers, its X servers and its own
//! self-test (XDPing, run by the monitor service).

use serde_json::Value;
use time::format_description::well_known::Rfc3339;

use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::sections::{VdaRegistrationState, VdaSection};
use crate::snapshot::{ProbeOutcome, Snapshot};

/// Deregistrations in the registration window (24 h) from which they are "repeated": one or two are
/// a controller restart or a failover (patching restarts each controller once); three or more in a
/// day mean the registration itself is unstable.
pub const REPEATED_DEREGISTRATIONS: u32 = 3;

/// Whether the Linux VDA is installed: `Some(true)` with a `vda` section, `Some(false)` when the
/// `vda` probe ran and found no package (`no_data`), `None` when that cannot be told (probe failed,
/// timed out or did not run).
pub(super) fn vda_installed(s: &Snapshot) -> Option<bool> {
    if s.sections.vda.is_some() {
        return Some(true);
    }
    match s.probes.get("vda").map(|p| p.outcome) {
        Some(ProbeOutcome::NoData) => Some(false),
        _ => None,
    }
}

fn time_value(t: Option<time::OffsetDateTime>) -> Value {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::from)
}

fn opt_str(v: &Option<String>) -> Value {
    v.clone().map_or(Value::Null, Value::from)
}

pub const UNREGISTERED: HostRule = HostRule {
    info: RuleInfo {
        id: "VDA-REG-001",
        scope: Scope::Host,
        severity: Severity::Critical,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "VDA is not registered with a Delivery Controller (last failure: {last_failure_reason})",
        rationale: "An unregistered VDA is invisible to the broker: no session is launched on it, and \
            its users' desktops or applications are unavailable or pile onto the remaining machines.",
        remediation: "Read the reason in `/var/log/xdl/vda*.log` and `jproxy.log`; the usual causes are \
            Kerberos (clock skew, keytab, machine account), DNS (forward and reverse records of the \
            controllers and of this host) and the controllers' port 80 being blocked. \
            `/opt/Citrix/VDA/bin/xdping` tests them all.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/installation-overview/troubleshooting.html",
        evidence: &[
            "state",
            "last_failure",
            "last_failure_reason",
            "last_registered",
            "failures_in_window",
        ],
    },
    eval: unregistered,
};

fn unregistered(s: &Snapshot) -> Outcome {
    let Some(vda) = &s.sections.vda else {
        return Outcome::Skipped;
    };
    let r = &vda.registration;
    match r.state {
        VdaRegistrationState::Unknown => Outcome::Skipped,
        VdaRegistrationState::Registered => Outcome::pass(),
        VdaRegistrationState::Unregistered => Outcome::fire(
            Hit::host_wide()
                .with("state", "unregistered")
                .with("last_failure", time_value(r.last_failure))
                .with(
                    "last_failure_reason",
                    r.last_failure_reason
                        .clone()
                        .unwrap_or_else(|| "registration lost".into()),
                )
                .with("last_registered", time_value(r.last_registered))
                .with("failures_in_window", r.failures_in_window),
        ),
    }
}

pub const REPEATED_DEREGISTRATION: HostRule = HostRule {
    info: RuleInfo {
        id: "VDA-REG-002",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::High,
        impact: Rating::Medium,
        title: "VDA lost its registration {deregistrations} times in the last {window_hours} h",
        rationale: "Each lost registration makes the machine unavailable to the broker until it \
            registers again, and can disconnect its sessions; repeated losses point at an unstable \
            network path, DNS or Kerberos trouble, or a controller that keeps failing.",
        remediation: "Line up the deregistration times in `/var/log/xdl/vda*.log` with the controllers' \
            event logs and the network; check `xdping`, the time source, and the controllers' health.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/installation-overview/troubleshooting.html",
        evidence: &["deregistrations", "window_hours", "threshold", "state"],
    },
    eval: repeated_deregistration,
};

fn window_hours(vda: &VdaSection) -> u64 {
    vda.registration.window_secs / 3600
}

fn state_name(state: VdaRegistrationState) -> &'static str {
    match state {
        VdaRegistrationState::Registered => "registered",
        VdaRegistrationState::Unregistered => "unregistered",
        VdaRegistrationState::Unknown => "unknown",
    }
}

fn repeated_deregistration(s: &Snapshot) -> Outcome {
    let Some(vda) = &s.sections.vda else {
        return Outcome::Skipped;
    };
    let r = &vda.registration;
    if r.sources.is_empty() {
        return Outcome::Skipped;
    }
    Outcome::fire_if(r.deregistrations_in_window >= REPEATED_DEREGISTRATIONS, || {
        Hit::host_wide()
            .with("deregistrations", r.deregistrations_in_window)
            .with("window_hours", window_hours(vda))
            .with("threshold", REPEATED_DEREGISTRATIONS)
            .with("state", state_name(r.state))
    })
}

pub const NEVER_REGISTERED: HostRule = HostRule {
    info: RuleInfo {
        id: "VDA-REG-003",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "No successful registration in the VDA logs, {failures} failed attempts in the last {window_hours} h",
        rationale: "Failed attempts with no success in the logs read mean the VDA has not registered for \
            as long as its logs go back: a machine that may never have served a session since its \
            last restart, or since it was built.",
        remediation: "Run `/opt/Citrix/VDA/bin/xdping` and fix what it reports; check `ListOfDDCs` \
            (`ctxreg read -k \"HKLM\\Software\\Citrix\\VirtualDesktopAgent\" -v ListOfDDCs`), the \
            machine catalog in Studio, and the reason in `/var/log/xdl/vda*.log`.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/installation-overview/troubleshooting.html",
        evidence: &["failures", "window_hours", "last_failure_reason"],
    },
    eval: never_registered,
};

fn never_registered(s: &Snapshot) -> Outcome {
    let Some(vda) = &s.sections.vda else {
        return Outcome::Skipped;
    };
    let r = &vda.registration;
    if r.sources.is_empty() {
        return Outcome::Skipped;
    }
    Outcome::fire_if(r.last_registered.is_none() && r.failures_in_window > 0, || {
        Hit::host_wide()
            .with("failures", r.failures_in_window)
            .with("window_hours", window_hours(vda))
            .with("last_failure_reason", opt_str(&r.last_failure_reason))
    })
}

pub const XORG_WITHOUT_SESSION: HostRule = HostRule {
    info: RuleInfo {
        id: "VDA-XORG-001",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::Medium,
        title: "{extra} Xorg process(es) without a session ({xorg_processes} Xorg for {sessions} session(s))",
        rationale: "An X server left behind by an ended session keeps its memory and its display number; \
            enough of them exhaust the VDA's display range or the host's memory, and new sessions \
            fail to start.",
        remediation: "List them (`ps -o pid,lstart,args -C Xorg`) against `ctxqsession`; end the orphans, \
            and look in `/var/log/xdl/hdx.log` for why the sessions did not clean up. A local \
            graphical console also runs an Xorg: set the host to `multi-user.target`.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/installation-overview/troubleshooting.html",
        evidence: &["extra", "xorg_processes", "sessions"],
    },
    eval: xorg_without_session,
};

fn xorg_without_session(s: &Snapshot) -> Outcome {
    let Some(vda) = &s.sections.vda else {
        return Outcome::Skipped;
    };
    let (Some(extra), Some(xorg)) = (vda.xorg_without_session, vda.xorg_processes) else {
        return Outcome::Skipped;
    };
    Outcome::fire_if(extra > 0, || {
        let sessions = vda
            .sessions
            .map_or(Value::Null, |s| Value::from(s.active + s.disconnected));
        Hit::host_wide()
            .with("extra", extra)
            .with("xorg_processes", xorg)
            .with("sessions", sessions)
    })
}

pub const XDPING_FAILED: HostRule = HostRule {
    info: RuleInfo {
        id: "VDA-MON-001",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::Medium,
        title: "XDPing reports {failed} failed check(s): {failed_checks}",
        rationale: "XDPing is Citrix's own health check of the Linux VDA's environment (Kerberos, DNS, \
            time, ports, services); the monitor service runs it periodically. A failed check is a \
            known misconfiguration, often the cause of a registration or logon problem to come.",
        remediation: "Run `/opt/Citrix/VDA/bin/xdping` on the host and follow the advice printed for each \
            failed check.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/configure/xdping.html",
        evidence: &["failed", "failed_checks", "ran_at"],
    },
    eval: xdping_failed,
};

fn xdping_failed(s: &Snapshot) -> Outcome {
    let Some(run) = s
        .sections
        .vda
        .as_ref()
        .and_then(|v| v.monitor.as_ref())
        .and_then(|m| m.xdping.as_ref())
    else {
        return Outcome::Skipped;
    };
    Outcome::fire_if(run.failed > 0, || {
        let checks = if run.failed_checks.is_empty() {
            "not named in the log".to_owned()
        } else {
            run.failed_checks.join("; ")
        };
        Hit::host_wide()
            .with("failed", run.failed)
            .with("failed_checks", checks)
            .with("ran_at", time_value(run.ran_at))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{fires, passes, skipped, snapshot_with};
    use crate::sections::{VdaMonitor, VdaRegistration, VdaSessions, XdpingRun};
    use crate::snapshot::ProbeReport;
    use time::macros::datetime;

    fn vda(f: impl FnOnce(&mut VdaSection)) -> Snapshot {
        let mut section = VdaSection {
            package: "XenDesktopVDA".into(),
            version: "24.11.0.65-1.el9_x".into(),
            registration: VdaRegistration {
                window_secs: 86_400,
                sources: vec!["jproxy.log".into(), "vda.2026-11-19.06.00.12.log".into()],
                state: VdaRegistrationState::Registered,
                last_registered: Some(datetime!(2026-11-19 14:41:12 UTC)),
                ..Default::default()
            },
            sessions: Some(VdaSessions {
                active: 2,
                disconnected: 1,
                other: 0,
            }),
            xorg_processes: Some(3),
            xorg_without_session: Some(0),
            monitor: Some(VdaMonitor {
                restarts_in_window: Some(0),
                restarts_by_process: vec![],
                xdping: Some(XdpingRun {
                    ran_at: Some(datetime!(2026-11-20 08:50:42 UTC)),
                    passed: 13,
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        f(&mut section);
        snapshot_with(|s| s.vda = Some(section))
    }

    #[test]
    fn unregistered_fires_with_the_reason() {
        let snap = vda(|v| {
            v.registration.state = VdaRegistrationState::Unregistered;
            v.registration.last_failure = Some(datetime!(2026-11-20 08:52:20 UTC));
            v.registration.last_failure_reason = Some("KRB_AP_ERR_SKEW".into());
            v.registration.failures_in_window = 42;
        });
        let f = fires(&UNREGISTERED, &snap);
        assert_eq!(
            f.title,
            "VDA is not registered with a Delivery Controller (last failure: KRB_AP_ERR_SKEW)"
        );
        assert_eq!(f.evidence["last_failure"], "2026-11-20T08:52:20Z");
    }

    #[test]
    fn registered_passes_and_unknown_is_skipped() {
        passes(&UNREGISTERED, &vda(|_| {}));
        skipped(
            &UNREGISTERED,
            &vda(|v| v.registration.state = VdaRegistrationState::Unknown),
        );
        skipped(&UNREGISTERED, &snapshot_with(|_| {}));
    }

    #[test]
    fn repeated_deregistrations_fire() {
        let f = fires(
            &REPEATED_DEREGISTRATION,
            &vda(|v| v.registration.deregistrations_in_window = 4),
        );
        assert_eq!(f.title, "VDA lost its registration 4 times in the last 24 h");
    }

    #[test]
    fn one_or_two_deregistrations_pass() {
        passes(
            &REPEATED_DEREGISTRATION,
            &vda(|v| v.registration.deregistrations_in_window = REPEATED_DEREGISTRATIONS - 1),
        );
        skipped(&REPEATED_DEREGISTRATION, &vda(|v| v.registration.sources.clear()));
    }

    #[test]
    fn failures_without_any_success_fire() {
        let snap = vda(|v| {
            v.registration.state = VdaRegistrationState::Unregistered;
            v.registration.last_registered = None;
            v.registration.failures_in_window = 12;
        });
        let f = fires(&NEVER_REGISTERED, &snap);
        assert_eq!(f.evidence["failures"], 12);
        assert_eq!(f.evidence["last_failure_reason"], Value::Null);
    }

    #[test]
    fn failures_after_a_success_pass() {
        passes(&NEVER_REGISTERED, &vda(|v| v.registration.failures_in_window = 3));
        skipped(&NEVER_REGISTERED, &snapshot_with(|_| {}));
    }

    #[test]
    fn orphan_xorg_fires() {
        let snap = vda(|v| {
            v.xorg_processes = Some(5);
            v.xorg_without_session = Some(2);
        });
        let f = fires(&XORG_WITHOUT_SESSION, &snap);
        assert_eq!(
            f.title,
            "2 Xorg process(es) without a session (5 Xorg for 3 session(s))"
        );
    }

    #[test]
    fn one_xorg_per_session_passes() {
        passes(&XORG_WITHOUT_SESSION, &vda(|_| {}));
        skipped(&XORG_WITHOUT_SESSION, &vda(|v| v.xorg_without_session = None));
    }

    #[test]
    fn xdping_failures_fire() {
        let snap = vda(|v| {
            if let Some(x) = v.monitor.as_mut().and_then(|m| m.xdping.as_mut()) {
                x.failed = 2;
                x.failed_checks = vec![
                    "Checking Linux VDA services".into(),
                    "Checking ICA and CGP listeners".into(),
                ];
            }
        });
        let f = fires(&XDPING_FAILED, &snap);
        assert_eq!(
            f.title,
            "XDPing reports 2 failed check(s): Checking Linux VDA services; Checking ICA and CGP listeners"
        );
    }

    #[test]
    fn clean_xdping_passes() {
        passes(&XDPING_FAILED, &vda(|_| {}));
        skipped(&XDPING_FAILED, &vda(|v| v.monitor = None));
    }

    #[test]
    fn installed_is_told_by_the_section_or_the_probe() {
        assert_eq!(vda_installed(&vda(|_| {})), Some(true));
        let mut none = snapshot_with(|_| {});
        assert_eq!(vda_installed(&none), None);
        none.probes.insert(
            "vda".into(),
            ProbeReport {
                outcome: ProbeOutcome::NoData,
                duration_ms: 1,
            },
        );
        assert_eq!(vda_installed(&none), Some(false));
    }
}
