//! Section `agent`: The agent's own health: spool depth, last delivery, snapshots dropped.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentSection {}
