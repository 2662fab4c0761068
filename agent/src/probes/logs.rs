//! `logs` probe: errors and warnings in the last 24 h of the Linux VDA's logs under `/var/log/xdl/`,
//! and the most frequent messages.
//!
//! Files (Citrix Linux VDA docs, "Log collection"): `hdx.log` (ctxlogd: graphics, login, audio;
//! 200 MiB, rotated to `hdx.log.1`), `jproxy.log` (registration, authentication; log4j2) and the
//! VDA's `vda.YYYY-MM-DD.hh.mm.ss.log` (registration), so every `vda*.log`. Only files written in the
//! window are read (an older one cannot hold a line of it), at most [`MAX_FILES`], newest first; each
//! from its tail, up to the probe's `max_read_bytes`, and a file larger than that is reported
//! `truncated` (with `window_covered` saying whether the tail still reaches back 24 h).
//!
//! Lines: hdx.log writes `2017-11-20 10:14:45.236 <P29390> citrix-ctxhdx: TdTcpRead: poll timed
//! out!` (newer releases `<P29390:S3>`, with the session). The parser takes a leading time in any of
//! `YYYY-MM-DD HH:MM:SS[.,frac]`, the same with `T` and a zone (`Z`, `+01:00`, `+0100`), either in
//! `[...]`, or syslog's `Mon DD HH:MM:SS`. Times without a zone are the host's local time, whose
//! offset comes from `date +%z` (UTC if that fails). A line without a time continues the entry
//! above it (a stack trace, a wrapped message) and is not counted on its own; untimed lines before
//! the first timed one cannot be placed in the window, are not counted and are reported as
//! `untimed_lines`. When the tail was cut, its first (partial) line is skipped.
//!
//! Levels: an explicit level word near the start of the line (`ERROR`, `FATAL`, `SEVERE`, `WARN`,
//! `WARNING`, `INFO`, ... as log4j and most loggers write it) decides. hdx.log has none (ctxlogd
//! writes only what the `setlog` level lets through, warnings and up by default), so for lines
//! without one the message's words decide: `error`, `failed`, `failure`, `fatal`, `exception` →
//! error; `warning`, `warn` → warning; else neither. This is a heuristic, and says so here.
//!
//! Messages are grouped after replacing ids, hex values and numbers by `<id>`, `<hex>`, `<n>` (digits
//! glued to letters, as in `ddc1`, stay: they are part of a name), and cut to 200 characters.

use std::collections::HashMap;
use std::io;

use callhome_shared::{LogFile, LogLevel, LogMessage, LogsSection};
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

use super::{ProbeContext, ProbeFailure, ProbeOutput, Section};

const LOG_DIR: &str = "/var/log/xdl";
const WINDOW: time::Duration = time::Duration::hours(24);
const MAX_FILES: usize = 8;
const TOP_MESSAGES: usize = 10;
const MAX_MESSAGE_CHARS: usize = 200;

