//! `vda` probe: the Citrix Linux VDA: package and version, configured Delivery Controllers,
//! registration history, sessions, Xorg processes, the log folder, verbose logging, and what the
//! monitor service logged.
//!
//! Sources (Citrix, "Linux Virtual Delivery Agent" documentation, chapters "Log collection" and "The
//! monitor service daemon"):
//! - the package: `rpm -q XenDesktopVDA`, or `dpkg-query -W` with `${Status}` for `xendesktopvda`,
//!   the host family's tool first. Neither tool reporting the package means no VDA here: no data,
//!   not an error.
//! - `ListOfDDCs` through `ctxreg` (the same command line as the `controllers` probe).
//! - registration: the tails of `jproxy.log` and of the newest `vda.YYYY-MM-DD.hh.mm.ss.log` (older
//!   releases: `vda.log`) in `/var/log/xdl`, both documented as carrying "VDA registration".
//! - sessions: `ctxqsession`; Xorg processes: `pgrep -c -x Xorg` (each session has its own Xorg).
//! - verbose logging: `setlog levels` (levels per class: Disabled, Inherited, Verbose, Information,
//!   Warnings, Errors, Fatal Errors; root only), and the two config files the documentation names,
//!   `/etc/xdl/log4j2.xml` (jproxy.log) and `/etc/xdl/brokeragent.conf` (vda logs).
//! - the monitor service `ctxmonitord`: restarts of key processes in `/var/log/xdl/ms.log`, XDPing runs
//!   in `/var/log/xdl/msxdping.log`.
//!
//! Caveat on formats: Citrix documents where these logs are, not their line formats, nor the output
//! of `ctxqsession`, `setlog levels` or XDPing, and no captured sample was at hand. The parsers match
//! the registration event texts the Windows VDA documents (CTX126992: "successfully registered with
//! delivery controller", "failed to register with any delivery controller", "cannot connect to the
//! delivery controller", "lost contact with", "Error Details: ..."), assuming the Linux broker agent
//! logs the same texts, and common time stamp layouts; they skip what they do not recognise rather
//! than fail. The fixtures are written to these assumptions, not captured. Log time stamps without
//! an offset are taken as UTC.

use std::collections::{BTreeMap, HashMap};
use std::io;

use callhome_shared::{
    ProcessRestarts, VdaLogDir, VdaMonitor, VdaRegistration, VdaRegistrationState, VdaSection, VdaSessions,
    XdpingRun,
};
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};
use crate::source::{DirEntry, FileData};

/// The controller list, read exactly as the `controllers` probe reads it so both use the same capture.
const CTXREG_LIST_OF_DDCS: &[&str] = &[
    "/opt/Citrix/VDA/bin/ctxreg",
    "read",
    "-k",
    "HKLM\\Software\\Citrix\\VirtualDesktopAgent",
    "-v",
    "ListOfDDCs",
];
const CTXQSESSION: &[&str] = &["/opt/Citrix/VDA/bin/ctxqsession"];
const SETLOG_LEVELS: &[&str] = &["/opt/Citrix/VDA/bin/setlog", "levels"];
const PGREP_XORG: &[&str] = &["pgrep", "-c", "-x", "Xorg"];
const RPM_QUERY: &[&str] = &["rpm", "-q", "XenDesktopVDA"];
/// `${Status}` tells an installed package from one removed with its configuration kept (`rc`), which
/// plain `-W` lists with a version too (dpkg-query(1)).
const DPKG_QUERY: &[&str] = &[
    "dpkg-query",
    "-W",
    "-f=${Status}\\t${Version}\\n",
    "xendesktopvda",
];

const LOG_DIR: &str = "/var/log/xdl";
const JPROXY_LOG: &str = "jproxy.log";
const MONITOR_LOG: &str = "/var/log/xdl/ms.log";
const XDPING_LOG: &str = "/var/log/xdl/msxdping.log";
const LOG4J2_CONF: &str = "/etc/xdl/log4j2.xml";
const BROKERAGENT_CONF: &str = "/etc/xdl/brokeragent.conf";

/// How far back registration events and monitor restarts are counted.
pub(crate) const WINDOW: Duration = Duration::hours(24);

const MAX_REASON_CHARS: usize = 200;
const MAX_CHECK_CHARS: usize = 120;
const MAX_FAILED_CHECKS: usize = 10;
const MAX_VERBOSE_SOURCES: usize = 10;
const MAX_RESTARTING_PROCESSES: usize = 5;
/// Most vda logs read looking for the latest registration event.
const MAX_VDA_LOGS: usize = 3;

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let Some(package) = installed_package(ctx)? else {
        return Ok(ProbeOutput::NoData);
    };
    let now = ctx.now();
    let since = now - WINDOW;
    let listing = match ctx.source.list_dir(LOG_DIR) {
        Ok(entries) => Some(entries),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(error) => {
            tracing::warn!(dir = LOG_DIR, %error, "cannot list the VDA log folder");
            None
        }
    };
    let registration = registration(ctx, listing.as_deref().unwrap_or_default(), now);
    let sessions = command_stdout(ctx, CTXQSESSION, &[0]).map(|out| parse_sessions(&out));
    // pgrep exits 1 when nothing matches, still printing the count (0).
    let xorg_processes =
        command_stdout(ctx, PGREP_XORG, &[0, 1]).and_then(|out| out.trim().parse::<u32>().ok());
    let xorg_without_session = match (xorg_processes, sessions) {
        (Some(xorg), Some(s)) => Some(xorg.saturating_sub(s.active + s.disconnected)),
        _ => None,
    };
    let log_dir = listing.as_deref().map(|entries| log_dir_usage(ctx, entries));
    let (verbose_logging, verbose_logging_sources) = verbose_logging(ctx);
    let monitor = monitor(ctx, now, since);

    Ok(ProbeOutput::Section(Section::Vda(VdaSection {
        package: package.name.to_string(),
        release: release_of(&package.version),
        version: package.version,
        package_manager: package.manager.to_string(),
        controllers: controllers(ctx),
        registration,
        sessions,
        xorg_processes,
        xorg_without_session,
        log_dir,
        verbose_logging,
        verbose_logging_sources,
        monitor,
    })))
}

// ---------------------------------------------------------------------------------------------------
// Package

/// A package tool's command line and the parser of its output.
type PackageQuery = (&'static [&'static str], fn(&str) -> Option<Package>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Package {
    name: &'static str,
    manager: &'static str,
    version: String,
}

