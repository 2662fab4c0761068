//! Pins the JSON of a sample snapshot: an accidental change to the wire schema fails here loudly.
//! After a deliberate change (and a schema_version decision), rewrite the file with
//! `UPDATE_GOLDEN=1 cargo test -p callhome-shared --test golden`.

use std::collections::BTreeMap;

use callhome_shared::*;
use time::macros::datetime;
use uuid::uuid;

fn sample() -> Snapshot {
    let mut probes = BTreeMap::new();
    probes.insert(
        "system".to_string(),
        ProbeReport {
            outcome: ProbeOutcome::Ok,
            duration_ms: 3,
        },
    );
    probes.insert(
        "disks".to_string(),
        ProbeReport {
            outcome: ProbeOutcome::Failed,
            duration_ms: 1,
        },
    );
    let mut other = BTreeMap::new();
    other.insert(
        "from_a_newer_agent".to_string(),
        serde_json::json!({"kept": "raw"}),
    );
    Snapshot {
        id: uuid!("019ac4f0-1c2d-7a3b-8c4d-5e6f708192a3"),
        schema_version: SCHEMA_VERSION,
        agent: AgentInfo {
            version: "0.1.0".into(),
        },
        host: HostIdentity {
            host_id: uuid!("9b7c1b3e-2a4f-4c55-9d1e-3f0e5c7a8b90"),
            hostname: "vda-prod-01.example.com".into(),
            role: HostRole::Vda,
            os: "Red Hat Enterprise Linux 9.4 (Plow)".into(),
            kernel: "5.14.0-427.13.1.el9_4.x86_64".into(),
        },
        collected_at: datetime!(2026-11-29 04:00:07 UTC),
        collection_ms: 4,
        sections: Sections {
            system: Some(SystemSection {
                os_name: Some("Red Hat Enterprise Linux".into()),
                os_version: Some("9.4".into()),
                kernel: Some("5.14.0-427.13.1.el9_4.x86_64".into()),
                arch: "x86_64".into(),
                uptime_secs: 864_000,
                boot_time: datetime!(2026-11-19 04:00:07 UTC),
                cpu_count: 8,
                physical_cores: Some(4),
                load_average: LoadAverage {
                    one: 0.5,
                    five: 0.75,
                    fifteen: 1.25,
                },
                memory: MemoryInfo {
                    total_bytes: 16_777_216_000,
                    available_bytes: 8_388_608_000,
                    used_bytes: 8_388_608_000,
                    swap_total_bytes: 2_147_483_648,
                    swap_free_bytes: 2_147_483_648,
                },
            }),
            other,
            ..Default::default()
        },
        probes,
        errors: vec![ProbeError {
            probe: "disks".into(),
            message: "statvfs /var: permission denied".into(),
        }],
    }
}

#[test]
fn sample_snapshot_json_is_pinned() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/snapshot-v1.json");
    let actual = format!("{}\n", sample().to_json_pretty());
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(path).expect("golden file; run with UPDATE_GOLDEN=1 to create it");
    assert_eq!(
        actual, expected,
        "snapshot JSON changed; see the comment at the top of this file"
    );
}

#[test]
fn golden_file_decodes_back_to_the_sample() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/snapshot-v1.json");
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(decode_snapshot(&bytes).unwrap(), sample());
}