pub(super) fn probe(ctx: &ProbeContext) -> Result<ProbeOutput, ProbeFailure> {
    let entries = match ctx.source.list_dir(LOG_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ProbeOutput::NoData),
        Err(e) => return Err(ProbeFailure::reading(LOG_DIR, &e)),
    };
    let now = ctx.now();
    let start = now - WINDOW;
    let mut logs: Vec<_> = entries
        .into_iter()
        .filter(|e| !e.metadata.is_dir && is_vda_log(&e.name))
        .filter(|e| e.metadata.modified.is_none_or(|m| m >= start))
        .collect();
    logs.sort_by_key(|e| std::cmp::Reverse(e.metadata.modified));
    logs.truncate(MAX_FILES);
    logs.sort_by(|a, b| a.name.cmp(&b.name));

    let offset = host_utc_offset(ctx);
    let mut section = LogsSection {
        window_secs: WINDOW.whole_seconds().unsigned_abs(),
        ..LogsSection::default()
    };
    let mut messages: HashMap<(LogLevel, String), (u64, OffsetDateTime, String)> = HashMap::new();
    for entry in logs {
        let path = format!("{LOG_DIR}/{}", entry.name);
        let data = match ctx.read_tail(&path) {
            Ok(data) => data,
            Err(error) => {
                tracing::debug!(%path, %error, "log not readable");
                continue;
            }
        };
        let scan = scan(&data.text(), data.truncated, offset, start, now);
        for (key, (count, last)) in scan.messages {
            let slot = messages.entry(key).or_insert((0, last, entry.name.clone()));
            slot.0 += count;
            if last >= slot.1 {
                slot.1 = last;
                slot.2 = entry.name.clone();
            }
        }
        section.errors += scan.errors;
        section.warnings += scan.warnings;
        section.files.push(LogFile {
            path,
            size_bytes: data.len,
            modified: entry.metadata.modified,
            read_bytes: data.bytes.len() as u64,
            truncated: data.truncated,
            window_covered: !data.truncated || scan.oldest.is_some_and(|t| t <= start),
            oldest_read: scan.oldest,
            errors: scan.errors,
            warnings: scan.warnings,
            untimed_lines: scan.untimed,
        });
    }
    let mut top: Vec<LogMessage> = messages
        .into_iter()
        .map(|((level, message), (count, last_seen, file))| LogMessage {
            level,
            file,
            message,
            count,
            last_seen,
        })
        .collect();
    top.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then(a.level.cmp(&b.level))
            .then(b.last_seen.cmp(&a.last_seen))
            .then(a.message.cmp(&b.message))
    });
    top.truncate(TOP_MESSAGES);
    section.top_messages = top;
    Ok(ProbeOutput::Section(Section::Logs(section)))
}

fn is_vda_log(name: &str) -> bool {
    name == "hdx.log" || name == "jproxy.log" || (name.starts_with("vda") && name.ends_with(".log"))
}

/// The host's current UTC offset (`date +%z`, e.g. `+0100`), for log and crash times written in local
/// time; UTC when it cannot be learnt. (Daylight-saving changes inside a window are not corrected.)
pub(super) fn host_utc_offset(ctx: &ProbeContext) -> UtcOffset {
    ctx.run(&["date", "+%z"])
        .ok()
        .filter(|o| o.success())
        .and_then(|o| parse_numeric_offset(o.stdout_text().trim()))
        .unwrap_or(UtcOffset::UTC)
}

/// `+0100`, `-05:30`, `Z`.
fn parse_numeric_offset(s: &str) -> Option<UtcOffset> {
    if s == "Z" {
        return Some(UtcOffset::UTC);
    }
    let sign = match s.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i8 = digits[..2].parse().ok()?;
    let minutes: i8 = digits[2..].parse().ok()?;
    UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()
}

/// What one file's tail holds in the window.
#[derive(Debug, Default)]
struct Scan {
    errors: u64,
    warnings: u64,
    untimed: u64,
    oldest: Option<OffsetDateTime>,
    messages: HashMap<(LogLevel, String), (u64, OffsetDateTime)>,
}

fn scan(text: &str, truncated: bool, offset: UtcOffset, start: OffsetDateTime, now: OffsetDateTime) -> Scan {
    let mut out = Scan::default();
    let mut lines = text.lines();
    if truncated {
        // The cut falls anywhere: the first line is most likely a fragment.
        lines.next();
    }
    let mut seen_timed = false;
    for line in lines {
        let Some((time, rest)) = parse_time(line, offset, now) else {
            if !seen_timed && !line.trim().is_empty() {
                out.untimed += 1;
            }
            continue;
        };
        seen_timed = true;
        out.oldest = Some(out.oldest.map_or(time, |o| o.min(time)));
        if time < start || time > now {
            continue;
        }
        let Some(level) = level_of(rest) else {
            continue;
        };
        match level {
            LogLevel::Error => out.errors += 1,
            LogLevel::Warning => out.warnings += 1,
        }
        let slot = out.messages.entry((level, normalise(rest))).or_insert((0, time));
        slot.0 += 1;
        slot.1 = slot.1.max(time);
    }
    out
}

