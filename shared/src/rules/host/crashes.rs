//! Area CRASH: core dumps in the last 7 days. A crashing `ctx*` process is a session or a VDA service
//! that died; other crashes are context (a desktop application, a system daemon).

use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::snapshot::Snapshot;

const COREDUMP_REFERENCE: &str = "https://man7.org/linux/man-pages/man1/coredumpctl.1.html";

pub const CORE_CITRIX: HostRule = HostRule {
    info: RuleInfo {
        id: "CRASH-CORE-001",
        scope: Scope::Host,
        severity: Severity::High,
        likelihood: Rating::High,
        impact: Rating::High,
        title: "{process} crashed {crashes} times in {window_days} days",
        rationale: "A `ctx*` process that dumps core ends a user's session (ctxgfx, ctxhdx, ctxaudio) or \
            stops a VDA service; repeated crashes point at a VDA bug, a driver or a broken library.",
        remediation: "Keep the core (`coredumpctl dump EXE -o core`), collect a Citrix support bundle \
            (`/opt/Citrix/VDA/bin/xdlcollect.sh`), check the VDA release notes for a fix, and open a \
            case with the backtrace (`coredumpctl info EXE`).",
        reference: COREDUMP_REFERENCE,
        evidence: &["process", "executable", "crashes", "last_crash", "window_days"],
    },
    eval: core_citrix,
};

pub const CORE_OTHER: HostRule = HostRule {
    info: RuleInfo {
        id: "CRASH-CORE-002",
        scope: Scope::Host,
        severity: Severity::Low,
        likelihood: Rating::Low,
        impact: Rating::Low,
        title: "{crashes} other programs' core dumps in {window_days} days",
        rationale: "Crashing applications and daemons disturb users' sessions and their core files fill \
            `/var`; many of them together hint at a broken update or failing memory.",
        remediation: "List them (`coredumpctl list --since=-7d`), update or fix the programs that crash \
            most, and clean old cores (`/var/lib/systemd/coredump`, `/var/crash`).",
        reference: COREDUMP_REFERENCE,
        evidence: &["crashes", "window_days", "executables"],
    },
    eval: core_other,
};

/// `/opt/Citrix/VDA/bin/ctxgfx` -> `ctxgfx`.
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn is_ctx(path: &str) -> bool {
    base_name(path).starts_with("ctx")
}

fn window_days(window_secs: u64) -> u64 {
    window_secs / 86_400
}

fn core_citrix(s: &Snapshot) -> Outcome {
    let Some(c) = &s.sections.crashes else {
        return Outcome::Skipped;
    };
    Outcome::Hits(
        c.by_executable
            .iter()
            .filter(|e| e.count > 0 && is_ctx(&e.executable))
            .map(|e| {
                let process = base_name(&e.executable);
                Hit::about(process)
                    .with("process", process)
                    .with("executable", e.executable.clone())
                    .with("crashes", e.count)
                    .with(
                        "last_crash",
                        e.last.format(&time::format_description::well_known::Rfc3339).ok(),
                    )
                    .with("window_days", window_days(c.window_secs))
            })
            .collect(),
    )
}

fn core_other(s: &Snapshot) -> Outcome {
    let Some(c) = &s.sections.crashes else {
        return Outcome::Skipped;
    };
    // Citrix executables not named ctx* (under /opt/Citrix) count here too, so no crash is lost.
    let citrix_other: Vec<_> = c
        .by_executable
        .iter()
        .filter(|e| e.count > 0 && !is_ctx(&e.executable))
        .collect();
    let crashes = c.other_crashes + citrix_other.iter().map(|e| e.count).sum::<u64>();
    Outcome::fire_if(crashes > 0, || {
        let names: Vec<String> = citrix_other.iter().map(|e| e.executable.clone()).collect();
        Hit::host_wide()
            .with("crashes", crashes)
            .with("window_days", window_days(c.window_secs))
            .with("executables", names)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{COLLECTED_AT, fires, fires_all, passes, skipped, snapshot_with};
    use crate::sections::{CrashCount, CrashesSection};

    fn crashes(other: u64, by_executable: Vec<(&str, u64)>) -> Snapshot {
        snapshot_with(|s| {
            s.crashes = Some(CrashesSection {
                source: Some("coredumpctl".to_owned()),
                window_secs: 7 * 86_400,
                citrix_crashes: by_executable.iter().map(|(_, n)| n).sum(),
                other_crashes: other,
                by_executable: by_executable
                    .into_iter()
                    .map(|(exe, count)| CrashCount {
                        executable: exe.to_owned(),
                        count,
                        last: COLLECTED_AT - time::Duration::hours(2),
                    })
                    .collect(),
                recent: Vec::new(),
            })
        })
    }

    #[test]
    fn ctx_crashes_fire_per_process() {
        let s = crashes(
            0,
            vec![
                ("/opt/Citrix/VDA/bin/ctxgfx", 3),
                ("/opt/Citrix/VDA/bin/ctxhdx", 1),
            ],
        );
        let found = fires_all(&CORE_CITRIX, &s);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].subject, "ctxgfx");
        assert_eq!(found[0].title, "ctxgfx crashed 3 times in 7 days");
        passes(&CORE_OTHER, &s);
    }

    #[test]
    fn other_crashes_fire_once_with_citrix_helpers_named() {
        let s = crashes(4, vec![("/opt/Citrix/VDA/bin/xdlcollect", 1)]);
        let f = fires(&CORE_OTHER, &s);
        assert_eq!(f.title, "5 other programs' core dumps in 7 days");
        assert_eq!(
            f.evidence["executables"],
            serde_json::json!(["/opt/Citrix/VDA/bin/xdlcollect"])
        );
        passes(&CORE_CITRIX, &s);
    }

    #[test]
    fn no_crashes_pass_and_absent_section_skips() {
        let s = crashes(0, Vec::new());
        passes(&CORE_CITRIX, &s);
        passes(&CORE_OTHER, &s);
        skipped(&CORE_CITRIX, &snapshot_with(|_| {}));
        skipped(&CORE_OTHER, &snapshot_with(|_| {}));
    }
}
