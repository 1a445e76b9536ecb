//! Response bodies of the HTTP API (with their OpenAPI schemas), and the owned
//! [`Recommendation`] made from the model's borrowed [`RecommendationView`].

use super::request::RecommendRequest;
use crate::model::report::FitProfile;
use crate::model::RecommendationView;
use crate::serve::error::ErrorBody;
use serde::{Deserialize, Serialize};

/// Probabilities for one size on offer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SizeOdds {
    /// Size label as given.
    pub size: String,
    /// Probability it is too small.
    pub p_small: f64,
    /// Probability it fits.
    pub p_fit: f64,
    /// Probability it is too large.
    pub p_large: f64,
}

/// Confidence of a recommendation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Confidence {
    /// `high`, `medium` or `low`.
    pub level: String,
    /// 0..1: fit probability discounted by the uncertainty about the shopper.
    pub score: f64,
    /// Standard deviation of the shopper's size estimate, in sizes.
    pub shopper_size_sd: f64,
    /// What the shopper's size is based on: `customer`, `history`, `reference`, `features`, `population`.
    pub basis: Vec<String>,
}

/// A recommendation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendation {
    /// The size to buy.
    pub recommended_size: String,
    /// Its probability of fitting.
    pub fit_probability: f64,
    /// Every size on offer, in size order.
    pub sizes: Vec<SizeOdds>,
    /// How sure we are.
    pub confidence: Confidence,
    /// How the brand runs (when the brand is known).
    pub brand_fit: Option<FitProfile>,
    /// One sentence a shop can show.
    pub explanation: String,
}

impl From<RecommendationView<'_>> for Recommendation {
    /// The owned answer (labels, profile and words copied).
    fn from(v: RecommendationView<'_>) -> Recommendation {
        let chosen = v.chosen().copied();
        let (size, p_fit) = chosen.map_or((String::new(), f64::NAN), |c| {
            (c.size.to_string(), c.probs[1])
        });
        Recommendation {
            recommended_size: size,
            fit_probability: p_fit,
            sizes: v
                .sizes
                .iter()
                .map(|s| SizeOdds {
                    size: s.size.to_string(),
                    p_small: s.probs[0],
                    p_fit: s.probs[1],
                    p_large: s.probs[2],
                })
                .collect(),
            confidence: Confidence {
                level: v.level.to_string(),
                score: v.score,
                shopper_size_sd: v.shopper_size_sd,
                basis: v.basis.to_strings(),
            },
            brand_fit: v.brand_fit.cloned(),
            explanation: v.explanation,
        }
    }
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
