//! `system` probe: OS, kernel, architecture, uptime, CPUs, load average, memory and swap, from
//! `sysinfo` (which reads `/proc` on Linux).

use callhome_shared::{LoadAverage, MemoryInfo, SystemSection};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, System};
use time::OffsetDateTime;

use super::{ProbeFailure, ProbeOutput, Section};

pub(super) fn probe() -> Result<ProbeOutput, ProbeFailure> {
    let mut sys = System::new().map_err(|e| ProbeFailure(format!("sysinfo: {e}")))?;
    sys.refresh_memory_specifics(MemoryRefreshKind::everything());
    sys.refresh_cpu_list(CpuRefreshKind::nothing());

    let uptime_secs = System::uptime().map_err(|e| ProbeFailure(format!("uptime: {e}")))?;
    let boot_time = System::boot_time().map_err(|e| ProbeFailure(format!("boot time: {e}")))?;
    let load = System::load_average().map_err(|e| ProbeFailure(format!("load average: {e}")))?;
    let cpu_count = match sys.cpus().len() {
        0 => std::thread::available_parallelism().map_or(0, usize::from),
        n => n,
    };

    Ok(ProbeOutput::Section(Section::System(SystemSection {
        os_name: System::name().ok(),
        os_version: System::os_version().ok(),
        kernel: System::kernel_version().ok(),
        arch: System::cpu_arch(),
        uptime_secs,
        boot_time: boot_time_of(boot_time)?,
        cpu_count: u32::try_from(cpu_count).unwrap_or(u32::MAX),
        physical_cores: System::physical_core_count()
            .ok()
            .and_then(|n| u32::try_from(n).ok()),
        load_average: LoadAverage {
            one: load.one,
            five: load.five,
            fifteen: load.fifteen,
        },
        memory: MemoryInfo {
            total_bytes: sys.total_memory(),
            available_bytes: sys.available_memory(),
            used_bytes: sys.used_memory(),
            swap_total_bytes: sys.total_swap(),
            swap_free_bytes: sys.free_swap(),
        },
    })))
}

/// Boot time as a UTC timestamp, from seconds since the epoch.
fn boot_time_of(secs: u64) -> Result<OffsetDateTime, ProbeFailure> {
    i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .ok_or_else(|| ProbeFailure(format!("boot time {secs} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_host_gives_sane_values() {
        let ProbeOutput::Section(Section::System(s)) = probe().unwrap() else {
            panic!("system probe gave no system section");
        };
        assert!(s.cpu_count > 0, "{s:?}");
        assert!(s.memory.total_bytes > 0, "{s:?}");
        assert!(s.memory.available_bytes <= s.memory.total_bytes, "{s:?}");
        assert!(s.memory.swap_free_bytes <= s.memory.swap_total_bytes, "{s:?}");
        assert!(!s.arch.is_empty());
        assert!(s.boot_time < OffsetDateTime::now_utc());
        assert!(s.load_average.one >= 0.0);
        assert!(s.kernel.is_some_and(|k| !k.is_empty()));
    }

    #[test]
    fn boot_time_converts_and_refuses_overflow() {
        assert_eq!(
            boot_time_of(1_700_000_000).unwrap().unix_timestamp(),
            1_700_000_000
        );
        assert!(boot_time_of(u64::MAX).is_err());
    }
}