/// The VDA package, asking the host family's package tool first. A tool that is not installed or does
/// not know the package is passed over; one that fails otherwise (a timeout) is an error only when no
/// tool found the package, as then whether the VDA is installed is unknown.
fn installed_package(ctx: &ProbeContext) -> Result<Option<Package>, ProbeFailure> {
    let debian_family = ctx
        .read_text("/etc/os-release")
        .or_else(|_| ctx.read_text("/usr/lib/os-release"))
        .map(|text| is_debian_family(&text))
        .unwrap_or(false);
    let tools: [PackageQuery; 2] = if debian_family {
        [(DPKG_QUERY, parse_dpkg), (RPM_QUERY, parse_rpm)]
    } else {
        [(RPM_QUERY, parse_rpm), (DPKG_QUERY, parse_dpkg)]
    };
    let mut failure = None;
    for (argv, parse) in tools {
        match ctx.run(argv) {
            // Both tools exit non-zero for a package they do not know.
            Ok(out) if out.success() => {
                if let Some(package) = parse(&out.stdout_text()) {
                    return Ok(Some(package));
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => failure = Some(ProbeFailure(format!("cannot run {}: {e}", argv[0]))),
        }
    }
    failure.map_or(Ok(None), Err)
}

fn is_debian_family(os_release: &str) -> bool {
    let os = super::system::parse_os_release(os_release);
    ["ID", "ID_LIKE"].iter().any(|key| {
        os.get(*key)
            .is_some_and(|v| v.split_whitespace().any(|id| id == "debian" || id == "ubuntu"))
    })
}

/// `rpm -q XenDesktopVDA`: `XenDesktopVDA-24.11.0.65-1.el9_x.x86_64`, version and release without the
/// architecture.
fn parse_rpm(stdout: &str) -> Option<Package> {
    let nevra = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("XenDesktopVDA-"))?;
    let version = match nevra.rsplit_once('.') {
        Some((rest, arch)) if ["x86_64", "aarch64", "noarch", "i686", "ppc64le", "s390x"].contains(&arch) => {
            rest
        }
        _ => nevra,
    };
    (!version.is_empty() && version.starts_with(|c: char| c.is_ascii_digit())).then(|| Package {
        name: "XenDesktopVDA",
        manager: "rpm",
        version: version.to_string(),
    })
}

/// `dpkg-query -W -f='${Status}\t${Version}\n' xendesktopvda`: `install ok installed\t24.2.0.15-1...`.
fn parse_dpkg(stdout: &str) -> Option<Package> {
    stdout.lines().find_map(|line| {
        let (status, version) = line.split_once('\t')?;
        let version = version.trim();
        (status.split_whitespace().last() == Some("installed") && !version.is_empty()).then(|| Package {
            name: "xendesktopvda",
            manager: "dpkg",
            version: version.to_string(),
        })
    })
}

/// The Citrix release (YYMM) of a package version whose first fields are year and month, `24.11.0.65`
/// or `24.2.0.15`; releases before 1912 were numbered otherwise (`7.18`).
fn release_of(version: &str) -> Option<String> {
    let mut fields = version.split(['.', '-']);
    let year: u32 = fields.next()?.parse().ok()?;
    let month: u32 = fields.next()?.parse().ok()?;
    ((19..=99).contains(&year) && (1..=12).contains(&month)).then(|| format!("{year:02}{month:02}"))
}

// ---------------------------------------------------------------------------------------------------
// Controllers, sessions, Xorg

/// Standard output of a command that ran and exited with one of `ok` codes; `None` otherwise (not
/// installed, not permitted, timed out: the section says "unknown" rather than failing).
fn command_stdout(ctx: &ProbeContext, argv: &[&str], ok: &[i32]) -> Option<String> {
    match ctx.run(argv) {
        Ok(out) if out.status.is_some_and(|s| ok.contains(&s)) => Some(out.stdout_text()),
        Ok(out) => {
            tracing::debug!(command = argv[0], status = ?out.status, "command failed");
            None
        }
        Err(error) => {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!(command = argv[0], %error, "cannot run");
            }
            None
        }
    }
}

/// `ListOfDDCs`: a space-separated list of controller FQDNs.
fn controllers(ctx: &ProbeContext) -> Option<Vec<String>> {
    command_stdout(ctx, CTXREG_LIST_OF_DDCS, &[0]).map(|out| parse_list_of_ddcs(&out))
}

