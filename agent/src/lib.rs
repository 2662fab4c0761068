//! The callhome agent: probes the host, builds a health [`Snapshot`](callhome_shared::Snapshot) and
//! delivers it over TLS to the collector.
//!
//! Modules in flow order: [`config`] (what the operator asked for), [`state`] (host id and enrollment
//! on disk), [`probes`] (one file per probe, one registration table), [`snapshot`] (the envelope),
//! [`spool`] (snapshots waiting for the collector, durable on disk), [`deliver`] (HTTPS to the
//! collector, retry classification and backoff), [`schedule`] (cron line, splay, catch-up),
//! [`daemon`] (collect → redact → spool → deliver, once for `send` or on the schedule for `run`),
//! [`check`] (the rule catalog evaluated locally), and [`cli`] (the commands, exit codes and output
//! lines).
//!
//! Invariants: stdout carries only what a command promises (the snapshot JSON of `collect`, the one
//! result line of `enroll` and `send`); logs go to stderr; the credential and the enrollment token never
//! reach a log line.

pub mod check;
pub mod cli;
pub mod client_cert;
pub mod config;
pub mod daemon;
pub mod deliver;
#[doc(hidden)]
pub mod fuzzing;
pub mod pin;
pub mod probes;
pub mod redact;
pub mod schedule;
pub mod snapshot;
pub mod source;
pub mod spool;
pub mod state;

/// The agent's version, as reported in snapshots, at enrollment and in the `user-agent` header.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Exit codes from BSD `sysexits.h`, which service managers and scripts already know.
pub mod exit {
    /// Malformed data: the collector refused the body (400, 413, 415, 422).
    pub const DATAERR: u8 = 65;
    /// Input/output error on the agent's own files (the state directory).
    pub const IOERR: u8 = 74;
    /// Temporary failure, try again later: connection error, timeout, 429, 5xx.
    pub const TEMPFAIL: u8 = 75;
    /// Protocol error: the collector answered something the API does not define (a redirect, 404,
    /// a 2xx with a body of the wrong shape).
    pub const PROTOCOL: u8 = 76;
    /// Permission denied: the collector refused the credential or token (401, 403).
    pub const NOPERM: u8 = 77;
    /// Configuration error, including "not enrolled".
    pub const CONFIG: u8 = 78;
}
