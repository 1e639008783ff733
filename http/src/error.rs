//! The JSON error every endpoint answers with.

use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
    http::StatusCode,
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
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable code: `malformed_request`, `invalid_field`, `too_large`, `not_found`,
    /// `rate_limited`, `timeout`, `unavailable`, `conflict` or `internal`.
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
        }
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
        (
            self.status,
            Json(ErrorBody {
                error: self.error,
                detail: self.detail,
            }),
        )
            .into_response()
    }
}
