//! Every probe's text parsers (`callhome_agent::fuzzing::PROBE_PARSERS`), one target for all: the
//! first byte picks the probe, the rest is the file or command output it parses.
#![no_main]

use callhome_agent::fuzzing::{PROBE_PARSERS, run_probe_parsers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, input)) = data.split_first() else {
        return;
    };
    let (_, parsers) = PROBE_PARSERS[usize::from(which) % PROBE_PARSERS.len()];
    run_probe_parsers(parsers, input);
});
