//! Snapshot schema v1: one health capture of one host at one moment.
//!
//! Compatibility rules (see ARCHITECTURE.md):
//! - The envelope ([`Snapshot`]) rejects unknown fields: growing it means a new `schema_version`, which
//!   an older collector refuses with 422 and the agent keeps in its spool until the collector is upgraded.
//! - [`Sections`] keeps sections it does not know as raw JSON, so a newer agent's extra probe is never
//!   refused by an older collector. Known sections ignore fields they do not know for the same reason;
//!   the collector stores the document as received, so nothing is lost either way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::sections::Sections;

/// The schema version this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// Limits that any valid snapshot respects; the collector's byte limits come on top of these.
const MAX_NAME_LEN: usize = 255;
const MAX_SECTIONS: usize = 256;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// UUIDv7 made by the agent when it collects: time-ordered, and the idempotency key in the store.
    pub id: Uuid,
    pub schema_version: u32,
    pub agent: AgentInfo,
    pub host: HostIdentity,
    #[serde(with = "time::serde::rfc3339")]
    pub collected_at: OffsetDateTime,
    /// Wall time from the first probe's start to the last probe's end.
    pub collection_ms: u64,
    pub sections: Sections,
    /// Every probe that ran, keyed by probe name, with its outcome and duration.
    pub probes: BTreeMap<String, ProbeReport>,
    /// Why a probe failed or timed out; one entry per such probe.
    #[serde(default)]
    pub errors: Vec<ProbeError>,
}

/// The agent that made the snapshot. Its health (spool, deliveries) is the `agent` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostIdentity {
    /// Stable across restarts: made once and kept in the agent's state directory.
    pub host_id: Uuid,
    pub hostname: String,
    pub role: HostRole,
    /// Human-readable OS name and version, e.g. "Red Hat Enterprise Linux 9.4".
    pub os: String,
    pub kernel: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum HostRole {
    #[default]
    Vda,
    Controller,
    Storefront,
    Other,
}

impl HostRole {
    pub fn as_str(self) -> &'static str {
        match self {
            HostRole::Vda => "vda",
            HostRole::Controller => "controller",
            HostRole::Storefront => "storefront",
            HostRole::Other => "other",
        }
    }
}

impl std::fmt::Display for HostRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for HostRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "vda" => Ok(HostRole::Vda),
            "controller" => Ok(HostRole::Controller),
            "storefront" => Ok(HostRole::Storefront),
            "other" => Ok(HostRole::Other),
            _ => Err(format!(
                "unknown role `{s}`: expected vda, controller, storefront or other"
            )),
        }
    }
}

/// How one probe's run ended. `NoData` means the thing it looks at is not on this host (for example no
/// VDA installed): not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeOutcome {
    Ok,
    NoData,
    Failed,
    TimedOut,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeReport {
    pub outcome: ProbeOutcome,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeError {
    pub probe: String,
    pub message: String,
}

/// Why a snapshot body was refused. The collector maps these to 400 and 422.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not JSON, or JSON of the wrong shape; the message names the path and position.
    #[error("{0}")]
    Malformed(String),
    #[error("unsupported schema_version {found}: this collector reads version {supported}")]
    UnsupportedVersion { found: u64, supported: u32 },
    /// Well-formed but breaks a rule of the schema (for example an id that is not a UUIDv7).
    #[error("invalid snapshot: {0}")]
    Invalid(String),
}

impl DecodeError {
    /// Whether the client could succeed by sending a different body (400/422) rather than never.
    pub fn is_version(&self) -> bool {
        matches!(self, DecodeError::UnsupportedVersion { .. })
    }
}

