//! Area SVC: the systemd units a Linux VDA runs on. A unit that is not installed
//! (`installed = false`) never fires: not installed is not down.

use serde_json::Value;

use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::sections::{ServiceUnit, ServicesSection};
use crate::snapshot::Snapshot;

/// Automatic restarts (systemd's `NRestarts`, counted since the unit was loaded, normally since boot)
/// from which a unit is in a restart storm: systemd's own default start limit
/// (`StartLimitBurst=5` within `StartLimitIntervalSec=10s`, systemd.unit(5)) gives up at five.
pub const RESTART_STORM_UNIT: u32 = 5;
/// Key-process restarts by the VDA monitor service in its window (24 h) from which it is a storm.
pub const RESTART_STORM_MONITOR: u32 = 5;

const VDA_UNIT: &str = "ctxvda.service";
const HDX_UNIT: &str = "ctxhdx.service";
const IDENTITY_UNITS: &[&str] = &["sssd.service", "winbind.service"];

/// `active` and `reloading` serve requests; anything else does not.
fn is_up(unit: &ServiceUnit) -> bool {
    matches!(unit.active_state.as_deref(), Some("active" | "reloading"))
}

fn unit_hit(unit: &ServiceUnit) -> Hit {
    let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::from);
    Hit::about(unit.name.clone())
        .with("unit", unit.name.clone())
        .with("active_state", opt(&unit.active_state))
        .with("sub_state", opt(&unit.sub_state))
        .with("result", opt(&unit.result))
        .with(
            "since",
            unit.since
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                .map_or(Value::Null, Value::from),
        )
}

/// The verdict on one named unit that must run when installed.
fn required_unit(s: &Snapshot, name: &str) -> Outcome {
    let Some(services) = &s.sections.services else {
        return Outcome::Skipped;
    };
    let Some(unit) = services.units.iter().find(|u| u.name == name) else {
        return Outcome::Skipped;
    };
    if !unit.installed {
        return Outcome::pass();
    }
    if unit.active_state.is_none() {
        return Outcome::Skipped;
    }
    Outcome::fire_if(!is_up(unit), || unit_hit(unit))
}

const UNIT_EVIDENCE: &[&str] = &["unit", "active_state", "sub_state", "result", "since"];

pub const VDA_DOWN: HostRule = HostRule {
    info: RuleInfo {
        id: "SVC-VDA-001",
        scope: Scope::Host,
        severity: Severity::Critical,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "The VDA service {unit} is {active_state}",
        rationale: "`ctxvda` is the Linux VDA's broker agent: it registers the machine with the Delivery \
            Controllers. While it is down the machine is unregistered and no session can be brokered \
            to it.",
        remediation: "Read why it stopped (`systemctl status ctxvda`, `journalctl -u ctxvda`, \
            `/var/log/xdl/vda*.log`), fix the cause, then `systemctl restart ctxvda` and check the \
            registration in Studio.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/installation-overview/manual-installation-overview.html",
        evidence: UNIT_EVIDENCE,
    },
    eval: |s| required_unit(s, VDA_UNIT),
};

pub const HDX_DOWN: HostRule = HostRule {
    info: RuleInfo {
        id: "SVC-HDX-001",
        scope: Scope::Host,
        severity: Severity::Critical,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "The HDX service {unit} is {active_state}",
        rationale: "`ctxhdx` runs the ICA and session-reliability listeners and the HDX stack: while it is \
            down the machine may still look registered, but every connection attempt fails.",
        remediation: "Read why it stopped (`systemctl status ctxhdx`, `journalctl -u ctxhdx`, \
            `/var/log/xdl/hdx.log`), fix the cause, then `systemctl restart ctxhdx` and check that \
            ports 1494 and 2598 listen (`ss -ltn`).",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/installation-overview/manual-installation-overview.html",
        evidence: UNIT_EVIDENCE,
    },
    eval: |s| required_unit(s, HDX_UNIT),
};

pub const OTHER_CITRIX_UNIT_DOWN: HostRule = HostRule {
    info: RuleInfo {
        id: "SVC-CTX-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::Medium,
        impact: Rating::Medium,
        title: "Citrix service {unit} is {active_state}",
        rationale: "The other Citrix units (`ctxlogd` logging, `ctxmonitord` monitor service, `ctxcups` \
            printing, `ctxjproxy` the Java proxy the registration uses) each carry part of the VDA: \
            a failed one degrades sessions, printing, self-healing or diagnostics.",
        remediation: "Read why it stopped (`systemctl status UNIT`, `journalctl -u UNIT`), fix the cause \
            and restart it. A unit disabled on purpose (`systemctl disable`) is not reported while it \
            is merely inactive.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/configure/monitor-service.html",
        evidence: UNIT_EVIDENCE,
    },
    eval: other_citrix_unit_down,
};

