//! Section `updates`: pending reboot and pending (security) updates.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `updates` probe. Every figure is `None` when the package tools could not say it quickly and
/// offline (the probe never lets a package manager reach the network).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdatesSection {
    /// `dpkg` or `rpm`; `None`: neither family recognised.
    pub package_family: Option<String>,
    /// Whether updates installed since boot need a reboot: `/var/run/reboot-required` on the Debian
    /// family; `needs-restarting -r`, else a newer installed kernel than the running one, on the RPM
    /// family.
    pub reboot_required: Option<bool>,
    /// Since when a reboot has been pending: the time `/var/run/reboot-required` was written, or
    /// the install time of the newest kernel when that kernel is not running.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub reboot_required_since: Option<OffsetDateTime>,
    /// Packages that asked for the reboot (`/var/run/reboot-required.pkgs`, or the list of
    /// `needs-restarting -r`), at most 20.
    #[serde(default)]
    pub reboot_packages: Vec<String>,
    /// The running kernel (`/proc/sys/kernel/osrelease`).
    pub running_kernel: Option<String>,
    /// The most recently installed kernel package (RPM family), as `version-release.arch`.
    pub newest_kernel: Option<String>,
    /// Packages with a pending update, from the local package cache.
    pub pending_updates: Option<u64>,
    /// Of those, packages whose update comes from a security repository or advisory.
    pub pending_security_updates: Option<u64>,
    /// When the package tool computed the two pending figures (`None`: it gave none). On a live
    /// host they are kept in the agent's state directory and reused while the package database and
    /// repository metadata are unchanged, up to a maximum age.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub pending_computed_at: Option<OffsetDateTime>,
    /// The pending figures come from that cache, not from a run of the package tool in this snapshot.
    #[serde(default)]
    pub pending_from_cache: bool,
}
