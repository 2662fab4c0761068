//! `memory_pressure` probe: pressure stall information and OOM kills.
//!
//! - `/proc/pressure/{cpu,memory,io}`: PSI, Linux 4.20+ (Documentation/accounting/psi.rst). A
//!   kernel without PSI (older, or booted with `psi=0`) has no such files, or refuses to read them
//!   (`EOPNOTSUPP`): those fields are `None`, not a failure.
//! - `/proc/vmstat` `oom_kill`: OOM kills since boot (Linux 4.13+).
//! - The names of the processes killed in the last 24 h, from the kernel log, with one bounded query:
//!   `journalctl -k -q --no-pager -o short-iso --since=-24h --lines=100 --grep "Killed process"`.
//!   `--grep` needs a journalctl built with PCRE2 (systemd 237+); without it, or without journalctl,
//!   the list is `None`. The kernel writes `Out of memory: Killed process PID (NAME) ...` (older
//!   kernels `Killed process PID (NAME) ...`, and cgroup OOMs `Memory cgroup out of memory: Killed
//!   process ...`); journalctl exits 1 when nothing matches.

use callhome_shared::{MemoryPressureSection, OomKill, Pressure, PressureFigures};
use time::OffsetDateTime;

use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};
use crate::source::CommandOutput;

/// The journalctl query for OOM kills: relative `--since` (not an absolute time from `ctx.now()`)
/// so that a capture replays with the same command key; the window is re-applied on `ctx.now()`.
const OOM_QUERY: &[&str] = &[
    "journalctl",
    "-k",
    "-q",
    "--no-pager",
    "-o",
    "short-iso",
    "--since=-24h",
    "--lines=100",
    "--grep",
    "Killed process",
];

const MAX_OOM_KILLS: usize = 20;

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let pressure = |what: &str| {
        ctx.read_text(&format!("/proc/pressure/{what}"))
            .ok()
            .and_then(|text| parse_pressure(&text))
            .map(Box::new)
    };
    let oom_kills_since_boot = ctx
        .read_text("/proc/vmstat")
        .ok()
        .and_then(|text| parse_vmstat_oom_kill(&text));
    let oom_kills_recent = ctx.run(OOM_QUERY).ok().and_then(|out| {
        searched(&out).then(|| {
            let window_start = ctx.now() - time::Duration::hours(24);
            let mut kills: Vec<OomKill> = parse_oom_kills(&out.stdout_text())
                .into_iter()
                .filter(|k| k.time >= window_start && k.time <= ctx.now())
                .collect();
            kills.sort_by_key(|k| std::cmp::Reverse(k.time));
            kills.truncate(MAX_OOM_KILLS);
            kills
        })
    });
    Ok(ProbeOutput::Section(Section::MemoryPressure(
        MemoryPressureSection {
            cpu: pressure("cpu"),
            memory: pressure("memory"),
            io: pressure("io"),
            oom_kills_since_boot,
            oom_kills_recent,
        },
    )))
}

/// journalctl exits 0 on matches and 1, silently (with `-q`), on none. Anything else (a journalctl
/// without pattern support, no access to the journal, a signal) means the log could not be searched.
fn searched(out: &CommandOutput) -> bool {
    out.success() || (out.status == Some(1) && out.stderr_text().trim().is_empty())
}

/// A PSI file: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and (usually) a `full` line.
fn parse_pressure(text: &str) -> Option<Pressure> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let slot = match parts.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
        for kv in parts {
            match kv.split_once('=') {
                Some(("avg10", v)) => avg10 = v.parse::<f64>().ok(),
                Some(("avg60", v)) => avg60 = v.parse::<f64>().ok(),
                Some(("avg300", v)) => avg300 = v.parse::<f64>().ok(),
                Some(("total", v)) => total = v.parse::<u64>().ok(),
                _ => {}
            }
        }
        if let (Some(avg10), Some(avg60), Some(avg300), Some(total_us)) = (avg10, avg60, avg300, total) {
            *slot = Some(PressureFigures {
                avg10,
                avg60,
                avg300,
                total_us,
            });
        }
    }
    Some(Pressure { some: some?, full })
}

fn parse_vmstat_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// `journalctl -o short-iso` lines such as
/// `2026-11-19T14:02:11+0000 vda-rh01 kernel: Out of memory: Killed process 4242 (ctxgfx) total-vm:...`.
fn parse_oom_kills(text: &str) -> Vec<OomKill> {
    text.lines()
        .filter_map(|line| {
            let (stamp, rest) = line.split_once(' ')?;
            let time = parse_short_iso(stamp)?;
            let after = &rest[rest.find("Killed process ")? + "Killed process ".len()..];
            let (pid, after) = after.split_once(' ')?;
            let pid: u32 = pid.parse().ok()?;
            let name = after.strip_prefix('(')?;
            let process = name[..name.find(')')?].to_string();
            Some(OomKill { time, pid, process })
        })
        .collect()
}

/// journalctl's `short-iso` time, `2026-11-19T14:02:11+0000` (also `+00:00`, and `short-iso-precise`
/// fractions).
fn parse_short_iso(stamp: &str) -> Option<OffsetDateTime> {
    let (date_time, sign, offset) = match stamp.rfind(['+', '-']) {
        Some(i) if i > 10 => (&stamp[..i], &stamp[i..=i], &stamp[i + 1..]),
        _ => return None,
    };
    let digits: String = offset.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 4 {
        return None;
    }
    let rfc3339 = format!("{date_time}{sign}{}:{}", &digits[..2], &digits[2..]);
    OffsetDateTime::parse(&rfc3339, &time::format_description::well_known::Rfc3339).ok()
}

