//! Area MEM: the OOM killer, memory pressure and swap. An OOM-killed `ctx*` process is a session or
//! the VDA itself gone; sustained pressure is sessions that stall before anything is killed.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::sections::OomKill;
use crate::snapshot::Snapshot;

/// MEM-PRESSURE-001 fires when some task stalled on memory more than this share of the last 5 minutes
/// (PSI `memory some avg300`, percent). A healthy host stays under 1 %; a tenth of wall time lost to
/// reclaim and swap-in, sustained over 5 minutes, is felt as lag in every session.
pub const PSI_SOME_AVG300_MAX: f64 = 10.0;
/// ... or when available memory is under this share of the total, in percent.
pub const AVAILABLE_MIN_PERCENT: f64 = 10.0;
/// MEM-SWAP-001 fires when free swap is under this share of the swap space, in percent.
pub const SWAP_FREE_MIN_PERCENT: f64 = 10.0;

const OOM_REFERENCE: &str = "https://docs.kernel.org/admin-guide/sysctl/vm.html#oom-kill-allocating-task";

pub const OOM_CITRIX: HostRule = HostRule {
    info: RuleInfo {
        id: "MEM-OOM-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "The OOM killer killed {process} {kills} times in 24 h",
        rationale: "When the kernel runs out of memory it kills a process: a killed `ctx*` process is a \
            user's session (ctxgfx, ctxhdx) or a VDA service gone without warning.",
        remediation: "Size the host for its sessions (memory per session times the peak sessions, plus \
            the OS), limit sessions per host in the delivery group, and look for a leaking process \
            (`ps aux --sort=-rss | head`) before the next kill.",
        reference: OOM_REFERENCE,
        evidence: &["process", "kills", "last_kill"],
    },
    eval: oom_citrix,
};

pub const OOM_OTHER: HostRule = HostRule {
    info: RuleInfo {
        id: "MEM-OOM-002",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::Medium,
        title: "The OOM killer killed {process} {kills} times in 24 h",
        rationale: "An OOM kill of any process means the host ran out of memory: the next one may hit a \
            session or a VDA service, and users' applications die in the meantime.",
        remediation: "Find what exhausted memory (`journalctl -k | grep -A20 'invoked oom-killer'` lists \
            the largest processes at the time), cap or fix it, and size the host for its peak load.",
        reference: OOM_REFERENCE,
        evidence: &["process", "kills", "last_kill"],
    },
    eval: oom_other,
};

pub const PRESSURE: HostRule = HostRule {
    info: RuleInfo {
        id: "MEM-PRESSURE-001",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::Medium,
        title: "Memory pressure: {reason}",
        rationale: "When tasks stall waiting for memory (reclaim, swap-in), sessions freeze and input \
            lags long before the OOM killer acts; with under 10 % available memory, one more session \
            tips the host over.",
        remediation: "Lower the sessions per host, add memory, or find the largest consumers \
            (`ps aux --sort=-rss | head`); check `/proc/pressure/memory` over a working day.",
        reference: "https://docs.kernel.org/accounting/psi.html",
        evidence: &["reason", "psi_some_avg300", "available_percent"],
    },
    eval: pressure,
};

pub const SWAP: HostRule = HostRule {
    info: RuleInfo {
        id: "MEM-SWAP-001",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::Medium,
        title: "Swap nearly exhausted: {swap_free_percent} % free",
        rationale: "Swap that is almost full means memory was short for long; once it runs out, the next \
            allocation peak ends in an OOM kill.",
        remediation: "Reduce the memory load (fewer sessions per host, fix leaking processes) or add \
            memory; more swap only postpones the problem and slows the sessions.",
        reference: "https://docs.redhat.com/en/documentation/red_hat_enterprise_linux/9/html/managing_storage_devices/getting-started-with-swap_managing-storage-devices",
        evidence: &["swap_free_percent", "swap_free_bytes", "swap_total_bytes"],
    },
    eval: swap,
};

fn is_citrix(process: &str) -> bool {
    process.starts_with("ctx")
}

