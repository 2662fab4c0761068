//! Section `services`: State, restarts and since-when of the Citrix and identity/time services; failed units.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `services` probe: the systemd units a Linux VDA depends on, and every failed unit. Absent (no
/// data) on a host not run by systemd.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServicesSection {
    /// The units looked at, in a fixed order (Citrix, then identity, then time), installed or not.
    pub units: Vec<ServiceUnit>,
    /// Units systemd lists as failed, any unit, at most 20.
    pub failed_units: Vec<String>,
    /// All failed units, also those beyond the 20 listed.
    pub failed_units_total: u32,
}

/// One unit as `systemctl show` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceUnit {
    /// The unit name asked for, e.g. `ctxhdx.service`.
    pub name: String,
    /// `false` when systemd knows no such unit (`LoadState=not-found`): not installed, not a failure.
    pub installed: bool,
    /// `LoadState`: `loaded`, `not-found`, `masked`, `error`, ...
    pub load_state: String,
    /// `ActiveState`: `active`, `inactive`, `failed`, `activating`, `deactivating`, `reloading`.
    pub active_state: Option<String>,
    /// `SubState`, e.g. `running`, `dead`, `failed`, `auto-restart`.
    pub sub_state: Option<String>,
    /// `Result` of the last run: `success`, `exit-code`, `signal`, `core-dump`, `timeout`,
    /// `start-limit-hit`, ...
    pub result: Option<String>,
    /// `UnitFileState`: `enabled`, `disabled`, `static`, `masked`, ...
    pub unit_file_state: Option<String>,
    /// Automatic restarts systemd made of the unit (`NRestarts`, systemd 235 and later).
    pub restarts: Option<u32>,
    /// Since when the unit is in its state: when it became active if active, else its last state change.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
}
