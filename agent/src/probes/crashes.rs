//! `crashes` probe: core dumps of Citrix processes in the 7 days before the snapshot.
//!
//! Sources, first found wins:
//! - systemd-coredump, through `coredumpctl --no-pager --json=short --since=-7d list` (JSON since
//!   systemd 246: `time` in µs since the epoch, `pid`, `sig` as a number, `corefile`, `exe`); an
//!   older coredumpctl refuses `--json` and is asked for its table instead
//!   (`--no-legend ... list`: `Thu 2026-11-19 14:02:11 UTC PID UID GID SIG COREFILE EXE [SIZE]`,
//!   local time, SIG a number before systemd 250 and a name after). "No coredumps found." (exit 1)
//!   is an empty list.
//! - apport (Ubuntu's default), `/var/crash/*.crash`, named after the executable's path with `/`
//!   written `_` and the uid: `_opt_Citrix_VDA_bin_ctxgfx.1001.crash`; its mtime is the crash time.
//!
//! Neither present: `NoData` (this host keeps no crash records the agent can read; a rule must
//! treat that as unknown, not as "no crashes"). A coredumpctl that exists but cannot read the
//! journal is a failure.
//!
//! `--since=-7d` only bounds the output (relative, so that a capture replays with the same
//! command key); the window is applied again on `ctx.now()`. Citrix means an executable whose name
//! starts with `ctx` or that lives under `/opt/Citrix/`.

use std::collections::BTreeMap;
use std::io;

use callhome_shared::{Crash, CrashCount, CrashesSection};
use time::{OffsetDateTime, UtcOffset};

use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};
use crate::source::CommandOutput;

const WINDOW: time::Duration = time::Duration::days(7);
const MAX_RECENT: usize = 10;
const JSON_LIST: &[&str] = &["coredumpctl", "--no-pager", "--json=short", "--since=-7d", "list"];
const TEXT_LIST: &[&str] = &["coredumpctl", "--no-pager", "--no-legend", "--since=-7d", "list"];
const APPORT_DIR: &str = "/var/crash";

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let (source, crashes) = match coredumpctl(ctx)? {
        Some(crashes) => ("coredumpctl", crashes),
        None => match apport(ctx) {
            Some(crashes) => ("apport", crashes),
            None => return Ok(ProbeOutput::NoData),
        },
    };
    Ok(ProbeOutput::Section(Section::Crashes(summarise(
        source,
        crashes,
        ctx.now(),
    ))))
}

/// `None`: coredumpctl is not installed.
fn coredumpctl(ctx: &ProbeContext) -> Result<Option<Vec<Crash>>, ProbeFailure> {
    let out = match ctx.run(JSON_LIST) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ProbeFailure(format!("coredumpctl: {e}"))),
        Ok(out) => out,
    };
    if out.success() {
        return parse_json_list(&out.stdout)
            .map(Some)
            .map_err(|e| ProbeFailure(format!("coredumpctl --json: {e}")));
    }
    if no_coredumps(&out) {
        return Ok(Some(Vec::new()));
    }
    // Before systemd 246 there is no --json: ask for the table.
    let out = ctx
        .run(TEXT_LIST)
        .map_err(|e| ProbeFailure(format!("coredumpctl: {e}")))?;
    if out.success() {
        let offset = super::logs::host_utc_offset(ctx);
        return Ok(Some(parse_text_list(&out.stdout_text(), offset)));
    }
    if no_coredumps(&out) {
        return Ok(Some(Vec::new()));
    }
    Err(ProbeFailure(format!(
        "coredumpctl exited with {:?}: {}",
        out.status,
        out.stderr_text().trim()
    )))
}

fn no_coredumps(out: &CommandOutput) -> bool {
    out.status == Some(1) && out.stderr_text().contains("No coredumps found")
}

/// `None`: no `/var/crash`.
fn apport(ctx: &ProbeContext) -> Option<Vec<Crash>> {
    let entries = ctx.source.list_dir(APPORT_DIR).ok()?;
    Some(
        entries
            .iter()
            .filter(|e| !e.metadata.is_dir)
            .filter_map(|e| {
                let executable = apport_executable(&e.name)?;
                Some(Crash {
                    time: e.metadata.modified?,
                    executable,
                    pid: None,
                    signal: None,
                    corefile: None,
                })
            })
            .collect(),
    )
}

/// `_opt_Citrix_VDA_bin_ctxgfx.1001.crash` → `/opt/Citrix/VDA/bin/ctxgfx` (apport writes the path
/// with `/` as `_`; an `_` of the name itself cannot be told apart).
fn apport_executable(file_name: &str) -> Option<String> {
    let stem = file_name.strip_suffix(".crash")?;
    let (mangled, uid) = stem.rsplit_once('.')?;
    uid.parse::<u32>().ok()?;
    mangled.starts_with('_').then(|| mangled.replace('_', "/"))
}

