//! Host rules: one area per file, every rule registered in [`HOST_RULES`], in catalog order.

use super::HostRule;

mod time;

/// Every host rule, grouped by area. The order is the catalog's order (docs, `rules list`).
pub static HOST_RULES: &[HostRule] = &[
    time::SKEW_OVER_KERBEROS,
    // Areas DISK, LOG, MEM, CRASH, UPD, CERT, AGENT, PROBE.
    disks::FREE_LOW,
    disks::FREE_CRITICAL,
    disks::INODES_LOW,
    disks::READ_ONLY,
    logs::VERBOSE,
    logs::DIR_SIZE,
    logs::ERROR_STORM,
    memory::OOM_CITRIX,
    memory::OOM_OTHER,
    memory::PRESSURE,
    memory::SWAP,
    crashes::CORE_CITRIX,
    crashes::CORE_OTHER,
    updates::REBOOT_PENDING,
    updates::SECURITY_PENDING,
    updates::MANY_PENDING,
    certificates::EXPIRING,
    certificates::EXPIRED,
    agent::VERSION_UNSUPPORTED,
    agent::SPOOL_LOSS,
    probes::PROBE_FAILED,
];

// Areas DISK, LOG, MEM, CRASH, UPD, CERT, AGENT, PROBE.
mod agent;
mod certificates;
mod crashes;
mod disks;
mod logs;
mod memory;
mod probes;
mod updates;

pub(crate) use agent::MIN_SUPPORTED_AGENT_VERSION;
