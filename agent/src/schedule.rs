//! When the daemon takes a snapshot: a cron line, a random splay, and catch-up after downtime.
//!
//! - **Cron**: standard 5-field lines (`minute hour day-of-month month day-of-week`, with names,
//!   ranges, lists and steps) and the `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly` forms,
//!   as crontab(5) documents them, including its rule that a line restricting both day fields fires
//!   when *either* matches. A 6-field line with a leading seconds field is accepted too (tests use
//!   `* * * * * *`, every second). Lines are evaluated in **UTC**: the agent has no reliable local
//!   zone in a container, and the splay spreads a fleet anyway.
//!   Parsing is croner's (croner 4, with none of its date-library features: it searches over our own
//!   `time` values through its `CronDateTime` trait). We chose croner over the `cron` crate because
//!   `cron` requires a seconds field (so it refuses plain crontab lines) and joins the two day fields
//!   with AND, unlike crontab(5).
//! - **Splay**: each run happens at its slot plus a random delay in `[0, splay]`, drawn afresh for
//!   every run, so that 100,000 agents on the same line spread over the splay (SPEC §5) and no
//!   agent lands on the same offset every time.
//! - **Catch-up**: the time of the last run is kept in `STATE_DIR/schedule.json`. If a slot passed
//!   while the agent was not running (host off, agent stopped), one run happens soon after start
//!   (within the splay, at most a minute), not one per missed slot.

use std::cmp::Ordering;
use std::path::{Path, PathBuf};
use std::time::Duration;

use croner::parser::{CronParser, Seconds, Year};
use croner::{CivilDate, CivilDateTime, CivilTime, Cron, CronDateTime, Resolution, Weekday};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::spool::fs::{OsFs, write_atomic};

/// File in the state directory holding the last run's time.
pub const LAST_RUN_FILE: &str = "schedule.json";

/// Longest delay before a catch-up run: soon after start, but still spread over a fleet that boots
/// together (a datacentre coming back).
const CATCH_UP_MAX_DELAY: Duration = Duration::from_secs(60);

/// The longest interval of a line is measured over at least this many of its next slots...
const INTERVAL_MIN_SLOTS: usize = 50;
/// ...and over at least this span, so that a weekday-only line's weekend gap is seen...
const INTERVAL_MIN_SPAN: time::Duration = time::Duration::days(8);
/// ...but never over more slots than this (an every-second line would need 700,000).
const INTERVAL_MAX_SLOTS: usize = 5_000;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    line: String,
    splay: Duration,
}

