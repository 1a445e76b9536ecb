//! Request and response bodies of the HTTP API, the request limits checked before the
//! model is asked, and the JSON body extractor that turns bad bodies into [`ApiError`]s.

use super::error::{ApiError, ErrorBody};
use crate::model::recommend::{
    ProductQuery, ProductQueryRef, Recommendation, Shopper, ShopperRef, Text,
};
use crate::model::report::FitProfile;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Most past purchases one shopper may carry.
pub const MAX_HISTORY: usize = 1000;
/// Most reference sizes one shopper may carry.
pub const MAX_REFERENCE: usize = 100;
/// Most body features one shopper may carry.
pub const MAX_FEATURES: usize = 64;
/// Most sizes on offer in one product query.
pub const MAX_SIZES: usize = 200;
/// Longest string accepted in a key or label, in bytes.
pub const MAX_TEXT: usize = 512;
/// Largest `limit` of `GET /v1/brands`.
pub const MAX_PAGE: usize = 1000;
/// Default `limit` of `GET /v1/brands`.
pub const DEFAULT_PAGE: usize = 50;

/// `POST /v1/recommend` body: the product being looked at and what is known about the shopper.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecommendRequest {
    /// The product: brand, optional product id, category, sizes on offer.
    pub product: ProductQuery,
    /// The shopper: any of a known customer id, past purchases, reference sizes, body features.
    #[serde(default)]
    pub shopper: Shopper,
}

impl RecommendRequest {
    /// A borrowed view.
    pub fn view(&self) -> RecommendRequestRef<'_> {
        RecommendRequestRef {
            product: self.product.view(),
            shopper: self.shopper.view(),
        }
    }
}

/// [`RecommendRequest`] borrowing its strings from the request body: what
/// `POST /v1/recommend` parses (same JSON shape and defaults).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct RecommendRequestRef<'a> {
    /// The product.
    #[serde(borrow)]
    pub product: ProductQueryRef<'a>,
    /// The shopper.
    #[serde(default, borrow)]
    pub shopper: ShopperRef<'a>,
}

/// `POST /v1/recommend` answer: the recommendation plus the id of the model that made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecommendResponse {
    /// Id of the model artifact that answered.
    pub model_id: String,
    /// The recommendation.
    #[serde(flatten)]
    pub recommendation: Recommendation,
}

/// `POST /v1/recommend/batch` body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchRequest {
    /// Items, each like a `POST /v1/recommend` body. An item that does not parse is
    /// reported in its own answer slot.
    #[schema(value_type = Vec<RecommendRequest>)]
    pub items: Vec<serde_json::Value>,
}

/// One answer of a batch: either a recommendation or an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResult {
    /// The recommendation, when the item succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<Recommendation>,
    /// The error, when it failed (`field` is prefixed with `items[i].`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// `POST /v1/recommend/batch` answer, in request order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchResponse {
    /// Id of the model artifact that answered (the same for every item).
    pub model_id: String,
    /// Items that succeeded.
    pub ok: usize,
    /// Items that failed.
    pub failed: usize,
    /// One answer per request item, in order.
    pub items: Vec<BatchResult>,
}

/// Query of `GET /v1/brands`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProfilesQuery {
    /// `brand` (default), `category` or `product`.
    pub by: Option<String>,
    /// `score` (default: the effect we are sure of), `offset`, `n` or `name`.
    pub sort: Option<String>,
    /// `asc` or `desc` (default: `asc` for `name`, `desc` otherwise).
    pub order: Option<String>,
    /// Page size, 1..=1000 (default 50).
    pub limit: Option<String>,
    /// Items to skip (default 0).
    pub offset: Option<String>,
}

/// A page of fit profiles.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProfilesPage {
    /// Id of the model artifact that answered.
    pub model_id: String,
    /// `brand`, `category` or `product`.
    pub by: String,
    /// Sort key used.
    pub sort: String,
    /// Order used.
    pub order: String,
    /// Profiles in total.
    pub total: usize,
    /// Page size.
    pub limit: usize,
    /// Items skipped.
    pub offset: usize,
    /// This page.
    pub items: Vec<FitProfile>,
}

