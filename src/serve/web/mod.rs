//! The merchant web page served at `/`: brands ranked by how they run, brand pages
//! (normalised size chart, products with flags, conversion), the model page (training
//! summary, reliability plot, worth table) and "try a shopper". Server-rendered HTML with
//! inline SVG charts: the read-only pages need no script; the stylesheet and the one
//! script are embedded in the binary (no CDN, no network). Also the JSON routes of the
//! size-normalisation view ([`api`]) and the self-contained report ([`report`]).

pub mod api;
pub mod brand_page;
pub mod html;
pub mod pages;
pub mod report;
pub mod svg;
pub mod try_page;

use crate::model::report::ProfileBy;
use crate::serve::error::ApiError;
use crate::serve::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use html::{esc, page, Delivery, Nav};
use serde::Deserialize;

/// The routes of the web page and of the size-normalisation API, to merge into the
/// server's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/brands/{brand}", get(brand))
        .route("/model", get(model))
        .route("/try", get(try_shopper))
        .route("/assets/style.css", get(style))
        .route("/assets/app.js", get(script))
        .route("/v1/brands/{brand}/chart", get(api::chart))
        .route("/v1/convert", get(api::convert))
        .route("/v1/flags", get(api::flags))
}

/// Ranking page query.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct IndexQuery {
    /// `brand` (default), `category` or `product`.
    pub by: Option<String>,
    /// Search text.
    pub q: Option<String>,
    /// `score` (default), `offset`, `name`, `n`.
    pub sort: Option<String>,
    /// `asc` or `desc`.
    pub order: Option<String>,
}

/// Brand page query.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct BrandQuery {
    /// Category filter.
    pub category: Option<String>,
    /// Conversion target brand.
    pub to: Option<String>,
}

/// An HTML error page with the status [`ApiError`] maps to (the one place statuses are
/// chosen), its message shown to the reader.
fn error_page(e: ApiError) -> Response {
    let status = e.clone().into_response().status();
    let body = format!(
        "<h1>{}</h1><p class=\"error\">{}</p><p><a href=\"/\">Back to the brands</a></p>",
        status.canonical_reason().unwrap_or("Error"),
        esc(&e.to_string())
    );
    (
        status,
        Html(page("Error", Nav::Brands, &body, Delivery::Live)),
    )
        .into_response()
}

fn html(title: &str, nav: Nav, body: &str) -> Response {
    Html(page(title, nav, body, Delivery::Live)).into_response()
}

async fn index(State(state): State<AppState>, Query(q): Query<IndexQuery>) -> Response {
    let loaded = match state.loaded() {
        Ok(l) => l,
        Err(e) => return error_page(e),
    };
    let by = match q.by.as_deref() {
        Some("category") => ProfileBy::Category,
        Some("product") => ProfileBy::Product,
        _ => ProfileBy::Brand,
    };
    let sort = match q.sort.as_deref() {
        Some(s @ ("offset" | "name" | "n" | "score")) => s.to_string(),
        _ => "score".to_string(),
    };
    let desc = match q.order.as_deref() {
        Some("asc") => false,
        Some("desc") => true,
        _ => sort != "name",
    };
    let p = pages::RankParams {
        by,
        q: q.q.unwrap_or_default(),
        sort,
        desc,
    };
    let body = pages::ranking(&loaded.predictor, loaded.predictor.profiles(by), &p, true);
    html("How brands run", Nav::Brands, &body)
}

async fn brand(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<BrandQuery>,
) -> Response {
    let loaded = match state.loaded() {
        Ok(l) => l,
        Err(e) => return error_page(e),
    };
    let p = brand_page::BrandParams {
        category: q.category.filter(|c| !c.is_empty()),
        to: q.to.filter(|t| !t.is_empty()),
    };
    match brand_page::brand_page(&loaded.predictor, &name, &p, true) {
        Ok(body) => html(&name, Nav::Brands, &body),
        Err(e) => error_page(e.into()),
    }
}

async fn model(State(state): State<AppState>) -> Response {
    match state.loaded() {
        Ok(l) => html(
            "The model",
            Nav::Model,
            &pages::model_page(&l.predictor, &l.header),
        ),
        Err(e) => error_page(e),
    }
}

async fn try_shopper(State(state): State<AppState>) -> Response {
    match state.loaded() {
        Ok(l) => html("Try a shopper", Nav::Try, &try_page::try_page(&l.predictor)),
        Err(e) => error_page(e),
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", html::STYLE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", html::SCRIPT)
}
