//! `services` probe: state, restarts and since-when of the units a Linux VDA depends on, and the list
//! of failed units.
//!
//! One `systemctl show UNIT --property=...` per unit (systemctl(1)): `Property=value` lines. A unit
//! systemd does not know still answers, with `LoadState=not-found`: that is "not installed", not a
//! failure. Then `systemctl list-units --state=failed --no-legend --plain` for every failed unit.
//! A host without systemd (no `systemctl`, or systemctl that cannot reach PID 1) has no data here.
//!
//! Times come from the monotonic stamps (microseconds since boot) plus the boot time, not from the
//! wall-clock properties, which systemctl prints in the host's time zone as an ambiguous abbreviation
//! (`CET`); `--timestamp=utc` would fix that but needs systemd 248, newer than RHEL 8's.

use std::collections::HashMap;
use std::io;

use callhome_shared::{ServiceUnit, ServicesSection};
use time::{Duration, OffsetDateTime};

use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};

/// The units looked at. Citrix Linux VDA services (Citrix, "Linux VDA" documentation: `ctxvda` broker
/// agent, `ctxhdx` HDX and ICA listener, `ctxlogd` logging, `ctxmonitord` monitor service, `ctxcups`
/// printing, `ctxjproxy` Java proxy), the AD integration the VDA's Kerberos needs (`sssd` or
/// `winbind`), and the time services (Kerberos fails beyond 5 minutes of clock skew): chrony is
/// `chronyd` on RHEL and `chrony` on Debian and Ubuntu.
const UNITS: &[&str] = &[
    "ctxvda.service",
    "ctxhdx.service",
    "ctxlogd.service",
    "ctxmonitord.service",
    "ctxcups.service",
    "ctxjproxy.service",
    "sssd.service",
    "winbind.service",
    "chronyd.service",
    "chrony.service",
    "ntpd.service",
    "systemd-timesyncd.service",
];

/// The properties read. (One command per unit: all units and properties in one command line would
/// make a capture folder name longer than filesystems allow.)
const PROPERTIES: &str = "--property=LoadState,ActiveState,SubState,Result,UnitFileState,NRestarts,\
ActiveEnterTimestampMonotonic,StateChangeTimestampMonotonic";

/// Failed units listed by name in the section; the total is always given.
const MAX_FAILED_LISTED: usize = 20;

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let boot_time = boot_time(ctx);
    let mut units = Vec::with_capacity(UNITS.len());
    for name in UNITS {
        let show = match ctx.run(&["systemctl", "show", name, PROPERTIES]) {
            Ok(out) => out,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ProbeOutput::NoData),
            Err(e) => return Err(ProbeFailure(format!("cannot run systemctl show {name}: {e}"))),
        };
        if !show.success() {
            let stderr = show.stderr_text();
            if no_systemd(&stderr) {
                return Ok(ProbeOutput::NoData);
            }
            return Err(ProbeFailure(format!(
                "systemctl show {name} exited with {:?}: {}",
                show.status,
                stderr.trim()
            )));
        }
        units.push(unit(name, &parse_show(&show.stdout_text()), boot_time));
    }

    let failed = ctx
        .run(&[
            "systemctl",
            "list-units",
            "--state=failed",
            "--no-legend",
            "--plain",
        ])
        .map_err(|e| ProbeFailure(format!("cannot run systemctl list-units: {e}")))?;
    if !failed.success() {
        return Err(ProbeFailure(format!(
            "systemctl list-units exited with {:?}: {}",
            failed.status,
            failed.stderr_text().trim()
        )));
    }
    let all_failed = parse_failed_units(&failed.stdout_text());
    Ok(ProbeOutput::Section(Section::Services(ServicesSection {
        units,
        failed_units_total: u32::try_from(all_failed.len()).unwrap_or(u32::MAX),
        failed_units: all_failed.into_iter().take(MAX_FAILED_LISTED).collect(),
    })))
}

/// Whether systemctl says this host is not run by systemd (a container, a chroot, another init).
fn no_systemd(stderr: &str) -> bool {
    stderr.contains("not been booted with systemd")
        || stderr.contains("Failed to connect to bus")
        || stderr.contains("Failed to get D-Bus connection")
}

/// When the host booted, to whole seconds: now minus `/proc/uptime` (the clock systemd's monotonic
/// stamps count from), else `btime` of `/proc/stat`.
fn boot_time(ctx: &ProbeContext) -> Option<OffsetDateTime> {
    let uptime = ctx
        .read_text("/proc/uptime")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()?
                .split('.')
                .next()?
                .parse::<i64>()
                .ok()
        })
        .filter(|s| *s >= 0);
    if let Some(secs) = uptime {
        return Some(ctx.now().replace_nanosecond(0).ok()? - Duration::seconds(secs));
    }
    ctx.read_text("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
}

