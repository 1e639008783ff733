//! `GET /v1/openapi.json`: the API's OpenAPI document, generated from the handlers' own
//! request and response types, so it cannot drift from what the server does.

use axum::{Json, Router, routing::get};
use smartmesh_http::CommonResponses;
use utoipa::OpenApi;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SmartMesh settlement watcher",
        description = "Takes phones' batched receipts, follows the chain, disputes stale closes \
                       and settles for phones that are offline."
    ),
    modifiers(&CommonResponses),
    paths(
        crate::receipts::upload,
        crate::channels::channel,
        crate::channels::latest_proof,
        crate::api::health,
        crate::metrics::metrics,
    )
)]
struct ApiDoc;

/// The document, for tools and tests.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/openapi.json", get(|| async { Json(openapi()) }))
}
