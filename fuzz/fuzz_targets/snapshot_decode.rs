//! `decode_snapshot` on arbitrary bytes (what the collector's ingest endpoint receives): never panics,
//! and what it accepts is valid and survives serialising and decoding again unchanged.
#![no_main]

use callhome_shared::snapshot::decode_snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = decode_snapshot(data) {
        assert!(snapshot.validate().is_ok(), "decoded an invalid snapshot");
        let again = serde_json::to_vec(&snapshot).expect("a decoded snapshot serialises");
        let decoded = decode_snapshot(&again).expect("a re-serialised snapshot decodes");
        assert_eq!(decoded, snapshot, "round trip changed the snapshot");
    }
});