/// Failed, or inactive while enabled: an operator who disabled a unit (printing unused) meant it.
fn other_citrix_unit_down(s: &Snapshot) -> Outcome {
    let Some(services) = &s.sections.services else {
        return Outcome::Skipped;
    };
    let hits = services
        .units
        .iter()
        .filter(|u| u.installed && u.name.starts_with("ctx") && u.name != VDA_UNIT && u.name != HDX_UNIT)
        .filter(|u| match u.active_state.as_deref() {
            Some("failed") => true,
            Some("inactive") => u.unit_file_state.as_deref() == Some("enabled"),
            _ => false,
        })
        .map(unit_hit)
        .collect();
    Outcome::Hits(hits)
}

pub const RESTART_STORM: HostRule = HostRule {
    info: RuleInfo {
        id: "SVC-RESTART-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::High,
        impact: Rating::Medium,
        title: "{unit} restarted {restarts} times {source}",
        rationale: "A service that keeps crashing and being restarted drops the sessions or the \
            registration it carries each time, and usually ends in systemd's start limit, down for \
            good. From five restarts (systemd's default start-limit burst) it is a storm, not a \
            blip.",
        remediation: "Find the crash (`journalctl -u UNIT`, `coredumpctl list`, `/var/log/xdl/ms.log` for \
            the monitor service's restarts), fix its cause (memory, configuration, a known VDA \
            defect), then `systemctl reset-failed UNIT`.",
        reference: "https://www.freedesktop.org/software/systemd/man/latest/systemd.unit.html#StartLimitIntervalSec=interval",
        evidence: &["unit", "restarts", "threshold", "source"],
    },
    eval: restart_storm,
};

fn restart_storm(s: &Snapshot) -> Outcome {
    let services = s.sections.services.as_ref();
    let monitor = s.sections.vda.as_ref().and_then(|v| v.monitor.as_ref());
    let monitor_restarts = monitor.and_then(|m| m.restarts_in_window.map(|n| (m, n)));
    if services.is_none() && monitor_restarts.is_none() {
        return Outcome::Skipped;
    }
    let mut hits: Vec<Hit> = services
        .map(|sv| sv.units.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|u| u.installed && u.restarts.is_some_and(|n| n >= RESTART_STORM_UNIT))
        .map(|u| {
            Hit::about(u.name.clone())
                .with("unit", u.name.clone())
                .with("restarts", u.restarts.unwrap_or_default())
                .with("threshold", RESTART_STORM_UNIT)
                .with("source", "since it was loaded (systemd NRestarts)")
        })
        .collect();
    // The monitor service restarts the VDA's key processes itself, which systemd does not count.
    if let Some((m, total)) = monitor_restarts
        && total >= RESTART_STORM_MONITOR
    {
        let window_h = s.sections.vda.as_ref().map_or(0, |v| v.registration.window_secs) / 3600;
        let by_process: Vec<String> = m
            .restarts_by_process
            .iter()
            .map(|p| format!("{} x{}", p.process, p.count))
            .collect();
        let unit = if by_process.is_empty() {
            "VDA key processes".to_owned()
        } else {
            format!("VDA key processes ({})", by_process.join(", "))
        };
        hits.push(
            Hit::about("ctxmonitord")
                .with("unit", unit)
                .with("restarts", total)
                .with("threshold", RESTART_STORM_MONITOR)
                .with("source", format!("in the last {window_h} h (ctxmonitord)")),
        );
    }
    Outcome::Hits(hits)
}

pub const IDENTITY_SERVICE_DOWN: HostRule = HostRule {
    info: RuleInfo {
        id: "SVC-ID-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "Identity service {unit} is installed but {active_state}",
        rationale: "sssd or winbind resolves domain users and renews the machine's Kerberos credentials; \
            while the one in use is down, domain users cannot log on to the VDA and the machine \
            account's password is not rotated.",
        remediation: "`systemctl status UNIT` and its journal; check the domain join (`realm list`, \
            `sssctl domain-status`, `wbinfo -t`), then `systemctl enable --now UNIT`.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/installation-overview/manual-installation-overview/redhat.html",
        evidence: UNIT_EVIDENCE,
    },
    eval: identity_service_down,
};

