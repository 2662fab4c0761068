//! Section `logs`: Errors and warnings in the last 24 h of the VDA logs, most frequent messages.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LogsSection {}
