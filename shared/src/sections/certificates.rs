//! Section `certificates`: Certificates at configured paths: subject, issuer, not-after.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CertificatesSection {}