/// When the identity section names the client software, only its unit is judged; otherwise an
/// installed but inactive one fires only if no identity unit is active (a host using sssd often
/// has winbind's package too).
fn identity_service_down(s: &Snapshot) -> Outcome {
    let Some(services) = &s.sections.services else {
        return Outcome::Skipped;
    };
    let installed: Vec<&ServiceUnit> = services
        .units
        .iter()
        .filter(|u| u.installed && IDENTITY_UNITS.contains(&u.name.as_str()))
        .collect();
    if installed.iter().any(|u| u.active_state.is_none()) {
        return Outcome::Skipped;
    }
    let client = s
        .sections
        .identity
        .as_ref()
        .and_then(|i| i.domain.as_ref())
        .and_then(|d| d.client_software.as_deref())
        .map(|c| format!("{c}.service"));
    if let Some(unit) = client.and_then(|c| installed.iter().find(|u| u.name == c)) {
        return Outcome::fire_if(!is_up(unit), || unit_hit(unit));
    }
    if installed.iter().any(|u| is_up(u)) {
        return Outcome::pass();
    }
    Outcome::Hits(installed.into_iter().map(unit_hit).collect())
}

pub const FAILED_UNITS: HostRule = HostRule {
    info: RuleInfo {
        id: "SVC-FAILED-001",
        scope: Scope::Host,
        severity: Severity::Low,
        likelihood: Rating::Low,
        impact: Rating::Medium,
        title: "{failed_total} systemd unit(s) failed: {failed_units}",
        rationale: "A failed unit is work the host was meant to do and does not: a mount, a backup, an \
            agent. Citrix and identity units have their own rules; this one keeps the rest visible \
            before one of them turns out to matter.",
        remediation: "`systemctl --failed`, then `systemctl status UNIT` and `journalctl -u UNIT` for each; \
            fix or disable it, then `systemctl reset-failed`.",
        reference: "https://www.freedesktop.org/software/systemd/man/latest/systemctl.html",
        evidence: &["failed_total", "failed_units"],
    },
    eval: failed_units,
};

