//! The one mapping from what went wrong to an HTTP answer. Every 4xx and 5xx body is a
//! [`callhome_shared::api::ApiError`] with a stable `error` code the agent can act on.
//!
//! Internal errors reach the client as a generic message; their detail travels to the request-log
//! middleware in a response extension ([`InternalDetail`]) and is logged there, once.

use axum::Json;
use axum::response::{IntoResponse, Response};
use callhome_shared::DecodeError;
use callhome_shared::api::ApiError;
use http::StatusCode;
use http::header::{CONNECTION, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};

use crate::ingest::IngestError;
use crate::store::{EnrollError, StoreError};

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    InvalidSnapshot(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    CorruptEncoding(String),
    /// Missing, unknown or revoked agent credential.
    #[error("{0}")]
    UnknownCredential(String),
    #[error("unknown enrollment token")]
    UnknownToken,
    #[error("{0}")]
    TokenExpired(String),
    #[error("{0}")]
    TokenRevoked(String),
    #[error(
        "org {org} has no active support contract: snapshots and enrollments are refused until it is renewed"
    )]
    ContractLapsed { org: String },
    #[error("{0}")]
    HostMismatch(String),
    /// Mutual TLS is required and the connection presented no client certificate.
    #[error("{0}")]
    ClientCertificateRequired(String),
    /// The client certificate expired while the connection was open.
    #[error("{0}")]
    ClientCertificateExpired(String),
    /// The client certificate is bound to another host, org or environment than the credential.
    #[error("{0}")]
    ClientCertificateMismatch(String),
    #[error("{0}")]
    HostEnrolledElsewhere(String),
    #[error("{0}")]
    BodyTooLarge(String),
    #[error("{0}")]
    DecompressedTooLarge(String),
    #[error("{0}")]
    UnsupportedEncoding(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    UnsupportedSchemaVersion(String),
    #[error("the request took longer than {0} seconds")]
    RequestTimeout(u64),
    #[error("no such resource")]
    NotFound,
    /// The request conflicts with what is stored (the thing exists already).
    #[error("{0}")]
    Conflict(String),
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    /// The ingest queue is full (`limits.max_inflight_snapshots`): retry after `retry_after` seconds.
    #[error("the collector is at its limit of snapshots in flight: retry in {retry_after} seconds")]
    TooManyRequests { retry_after: u64 },
    /// The collector is draining before it stops: retry after `retry_after` seconds (on this or
    /// another instance).
    #[error("the collector is shutting down: retry in {retry_after} seconds")]
    ShuttingDown { retry_after: u64 },
    /// The database could not answer (busy, I/O error): the client should retry later.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an impossible state; the detail is logged, never sent.
    #[error("{0}")]
    Internal(String),
}

/// Detail of a 5xx, for the request log; never sent to the client.
#[derive(Debug, Clone)]
pub struct InternalDetail(pub String);