/// A single fit profile with the model id.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProfileResponse {
    /// Id of the model artifact that answered.
    pub model_id: String,
    /// The profile.
    pub profile: FitProfile,
    /// Products only: the sizes seen in training, in size order (the default offer of
    /// `POST /v1/recommend`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sizes: Option<Vec<String>>,
    /// Products only: the size system of those sizes (`letter`, `us`, `eu`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_system: Option<String>,
    /// Products only: its "runs small / large" flag, when it has one (see `GET /v1/flags`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<crate::model::insight::flags::ProductFlag>,
}

/// `POST /admin/reload` body (optional).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReloadRequest {
    /// Artifact to load (default: the path the server was started with).
    #[serde(default)]
    pub path: Option<String>,
}

/// `POST /admin/reload` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReloadResponse {
    /// Id of the model now serving.
    pub model_id: String,
    /// Id of the model it replaced.
    pub previous_model_id: Option<String>,
    /// Artifact loaded.
    pub path: String,
    /// Seconds spent loading and validating.
    pub seconds: f64,
}

/// `GET /v1/model` answer: what is being served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// Model id (checksum of the artifact body).
    pub model_id: String,
    /// Artifact path, when loaded from a file.
    pub path: Option<String>,
    /// runsize version that wrote the artifact.
    pub runsize_version: String,
    /// When the artifact was written (seconds since the Unix epoch).
    pub created_unix: u64,
    /// When this server loaded it (seconds since the Unix epoch).
    pub loaded_unix: u64,
    /// Brands, categories, products, size labels, customers known to the model.
    pub brands: usize,
    /// Categories.
    pub categories: usize,
    /// Products.
    pub products: usize,
    /// Size labels.
    pub sizes: usize,
    /// Customers in the training table.
    pub customers: usize,
    /// Body features the model uses, by name.
    pub features: Vec<String>,
    /// Events the model was trained on.
    pub training_events: u64,
}

/// `GET /healthz` and `GET /readyz` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok` or `ready`.
    pub status: String,
    /// Id of the model serving (readyz only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

/// A JSON body extractor whose rejections are [`ApiError`]s: malformed JSON is 400, a
/// well-formed body of the wrong shape is 422 with the field's JSON path, a body over the
/// limit is 413. The content type is not checked.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await?;
        // fast path: plain serde_json; only a failure is parsed again with axum's
        // path-tracking deserializer to name the offending field
        if let Ok(value) = serde_json::from_slice::<T>(&bytes) {
            return Ok(ApiJson(value));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(ApiJson(value))
    }
}

/// The raw request body, with body errors (too large, unreadable) as [`ApiError`]s.
#[derive(Debug, Clone)]
pub struct ApiBody(pub Bytes);

impl<S> FromRequest<S> for ApiBody
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ApiBody(Bytes::from_request(req, state).await?))
    }
}

fn check_len(field: &str, len: usize, max: usize) -> Result<(), ApiError> {
    if len > max {
        return Err(ApiError::PayloadTooLarge {
            field: Some(field.to_string()),
            message: format!("{len} entries; at most {max} are accepted"),
        });
    }
    Ok(())
}

fn check_text(field: impl FnOnce() -> String, text: Option<&str>) -> Result<(), ApiError> {
    match text {
        Some(t) if t.len() > MAX_TEXT => Err(ApiError::invalid(
            field(),
            format!("{} bytes; at most {MAX_TEXT} are accepted", t.len()),
        )),
        _ => Ok(()),
    }
}

/// Check the request limits (list lengths, string lengths) before the model is asked;
/// the model validates the values themselves.
pub fn check_limits(req: &RecommendRequest) -> Result<(), ApiError> {
    check_limits_ref(&req.view())
}

