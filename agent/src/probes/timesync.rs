//! `timesync` probe: is the clock synchronised, by how much is it off, and how much skew does
//! Kerberos tolerate?
//!
//! Asks chrony first (`chronyc -n tracking`: the offset and the leap status), then systemd
//! (`timedatectl show`: `NTPSynchronized`, the kernel's view whichever daemon keeps time), and takes
//! each fact from the first tool that knows it. `-n` keeps chronyc from resolving the reference's
//! name: a broken DNS must not cost the probe its time. Neither tool installed: no data. Installed
//! but not answering (daemon stopped, no systemd): the section says "unknown" (`None`).
//!
//! The Kerberos clock-skew tolerance comes from `clockskew` in `[libdefaults]` of `/etc/krb5.conf`
//! (and the files it includes); krb5.conf(5) gives 300 seconds as the default.

use callhome_shared::TimesyncSection;

use super::identity::{Krb5Conf, read_krb5_conf};
use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};

/// krb5.conf(5), `[libdefaults]` `clockskew`: "The default value is 300 seconds, or five minutes."
const DEFAULT_CLOCKSKEW_SECS: u64 = 300;

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let chrony = ctx.run(&["chronyc", "-n", "tracking"]);
    let timedatectl = ctx.run(&["timedatectl", "show"]);
    let not_installed =
        |r: &std::io::Result<_>| matches!(r, Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    if not_installed(&chrony) && not_installed(&timedatectl) {
        return Ok(ProbeOutput::NoData);
    }

    let mut section = TimesyncSection::default();
    if let Some(tracking) = chrony
        .ok()
        .filter(|o| o.success())
        .and_then(|o| parse_chrony_tracking(&o.stdout_text()))
    {
        section.sources.push("chronyc".into());
        section.synchronized = tracking.leap_status.as_deref().map(|s| s != NOT_SYNCHRONISED);
        section.offset_ms = tracking.offset_ms;
        section.leap_status = tracking.leap_status;
        section.reference = tracking.reference;
        section.stratum = tracking.stratum;
    }
    if let Some(show) = timedatectl
        .ok()
        .filter(|o| o.success())
        .map(|o| parse_timedatectl_show(&o.stdout_text()))
        .filter(|s| s.ntp_synchronized.is_some() || s.ntp.is_some())
    {
        section.sources.push("timedatectl".into());
        section.synchronized = section.synchronized.or(show.ntp_synchronized);
        section.ntp_enabled = show.ntp;
    }

    let krb5 = read_krb5_conf(ctx);
    let (secs, explicit) = clockskew(krb5.as_ref());
    section.kerberos_clockskew_secs = secs;
    section.kerberos_clockskew_explicit = explicit;
    Ok(ProbeOutput::Section(Section::Timesync(section)))
}

/// chrony's leap status when the clock is not synchronised (chronyc(1), `tracking`).
const NOT_SYNCHRONISED: &str = "Not synchronised";

#[derive(Debug, Default, PartialEq)]
struct ChronyTracking {
    reference: Option<String>,
    stratum: Option<u32>,
    offset_ms: Option<f64>,
    leap_status: Option<String>,
}

/// `chronyc tracking`: `Key : value` lines. "System time : 0.000012345 seconds fast of NTP time"
/// means the system clock is ahead (chronyc(1)); `None` when the output has none of the fields.
fn parse_chrony_tracking(text: &str) -> Option<ChronyTracking> {
    let mut t = ChronyTracking::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            // "C0A80101 (ntp1.example.com)": the name (or address) in parentheses, else the ID;
            // 00000000 is no reference at all (chronyc(1)).
            "Reference ID" => {
                let (id, name) = match value.split_once('(') {
                    Some((id, rest)) => (id.trim(), rest.trim_end_matches(')').trim()),
                    None => (value, ""),
                };
                t.reference = if !name.is_empty() {
                    Some(name.to_string())
                } else if !id.is_empty() && id != "00000000" {
                    Some(id.to_string())
                } else {
                    None
                };
            }
            "Stratum" => t.stratum = value.parse().ok(),
            "System time" => t.offset_ms = parse_system_time(value),
            "Leap status" => t.leap_status = (!value.is_empty()).then(|| value.to_string()),
            _ => {}
        }
    }
    (t != ChronyTracking::default()).then_some(t)
}

/// "0.000012345 seconds fast of NTP time" → +0.012 ms; "412.3 seconds slow ..." → -412300 ms.
fn parse_system_time(value: &str) -> Option<f64> {
    let mut parts = value.split_whitespace();
    let secs: f64 = parts.next()?.parse().ok()?;
    if parts.next() != Some("seconds") || !secs.is_finite() {
        return None;
    }
    let sign = match parts.next()? {
        "fast" => 1.0,
        "slow" => -1.0,
        _ => return None,
    };
    // Microsecond resolution is all a health check needs; it keeps the JSON short.
    Some((sign * secs * 1_000_000.0).round() / 1000.0)
}

