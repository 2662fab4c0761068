//! `system` probe: OS, kernel, architecture, uptime, CPUs, load average, memory and swap.
//!
//! Read from `/proc` and `/etc/os-release` through the host source (as node_exporter does), so that a
//! tree answers exactly like the live host: `/proc/meminfo`, `/proc/loadavg`, `/proc/uptime`,
//! `/proc/stat` (`btime`), `/proc/cpuinfo`, `/proc/sys/kernel/osrelease`, and `uname -m`.

use std::collections::{BTreeSet, HashMap};

use callhome_shared::{LoadAverage, MemoryInfo, SystemSection};
use time::OffsetDateTime;

use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let read = |path: &str| ctx.read_text(path).map_err(|e| ProbeFailure::reading(path, &e));
    let meminfo_text = read("/proc/meminfo")?;
    let meminfo = parse_meminfo(&meminfo_text);
    let memory = memory_of(&meminfo).ok_or_else(|| ProbeFailure("/proc/meminfo has no MemTotal".into()))?;
    let load_average = parse_loadavg(&read("/proc/loadavg")?)
        .ok_or_else(|| ProbeFailure("/proc/loadavg is malformed".into()))?;
    let uptime_secs = parse_uptime(&read("/proc/uptime")?)
        .ok_or_else(|| ProbeFailure("/proc/uptime is malformed".into()))?;
    let boot_time = read("/proc/stat")
        .ok()
        .and_then(|s| parse_btime(&s))
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .unwrap_or_else(|| {
            ctx.now() - time::Duration::seconds(i64::try_from(uptime_secs).unwrap_or(i64::MAX))
        });
    let (cpu_count, physical_cores) = ctx
        .read_text("/proc/cpuinfo")
        .map(|s| parse_cpuinfo(&s))
        .unwrap_or((0, None));
    let os = ctx
        .read_text("/etc/os-release")
        .or_else(|_| ctx.read_text("/usr/lib/os-release"));
    let os = os.map(|s| parse_os_release(&s)).unwrap_or_default();
    let kernel = ctx
        .read_text("/proc/sys/kernel/osrelease")
        .ok()
        .map(|s| s.trim().to_string());
    let arch = ctx
        .run(&["uname", "-m"])
        .ok()
        .filter(|o| o.success())
        .map(|o| o.stdout_text().trim().to_string())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "unknown".into());

    Ok(ProbeOutput::Section(Section::System(SystemSection {
        os_name: os.get("NAME").cloned(),
        os_version: os.get("VERSION_ID").cloned(),
        kernel,
        arch,
        uptime_secs,
        boot_time,
        cpu_count,
        physical_cores,
        load_average,
        memory,
    })))
}

/// `/proc/meminfo` as bytes per key (the file says kB, meaning KiB).
fn parse_meminfo(text: &str) -> HashMap<&str, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let mut parts = rest.split_whitespace();
            let value: u64 = parts.next()?.parse().ok()?;
            let factor = if parts.next() == Some("kB") { 1024 } else { 1 };
            Some((key.trim(), value.saturating_mul(factor)))
        })
        .collect()
}

fn memory_of(m: &HashMap<&str, u64>) -> Option<MemoryInfo> {
    let total = *m.get("MemTotal")?;
    // MemAvailable exists since Linux 3.14; older kernels: free + buffers + cache, as free(1) did.
    let available = m.get("MemAvailable").copied().unwrap_or_else(|| {
        ["MemFree", "Buffers", "Cached"]
            .iter()
            .filter_map(|k| m.get(k))
            .sum()
    });
    Some(MemoryInfo {
        total_bytes: total,
        available_bytes: available.min(total),
        used_bytes: total.saturating_sub(available),
        swap_total_bytes: m.get("SwapTotal").copied().unwrap_or(0),
        swap_free_bytes: m.get("SwapFree").copied().unwrap_or(0),
    })
}

fn parse_loadavg(text: &str) -> Option<LoadAverage> {
    let mut parts = text.split_whitespace().map(str::parse::<f64>);
    Some(LoadAverage {
        one: parts.next()?.ok()?,
        five: parts.next()?.ok()?,
        fifteen: parts.next()?.ok()?,
    })
}

fn parse_uptime(text: &str) -> Option<u64> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
}

