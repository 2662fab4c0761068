//! Entry points for the fuzz targets in `fuzz/` and the property tests: the agent's decoders of
//! untrusted input (the config file, spool files, and the text every probe reads from the host). Not an
//! API: hidden from the docs, and it may change with the decoders.

use uuid::Uuid;

use crate::config::{Config, Problem};
use crate::probes::PROBES;
use crate::spool::{MAX_DECOMPRESSED, format};

pub use crate::probes::fuzzing::{PARSERS as PROBE_PARSERS, run as run_probe_parsers};

/// The config file's path from text to checked settings, as `config::load` takes it, then every
/// accessor that interprets a setting further.
pub fn agent_config(text: &str) -> Result<Config, AgentConfigError> {
    let config = Config::from_toml(text).map_err(|e| AgentConfigError::Parse(e.to_string()))?;
    let problems = config.problems(text, PROBES);
    if !problems.is_empty() {
        return Err(AgentConfigError::Invalid(problems));
    }
    std::hint::black_box(config.schedule().is_ok());
    std::hint::black_box(config.collector_pins().is_ok());
    std::hint::black_box(config.enabled_probes(PROBES).len());
    std::hint::black_box((
        config.spool_limits(),
        config.retry_policy(),
        config.collector_timeout(),
    ));
    Ok(config)
}

/// Why a config text was refused.
#[derive(Debug)]
pub enum AgentConfigError {
    /// TOML syntax, a wrong type or an unknown key (toml's message, which names the line).
    Parse(String),
    Invalid(Vec<Problem>),
}

/// A spool file's bytes checked as `Spool::load` checks them (header, CRC, then the body's zstd and
/// snapshot id). `Err` is the quarantine reason.
pub fn spool_file(bytes: &[u8]) -> Result<format::Record, String> {
    let record = format::decode(bytes)?;
    format::verify_body(&record, MAX_DECOMPRESSED)?;
    Ok(record)
}

/// `body` behind a well-formed header, so that a fuzzer reaches the body checks instead of stopping at
/// the CRC.
pub fn spool_file_with_body(id: Uuid, dropped_mark: u64, body: &[u8]) -> Result<format::Record, String> {
    spool_file(&format::encode(id, dropped_mark, body))
}
