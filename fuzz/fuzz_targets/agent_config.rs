//! The agent's config file from text to checked settings: never panics; a refusal is an error value.
#![no_main]

use callhome_agent::fuzzing::{AgentConfigError, agent_config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(AgentConfigError::Parse(message)) = agent_config(text) {
        assert!(!message.is_empty());
    }
});
