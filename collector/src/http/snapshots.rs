//! `POST /v1/snapshots`: an enrolled agent delivers one snapshot.
//!
//! The order is the point: the credential and the contract are checked before a single body byte is
//! read, then the post takes a place in the bounded ingest queue (429 when there is none), the body is
//! read within `max_body_bytes`, decompressed within `max_decompressed_bytes`, then decoded, and the
//! answer is sent only after the store has committed.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::{Extension, Json};
use callhome_shared::api::{AGENT_CREDENTIAL_PREFIX, IngestStatus, SENT_AT_HEADER, SnapshotAccepted};
use callhome_shared::decode_snapshot;
use http::header::AUTHORIZATION;
use http::{HeaderMap, StatusCode};
use time::OffsetDateTime;

use super::{AppError, AppState};
use crate::agent_ca::PeerCertificate;
use crate::ingest::{self, ContentEncoding};
use crate::store::{AgentIdentity, Authentication, Inserted, Judged, NewSnapshot};

pub async fn post_snapshot(
    State(state): State<AppState>,
    peer: Option<Extension<Arc<PeerCertificate>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<SnapshotAccepted>), AppError> {
    let started = std::time::Instant::now();
    let answer = receive(&state, peer, headers, body).await;
    state
        .metrics
        .counters
        .snapshot(outcome(&answer), started.elapsed());
    answer
}

fn outcome(answer: &Result<(StatusCode, Json<SnapshotAccepted>), AppError>) -> crate::metrics::Outcome {
    use crate::metrics::Outcome;
    match answer {
        Ok((_, Json(accepted))) if accepted.status == IngestStatus::Duplicate => Outcome::Duplicate,
        Ok(_) => Outcome::Stored,
        Err(e) => Outcome::Refused(e.code()),
    }
}

async fn receive(
    state: &AppState,
    peer: Option<Extension<Arc<PeerCertificate>>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<SnapshotAccepted>), AppError> {
    // (a) who is calling (credential, and the client certificate under mutual TLS), and may their
    // org send at all
    let agent = authenticate(state, &headers).await?;
    state.agent_certs.check(
        peer.as_ref().map(|Extension(p)| p.as_ref()),
        &agent,
        OffsetDateTime::now_utc(),
    )?;
    if agent.tier.is_none() {
        return Err(AppError::ContractLapsed { org: agent.org });
    }
    // One credential cannot starve the others: its own budget of posts, before the shared queue.
    if let Err(wait) = state
        .agent_limiter
        .check(&agent.host_id, std::time::Instant::now())
    {
        tracing::debug!(host_id = %agent.host_id, "snapshot post rate limit reached");
        return Err(AppError::TooManyRequests {
            retry_after: super::ratelimit::retry_after_secs(wait),
        });
    }
    // (b) what is being sent
    let encoding = ContentEncoding::from_headers(&headers)?;
    ingest::check_json_content_type(&headers)?;
    // (c) a place in the ingest queue, held until the commit is done; none free: 429 before the body
    let permit = state.admission.try_admit()?;
    tracing::debug!(host_id = %agent.host_id, in_flight = state.admission.in_flight(), "snapshot post admitted");
    // The agent's clock against ours, read on arrival so that queueing does not count as skew.
    let clock_skew_secs = clock_skew(&headers, OffsetDateTime::now_utc());
    // (d) the body as sent, bounded
    let compressed = ingest::read_limited(body, state.max_body_bytes()).await?;
    // (e-h) decompress (bounded), decode, judge (host rules) and queue for the writer, in one trip
    // to the blocking pool: each hop between threads costs about as much as a small snapshot's work.
    let limit = state.max_decompressed_bytes();
    let store = state.store.clone();
    let (id, host_id, committed) = tokio::task::spawn_blocking(move || {
        let json = ingest::decompress(encoding, &compressed, limit)?;
        let snapshot = decode_snapshot(&json)?;
        // (g) a credential writes for its own host only; org and environment come from the credential
        if snapshot.host.host_id != agent.host_id {
            return Err(AppError::HostMismatch(format!(
                "snapshot is for host {} but the credential belongs to host {}",
                snapshot.host.host_id, agent.host_id
            )));
        }
        let judged = Judged::of(&snapshot, clock_skew_secs);
        let new = NewSnapshot {
            id: snapshot.id,
            schema_version: snapshot.schema_version,
            collected_at: snapshot.collected_at,
            body: json,
            judged,
        };
        let received_zstd = (encoding == ContentEncoding::Zstd).then(|| Vec::from(compressed));
        let host_id = agent.host_id;
        // The permit goes with the snapshot: if this request is dropped (timeout, client gone,
        // connection closed at the end of the shutdown drain) the commit still happens before its
        // place in the queue is given to another, and the drain waits for it.
        let committed = store.queue_snapshot(
            agent,
            new,
            received_zstd,
            OffsetDateTime::now_utc(),
            Box::new(permit),
        )?;
        Ok::<_, AppError>((snapshot.id, host_id, committed))
    })
    .await??;
    // (h) answer after the commit
    let inserted = committed.wait().await?;
    let (status, ingest_status) = match inserted {
        Inserted::Stored => (StatusCode::CREATED, IngestStatus::Stored),
        Inserted::Duplicate => (StatusCode::OK, IngestStatus::Duplicate),
    };
    tracing::debug!(snapshot_id = %id, %host_id, status = ?ingest_status, "snapshot accepted");
    Ok((
        status,
        Json(SnapshotAccepted {
            id,
            status: ingest_status,
        }),
    ))
}

