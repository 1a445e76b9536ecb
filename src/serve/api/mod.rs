//! The HTTP wire format: request and response bodies (owned and borrowed, with their
//! OpenAPI schemas), the fast parser of common recommend bodies ([`fastjson`]), the
//! recommend answer's JSON writer ([`answer`]), the request limits ([`limits`]) and the
//! body extractors ([`extract`]). Requests become the model's [`crate::model::Query`]
//! here; nothing below `serve` knows this format.

pub mod answer;
pub mod extract;
pub mod fastjson;
pub mod limits;
pub mod request;
pub mod response;

pub use extract::{ApiBody, ApiJson};
pub use limits::{check_limits, check_limits_ref};
pub use request::{
    FeatureValue, PastPurchase, PastPurchaseRef, ProductQuery, ProductQueryRef, RecommendRequest,
    RecommendRequestRef, ReferenceSize, ReferenceSizeRef, Shopper, ShopperRef, Text,
};
pub use response::{
    BatchRequest, BatchResponse, BatchResult, Confidence, ModelInfo, ProfileResponse, ProfilesPage,
    ProfilesQuery, RecommendResponse, Recommendation, ReloadRequest, ReloadResponse, SizeOdds,
    Status,
};

use crate::model::{Predictor, Query, RecommendError};

/// The owned recommendation for owned request parts (what the server answers for a body
/// with these fields; for library callers and tests that hold wire types).
pub fn recommend(
    predictor: &Predictor,
    product: &ProductQuery,
    shopper: &Shopper,
) -> Result<Recommendation, RecommendError> {
    let (product, shopper) = (product.view(), shopper.view());
    let query = Query {
        product: product.to_query(),
        shopper: shopper.to_query(),
    };
    Ok(predictor.recommend(&query)?.into())
}
