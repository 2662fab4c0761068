//! Area LOG: the VDA's own logs (`/var/log/xdl`): left at verbose, grown past what rotation keeps, or
//! full of errors.

use crate::rules::{Hit, HostRule, Outcome, Rating, RuleInfo, Scope, Severity};
use crate::sections::LogLevel;
use crate::snapshot::Snapshot;

/// LOG-SIZE-001 fires above this: with Citrix's default rotation (hdx.log 200 MiB + 2 old, jproxy.log
/// 20 MiB + 10 old, vda logs 50 MiB + 1 old) the folder tops out near 920 MiB, so past 1 GiB
/// something logs more, or keeps more, than the defaults.
pub const LOG_DIR_MAX_BYTES: u64 = 1 << 30;
/// LOG-ERR-001 fires above this many error entries per hour, averaged over the logs' window
/// (1 200 a day): a healthy VDA logs a handful of errors a day; hundreds an hour is a component
/// failing in a loop.
pub const ERRORS_PER_HOUR_MAX: f64 = 50.0;

const LOG_REFERENCE: &str = "https://docs.citrix.com/en-us/linux-virtual-delivery-agent/current-release/configure/administration/log-collection.html";

pub const VERBOSE: HostRule = HostRule {
    info: RuleInfo {
        id: "LOG-VERBOSE-001",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::High,
        impact: Rating::Medium,
        title: "Verbose VDA logging is on ({sources})",
        rationale: "Verbose or trace logging is meant for a support case: left on, it writes many times \
            the normal volume, slows session launch and graphics, and rotates away the history a later \
            case needs.",
        remediation: "Set the levels back to the default (`/opt/Citrix/VDA/bin/setlog level all \
            warning`, and the root logger of `/etc/xdl/log4j2.xml` back to its shipped level), then \
            restart the VDA services.",
        reference: LOG_REFERENCE,
        evidence: &["sources"],
    },
    eval: verbose,
};

pub const DIR_SIZE: HostRule = HostRule {
    info: RuleInfo {
        id: "LOG-SIZE-001",
        scope: Scope::Host,
        severity: Severity::Medium,
        likelihood: Rating::Medium,
        impact: Rating::Medium,
        title: "VDA log folder holds {size_mib} MiB in {files} files",
        rationale: "Past 1 GiB the VDA logs hold more than Citrix's default rotation keeps: a raised \
            `log_size`/`log_count`, verbose logging or unrotated files are eating `/var`, and will fill it.",
        remediation: "Check the rotation (`/opt/Citrix/VDA/bin/setlog values`, `/etc/xdl/log4j2.xml`), \
            turn verbose logging off, and delete old rotated files and stray dumps in `/var/log/xdl`.",
        reference: LOG_REFERENCE,
        evidence: &["size_mib", "total_bytes", "files", "threshold_bytes"],
    },
    eval: dir_size,
};

pub const ERROR_STORM: HostRule = HostRule {
    info: RuleInfo {
        id: "LOG-ERR-001",
        scope: Scope::Host,
        severity: Severity::Low,
        likelihood: Rating::Medium,
        impact: Rating::Low,
        title: "{errors} errors in the VDA logs in {window_hours} h",
        rationale: "More than 50 errors an hour in the VDA logs is a component failing in a loop (a \
            broken policy, an unreachable service, a crashing helper): it hides the errors that matter \
            and usually precedes user-visible failures.",
        remediation: "Look at the most frequent message (evidence `top_error`) in the named file under \
            `/var/log/xdl`, fix its cause, and collect a Citrix support bundle if it is not understood.",
        reference: LOG_REFERENCE,
        evidence: &[
            "errors",
            "window_hours",
            "errors_per_hour",
            "top_error",
            "top_error_file",
        ],
    },
    eval: error_storm,
};

fn verbose(s: &Snapshot) -> Outcome {
    let Some(vda) = &s.sections.vda else {
        return Outcome::Skipped;
    };
    let Some(on) = vda.verbose_logging else {
        return Outcome::Skipped;
    };
    Outcome::fire_if(on, || {
        let sources = if vda.verbose_logging_sources.is_empty() {
            "source not reported".to_owned()
        } else {
            vda.verbose_logging_sources.join(", ")
        };
        Hit::host_wide().with("sources", sources)
    })
}

fn dir_size(s: &Snapshot) -> Outcome {
    let Some(vda) = &s.sections.vda else {
        return Outcome::Skipped;
    };
    // No folder: nothing logged, nothing to grow.
    let Some(dir) = vda.log_dir else {
        return Outcome::pass();
    };
    Outcome::fire_if(dir.total_bytes > LOG_DIR_MAX_BYTES, || {
        Hit::host_wide()
            .with("size_mib", dir.total_bytes / (1 << 20))
            .with("total_bytes", dir.total_bytes)
            .with("files", dir.files)
            .with("threshold_bytes", LOG_DIR_MAX_BYTES)
    })
}

