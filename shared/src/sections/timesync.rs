//! Section `timesync`: clock synchronisation, offset, and the Kerberos clock-skew setting.

use serde::{Deserialize, Serialize};

/// `timesync` probe: whether the clock is synchronised, by how much it is off, and how much skew
/// Kerberos tolerates. Kerberos (and so AD logons and VDA registration with the Delivery Controller)
/// fails once the clock is further off than the tolerated skew.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TimesyncSection {
    /// The tools that answered, in the order they were asked: `chronyc`, `timedatectl`.
    pub sources: Vec<String>,
    /// Whether the system clock is synchronised to a time source; `None`: no tool could say.
    /// From chrony's leap status (anything but "Not synchronised"), else systemd's
    /// `NTPSynchronized` (the kernel's view, whichever daemon keeps time).
    pub synchronized: Option<bool>,
    /// System clock minus reference time, in milliseconds: positive when the clock is ahead (chrony
    /// says "fast of NTP time"), negative when behind ("slow"). `None`: unknown (only chrony tells).
    pub offset_ms: Option<f64>,
    /// Whether an NTP client is enabled for the clock (`timedatectl`'s `NTP`).
    pub ntp_enabled: Option<bool>,
    /// chrony's leap status: `Normal`, `Insert second`, `Delete second` or `Not synchronised`.
    pub leap_status: Option<String>,
    /// The reference chrony follows (its name, else its reference ID).
    pub reference: Option<String>,
    /// NTP stratum of this host (chrony).
    pub stratum: Option<u32>,
    /// Most clock skew Kerberos tolerates, in seconds (`clockskew` in `[libdefaults]` of
    /// `/etc/krb5.conf`; 300 when not set, per krb5.conf(5)). `None` only when set to a value that
    /// cannot be read as a duration.
    pub kerberos_clockskew_secs: Option<u64>,
    /// Whether `clockskew` was set explicitly (otherwise the figure above is the library default).
    pub kerberos_clockskew_explicit: bool,
}