fn parse_list_of_ddcs(stdout: &str) -> Vec<String> {
    // Tolerates a `ListOfDDCs = ...` form and quotes around the value.
    let value = stdout.rsplit_once('=').map_or(stdout, |(_, v)| v);
    value
        .split_whitespace()
        .map(|s| s.trim_matches(['"', '\'', ',']))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Session states of `ctxqsession`: a header line, then one session a line with its state as a word
/// (`active`, `disconnected`, ...). The state column is taken from the header when it has one, else
/// any known state word on the line.
fn parse_sessions(stdout: &str) -> VdaSessions {
    const OTHER_STATES: &[&str] = &[
        "connected",
        "connecting",
        "conn",
        "pending",
        "init",
        "initializing",
        "logoff",
        "loggingoff",
        "logging-off",
        "reset",
        "down",
        "shadow",
        "idle",
        "listen",
    ];
    let mut counts = VdaSessions::default();
    let mut state_column = None;
    for line in stdout.lines() {
        let words: Vec<String> = line.split_whitespace().map(str::to_ascii_lowercase).collect();
        if state_column.is_none()
            && let Some(i) = words.iter().position(|w| w == "state")
        {
            state_column = Some(i);
            continue;
        }
        let state = state_column
            .and_then(|i| words.get(i))
            .filter(|w| is_state(w, OTHER_STATES))
            .or_else(|| words.iter().find(|w| is_state(w, OTHER_STATES)));
        match state.map(String::as_str) {
            Some("active") => counts.active += 1,
            Some("disconnected" | "disc") => counts.disconnected += 1,
            Some(_) => counts.other += 1,
            None => {}
        }
    }
    counts
}

fn is_state(word: &str, others: &[&str]) -> bool {
    matches!(word, "active" | "disconnected" | "disc") || others.contains(&word)
}

// ---------------------------------------------------------------------------------------------------
// Log folder

/// Files of `/var/log/xdl` and of its direct subfolders.
fn log_dir_usage(ctx: &ProbeContext, entries: &[DirEntry]) -> VdaLogDir {
    let mut usage = VdaLogDir::default();
    for entry in entries {
        if entry.metadata.is_dir {
            let sub = format!("{LOG_DIR}/{}", entry.name);
            for inner in ctx.source.list_dir(&sub).unwrap_or_default() {
                if !inner.metadata.is_dir {
                    usage.total_bytes = usage.total_bytes.saturating_add(inner.metadata.len);
                    usage.files += 1;
                }
            }
        } else {
            usage.total_bytes = usage.total_bytes.saturating_add(entry.metadata.len);
            usage.files += 1;
        }
    }
    usage
}

// ---------------------------------------------------------------------------------------------------
// Registration

/// A registration event of the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RegEvent {
    at: OffsetDateTime,
    kind: RegKind,
    /// Error details the line (or the untimed line after it) gives.
    reason: Option<String>,
    /// The line's text after its time stamp, for a failure that names no reason.
    message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RegKind {
    Registered {
        controller: Option<String>,
    },
    /// "failed to register": one failed attempt.
    Failed,
    /// A failure's detail (a controller that refused or could not be reached), logged with or instead
    /// of the summary.
    FailureDetail,
    Deregistered,
}

/// The registration view from `jproxy.log` and the newest vda log. A VDA that has stayed registered
/// for days logs no registration event in its newest file, so older vda logs are read too, newest
/// first, until one holds an event (at most [`MAX_VDA_LOGS`]).
fn registration(ctx: &ProbeContext, entries: &[DirEntry], now: OffsetDateTime) -> VdaRegistration {
    let mut vda_logs: Vec<&DirEntry> = entries
        .iter()
        .filter(|e| !e.metadata.is_dir && e.name.starts_with("vda") && e.name.ends_with(".log"))
        .collect();
    // Newest first: by modification time, then by name (`vda.YYYY-MM-DD.hh.mm.ss.log` sorts by time).
    vda_logs.sort_by(|a, b| (b.metadata.modified, &b.name).cmp(&(a.metadata.modified, &a.name)));
    let mut sources = Vec::new();
    let mut events = Vec::new();
    if let Some(jproxy) = entries
        .iter()
        .find(|e| !e.metadata.is_dir && e.name == JPROXY_LOG)
        && let Some(found) = read_events(ctx, &jproxy.name, now)
    {
        events.extend(found);
        sources.push(jproxy.name.clone());
    }
    for entry in vda_logs.into_iter().take(MAX_VDA_LOGS) {
        let Some(found) = read_events(ctx, &entry.name, now) else {
            continue;
        };
        sources.push(entry.name.clone());
        let any = !found.is_empty();
        events.extend(found);
        if any {
            break;
        }
    }
    // Stable: events of the same instant keep their reading order.
    events.sort_by_key(|e| e.at);
    summarize_registration(&events, now, sources)
}

/// The registration events in the tail of one log of `/var/log/xdl`; `None` when it cannot be read.
fn read_events(ctx: &ProbeContext, name: &str, now: OffsetDateTime) -> Option<Vec<RegEvent>> {
    let path = format!("{LOG_DIR}/{name}");
    match ctx.read_tail(&path) {
        Ok(data) => Some(parse_registration_events(&tail_text(&data), now)),
        Err(error) => {
            tracing::warn!(%path, %error, "cannot read VDA log");
            None
        }
    }
}

fn summarize_registration(events: &[RegEvent], now: OffsetDateTime, sources: Vec<String>) -> VdaRegistration {
    let since = now - WINDOW;
    let mut out = VdaRegistration {
        window_secs: u64::try_from(WINDOW.whole_seconds()).unwrap_or(0),
        sources,
        ..VdaRegistration::default()
    };
    // Count attempts by their "failed to register" lines when the logs write them, else by details.
    let counted_failure = if events.iter().any(|e| e.kind == RegKind::Failed) {
        RegKind::Failed
    } else {
        RegKind::FailureDetail
    };
    let mut streak_reason: Option<String> = None;
    for event in events {
        let in_window = event.at > since && event.at <= now;
        match &event.kind {
            RegKind::Registered { controller } => {
                out.state = VdaRegistrationState::Registered;
                out.last_registered = Some(event.at);
                out.last_registered_controller.clone_from(controller);
                streak_reason = None;
            }
            kind @ (RegKind::Failed | RegKind::FailureDetail) => {
                out.state = VdaRegistrationState::Unregistered;
                if event.reason.is_some() {
                    streak_reason.clone_from(&event.reason);
                }
                out.last_failure = Some(event.at);
                out.last_failure_reason = streak_reason
                    .clone()
                    .or_else(|| Some(clip(&event.message, MAX_REASON_CHARS)));
                if in_window && *kind == counted_failure {
                    out.failures_in_window += 1;
                }
            }
            RegKind::Deregistered => {
                out.state = VdaRegistrationState::Unregistered;
                if in_window {
                    out.deregistrations_in_window += 1;
                }
            }
        }
    }
    out
}

/// Registration events of one log's text. Lines without a time stamp that follow a failure with no
/// reason give it one (an exception printed on the next line).
fn parse_registration_events(text: &str, now: OffsetDateTime) -> Vec<RegEvent> {
    let mut events: Vec<RegEvent> = Vec::new();
    let mut last_was_event = false;
    for line in text.lines() {
        let Some((at, rest)) = line_time(line, now) else {
            if last_was_event
                && let Some(last) = events.last_mut()
                && matches!(last.kind, RegKind::Failed | RegKind::FailureDetail)
                && last.reason.is_none()
                && !line.trim().is_empty()
            {
                last.reason = Some(clip(line.trim(), MAX_REASON_CHARS));
            }
            continue;
        };
        last_was_event = false;
        let message = strip_tags(rest);
        let Some(kind) = classify(message) else {
            continue;
        };
        let reason = match kind {
            RegKind::Failed | RegKind::FailureDetail => reason_of(message),
            _ => None,
        };
        events.push(RegEvent {
            at,
            kind,
            reason,
            message: message.to_string(),
        });
        last_was_event = true;
    }
    events
}

/// What a log message says about registration, if anything.
fn classify(message: &str) -> Option<RegKind> {
    let lower = message.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| lower.contains(n));
    if has(&[
        "failed to register",
        "registration failed",
        "registration has failed",
        "unable to register",
        "could not register",
        "registration was rejected",
        "registration rejected",
        "registration was refused",
    ]) {
        return Some(RegKind::Failed);
    }
    if has(&[
        "cannot connect to the delivery controller",
        "could not connect to the delivery controller",
        "refused a connection to the delivery controller",
        "was refused a connection",
    ]) {
        return Some(RegKind::FailureDetail);
    }
    if has(&[
        "lost contact with",
        "deregister",
        "de-register",
        "unregistered from",
        "unregistering from",
        "is re-registering",
        "registration was lost",
        "registration lost",
    ]) {
        return Some(RegKind::Deregistered);
    }
    let registered = has(&["registered with", "successfully registered"]) && !has(&["not registered"]);
    let succeeded = lower.contains("registration")
        && has(&[
            "succeeded",
            "was successful",
            "registration successful",
            "completed successfully",
        ]);
    if registered || succeeded {
        return Some(RegKind::Registered {
            controller: controller_named(message),
        });
    }
    None
}

/// The controller a success message names: the first host name (a dotted word that is not an
/// address) after the word "controller", else anywhere in the message.
fn controller_named(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let after = lower.find("controller").map_or(message, |i| &message[i..]);
    let candidates = |text: &str| -> Option<String> {
        text.split(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '(' | ')' | ',' | ';' | '[' | ']'))
            .map(|w| {
                let w = w.trim_start_matches("http://").trim_start_matches("https://");
                let w = w.split(['/', ':']).next().unwrap_or("");
                w.trim_end_matches('.')
            })
            .find(|w| {
                w.contains('.')
                    && w.chars().any(|c| c.is_ascii_alphabetic())
                    && w.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                    && !w.ends_with(".log")
            })
            .map(str::to_ascii_lowercase)
    };
    candidates(after).or_else(|| candidates(message))
}

/// The error details of a failure message: what follows `Error Details:`, `reason:`, `error:` or
/// `exception:`.
fn reason_of(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    ["error details:", "reason:", "error:", "exception:"]
        .iter()
        .find_map(|marker| {
            let i = lower.find(marker)?;
            let rest = message.get(i + marker.len()..)?.trim();
            (!rest.is_empty()).then(|| clip(rest, MAX_REASON_CHARS))
        })
}

// ---------------------------------------------------------------------------------------------------
// Verbose logging

