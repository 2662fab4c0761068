//! `POST /v1/enroll`: trade an enrollment token for an agent credential, and a CSR for a client
//! certificate bound to the host, org and environment enrolled (`agent_cert`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use callhome_shared::api::{ENROLLMENT_TOKEN_PREFIX, EnrollBody, EnrollRequest, EnrollResponse};
use http::StatusCode;
use time::OffsetDateTime;

use super::{AppError, AppState, agent_cert};
use crate::agent_ca::Binding;
use crate::ingest;

/// Longest hostname or agent version accepted (the snapshot schema's limit for names).
const MAX_NAME_LEN: usize = 255;

pub async fn enroll(
    State(state): State<AppState>,
    headers: http::HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<EnrollResponse>), AppError> {
    ingest::check_json_content_type(&headers)?;
    let bytes = ingest::read_limited(body, state.max_enroll_body_bytes()).await?;
    let body: EnrollBody = serde_json::from_slice(&bytes)
        .map_err(|e| AppError::MalformedJson(format!("invalid enrollment request: {e}")))?;
    let (request, csr) = body.split();
    validate(&request)?;
    // The CSR is checked before the enrollment is stored: a bad one must not cost a credential.
    let csr = csr.as_deref().map(agent_cert::parse_csr).transpose()?;
    if csr.is_none() && state.agent_certs.required() {
        return Err(AppError::InvalidRequest(
            "this collector requires client certificates (mutual TLS) and the enrollment carries no \
             CSR: upgrade the agent"
                .to_owned(),
        ));
    }
    let now = OffsetDateTime::now_utc();
    let enrolled = state.store.enroll(request, now).await?;
    tracing::info!(host_id = %enrolled.host_id, org = %enrolled.org, environment = %enrolled.environment,
        tier = %enrolled.tier, "host enrolled");
    let client_certificate = match &csr {
        Some(csr) => {
            let binding = Binding {
                host_id: enrolled.host_id,
                org: enrolled.org.clone(),
                environment: enrolled.environment.clone(),
            };
            state.agent_certs.issue(csr, &binding, now)?
        }
        None => None,
    };
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            credential: enrolled.credential.expose().to_owned(),
            host_id: enrolled.host_id,
            org: enrolled.org,
            environment: enrolled.environment,
            client_certificate,
        }),
    ))
}

fn validate(request: &EnrollRequest) -> Result<(), AppError> {
    if !request.token.starts_with(ENROLLMENT_TOKEN_PREFIX) {
        return Err(AppError::UnknownToken);
    }
    if request.host_id.is_nil() {
        return Err(AppError::InvalidRequest("host_id is the nil UUID".to_owned()));
    }
    for (field, value) in [
        ("hostname", &request.hostname),
        ("agent_version", &request.agent_version),
    ] {
        if value.is_empty() || value.len() > MAX_NAME_LEN {
            return Err(AppError::InvalidRequest(format!(
                "{field} must be 1 to {MAX_NAME_LEN} bytes"
            )));
        }
    }
    Ok(())
}
