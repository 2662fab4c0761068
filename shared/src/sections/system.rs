//! Section `system`: OS, kernel, uptime, CPUs, load, memory and swap (from `/proc`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `system` probe: OS, kernel, uptime, CPU, load, memory and swap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSection {
    pub os_name: Option<String>,
    pub os_version: Option<String>,
    pub kernel: Option<String>,
    pub arch: String,
    pub uptime_secs: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub boot_time: OffsetDateTime,
    /// Logical CPUs.
    pub cpu_count: u32,
    pub physical_cores: Option<u32>,
    pub load_average: LoadAverage,
    pub memory: MemoryInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryInfo {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub used_bytes: u64,
    pub swap_total_bytes: u64,
    pub swap_free_bytes: u64,
}
