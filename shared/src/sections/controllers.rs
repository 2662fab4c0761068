//! Section `controllers`: Each configured Delivery Controller: DNS forward and reverse, TCP connect.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ControllersSection {}