fn parse_json_list(stdout: &[u8]) -> Result<Vec<Crash>, serde_json::Error> {
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_slice(stdout)?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            // Column names are lower-case in JSON; accept the table's upper-case ones too.
            let get = |k: &str| row.get(k).or_else(|| row.get(&k.to_ascii_uppercase()));
            let usec = get("time")?.as_u64()?;
            let time = OffsetDateTime::from_unix_timestamp_nanos(i128::from(usec) * 1000).ok()?;
            Some(Crash {
                time,
                executable: get("exe")?.as_str()?.to_string(),
                pid: get("pid")
                    .and_then(serde_json::Value::as_u64)
                    .and_then(|p| u32::try_from(p).ok()),
                signal: get("sig").and_then(|s| match s {
                    serde_json::Value::Number(n) => n.as_i64().map(signal_name),
                    serde_json::Value::String(s) => Some(s.clone()),
                    _ => None,
                }),
                corefile: get("corefile").and_then(|c| c.as_str()).map(str::to_string),
            })
        })
        .collect())
}

/// coredumpctl's table without legend; times are local, with a zone abbreviation that only `UTC`
/// and `GMT` make unambiguous, so other zones are taken as the host's current `offset`.
fn parse_text_list(text: &str, offset: UtcOffset) -> Vec<Crash> {
    let date_time = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    text.lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 {
                return None;
            }
            let local =
                time::PrimitiveDateTime::parse(&format!("{} {}", cols[1], cols[2]), date_time).ok()?;
            let zone = if matches!(cols[3], "UTC" | "GMT") {
                UtcOffset::UTC
            } else {
                offset
            };
            let mut exe_end = cols.len();
            if cols.len() > 10 && looks_like_size(cols[cols.len() - 1]) {
                exe_end -= 1;
            }
            let signal = match cols[7].parse::<i64>() {
                Ok(n) => signal_name(n),
                Err(_) => cols[7].to_string(),
            };
            Some(Crash {
                time: local.assume_offset(zone),
                executable: cols[9..exe_end].join(" "),
                pid: cols[4].parse().ok(),
                signal: Some(signal),
                corefile: Some(cols[8].to_string()),
            })
        })
        .collect()
}

fn looks_like_size(s: &str) -> bool {
    s == "n/a" || (s.starts_with(|c: char| c.is_ascii_digit()) && s.ends_with(['B', 'K', 'M', 'G', 'T']))
}

/// signal(7) numbers on x86 and ARM, for the signals that end processes with a core.
fn signal_name(n: i64) -> String {
    let name = match n {
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        11 => "SIGSEGV",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return n.to_string(),
    };
    name.to_string()
}

fn is_citrix(executable: &str) -> bool {
    let base = executable.rsplit('/').next().unwrap_or(executable);
    base.starts_with("ctx") || executable.starts_with("/opt/Citrix/")
}

fn summarise(source: &str, crashes: Vec<Crash>, now: OffsetDateTime) -> CrashesSection {
    let start = now - WINDOW;
    let (mut citrix, other): (Vec<Crash>, Vec<Crash>) = crashes
        .into_iter()
        .filter(|c| c.time >= start && c.time <= now)
        .partition(|c| is_citrix(&c.executable));
    let mut counts: BTreeMap<&str, (u64, OffsetDateTime)> = BTreeMap::new();
    for c in &citrix {
        let entry = counts.entry(c.executable.as_str()).or_insert((0, c.time));
        entry.0 += 1;
        entry.1 = entry.1.max(c.time);
    }
    let mut by_executable: Vec<CrashCount> = counts
        .into_iter()
        .map(|(executable, (count, last))| CrashCount {
            executable: executable.to_string(),
            count,
            last,
        })
        .collect();
    by_executable.sort_by(|a, b| b.count.cmp(&a.count).then(b.last.cmp(&a.last)));
    let citrix_crashes = citrix.len() as u64;
    citrix.sort_by_key(|c| std::cmp::Reverse(c.time));
    citrix.truncate(MAX_RECENT);
    CrashesSection {
        source: Some(source.to_string()),
        window_secs: WINDOW.whole_seconds().unsigned_abs(),
        citrix_crashes,
        other_crashes: other.len() as u64,
        by_executable,
        recent: citrix,
    }
}

