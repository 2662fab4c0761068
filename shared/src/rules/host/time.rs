//! Area TIME: clock synchronisation. Kerberos (so AD logons and VDA registration) fails once the
//! clock is off by more than the tolerated skew.

use serde_json::Value;

use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::sections::ServicesSection;
use crate::snapshot::Snapshot;

/// The time daemons the `services` probe looks at (chrony is `chronyd` on RHEL, `chrony` on Debian).
const TIME_UNITS: &[&str] = &[
    "chronyd.service",
    "chrony.service",
    "ntpd.service",
    "systemd-timesyncd.service",
];

pub const SKEW_OVER_KERBEROS: HostRule = HostRule {
    info: RuleInfo {
        id: "TIME-SKEW-001",
        scope: Scope::Host,
        severity: Severity::Critical,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "Clock is off by {offset_secs} s, over the Kerberos skew of {clockskew_secs} s",
        rationale: "Kerberos refuses tickets when the clock differs from the domain controller's by more \
            than the tolerated skew: the VDA cannot register with its Delivery Controllers and users \
            cannot log on.",
        remediation: "Synchronise the clock with the domain's time source (chronyd or ntpd pointing at a \
            domain controller), check `chronyc tracking`, then restart the VDA services.",
        reference: "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/installation-overview/manual-installation-overview.html",
        evidence: &["offset_secs", "clockskew_secs"],
    },
    eval: skew_over_kerberos,
};

fn skew_over_kerberos(s: &Snapshot) -> Outcome {
    let Some(t) = &s.sections.timesync else {
        return Outcome::Skipped;
    };
    let (Some(offset_ms), Some(skew)) = (t.offset_ms, t.kerberos_clockskew_secs) else {
        return Outcome::Skipped;
    };
    let offset_secs = (offset_ms / 1000.0).abs();
    Outcome::fire_if(offset_secs > skew as f64, || {
        Hit::host_wide()
            .with("offset_secs", (offset_secs * 10.0).round() / 10.0)
            .with("clockskew_secs", skew)
    })
}

pub const CLOCK_NOT_SYNCHRONISED: HostRule = HostRule {
    info: RuleInfo {
        id: "TIME-SYNC-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::Medium,
        impact: Rating::High,
        title: "Clock is not synchronised to a time source (leap status: {leap_status})",
        rationale: "An unsynchronised clock drifts freely: once it is off by more than the Kerberos skew \
            (5 minutes by default) the VDA can no longer register with its Delivery Controllers and \
            domain logons fail. Nothing warns before that moment.",
        remediation: "Check the time service (`chronyc tracking`, `chronyc sources -v`, `timedatectl`): \
            point it at the domain controllers or the site's NTP servers, open UDP 123 to them, and \
            wait for `Leap status: Normal`.",
        reference: "https://docs.redhat.com/en/documentation/red_hat_enterprise_linux/9/html/configuring_basic_system_settings/configuring-time-synchronization_configuring-basic-system-settings",
        evidence: &["synchronized", "leap_status", "sources"],
    },
    eval: clock_not_synchronised,
};

fn clock_not_synchronised(s: &Snapshot) -> Outcome {
    let Some(t) = &s.sections.timesync else {
        return Outcome::Skipped;
    };
    let Some(synchronized) = t.synchronized else {
        return Outcome::Skipped;
    };
    Outcome::fire_if(!synchronized, || {
        Hit::host_wide()
            .with("synchronized", false)
            .with(
                "leap_status",
                t.leap_status.clone().unwrap_or_else(|| "unknown".into()),
            )
            .with("sources", t.sources.join(", "))
    })
}

pub const NO_NTP_CLIENT: HostRule = HostRule {
    info: RuleInfo {
        id: "TIME-NTP-001",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::High,
        title: "No NTP client keeps the clock ({detail})",
        rationale: "Without an NTP client the clock drifts by seconds a day; within weeks it passes the \
            Kerberos skew and the VDA drops its registration. The clock may be right today, so this is \
            a latent fault, not an outage.",
        remediation: "Enable a time service that follows the domain's time source: `systemctl enable \
            --now chronyd` (RHEL) or `chrony` (Debian, Ubuntu), or `timedatectl set-ntp true` for \
            systemd-timesyncd.",
        reference: "https://www.freedesktop.org/software/systemd/man/latest/timedatectl.html",
        evidence: &["ntp_enabled", "time_units_active", "detail"],
    },
    eval: no_ntp_client,
};

/// Installed time daemons that are active; `None` when the services section is absent.
fn active_time_units(services: Option<&ServicesSection>) -> Option<Vec<String>> {
    let services = services?;
    Some(
        services
            .units
            .iter()
            .filter(|u| u.installed && TIME_UNITS.contains(&u.name.as_str()))
            .filter(|u| u.active_state.as_deref() == Some("active"))
            .map(|u| u.name.clone())
            .collect(),
    )
}

