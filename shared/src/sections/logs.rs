//! Section `logs`: errors and warnings in the last 24 h of the VDA logs, and the most frequent ones.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `logs` probe: `/var/log/xdl/hdx.log`, `vda*.log` and `jproxy.log`, read from their tail.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LogsSection {
    /// The window, in seconds before the snapshot time (24 h).
    pub window_secs: u64,
    /// Error entries in the window, all files.
    pub errors: u64,
    /// Warning entries in the window, all files.
    pub warnings: u64,
    /// Each log file looked at.
    pub files: Vec<LogFile>,
    /// The most frequent error and warning messages in the window, most frequent first, at most 10;
    /// numbers, hex values, ids and times are replaced by placeholders so that repeats group.
    pub top_messages: Vec<LogMessage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogFile {
    pub path: String,
    /// The file's size.
    pub size_bytes: u64,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub modified: Option<OffsetDateTime>,
    /// Bytes read from the file's end.
    pub read_bytes: u64,
    /// The file is larger than the read cap (`probes.logs.max_read_bytes`): only its tail was read.
    pub truncated: bool,
    /// Whether what was read reaches back to the start of the window: `false` when the file was cut
    /// by the cap and its oldest line read is inside the window, so the counts are a lower bound.
    pub window_covered: bool,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub oldest_read: Option<OffsetDateTime>,
    pub errors: u64,
    pub warnings: u64,
    /// Lines read that carry no time and follow no timed line (so cannot be placed in the window).
    pub untimed_lines: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogMessage {
    pub level: LogLevel,
    /// The file's name, e.g. `hdx.log`.
    pub file: String,
    /// The normalised message, at most 200 characters.
    pub message: String,
    pub count: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Error,
    Warning,
}
