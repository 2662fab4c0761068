//! Section `disks`: space and inodes of every real mount.

use serde::{Deserialize, Serialize};

/// `disks` probe: every real (block-device backed) mount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisksSection {
    pub mounts: Vec<DiskMount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiskMount {
    pub mount_point: String,
    pub device: String,
    pub fs_type: String,
    pub read_only: bool,
    pub total_bytes: u64,
    /// Bytes an unprivileged user can still write (statvfs `f_bavail`), the figure that matters for
    /// services that do not run as root.
    pub available_bytes: u64,
    /// `available_bytes / total_bytes` in percent, rounded to one decimal.
    pub free_percent: f64,
    pub inodes_total: Option<u64>,
    pub inodes_free: Option<u64>,
    pub inodes_free_percent: Option<f64>,
}