/// Whether any VDA log is set to its most detailed level, and where. `None` when no setting could be
/// read at all (setlog needs root; the config files may be absent).
fn verbose_logging(ctx: &ProbeContext) -> (Option<bool>, Vec<String>) {
    let mut known = false;
    let mut sources = Vec::new();
    if let Some(out) = command_stdout(ctx, SETLOG_LEVELS, &[0]) {
        known = true;
        sources.extend(
            verbose_setlog_classes(&out)
                .into_iter()
                .map(|class| format!("setlog:{class}")),
        );
    }
    if let Ok(text) = ctx.read_text(LOG4J2_CONF) {
        known = true;
        if log4j2_is_verbose(&text) {
            sources.push(LOG4J2_CONF.to_string());
        }
    }
    if let Ok(text) = ctx.read_text(BROKERAGENT_CONF) {
        known = true;
        if conf_is_verbose(&text) {
            sources.push(BROKERAGENT_CONF.to_string());
        }
    }
    sources.truncate(MAX_VERBOSE_SOURCES);
    (known.then_some(!sources.is_empty()), sources)
}

fn is_verbose_level(level: &str) -> bool {
    let level = level.trim().trim_matches(['"', '\'']).to_ascii_lowercase();
    level.starts_with("verbose") || level == "trace" || level == "debug" || level == "all"
}

/// Classes `setlog levels` lists at `Verbose`. Lines are `class = Level` (the layout of `setlog
/// values`), `class: Level` or `class  Level`.
fn verbose_setlog_classes(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|line| {
            let (class, level) = line
                .split_once('=')
                .or_else(|| line.split_once(':'))
                .or_else(|| line.trim().rsplit_once(char::is_whitespace))?;
            let class = class.split_whitespace().next()?;
            // "all" as a level is a log4j word; setlog's own word is "Verbose".
            let level = level.trim().to_ascii_lowercase();
            level.starts_with("verbose").then(|| class.to_string())
        })
        .collect()
}

/// Whether a log4j2 configuration sets a logger (or the root) to debug or trace. Comments are skipped;
/// appender filters are not loggers and are ignored.
fn log4j2_is_verbose(xml: &str) -> bool {
    let mut text = xml.to_string();
    while let Some(start) = text.find("<!--") {
        let end = text[start..].find("-->").map_or(text.len(), |e| start + e + 3);
        text.replace_range(start..end, "");
    }
    text.split('<').skip(1).any(|tag| {
        let tag = tag.split('>').next().unwrap_or("");
        let name = tag.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        if !matches!(name.as_str(), "root" | "logger" | "asyncroot" | "asynclogger") {
            return false;
        }
        attribute(tag, "level").is_some_and(|level| is_verbose_level(&level))
    })
}

/// The value of `name="value"` in a tag's text.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at == 0 || lower[..at].ends_with(char::is_whitespace);
        let rest = tag[from..].trim_start();
        if before_ok && let Some(rest) = rest.strip_prefix('=') {
            let rest = rest.trim_start();
            let quote = rest.chars().next()?;
            if quote == '"' || quote == '\'' {
                return rest[1..].split(quote).next().map(str::to_string);
            }
        }
    }
    None
}

/// Whether a `key = value` config file sets a key naming a level (`LogLevel`, `log_level`, ...) to
/// verbose, debug or trace.
fn conf_is_verbose(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim();
        if line.starts_with(['#', ';']) {
            return false;
        }
        let Some((key, value)) = line.split_once('=').or_else(|| line.split_once(':')) else {
            return false;
        };
        let value = value.split([';', '#']).next().unwrap_or("");
        key.to_ascii_lowercase().contains("level") && is_verbose_level(value)
    })
}

// ---------------------------------------------------------------------------------------------------
// Monitor service

fn monitor(ctx: &ProbeContext, now: OffsetDateTime, since: OffsetDateTime) -> Option<VdaMonitor> {
    let read = |path: &str| match ctx.read_tail(path) {
        Ok(data) => Some(tail_text(&data)),
        Err(e) => {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path, error = %e, "cannot read monitor service log");
            }
            None
        }
    };
    let ms = read(MONITOR_LOG);
    let xdping = read(XDPING_LOG);
    if ms.is_none() && xdping.is_none() {
        return None;
    }
    let restarts = ms.map(|text| monitor_restarts(&text, now, since));
    let (restarts_in_window, restarts_by_process) = match restarts {
        Some(by_process) => {
            let total = by_process.values().sum();
            let mut list: Vec<ProcessRestarts> = by_process
                .into_iter()
                .map(|(process, count)| ProcessRestarts { process, count })
                .collect();
            list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.process.cmp(&b.process)));
            list.truncate(MAX_RESTARTING_PROCESSES);
            (Some(total), list)
        }
        None => (None, Vec::new()),
    };
    Some(VdaMonitor {
        restarts_in_window,
        restarts_by_process,
        xdping: xdping.and_then(|text| parse_xdping(&text, now)),
    })
}

/// Restarts the monitor service logged in the window, by process. A restart is a line saying
/// "restarting" or "restarted"; the process is the first `ctx...` or `Xorg` word. The monitor scans
/// every `DetectInterval` seconds (60 at least, ctxmonitord.conf), so lines about the same process
/// less than 60 s apart are one restart logged twice ("restarting", then "restarted").
fn monitor_restarts(text: &str, now: OffsetDateTime, since: OffsetDateTime) -> BTreeMap<String, u32> {
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    let mut last_counted: HashMap<String, OffsetDateTime> = HashMap::new();
    for line in text.lines() {
        let Some((at, rest)) = line_time(line, now) else {
            continue;
        };
        if at <= since || at > now {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        if !(lower.contains("restarting") || lower.contains("restarted")) {
            continue;
        }
        let process = lower
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .find(|w| (w.starts_with("ctx") && w.len() > 3) || *w == "xorg")
            .map_or_else(
                || "unknown".to_string(),
                |w| if w == "xorg" { "Xorg".into() } else { w.into() },
            );
        if last_counted
            .get(&process)
            .is_some_and(|prev| at - *prev < Duration::seconds(60))
        {
            continue;
        }
        last_counted.insert(process.clone(), at);
        *counts.entry(process).or_default() += 1;
    }
    counts
}

/// The latest XDPing run of `msxdping.log`: from the last line announcing a run (one naming XDPing
/// and saying it starts), the checks whose line ends in a result in brackets (`[Pass]`, `[Warning]`,
/// `[Fail]`).
fn parse_xdping(text: &str, now: OffsetDateTime) -> Option<XdpingRun> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().rposition(|l| {
        let lower = l.to_ascii_lowercase();
        lower.contains("xdping") && (lower.contains("start") || lower.contains("begin"))
    });
    let run = &lines[start.unwrap_or(0)..];
    let mut out = XdpingRun {
        ran_at: run.iter().find_map(|l| line_time(l, now).map(|(t, _)| t)),
        ..XdpingRun::default()
    };
    for line in run {
        let trimmed = line.trim_end();
        let Some(open) = trimmed.strip_suffix(']').and_then(|t| t.rfind('[')) else {
            continue;
        };
        let result = trimmed[open + 1..trimmed.len() - 1].trim().to_ascii_lowercase();
        match result.as_str() {
            "pass" | "passed" | "ok" | "success" => out.passed += 1,
            "warn" | "warning" => out.warnings += 1,
            "fail" | "failed" | "error" => {
                out.failed += 1;
                if out.failed_checks.len() < MAX_FAILED_CHECKS {
                    let name = trimmed[..open].trim().trim_end_matches(['.', ' ', ':']).trim();
                    out.failed_checks.push(clip(name, MAX_CHECK_CHARS));
                }
            }
            _ => {}
        }
    }
    (out.passed + out.warnings + out.failed > 0).then_some(out)
}

// ---------------------------------------------------------------------------------------------------
// Log lines

