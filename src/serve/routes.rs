//! The JSON API's handlers: health, metrics, recommendations (single and batch), brand
//! and product profiles, model info and the authorised reload. The router is assembled in
//! `app.rs`, behind the middleware of `middleware.rs`.

use super::api::answer::recommend_json;
use super::api::limits::{DEFAULT_PAGE, MAX_PAGE};
use super::api::{
    check_limits_ref, ApiBody, ApiJson, BatchRequest, BatchResponse, BatchResult, ModelInfo,
    ProfileResponse, ProfilesPage, ProfilesQuery, RecommendRequest, RecommendRequestRef,
    RecommendResponse, Recommendation, ReloadRequest, ReloadResponse, Status,
};
use super::error::{ApiError, ErrorBody};
use super::state::{AppState, Loaded};
use crate::model::report::{FitProfile, ProfileBy};
use crate::model::RecommendationView;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::path::PathBuf;

/// Batches larger than this are computed on the blocking pool, not an async worker.
const INLINE_BATCH: usize = 32;

/// Process is alive.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
        model_id: None,
    })
}

/// A model is loaded and requests can be answered.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, body = Status),
    (status = 503, description = "no model loaded yet", body = ErrorBody),
))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    let loaded = state.loaded()?;
    Ok(Json(Status {
        status: "ready".into(),
        model_id: Some(loaded.header.model_id.clone()),
    }))
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let current = state.current();
    let mut text = state
        .metrics()
        .render(current.as_ref().map(|l| l.header.model_id.as_str()));
    state.in_flight().render(&mut text);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

/// One recommendation for a parsed request (limits checked, counted in the metrics by
/// confidence level), handed to `write` while its texts are borrowed from the request
/// and the model.
fn recommend_with<R>(
    loaded: &Loaded,
    state: &AppState,
    req: &RecommendRequestRef<'_>,
    write: impl FnOnce(RecommendationView<'_>) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    check_limits_ref(req)?;
    let query = req.to_query();
    let view = loaded.predictor.recommend(&query)?;
    state.metrics().recommendation(view.level);
    write(view)
}

fn recommend_one(
    loaded: &Loaded,
    state: &AppState,
    req: &RecommendRequestRef<'_>,
) -> Result<Recommendation, ApiError> {
    recommend_with(loaded, state, req, |v| Ok(v.into()))
}

/// Recommend a size of one product for one shopper.
///
/// The shopper's size is computed from what the request carries (a known customer id,
/// past purchases, reference sizes, body features): the server keeps no per-shopper state.
#[utoipa::path(post, path = "/v1/recommend", tag = "recommend",
    request_body = RecommendRequest,
    responses(
        (status = 200, body = RecommendResponse),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 404, description = "unknown product, brand and category with no sizes given", body = ErrorBody),
        (status = 413, description = "body or a list in it too large", body = ErrorBody),
        (status = 422, description = "invalid field (see `field`)", body = ErrorBody),
    ))]