#[derive(Debug, Default, PartialEq)]
struct TimedatectlShow {
    ntp: Option<bool>,
    ntp_synchronized: Option<bool>,
}

/// `timedatectl show`: `Property=value` lines (systemd 239 and later).
fn parse_timedatectl_show(text: &str) -> TimedatectlShow {
    let yes_no = |v: &str| match v.trim() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    };
    let mut s = TimedatectlShow::default();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("NTP", v)) => s.ntp = yes_no(v),
            Some(("NTPSynchronized", v)) => s.ntp_synchronized = yes_no(v),
            _ => {}
        }
    }
    s
}

/// The tolerated skew and whether it was set: `(Some(300), false)` when krb5.conf says nothing.
fn clockskew(krb5: Option<&Krb5Conf>) -> (Option<u64>, bool) {
    match krb5.and_then(|k| k.libdefault("clockskew")) {
        Some(value) => (parse_krb5_duration(value), true),
        None => (Some(DEFAULT_CLOCKSKEW_SECS), false),
    }
}

/// A krb5.conf(5) duration: seconds (`300`), `h:m[:s]` (`0:05:00`), or units (`5m`, `1h30m`,
/// `1d 2h`, `90s`).
fn parse_krb5_duration(value: &str) -> Option<u64> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(secs);
    }
    if v.contains(':') {
        let parts: Vec<u64> = v
            .split(':')
            .map(|p| p.trim().parse().ok())
            .collect::<Option<_>>()?;
        return match parts[..] {
            [h, m] => Some(h * 3600 + m * 60),
            [h, m, s] => Some(h * 3600 + m * 60 + s),
            _ => None,
        };
    }
    let mut total = 0u64;
    let mut number = String::new();
    let mut any = false;
    for c in v.chars() {
        match c {
            '0'..='9' => number.push(c),
            'd' | 'h' | 'm' | 's' => {
                let n: u64 = number.parse().ok()?;
                number.clear();
                let unit = match c {
                    'd' => 86_400,
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                total = total.checked_add(n.checked_mul(unit)?)?;
                any = true;
            }
            c if c.is_whitespace() && number.is_empty() => {}
            _ => return None,
        }
    }
    (any && number.is_empty()).then_some(total)
}

