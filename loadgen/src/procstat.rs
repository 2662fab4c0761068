//! CPU time and resident memory of the server's processes (the collector, or nginx's master and
//! workers), read from `/proc/PID/stat` and `/proc/PID/status` while the load runs.

use anyhow::{Context, Result};
use serde::Serialize;

/// `/proc/PID/stat` counts CPU time in USER_HZ, which the kernel ABI fixes at 100 on x86-64 and
/// arm64 (whatever the kernel's internal tick rate).
const USER_HZ: f64 = 100.0;

/// One reading of a set of processes: summed CPU seconds and resident memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    pub cpu_secs: f64,
    pub rss_kib: u64,
    /// Sum of each process's own peak (`VmHWM`): an upper bound of the peak of the sum.
    pub hwm_kib: u64,
}

pub fn read(pids: &[u32]) -> Result<Reading> {
    let mut r = Reading::default();
    for &pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .with_context(|| format!("reading /proc/{pid}/stat (is process {pid} running?)"))?;
        r.cpu_secs += cpu_secs(&stat).with_context(|| format!("parsing /proc/{pid}/stat"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        r.rss_kib += status_kib(&status, "VmRSS").unwrap_or(0);
        r.hwm_kib += status_kib(&status, "VmHWM").unwrap_or(0);
    }
    Ok(r)
}

/// This process's own CPU seconds (the load generator's cost, reported beside the server's).
pub fn own_cpu_secs() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    cpu_secs(&stat)
}

/// utime + stime (fields 14 and 15 of proc(5)). The command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its last `)`.
fn cpu_secs(stat: &str) -> Result<f64> {
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("no `)` in stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so utime (14) is fields[11].
    let utime: u64 = fields.get(11).context("no utime")?.parse().context("utime")?;
    let stime: u64 = fields.get(12).context("no stime")?.parse().context("stime")?;
    Ok((utime + stime) as f64 / USER_HZ)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// What the server used during the measured window.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServerUsage {
    pub processes: usize,
    pub cpu_secs: f64,
    /// CPU seconds per wall second over the window (1.0 = one core busy).
    pub cpu_cores: f64,
    pub rss_start_mib: f64,
    /// Highest resident memory among the samples (every 200 ms) in the window.
    pub rss_peak_mib: f64,
    pub rss_end_mib: f64,
    /// The kernel's own peak since each process started (VmHWM).
    pub vm_hwm_mib: f64,
}

/// Samples taken through a run.
#[derive(Debug)]
pub struct Sampler {
    pids: Vec<u32>,
    start: Reading,
    peak_rss_kib: u64,
    last: Reading,
}

impl Sampler {
    pub fn start(pids: Vec<u32>) -> Result<Sampler> {
        let start = read(&pids)?;
        Ok(Sampler {
            pids,
            start,
            peak_rss_kib: start.rss_kib,
            last: start,
        })
    }

    pub fn sample(&mut self) -> Result<()> {
        self.last = read(&self.pids)?;
        self.peak_rss_kib = self.peak_rss_kib.max(self.last.rss_kib);
        Ok(())
    }

    /// The usage over the window; if the processes are gone by now, up to the last reading.
    pub fn finish(mut self, window_secs: f64) -> ServerUsage {
        if let Err(e) = self.sample() {
            eprintln!("warning: server usage up to the last reading only: {e:#}");
        }
        let mib = |kib: u64| kib as f64 / 1024.0;
        let cpu = self.last.cpu_secs - self.start.cpu_secs;
        ServerUsage {
            processes: self.pids.len(),
            cpu_secs: cpu,
            cpu_cores: if window_secs > 0.0 { cpu / window_secs } else { 0.0 },
            rss_start_mib: mib(self.start.rss_kib),
            rss_peak_mib: mib(self.peak_rss_kib),
            rss_end_mib: mib(self.last.rss_kib),
            vm_hwm_mib: mib(self.last.hwm_kib),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat =
            "1234 (a (weird) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 99 1000 200";
        assert!((cpu_secs(stat).unwrap() - 3.0).abs() < 1e-9);
    }

    #[test]
    fn status_values_are_read_in_kib() {
        let status = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(1024));
        assert_eq!(status_kib(status, "VmHWM"), Some(2048));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        let r = read(&[std::process::id()]).unwrap();
        assert!(r.rss_kib > 0 && r.hwm_kib >= r.rss_kib);
        assert!(own_cpu_secs().unwrap() >= 0.0);
    }
}