/// One hit per killed process name that `wanted` accepts, with its count and latest kill.
fn oom_kills(s: &Snapshot, wanted: fn(&str) -> bool) -> Outcome {
    let Some(kills) = s
        .sections
        .memory_pressure
        .as_ref()
        .and_then(|m| m.oom_kills_recent.as_ref())
    else {
        return Outcome::Skipped;
    };
    let since = s.collected_at - time::Duration::hours(24);
    let mut by_process: BTreeMap<&str, (u64, OffsetDateTime)> = BTreeMap::new();
    for OomKill { time, process, .. } in kills.iter().filter(|k| k.time > since && wanted(&k.process)) {
        let entry = by_process.entry(process.as_str()).or_insert((0, *time));
        entry.0 += 1;
        entry.1 = entry.1.max(*time);
    }
    Outcome::Hits(
        by_process
            .into_iter()
            .map(|(process, (kills, last))| {
                Hit::about(process)
                    .with("process", process)
                    .with("kills", kills)
                    .with("last_kill", rfc3339(last))
            })
            .collect(),
    )
}

fn rfc3339(t: OffsetDateTime) -> Option<String> {
    t.format(&time::format_description::well_known::Rfc3339).ok()
}

fn oom_citrix(s: &Snapshot) -> Outcome {
    oom_kills(s, is_citrix)
}

