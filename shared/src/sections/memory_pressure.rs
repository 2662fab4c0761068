//! Section `memory_pressure`: Pressure stall information and OOM kills.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MemoryPressureSection {}
