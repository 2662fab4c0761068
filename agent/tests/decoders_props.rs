//! Property tests of the agent's decoders of untrusted input: the config file, spool files and the
//! probes' text parsers. The fuzz targets in `fuzz/` run the same entry points
//! (`callhome_agent::fuzzing`) for millions of inputs; these keep a fast share in the default suite.

// Helpers and proptest bodies are not `#[test]` functions, which clippy's test allowance covers.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use callhome_agent::fuzzing::{self, AgentConfigError, PROBE_PARSERS};
use callhome_agent::spool::{Limits, LoadError, OsFs, Spool, format};
use proptest::prelude::*;
use uuid::Uuid;

fn any_text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..512).prop_map(|c| c.into_iter().collect())
}

/// Text that looks like the files the probes read: short tokens from their vocabulary joined by
/// separators, so that the parsers get past their first checks.
fn probe_like_text() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("MemTotal:".to_string()),
        Just("kB".to_string()),
        Just("some avg10=0.00 avg60=1.5 avg300=2 total=123".to_string()),
        Just("2026-11-29T04:00:07.123+0100".to_string()),
        Just("Nov 29 04:00:07".to_string()),
        Just("ActiveState=failed".to_string()),
        Just("0100007F:0050".to_string()),
        Just("-----BEGIN CERTIFICATE-----".to_string()),
        Just("-----END CERTIFICATE-----".to_string()),
        Just("domain-name: example.com".to_string()),
        Just("[libdefaults]".to_string()),
        Just("=".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        "[0-9]{1,25}",
        "-?[0-9]{1,5}\\.[0-9]{0,12}",
        "[A-Za-z_.:/-]{1,12}",
    ];
    let sep = prop_oneof![Just(" "), Just("\n"), Just("\t"), Just(":"), Just(","), Just("")];
    prop::collection::vec((token, sep), 0..64)
        .prop_map(|parts| parts.into_iter().map(|(t, s)| t + s).collect())
}

fn config_lines() -> impl Strategy<Value = Vec<String>> {
    let value = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        "[ -~]{0,20}".prop_map(|s| format!("{s:?}")),
        Just("\"https://collector.example:8443\"".to_string()),
        Just("\"0 */4 * * *\"".to_string()),
        Just("true".to_string()),
        Just("[]".to_string()),
    ];
    let line = prop_oneof![
        Just("[collector]".to_string()),
        Just("[schedule]".to_string()),
        Just("[spool]".to_string()),
        Just("[retry]".to_string()),
        Just("[controllers]".to_string()),
        Just("[probes.system]".to_string()),
        Just("[probes.nonesuch]".to_string()),
        (
            prop::sample::select(vec![
                "url",
                "timeout_secs",
                "cron",
                "splay_secs",
                "max_files",
                "max_bytes",
                "base_ms",
                "cap_secs",
                "port",
                "connect_timeout_ms",
                "enabled",
                "state_dir",
                "hostname",
                "role",
            ]),
            value
        )
            .prop_map(|(k, v)| format!("{k} = {v}")),
    ];
    prop::collection::vec(line, 0..16)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn config_arbitrary_text_never_panics(text in any_text()) {
        let _ = fuzzing::agent_config(&text);
    }

    /// A refused config names the line of what is wrong: toml's message for syntax and types, and the
    /// problem's line for values, which is the line that sets that key.
    #[test]
    fn config_errors_name_a_line(lines in config_lines()) {
        let text = lines.join("\n") + "\n";
        match fuzzing::agent_config(&text) {
            Ok(_) => {}
            Err(AgentConfigError::Parse(message)) => {
                prop_assert!(message.contains("line "), "no line in {message:?} for {text:?}");
            }
            Err(AgentConfigError::Invalid(problems)) => {
                for p in problems {
                    if let Some(n) = p.line {
                        let line = lines.get(n - 1).map(String::as_str).unwrap_or_default();
                        let leaf = p.key.rsplit('.').next().unwrap_or_default();
                        prop_assert!(line.contains(leaf), "{p} points at {line:?} in {text:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn spool_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(fuzzing::spool_file(&bytes).is_err() || bytes.starts_with(format::MAGIC));
        let _ = fuzzing::spool_file_with_body(Uuid::now_v7(), 0, &bytes);
    }

    /// Whatever lies in the spool under a snapshot's name, loading it says `Corrupt` (quarantine) or
    /// returns the record, never panics and never another error.
    #[test]
    fn spool_garbage_files_are_classified_corrupt(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        with_header in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits { max_files: 10, max_bytes: 1 << 20 };
        let spool = Spool::open(dir.path(), limits, Arc::new(OsFs::default())).unwrap();
        let id = Uuid::now_v7();
        let file = if with_header { format::encode(id, 1, &bytes) } else { bytes };
        std::fs::write(spool.dir().join(format!("{id}.snap")), &file).unwrap();
        let entries = spool.entries().unwrap();
        prop_assert_eq!(entries.len(), 1);
        match spool.load(&entries[0]) {
            Err(LoadError::Corrupt(reason)) => prop_assert!(!reason.is_empty()),
            other => prop_assert!(false, "expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn spool_valid_files_round_trip(id in any::<u128>(), mark in any::<u64>(), pad in "[ -~]{0,200}") {
        let id = Uuid::from_u128(id);
        let json = serde_json::to_vec(&serde_json::json!({"id": id, "pad": pad})).unwrap();
        let body = zstd::encode_all(json.as_slice(), 3).unwrap();
        let record = fuzzing::spool_file(&format::encode(id, mark, &body)).unwrap();
        prop_assert_eq!(record, format::Record { id, dropped_mark: mark, body });
    }

    #[test]
    fn probe_parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for (_, parsers) in PROBE_PARSERS {
            fuzzing::run_probe_parsers(*parsers, &bytes);
        }
    }

    #[test]
    fn probe_parsers_never_panic_on_probe_like_text(text in probe_like_text()) {
        for (_, parsers) in PROBE_PARSERS {
            fuzzing::run_probe_parsers(*parsers, text.as_bytes());
        }
    }
}

fn parsers_of(probe: &str) -> fn(&[u8], &str, time::OffsetDateTime) {
    PROBE_PARSERS
        .iter()
        .find(|(name, _)| *name == probe)
        .map(|(_, p)| *p)
        .unwrap()
}

/// Found by `probe_parsers_never_panic_on_arbitrary_bytes`: a log line with a space at byte 10 and
/// a multi-byte character across byte 19 panicked the logs probe's timestamp parser (slicing `..19`).
#[test]
fn regression_logs_timestamp_slice_inside_a_character() {
    for line in [
        "0123456789 12345678\u{e9}",
        "2026-11-29 04:00:0\u{20ac} rest",
        "[abcdefghi T\u{1f600}\u{1f600}\u{1f600}",
    ] {
        fuzzing::run_probe_parsers(parsers_of("logs"), line.as_bytes());
    }
}
