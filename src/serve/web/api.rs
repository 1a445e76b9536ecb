//! JSON routes of the size-normalisation view and their wire types: a brand's normalised
//! size chart (`GET /v1/brands/{brand}/chart`), brand-to-brand conversion
//! (`GET /v1/convert`) and flagged products (`GET /v1/flags`).

use crate::model::insight::chart::{size_chart, ChartQuery, SizeChart};
use crate::model::insight::convert::{convert as convert_sizes, Conversion, ConvertQuery};
use crate::model::insight::flags::{flags as product_flags, FlagOptions, ProductFlag};
use crate::model::insight::{brand_index, InsightError};
use crate::serve::error::{ApiError, ErrorBody};
use crate::serve::state::AppState;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};

/// `GET /v1/brands/{brand}/chart` query.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChartParams {
    /// Only the brand's products in this category.
    pub category: Option<String>,
    /// One product of the brand.
    pub product: Option<String>,
}

/// `GET /v1/brands/{brand}/chart` answer.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChartResponse {
    /// Id of the model artifact that answered.
    pub model_id: String,
    /// The chart.
    pub chart: SizeChart,
}

/// `GET /v1/convert` query.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConvertParams {
    /// Brand the shopper knows their size in (required).
    pub from_brand: Option<String>,
    /// Their size there; omitted: the full table of every size the brand sells.
    pub size: Option<String>,
    /// Brand to convert to (required).
    pub to_brand: Option<String>,
    /// Category of both (optional).
    pub category: Option<String>,
}

/// `GET /v1/convert` answer.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConvertResponse {
    /// Id of the model artifact that answered.
    pub model_id: String,
    /// The conversion table.
    pub conversion: Conversion,
}

/// `GET /v1/flags` query.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlagParams {
    /// Only this brand's products.
    pub brand: Option<String>,
    /// Smallest flag probability, 0.5..1 (default 0.9).
    pub threshold: Option<String>,
}

/// `GET /v1/flags` answer.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FlagsResponse {
    /// Id of the model artifact that answered.
    pub model_id: String,
    /// The threshold applied.
    pub threshold: f64,
    /// Flagged products, most certain first.
    pub items: Vec<ProductFlag>,
}

impl From<InsightError> for ApiError {
    fn from(e: InsightError) -> Self {
        match e {
            InsightError::NotFound { field, message } => ApiError::NotFound {
                field: Some(field),
                message,
            },
            InsightError::Invalid { field, message } => ApiError::Invalid { field, message },
        }
    }
}

fn required(value: Option<String>, field: &str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| ApiError::invalid(field, "required: expected a brand name"))
}

/// A brand's size labels on the common scale.
#[utoipa::path(get, path = "/v1/brands/{brand}/chart", tag = "profiles",
    params(("brand" = String, Path, description = "Brand name as in training"), ChartParams),
    responses(
        (status = 200, body = ChartResponse),
        (status = 404, description = "unknown brand, category or product", body = ErrorBody),
    ))]
pub async fn chart(
    State(state): State<AppState>,
    Path(brand): Path<String>,
    query: Result<Query<ChartParams>, QueryRejection>,
) -> Result<Json<ChartResponse>, ApiError> {
    let Query(q) = query?;
    let loaded = state.loaded()?;
    let chart = size_chart(
        &loaded.predictor,
        &ChartQuery {
            brand,
            category: q.category,
            product: q.product,
        },
    )?;
    Ok(Json(ChartResponse {
        model_id: loaded.header.model_id.clone(),
        chart,
    }))
}

/// Which sizes of another brand fit a shopper who wears a size of this one.
#[utoipa::path(get, path = "/v1/convert", tag = "profiles",
    params(ConvertParams),
    responses(
        (status = 200, body = ConvertResponse),
        (status = 404, description = "unknown brand or category", body = ErrorBody),
        (status = 422, description = "missing brand, or a size the brand does not sell", body = ErrorBody),
    ))]
pub async fn convert(
    State(state): State<AppState>,
    query: Result<Query<ConvertParams>, QueryRejection>,
) -> Result<Json<ConvertResponse>, ApiError> {
    let Query(q) = query?;
    let loaded = state.loaded()?;
    let conversion = convert_sizes(
        &loaded.predictor,
        &ConvertQuery {
            from_brand: required(q.from_brand, "from_brand")?,
            size: q.size.filter(|s| !s.trim().is_empty()),
            to_brand: required(q.to_brand, "to_brand")?,
            category: q.category,
        },
    )?;
    Ok(Json(ConvertResponse {
        model_id: loaded.header.model_id.clone(),
        conversion,
    }))
}

/// Parse a flag threshold (0.5..=1; default 0.9).
pub fn parse_threshold(value: Option<&str>) -> Result<FlagOptions, ApiError> {
    let mut opts = FlagOptions::default();
    if let Some(v) = value {
        match v.trim().parse::<f64>() {
            Ok(t) if (0.5..=1.0).contains(&t) => opts.threshold = t,
            _ => {
                return Err(ApiError::invalid(
                    "threshold",
                    format!("'{v}': expected a probability between 0.5 and 1"),
                ))
            }
        }
    }
    Ok(opts)
}

/// Products that run small or large by at least half a size, with enough confidence.
#[utoipa::path(get, path = "/v1/flags", tag = "profiles",
    params(FlagParams),
    responses(
        (status = 200, body = FlagsResponse),
        (status = 404, description = "unknown brand", body = ErrorBody),
        (status = 422, description = "invalid threshold", body = ErrorBody),
    ))]
pub async fn flags(
    State(state): State<AppState>,
    query: Result<Query<FlagParams>, QueryRejection>,
) -> Result<Json<FlagsResponse>, ApiError> {
    let Query(q) = query?;
    let loaded = state.loaded()?;
    let opts = parse_threshold(q.threshold.as_deref())?;
    let brand = match q.brand.as_deref().filter(|b| !b.trim().is_empty()) {
        Some(b) => brand_index(&loaded.predictor, "brand", b)?,
        None => crate::data::schema::NONE,
    };
    Ok(Json(FlagsResponse {
        model_id: loaded.header.model_id.clone(),
        threshold: opts.threshold,
        items: product_flags(&loaded.predictor, brand, &opts),
    }))
}