/// A leading time and the rest of the line.
fn parse_time(line: &str, offset: UtcOffset, now: OffsetDateTime) -> Option<(OffsetDateTime, &str)> {
    let s = line.trim_start();
    let bracketed = s.strip_prefix('[');
    let s = bracketed.unwrap_or(s);
    let (time, rest) = parse_iso_like(s, offset).or_else(|| parse_syslog(s, offset, now))?;
    let rest = if bracketed.is_some() {
        rest.trim_start().strip_prefix(']').unwrap_or(rest)
    } else {
        rest
    };
    Some((time, rest.trim_start()))
}

/// `YYYY-MM-DD[ T]HH:MM:SS[.,fraction][zone]`.
fn parse_iso_like(s: &str, local: UtcOffset) -> Option<(OffsetDateTime, &str)> {
    let b = s.as_bytes();
    if b.len() < 19 || !matches!(b[10], b' ' | b'T') {
        return None;
    }
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    // `get`: byte 19 may fall inside a multi-byte character of a line that is not a timestamp.
    let mut head = s.get(..19)?.to_string();
    head.replace_range(10..11, " ");
    let naive = PrimitiveDateTime::parse(&head, format).ok()?;
    let mut i = 19;
    let mut nanos = 0u32;
    if matches!(b.get(i), Some(b'.' | b',')) {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        let frac = &s[i + 1..i + 1 + digits];
        let scaled: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = scaled.parse().unwrap_or(0);
        i += 1 + digits;
    }
    let naive = naive.replace_nanosecond(nanos).unwrap_or(naive);
    let rest = &s[i..];
    let (offset, rest) = if let Some(r) = rest.strip_prefix('Z') {
        (UtcOffset::UTC, r)
    } else if rest.starts_with(['+', '-']) {
        let len = if rest.as_bytes().get(3) == Some(&b':') {
            6
        } else {
            5
        };
        match rest.get(..len).and_then(parse_numeric_offset) {
            Some(o) => (o, &rest[len..]),
            None => (local, rest),
        }
    } else {
        (local, rest)
    };
    Some((naive.assume_offset(offset), rest))
}

/// syslog's `Nov 20 08:12:03` (no year: the one that puts the time not after `now`).
fn parse_syslog(s: &str, local: UtcOffset, now: OffsetDateTime) -> Option<(OffsetDateTime, &str)> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| s.starts_with(m))? + 1;
    let rest = s.get(3..)?.trim_start();
    let (day, rest) = rest.split_once(' ')?;
    let (clock, rest) = rest.split_at_checked(8)?;
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let year = now.to_offset(local).year();
    let at = |y: i32| {
        PrimitiveDateTime::parse(&format!("{y}-{month:02}-{:0>2} {clock}", day.trim()), format)
            .ok()
            .map(|t| t.assume_offset(local))
    };
    let t = at(year)?;
    let t = if t > now + time::Duration::days(1) {
        at(year - 1)?
    } else {
        t
    };
    Some((t, rest))
}

fn level_of(rest: &str) -> Option<LogLevel> {
    for token in rest.split_whitespace().take(6) {
        let word = token
            .trim_matches(|c: char| !c.is_ascii_alphabetic())
            .to_ascii_uppercase();
        match word.as_str() {
            "ERROR" | "ERR" | "FATAL" | "CRITICAL" | "CRIT" | "SEVERE" | "EMERG" | "ALERT" => {
                return Some(LogLevel::Error);
            }
            "WARN" | "WARNING" => return Some(LogLevel::Warning),
            "INFO" | "INFORMATION" | "DEBUG" | "TRACE" | "VERBOSE" | "NOTICE" | "FINE" => return None,
            _ => {}
        }
    }
    let lower = rest.to_ascii_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
        .collect();
    if words.iter().any(|w| {
        matches!(
            *w,
            "error" | "errors" | "failed" | "failure" | "fatal" | "exception"
        )
    }) {
        Some(LogLevel::Error)
    } else if words.iter().any(|w| matches!(*w, "warning" | "warn")) {
        Some(LogLevel::Warning)
    } else {
        None
    }
}

