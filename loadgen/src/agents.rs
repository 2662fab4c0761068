//! The simulated fleet: N agents enrolled over HTTPS, each with its own host id and credential, kept
//! in a file (mode 0600: it holds credentials) so that later runs against the same collector skip
//! enrollment.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use callhome_shared::api::{ENROLL_PATH, EnrollRequest, EnrollResponse};
use http::{Request, header};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::client::{Conn, Target};
use crate::template::Template;

/// One enrolled agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Agent {
    pub host_id: Uuid,
    pub credential: String,
    /// The template (fixture name) whose snapshots this host sends.
    pub template: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AgentsFile {
    /// The collector these credentials were issued by (informational: nginx accepts anything).
    collector: String,
    agents: Vec<Agent>,
}

/// The collector that enrolled the agents in `path`, and the agents; none when it does not exist.
pub fn load(path: &Path) -> Result<(Option<String>, Vec<Agent>)> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let file: AgentsFile = serde_json::from_slice(&bytes)
                .with_context(|| format!("reading agents from {}", path.display()))?;
            Ok((Some(file.collector), file.agents))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, Vec::new())),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Written to a temporary file, then renamed: an interrupted run never leaves half a file.
pub fn save(path: &Path, collector: &str, agents: &[Agent]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = AgentsFile {
        collector: collector.to_owned(),
        agents: agents.to_vec(),
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&serde_json::to_vec(&file)?)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
}

/// Enrolls agents `have.len()..want` with `token` over `connections` keep-alive connections, and
/// returns the whole fleet. A 429 is waited out (its `Retry-After`), so the collector's per-address
/// limit slows enrollment down instead of failing it.
pub async fn enroll(
    target: &Target,
    token: &str,
    templates: &[Template],
    have: Vec<Agent>,
    want: usize,
    connections: usize,
) -> Result<Vec<Agent>> {
    let start = have.len();
    if start >= want {
        return Ok(have);
    }
    let next = Arc::new(AtomicUsize::new(start));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections.clamp(1, want - start) {
        let target = target.clone();
        let token = token.to_owned();
        let templates = templates.to_vec();
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut done = Vec::new();
            let mut conn: Option<Conn> = None;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= want {
                    return Ok::<_, anyhow::Error>(done);
                }
                let template = &templates[i % templates.len()];
                let agent = enroll_one(&target, &mut conn, &token, template).await?;
                done.push((i, agent));
            }
        });
    }
    let mut fleet: Vec<Option<Agent>> = have.into_iter().map(Some).collect();
    fleet.resize(want, None);
    while let Some(joined) = tasks.join_next().await {
        for (i, agent) in joined.context("enrollment task")?? {
            fleet[i] = Some(agent);
        }
    }
    fleet
        .into_iter()
        .enumerate()
        .map(|(i, a)| a.with_context(|| format!("agent {i} was not enrolled")))
        .collect()
}

async fn enroll_one(
    target: &Target,
    conn: &mut Option<Conn>,
    token: &str,
    template: &Template,
) -> Result<Agent> {
    let host_id = Uuid::new_v4();
    let body = serde_json::to_vec(&EnrollRequest {
        token: token.to_owned(),
        host_id,
        hostname: template.hostname.clone(),
        role: template.role,
        agent_version: env!("CARGO_PKG_VERSION").to_owned(),
    })?;
    let body = Bytes::from(body);
    for attempt in 0..20 {
        let c = match conn {
            Some(c) if !c.is_closed() => c,
            _ => conn.insert(target.connect().await.map_err(|e| anyhow::anyhow!("{e}"))?),
        };
        let req = Request::post(ENROLL_PATH)
            .header(header::HOST, &target.authority)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))?;
        let (status, answer) = match c.send(req).await {
            Ok(r) => r,
            Err(e) if attempt < 3 => {
                eprintln!("warning: enrollment request failed, reconnecting: {e}");
                *conn = None;
                continue;
            }
            Err(e) => return Err(e).context("enrollment request"),
        };
        if status == http::StatusCode::TOO_MANY_REQUESTS || status == http::StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(Duration::from_millis(250 * (attempt + 1))).await;
            continue;
        }
        if status != http::StatusCode::CREATED {
            bail!(
                "enrollment answered {status}: {} (is the token valid for an active org?)",
                String::from_utf8_lossy(&answer)
            );
        }
        let enrolled: EnrollResponse = serde_json::from_slice(&answer).context("enrollment answer")?;
        return Ok(Agent {
            host_id: enrolled.host_id,
            credential: enrolled.credential,
            template: template.name.clone(),
        });
    }
    bail!("enrollment still refused with 429/503 after 20 attempts")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_fleet_file_round_trips_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agents.json");
        assert_eq!(load(&path).unwrap(), (None, Vec::new()));
        let agents = vec![Agent {
            host_id: Uuid::new_v4(),
            credential: "chac_x".into(),
            template: "deb-healthy".into(),
        }];
        save(&path, "https://127.0.0.1:1", &agents).unwrap();
        assert_eq!(
            load(&path).unwrap(),
            (Some("https://127.0.0.1:1".to_owned()), agents)
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
    }
}
