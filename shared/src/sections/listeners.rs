//! Section `listeners`: Whether ICA (1494), CGP (2598) and 443 are listening.

use serde::{Deserialize, Serialize};

/// `listeners` probe: the VDA's TCP ports, from the kernel's socket tables. Present on any Linux host;
/// on a host without a VDA the ports are simply not listening.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ListenersSection {
    /// One entry per port looked at: 1494, 2598, 443, in that order.
    pub ports: Vec<ListeningPort>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ListeningPort {
    pub port: u16,
    /// What the VDA uses it for: `ica` (1494), `cgp` (2598, session reliability), `tls` (443, TLS-secured
    /// ICA).
    pub purpose: String,
    pub listening: bool,
    /// Local addresses it listens on, sorted; `0.0.0.0` and `::` mean every address.
    pub addresses: Vec<String>,
}