/// Replaces what varies between repeats of one message: UUIDs, `0x` values, long hex runs, numbers
/// (not the digits of a name like `ddc1`); drops hdx.log's `<P123:S4>` process marker; cuts to
/// [`MAX_MESSAGE_CHARS`].
fn normalise(message: &str) -> String {
    // hdx.log's process (and session) marker, `<P29390>` or `<P29390:S3>`.
    let message = match message.strip_prefix("<P").and_then(|m| m.split_once('>')) {
        Some((marker, rest))
            if marker
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b':' || b == b'S') =>
        {
            rest
        }
        _ => message,
    };
    let chars: Vec<char> = message.chars().collect();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < chars.len() {
        let at_start = i == 0 || !word(chars[i - 1]);
        if at_start {
            if let Some(len) = uuid_at(&chars[i..]) {
                out.push_str("<id>");
                i += len;
                continue;
            }
            if chars[i] == '0' && matches!(chars.get(i + 1), Some('x' | 'X')) {
                let len = chars[i + 2..]
                    .iter()
                    .take_while(|c| c.is_ascii_hexdigit())
                    .count();
                if len > 0 {
                    out.push_str("<hex>");
                    i += 2 + len;
                    continue;
                }
            }
            let run = chars[i..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
            let ends_word = chars.get(i + run).is_none_or(|c| !word(*c));
            if run >= 8
                && ends_word
                && chars[i..i + run].iter().any(char::is_ascii_digit)
                && chars[i..i + run].iter().any(char::is_ascii_alphabetic)
            {
                out.push_str("<hex>");
                i += run;
                continue;
            }
        }
        if chars[i].is_ascii_digit() {
            let end = i + chars[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            // Digits glued to letters are part of a name (`ddc1`, `vda-rh01`, `el9`): kept, so that
            // a host name stays whole (and redaction can still recognise it).
            let glued = (i > 0 && chars[i - 1].is_ascii_alphabetic())
                || chars.get(end).is_some_and(char::is_ascii_alphabetic);
            if glued {
                out.extend(&chars[i..end]);
            } else {
                out.push_str("<n>");
            }
            i = end;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    let collapsed = out.split_whitespace().collect::<Vec<_>>().join(" ");
    collapsed.chars().take(MAX_MESSAGE_CHARS).collect()
}

/// Length of a UUID (8-4-4-4-12 hex, optionally in braces) at the start of `s`.
fn uuid_at(s: &[char]) -> Option<usize> {
    let braced = s.first() == Some(&'{');
    let body = if braced { &s[1..] } else { s };
    let groups = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (n, len) in groups.iter().enumerate() {
        if body.len() < i + len || !body[i..i + len].iter().all(char::is_ascii_hexdigit) {
            return None;
        }
        i += len;
        if n < 4 {
            if body.get(i) != Some(&'-') {
                return None;
            }
            i += 1;
        }
    }
    if braced {
        (body.get(i) == Some(&'}')).then_some(i + 2)
    } else {
        Some(i)
    }
}

/// Every parser of this probe on one input, for the property tests and fuzz targets (`probes::fuzzing`).
pub(super) fn fuzz(_bytes: &[u8], text: &str, now: OffsetDateTime) {
    let start = now - time::Duration::days(1);
    std::hint::black_box(scan(text, false, UtcOffset::UTC, start, now));
    std::hint::black_box(scan(text, true, UtcOffset::UTC, start, now));
    for line in text.lines() {
        std::hint::black_box(is_vda_log(line));
        std::hint::black_box(parse_numeric_offset(line));
        std::hint::black_box(parse_time(line, UtcOffset::UTC, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::testing;
    use time::macros::{datetime, offset};

    const NOW: OffsetDateTime = datetime!(2026-11-20 09:00:00 UTC);

    #[test]
    fn times_of_the_formats_vda_logs_use() {
        let cases: &[(&str, Option<OffsetDateTime>, &str)] = &[
            (
                "2017-11-20 10:14:45.236 <P29390> citrix-ctxhdx: TdTcpRead: poll timed out!",
                Some(datetime!(2017-11-20 09:14:45.236 UTC)),
                "<P29390> citrix-ctxhdx: TdTcpRead: poll timed out!",
            ),
            (
                "2026-11-20 08:00:01,123 ERROR [main] BrokerAgent - x",
                Some(datetime!(2026-11-20 07:00:01.123 UTC)),
                "ERROR [main] BrokerAgent - x",
            ),
            (
                "2026-11-20T08:00:01.5+02:00 WARN y",
                Some(datetime!(2026-11-20 06:00:01.5 UTC)),
                "WARN y",
            ),
            (
                "[2026-11-20T08:00:01Z] [ERROR] z",
                Some(datetime!(2026-11-20 08:00:01 UTC)),
                "[ERROR] z",
            ),
            (
                "Nov 20 08:12:03 vda-rh01 ctxjproxy[812]: w",
                Some(datetime!(2026-11-20 07:12:03 UTC)),
                "vda-rh01 ctxjproxy[812]: w",
            ),
            // December of last year, seen in January.
            ("Dec 31 23:59:59 x", Some(datetime!(2025-12-31 22:59:59 UTC)), "x"),
            ("\tat com.citrix.Foo.bar(Foo.java:12)", None, ""),
            ("2026-13-45 99:00:00 nonsense", None, ""),
            ("", None, ""),
        ];
        for (line, want, rest) in cases {
            let got = parse_time(line, offset!(+1), NOW);
            assert_eq!(got.map(|g| g.0), *want, "{line}");
            if let Some((_, r)) = got {
                assert_eq!(r, *rest, "{line}");
            }
        }
        let january = datetime!(2026-01-02 00:00:00 UTC);
        assert_eq!(
            parse_time("Dec 31 23:59:59 x", UtcOffset::UTC, january).map(|g| g.0),
            Some(datetime!(2025-12-31 23:59:59 UTC))
        );
    }

    #[test]
    fn levels_explicit_first_then_words() {
        assert_eq!(level_of("ERROR [main] ok"), Some(LogLevel::Error));
        assert_eq!(level_of("[WARN] x failed"), Some(LogLevel::Warning));
        assert_eq!(level_of("INFO registration failed? no, just a word"), None);
        assert_eq!(
            level_of("<P29390> citrix-ctxhdx: DeviceWaitForRead: TdTcpRead failed: 45."),
            Some(LogLevel::Error)
        );
        assert_eq!(
            level_of("<P1> citrix-ctxhdx: Warning: CTXCAM not available"),
            Some(LogLevel::Warning)
        );
        assert_eq!(
            level_of("<P29390> citrix-ctxhdx: TdTcpRead: poll timed out!"),
            None
        );
        assert_eq!(level_of("errorless terror"), None);
    }

    #[test]
    fn repeats_group_after_normalising() {
        let a = normalise(
            "<P29390:S3> citrix-ctxgfx: frame 1234 failed, handle 0x7f3a2c, session {0F8FAD5B-D9CB-469F-A165-70867728950E} id deadbeef01",
        );
        let b = normalise(
            "<P311:S12> citrix-ctxgfx: frame 99 failed, handle 0x1, session 6ba7b810-9dad-11d1-80b4-00c04fd430c8 id 00ff00ff77",
        );
        assert_eq!(
            a,
            "citrix-ctxgfx: frame <n> failed, handle <hex>, session <id> id <hex>"
        );
        assert_eq!(a, b);
        assert_eq!(normalise("TdTcpRead: Exit: TIMEOUT"), "TdTcpRead: Exit: TIMEOUT");
        assert_eq!(normalise("from 10.20.30.41:53122"), "from <n>.<n>.<n>.<n>:<n>");
        assert_eq!(
            normalise("<P1180> cannot reach ddc1.example.com in 30 s"),
            "cannot reach ddc1.example.com in <n> s"
        );
        assert_eq!(
            normalise("<P7:S12> /tmp/.ctxsession-5120 mode 1920x1080"),
            "/tmp/.ctxsession-<n> mode 1920x1080"
        );
        assert_eq!(normalise(&"x".repeat(500)).chars().count(), 200);
    }

    #[test]
    fn untimed_lines_continue_the_entry_above_and_the_window_applies() {
        let text = "\
orphan line before any time
2026-11-20 08:00:00.000 <P1> citrix-ctxhdx: connect failed
\tcontinuation mentioning error
2026-11-18 08:00:00.000 <P1> citrix-ctxhdx: connect failed
2026-11-20 08:30:00.000 <P1> citrix-ctxhdx: Warning: slow
2026-11-20 08:40:00.000 <P2> citrix-ctxhdx: connect failed
";
        let s = scan(text, false, UtcOffset::UTC, NOW - WINDOW, NOW);
        assert_eq!((s.errors, s.warnings, s.untimed), (2, 1, 1));
        assert_eq!(s.oldest, Some(datetime!(2026-11-18 08:00:00 UTC)));
        let (count, last) = s.messages[&(LogLevel::Error, "citrix-ctxhdx: connect failed".to_string())];
        assert_eq!((count, last), (2, datetime!(2026-11-20 08:40:00 UTC)));
        // A cut tail drops its first line, which is only a fragment.
        let s = scan(text, true, UtcOffset::UTC, NOW - WINDOW, NOW);
        assert_eq!(s.untimed, 0);
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_numeric_offset("+0100"), Some(offset!(+1)));
        assert_eq!(parse_numeric_offset("-05:30"), Some(offset!(-5:30)));
        assert_eq!(parse_numeric_offset("CET"), None);
    }

    #[test]
    fn rpm_healthy_hdx_log() {
        let Section::Logs(s) = testing::section(probe, &testing::context("rpm-healthy")) else {
            panic!()
        };
        assert_eq!(s.window_secs, 86_400);
        let hdx = s.files.iter().find(|f| f.path == "/var/log/xdl/hdx.log").unwrap();
        assert!(!hdx.truncated && hdx.window_covered);
        // Errors: two read failures and the TLS handshake; the 06:58 ones are older than 24 h.
        assert_eq!((hdx.errors, hdx.warnings), (3, 4));
        assert_eq!(
            s.top_messages[0].message,
            "citrix-ctxhdx: TdTcpRead: read failed, Status=<hex>"
        );
        assert_eq!(
            (s.top_messages[0].level, s.top_messages[0].count),
            (LogLevel::Error, 2)
        );
        assert_eq!(
            s.top_messages[1].message,
            "citrix-ctxaudio: Warning: PulseAudio sink not ready, retrying in <n> s"
        );
        assert!(s.top_messages.len() <= 10);
    }

    #[test]
    fn a_log_over_the_cap_is_counted_from_its_tail_only() {
        let config = crate::config::Config::from_toml("[probes.logs]\nmax_read_bytes = 65536\n").unwrap();
        let cap = config
            .enabled_probes(crate::probes::PROBES)
            .iter()
            .find(|p| p.probe.name == "logs")
            .map(|p| p.max_read_bytes)
            .unwrap();
        assert_eq!(cap, 65536);
        // The runner gives each probe the cap its config table sets; the test context takes it here.
        let ctx = crate::probes::ProbeContext {
            max_read_bytes: cap,
            ..testing::context_with("log-over-cap", config)
        };
        let Section::Logs(s) = testing::section(probe, &ctx) else {
            panic!()
        };
        let hdx = &s.files[0];
        assert_eq!(hdx.path, "/var/log/xdl/hdx.log");
        assert!(hdx.size_bytes > 150_000, "{hdx:?}");
        assert_eq!(hdx.read_bytes, 65536);
        assert!(hdx.truncated);
        // The tail starts at 2026-11-19 21:00, inside the window: the counts are a lower bound.
        assert!(!hdx.window_covered);
        assert_eq!(hdx.oldest_read, Some(datetime!(2026-11-19 21:00:00.004 UTC)));
        // Generated so that the last 64 KiB hold exactly these (`log-over-cap/.callhome/generate-hdx-log.py`).
        assert_eq!((hdx.errors, hdx.warnings), (240, 120));
        assert!(
            !s.top_messages.iter().any(|m| m.message.contains("IcaStackOpen")),
            "a message only in the unread head was counted: {:?}",
            s.top_messages
        );
        assert_eq!(s.top_messages[0].count, 240);
    }
}
