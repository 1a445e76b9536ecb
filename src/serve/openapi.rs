//! The OpenAPI 3 description of every route (utoipa), served at `GET /openapi.json`.

use super::api::{
    BatchRequest, BatchResponse, BatchResult, ModelInfo, ProfileResponse, ProfilesPage,
    RecommendRequest, RecommendResponse, ReloadRequest, ReloadResponse, Status,
};
use super::error::ErrorBody;
use super::routes;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use std::sync::OnceLock;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "runsize",
        description = "Size-and-fit engine: size recommendations and how brands, products and categories run."
    ),
    paths(
        routes::healthz,
        routes::readyz,
        routes::metrics,
        openapi_json,
        routes::recommend,
        routes::recommend_batch,
        routes::brands,
        routes::brand,
        routes::product,
        routes::model_info,
        routes::reload,
        super::web::api::chart,
        super::web::api::convert,
        super::web::api::flags,
    ),
    components(schemas(
        ErrorBody,
        RecommendRequest,
        RecommendResponse,
        BatchRequest,
        BatchResult,
        BatchResponse,
        crate::model::report::FitProfile,
        ProfilesPage,
        ProfileResponse,
        ReloadRequest,
        ReloadResponse,
        ModelInfo,
        Status,
        super::web::api::ChartResponse,
        super::web::api::ConvertResponse,
        super::web::api::FlagsResponse,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "recommend", description = "Size recommendations"),
        (name = "profiles", description = "How brands, categories and products run"),
        (name = "ops", description = "Health, readiness, metrics, the model being served"),
        (name = "admin", description = "Model hot swap"),
    )
)]
pub struct ApiDoc;

/// Adds the `bearer` security scheme used by `/admin/reload`.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The description as JSON text (built once).
pub fn json() -> String {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| {
            format!("{{\"error\": \"cannot render the OpenAPI description: {e}\"}}")
        })
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_every_route() {
        let doc: serde_json::Value = serde_json::from_str(&json()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for route in super::super::metrics::ROUTES {
            assert!(paths.contains_key(route), "missing {route}");
        }
        assert!(doc["components"]["schemas"]["RecommendRequest"].is_object());
        assert!(doc["components"]["schemas"]["FitProfile"].is_object());
        assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    }
}

/// This API's OpenAPI 3 description.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json(),
    )
        .into_response()
}