impl Schedule {
    /// Parses a cron line; the error says what is wrong with it.
    pub fn new(line: &str, splay: Duration) -> Result<Schedule, String> {
        // croner accepts an empty list item (`,` or `1,,2`) as a field that matches nothing, and its
        // search for the first slot of such a line walks for minutes (found by fuzzing).
        if let Some(field) = line
            .split_whitespace()
            .find(|f| !f.starts_with('@') && f.split(',').any(str::is_empty))
        {
            return Err(format!("`{line}` is not a cron line: empty item in `{field}`"));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(line)
            .map_err(|e| format!("`{line}` is not a cron line: {e}"))?;
        let schedule = Schedule {
            cron,
            line: line.to_string(),
            splay,
        };
        // A line that names an impossible date (`0 0 30 2 *`) parses but never fires.
        if schedule.next_slot(OffsetDateTime::UNIX_EPOCH).is_none() {
            return Err(format!("`{line}` never fires"));
        }
        Ok(schedule)
    }

    pub fn line(&self) -> &str {
        &self.line
    }

    pub fn splay(&self) -> Duration {
        self.splay
    }

    /// The first slot strictly after `after`, or `None` when the line never fires again.
    pub fn next_slot(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        self.cron
            .find_next_occurrence(&Utc(after), false)
            .ok()
            .map(|u| u.0)
    }

    /// The longest gap between two consecutive slots after `from`, over the next slots (at least
    /// 50 and 8 days' worth, at most 5,000). `None` when the line has fewer than two slots left.
    pub fn longest_interval(&self, from: OffsetDateTime) -> Option<Duration> {
        let mut previous = self.next_slot(from)?;
        let start = previous;
        let mut longest: Option<time::Duration> = None;
        for n in 1..=INTERVAL_MAX_SLOTS {
            let Some(slot) = self.next_slot(previous) else {
                break;
            };
            let gap = slot - previous;
            longest = Some(longest.map_or(gap, |l| l.max(gap)));
            previous = slot;
            if n >= INTERVAL_MIN_SLOTS && slot - start >= INTERVAL_MIN_SPAN {
                break;
            }
        }
        longest.and_then(|l| Duration::try_from(l).ok())
    }

    /// The longest wait between two runs the schedule allows: the longest interval between slots
    /// plus the whole splay (a run drawn at the end of its splay, the next one at its slot).
    pub fn promised_interval(&self, from: OffsetDateTime) -> Option<Duration> {
        self.longest_interval(from).map(|i| i + self.splay)
    }

    /// When the next run should start, given the time now and the last run (from the state
    /// directory, `None` on a first start): a missed slot means one catch-up run soon; otherwise
    /// the next slot plus a fresh splay.
    pub fn next_run(&self, now: OffsetDateTime, last_run: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
        if let Some(last) = last_run
            && let Some(missed) = self.next_slot(last)
            && missed <= now
        {
            let delay = random_below(self.splay.min(CATCH_UP_MAX_DELAY));
            tracing::info!(
                missed = %missed,
                in_secs = delay.as_secs(),
                "a scheduled run was missed while the agent was not running: catching up once"
            );
            return Some(now + delay);
        }
        let slot = self.next_slot(now)?;
        Some(slot + random_below(self.splay))
    }
}

/// A uniformly random duration in `[0, max]`, at millisecond resolution.
pub fn random_below(max: Duration) -> Duration {
    let millis = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(random_u64() % (millis + 1))
}

/// 64 random bits from the system's generator (ring, already linked for TLS). A failure of the
/// generator (no getrandom, no /dev/urandom) falls back to the clock's nanoseconds: a splay or a
/// jitter needs spread, not secrecy.
pub fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    match ring::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => {
            let now = OffsetDateTime::now_utc();
            (now.unix_timestamp_nanos() as u64).rotate_left(17) ^ u64::from(std::process::id())
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct LastRun {
    #[serde(with = "time::serde::rfc3339")]
    last_run: OffsetDateTime,
}

/// The last run's time, kept in the state directory for catch-up.
#[derive(Debug, Clone)]
pub struct LastRunFile {
    dir: PathBuf,
}

impl LastRunFile {
    pub fn new(state_dir: &Path) -> LastRunFile {
        LastRunFile {
            dir: state_dir.to_path_buf(),
        }
    }

    /// `None` when never run (or unreadable: then no catch-up, which is the safe side).
    pub fn load(&self) -> Option<OffsetDateTime> {
        let path = self.dir.join(LAST_RUN_FILE);
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice::<LastRun>(&bytes) {
            Ok(last) => Some(last.last_run),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "cannot read the last run time");
                None
            }
        }
    }

    pub fn save(&self, at: OffsetDateTime) {
        let result = serde_json::to_vec(&LastRun { last_run: at })
            .map_err(std::io::Error::other)
            .and_then(|bytes| write_atomic(&OsFs::default(), &self.dir, LAST_RUN_FILE, &bytes));
        if let Err(error) = result {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot save the last run time");
        }
    }
}

/// An instant in UTC, for croner's search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Utc(OffsetDateTime);

impl CronDateTime for Utc {
    fn to_civil(&self) -> CivilDateTime {
        let t = self.0;
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(t.year(), u32::from(u8::from(t.month())), u32::from(t.day())),
            CivilTime::from_parts_unchecked(
                u32::from(t.hour()),
                u32::from(t.minute()),
                u32::from(t.second()),
            ),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(u32::from(self.0.weekday().number_days_from_sunday()))
    }