fn error_storm(s: &Snapshot) -> Outcome {
    let Some(logs) = &s.sections.logs else {
        return Outcome::Skipped;
    };
    if logs.files.is_empty() || logs.window_secs == 0 {
        return Outcome::Skipped;
    }
    let hours = logs.window_secs as f64 / 3600.0;
    let per_hour = logs.errors as f64 / hours;
    Outcome::fire_if(per_hour > ERRORS_PER_HOUR_MAX, || {
        // `top_messages` is most frequent first; the first error is the loudest one.
        let top = logs.top_messages.iter().find(|m| m.level == LogLevel::Error);
        Hit::host_wide()
            .with("errors", logs.errors)
            .with("window_hours", (hours * 10.0).round() / 10.0)
            .with("errors_per_hour", (per_hour * 10.0).round() / 10.0)
            .with("top_error", top.map(|m| m.message.clone()))
            .with("top_error_file", top.map(|m| m.file.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::testing::{COLLECTED_AT, fires, passes, skipped, snapshot_with};
    use crate::sections::{LogFile, LogMessage, LogsSection, VdaLogDir, VdaSection};

    fn vda(f: impl FnOnce(&mut VdaSection)) -> Snapshot {
        let mut v = VdaSection {
            package: "XenDesktopVDA".to_owned(),
            version: "24.11.0.65-1.el9_x".to_owned(),
            ..Default::default()
        };
        f(&mut v);
        snapshot_with(|s| s.vda = Some(v))
    }

    #[test]
    fn verbose_fires_with_its_sources() {
        let s = vda(|v| {
            v.verbose_logging = Some(true);
            v.verbose_logging_sources = vec!["setlog:all".to_owned(), "/etc/xdl/log4j2.xml".to_owned()];
        });
        let f = fires(&VERBOSE, &s);
        assert_eq!(
            f.title,
            "Verbose VDA logging is on (setlog:all, /etc/xdl/log4j2.xml)"
        );
    }

    #[test]
    fn verbose_passes_off_and_skips_unknown() {
        passes(&VERBOSE, &vda(|v| v.verbose_logging = Some(false)));
        skipped(&VERBOSE, &vda(|v| v.verbose_logging = None));
        skipped(&VERBOSE, &snapshot_with(|_| {}));
    }

    #[test]
    fn big_log_folder_fires() {
        let s = vda(|v| {
            v.log_dir = Some(VdaLogDir {
                total_bytes: 3 << 30,
                files: 212,
            })
        });
        let f = fires(&DIR_SIZE, &s);
        assert_eq!(f.title, "VDA log folder holds 3072 MiB in 212 files");
    }

    #[test]
    fn small_or_missing_log_folder_passes() {
        let dir = VdaLogDir {
            total_bytes: 900 << 20,
            files: 15,
        };
        passes(&DIR_SIZE, &vda(|v| v.log_dir = Some(dir)));
        passes(&DIR_SIZE, &vda(|v| v.log_dir = None));
        skipped(&DIR_SIZE, &snapshot_with(|_| {}));
    }

    fn logs(errors: u64) -> Snapshot {
        snapshot_with(|s| {
            s.logs = Some(LogsSection {
                window_secs: 86_400,
                errors,
                warnings: 10,
                files: vec![LogFile {
                    path: "/var/log/xdl/hdx.log".to_owned(),
                    size_bytes: 1 << 20,
                    modified: Some(COLLECTED_AT),
                    read_bytes: 1 << 20,
                    truncated: false,
                    window_covered: true,
                    oldest_read: None,
                    errors,
                    warnings: 10,
                    untimed_lines: 0,
                }],
                top_messages: vec![
                    LogMessage {
                        level: LogLevel::Warning,
                        file: "hdx.log".to_owned(),
                        message: "slow frame".to_owned(),
                        count: 900,
                        last_seen: COLLECTED_AT,
                    },
                    LogMessage {
                        level: LogLevel::Error,
                        file: "hdx.log".to_owned(),
                        message: "ctxgfx: failed to open display :<n>".to_owned(),
                        count: errors,
                        last_seen: COLLECTED_AT,
                    },
                ],
            })
        })
    }

    #[test]
    fn error_storm_fires_over_fifty_an_hour() {
        let f = fires(&ERROR_STORM, &logs(1_201));
        assert_eq!(f.title, "1201 errors in the VDA logs in 24.0 h");
        assert_eq!(f.evidence["top_error"], "ctxgfx: failed to open display :<n>");
    }

    #[test]
    fn error_storm_passes_at_the_threshold_and_skips_without_logs() {
        passes(&ERROR_STORM, &logs(1_200));
        skipped(&ERROR_STORM, &snapshot_with(|_| {}));
        skipped(
            &ERROR_STORM,
            &snapshot_with(|s| s.logs = Some(LogsSection::default())),
        );
    }
}