/// [`check_limits`] of a borrowed request.
pub fn check_limits_ref(req: &RecommendRequestRef<'_>) -> Result<(), ApiError> {
    let t = Text::opt;
    let p = &req.product;
    check_text(|| "product.brand".into(), t(&p.brand))?;
    check_text(|| "product.product_id".into(), t(&p.product_id))?;
    check_text(|| "product.category".into(), t(&p.category))?;
    check_text(|| "product.size_system".into(), t(&p.size_system))?;
    if let Some(sizes) = &p.sizes {
        check_len("product.sizes", sizes.len(), MAX_SIZES)?;
        for (i, s) in sizes.iter().enumerate() {
            check_text(|| format!("product.sizes[{i}]"), Some(s.as_str()))?;
        }
    }
    let s = &req.shopper;
    check_text(|| "shopper.customer_id".into(), t(&s.customer_id))?;
    check_len("shopper.history", s.history.len(), MAX_HISTORY)?;
    check_len("shopper.reference", s.reference.len(), MAX_REFERENCE)?;
    check_len("shopper.features", s.features.len(), MAX_FEATURES)?;
    let len = |t: &Option<Text<'_>>| t.as_ref().map_or(0, |t| t.as_str().len());
    for (i, h) in s.history.iter().enumerate() {
        let longest = [
            len(&h.brand),
            len(&h.product_id),
            len(&h.category),
            h.size.as_str().len(),
            len(&h.size_system),
            h.outcome.as_str().len(),
        ];
        // the common case, every text short, in one comparison
        if longest.into_iter().max().unwrap_or(0) <= MAX_TEXT {
            continue;
        }
        let f = |name: &str| format!("shopper.history[{i}].{name}");
        check_text(|| f("brand"), t(&h.brand))?;
        check_text(|| f("product_id"), t(&h.product_id))?;
        check_text(|| f("category"), t(&h.category))?;
        check_text(|| f("size"), Some(h.size.as_str()))?;
        check_text(|| f("size_system"), t(&h.size_system))?;
        check_text(|| f("outcome"), Some(h.outcome.as_str()))?;
    }
    for (i, r) in s.reference.iter().enumerate() {
        let f = |name: &str| format!("shopper.reference[{i}].{name}");
        check_text(|| f("brand"), t(&r.brand))?;
        check_text(|| f("category"), t(&r.category))?;
        check_text(|| f("size"), Some(r.size.as_str()))?;
        check_text(|| f("size_system"), t(&r.size_system))?;
    }
    for name in s.features.keys() {
        check_text(|| "shopper.features".into(), Some(name))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::recommend::PastPurchase;

    #[test]
    fn limits() {
        let mut req = RecommendRequest::default();
        assert!(check_limits(&req).is_ok());
        req.product.sizes = Some(vec!["M".into(); MAX_SIZES + 1]);
        let e = check_limits(&req).unwrap_err();
        assert_eq!(e.field(), Some("product.sizes"));
        assert_eq!(e.kind(), "payload_too_large");
        req.product.sizes = Some(vec!["M".into(), "x".repeat(MAX_TEXT + 1)]);
        assert_eq!(
            check_limits(&req).unwrap_err().field(),
            Some("product.sizes[1]")
        );
        req.product.sizes = None;
        req.shopper.history = vec![
            PastPurchase {
                size: "M".into(),
                outcome: "kept".into(),
                ..PastPurchase::default()
            };
            MAX_HISTORY
        ];
        assert!(check_limits(&req).is_ok());
        req.shopper.history[7].outcome = "y".repeat(MAX_TEXT + 1);
        assert_eq!(
            check_limits(&req).unwrap_err().field(),
            Some("shopper.history[7].outcome")
        );
    }

    #[test]
    fn request_json_shape() {
        let req: RecommendRequest =
            serde_json::from_str(r#"{"product":{"brand":"Acme","sizes":["S","M"]}}"#).unwrap();
        assert_eq!(req.product.brand.as_deref(), Some("Acme"));
        assert!(req.shopper.history.is_empty());
    }
}