    fn resolve_civil(&self, civil: CivilDateTime) -> Result<Resolution<Self>, croner::errors::CronError> {
        use croner::errors::CronError;
        let month = u8::try_from(civil.month())
            .ok()
            .and_then(|m| time::Month::try_from(m).ok())
            .ok_or(CronError::InvalidDate)?;
        let day = u8::try_from(civil.day()).map_err(|_| CronError::InvalidDate)?;
        let date =
            time::Date::from_calendar_date(civil.year(), month, day).map_err(|_| CronError::InvalidDate)?;
        let clock = time::Time::from_hms(
            u8::try_from(civil.hour()).map_err(|_| CronError::InvalidTime)?,
            u8::try_from(civil.minute()).map_err(|_| CronError::InvalidTime)?,
            u8::try_from(civil.second()).map_err(|_| CronError::InvalidTime)?,
        )
        .map_err(|_| CronError::InvalidTime)?;
        // UTC has no daylight saving time: every wall clock time happens exactly once.
        Ok(Resolution::Single(Utc(date.with_time(clock).assume_utc())))
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0.checked_add(time::Duration::seconds(seconds)).map(Utc)
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn slots(line: &str, from: OffsetDateTime, n: usize) -> Vec<OffsetDateTime> {
        let s = Schedule::new(line, Duration::ZERO).unwrap();
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..n {
            t = s.next_slot(t).unwrap();
            out.push(t);
        }
        out
    }

    #[test]
    fn standard_lines_and_nicknames() {
        let from = datetime!(2026-11-20 09:17:30 UTC);
        let cases: &[(&str, &[OffsetDateTime])] = &[
            (
                "0 * * * *",
                &[datetime!(2026-11-20 10:00 UTC), datetime!(2026-11-20 11:00 UTC)],
            ),
            (
                "@hourly",
                &[datetime!(2026-11-20 10:00 UTC), datetime!(2026-11-20 11:00 UTC)],
            ),
            (
                "@daily",
                &[datetime!(2026-11-21 00:00 UTC), datetime!(2026-11-22 00:00 UTC)],
            ),
            (
                "*/20 8-17 * * mon-fri",
                &[datetime!(2026-11-20 09:20 UTC), datetime!(2026-11-20 09:40 UTC)],
            ),
            // Friday 20 November 2026: the next Saturday 03:30 is the 21st.
            (
                "30 3 * * sat",
                &[datetime!(2026-11-21 03:30 UTC), datetime!(2026-11-28 03:30 UTC)],
            ),
            // crontab(5): with both day fields restricted, either one matching is enough.
            (
                "0 0 1 * mon",
                &[datetime!(2026-11-23 00:00 UTC), datetime!(2026-11-30 00:00 UTC)],
            ),
            (
                "* * * * * *",
                &[
                    datetime!(2026-11-20 09:17:31 UTC),
                    datetime!(2026-11-20 09:17:32 UTC),
                ],
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(slots(line, from, expected.len()), expected.to_vec(), "{line}");
        }
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        for (line, expected) in [
            ("", "not a cron line"),
            ("61 * * * *", "not a cron line"),
            ("* * *", "not a cron line"),
            ("0 0 * * * * 2030", "not a cron line"),
            ("every hour", "not a cron line"),
            ("0 0 30 2 *", "never fires"),
            (", */4 * * *", "empty item in `,`"),
            ("1,,2 * * * *", "empty item in `1,,2`"),
        ] {
            let err = Schedule::new(line, Duration::ZERO).unwrap_err();
            assert!(err.contains(expected), "{line:?}: {err}");
        }
    }

    #[test]
    fn splay_is_drawn_afresh_within_its_bounds() {
        let s = Schedule::new("0 * * * *", Duration::from_secs(900)).unwrap();
        let now = datetime!(2026-11-20 09:17:30 UTC);
        let runs: Vec<OffsetDateTime> = (0..50).map(|_| s.next_run(now, None).unwrap()).collect();
        let slot = datetime!(2026-11-20 10:00 UTC);
        for r in &runs {
            assert!(*r >= slot && *r <= slot + time::Duration::seconds(900), "{r}");
        }
        let distinct: std::collections::BTreeSet<_> = runs.iter().collect();
        assert!(
            distinct.len() > 40,
            "splay is not random: {} distinct of 50",
            distinct.len()
        );
    }

    #[test]
    fn one_catch_up_run_after_downtime_then_back_on_schedule() {
        let s = Schedule::new("0 * * * *", Duration::ZERO).unwrap();
        let now = datetime!(2026-11-20 09:17:30 UTC);
        // Last ran at 05:00: four slots were missed; one run now, not four.
        assert_eq!(s.next_run(now, Some(datetime!(2026-11-20 05:00 UTC))), Some(now));
        // After that run, the regular schedule.
        assert_eq!(s.next_run(now, Some(now)), Some(datetime!(2026-11-20 10:00 UTC)));
        // Last ran at 09:05 (within this hour): nothing was missed.
        assert_eq!(
            s.next_run(now, Some(datetime!(2026-11-20 09:05 UTC))),
            Some(datetime!(2026-11-20 10:00 UTC))
        );
        // First start: no catch-up.
        assert_eq!(s.next_run(now, None), Some(datetime!(2026-11-20 10:00 UTC)));
    }

    #[test]
    fn catch_up_is_spread_over_at_most_a_minute() {
        let s = Schedule::new("@daily", Duration::from_secs(900)).unwrap();
        let now = datetime!(2026-11-20 09:17:30 UTC);
        for _ in 0..20 {
            let run = s.next_run(now, Some(datetime!(2026-11-18 00:00 UTC))).unwrap();
            assert!(run >= now && run <= now + time::Duration::seconds(60), "{run}");
        }
    }

    #[test]
    fn last_run_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = LastRunFile::new(dir.path());
        assert_eq!(file.load(), None);
        let t = datetime!(2026-11-20 09:00 UTC);
        file.save(t);
        assert_eq!(LastRunFile::new(dir.path()).load(), Some(t));
        std::fs::write(dir.path().join(LAST_RUN_FILE), b"{garbage").unwrap();
        assert_eq!(file.load(), None);
    }

    #[test]
    fn longest_interval_sees_irregular_lines_whole() {
        let from = datetime!(2026-11-20 09:17:30 UTC);
        let interval = |line: &str| {
            Schedule::new(line, Duration::ZERO)
                .unwrap()
                .longest_interval(from)
        };
        let hours = |h: u64| Some(Duration::from_secs(h * 3600));
        assert_eq!(interval("0 * * * *"), hours(1));
        assert_eq!(interval("@daily"), hours(24));
        assert_eq!(interval("* * * * * *"), Some(Duration::from_secs(1)));
        // Hours 0, 6 and 12: the gap from 12:00 to the next 00:00 is the longest.
        assert_eq!(interval("0 0,6,12 * * *"), hours(12));
        // Friday 17:40 to Monday 08:00, though the first 50 slots are all 20 minutes apart.
        assert_eq!(
            interval("*/20 8-17 * * mon-fri"),
            Some(Duration::from_secs(((2 * 24 + 14) * 60 + 20) * 60))
        );
        // 31 days: 50 months always include a long month.
        assert_eq!(interval("@monthly"), hours(31 * 24));
    }

    #[test]
    fn promised_interval_adds_the_whole_splay() {
        let s = Schedule::new("0 * * * *", Duration::from_secs(900)).unwrap();
        let from = datetime!(2026-11-20 09:17:30 UTC);
        assert_eq!(s.promised_interval(from), Some(Duration::from_secs(3600 + 900)));
    }

    #[test]
    fn random_below_stays_in_range() {
        assert_eq!(random_below(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(random_below(Duration::from_millis(10)) <= Duration::from_millis(10));
        }
    }
}
