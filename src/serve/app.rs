//! The full API router: every route of [`super::routes`], the OpenAPI document and the
//! merchant web pages, behind the server's middleware ([`super::middleware::layered`]).

use super::middleware::{layered, NO_DEADLINE};
use super::openapi::openapi_json;
use super::routes::{
    brand, brands, healthz, metrics, model_info, product, readyz, recommend, recommend_batch,
    reload,
};
use super::state::AppState;
use axum::routing::{get, post};
use axum::Router;

/// The full API router over `state`, with every layer.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi_json))
        .route("/v1/recommend", post(recommend))
        .route("/v1/recommend/batch", post(recommend_batch))
        .route("/v1/brands", get(brands))
        .route("/v1/brands/{brand}", get(brand))
        .route("/v1/products/{id}", get(product))
        .route("/v1/model", get(model_info))
        .merge(super::web::routes())
        // reloads can take longer than a request timeout: no deadline (see TrackLayer)
        .route(NO_DEADLINE, post(reload));
    layered(routes, state)
}
