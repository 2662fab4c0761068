//! Every probe's text parsers by probe name, for the property tests and the fuzz targets. The parsers
//! stay private to their probe; each probe file has one `fuzz` function that runs them all.

use time::OffsetDateTime;

type Parsers = fn(&[u8], &str, OffsetDateTime);

/// Probe name and its parsers. Probes without a parser of their own (`agent`, which reads the spool)
/// are not listed.
pub const PARSERS: &[(&str, Parsers)] = &[
    ("certificates", super::certificates::fuzz),
    ("controllers", super::controllers::fuzz),
    ("crashes", super::crashes::fuzz),
    ("disks", super::disks::fuzz),
    ("identity", super::identity::fuzz),
    ("listeners", super::listeners::fuzz),
    ("logs", super::logs::fuzz),
    ("memory_pressure", super::memory_pressure::fuzz),
    ("services", super::services::fuzz),
    ("system", super::system::fuzz),
    ("timesync", super::timesync::fuzz),
    ("updates", super::updates::fuzz),
    ("vda", super::vda::fuzz),
];

/// Runs one probe's parsers on `input` (lossily decoded as UTF-8 for the text parsers, as the probes
/// read files) with a fixed "now", so that a failing input replays exactly.
pub fn run(parsers: Parsers, input: &[u8]) {
    // 2026-11-29T04:00:07Z, the golden snapshot's time.
    let now = OffsetDateTime::from_unix_timestamp(1_795_924_807).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let text = String::from_utf8_lossy(input);
    parsers(input, &text, now);
}
