//! The JSON error every endpoint answers with.

use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header::RETRY_AFTER},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

/// An HTTP error with a JSON body `{error, detail}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: String,
    /// Seconds for a `Retry-After` header (429 and 503).
    retry_after: Option<u64>,
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `malformed_request`, `invalid_field`, `unauthorized`, `forbidden`,
    /// `too_large`, `not_found`, `method_not_allowed`, `rate_limited`, `timeout`,
    /// `unavailable`, `conflict` or `internal`.
    pub error: &'static str,
    /// What was wrong, starting with the offending field where there is one.
    pub detail: String,
}

impl ApiError {
    /// An error with its status, stable code and detail.
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            error,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The same error telling the client to retry in `seconds` (at least one).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds.max(1));
        self
    }

    /// The error's HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A field's value is not acceptable.
    pub fn invalid(field: &str, detail: String) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {detail}"),
        )
    }

    /// The request is larger than allowed.
    pub fn too_large(field: &str, detail: String) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("{field}: {detail}"),
        )
    }

    /// The request must prove who sends it, and did not (or not validly).
    pub fn unauthorized(field: &str, detail: String) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            format!("{field}: {detail}"),
        )
    }

    /// The sender proved who it is, and may not see this.
    pub fn forbidden(field: &str, detail: String) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("{field}: {detail}"),
        )
    }

    /// Nothing is known under the given key.
    pub fn not_found(field: &str, detail: String) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{field}: {detail}"),
        )
    }

    /// The body is not the JSON the endpoint takes; serde's message names the field.
    pub fn from_json(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "malformed_request"
        };
        Self::new(status, error, rejection.body_text())
    }

    /// The query string does not parse; serde's message names the parameter.
    pub fn from_query(rejection: QueryRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            rejection.body_text(),
        )
    }

    /// A path segment does not parse.
    pub fn from_path(field: &str, rejection: PathRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            format!("{field}: {}", rejection.body_text()),
        )
    }

    /// The database failed (full, unreachable, refusing writes): a 503 naming it, so that a
    /// client retries rather than gives up, and an operator sees what to fix.
    pub fn storage(error: impl std::fmt::Display) -> Self {
        tracing::error!(target: "smartmesh::api", %error, "database failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("database: {error}; retry later"),
        )
        .retry_after(1)
    }

    /// The chain's node did not answer: a 503 naming it.
    pub fn node(error: impl std::fmt::Display) -> Self {
        tracing::warn!(target: "smartmesh::api", %error, "node failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("chain: the node did not answer ({error}); retry later"),
        )
        .retry_after(1)
    }

    /// A failure of the server itself; the detail is logged, not returned.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(target: "smartmesh::api", %error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: self.error,
                detail: self.detail,
            }),
        )
            .into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(RETRY_AFTER, value);
        }
        response
    }
}
