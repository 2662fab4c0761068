//! Section `vda`: Citrix VDA: package, controllers, registration, sessions, logs folder, monitor service.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `vda` probe: the Linux VDA as installed and as its logs and tools describe it. Absent (no data)
/// on a host without the VDA package.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VdaSection {
    /// The package as its package manager names it: `XenDesktopVDA` (RPM) or `xendesktopvda` (Debian).
    pub package: String,
    /// The package version as the package manager reports it, e.g. `24.11.0.65-1.el9_x`.
    pub version: String,
    /// The Citrix release in its YYMM naming, from the version's first two fields (`24.11` is `2411`);
    /// `None` for versions that do not follow that scheme.
    pub release: Option<String>,
    /// The tool that reported the package: `rpm` or `dpkg`.
    pub package_manager: String,
    /// Delivery Controllers of `ListOfDDCs`, in their configured order; `None` when it could not be read.
    pub controllers: Option<Vec<String>>,
    pub registration: VdaRegistration,
    /// Sessions as `ctxqsession` lists them; `None` when it could not be run.
    pub sessions: Option<VdaSessions>,
    /// Running `Xorg` processes.
    pub xorg_processes: Option<u32>,
    /// `Xorg` processes beyond one per active or disconnected session: residues of ended sessions (or
    /// the X server of a local graphical console, on a host that runs one).
    pub xorg_without_session: Option<u32>,
    /// `/var/log/xdl`; `None` when the folder does not exist.
    pub log_dir: Option<VdaLogDir>,
    /// Whether a VDA log is set to its most detailed level (verbose, debug or trace), which fills the
    /// disk and slows the VDA; `None` when no log setting could be read.
    pub verbose_logging: Option<bool>,
    /// Where verbose logging was found, e.g. `setlog:all` or `/etc/xdl/log4j2.xml`; at most 10.
    pub verbose_logging_sources: Vec<String>,
    /// What the monitor service (`ctxmonitord`) logged; `None` when it left no log.
    pub monitor: Option<VdaMonitor>,
}

/// Registration with the Delivery Controllers, from the tails of the newest `vda*.log` and `jproxy.log`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VdaRegistration {
    /// The window the counts cover, in seconds before the snapshot time.
    pub window_secs: u64,
    /// The log files read (names in `/var/log/xdl`).
    pub sources: Vec<String>,
    /// From the latest registration event in the logs.
    pub state: VdaRegistrationState,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_registered: Option<OffsetDateTime>,
    /// The controller of the last successful registration, when the log names it.
    pub last_registered_controller: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_failure: Option<OffsetDateTime>,
    /// Why the last failed registration failed (the log's error details), at most 200 characters.
    pub last_failure_reason: Option<String>,
    /// Failed registration attempts in the window.
    pub failures_in_window: u32,
    /// Times the VDA lost or dropped its registration in the window.
    pub deregistrations_in_window: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VdaRegistrationState {
    /// The latest event is a successful registration.
    Registered,
    /// The latest event is a failed registration or a lost registration.
    Unregistered,
    /// The logs read hold no registration event.
    #[default]
    Unknown,
}

/// Session counts by state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VdaSessions {
    pub active: u32,
    pub disconnected: u32,
    /// Sessions in any other state (connecting, logging off, ...).
    pub other: u32,
}

/// The VDA's log folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct VdaLogDir {
    /// Sum of the sizes of the files in `/var/log/xdl` and its direct subfolders, in bytes.
    pub total_bytes: u64,
    pub files: u32,
}

/// The monitor service's logs: `/var/log/xdl/ms.log` (restarts of key processes) and
/// `/var/log/xdl/msxdping.log` (its periodic XDPing runs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VdaMonitor {
    /// Key processes the monitor service restarted in the window (same window as registration);
    /// `None` when `ms.log` could not be read.
    pub restarts_in_window: Option<u32>,
    /// Those restarts by process, most first, at most 5.
    pub restarts_by_process: Vec<ProcessRestarts>,
    /// The latest XDPing run in `msxdping.log`.
    pub xdping: Option<XdpingRun>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRestarts {
    pub process: String,
    pub count: u32,
}

/// One XDPing run's results.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct XdpingRun {
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub ran_at: Option<OffsetDateTime>,
    pub passed: u32,
    pub warnings: u32,
    pub failed: u32,
    /// Names of the failed checks, at most 10, each at most 120 characters.
    pub failed_checks: Vec<String>,
}
