//! Body extractors whose rejections are [`ApiError`]s.

use crate::serve::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

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
