//! Section `services`: State, restarts and since-when of the Citrix and identity/time services; failed units.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServicesSection {}