/// The time stamp at the start of a log line, and the rest of the line. Layouts: ISO-like
/// `2026-11-20 08:41:07.512` (`T` or space, `.` or `,` before the fraction, optional `Z` or offset;
/// without one, UTC) and syslog's `Nov 20 08:41:07` (the year is the one that puts it at most a day
/// after now). A leading `[` is allowed.
fn line_time(line: &str, now: OffsetDateTime) -> Option<(OffsetDateTime, &str)> {
    let text = line.trim_start().trim_start_matches('[');
    iso_time(text).or_else(|| syslog_time(text, now))
}

fn digits(s: &str, range: std::ops::Range<usize>) -> Option<u32> {
    let part = s.get(range)?;
    (part.bytes().all(|b| b.is_ascii_digit()) && !part.is_empty())
        .then(|| part.parse().ok())
        .flatten()
}

fn iso_time(text: &str) -> Option<(OffsetDateTime, &str)> {
    let b = text.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = i32::try_from(digits(text, 0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(digits(text, 5..7)?).ok()?).ok()?;
    let day = u8::try_from(digits(text, 8..10)?).ok()?;
    let hour = u8::try_from(digits(text, 11..13)?).ok()?;
    let minute = u8::try_from(digits(text, 14..16)?).ok()?;
    let second = u8::try_from(digits(text, 17..19)?).ok()?;
    let mut end = 19;
    let mut nanos = 0u32;
    if matches!(b.get(end), Some(b'.' | b',')) {
        let frac_len = b[end + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if frac_len > 0 {
            let frac = &text[end + 1..end + 1 + frac_len.min(9)];
            nanos = frac.parse::<u32>().ok()? * 10u32.pow(9 - u32::try_from(frac.len()).ok()?);
            end += 1 + frac_len;
        }
    }
    let mut offset = UtcOffset::UTC;
    match b.get(end) {
        Some(b'Z') => end += 1,
        Some(sign @ (b'+' | b'-')) => {
            let hh = digits(text, end + 1..end + 3);
            let colon = b.get(end + 3) == Some(&b':');
            let mm = digits(text, if colon { end + 4..end + 6 } else { end + 3..end + 5 });
            if let (Some(hh), Some(mm)) = (hh, mm) {
                let sign = if *sign == b'-' { -1 } else { 1 };
                let secs = sign * i32::try_from(hh * 3600 + mm * 60).ok()?;
                offset = UtcOffset::from_whole_seconds(secs).ok()?;
                end += if colon { 6 } else { 5 };
            }
        }
        _ => {}
    }
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    let at = PrimitiveDateTime::new(date, time)
        .assume_offset(offset)
        .to_offset(UtcOffset::UTC);
    Some((at, text.get(end..).unwrap_or("")))
}

fn syslog_time(text: &str, now: OffsetDateTime) -> Option<(OffsetDateTime, &str)> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month_index = MONTHS.iter().position(|m| text.get(0..3) == Some(*m))?;
    let month = Month::try_from(u8::try_from(month_index + 1).ok()?).ok()?;
    let rest = text.get(3..)?.strip_prefix(' ')?;
    let rest = rest.trim_start();
    let day_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let day = u8::try_from(digits(rest, 0..day_len)?).ok()?;
    let clock = rest.get(day_len..)?.strip_prefix(' ')?;
    let b = clock.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let time = Time::from_hms(
        u8::try_from(digits(clock, 0..2)?).ok()?,
        u8::try_from(digits(clock, 3..5)?).ok()?,
        u8::try_from(digits(clock, 6..8)?).ok()?,
    )
    .ok()?;
    let mut end = 8;
    // Fractions, as some syslog configurations print them.
    if b.get(8) == Some(&b'.') {
        end += 1 + b[9..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
    let at_year = |year: i32| {
        Date::from_calendar_date(year, month, day)
            .ok()
            .map(|d| PrimitiveDateTime::new(d, time).assume_utc())
    };
    let this_year = at_year(now.year())?;
    let at = if this_year > now + Duration::days(1) {
        at_year(now.year() - 1)?
    } else {
        this_year
    };
    Some((at, clock.get(end..).unwrap_or("")))
}

/// A log message without the level and thread tags that follow the time stamp (`[INFO ]`,
/// `<P1234:S2>`, `ERROR`, `-`).
fn strip_tags(rest: &str) -> &str {
    let mut text = rest.trim_start();
    loop {
        let before = text;
        if let Some(inner) = text.strip_prefix('[') {
            if let Some(end) = inner.find(']') {
                text = inner[end + 1..].trim_start();
            }
        } else if let Some(inner) = text.strip_prefix('<') {
            if let Some(end) = inner.find('>') {
                text = inner[end + 1..].trim_start();
            }
        } else if let Some(word) = text.split_whitespace().next() {
            let bare = word.trim_end_matches(':');
            if matches!(
                bare.to_ascii_uppercase().as_str(),
                "INFO" | "WARN" | "WARNING" | "ERROR" | "ERR" | "FATAL" | "DEBUG" | "TRACE" | "VERBOSE" | "-"
            ) {
                text = text[word.len()..].trim_start();
            }
        }
        if text.len() == before.len() {
            return text;
        }
    }
}

/// The text of a log's tail; a tail the read cap cut starts inside a line, which is dropped.
fn tail_text(data: &FileData) -> String {
    let text = data.text();
    if data.truncated {
        text.split_once('\n')
            .map_or_else(String::new, |(_, rest)| rest.to_string())
    } else {
        text
    }
}

/// `text` cut to at most `max` characters, whitespace runs made single spaces.
fn clip(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max {
        joined
    } else {
        let mut cut: String = joined.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// Every parser of this probe on one input, for the property tests and fuzz targets (`probes::fuzzing`).
pub(super) fn fuzz(_bytes: &[u8], text: &str, now: OffsetDateTime) {
    std::hint::black_box(is_debian_family(text));
    if let Some(package) = parse_rpm(text) {
        std::hint::black_box(release_of(&package.version));
    }
    std::hint::black_box(parse_dpkg(text));
    std::hint::black_box(parse_list_of_ddcs(text));
    std::hint::black_box(parse_sessions(text));
    let events = parse_registration_events(text, now);
    std::hint::black_box(summarize_registration(&events, now, Vec::new()));
    std::hint::black_box(verbose_setlog_classes(text));
    std::hint::black_box(log4j2_is_verbose(text));
    std::hint::black_box(conf_is_verbose(text));
    std::hint::black_box(monitor_restarts(text, now, now - Duration::days(1)));
    std::hint::black_box(parse_xdping(text, now));
    for line in text.lines() {
        std::hint::black_box(classify(line));
        std::hint::black_box(iso_time(line));
        std::hint::black_box(syslog_time(line, now));
        std::hint::black_box(clip(line, 40));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::testing;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-20 09:00:00 UTC);

    #[test]
    fn package_queries() {
        assert_eq!(
            parse_rpm("XenDesktopVDA-24.11.0.65-1.el9_x.x86_64\n"),
            Some(Package {
                name: "XenDesktopVDA",
                manager: "rpm",
                version: "24.11.0.65-1.el9_x".into()
            })
        );
        assert_eq!(parse_rpm("package XenDesktopVDA is not installed\n"), None);
        assert_eq!(parse_rpm(""), None);
        assert_eq!(
            parse_dpkg("install ok installed\t24.2.0.15-1.ubuntu22.04\n").map(|p| p.version),
            Some("24.2.0.15-1.ubuntu22.04".into())
        );
        // Removed, configuration kept: not installed.
        assert_eq!(
            parse_dpkg("deinstall ok config-files\t24.2.0.15-1.ubuntu22.04\n"),
            None
        );
        assert_eq!(parse_dpkg("install ok installed\t\n"), None);
        assert_eq!(
            parse_dpkg("dpkg-query: no packages found matching xendesktopvda\n"),
            None
        );

        assert_eq!(release_of("24.11.0.65-1.el9_x").as_deref(), Some("2411"));
        assert_eq!(release_of("24.2.0.15-1.ubuntu22.04").as_deref(), Some("2402"));
        assert_eq!(release_of("19.12.0.50").as_deref(), Some("1912"));
        assert_eq!(release_of("7.18.0.1"), None);
        assert_eq!(release_of("latest"), None);

        assert!(is_debian_family("ID=ubuntu\nID_LIKE=debian\n"));
        assert!(is_debian_family("ID=debian\n"));
        assert!(!is_debian_family("ID=\"rhel\"\nID_LIKE=\"fedora\"\n"));
        assert!(!is_debian_family("ID=sles\nID_LIKE=\"suse\"\n"));
    }

    #[test]
    fn controller_lists_and_sessions() {
        assert_eq!(
            parse_list_of_ddcs("ddc1.example.com ddc2.example.com\n"),
            vec!["ddc1.example.com", "ddc2.example.com"]
        );
        assert_eq!(
            parse_list_of_ddcs("ListOfDDCs = \"ddc1.example.com\"\n"),
            vec!["ddc1.example.com"]
        );
        assert!(parse_list_of_ddcs("\n").is_empty());

        let listed = "SessionId  User            State         Type     ClientAddress\n\
                      2          EXAMPLE\\alice   active        desktop  10.40.1.23\n\
                      3          EXAMPLE\\bob     disconnected  desktop  10.40.1.57\n\
                      4          EXAMPLE\\carol   connecting    app      10.40.1.60\n";
        assert_eq!(
            parse_sessions(listed),
            VdaSessions {
                active: 1,
                disconnected: 1,
                other: 1
            }
        );
        // No header: the state word is found anywhere on the line; a user named "active" under a
        // header is not mistaken for a state.
        assert_eq!(parse_sessions("7 EXAMPLE\\dave active\n").active, 1);
        let tricky = "Id User State\n1 active disconnected\n";
        assert_eq!(
            parse_sessions(tricky),
            VdaSessions {
                active: 0,
                disconnected: 1,
                other: 0
            }
        );
        assert_eq!(parse_sessions("SessionId User State\n"), VdaSessions::default());
        assert_eq!(parse_sessions("garbage\n\n"), VdaSessions::default());
    }

    #[test]
    fn log_time_stamps() {
        let t = |l: &str| line_time(l, NOW).map(|(t, rest)| (t, rest.to_string()));
        assert_eq!(
            t("2026-11-20 08:41:07.512 [INFO ] x"),
            Some((datetime!(2026-11-20 08:41:07.512 UTC), " [INFO ] x".into()))
        );
        assert_eq!(
            t("2026-11-20 08:12:40,118 DEBUG [pool] y").map(|(t, _)| t),
            Some(datetime!(2026-11-20 08:12:40.118 UTC))
        );
        assert_eq!(
            t("[2026-11-20T08:41:07Z] z"),
            Some((datetime!(2026-11-20 08:41:07 UTC), "] z".into()))
        );
        assert_eq!(
            t("2026-11-20T09:41:07.5+01:00 z").map(|(t, _)| t),
            Some(datetime!(2026-11-20 08:41:07.5 UTC))
        );
        assert_eq!(
            t("Nov 20 08:41:07 vda-rh01 ctxvda[1234]: x").map(|(t, _)| t),
            Some(datetime!(2026-11-20 08:41:07 UTC))
        );
        // A syslog stamp after now belongs to last year.
        assert_eq!(
            t("Dec 31 23:59:59 host x").map(|(t, _)| t),
            Some(datetime!(2025-12-31 23:59:59 UTC))
        );
        assert_eq!(
            t("Nov  2 07:00:00 host x").map(|(t, _)| t),
            Some(datetime!(2026-11-02 07:00:00 UTC))
        );
        assert_eq!(t("2026-13-20 08:41:07 bad month"), None);
        assert_eq!(t("\tat sun.security.krb5.KrbAsRep"), None);
        assert_eq!(t(""), None);
        assert_eq!(t("2026-11-2"), None);
    }

    #[test]
    fn registration_messages() {
        let kind = |m: &str| classify(m);
        assert_eq!(
            kind(
                "The Citrix Desktop Service successfully registered with delivery controller ddc1.example.com (IP Address 10.20.1.11)."
            ),
            Some(RegKind::Registered {
                controller: Some("ddc1.example.com".into())
            })
        );
        assert_eq!(
            kind("Registration with http://DDC2.example.com:80/Citrix/CdsController/IRegistrar succeeded"),
            Some(RegKind::Registered {
                controller: Some("ddc2.example.com".into())
            })
        );
        assert_eq!(
            kind("The Citrix Desktop Service failed to register with any delivery controller."),
            Some(RegKind::Failed)
        );
        assert_eq!(
            kind(
                "The Citrix Desktop Service cannot connect to the delivery controller 'http://ddc1.example.com:80/Citrix/CdsController/IRegistrar' (IP Address '10.20.1.11')."
            ),
            Some(RegKind::FailureDetail)
        );
        assert_eq!(
            kind(
                "The Citrix Desktop Service lost contact with the Citrix Desktop Delivery Controller Service on server 'ddc1.example.com'."
            ),
            Some(RegKind::Deregistered)
        );
        assert_eq!(
            kind("Deregistered from delivery controller ddc1.example.com: service stopping"),
            Some(RegKind::Deregistered)
        );
        // Not events.
        for message in [
            "The Citrix Desktop Service successfully obtained the following list of 2 delivery controller(s) with which to register: 'ddc1.example.com (10.20.1.11)'.",
            "Registering with delivery controller ddc1.example.com (10.20.1.11) on port 80",
            "The VDA is not registered with a delivery controller yet",
            "Session 2 connected (client 10.40.1.23)",
            "",
        ] {
            assert_eq!(kind(message), None, "{message}");
        }
        assert_eq!(
            reason_of("cannot connect. Error Details: Exception 'Clock skew too great' of type 'X'."),
            Some("Exception 'Clock skew too great' of type 'X'.".into())
        );
        assert_eq!(
            reason_of("failed to register with any delivery controller."),
            None
        );
        assert_eq!(strip_tags(" [ERROR] [7] Citrix.X: msg [1]"), "Citrix.X: msg [1]");
        assert_eq!(strip_tags(" ERROR [pool-2] Auth - msg"), "Auth - msg");
        assert_eq!(strip_tags(" <P1234:S2> citrix-ctxvda: msg"), "citrix-ctxvda: msg");
    }

    #[test]
    fn registration_history_from_log_text() {
        let log = "\
2026-11-19 06:00:00.000 [INFO ] The Citrix Desktop Service successfully registered with delivery controller ddc1.example.com (IP Address 10.20.1.11).
2026-11-19 10:00:00.000 [WARN ] The Citrix Desktop Service lost contact with the Citrix Desktop Delivery Controller Service on server 'ddc1.example.com'.
2026-11-19 10:00:05,000 ERROR [t] Registration failed for this machine
javax.security.auth.login.LoginException: Clock skew too great (37)
\tat sun.security.krb5.KrbAsRep.<init>(KrbAsRep.java:76)
2026-11-20 08:00:00.000 [WARN ] The Citrix Desktop Service failed to register with any delivery controller.
";
        let events = parse_registration_events(log, NOW);
        assert_eq!(events.len(), 4);
        assert_eq!(
            events[2].reason.as_deref(),
            Some("javax.security.auth.login.LoginException: Clock skew too great (37)")
        );
        let r = summarize_registration(&events, NOW, vec!["vda.log".into()]);
        assert_eq!(r.state, VdaRegistrationState::Unregistered);
        assert_eq!(r.last_registered, Some(datetime!(2026-11-19 06:00:00 UTC)));
        assert_eq!(r.last_registered_controller.as_deref(), Some("ddc1.example.com"));
        assert_eq!(r.last_failure, Some(datetime!(2026-11-20 08:00:00 UTC)));
        // The last failure says no why: the reason of its streak stands.
        assert_eq!(
            r.last_failure_reason.as_deref(),
            Some("javax.security.auth.login.LoginException: Clock skew too great (37)")
        );
        assert_eq!((r.failures_in_window, r.deregistrations_in_window), (2, 1));
        assert_eq!(r.window_secs, 86_400);

        // Only details logged: they are the attempts; a reasonless failure names its message.
        let details = "2026-11-20 08:00:00 cannot connect to the delivery controller ddc1.example.com\n\
                       2026-11-20 08:20:00 cannot connect to the delivery controller ddc2.example.com\n";
        let r = summarize_registration(&parse_registration_events(details, NOW), NOW, vec![]);
        assert_eq!(r.failures_in_window, 2);
        assert_eq!(
            r.last_failure_reason.as_deref(),
            Some("cannot connect to the delivery controller ddc2.example.com")
        );

        let nothing = summarize_registration(&parse_registration_events("no events\n", NOW), NOW, vec![]);
        assert_eq!(nothing.state, VdaRegistrationState::Unknown);
        assert_eq!(nothing.last_failure, None);
    }

    #[test]
    fn verbose_settings() {
        assert_eq!(
            verbose_setlog_classes("all = Warnings\nHDX = Verbose\nUSB = Inherited\n"),
            vec!["HDX"]
        );
        assert_eq!(
            verbose_setlog_classes("Class  Level\nall    Verbose\nVDA: verbose\n"),
            vec!["all", "VDA"]
        );
        assert!(verbose_setlog_classes("all = Fatal Errors\ngarbage\n").is_empty());

        let log4j = |root: &str| {
            format!(
                "<Configuration>\n<!-- set <Root level=\"debug\"> to troubleshoot -->\n<Appenders><Console name=\"c\"><ThresholdFilter level=\"trace\"/></Console></Appenders>\n<Loggers><Root level=\"{root}\"><AppenderRef ref=\"c\"/></Root></Loggers></Configuration>"
            )
        };
        assert!(!log4j2_is_verbose(&log4j("info")));
        assert!(log4j2_is_verbose(&log4j("DEBUG")));
        assert!(log4j2_is_verbose(
            "<Loggers><Logger name='com.citrix' level='trace'/></Loggers>"
        ));
        assert!(!log4j2_is_verbose("<Loggers><Root/></Loggers>"));

        assert!(conf_is_verbose(
            "[logging]\nLogLevel = Verbose ; troubleshooting\n"
        ));
        assert!(conf_is_verbose("log_level: debug\n"));
        assert!(!conf_is_verbose(
            "# LogLevel = Verbose\nLogLevel = Info\nPath = /var/log/xdl\n"
        ));
    }

    #[test]
    fn monitor_restarts_count_once_per_scan() {
        let log = "\
2026-11-19 08:00:00.000 [WARN ] Key process ctxhdx is not running: restarting ctxhdx.service
2026-11-19 10:00:00.000 [WARN ] Key process ctxhdx is not running: restarting ctxhdx.service
2026-11-19 10:00:03.000 [INFO ] ctxhdx.service restarted (pid 4242)
2026-11-19 10:05:00.000 [WARN ] Key process ctxhdx is not running: restarting ctxhdx.service
2026-11-20 01:00:00.000 [INFO ] Restarted ctxvda
2026-11-20 02:00:00.000 [INFO ] Cleaned up residual Xorg process 48211
2026-11-20 02:10:00.000 [INFO ] Xorg on display :3 restarted
restarting without a time stamp ctxhdx
";
        let counts = monitor_restarts(log, NOW, NOW - WINDOW);
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            vec![
                ("Xorg".to_string(), 1),
                ("ctxhdx".to_string(), 2),
                ("ctxvda".to_string(), 1)
            ]
        );
        assert!(monitor_restarts("", NOW, NOW - WINDOW).is_empty());
    }

    #[test]
    fn xdping_latest_run() {
        let log = "\
2026-11-20 08:40:41 ctxmonitord: XDPing analysis started
Checking one ........ [Fail]
2026-11-20 08:50:42 ctxmonitord: XDPing analysis started
Checking Linux VDA services ........................ [Pass]
Checking time synchronization with the domain ...... [Fail]
    Local clock is 412 seconds ahead
Checking log levels ................................ [Warning]
2026-11-20 08:51:06 [ERROR] a log line that is not a check
2026-11-20 08:51:07 ctxmonitord: XDPing analysis finished: 1 passed, 1 warning, 1 failed
";
        assert_eq!(
            parse_xdping(log, NOW),
            Some(XdpingRun {
                ran_at: Some(datetime!(2026-11-20 08:50:42 UTC)),
                passed: 1,
                warnings: 1,
                failed: 1,
                failed_checks: vec!["Checking time synchronization with the domain".into()],
            })
        );
        assert_eq!(
            parse_xdping("2026-11-20 08:40:41 XDPing analysis started\n", NOW),
            None
        );
        assert_eq!(parse_xdping("", NOW), None);
    }

    #[test]
    fn clipping() {
        assert_eq!(clip("  a \n b  ", 10), "a b");
        assert_eq!(clip("abcdefghij", 5), "abcd…");
        assert_eq!(clip("ééééé", 5), "ééééé");
    }

    fn vda(tree: &str) -> VdaSection {
        let Section::Vda(s) = testing::section(probe, &testing::context(tree)) else {
            panic!("not a vda section")
        };
        s
    }

    #[test]
    fn rpm_healthy_vda() {
        let s = vda("rpm-healthy");
        assert_eq!(
            (
                s.package.as_str(),
                s.version.as_str(),
                s.release.as_deref(),
                s.package_manager.as_str()
            ),
            ("XenDesktopVDA", "24.11.0.65-1.el9_x", Some("2411"), "rpm")
        );
        assert_eq!(
            s.controllers,
            Some(vec!["ddc1.example.com".into(), "ddc2.example.com".into()])
        );
        let r = &s.registration;
        assert_eq!(r.state, VdaRegistrationState::Registered);
        // Nothing in the newest vda log: the one before says when it registered.
        assert_eq!(
            r.sources,
            vec![
                "jproxy.log",
                "vda.2026-11-16.03.12.09.log",
                "vda.2026-11-10.09.00.44.log"
            ]
        );
        assert_eq!(r.last_registered, Some(datetime!(2026-11-10 09:00:52.318 UTC)));
        assert_eq!(r.last_registered_controller.as_deref(), Some("ddc1.example.com"));
        assert_eq!(
            (r.last_failure, r.failures_in_window, r.deregistrations_in_window),
            (None, 0, 0)
        );
        assert_eq!(
            s.sessions,
            Some(VdaSessions {
                active: 2,
                disconnected: 1,
                other: 0
            })
        );
        assert_eq!((s.xorg_processes, s.xorg_without_session), (Some(3), Some(0)));
        assert_eq!(
            (s.verbose_logging, s.verbose_logging_sources.len()),
            (Some(false), 0)
        );
        // Other probes' fixtures may add files to this folder: at least the ones written for this one.
        let dir = testing::fixture("rpm-healthy").join("var/log/xdl");
        let mine: u64 = [
            "jproxy.log",
            "ms.log",
            "msxdping.log",
            "vda.2026-11-10.09.00.44.log",
            "vda.2026-11-16.03.12.09.log",
        ]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).unwrap().len())
        .sum();
        let log_dir = s.log_dir.unwrap();
        assert!(log_dir.files >= 5 && log_dir.total_bytes >= mine, "{log_dir:?}");

        let monitor = s.monitor.unwrap();
        assert_eq!(monitor.restarts_in_window, Some(0));
        assert!(monitor.restarts_by_process.is_empty());
        assert_eq!(
            monitor.xdping,
            Some(XdpingRun {
                ran_at: Some(datetime!(2026-11-20 08:50:42 UTC)),
                passed: 13,
                warnings: 0,
                failed: 0,
                failed_checks: vec![],
            })
        );
    }

    #[test]
    fn deb_healthy_vda() {
        let s = vda("deb-healthy");
        assert_eq!(
            (
                s.package.as_str(),
                s.version.as_str(),
                s.release.as_deref(),
                s.package_manager.as_str()
            ),
            ("xendesktopvda", "24.2.0.15-1.ubuntu22.04", Some("2402"), "dpkg")
        );
        assert_eq!(s.controllers.as_ref().map(Vec::len), Some(2));
        let r = &s.registration;
        assert_eq!(r.state, VdaRegistrationState::Registered);
        assert_eq!(r.sources, vec!["jproxy.log", "vda.2026-11-18.22.05.31.log"]);
        assert_eq!(r.last_registered, Some(datetime!(2026-11-18 22:05:39.967 UTC)));
        assert_eq!(r.last_registered_controller.as_deref(), Some("ddc2.example.com"));
        assert_eq!((r.failures_in_window, r.deregistrations_in_window), (0, 0));
        assert_eq!(s.sessions.map(|x| (x.active, x.disconnected)), Some((1, 0)));
        assert_eq!((s.xorg_processes, s.xorg_without_session), (Some(1), Some(0)));
        assert_eq!(s.verbose_logging, Some(false));
        let xdping = s.monitor.and_then(|m| m.xdping).unwrap();
        assert_eq!((xdping.passed, xdping.warnings, xdping.failed), (12, 1, 0));
    }

    #[test]
    fn vda_unregistered() {
        let s = vda("vda-unregistered");
        assert_eq!(s.release.as_deref(), Some("2411"));
        assert_eq!(
            s.controllers,
            Some(vec!["ddc1.example.com".into(), "ddc2.example.com".into()])
        );
        let r = &s.registration;
        assert_eq!(r.state, VdaRegistrationState::Unregistered);
        assert_eq!(r.sources, vec!["jproxy.log", "vda.2026-11-19.06.00.12.log"]);
        assert_eq!(r.last_registered, Some(datetime!(2026-11-19 14:41:12.090 UTC)));
        assert_eq!(r.last_registered_controller.as_deref(), Some("ddc2.example.com"));
        assert_eq!(r.last_failure, Some(datetime!(2026-11-20 08:52:20.131 UTC)));
        assert_eq!(
            r.last_failure_reason.as_deref(),
            Some(
                "Exception 'Kerberos authentication failed: KRB_AP_ERR_SKEW (Clock skew too great)' of type 'System.Security.Authentication.AuthenticationException'."
            )
        );
        // Every 20 minutes since 19:12; the failure and the lost contact before the window do not count.
        assert_eq!(r.failures_in_window, 42);
        assert_eq!(r.deregistrations_in_window, 2);

        assert_eq!(s.sessions, Some(VdaSessions::default()));
        assert_eq!((s.xorg_processes, s.xorg_without_session), (Some(1), Some(1)));
        assert_eq!(s.verbose_logging, Some(true));
        assert_eq!(
            s.verbose_logging_sources,
            vec!["setlog:all", "/etc/xdl/log4j2.xml"]
        );
        assert_eq!(
            s.log_dir,
            Some(VdaLogDir {
                total_bytes: 85_847_780,
                files: 9
            })
        );
        let monitor = s.monitor.unwrap();
        assert_eq!(monitor.restarts_in_window, Some(0));
        let xdping = monitor.xdping.unwrap();
        assert_eq!(xdping.ran_at, Some(datetime!(2026-11-20 08:50:42 UTC)));
        assert_eq!((xdping.passed, xdping.warnings, xdping.failed), (10, 1, 3));
        assert_eq!(
            xdping.failed_checks,
            vec![
                "Checking time synchronization with the domain",
                "Checking Kerberos system keytab (/etc/krb5.keytab)",
                "Checking VDA registration"
            ]
        );
    }

    #[test]
    fn service_flapping_vda() {
        let s = vda("service-flapping");
        assert_eq!(s.registration.state, VdaRegistrationState::Registered);
        assert_eq!(
            s.registration.last_registered,
            Some(datetime!(2026-11-19 07:10:03.512 UTC))
        );
        assert_eq!((s.xorg_processes, s.xorg_without_session), (Some(2), Some(2)));
        let monitor = s.monitor.unwrap();
        // "restarting" and "restarted" 3 s apart are one restart; two crashes before the window.
        assert_eq!(monitor.restarts_in_window, Some(27));
        assert_eq!(
            monitor.restarts_by_process,
            vec![
                ProcessRestarts {
                    process: "ctxhdx".into(),
                    count: 26
                },
                ProcessRestarts {
                    process: "ctxjproxy".into(),
                    count: 1
                },
            ]
        );
        let xdping = monitor.xdping.unwrap();
        assert_eq!((xdping.passed, xdping.failed), (11, 2));
        assert_eq!(
            xdping.failed_checks,
            vec!["Checking Linux VDA services", "Checking ICA and CGP listeners"]
        );
    }

    #[test]
    fn no_vda_package_is_no_data() {
        assert_eq!(probe(&testing::context("disk-full")), Ok(ProbeOutput::NoData));
    }

    #[test]
    fn live_host_reports_cleanly() {
        let ctx = crate::probes::testing::live();
        match probe(&ctx) {
            Ok(ProbeOutput::NoData | ProbeOutput::Section(Section::Vda(_))) => {}
            other => panic!("{other:?}"),
        }
    }
}