/// Every parser of this probe on one input, for the property tests and fuzz targets (`probes::fuzzing`).
pub(super) fn fuzz(_bytes: &[u8], text: &str, _now: OffsetDateTime) {
    std::hint::black_box(parse_pressure(text));
    std::hint::black_box(parse_vmstat_oom_kill(text));
    std::hint::black_box(parse_oom_kills(text));
    for line in text.lines() {
        std::hint::black_box(parse_short_iso(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::testing;

    const PSI_MEMORY: &str = "some avg10=1.25 avg60=0.80 avg300=0.33 total=14876542\nfull avg10=0.50 avg60=0.20 avg300=0.10 total=6234118\n";

    #[test]
    fn psi_files_parse_with_and_without_full() {
        let p = parse_pressure(PSI_MEMORY).unwrap();
        assert_eq!(p.some.avg10, 1.25);
        assert_eq!(p.some.total_us, 14_876_542);
        assert_eq!(p.full.unwrap().avg300, 0.10);
        // CPU before Linux 5.13 has no `full` line.
        let cpu = parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap();
        assert!(cpu.full.is_none());
        assert!(parse_pressure("").is_none());
        assert!(parse_pressure("some avg10=x avg60=0 avg300=0 total=0\n").is_none());
    }

    #[test]
    fn vmstat_oom_kill() {
        assert_eq!(
            parse_vmstat_oom_kill("nr_free_pages 12345\noom_kill 3\nnuma_hit 9\n"),
            Some(3)
        );
        // Kernels before 4.13 do not count.
        assert_eq!(parse_vmstat_oom_kill("nr_free_pages 12345\n"), None);
    }

    #[test]
    fn oom_kill_lines_of_new_old_and_cgroup_kernels() {
        let log = "\
2026-11-19T14:02:11+0000 vda-rh01 kernel: Out of memory: Killed process 4242 (ctxgfx) total-vm:2458716kB, anon-rss:1830420kB, file-rss:0kB, shmem-rss:0kB, UID:1001 pgtables:3900kB oom_score_adj:0
2026-11-19T15:10:00+01:00 vda-rh01 kernel: Memory cgroup out of memory: Killed process 5151 (java) total-vm:1kB
2026-11-18T01:00:00+0000 vda-rh01 kernel: Killed process 99 (ctxhdx) total-vm:1kB, anon-rss:1kB
-- No entries --
garbage line
2026-11-19T14:02:11+0000 vda-rh01 kernel: Killed process notanumber (x)
";
        let kills = parse_oom_kills(log);
        assert_eq!(kills.len(), 3, "{kills:?}");
        assert_eq!((kills[0].pid, kills[0].process.as_str()), (4242, "ctxgfx"));
        assert_eq!(kills[0].time, time::macros::datetime!(2026-11-19 14:02:11 UTC));
        assert_eq!(kills[1].time, time::macros::datetime!(2026-11-19 14:10:00 UTC));
        assert_eq!(kills[2].process, "ctxhdx");
    }

    #[test]
    fn only_a_clean_exit_or_a_silent_no_match_means_the_log_was_searched() {
        let out = |status, stderr: &str| CommandOutput {
            status,
            stdout: vec![],
            stderr: stderr.as_bytes().to_vec(),
        };
        assert!(searched(&out(Some(0), "")));
        assert!(searched(&out(Some(1), "")));
        assert!(!searched(&out(
            Some(1),
            "Compiled without pattern matching support\n"
        )));
        assert!(!searched(&out(
            Some(1),
            "No journal files were opened due to insufficient permissions.\n"
        )));
        assert!(!searched(&out(None, "")));
    }

    /// RHEL 9 ships PSI disabled (`psi=1` on the kernel command line enables it): no
    /// `/proc/pressure`, which is not a failure.
    #[test]
    fn rpm_fixture_has_no_psi_and_one_ctx_oom_kill_in_the_window() {
        let Section::MemoryPressure(s) = testing::section(probe, &testing::context("rpm-healthy")) else {
            panic!()
        };
        assert!(s.cpu.is_none() && s.memory.is_none() && s.io.is_none());
        assert_eq!(s.oom_kills_since_boot, Some(2));
        // The fixture's journal also holds a kill older than 24 h: the window drops it.
        let kills = s.oom_kills_recent.unwrap();
        assert_eq!(kills.len(), 1, "{kills:?}");
        assert_eq!((kills[0].pid, kills[0].process.as_str()), (48_213, "ctxgfx"));
    }

    #[test]
    fn deb_fixture_has_psi_and_a_journal_without_oom_kills() {
        let Section::MemoryPressure(s) = testing::section(probe, &testing::context("deb-healthy")) else {
            panic!()
        };
        let memory = s.memory.unwrap();
        assert_eq!(memory.some.avg60, 0.80);
        assert_eq!(memory.full.unwrap().total_us, 6_234_118);
        assert_eq!(s.cpu.unwrap().full.unwrap().total_us, 0);
        assert_eq!(s.io.unwrap().some.total_us, 48_211_930);
        assert_eq!(s.oom_kills_since_boot, Some(0));
        assert_eq!(s.oom_kills_recent, Some(vec![]));
    }

    #[test]
    fn a_journal_query_that_did_not_finish_leaves_names_unknown() {
        let Section::MemoryPressure(s) = testing::section(probe, &testing::context("disk-full")) else {
            panic!()
        };
        assert_eq!(s.oom_kills_since_boot, Some(2));
        assert_eq!(s.oom_kills_recent, None);
    }
}
