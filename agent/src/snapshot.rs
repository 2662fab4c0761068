//! Builds the snapshot envelope around what the probes found: id, schema version, agent, host
//! identity, time, and the probes' sections, reports and errors.

use std::time::Duration;

use callhome_shared::{AgentInfo, HostIdentity, SCHEMA_VERSION, Snapshot};
use sysinfo::System;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::Config;
use crate::probes::{self, Probe};

/// Longest name the schema accepts for hostname, OS and kernel.
const MAX_NAME_LEN: usize = 255;

/// Runs the probes the config enables out of `table` and wraps their results.
pub async fn collect(config: &Config, host_id: Uuid, table: &[Probe]) -> Snapshot {
    let plan: Vec<(&Probe, Duration)> = config.enabled_probes(table);
    let collected_at = OffsetDateTime::now_utc();
    let run = probes::run(&plan).await;
    Snapshot {
        id: Uuid::now_v7(),
        schema_version: SCHEMA_VERSION,
        agent: AgentInfo {
            version: crate::AGENT_VERSION.to_string(),
            spool_dropped: 0,
        },
        host: host_identity(config, host_id),
        collected_at,
        collection_ms: run.collection_ms,
        sections: run.sections,
        probes: run.probes,
        errors: run.errors,
    }
}

/// Who this host is: the config's hostname and role where given, else what the system says.
pub fn host_identity(config: &Config, host_id: Uuid) -> HostIdentity {
    let hostname = config
        .hostname
        .as_deref()
        .map(str::trim)
        .map(str::to_owned)
        .or_else(|| System::host_name().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            tracing::warn!("the system reports no hostname: using `localhost`");
            "localhost".to_string()
        });
    HostIdentity {
        host_id,
        hostname: clip(hostname),
        role: config.role,
        os: clip(System::long_os_version().unwrap_or_else(|_| "unknown".into())),
        kernel: clip(System::kernel_version().unwrap_or_else(|_| "unknown".into())),
    }
}

/// Cuts a string to the schema's name limit, on a character boundary.
fn clip(mut s: String) -> String {
    if s.len() > MAX_NAME_LEN {
        let mut end = MAX_NAME_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::PROBES;
    use callhome_shared::HostRole;

    #[test]
    fn snapshot_of_this_host_is_valid_and_round_trips() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let config = Config::from_toml("role = \"controller\"\nhostname = \"ctl01\"\n").unwrap();
        let host_id = Uuid::new_v4();
        let snapshot = rt.block_on(collect(&config, host_id, PROBES));
        rt.shutdown_background();

        snapshot.validate().unwrap();
        assert_eq!(snapshot.id.get_version_num(), 7);
        assert_eq!(snapshot.schema_version, SCHEMA_VERSION);
        assert_eq!(snapshot.agent.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(snapshot.host.host_id, host_id);
        assert_eq!(snapshot.host.hostname, "ctl01");
        assert_eq!(snapshot.host.role, HostRole::Controller);
        assert_eq!(snapshot.probes.len(), PROBES.len());
        let json = snapshot.to_json_pretty();
        let back = callhome_shared::decode_snapshot(json.as_bytes()).unwrap();
        assert_eq!(back.id, snapshot.id);
    }

    #[test]
    fn hostname_comes_from_the_system_without_an_override() {
        let host = host_identity(&Config::default(), Uuid::new_v4());
        assert!(!host.hostname.is_empty());
        assert!(!host.kernel.is_empty());
    }

    #[test]
    fn clip_respects_char_boundaries() {
        let long = "é".repeat(200);
        let clipped = clip(long);
        assert!(clipped.len() <= MAX_NAME_LEN);
        assert_eq!(clipped.chars().count(), 127);
        assert_eq!(clip("short".into()), "short");
    }
}