/// Decodes and validates a snapshot body.
///
/// The schema version is read first, leniently, so that a snapshot of a newer schema gets
/// `UnsupportedVersion` (422: keep it and retry after an upgrade) rather than a shape error (400).
pub fn decode_snapshot(body: &[u8]) -> Result<Snapshot, DecodeError> {
    check_json_shape(body)?;
    // The common case in one pass. Only a body that fails it pays for the passes that explain why
    // (the version first, then the path of the first bad field).
    if let Ok(snapshot) = serde_json::from_slice::<Snapshot>(body)
        && snapshot.schema_version == SCHEMA_VERSION
    {
        snapshot.validate()?;
        return Ok(snapshot);
    }
    #[derive(Deserialize)]
    struct VersionOnly {
        schema_version: Option<serde_json::Value>,
    }
    let version: VersionOnly =
        serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    match version.schema_version {
        None => return Err(DecodeError::Malformed("missing field `schema_version`".into())),
        Some(serde_json::Value::Number(n)) => match n.as_u64() {
            Some(v) if v == u64::from(SCHEMA_VERSION) => {}
            Some(v) => {
                return Err(DecodeError::UnsupportedVersion {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            None => {
                return Err(DecodeError::Malformed(
                    "schema_version: expected an unsigned integer".into(),
                ));
            }
        },
        Some(_) => {
            return Err(DecodeError::Malformed(
                "schema_version: expected an unsigned integer".into(),
            ));
        }
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let snapshot: Snapshot = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            DecodeError::Malformed(inner.to_string())
        } else {
            DecodeError::Malformed(format!("{path}: {inner}"))
        }
    })?;
    snapshot.validate()?;
    Ok(snapshot)
}

/// Deepest nesting of arrays and objects a snapshot may have. Real snapshots nest about 6 deep;
/// serde_json's own recursion limit (128) would stop a stack overflow, not a waste of work.
pub const MAX_JSON_DEPTH: usize = 32;
/// Longest string (in bytes, as written, escapes included) a snapshot may hold: log messages are
/// cut to 200 characters by the agent, a certificate subject is well under 1 KiB.
pub const MAX_JSON_STRING_BYTES: usize = 64 * 1024;

/// One pass over the bytes before any parsing: nesting depth and string length caps, so that a
/// hostile body is refused cheaply with the offset of the problem. Not a JSON validator: what it
/// lets through, serde_json still checks.
fn check_json_shape(body: &[u8]) -> Result<(), DecodeError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut string_start = 0usize;
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            } else if i - string_start > MAX_JSON_STRING_BYTES {
                return Err(DecodeError::Malformed(format!(
                    "string starting at byte {string_start} is longer than {MAX_JSON_STRING_BYTES} bytes"
                )));
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_start = i;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(DecodeError::Malformed(format!(
                        "JSON nested deeper than {MAX_JSON_DEPTH} levels at byte {i}"
                    )));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

impl Snapshot {
    /// Rules of the schema that serde's types cannot say.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let invalid = |m: String| Err(DecodeError::Invalid(m));
        if self.id.get_version_num() != 7 {
            return invalid(format!("id {} is not a UUIDv7", self.id));
        }
        if self.host.host_id.is_nil() {
            return invalid("host.host_id is the nil UUID".into());
        }
        for (field, value) in [
            ("host.hostname", &self.host.hostname),
            ("host.os", &self.host.os),
            ("host.kernel", &self.host.kernel),
            ("agent.version", &self.agent.version),
        ] {
            if value.len() > MAX_NAME_LEN {
                return invalid(format!("{field} is longer than {MAX_NAME_LEN} bytes"));
            }
        }
        if self.host.hostname.is_empty() {
            return invalid("host.hostname is empty".into());
        }
        if self.sections.other.len() + 2 > MAX_SECTIONS || self.probes.len() > MAX_SECTIONS {
            return invalid(format!("more than {MAX_SECTIONS} sections or probes"));
        }
        Ok(())
    }

    /// Pretty JSON as the agent prints and sends it.
    pub fn to_json_pretty(&self) -> String {
        // Serialising these types cannot fail: every map key is a string and no Serialize impl errors.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> serde_json::Value {
        serde_json::json!({
            "id": "019ac4f0-0000-7000-8000-000000000001",
            "schema_version": 1,
            "agent": {"version": "0.1.0"},
            "host": {"host_id": "9b7c1b3e-2a4f-4c55-9d1e-3f0e5c7a8b90", "hostname": "vda01", "role": "vda",
                     "os": "Debian GNU/Linux 12", "kernel": "6.1.0"},
            "collected_at": "2026-11-29T04:00:00Z",
            "collection_ms": 12,
            "sections": {},
            "probes": {}
        })
    }

    fn decode(v: &serde_json::Value) -> Result<Snapshot, DecodeError> {
        decode_snapshot(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn deep_nesting_and_huge_strings_are_refused_before_parsing() {
        let deep = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH + 1),
            "]".repeat(MAX_JSON_DEPTH + 1)
        );
        let err = decode_snapshot(deep.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("nested deeper than 32"), "{err}");
        let long = format!("{{\"x\": \"{}\"}}", "a".repeat(MAX_JSON_STRING_BYTES + 10));
        let err = decode_snapshot(long.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("longer than 65536 bytes"), "{err}");
        // Brackets and escaped quotes inside strings do not count.
        let tricky = format!("{{\"x\": \"{}\\\" [[[\"}}", "[".repeat(100));
        assert!(check_json_shape(tricky.as_bytes()).is_ok());
        // A real snapshot passes.
        assert!(check_json_shape(&serde_json::to_vec(&minimal()).unwrap()).is_ok());
    }

    #[test]
    fn minimal_snapshot_decodes() {
        let s = decode(&minimal()).unwrap();
        assert_eq!(s.host.role, HostRole::Vda);
        assert!(s.errors.is_empty());
    }

    #[test]
    fn newer_schema_version_is_unsupported_not_malformed() {
        let mut v = minimal();
        v["schema_version"] = 2.into();
        v["brand_new_envelope_field"] = true.into();
        assert_eq!(
            decode(&v),
            Err(DecodeError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        );
    }

    #[test]
    fn missing_or_wrong_type_version_is_malformed() {
        let mut v = minimal();
        v.as_object_mut().unwrap().remove("schema_version");
        assert!(matches!(decode(&v), Err(DecodeError::Malformed(m)) if m.contains("schema_version")));
        v["schema_version"] = "1".into();
        assert!(matches!(decode(&v), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn malformed_message_names_the_path() {
        let mut v = minimal();
        v["host"]["role"] = "mainframe".into();
        let err = decode(&v).unwrap_err();
        assert!(
            matches!(&err, DecodeError::Malformed(m) if m.starts_with("host.role")),
            "{err}"
        );
    }

    #[test]
    fn not_json_is_malformed_with_position() {
        let err = decode_snapshot(b"{\"id\": ").unwrap_err();
        assert!(
            matches!(&err, DecodeError::Malformed(m) if m.contains("line 1")),
            "{err}"
        );
    }

    #[test]
    fn unknown_envelope_field_is_refused() {
        let mut v = minimal();
        v["surprise"] = 1.into();
        assert!(matches!(decode(&v), Err(DecodeError::Malformed(m)) if m.contains("surprise")));
    }

    #[test]
    fn unknown_section_is_kept_raw_and_round_trips() {
        let mut v = minimal();
        v["sections"]["vda_registration"] = serde_json::json!({"state": "registered", "controllers": 2});
        let s = decode(&v).unwrap();
        assert_eq!(s.sections.other["vda_registration"]["state"], "registered");
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["sections"], v["sections"]);
    }

    #[test]
    fn id_must_be_uuid_v7() {
        let mut v = minimal();
        v["id"] = "9b7c1b3e-2a4f-4c55-9d1e-3f0e5c7a8b90".into();
        assert!(matches!(decode(&v), Err(DecodeError::Invalid(m)) if m.contains("UUIDv7")));
    }

    #[test]
    fn empty_hostname_is_invalid() {
        let mut v = minimal();
        v["host"]["hostname"] = "".into();
        assert!(matches!(decode(&v), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn role_parses_from_config_strings() {
        assert_eq!("storefront".parse::<HostRole>(), Ok(HostRole::Storefront));
        assert!("db".parse::<HostRole>().is_err());
    }
}