pub async fn recommend(
    State(state): State<AppState>,
    ApiBody(body): ApiBody,
) -> Result<Response, ApiError> {
    // fast paths: UTF-8 checked once, strings borrowed from the body, the common body
    // shape parsed by hand (fastjson), else by serde; a body that does not parse is
    // parsed again as the owned type with axum's path-tracking deserializer, whose error
    // names the offending field
    let fast = std::str::from_utf8(&body).ok().and_then(|t| {
        super::api::fastjson::parse_recommend(t)
            .or_else(|| serde_json::from_str::<RecommendRequestRef<'_>>(t).ok())
    });
    match fast {
        Some(req) => answer(&state, &req),
        None => {
            let Json(req) = Json::<RecommendRequest>::from_bytes(&body)?;
            answer(&state, &req.view())
        }
    }
}

/// The `POST /v1/recommend` response to a parsed request.
fn answer(state: &AppState, req: &RecommendRequestRef<'_>) -> Result<Response, ApiError> {
    let json = state.with_loaded(|loaded| {
        recommend_with(loaded, state, req, |view| {
            recommend_json(&loaded.header.model_id, &view)
        })
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response())
}

fn batch_items(loaded: &Loaded, state: &AppState, items: Vec<serde_json::Value>) -> BatchResponse {
    let mut out = Vec::with_capacity(items.len());
    let mut ok = 0;
    for (i, item) in items.into_iter().enumerate() {
        let prefix = format!("items[{i}]");
        let answer = match serde_json::from_value::<RecommendRequest>(item) {
            Ok(req) => recommend_one(loaded, state, &req.view()).map_err(|e| e.prefixed(&prefix)),
            Err(e) => {
                let (field, message) = super::error::split_path(&e.to_string());
                let field = if field == "body" {
                    prefix
                } else {
                    format!("{prefix}.{field}")
                };
                Err(ApiError::Invalid { field, message })
            }
        };
        out.push(match answer {
            Ok(r) => {
                ok += 1;
                BatchResult {
                    recommendation: Some(r),
                    error: None,
                }
            }
            Err(e) => BatchResult {
                recommendation: None,
                error: Some(e.body()),
            },
        });
    }
    let failed = out.len() - ok;
    BatchResponse {
        model_id: loaded.header.model_id.clone(),
        ok,
        failed,
        items: out,
    }
}

/// Recommend for many product / shopper pairs in one call (e.g. a listing page).
///
/// Answers come in request order; an item that fails is reported in its own slot and
/// does not fail the batch.
#[utoipa::path(post, path = "/v1/recommend/batch", tag = "recommend",
    request_body = BatchRequest,
    responses(
        (status = 200, body = BatchResponse),
        (status = 400, description = "malformed JSON", body = ErrorBody),
        (status = 413, description = "more items than the server's --max-batch, or body too large", body = ErrorBody),
        (status = 422, description = "no items", body = ErrorBody),
    ))]
pub async fn recommend_batch(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let loaded = state.loaded()?;
    let max = state.options().max_batch;
    if req.items.is_empty() {
        return Err(ApiError::invalid("items", "expected at least one item"));
    }
    if req.items.len() > max {
        return Err(ApiError::PayloadTooLarge {
            field: Some("items".into()),
            message: format!("{} items; at most {max} per batch", req.items.len()),
        });
    }
    if req.items.len() <= INLINE_BATCH {
        return Ok(Json(batch_items(&loaded, &state, req.items)));
    }
    let s = state.clone();
    let answer = tokio::task::spawn_blocking(move || batch_items(&loaded, &s, req.items))
        .await
        .map_err(|e| ApiError::Internal {
            message: format!("batch task failed: {e}"),
        })?;
    Ok(Json(answer))
}

fn parse_by(by: Option<&str>) -> Result<(ProfileBy, &'static str), ApiError> {
    match by.unwrap_or("brand") {
        "brand" => Ok((ProfileBy::Brand, "brand")),
        "category" => Ok((ProfileBy::Category, "category")),
        "product" => Ok((ProfileBy::Product, "product")),
        other => Err(ApiError::invalid(
            "by",
            format!("'{other}': expected brand, category or product"),
        )),
    }
}

fn parse_count(
    field: &str,
    value: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    let Some(v) = value else {
        return Ok(default);
    };
    match v.parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(ApiError::invalid(
            field,
            format!("'{v}': expected a whole number 0..={max}"),
        )),
    }
}

/// Sort profiles by `sort` in `order`; ties by key.
fn sorted<'a>(items: &'a [FitProfile], sort: &str, desc: bool) -> Vec<&'a FitProfile> {
    let mut v: Vec<&FitProfile> = items.iter().collect();
    v.sort_by(|a, b| {
        let primary = match sort {
            "offset" => a.offset.total_cmp(&b.offset),
            "n" => a.n.cmp(&b.n),
            "name" => a.key.cmp(&b.key),
            _ => a.score.total_cmp(&b.score),
        };
        let primary = if desc { primary.reverse() } else { primary };
        primary.then_with(|| a.key.cmp(&b.key))
    });
    v
}

/// How brands (or categories, or products) run: offsets in sizes, intervals, counts.
#[utoipa::path(get, path = "/v1/brands", tag = "profiles",
    params(ProfilesQuery),
    responses(
        (status = 200, body = ProfilesPage),
        (status = 422, description = "invalid query parameter (see `field`)", body = ErrorBody),
    ))]
