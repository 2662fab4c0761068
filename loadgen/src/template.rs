//! Request bodies: the fixture snapshots, re-stamped for each request (its agent's host id, a fresh
//! UUIDv7 snapshot id, the current `collected_at`) and zstd-compressed at the agent's level.
//!
//! A template is the snapshot's compact JSON with three fixed-width sentinels; a body is a copy with
//! the sentinels overwritten in place, so building one costs a copy and the compression, not a JSON
//! encode. Every template is checked with the collector's own `decode_snapshot` before use.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use callhome_shared::{HostRole, decode_snapshot};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// The agent's zstd level (`agent/src/deliver.rs`), so bodies are the size agents send.
pub const ZSTD_LEVEL: i32 = 3;

const ID_SENTINEL: &str = "11111111-1111-4111-8111-111111111111";
const HOST_SENTINEL: &str = "22222222-2222-4222-8222-222222222222";
/// Same width as [`format_time`]'s output: RFC 3339, UTC, microseconds.
const TIME_SENTINEL: &str = "1999-12-31T23:59:59.999999Z";

/// One snapshot shape, from one fixture file.
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub hostname: String,
    pub role: HostRole,
    json: Vec<u8>,
    id_at: usize,
    host_at: usize,
    time_at: usize,
}

/// Reads every `*.json` snapshot in `dir` (sorted by name): the golden files under
/// `tests/fixtures/golden/` (the agent's `collect --root` of each fixture tree, without ids and
/// timings) or full snapshots printed by `callhome-agent collect`.
pub fn load_dir(dir: &Path) -> Result<Vec<Template>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading the template directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "no *.json snapshot in {}", dir.display());
    files
        .iter()
        .map(|path| {
            let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            Template::parse(&name, &text).with_context(|| format!("template {}", path.display()))
        })
        .collect()
}

impl Template {
    pub fn parse(name: &str, text: &[u8]) -> Result<Template> {
        let mut v: Value = serde_json::from_slice(text).context("not JSON")?;
        let obj = v.as_object_mut().context("not a JSON object")?;
        obj.insert("id".into(), Value::from(ID_SENTINEL));
        obj.insert("collected_at".into(), Value::from(TIME_SENTINEL));
        // The golden files drop what changes from run to run; put back what the envelope requires.
        if !obj.get("agent").is_some_and(Value::is_object) {
            obj.insert(
                "agent".into(),
                serde_json::json!({ "version": env!("CARGO_PKG_VERSION") }),
            );
        }
        obj.entry("collection_ms").or_insert(Value::from(0));
        if let Some(probes) = obj.get_mut("probes").and_then(Value::as_object_mut) {
            for report in probes.values_mut().filter_map(Value::as_object_mut) {
                report.entry("duration_ms").or_insert(Value::from(0));
            }
        }
        let host = obj
            .get_mut("host")
            .and_then(Value::as_object_mut)
            .context("no `host` object")?;
        host.insert("host_id".into(), Value::from(HOST_SENTINEL));
        let json = serde_json::to_vec(&v).context("re-encoding the template")?;
        let id_at = only_offset(&json, ID_SENTINEL)?;
        let host_at = only_offset(&json, HOST_SENTINEL)?;
        let time_at = only_offset(&json, TIME_SENTINEL)?;
        let mut template = Template {
            name: name.to_owned(),
            hostname: String::new(),
            role: HostRole::Vda,
            json,
            id_at,
            host_at,
            time_at,
        };
        // Checked as the collector will check it, with real values in place of the sentinels.
        let sample = template.json_for(Uuid::new_v4(), Uuid::now_v7(), OffsetDateTime::now_utc());
        let snapshot =
            decode_snapshot(&sample).map_err(|e| anyhow::anyhow!("the collector would refuse it: {e}"))?;
        template.hostname = snapshot.host.hostname;
        template.role = snapshot.host.role;
        Ok(template)
    }

