//! Section `crashes`: Core dumps of Citrix processes in the last 7 days.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CrashesSection {}
