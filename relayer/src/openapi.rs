//! `GET /v1/openapi.json`: the API's OpenAPI document, generated from the handlers' own
//! request and response types.

use axum::{Json, Router, routing::get};
use smartmesh_http::CommonResponses;
use utoipa::OpenApi;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "SmartMesh relayer",
        description = "Submits users' signed operations through the SignedAgent, pays the gas, \
                       and earns a fee in SMT."
    ),
    modifiers(&CommonResponses),
    paths(
        crate::quote::quote,
        crate::relay::relay,
        crate::relay::status,
        crate::earnings::earnings,
        crate::api::health,
        crate::api::metrics,
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
