//! Property tests of `decode_snapshot`: hostile bytes never panic, and every snapshot the agent can
//! serialise decodes back to itself exactly when it is valid. The fuzz target `snapshot_decode`
//! (`fuzz/`) runs the same decoder for millions of inputs; these keep a fast share in the default suite.

// Helpers and proptest bodies are not `#[test]` functions, which clippy's test allowance covers.
#![allow(clippy::unwrap_used)]

use callhome_shared::snapshot::{HostRole, ProbeError, ProbeOutcome, ProbeReport, Snapshot, decode_snapshot};
use proptest::prelude::*;
use time::OffsetDateTime;
use uuid::Uuid;

const GOLDEN: &str = include_str!("golden/snapshot-v1.json");

fn golden() -> Snapshot {
    decode_snapshot(GOLDEN.as_bytes()).unwrap()
}

fn uuid_v7() -> impl Strategy<Value = Uuid> {
    any::<[u8; 16]>().prop_map(|mut b| {
        b[6] = (b[6] & 0x0f) | 0x70;
        b[8] = (b[8] & 0x3f) | 0x80;
        Uuid::from_bytes(b)
    })
}

fn role() -> impl Strategy<Value = HostRole> {
    prop_oneof![
        Just(HostRole::Vda),
        Just(HostRole::Controller),
        Just(HostRole::Storefront),
        Just(HostRole::Other)
    ]
}

fn outcome() -> impl Strategy<Value = ProbeOutcome> {
    prop_oneof![
        Just(ProbeOutcome::Ok),
        Just(ProbeOutcome::NoData),
        Just(ProbeOutcome::Failed),
        Just(ProbeOutcome::TimedOut)
    ]
}

/// Names up to 300 characters so that the 255-byte limit is crossed both ways, including empty ones.
fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..300).prop_map(|c| c.into_iter().collect())
}

prop_compose! {
    fn snapshot()(
        id in prop_oneof![4 => uuid_v7(), 1 => any::<u128>().prop_map(Uuid::from_u128)],
        host_id in prop_oneof![4 => any::<u128>().prop_map(Uuid::from_u128), 1 => Just(Uuid::nil())],
        hostname in name(),
        os in name(),
        kernel in name(),
        version in name(),
        role in role(),
        // Years 1970 to 9999: what RFC 3339 can write.
        secs in 0i64..253_402_300_799,
        nanos in 0u32..1_000_000_000,
        collection_ms in any::<u64>(),
        probes in prop::collection::btree_map(name(), (outcome(), any::<u64>()), 0..8),
        errors in prop::collection::vec((name(), name()), 0..4),
    ) -> Snapshot {
        let mut s = golden();
        s.id = id;
        s.host.host_id = host_id;
        s.host.hostname = hostname;
        s.host.os = os;
        s.host.kernel = kernel;
        s.host.role = role;
        s.agent.version = version;
        s.collected_at = OffsetDateTime::from_unix_timestamp(secs).unwrap().replace_nanosecond(nanos).unwrap();
        s.collection_ms = collection_ms;
        s.probes = probes
            .into_iter()
            .map(|(k, (outcome, duration_ms))| (k, ProbeReport { outcome, duration_ms }))
            .collect();
        s.errors = errors.into_iter().map(|(probe, message)| ProbeError { probe, message }).collect();
        s
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = decode_snapshot(&bytes);
    }

    /// Serialised, a snapshot decodes to itself if and only if `validate` accepts it, and a refusal
    /// is the validation error, not a parse error.
    #[test]
    fn serialised_snapshots_round_trip(s in snapshot()) {
        let json = serde_json::to_vec(&s).unwrap();
        match (s.validate(), decode_snapshot(&json)) {
            (Ok(()), Ok(decoded)) => prop_assert_eq!(&decoded, &s),
            (Err(expected), Err(got)) => prop_assert_eq!(&got, &expected),
            (v, d) => prop_assert!(false, "validate said {v:?}, decode said {d:?}"),
        }
        let pretty = s.to_json_pretty();
        prop_assert_eq!(decode_snapshot(pretty.as_bytes()).ok(), s.validate().ok().map(|()| s.clone()));
    }

    /// Valid JSON with bytes flipped, cut, or spliced in: errors only, never a panic, and a decoded
    /// result is always valid.
    #[test]
    fn mutated_valid_json_never_panics(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = GOLDEN.as_bytes().to_vec();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len());
            match kind {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        if let Ok(decoded) = decode_snapshot(&bytes) {
            prop_assert!(decoded.validate().is_ok());
        }
    }

    /// Nesting far past the cap is refused by the shape check, not by serde's recursion limit.
    #[test]
    fn deep_nesting_is_refused(depth in 33usize..5000, open in prop_oneof![Just(b'['), Just(b'{')]) {
        let bytes = vec![open; depth];
        prop_assert!(decode_snapshot(&bytes).is_err());
    }
}