/// The agent whose bearer credential the request carries.
pub(super) async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<AgentIdentity, AppError> {
    let credential = bearer(headers).ok_or_else(|| {
        AppError::UnknownCredential("missing `Authorization: Bearer <credential>` header".to_owned())
    })?;
    if !credential.starts_with(AGENT_CREDENTIAL_PREFIX) {
        return Err(AppError::UnknownCredential(format!(
            "not an agent credential (they start with `{AGENT_CREDENTIAL_PREFIX}`): enroll the agent"
        )));
    }
    let today = OffsetDateTime::now_utc().date();
    match state
        .store
        .authenticate_agent(credential.to_owned(), today)
        .await?
    {
        Authentication::Agent(agent) => Ok(agent),
        Authentication::Unknown => Err(AppError::UnknownCredential(
            "unknown agent credential: enroll the agent again".to_owned(),
        )),
        Authentication::Revoked => Err(AppError::UnknownCredential(
            "agent credential was revoked (the host enrolled again?): enroll the agent again".to_owned(),
        )),
    }
}

/// The agent's clock minus ours in seconds, from `x-callhome-sent-at`; `None` when absent or
/// unreadable (an older agent): skew is then simply unknown.
fn clock_skew(headers: &HeaderMap, now: OffsetDateTime) -> Option<f64> {
    let sent = headers.get(SENT_AT_HEADER)?.to_str().ok()?;
    let sent = OffsetDateTime::parse(sent.trim(), &time::format_description::well_known::Rfc3339).ok()?;
    Some((sent - now).as_seconds_f64())
}

/// The credential in `Authorization: Bearer <credential>` (scheme case-insensitive, RFC 9110 §11.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn clock_skew_from_the_sent_at_header() {
        let now = time::macros::datetime!(2026-11-20 09:00:00 UTC);
        let mut h = HeaderMap::new();
        assert_eq!(clock_skew(&h, now), None);
        h.insert(SENT_AT_HEADER, "2026-11-20T09:06:00Z".parse().unwrap());
        assert_eq!(clock_skew(&h, now), Some(360.0));
        h.insert(SENT_AT_HEADER, "yesterday".parse().unwrap());
        assert_eq!(clock_skew(&h, now), None);
    }

    #[test]
    fn bearer_credentials() {
        assert_eq!(bearer(&with_auth("Bearer chac_abc")), Some("chac_abc"));
        assert_eq!(bearer(&with_auth("bearer   chac_abc ")), Some("chac_abc"));
        assert_eq!(bearer(&with_auth("Basic dXNlcjpwYXNz")), None);
        assert_eq!(bearer(&with_auth("Bearer ")), None);
        assert_eq!(bearer(&HeaderMap::new()), None);
    }
}
