//! One typed section per probe, each in its own file and keyed by the probe's name.
//!
//! A section's types say what the probe found, in the units the rules reason in (bytes, seconds,
//! UTC times, counts). Fields a section cannot always know are `Option`s: `None` means "could not be
//! determined on this host", which rules treat as absent input, never as a healthy value.
//! Known sections tolerate fields they do not know (a newer agent may add some); the collector
//! stores the document as received, so nothing is lost.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub mod agent;
pub mod certificates;
pub mod controllers;
pub mod crashes;
pub mod disks;
pub mod identity;
pub mod listeners;
pub mod logs;
pub mod memory_pressure;
pub mod services;
pub mod system;
pub mod timesync;
pub mod updates;
pub mod vda;

pub use agent::*;
pub use certificates::*;
pub use controllers::*;
pub use crashes::*;
pub use disks::*;
pub use identity::*;
pub use listeners::*;
pub use logs::*;
pub use memory_pressure::*;
pub use services::*;
pub use system::*;
pub use timesync::*;
pub use updates::*;
pub use vda::*;

/// The sections of a snapshot. Sections this version does not know are kept raw in `other` and
/// written back unchanged.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Sections {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<DisksSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vda: Option<VdaSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub services: Option<ServicesSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners: Option<ListenersSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timesync: Option<TimesyncSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentitySection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controllers: Option<ControllersSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_pressure: Option<MemoryPressureSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatesSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updates: Option<UpdatesSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crashes: Option<CrashesSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogsSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentSection>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Sections {
    /// The names of the sections present, typed or raw.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        if self.system.is_some() {
            names.push("system");
        }
        if self.disks.is_some() {
            names.push("disks");
        }
        if self.vda.is_some() {
            names.push("vda");
        }
        if self.services.is_some() {
            names.push("services");
        }
        if self.listeners.is_some() {
            names.push("listeners");
        }
        if self.timesync.is_some() {
            names.push("timesync");
        }
        if self.identity.is_some() {
            names.push("identity");
        }
        if self.controllers.is_some() {
            names.push("controllers");
        }
        if self.memory_pressure.is_some() {
            names.push("memory_pressure");
        }
        if self.certificates.is_some() {
            names.push("certificates");
        }
        if self.updates.is_some() {
            names.push("updates");
        }
        if self.crashes.is_some() {
            names.push("crashes");
        }
        if self.logs.is_some() {
            names.push("logs");
        }
        if self.agent.is_some() {
            names.push("agent");
        }
        names.extend(self.other.keys().map(String::as_str));
        names
    }
}
