//! Section `listeners`: Whether ICA (1494), CGP (2598) and 443 are listening.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ListenersSection {}
