//! Host rules: one area per file, every rule registered in [`HOST_RULES`], in catalog order.

use super::HostRule;

mod controllers;
mod identity;
mod listeners;
mod services;
mod time;
mod vda;

/// Every host rule, grouped by area. The order is the catalog's order (docs, `rules list`).
pub static HOST_RULES: &[HostRule] = &[
    time::SKEW_OVER_KERBEROS,
    time::CLOCK_NOT_SYNCHRONISED,
    time::NO_NTP_CLIENT,
    services::VDA_DOWN,
    services::HDX_DOWN,
    services::OTHER_CITRIX_UNIT_DOWN,
    services::RESTART_STORM,
    services::IDENTITY_SERVICE_DOWN,
    services::FAILED_UNITS,
    vda::UNREGISTERED,
    vda::REPEATED_DEREGISTRATION,
    vda::NEVER_REGISTERED,
    vda::XORG_WITHOUT_SESSION,
    vda::XDPING_FAILED,
    controllers::NO_CONTROLLERS,
    controllers::CONTROLLER_UNRESOLVED,
    controllers::SINGLE_CONTROLLER,
    controllers::CONTROLLER_PORT_UNREACHABLE,
    identity::KEYTAB_WITHOUT_HOST_PRINCIPAL,
    identity::HOSTNAME_RULES,
    identity::NOT_JOINED,
    listeners::ICA_CLOSED,
    listeners::CGP_CLOSED,
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