/// Every parser of this probe on one input, for the property tests and fuzz targets (`probes::fuzzing`).
pub(super) fn fuzz(_bytes: &[u8], text: &str, _now: time::OffsetDateTime) {
    std::hint::black_box(parse_chrony_tracking(text));
    std::hint::black_box(parse_timedatectl_show(text));
    for line in text.lines() {
        std::hint::black_box(parse_system_time(line));
        std::hint::black_box(parse_krb5_duration(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::testing;

    /// chronyc tracking on a RHEL 9 host in sync (chrony 4.5, `-n`).
    const TRACKING_OK: &str = "\
Reference ID    : 0A000A0B (10.0.10.11)
Stratum         : 3
Ref time (UTC)  : Fri Nov 20 08:58:31 2026
System time     : 0.000012345 seconds fast of NTP time
Last offset     : +0.000004321 seconds
RMS offset      : 0.000021456 seconds
Frequency       : 1.234 ppm slow
Residual freq   : +0.001 ppm
Skew            : 0.045 ppm
Root delay      : 0.001234567 seconds
Root dispersion : 0.000456789 seconds
Update interval : 64.2 seconds
Leap status     : Normal
";

    #[test]
    fn chrony_tracking_in_sync_and_off() {
        let t = parse_chrony_tracking(TRACKING_OK).unwrap();
        assert_eq!(t.reference.as_deref(), Some("10.0.10.11"));
        assert_eq!(t.stratum, Some(3));
        assert_eq!(t.offset_ms, Some(0.012));
        assert_eq!(t.leap_status.as_deref(), Some("Normal"));

        let off = "Reference ID    : 00000000 ()\nStratum         : 0\n\
                   System time     : 412.000381000 seconds slow of NTP time\n\
                   Leap status     : Not synchronised\n";
        let t = parse_chrony_tracking(off).unwrap();
        assert_eq!(t.reference, None);
        assert_eq!(t.offset_ms, Some(-412_000.381));
        assert_eq!(t.leap_status.as_deref(), Some(NOT_SYNCHRONISED));
    }

    #[test]
    fn chrony_daemon_down_or_garbage_is_no_answer() {
        assert_eq!(parse_chrony_tracking("506 Cannot talk to daemon\n"), None);
        assert_eq!(parse_chrony_tracking(""), None);
        assert_eq!(parse_system_time("fast seconds 3"), None);
        assert_eq!(parse_system_time("0.5 seconds sideways of NTP time"), None);
    }

    #[test]
    fn timedatectl_show_properties() {
        let s = parse_timedatectl_show(
            "Timezone=UTC\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized=no\n\
             TimeUSec=Fri 2026-11-20 09:00:00 UTC\n",
        );
        assert_eq!(
            s,
            TimedatectlShow {
                ntp: Some(true),
                ntp_synchronized: Some(false)
            }
        );
        assert_eq!(
            parse_timedatectl_show("Timezone=UTC\n"),
            TimedatectlShow::default()
        );
    }

    #[test]
    fn krb5_durations() {
        for (text, secs) in [
            ("300", Some(300)),
            ("5m", Some(300)),
            ("1h30m", Some(5400)),
            ("1d 2h", Some(93_600)),
            ("0:05:00", Some(300)),
            ("1:30", Some(5400)),
            ("90s", Some(90)),
            ("five minutes", None),
            ("5x", None),
            ("12m3", None),
            ("", None),
        ] {
            assert_eq!(parse_krb5_duration(text), secs, "{text}");
        }
    }

    #[test]
    fn clockskew_default_and_explicit() {
        assert_eq!(clockskew(None), (Some(300), false));
        let conf = Krb5Conf::parse("[libdefaults]\n clockskew = 120\n");
        assert_eq!(clockskew(Some(&conf)), (Some(120), true));
        let conf = Krb5Conf::parse("[libdefaults]\n default_realm = EXAMPLE.COM\n");
        assert_eq!(clockskew(Some(&conf)), (Some(300), false));
    }

    fn section_of(tree: &str) -> TimesyncSection {
        let Section::Timesync(s) = testing::section(probe, &testing::context(tree)) else {
            panic!("not a timesync section")
        };
        s
    }

    #[test]
    fn rpm_healthy_is_in_sync() {
        let s = section_of("rpm-healthy");
        assert_eq!(s.sources, ["chronyc", "timedatectl"]);
        assert_eq!(s.synchronized, Some(true));
        assert_eq!(s.offset_ms, Some(0.012));
        assert_eq!(s.ntp_enabled, Some(true));
        assert_eq!(s.reference.as_deref(), Some("10.0.10.11"));
        assert_eq!(s.stratum, Some(3));
        assert_eq!(s.kerberos_clockskew_secs, Some(300));
        assert!(!s.kerberos_clockskew_explicit);
    }

    #[test]
    fn deb_healthy_has_only_timedatectl_and_an_explicit_skew() {
        let s = section_of("deb-healthy");
        assert_eq!(s.sources, ["timedatectl"]);
        assert_eq!(s.synchronized, Some(true));
        assert_eq!(s.offset_ms, None);
        assert_eq!(s.leap_status, None);
        assert_eq!(s.kerberos_clockskew_secs, Some(300));
        assert!(s.kerberos_clockskew_explicit);
    }

    #[test]
    fn time_off_is_seven_minutes_slow() {
        let s = section_of("time-off");
        assert_eq!(s.synchronized, Some(false));
        assert_eq!(s.offset_ms, Some(-412_000.381));
        assert!(s.offset_ms.unwrap().abs() / 1000.0 > s.kerberos_clockskew_secs.unwrap() as f64);
        assert_eq!(s.leap_status.as_deref(), Some("Not synchronised"));
        assert_eq!(s.ntp_enabled, Some(true));
    }

    /// A context over a throwaway tree holding only `commands` (argv, stdout, status).
    fn bare_tree(commands: &[(&[&str], &str, i32)]) -> (tempfile::TempDir, ProbeContext) {
        testing::scratch_tree(commands, &[])
    }

    #[test]
    fn no_time_tool_is_no_data() {
        let (_dir, ctx) = bare_tree(&[]);
        assert_eq!(probe(&ctx), Ok(ProbeOutput::NoData));
    }

    #[test]
    fn tools_that_do_not_answer_leave_it_unknown() {
        let (_dir, ctx) = bare_tree(&[
            (&["chronyc", "-n", "tracking"], "506 Cannot talk to daemon\n", 1),
            (&["timedatectl", "show"], "", 1),
        ]);
        let Section::Timesync(s) = testing::section(probe, &ctx) else {
            panic!()
        };
        assert!(s.sources.is_empty());
        assert_eq!(s.synchronized, None);
        assert_eq!(s.offset_ms, None);
        // No krb5.conf in that tree: the library default.
        assert_eq!(
            (s.kerberos_clockskew_secs, s.kerberos_clockskew_explicit),
            (Some(300), false)
        );
    }
}
