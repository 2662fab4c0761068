//! Builds the snapshot envelope around what the probes found: id, schema version, agent, host
//! identity, time, and the probes' sections, reports and errors.

use std::sync::Arc;

use callhome_shared::{AgentInfo, HostIdentity, SCHEMA_VERSION, Snapshot};
use uuid::Uuid;

use crate::config::Config;
use crate::probes::{self, AgentHealth, Probe, RunInputs};
use crate::source::HostSource;

/// Longest name the schema accepts for hostname, OS and kernel.
const MAX_NAME_LEN: usize = 255;

/// Runs the probes the config enables out of `table` against `source` and wraps their results.
pub async fn collect(
    config: &Arc<Config>,
    source: &Arc<dyn HostSource>,
    agent: AgentHealth,
    host_id: Uuid,
    table: &[Probe],
) -> Snapshot {
    let plan = config.enabled_probes(table);
    let collected_at = source.now();
    let inputs = RunInputs {
        source: Arc::clone(source),
        config: Arc::clone(config),
        agent: Arc::new(agent),
    };
    let run = probes::run(&plan, &inputs).await;
    Snapshot {
        id: Uuid::now_v7(),
        schema_version: SCHEMA_VERSION,
        agent: AgentInfo {
            version: crate::AGENT_VERSION.to_string(),
        },
        host: host_identity(config, source.as_ref(), host_id),
        collected_at,
        collection_ms: run.collection_ms,
        sections: run.sections,
        probes: run.probes,
        errors: run.errors,
    }
}

/// Who this host is: the config's hostname and role where given, else what the host says.
pub fn host_identity(config: &Config, source: &dyn HostSource, host_id: Uuid) -> HostIdentity {
    let read = |path: &str| {
        source
            .read_head(path, 64 << 10)
            .ok()
            .map(|d| d.text().trim().to_string())
    };
    let hostname = config
        .hostname
        .as_deref()
        .map(str::trim)
        .map(str::to_owned)
        .or_else(|| read("/proc/sys/kernel/hostname"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            tracing::warn!("the host reports no hostname: using `localhost`");
            "localhost".to_string()
        });
    let os = read("/etc/os-release")
        .or_else(|| read("/usr/lib/os-release"))
        .map(|text| crate::probes::os_pretty_name(&text))
        .unwrap_or_else(|| "unknown".into());
    HostIdentity {
        host_id,
        hostname: clip(hostname),
        role: config.role,
        os: clip(os),
        kernel: clip(read("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into())),
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
    use crate::source::{Live, Tree};
    use callhome_shared::HostRole;

    fn collect_on(source: Arc<dyn HostSource>, config: Config) -> Snapshot {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let snapshot = rt.block_on(collect(
            &Arc::new(config),
            &source,
            AgentHealth::default(),
            Uuid::new_v4(),
            PROBES,
        ));
        rt.shutdown_background();
        snapshot
    }

    #[test]
    fn snapshot_of_this_host_is_valid_and_round_trips() {
        let config = Config::from_toml("role = \"controller\"\nhostname = \"ctl01\"\n").unwrap();
        let snapshot = collect_on(Arc::new(Live), config);
        snapshot.validate().unwrap();
        assert_eq!(snapshot.id.get_version_num(), 7);
        assert_eq!(snapshot.schema_version, SCHEMA_VERSION);
        assert_eq!(snapshot.agent.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(snapshot.host.hostname, "ctl01");
        assert_eq!(snapshot.host.role, HostRole::Controller);
        assert_eq!(snapshot.probes.len(), PROBES.len());
        let json = snapshot.to_json_pretty();
        let back = callhome_shared::decode_snapshot(json.as_bytes()).unwrap();
        assert_eq!(back.id, snapshot.id);
    }

    #[test]
    fn identity_of_a_tree_is_the_tree_host_at_capture_time() {
        let tree = Tree::open(&crate::probes::testing_fixture("rpm-healthy")).unwrap();
        let snapshot = collect_on(Arc::new(tree), Config::default());
        assert_eq!(snapshot.host.hostname, "vda-rh01");
        assert_eq!(snapshot.host.os, "Red Hat Enterprise Linux 9.4 (Plow)");
        assert_eq!(snapshot.host.kernel, "5.14.0-427.13.1.el9_4.x86_64");
        assert_eq!(
            snapshot.collected_at.to_string(),
            "2026-11-20 9:00:00.0 +00:00:00"
        );
    }

    #[test]
    fn hostname_comes_from_the_host_without_an_override() {
        let host = host_identity(&Config::default(), &Live, Uuid::new_v4());
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
