//! Section `updates`: Pending reboot and pending security updates.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct UpdatesSection {}