fn oom_other(s: &Snapshot) -> Outcome {
    oom_kills(s, |p| !is_citrix(p))
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn pressure(s: &Snapshot) -> Outcome {
    let psi = s
        .sections
        .memory_pressure
        .as_ref()
        .and_then(|m| m.memory.as_ref())
        .map(|p| p.some.avg300);
    let available = s
        .sections
        .system
        .as_ref()
        .map(|sys| sys.memory)
        .filter(|m| m.total_bytes > 0)
        .map(|m| round1(m.available_bytes as f64 * 100.0 / m.total_bytes as f64));
    if psi.is_none() && available.is_none() {
        return Outcome::Skipped;
    }
    let mut reasons = Vec::new();
    if let Some(p) = psi.filter(|p| *p > PSI_SOME_AVG300_MAX) {
        reasons.push(format!("tasks stalled on memory {p} % of the last 5 minutes"));
    }
    if let Some(a) = available.filter(|a| *a < AVAILABLE_MIN_PERCENT) {
        reasons.push(format!("only {a} % of memory available"));
    }
    Outcome::fire_if(!reasons.is_empty(), || {
        Hit::host_wide()
            .with("reason", reasons.join("; "))
            .with("psi_some_avg300", psi)
            .with("available_percent", available)
    })
}

fn swap(s: &Snapshot) -> Outcome {
    let Some(sys) = &s.sections.system else {
        return Outcome::Skipped;
    };
    let m = sys.memory;
    // No swap configured: nothing to exhaust (pressure shows up in MEM-PRESSURE-001 instead).
    if m.swap_total_bytes == 0 {
        return Outcome::pass();
    }
    let free = round1(m.swap_free_bytes as f64 * 100.0 / m.swap_total_bytes as f64);
    Outcome::fire_if(free < SWAP_FREE_MIN_PERCENT, || {
        Hit::host_wide()
            .with("swap_free_percent", free)
            .with("swap_free_bytes", m.swap_free_bytes)
            .with("swap_total_bytes", m.swap_total_bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{COLLECTED_AT, fires, fires_all, passes, skipped, snapshot_with};
    use crate::sections::{
        LoadAverage, MemoryInfo, MemoryPressureSection, Pressure, PressureFigures, SystemSection,
    };

    const GIB: u64 = 1 << 30;

    fn kill(process: &str, hours_ago: i64) -> OomKill {
        OomKill {
            time: COLLECTED_AT - time::Duration::hours(hours_ago),
            pid: 4242,
            process: process.to_owned(),
        }
    }

    fn ooms(kills: Option<Vec<OomKill>>) -> Snapshot {
        snapshot_with(|s| {
            s.memory_pressure = Some(MemoryPressureSection {
                oom_kills_recent: kills,
                ..Default::default()
            })
        })
    }

    #[test]
    fn citrix_oom_kills_fire_per_process() {
        let s = ooms(Some(vec![
            kill("ctxgfx", 1),
            kill("firefox", 2),
            kill("ctxgfx", 5),
            kill("ctxhdx", 3),
        ]));
        let found = fires_all(&OOM_CITRIX, &s);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].subject, "ctxgfx");
        assert_eq!(found[0].title, "The OOM killer killed ctxgfx 2 times in 24 h");
        assert_eq!(found[0].evidence["last_kill"], "2026-11-20T08:00:00Z");
        let other = fires(&OOM_OTHER, &s);
        assert_eq!(other.subject, "firefox");
    }

    #[test]
    fn oom_rules_pass_without_kills_in_the_window() {
        let s = ooms(Some(vec![kill("ctxgfx", 30)]));
        passes(&OOM_CITRIX, &s);
        passes(&OOM_OTHER, &ooms(Some(vec![kill("ctxgfx", 1)])));
        passes(&OOM_OTHER, &ooms(Some(Vec::new())));
    }

    #[test]
    fn oom_rules_skip_when_the_kernel_log_was_not_searched() {
        skipped(&OOM_CITRIX, &ooms(None));
        skipped(&OOM_OTHER, &snapshot_with(|_| {}));
    }

    fn system(available: u64, swap_total: u64, swap_free: u64) -> SystemSection {
        SystemSection {
            os_name: None,
            os_version: None,
            kernel: None,
            arch: "x86_64".to_owned(),
            uptime_secs: 3600,
            boot_time: COLLECTED_AT - time::Duration::hours(1),
            cpu_count: 8,
            physical_cores: None,
            load_average: LoadAverage {
                one: 1.0,
                five: 1.0,
                fifteen: 1.0,
            },
            memory: MemoryInfo {
                total_bytes: 32 * GIB,
                available_bytes: available,
                used_bytes: 32 * GIB - available,
                swap_total_bytes: swap_total,
                swap_free_bytes: swap_free,
            },
        }
    }

    fn psi(avg300: f64) -> MemoryPressureSection {
        let figures = PressureFigures {
            avg10: avg300,
            avg60: avg300,
            avg300,
            total_us: 1,
        };
        MemoryPressureSection {
            memory: Some(Box::new(Pressure {
                some: figures,
                full: Some(figures),
            })),
            ..Default::default()
        }
    }

    #[test]
    fn pressure_fires_on_psi_or_low_available_memory() {
        let s = snapshot_with(|s| s.memory_pressure = Some(psi(22.5)));
        let f = fires(&PRESSURE, &s);
        assert_eq!(
            f.title,
            "Memory pressure: tasks stalled on memory 22.5 % of the last 5 minutes"
        );
        let s = snapshot_with(|s| s.system = Some(system(2 * GIB, 0, 0)));
        let f = fires(&PRESSURE, &s);
        assert_eq!(f.title, "Memory pressure: only 6.3 % of memory available");
        assert_eq!(f.evidence["psi_some_avg300"], serde_json::Value::Null);
    }

    #[test]
    fn pressure_passes_on_a_calm_host_and_skips_without_inputs() {
        let s = snapshot_with(|s| {
            s.memory_pressure = Some(psi(3.0));
            s.system = Some(system(16 * GIB, 0, 0));
        });
        passes(&PRESSURE, &s);
        skipped(&PRESSURE, &snapshot_with(|_| {}));
        // PSI unavailable (old kernel) and no system section: nothing to judge.
        skipped(
            &PRESSURE,
            &snapshot_with(|s| s.memory_pressure = Some(MemoryPressureSection::default())),
        );
    }

    #[test]
    fn swap_fires_when_nearly_full() {
        let s = snapshot_with(|s| s.system = Some(system(16 * GIB, 8 * GIB, GIB / 2)));
        let f = fires(&SWAP, &s);
        assert_eq!(f.title, "Swap nearly exhausted: 6.3 % free");
    }

    #[test]
    fn swap_passes_when_free_or_absent_and_skips_without_system() {
        passes(
            &SWAP,
            &snapshot_with(|s| s.system = Some(system(16 * GIB, 8 * GIB, 4 * GIB))),
        );
        passes(&SWAP, &snapshot_with(|s| s.system = Some(system(16 * GIB, 0, 0))));
        skipped(&SWAP, &snapshot_with(|_| {}));
    }
}