pub async fn brands(
    State(state): State<AppState>,
    query: Result<Query<ProfilesQuery>, QueryRejection>,
) -> Result<Json<ProfilesPage>, ApiError> {
    let Query(q) = query?;
    let loaded = state.loaded()?;
    let (by, by_name) = parse_by(q.by.as_deref())?;
    let sort = match q.sort.as_deref().unwrap_or("score") {
        s @ ("score" | "offset" | "n" | "name") => s.to_string(),
        other => {
            return Err(ApiError::invalid(
                "sort",
                format!("'{other}': expected score, offset, n or name"),
            ))
        }
    };
    let desc = match q.order.as_deref() {
        None => sort != "name",
        Some("desc") => true,
        Some("asc") => false,
        Some(other) => {
            return Err(ApiError::invalid(
                "order",
                format!("'{other}': expected asc or desc"),
            ))
        }
    };
    let limit = parse_count("limit", q.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    if limit == 0 {
        return Err(ApiError::invalid(
            "limit",
            format!("0: expected 1..={MAX_PAGE}"),
        ));
    }
    let offset = parse_count("offset", q.offset.as_deref(), 0, usize::MAX)?;
    let all = loaded.predictor.profiles(by);
    let items = sorted(all, &sort, desc)
        .into_iter()
        .skip(offset)
        .take(limit)
        .cloned()
        .collect();
    Ok(Json(ProfilesPage {
        model_id: loaded.header.model_id.clone(),
        by: by_name.to_string(),
        sort,
        order: if desc { "desc" } else { "asc" }.to_string(),
        total: all.len(),
        limit,
        offset,
        items,
    }))
}

/// How one brand runs.
#[utoipa::path(get, path = "/v1/brands/{brand}", tag = "profiles",
    params(("brand" = String, Path, description = "Brand name as in training")),
    responses(
        (status = 200, body = ProfileResponse),
        (status = 404, description = "unknown brand", body = ErrorBody),
    ))]
pub async fn brand(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<ProfileResponse>, ApiError> {
    let loaded = state.loaded()?;
    let p = &loaded.predictor;
    let profile = p
        .brand_index(&name)
        .and_then(|i| p.brand_profile(i))
        .cloned()
        .ok_or_else(|| ApiError::not_found("brand", format!("unknown brand '{name}'")))?;
    Ok(Json(ProfileResponse {
        model_id: loaded.header.model_id.clone(),
        profile,
        sizes: None,
        size_system: None,
        flag: None,
    }))
}

/// How one product runs (its offset includes its brand and category).
#[utoipa::path(get, path = "/v1/products/{id}", tag = "profiles",
    params(("id" = String, Path, description = "Product id as in training")),
    responses(
        (status = 200, body = ProfileResponse),
        (status = 404, description = "unknown product", body = ErrorBody),
    ))]
pub async fn product(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ProfileResponse>, ApiError> {
    let loaded = state.loaded()?;
    let m = &loaded.predictor;
    let found = m.product_index(&id).and_then(|i| {
        Some((
            m.product_profile(i as usize)?,
            m.product_info.get(i as usize)?,
        ))
    });
    let Some((profile, info)) = found else {
        return Err(ApiError::not_found("id", format!("unknown product '{id}'")));
    };
    let labels: Vec<_> = info
        .sizes
        .iter()
        .filter_map(|&l| m.labels.get(l as usize))
        .collect();
    Ok(Json(ProfileResponse {
        model_id: loaded.header.model_id.clone(),
        profile,
        sizes: Some(labels.iter().map(|l| l.canonical.clone()).collect()),
        size_system: labels.first().map(|l| l.system.as_str().to_string()),
        flag: m.product_index(&id).and_then(|i| {
            crate::model::insight::flags::product_flag(m, i as usize, &Default::default())
        }),
    }))
}

/// The model being served.
#[utoipa::path(get, path = "/v1/model", tag = "ops", responses(
    (status = 200, body = ModelInfo),
    (status = 503, description = "no model loaded yet", body = ErrorBody),
))]
pub async fn model_info(State(state): State<AppState>) -> Result<Json<ModelInfo>, ApiError> {
    let l = state.loaded()?;
    let m = &l.predictor;
    Ok(Json(ModelInfo {
        model_id: l.header.model_id.clone(),
        path: l.path.as_ref().map(|p| p.display().to_string()),
        runsize_version: l.header.runsize_version.clone(),
        created_unix: l.header.created_unix,
        loaded_unix: l.loaded_unix,
        brands: m.brands.len(),
        categories: m.categories.len(),
        products: m.products.len(),
        sizes: m.labels.len(),
        customers: m.customers.len(),
        features: m
            .features
            .numeric
            .iter()
            .map(|f| f.name.clone())
            .chain(m.features.categorical.iter().map(|f| f.name.clone()))
            .collect(),
        training_events: m.summary.events,
    }))
}