    /// The snapshot JSON for one request.
    pub fn json_for(&self, host_id: Uuid, snapshot_id: Uuid, collected_at: OffsetDateTime) -> Vec<u8> {
        let mut json = self.json.clone();
        let mut id_buf = Uuid::encode_buffer();
        let mut host_buf = Uuid::encode_buffer();
        put(
            &mut json,
            self.id_at,
            snapshot_id.hyphenated().encode_lower(&mut id_buf).as_bytes(),
        );
        put(
            &mut json,
            self.host_at,
            host_id.hyphenated().encode_lower(&mut host_buf).as_bytes(),
        );
        put(&mut json, self.time_at, format_time(collected_at).as_bytes());
        json
    }
}

fn put(json: &mut [u8], at: usize, value: &[u8]) {
    json[at..at + value.len()].copy_from_slice(value);
}

fn only_offset(json: &[u8], needle: &str) -> Result<usize> {
    let n = needle.as_bytes();
    let mut hits = json
        .windows(n.len())
        .enumerate()
        .filter(|(_, w)| *w == n)
        .map(|(i, _)| i);
    let Some(first) = hits.next() else {
        bail!("sentinel {needle} missing after re-encoding");
    };
    if hits.next().is_some() {
        bail!("the snapshot already contains the text {needle}");
    }
    Ok(first)
}

/// RFC 3339 in UTC with microseconds: fixed width, so it fits the sentinel exactly.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year().clamp(0, 9999),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Compresses bodies with one reused zstd context (one per thread).
pub struct Compressor(zstd::bulk::Compressor<'static>);

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compressor")
    }
}

impl Compressor {
    pub fn new() -> Result<Compressor> {
        Ok(Compressor(
            zstd::bulk::Compressor::new(ZSTD_LEVEL).context("zstd compressor")?,
        ))
    }

    pub fn compress(&mut self, json: &[u8]) -> Result<Vec<u8>> {
        self.0.compress(json).context("zstd compression")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn golden() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/golden")
    }

    #[test]
    fn every_golden_snapshot_becomes_a_template_the_collector_accepts() {
        let templates = load_dir(&golden()).unwrap();
        assert!(templates.len() >= 8, "{} templates", templates.len());
        for t in &templates {
            let host = Uuid::new_v4();
            let id = Uuid::now_v7();
            let at = OffsetDateTime::now_utc();
            let json = t.json_for(host, id, at);
            let s = decode_snapshot(&json).unwrap();
            assert_eq!(s.id, id, "{}", t.name);
            assert_eq!(s.host.host_id, host, "{}", t.name);
            assert_eq!(s.host.hostname, t.hostname);
            // Microseconds survive the round trip: per-agent order is kept within a second.
            assert_eq!(
                s.collected_at.unix_timestamp_nanos() / 1000,
                at.unix_timestamp_nanos() / 1000
            );
        }
    }

    #[test]
    fn a_compressed_body_inflates_to_the_snapshot() {
        let t = &load_dir(&golden()).unwrap()[0];
        let json = t.json_for(Uuid::new_v4(), Uuid::now_v7(), OffsetDateTime::now_utc());
        let body = Compressor::new().unwrap().compress(&json).unwrap();
        assert!(body.len() < json.len() / 2, "{} of {}", body.len(), json.len());
        assert_eq!(zstd::decode_all(body.as_slice()).unwrap(), json);
    }

    #[test]
    fn a_snapshot_that_already_holds_a_sentinel_is_refused() {
        let text = format!(
            r#"{{"schema_version":1,"host":{{"hostname":"{ID_SENTINEL}","role":"vda","os":"x","kernel":"y"}},"sections":{{}},"probes":{{}}}}"#
        );
        let err = Template::parse("x", text.as_bytes()).unwrap_err();
        assert!(format!("{err:#}").contains("already contains"), "{err:#}");
    }

    #[test]
    fn time_is_fixed_width() {
        let t = time::macros::datetime!(2026-01-02 03:04:05.000007 UTC);
        assert_eq!(format_time(t), "2026-01-02T03:04:05.000007Z");
        assert_eq!(format_time(t).len(), TIME_SENTINEL.len());
    }
}
