//! Section `crashes`: core dumps of Citrix processes in the last 7 days.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `crashes` probe: core dumps of Citrix processes (executable name starting with `ctx`, or under
/// `/opt/Citrix/`) in the 7 days before the snapshot.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CrashesSection {
    /// Where the crashes were read: `coredumpctl` (systemd-coredump) or `apport` (`/var/crash`).
    pub source: Option<String>,
    /// The window, in seconds before the snapshot time (7 days).
    pub window_secs: u64,
    /// Citrix crashes in the window.
    pub citrix_crashes: u64,
    /// Crashes of any other program in the window, for context.
    pub other_crashes: u64,
    /// Per Citrix executable: how many times it crashed in the window and when last.
    pub by_executable: Vec<CrashCount>,
    /// The newest Citrix crashes, newest first, at most 10.
    pub recent: Vec<Crash>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashCount {
    /// Full path of the executable, e.g. `/opt/Citrix/VDA/bin/ctxgfx`.
    pub executable: String,
    pub count: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub last: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crash {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub executable: String,
    pub pid: Option<u32>,
    /// Signal name, e.g. `SIGSEGV`, or the number when it has no common name.
    pub signal: Option<String>,
    /// Whether the core file is still stored (coredumpctl's `present`, `missing`, `none`, ...).
    pub corefile: Option<String>,
}