impl AppError {
    pub fn status(&self) -> StatusCode {
        use AppError::*;
        match self {
            MalformedJson(_) | InvalidSnapshot(_) | InvalidRequest(_) | CorruptEncoding(_) => {
                StatusCode::BAD_REQUEST
            }
            UnknownCredential(_)
            | UnknownToken
            | TokenExpired(_)
            | TokenRevoked(_)
            | ClientCertificateRequired(_)
            | ClientCertificateExpired(_) => StatusCode::UNAUTHORIZED,
            ContractLapsed { .. } | HostMismatch(_) | ClientCertificateMismatch(_) => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            HostEnrolledElsewhere(_) | Conflict(_) => StatusCode::CONFLICT,
            BodyTooLarge(_) | DecompressedTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            UnsupportedEncoding(_) | UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            UnsupportedSchemaVersion(_) => StatusCode::UNPROCESSABLE_ENTITY,
            TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Unavailable(_) | ShuttingDown { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable code in the body's `error` field.
    pub fn code(&self) -> &'static str {
        use AppError::*;
        match self {
            MalformedJson(_) => "malformed_json",
            InvalidSnapshot(_) => "invalid_snapshot",
            InvalidRequest(_) => "invalid_request",
            CorruptEncoding(_) => "corrupt_encoding",
            UnknownCredential(_) => "unknown_credential",
            UnknownToken => "unknown_token",
            TokenExpired(_) => "token_expired",
            TokenRevoked(_) => "token_revoked",
            ContractLapsed { .. } => "contract_lapsed",
            HostMismatch(_) => "host_mismatch",
            ClientCertificateRequired(_) => "client_certificate_required",
            ClientCertificateExpired(_) => "client_certificate_expired",
            ClientCertificateMismatch(_) => "client_certificate_mismatch",
            HostEnrolledElsewhere(_) => "host_enrolled_elsewhere",
            BodyTooLarge(_) => "body_too_large",
            DecompressedTooLarge(_) => "decompressed_too_large",
            UnsupportedEncoding(_) => "unsupported_encoding",
            UnsupportedMediaType(_) => "unsupported_media_type",
            UnsupportedSchemaVersion(_) => "unsupported_schema_version",
            RequestTimeout(_) => "request_timeout",
            NotFound => "not_found",
            Conflict(_) => "conflict",
            MethodNotAllowed => "method_not_allowed",
            TooManyRequests { .. } => "too_many_requests",
            ShuttingDown { .. } => "shutting_down",
            Unavailable(_) => "unavailable",
            Internal(_) => "internal",
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (message, detail) = match &self {
            AppError::Internal(detail) => (
                "internal error: the collector logged the details".to_owned(),
                Some(detail.clone()),
            ),
            AppError::Unavailable(detail) => (
                "the collector cannot store data right now: retry later".to_owned(),
                Some(detail.clone()),
            ),
            other => (other.to_string(), None),
        };
        let body = ApiError {
            error: self.code().to_owned(),
            message,
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            AppError::UnknownCredential(_) => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            AppError::Unavailable(_) => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
            }
            AppError::TooManyRequests { retry_after } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(retry_after));
            }
            AppError::ShuttingDown { retry_after } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(retry_after));
                // hyper closes the connection after a response that says so (RFC 9112 §9.6), so the
                // client's next request opens a new connection, to a collector that is up.
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        if let Some(detail) = detail {
            response.extensions_mut().insert(InternalDetail(detail));
        }
        response
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(_)
            | StoreError::Unavailable(_)
            | StoreError::DataDir { .. }
            | StoreError::SchemaTooNew { .. } => AppError::Unavailable(e.to_string()),
            _ => AppError::Internal(e.to_string()),
        }
    }
}

impl From<EnrollError> for AppError {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::UnknownToken => AppError::UnknownToken,
            EnrollError::TokenExpired { .. } => AppError::TokenExpired(e.to_string()),
            EnrollError::TokenRevoked { .. } => AppError::TokenRevoked(e.to_string()),
            EnrollError::ContractLapsed { org } => AppError::ContractLapsed { org },
            EnrollError::HostEnrolledElsewhere { .. } => AppError::HostEnrolledElsewhere(e.to_string()),
            EnrollError::Store(e) => e.into(),
        }
    }
}

impl From<IngestError> for AppError {
    fn from(e: IngestError) -> Self {
        let message = e.to_string();
        match e {
            IngestError::UnsupportedEncoding(_) => AppError::UnsupportedEncoding(message),
            IngestError::UnsupportedMediaType(_) => AppError::UnsupportedMediaType(message),
            IngestError::BodyTooLarge { .. } => AppError::BodyTooLarge(message),
            IngestError::DecompressedTooLarge { .. } => AppError::DecompressedTooLarge(message),
            IngestError::CorruptEncoding { .. } => AppError::CorruptEncoding(message),
            IngestError::Read(_) => AppError::InvalidRequest(message),
        }
    }
}

impl From<DecodeError> for AppError {
    fn from(e: DecodeError) -> Self {
        let message = e.to_string();
        match e {
            DecodeError::Malformed(_) => AppError::MalformedJson(message),
            DecodeError::Invalid(_) => AppError::InvalidSnapshot(message),
            DecodeError::UnsupportedVersion { .. } => AppError::UnsupportedSchemaVersion(message),
        }
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(e: tokio::task::JoinError) -> Self {
        AppError::Internal(format!("background task failed: {e}"))
    }
}
