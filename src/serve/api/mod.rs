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
    recommend, FeatureValue, PastPurchase, PastPurchaseRef, ProductQuery, ProductQueryRef,
    RecommendRequest, RecommendRequestRef, ReferenceSize, ReferenceSizeRef, Shopper, ShopperRef,
    Text,
};
pub use response::{
    BatchRequest, BatchResponse, BatchResult, Confidence, ModelInfo, ProfileResponse, ProfilesPage,
    ProfilesQuery, RecommendResponse, Recommendation, ReloadRequest, ReloadResponse, SizeOdds,
    Status,
};
