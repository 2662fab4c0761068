//! Section `identity`: Hostname rules, Kerberos realm and keytab principals, domain membership, resolver.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct IdentitySection {}