fn failed_units(s: &Snapshot) -> Outcome {
    let Some(ServicesSection {
        failed_units,
        failed_units_total,
        ..
    }) = &s.sections.services
    else {
        return Outcome::Skipped;
    };
    let total = (*failed_units_total).max(u32::try_from(failed_units.len()).unwrap_or(u32::MAX));
    Outcome::fire_if(total > 0, || {
        let mut listed = failed_units.join(", ");
        if (failed_units.len() as u64) < u64::from(total) {
            listed.push_str(", ...");
        }
        Hit::host_wide()
            .with("failed_total", total)
            .with("failed_units", listed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{fires, fires_all, passes, skipped, snapshot_with};
    use crate::sections::{DomainMembership, IdentitySection, ProcessRestarts, VdaMonitor, VdaSection};

    fn unit(name: &str, active: &str) -> ServiceUnit {
        ServiceUnit {
            name: name.into(),
            installed: true,
            load_state: "loaded".into(),
            active_state: Some(active.into()),
            sub_state: Some(if active == "active" { "running" } else { "dead" }.into()),
            result: Some("success".into()),
            unit_file_state: Some("enabled".into()),
            restarts: Some(0),
            since: None,
        }
    }

    fn missing(name: &str) -> ServiceUnit {
        ServiceUnit {
            name: name.into(),
            installed: false,
            load_state: "not-found".into(),
            ..Default::default()
        }
    }

    fn services(units: Vec<ServiceUnit>) -> Snapshot {
        snapshot_with(|s| {
            s.services = Some(ServicesSection {
                units,
                ..Default::default()
            })
        })
    }

    fn healthy() -> Vec<ServiceUnit> {
        [
            "ctxvda.service",
            "ctxhdx.service",
            "ctxlogd.service",
            "ctxmonitord.service",
            "sssd.service",
        ]
        .into_iter()
        .map(|n| unit(n, "active"))
        .chain([missing("winbind.service")])
        .collect()
    }

    fn with(mut units: Vec<ServiceUnit>, replacement: ServiceUnit) -> Snapshot {
        for u in &mut units {
            if u.name == replacement.name {
                *u = replacement.clone();
            }
        }
        services(units)
    }

    #[test]
    fn vda_and_hdx_down_fire_critical() {
        let mut failed = unit("ctxvda.service", "failed");
        failed.result = Some("exit-code".into());
        let f = fires(&VDA_DOWN, &with(healthy(), failed));
        assert_eq!(f.title, "The VDA service ctxvda.service is failed");
        assert_eq!(f.subject, "ctxvda.service");
        let f = fires(&HDX_DOWN, &with(healthy(), unit("ctxhdx.service", "inactive")));
        assert_eq!(f.evidence["active_state"], "inactive");
    }

    #[test]
    fn vda_and_hdx_active_or_not_installed_pass() {
        passes(&VDA_DOWN, &services(healthy()));
        passes(&HDX_DOWN, &services(healthy()));
        passes(&VDA_DOWN, &with(healthy(), missing("ctxvda.service")));
    }

    #[test]
    fn vda_unit_rules_skip_without_services() {
        skipped(&VDA_DOWN, &snapshot_with(|_| {}));
        skipped(&HDX_DOWN, &services(vec![]));
    }

    #[test]
    fn other_citrix_unit_failed_fires_per_unit() {
        let mut units = healthy();
        units.push(unit("ctxcups.service", "failed"));
        units.push(unit("ctxjproxy.service", "inactive"));
        let found = fires_all(&OTHER_CITRIX_UNIT_DOWN, &services(units));
        let subjects: Vec<&str> = found.iter().map(|f| f.subject.as_str()).collect();
        assert_eq!(subjects, ["ctxcups.service", "ctxjproxy.service"]);
    }

    #[test]
    fn other_citrix_unit_disabled_on_purpose_passes() {
        let mut disabled = unit("ctxcups.service", "inactive");
        disabled.unit_file_state = Some("disabled".into());
        let mut units = healthy();
        units.push(disabled);
        // ctxvda's own rule covers ctxvda: no double finding here.
        units.push(unit("ctxvda.service", "failed"));
        passes(&OTHER_CITRIX_UNIT_DOWN, &services(units));
        skipped(&OTHER_CITRIX_UNIT_DOWN, &snapshot_with(|_| {}));
    }

    #[test]
    fn restart_storm_fires_for_units_and_the_monitor() {
        let mut flapping = unit("ctxhdx.service", "failed");
        flapping.restarts = Some(38);
        let mut snap = with(healthy(), flapping);
        snap.sections.vda = Some(VdaSection {
            monitor: Some(VdaMonitor {
                restarts_in_window: Some(27),
                restarts_by_process: vec![ProcessRestarts {
                    process: "ctxhdx".into(),
                    count: 27,
                }],
                xdping: None,
            }),
            registration: crate::sections::VdaRegistration {
                window_secs: 86_400,
                ..Default::default()
            },
            ..Default::default()
        });
        let found = fires_all(&RESTART_STORM, &snap);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].title,
            "ctxhdx.service restarted 38 times since it was loaded (systemd NRestarts)"
        );
        assert_eq!(
            found[1].title,
            "VDA key processes (ctxhdx x27) restarted 27 times in the last 24 h (ctxmonitord)"
        );
    }

    #[test]
    fn restarts_under_the_threshold_pass() {
        let mut few = unit("ctxjproxy.service", "active");
        few.restarts = Some(RESTART_STORM_UNIT - 1);
        passes(&RESTART_STORM, &with(healthy(), few));
        skipped(&RESTART_STORM, &snapshot_with(|_| {}));
    }

    #[test]
    fn identity_service_down_fires_when_none_runs() {
        let f = fires(
            &IDENTITY_SERVICE_DOWN,
            &with(healthy(), unit("sssd.service", "failed")),
        );
        assert_eq!(f.title, "Identity service sssd.service is installed but failed");
    }

    #[test]
    fn identity_service_judges_the_client_in_use() {
        // winbind inactive while sssd runs: winbind is unused, fine...
        let mut units = healthy();
        units.retain(|u| u.name != "winbind.service");
        units.push(unit("winbind.service", "inactive"));
        passes(&IDENTITY_SERVICE_DOWN, &services(units.clone()));
        // ...unless the domain membership says winbind is the client.
        let mut snap = services(units);
        snap.sections.identity = Some(IdentitySection {
            domain: Some(DomainMembership {
                client_software: Some("winbind".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        let f = fires(&IDENTITY_SERVICE_DOWN, &snap);
        assert_eq!(f.subject, "winbind.service");
    }

    #[test]
    fn identity_not_installed_passes() {
        let units = vec![missing("sssd.service"), missing("winbind.service")];
        passes(&IDENTITY_SERVICE_DOWN, &services(units));
        skipped(&IDENTITY_SERVICE_DOWN, &snapshot_with(|_| {}));
    }

    #[test]
    fn failed_units_fire_with_the_list() {
        let snap = snapshot_with(|s| {
            s.services = Some(ServicesSection {
                units: vec![],
                failed_units: vec!["backup.service".into(), "nfs-home.mount".into()],
                failed_units_total: 3,
            })
        });
        let f = fires(&FAILED_UNITS, &snap);
        assert_eq!(
            f.title,
            "3 systemd unit(s) failed: backup.service, nfs-home.mount, ..."
        );
    }

    #[test]
    fn no_failed_unit_passes() {
        passes(&FAILED_UNITS, &services(healthy()));
        skipped(&FAILED_UNITS, &snapshot_with(|_| {}));
    }
}
