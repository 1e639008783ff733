//! The HTTP surface: `app(state)` merges each module's router; errors are JSON
//! `{error, detail}` naming the offending field.

use std::sync::Arc;

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use smartmesh_chain::Database;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The storage.
    pub db: Database,
    /// The chain this watcher guards.
    pub chain_id: u64,
    /// The TokenNetwork it guards.
    pub token_network: Address,
    /// The key it signs acknowledgments with (and, later, disputes).
    pub watcher: Arc<PrivateKeySigner>,
}

/// The largest request body: a full batch of text proofs with their Watches.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The watcher's HTTP API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .merge(crate::receipts::router())
        .route("/v1/health", get(health))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// An HTTP error with a JSON body `{error, detail}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    detail: &'a str,
}

impl ApiError {
    /// A field's value is not acceptable.
    pub fn invalid(field: &str, detail: String) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            error: "invalid_field",
            detail: format!("{field}: {detail}"),
        }
    }

    /// The request is larger than allowed.
    pub fn too_large(field: &str, detail: String) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error: "too_large",
            detail: format!("{field}: {detail}"),
        }
    }

    /// The body is not the JSON the endpoint takes; serde's message names the field.
    pub fn from_json(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let error = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "malformed_request"
        };
        Self {
            status,
            error,
            detail: rejection.body_text(),
        }
    }

    /// A failure of the server itself; the detail is logged, not returned.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(target: "smartmesh::api", %error, "request failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "internal",
            detail: "internal error".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.error,
                detail: &self.detail,
            }),
        )
            .into_response()
    }
}