/// Every parser of this probe on one input, for the property tests and fuzz targets (`probes::fuzzing`).
pub(super) fn fuzz(bytes: &[u8], text: &str, now: OffsetDateTime) {
    if let Ok(crashes) = parse_json_list(bytes) {
        std::hint::black_box(summarise("coredumpctl", crashes, now));
    }
    let crashes = parse_text_list(text, UtcOffset::UTC);
    std::hint::black_box(summarise("coredumpctl", crashes, now));
    for line in text.lines() {
        std::hint::black_box(apport_executable(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::testing;
    use time::macros::{datetime, offset};

    #[test]
    fn json_list_of_systemd_252() {
        let json = br#"[{"time":1795096931000000,"pid":48213,"uid":1001,"gid":1001,"sig":11,"corefile":"present","exe":"/opt/Citrix/VDA/bin/ctxgfx","size":18234112},
{"time":1795000000123456,"pid":2211,"uid":0,"gid":0,"sig":6,"corefile":"missing","exe":"/usr/bin/gnome-shell","size":null},
{"pid":1}]"#;
        let crashes = parse_json_list(json).unwrap();
        assert_eq!(crashes.len(), 2);
        assert_eq!(crashes[0].time, datetime!(2026-11-19 14:02:11 UTC));
        assert_eq!(crashes[0].signal.as_deref(), Some("SIGSEGV"));
        assert_eq!(crashes[0].pid, Some(48213));
        assert_eq!(crashes[1].corefile.as_deref(), Some("missing"));
        assert_eq!(crashes[1].signal.as_deref(), Some("SIGABRT"));
        assert!(parse_json_list(b"No coredumps found.").is_err());
    }

    #[test]
    fn text_list_old_and_new_columns() {
        let text = "\
Thu 2026-11-19 14:02:11 UTC   48213  1001  1001  11 present   /opt/Citrix/VDA/bin/ctxgfx
Thu 2026-11-19 15:02:11 CET   48999  1001  1001 SIGABRT present /opt/Citrix/VDA/bin/ctxhdx 3.2M
Thu 2026-11-19 15:02:11 CET   nonsense
";
        let crashes = parse_text_list(text, offset!(+1));
        assert_eq!(crashes.len(), 2, "{crashes:?}");
        assert_eq!(crashes[0].time, datetime!(2026-11-19 14:02:11 UTC));
        assert_eq!(crashes[0].signal.as_deref(), Some("SIGSEGV"));
        assert_eq!(crashes[1].time, datetime!(2026-11-19 14:02:11 UTC));
        assert_eq!(crashes[1].executable, "/opt/Citrix/VDA/bin/ctxhdx");
        assert_eq!(crashes[1].signal.as_deref(), Some("SIGABRT"));
    }

    #[test]
    fn apport_names_and_citrix_executables() {
        assert_eq!(
            apport_executable("_opt_Citrix_VDA_bin_ctxgfx.1001.crash").as_deref(),
            Some("/opt/Citrix/VDA/bin/ctxgfx")
        );
        assert_eq!(apport_executable("_usr_bin_foo.crash"), None);
        assert_eq!(apport_executable("_usr_bin_foo.1000.upload"), None);
        assert!(is_citrix("/opt/Citrix/VDA/bin/ctxgfx"));
        assert!(is_citrix("/usr/local/bin/ctxfoo"));
        assert!(is_citrix("/opt/Citrix/VDA/lib64/java"));
        assert!(!is_citrix("/usr/bin/gnome-shell"));
    }

    #[test]
    fn disk_full_has_citrix_crashes_counted_per_executable_in_the_window() {
        let Section::Crashes(s) = testing::section(probe, &testing::context("disk-full")) else {
            panic!()
        };
        assert_eq!(s.source.as_deref(), Some("coredumpctl"));
        assert_eq!(s.window_secs, 7 * 86_400);
        // Four Citrix dumps, one of them older than 7 days.
        assert_eq!(s.citrix_crashes, 3);
        assert_eq!(s.other_crashes, 1);
        assert_eq!(s.by_executable.len(), 2);
        assert_eq!(s.by_executable[0].executable, "/opt/Citrix/VDA/bin/ctxgfx");
        assert_eq!(s.by_executable[0].count, 2);
        assert_eq!(s.by_executable[0].last, datetime!(2026-11-19 14:02:11.412008 UTC));
        assert_eq!(s.recent[0].time, datetime!(2026-11-19 14:02:11.412008 UTC));
        assert_eq!(s.recent.len(), 3);
    }

    #[test]
    fn rpm_healthy_has_no_citrix_crash() {
        let Section::Crashes(s) = testing::section(probe, &testing::context("rpm-healthy")) else {
            panic!()
        };
        assert_eq!((s.citrix_crashes, s.other_crashes), (0, 1));
        assert!(s.recent.is_empty() && s.by_executable.is_empty());
    }

    #[test]
    fn ubuntu_without_coredumpctl_reads_apport() {
        let Section::Crashes(s) = testing::section(probe, &testing::context("deb-healthy")) else {
            panic!()
        };
        assert_eq!(s.source.as_deref(), Some("apport"));
        assert_eq!((s.citrix_crashes, s.other_crashes), (0, 1));
    }
}
