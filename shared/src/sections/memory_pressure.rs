//! Section `memory_pressure`: pressure stall information (PSI) and OOM kills.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `memory_pressure` probe: how much time tasks lose waiting for CPU, memory and I/O, and what the
/// kernel's OOM killer did.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MemoryPressureSection {
    /// `/proc/pressure/cpu`; `None` when the kernel has no PSI (before Linux 4.20, or `psi=0`).
    /// (Boxed, here and below, only to keep the section small in memory; the JSON is the same.)
    pub cpu: Option<Box<Pressure>>,
    /// `/proc/pressure/memory`; `None` as for `cpu`.
    pub memory: Option<Box<Pressure>>,
    /// `/proc/pressure/io`; `None` as for `cpu`.
    pub io: Option<Box<Pressure>>,
    /// OOM kills since boot (`oom_kill` in `/proc/vmstat`, Linux 4.13 and later).
    pub oom_kills_since_boot: Option<u64>,
    /// Processes the OOM killer killed in the 24 h before the snapshot, newest first, at most 20,
    /// from the kernel log (`journalctl -k`). `None`: the kernel log could not be searched (no
    /// journalctl, or one built without pattern matching); an empty list: it was, and holds none.
    pub oom_kills_recent: Option<Vec<OomKill>>,
}

/// One PSI file: the `some` line (at least one task stalled) and the `full` line (all non-idle
/// tasks stalled; absent for CPU before Linux 5.13).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pressure {
    pub some: PressureFigures,
    pub full: Option<PressureFigures>,
}

/// Share of wall time stalled, in percent, averaged over 10 s, 60 s and 300 s, and the total stall
/// time since boot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PressureFigures {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Microseconds stalled since boot.
    pub total_us: u64,
}

/// One process killed by the OOM killer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomKill {
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub pid: u32,
    /// The kernel's name of the process (`comm`, at most 15 bytes), e.g. `ctxgfx`.
    pub process: String,
}
