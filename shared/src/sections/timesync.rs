//! Section `timesync`: Clock synchronisation, offset, and the Kerberos clock-skew setting.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TimesyncSection {}