/// Constant-time comparison of two byte strings.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = state.options().admin_token.as_deref() else {
        return Err(ApiError::NotFound {
            field: None,
            message: "no such route: see GET /openapi.json".into(),
        });
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if same_secret(g.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized {
            message: "wrong admin token".into(),
        }),
        None => Err(ApiError::Unauthorized {
            message: "missing 'Authorization: Bearer <admin token>' header".into(),
        }),
    }
}

/// Load a new model artifact and swap it in atomically.
///
/// Needs `Authorization: Bearer <token>` (server flag `--admin-token` or env
/// `RUNSIZE_ADMIN_TOKEN`; without a configured token the route answers 404). The body is
/// optional: `{"path": "..."}` loads another file, else the current path is read again. A bad
/// artifact is refused with 422 and the old model keeps serving.
#[utoipa::path(post, path = "/admin/reload", tag = "admin",
    request_body(content = Option<ReloadRequest>, description = "optional; default: reload from the same path"),
    security(("bearer" = [])),
    responses(
        (status = 200, body = ReloadResponse),
        (status = 401, description = "missing or wrong token", body = ErrorBody),
        (status = 404, description = "no admin token configured: route disabled", body = ErrorBody),
        (status = 422, description = "artifact refused; the old model keeps serving", body = ErrorBody),
    ))]
pub async fn reload(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ReloadResponse>, ApiError> {
    authorize(&state, &headers)?;
    let req: ReloadRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ReloadRequest::default()
    } else {
        let Json(r) = Json::<ReloadRequest>::from_bytes(&body)?;
        r
    };
    let path = req.path.filter(|p| !p.trim().is_empty()).map(PathBuf::from);
    let report = state.reload(path).await?;
    Ok(Json(ReloadResponse {
        model_id: report.model_id,
        previous_model_id: report.previous_model_id,
        path: report.path.display().to_string(),
        seconds: report.seconds,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn counts_parse() {
        assert_eq!(parse_count("limit", None, 50, 1000).unwrap(), 50);
        assert_eq!(parse_count("limit", Some("7"), 50, 1000).unwrap(), 7);
        assert_eq!(
            parse_count("limit", Some("1001"), 50, 1000)
                .unwrap_err()
                .field(),
            Some("limit")
        );
        assert_eq!(
            parse_count("offset", Some("-1"), 0, usize::MAX)
                .unwrap_err()
                .field(),
            Some("offset")
        );
    }

    #[test]
    fn sort_orders() {
        let p = |key: &str, offset: f64, n: u64, score: f64| FitProfile {
            key: key.into(),
            brand: None,
            offset,
            se: 0.1,
            interval: [offset - 0.2, offset + 0.2],
            n,
            band: 0.0,
            verdict: String::new(),
            advice: String::new(),
            score,
        };
        let items = vec![
            p("b", -1.0, 10, 0.9),
            p("a", 0.5, 30, 0.4),
            p("c", 0.2, 20, 0.4),
        ];
        let keys =
            |v: Vec<&FitProfile>| v.iter().map(|p| p.key.clone()).collect::<Vec<_>>().join("");
        assert_eq!(keys(sorted(&items, "score", true)), "bac");
        assert_eq!(keys(sorted(&items, "offset", false)), "bca");
        assert_eq!(keys(sorted(&items, "n", true)), "acb");
        assert_eq!(keys(sorted(&items, "name", false)), "abc");
        assert_eq!(keys(sorted(&items, "name", true)), "cba");
    }
}