fn parse_btime(stat: &str) -> Option<i64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// Logical CPUs (`processor` entries) and physical cores (distinct `physical id`/`core id` pairs,
/// absent on some architectures and in some VMs).
fn parse_cpuinfo(text: &str) -> (u32, Option<u32>) {
    let mut logical = 0u32;
    let mut cores = BTreeSet::new();
    let (mut physical_id, mut core_id) = (None, None);
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if let (Some(p), Some(c)) = (physical_id.take(), core_id.take()) {
                cores.insert((p, c));
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "processor" => logical += 1,
            "physical id" => physical_id = Some(value.trim().to_string()),
            "core id" => core_id = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let physical = (!cores.is_empty()).then(|| u32::try_from(cores.len()).unwrap_or(u32::MAX));
    (logical, physical)
}

/// `KEY=value` lines of os-release(5), quotes removed.
pub(crate) fn parse_os_release(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (k, v) = line.trim().split_once('=')?;
            if k.starts_with('#') {
                return None;
            }
            let v = v.trim().trim_matches('"').trim_matches('\'');
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Every parser of this probe on one input, for the property tests and fuzz targets (`probes::fuzzing`).
pub(super) fn fuzz(_bytes: &[u8], text: &str, _now: OffsetDateTime) {
    std::hint::black_box(memory_of(&parse_meminfo(text)));
    std::hint::black_box(parse_loadavg(text));
    std::hint::black_box(parse_uptime(text));
    std::hint::black_box(parse_btime(text));
    std::hint::black_box(parse_cpuinfo(text));
    std::hint::black_box(parse_os_release(text));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::testing;

    const MEMINFO: &str = "MemTotal:       16266452 kB\nMemFree:         1021344 kB\nMemAvailable:    9876544 kB\nBuffers:          123456 kB\nCached:          7000000 kB\nSwapTotal:       2097148 kB\nSwapFree:        2000000 kB\nHugePages_Total:       0\n";

    #[test]
    fn meminfo_in_bytes_with_available_and_swap() {
        let m = memory_of(&parse_meminfo(MEMINFO)).unwrap();
        assert_eq!(m.total_bytes, 16_266_452 * 1024);
        assert_eq!(m.available_bytes, 9_876_544 * 1024);
        assert_eq!(m.used_bytes, (16_266_452 - 9_876_544) * 1024);
        assert_eq!(
            (m.swap_total_bytes, m.swap_free_bytes),
            (2_097_148 * 1024, 2_000_000 * 1024)
        );
    }

    #[test]
    fn old_kernels_without_memavailable_use_free_buffers_cached() {
        let old = MEMINFO.replace("MemAvailable:    9876544 kB\n", "");
        let m = memory_of(&parse_meminfo(&old)).unwrap();
        assert_eq!(m.available_bytes, (1_021_344 + 123_456 + 7_000_000) * 1024);
        assert!(memory_of(&parse_meminfo("garbage")).is_none());
    }

    #[test]
    fn loadavg_uptime_btime() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 2/1234 5678\n").unwrap().fifteen,
            0.59
        );
        assert!(parse_loadavg("0.5\n").is_none());
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350_735));
        assert_eq!(parse_uptime("-1 0"), None);
        assert_eq!(
            parse_btime("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn cpuinfo_counts_logical_and_physical() {
        let two_cores_ht = (0..4)
            .map(|i| format!("processor\t: {i}\nphysical id\t: 0\ncore id\t\t: {}\n\n", i % 2))
            .collect::<String>();
        assert_eq!(parse_cpuinfo(&two_cores_ht), (4, Some(2)));
        assert_eq!(parse_cpuinfo("processor : 0\nprocessor : 1\n"), (2, None));
    }

    #[test]
    fn os_release_quotes_and_comments() {
        let os = parse_os_release("# c\nNAME=\"Red Hat Enterprise Linux\"\nVERSION_ID='9.4'\nID=rhel\n");
        assert_eq!(os["NAME"], "Red Hat Enterprise Linux");
        assert_eq!(os["VERSION_ID"], "9.4");
        assert!(!os.contains_key("# c"));
    }

    #[test]
    fn live_host_gives_sane_values() {
        let ctx = crate::probes::testing::live();
        let Section::System(s) = testing::section(probe, &ctx) else {
            panic!("not a system section")
        };
        assert!(s.cpu_count > 0, "{s:?}");
        assert!(
            s.memory.total_bytes > 0 && s.memory.available_bytes <= s.memory.total_bytes,
            "{s:?}"
        );
        assert!(!s.arch.is_empty() && s.arch != "unknown");
        assert!(s.boot_time < OffsetDateTime::now_utc());
        assert!(s.kernel.is_some_and(|k| !k.is_empty()));
    }

    #[test]
    fn rpm_fixture_values() {
        let Section::System(s) = testing::section(probe, &testing::context("rpm-healthy")) else {
            panic!()
        };
        assert_eq!(s.os_name.as_deref(), Some("Red Hat Enterprise Linux"));
        assert_eq!(s.os_version.as_deref(), Some("9.4"));
        assert_eq!(s.kernel.as_deref(), Some("5.14.0-427.13.1.el9_4.x86_64"));
        assert_eq!(s.arch, "x86_64");
        assert_eq!(s.cpu_count, 4);
        assert_eq!(s.memory.total_bytes, 16_266_452 * 1024);
        assert_eq!(s.uptime_secs, 864_000);
    }
}