/// `timedatectl`'s `NTP` is the first witness; an active time daemon overrules its `no` (timedated
/// only knows the units its `ntp-units.d` lists), and the services alone decide when timedatectl did
/// not answer.
fn no_ntp_client(s: &Snapshot) -> Outcome {
    let ntp_enabled = s.sections.timesync.as_ref().and_then(|t| t.ntp_enabled);
    let active = active_time_units(s.sections.services.as_ref());
    let detail = match (ntp_enabled, &active) {
        (Some(true), _) => None,
        (_, Some(units)) if !units.is_empty() => None,
        (Some(false), None) => Some("timedatectl reports NTP disabled"),
        (Some(false), Some(_)) => Some("timedatectl reports NTP disabled and no time service is active"),
        (None, Some(_)) => Some("no time service is active"),
        (None, None) => return Outcome::Skipped,
    };
    Outcome::fire_if(detail.is_some(), || {
        Hit::host_wide()
            .with("ntp_enabled", ntp_enabled.map_or(Value::Null, Value::from))
            .with("time_units_active", active.map_or(Value::Null, Value::from))
            .with("detail", detail.unwrap_or_default())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{fires, passes, skipped, snapshot_with};
    use crate::sections::{ServiceUnit, TimesyncSection};

    fn timesync(offset_ms: Option<f64>) -> Snapshot {
        snapshot_with(|s| {
            s.timesync = Some(TimesyncSection {
                offset_ms,
                kerberos_clockskew_secs: Some(300),
                ..Default::default()
            })
        })
    }

    #[test]
    fn fires_past_the_skew() {
        let f = fires(&SKEW_OVER_KERBEROS, &timesync(Some(-301_000.0)));
        assert_eq!(f.evidence["offset_secs"], 301.0);
        assert_eq!(
            f.title,
            "Clock is off by 301.0 s, over the Kerberos skew of 300 s"
        );
    }

    #[test]
    fn passes_within_the_skew() {
        passes(&SKEW_OVER_KERBEROS, &timesync(Some(299_000.0)));
    }

    #[test]
    fn skipped_without_an_offset() {
        skipped(&SKEW_OVER_KERBEROS, &timesync(None));
    }

    fn sync_state(synchronized: Option<bool>, ntp_enabled: Option<bool>) -> Snapshot {
        snapshot_with(|s| {
            s.timesync = Some(TimesyncSection {
                sources: vec!["chronyc".into(), "timedatectl".into()],
                synchronized,
                ntp_enabled,
                leap_status: synchronized.map(|y| if y { "Normal" } else { "Not synchronised" }.into()),
                ..Default::default()
            })
        })
    }

    fn time_unit(name: &str, installed: bool, active: &str) -> ServiceUnit {
        ServiceUnit {
            name: name.into(),
            installed,
            load_state: if installed { "loaded" } else { "not-found" }.into(),
            active_state: installed.then(|| active.into()),
            ..Default::default()
        }
    }

    fn with_services(mut snap: Snapshot, units: Vec<ServiceUnit>) -> Snapshot {
        snap.sections.services = Some(ServicesSection {
            units,
            ..Default::default()
        });
        snap
    }

    #[test]
    fn unsynchronised_clock_fires() {
        let f = fires(&CLOCK_NOT_SYNCHRONISED, &sync_state(Some(false), Some(true)));
        assert_eq!(
            f.title,
            "Clock is not synchronised to a time source (leap status: Not synchronised)"
        );
        assert_eq!(f.evidence["sources"], "chronyc, timedatectl");
    }

    #[test]
    fn synchronised_clock_passes() {
        passes(&CLOCK_NOT_SYNCHRONISED, &sync_state(Some(true), Some(true)));
    }

    #[test]
    fn sync_unknown_is_skipped() {
        skipped(&CLOCK_NOT_SYNCHRONISED, &sync_state(None, Some(true)));
        skipped(&CLOCK_NOT_SYNCHRONISED, &snapshot_with(|_| {}));
    }

    #[test]
    fn ntp_disabled_fires() {
        let f = fires(&NO_NTP_CLIENT, &sync_state(Some(true), Some(false)));
        assert_eq!(f.evidence["ntp_enabled"], false);
        assert_eq!(
            f.title,
            "No NTP client keeps the clock (timedatectl reports NTP disabled)"
        );
    }

    #[test]
    fn only_stopped_time_services_fire_without_timedatectl() {
        // As on the vda-unregistered fixture: chronyd installed but stopped, no timesync section.
        let snap = with_services(
            snapshot_with(|_| {}),
            vec![
                time_unit("chronyd.service", true, "inactive"),
                time_unit("ntpd.service", false, ""),
            ],
        );
        let f = fires(&NO_NTP_CLIENT, &snap);
        assert_eq!(f.evidence["time_units_active"], serde_json::json!([]));
        assert_eq!(f.evidence["ntp_enabled"], Value::Null);
    }

    #[test]
    fn ntp_enabled_or_an_active_daemon_passes() {
        passes(&NO_NTP_CLIENT, &sync_state(Some(true), Some(true)));
        // timedatectl says no, but chronyd runs (timedated did not know the unit).
        let snap = with_services(
            sync_state(Some(true), Some(false)),
            vec![time_unit("chronyd.service", true, "active")],
        );
        passes(&NO_NTP_CLIENT, &snap);
    }

    #[test]
    fn ntp_unknown_is_skipped() {
        skipped(&NO_NTP_CLIENT, &sync_state(Some(true), None));
        skipped(&NO_NTP_CLIENT, &snapshot_with(|_| {}));
    }
}