/// The `Property=value` lines of `systemctl show`.
fn parse_show(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            Some((key.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// A unit from its properties; one systemd does not know is "not installed".
fn unit(name: &str, props: &HashMap<String, String>, boot: Option<OffsetDateTime>) -> ServiceUnit {
    let get = |key: &str| props.get(key).filter(|v| !v.is_empty()).cloned();
    let load_state = get("LoadState").unwrap_or_else(|| "unknown".into());
    if load_state == "not-found" || load_state == "unknown" {
        return ServiceUnit {
            name: name.to_string(),
            installed: false,
            load_state,
            ..ServiceUnit::default()
        };
    }
    let active_state = get("ActiveState");
    let stamp = if active_state.as_deref() == Some("active") {
        "ActiveEnterTimestampMonotonic"
    } else {
        "StateChangeTimestampMonotonic"
    };
    // 0 means "never".
    let since = get(stamp)
        .and_then(|m| m.parse::<i64>().ok())
        .filter(|m| *m > 0)
        .and_then(|micros| Some(boot? + Duration::seconds(micros / 1_000_000)));
    ServiceUnit {
        name: name.to_string(),
        installed: true,
        load_state,
        active_state,
        sub_state: get("SubState"),
        result: get("Result"),
        unit_file_state: get("UnitFileState"),
        restarts: get("NRestarts").and_then(|n| n.parse().ok()),
        since,
    }
}

/// Unit names of `systemctl list-units --plain --no-legend` (first column; older systemd may still put
/// a `●` marker before failed units).
fn parse_failed_units(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let mut first = fields.next()?;
            if first == "●" || first == "*" {
                first = fields.next()?;
            }
            Some(first.to_string())
        })
        .collect()
}

/// Every parser of this probe on one input, for the property tests and fuzz targets (`probes::fuzzing`).
pub(super) fn fuzz(_bytes: &[u8], text: &str, now: OffsetDateTime) {
    let props = parse_show(text);
    std::hint::black_box(unit("fuzz.service", &props, Some(now - Duration::hours(1))));
    std::hint::black_box(parse_failed_units(text));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::testing;
    use time::macros::datetime;

    // `systemctl show` prints the properties in D-Bus order (service interface first), not in the
    // order of --property.
    const SHOW_ACTIVE: &str = "Result=success
NRestarts=0
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled
StateChangeTimestampMonotonic=41234567
ActiveEnterTimestampMonotonic=41234567
";
    const SHOW_FAILED: &str = "Result=core-dump
NRestarts=38
LoadState=loaded
ActiveState=failed
SubState=failed
UnitFileState=enabled
StateChangeTimestampMonotonic=862267000000
ActiveEnterTimestampMonotonic=860320000000
";
    const SHOW_NOT_FOUND: &str = "Result=success
NRestarts=0
LoadState=not-found
ActiveState=inactive
SubState=dead
UnitFileState=
StateChangeTimestampMonotonic=0
ActiveEnterTimestampMonotonic=0
";

    #[test]
    fn show_output_becomes_a_unit() {
        let boot = Some(datetime!(2026-11-10 09:00:00 UTC));
        let vda = unit("ctxvda.service", &parse_show(SHOW_ACTIVE), boot);
        assert!(vda.installed);
        assert_eq!(vda.active_state.as_deref(), Some("active"));
        assert_eq!(vda.sub_state.as_deref(), Some("running"));
        assert_eq!(vda.restarts, Some(0));
        assert_eq!(vda.since, Some(datetime!(2026-11-10 09:00:41 UTC)));

        // Not active: since its last state change, not since it last became active.
        let hdx = unit("ctxhdx.service", &parse_show(SHOW_FAILED), boot);
        assert_eq!(hdx.active_state.as_deref(), Some("failed"));
        assert_eq!(hdx.result.as_deref(), Some("core-dump"));
        assert_eq!(hdx.restarts, Some(38));
        assert_eq!(hdx.since, Some(datetime!(2026-11-20 08:31:07 UTC)));
        assert_eq!(unit("ctxhdx.service", &parse_show(SHOW_FAILED), None).since, None);

        assert_eq!(
            unit("ctxjproxy.service", &parse_show(SHOW_NOT_FOUND), boot),
            ServiceUnit {
                name: "ctxjproxy.service".into(),
                installed: false,
                load_state: "not-found".into(),
                ..ServiceUnit::default()
            }
        );
        let garbage = unit("ntpd.service", &parse_show("no properties here\n"), boot);
        assert_eq!(
            (garbage.installed, garbage.load_state.as_str()),
            (false, "unknown")
        );
    }

    #[test]
    fn failed_lists_and_missing_systemd() {
        assert_eq!(
            parse_failed_units(
                "ctxhdx.service loaded failed failed Citrix HDX Service\n● kdump.service loaded failed failed Crash recovery kernel arming\n\n"
            ),
            vec!["ctxhdx.service", "kdump.service"]
        );
        assert!(parse_failed_units("").is_empty());
        assert!(no_systemd(
            "System has not been booted with systemd as init system (PID 1). Can't operate.\nFailed to connect to bus: Host is down\n"
        ));
        assert!(!no_systemd("Unknown command verb shw."));
    }

    fn services(tree: &str) -> ServicesSection {
        let Section::Services(s) = testing::section(probe, &testing::context(tree)) else {
            panic!("not a services section")
        };
        s
    }

    fn find<'a>(s: &'a ServicesSection, name: &str) -> &'a ServiceUnit {
        s.units
            .iter()
            .find(|u| u.name == name)
            .unwrap_or_else(|| panic!("no {name}"))
    }

    #[test]
    fn rpm_healthy_services_are_active() {
        let s = services("rpm-healthy");
        assert_eq!(s.units.len(), UNITS.len());
        for name in [
            "ctxvda.service",
            "ctxhdx.service",
            "ctxlogd.service",
            "ctxmonitord.service",
            "ctxcups.service",
            "ctxjproxy.service",
            "sssd.service",
            "chronyd.service",
        ] {
            let u = find(&s, name);
            assert!(u.installed, "{name}");
            assert_eq!(u.active_state.as_deref(), Some("active"), "{name}");
            assert_eq!(u.unit_file_state.as_deref(), Some("enabled"), "{name}");
            assert_eq!(u.restarts, Some(0), "{name}");
        }
        assert_eq!(
            find(&s, "ctxvda.service").since,
            Some(datetime!(2026-11-10 09:00:41 UTC))
        );
        for name in [
            "winbind.service",
            "chrony.service",
            "ntpd.service",
            "systemd-timesyncd.service",
        ] {
            let u = find(&s, name);
            assert!(!u.installed && u.load_state == "not-found", "{name}");
        }
        assert!(s.failed_units.is_empty());
        assert_eq!(s.failed_units_total, 0);
    }

    #[test]
    fn deb_healthy_uses_timesyncd() {
        let s = services("deb-healthy");
        let timesyncd = find(&s, "systemd-timesyncd.service");
        assert_eq!(timesyncd.active_state.as_deref(), Some("active"));
        assert_eq!(timesyncd.sub_state.as_deref(), Some("running"));
        assert!(!find(&s, "chronyd.service").installed);
        assert!(!find(&s, "chrony.service").installed);
        assert_eq!(find(&s, "sssd.service").active_state.as_deref(), Some("active"));
        assert_eq!(find(&s, "ctxhdx.service").active_state.as_deref(), Some("active"));
        assert!(s.failed_units.is_empty());
    }

    #[test]
    fn service_flapping_shows_the_failed_hdx() {
        let s = services("service-flapping");
        let hdx = find(&s, "ctxhdx.service");
        assert_eq!(hdx.active_state.as_deref(), Some("failed"));
        assert_eq!(hdx.sub_state.as_deref(), Some("failed"));
        assert_eq!(hdx.result.as_deref(), Some("core-dump"));
        assert_eq!(hdx.restarts, Some(38));
        assert_eq!(hdx.since, Some(datetime!(2026-11-20 08:31:07 UTC)));
        assert_eq!(find(&s, "ctxvda.service").active_state.as_deref(), Some("active"));
        assert_eq!(s.failed_units, vec!["ctxhdx.service"]);
        assert_eq!(s.failed_units_total, 1);
    }

    #[test]
    fn vda_unregistered_has_chronyd_stopped() {
        let s = services("vda-unregistered");
        let chronyd = find(&s, "chronyd.service");
        assert!(chronyd.installed);
        assert_eq!(chronyd.active_state.as_deref(), Some("inactive"));
        assert_eq!(chronyd.sub_state.as_deref(), Some("dead"));
        assert_eq!(chronyd.unit_file_state.as_deref(), Some("disabled"));
        assert_eq!(find(&s, "ctxvda.service").active_state.as_deref(), Some("active"));
        assert!(s.failed_units.is_empty());
    }

    #[test]
    fn a_tree_without_systemctl_has_no_data() {
        assert_eq!(probe(&testing::context("disk-full")), Ok(ProbeOutput::NoData));
    }

    #[test]
    fn live_host_reports_cleanly() {
        let ctx = crate::probes::testing::live();
        // This machine may have no systemd: then no data; with systemd, a section. Never an error.
        match probe(&ctx) {
            Ok(ProbeOutput::NoData) => {}
            Ok(ProbeOutput::Section(Section::Services(s))) => assert_eq!(s.units.len(), UNITS.len()),
            other => panic!("{other:?}"),
        }
    }
}
