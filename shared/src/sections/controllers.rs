//! Section `controllers`: each configured Delivery Controller: DNS forward and reverse, TCP connect.

use serde::{Deserialize, Serialize};

/// `controllers` probe: can this VDA find and reach the Delivery Controllers it registers with?
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ControllersSection {
    /// The registration port tried (config `controllers.port`).
    pub port: u16,
    /// Connect timeout used, in milliseconds (config `controllers.connect_timeout_ms`).
    pub connect_timeout_ms: u64,
    /// Why the controller list could not be read (`ctxreg` failed), if it could not.
    pub list_error: Option<String>,
    /// One entry per controller in the VDA's `ListOfDDCs`, in order, at most 16.
    pub controllers: Vec<ControllerCheck>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ControllerCheck {
    /// The name as configured.
    pub name: String,
    /// Addresses the name resolves to (`getent ahosts`), in resolver order, at most 8; empty when it
    /// does not resolve.
    pub addresses: Vec<String>,
    /// The name the first address resolves back to (`getent hosts ADDR`).
    pub reverse_name: Option<String>,
    /// Whether that name is the configured one (case-insensitive, trailing dot ignored; a short
    /// configured name matches the first label). `None` when there was nothing to compare.
    pub reverse_matches: Option<bool>,
    /// Whether a TCP connection to the registration port was established.
    pub reachable: bool,
    /// Time the TCP connect took, in milliseconds.
    pub connect_ms: Option<u64>,
    /// Why the connect failed: `refused`, `timed_out`, `not_found` or `other`.
    pub connect_error_kind: Option<String>,
    /// The error message of a failed connect.
    pub connect_error: Option<String>,
}
