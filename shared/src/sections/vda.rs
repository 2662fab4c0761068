//! Section `vda`: Citrix VDA: package, controllers, registration, sessions, logs folder, monitor service.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct VdaSection {}
