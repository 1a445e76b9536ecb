//! Errors of the serve layer: [`ServeError`] (starting and running the server) and
//! [`ApiError`] (one failed HTTP request), whose `IntoResponse` impl is the one place
//! where HTTP status codes are chosen.

use crate::model::ModelError;
use crate::model::RecommendError;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Running the server failed.
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using the port?)")]
    Bind {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The model artifact could not be read.
    #[error(transparent)]
    Fitted(#[from] ModelError),
    /// An invalid server option.
    #[error("{option}: {message}")]
    Config {
        /// The option (e.g. `--timeout`).
        option: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

/// The JSON body of every error answer:
/// `{"error": "...", "type": "...", "field": "...", "request_id": "..."}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Human-readable message saying what is wrong and what is expected.
    pub error: String,
    /// Machine-readable kind: `bad_request`, `unauthorized`, `not_found`,
    /// `method_not_allowed`, `payload_too_large`, `invalid`, `reload_refused`,
    /// `internal`, `not_ready`, `timeout`, `overloaded`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The offending request field as a JSON path (`shopper.history[2].size`), when one is to blame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The request's id (its `x-request-id` answer header), on every error answer of the
    /// server; absent on the per-item errors of a batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// One failed request. Status codes are chosen only in `impl IntoResponse for ApiError`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The body is not valid JSON or the request is malformed.
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
    },
    /// Missing or wrong bearer token.
    #[error("{message}")]
    Unauthorized {
        /// What is wrong.
        message: String,
    },
    /// Unknown route, brand, product or customer.
    #[error("{message}")]
    NotFound {
        /// The field naming the unknown thing, if any.
        field: Option<String>,
        /// What was not found.
        message: String,
    },
    /// The route exists but not for this method.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The body or a list in it is larger than allowed.
    #[error("{message}")]
    PayloadTooLarge {
        /// The list that is too long, if one.
        field: Option<String>,
        /// What the limit is.
        message: String,
    },
    /// Well-formed JSON with an invalid value.
    #[error("{field}: {message}")]
    Invalid {
        /// JSON path of the field.
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A new model artifact was refused; the old model keeps serving.
    #[error("{message}")]
    ReloadRefused {
        /// Why it was refused.
        message: String,
    },
    /// A bug: a handler panicked or a task failed.
    #[error("{message}")]
    Internal {
        /// What failed.
        message: String,
    },
    /// No model is loaded yet.
    #[error("no model loaded yet")]
    NotReady,
    /// The request took longer than the server's timeout.
    #[error("request took longer than {seconds} s")]
    Timeout {
        /// The timeout in seconds.
        seconds: f64,
    },
    /// Too many requests in flight: refused at once, to be retried after `retry_after` s.
    #[error("server overloaded: {max} requests in flight; retry after {retry_after} s")]
    Overloaded {
        /// The server's bound on requests in flight.
        max: usize,
        /// Seconds the client should wait (`Retry-After`).
        retry_after: u32,
    },
}

impl ApiError {
    /// Shorthand for [`ApiError::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Shorthand for [`ApiError::NotFound`] of a named field.
    pub fn not_found(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::NotFound {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// The machine-readable kind (the `type` of the JSON body).
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::BadRequest { .. } => "bad_request",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::Invalid { .. } => "invalid",
            ApiError::ReloadRefused { .. } => "reload_refused",
            ApiError::Internal { .. } => "internal",
            ApiError::NotReady => "not_ready",
            ApiError::Timeout { .. } => "timeout",
            ApiError::Overloaded { .. } => "overloaded",
        }
    }

    /// The offending field, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::Invalid { field, .. } => Some(field),
            ApiError::NotFound { field, .. } | ApiError::PayloadTooLarge { field, .. } => {
                field.as_deref()
            }
            _ => None,
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        let error = match self {
            // the field is reported separately
            ApiError::Invalid { message, .. } => message.clone(),
            other => other.to_string(),
        };
        ErrorBody {
            error,
            kind: self.kind().to_string(),
            field: self.field().map(str::to_string),
            request_id: None,
        }
    }

    /// The same error with its field prefixed (e.g. `items[3].` for a batch item).
    pub fn prefixed(self, prefix: &str) -> Self {
        let join = |f: String| {
            if f.starts_with('[') {
                format!("{prefix}{f}")
            } else {
                format!("{prefix}.{f}")
            }
        };
        match self {
            ApiError::Invalid { field, message } => ApiError::Invalid {
                field: join(field),
                message,
            },
            ApiError::NotFound { field, message } => ApiError::NotFound {
                field: Some(field.map_or_else(|| prefix.to_string(), join)),
                message,
            },
            ApiError::PayloadTooLarge { field, message } => ApiError::PayloadTooLarge {
                field: Some(field.map_or_else(|| prefix.to_string(), join)),
                message,
            },
            other => other,
        }
    }
}

impl IntoResponse for ApiError {
    /// The one place where HTTP status codes are chosen. The [`ErrorBody`] is also left
    /// in the response's extensions, for the middleware to add the request id to it.
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid { .. } | ApiError::ReloadRefused { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::NotReady | ApiError::Timeout { .. } | ApiError::Overloaded { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let body = self.body();
        let mut response = (status, axum::Json(&body)).into_response();
        response.extensions_mut().insert(body);
        match self {
            ApiError::Unauthorized { .. } => {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Overloaded { retry_after, .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            _ => {}
        }
        response
    }
}

impl From<RecommendError> for ApiError {
    fn from(e: RecommendError) -> Self {
        match e {
            RecommendError::Invalid { field, message } => ApiError::Invalid { field, message },
            RecommendError::NotFound { field, message } => ApiError::NotFound {
                field: Some(field),
                message,
            },
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                field: None,
                message: "request body too large: see the server's --body-limit".into(),
            }
        } else {
            ApiError::BadRequest {
                message: format!("cannot read the request body: {}", r.body_text()),
            }
        }
    }
}

/// Prefix of axum's JSON data error text.
const DATA_PREFIX: &str = "Failed to deserialize the JSON body into the target type: ";

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => {
                let text = e.body_text();
                let (field, message) = split_path(text.strip_prefix(DATA_PREFIX).unwrap_or(&text));
                ApiError::Invalid { field, message }
            }
            JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest {
                message: format!(
                    "malformed JSON: {}",
                    e.body_text()
                        .replace("Failed to parse the request body as JSON: ", "")
                ),
            },
            JsonRejection::BytesRejection(e) => ApiError::from(e),
            other => ApiError::BadRequest {
                message: other.body_text(),
            },
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::BadRequest {
            message: format!("malformed query string: {}", r.body_text()),
        }
    }
}

/// Split a serde error text `path: message` (as axum reports it) into the JSON path of
/// the field and the message; `missing field `x`` adds `x` to the path. No path: `body`.
pub fn split_path(text: &str) -> (String, String) {
    let (mut field, message) = match text.split_once(": ") {
        Some((head, rest)) if !head.is_empty() && !head.contains(char::is_whitespace) => {
            (head.to_string(), rest.to_string())
        }
        _ => (String::new(), text.to_string()),
    };
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.split_once('`'))
        .map(|(n, _)| n)
    {
        field = if field.is_empty() {
            name.to_string()
        } else {
            format!("{field}.{name}")
        };
    }
    if field.is_empty() {
        field = "body".to_string();
    }
    (field, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_path_cases() {
        assert_eq!(
            split_path("shopper.history[0]: missing field `size` at line 1 column 9"),
            (
                "shopper.history[0].size".to_string(),
                "missing field `size` at line 1 column 9".to_string()
            )
        );
        assert_eq!(
            split_path("missing field `product` at line 1 column 2"),
            (
                "product".to_string(),
                "missing field `product` at line 1 column 2".to_string()
            )
        );
        assert_eq!(
            split_path("invalid type: integer `3`, expected a string at line 1 column 5"),
            (
                "body".to_string(),
                "invalid type: integer `3`, expected a string at line 1 column 5".to_string()
            )
        );
        assert_eq!(
            split_path("product.sizes: invalid type: string \"M\", expected a sequence"),
            (
                "product.sizes".to_string(),
                "invalid type: string \"M\", expected a sequence".to_string()
            )
        );
    }

    #[test]
    fn prefix_and_body() {
        let e = ApiError::invalid("product.sizes[1]", "bad label").prefixed("items[3]");
        assert_eq!(e.field(), Some("items[3].product.sizes[1]"));
        let b = e.body();
        assert_eq!(b.kind, "invalid");
        assert_eq!(b.error, "bad label");
        let e = ApiError::NotFound {
            field: None,
            message: "x".into(),
        }
        .prefixed("items[0]");
        assert_eq!(e.field(), Some("items[0]"));
        let json = serde_json::to_value(ApiError::NotReady.body()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": "no model loaded yet", "type": "not_ready"})
        );
    }

    #[test]
    fn statuses() {
        let cases = [
            (
                ApiError::BadRequest {
                    message: "x".into(),
                },
                400,
            ),
            (
                ApiError::Unauthorized {
                    message: "x".into(),
                },
                401,
            ),
            (ApiError::not_found("brand", "x"), 404),
            (ApiError::MethodNotAllowed, 405),
            (
                ApiError::PayloadTooLarge {
                    field: None,
                    message: "x".into(),
                },
                413,
            ),
            (ApiError::invalid("f", "x"), 422),
            (
                ApiError::ReloadRefused {
                    message: "x".into(),
                },
                422,
            ),
            (
                ApiError::Internal {
                    message: "x".into(),
                },
                500,
            ),
            (ApiError::NotReady, 503),
            (ApiError::Timeout { seconds: 1.0 }, 503),
            (
                ApiError::Overloaded {
                    max: 4,
                    retry_after: 1,
                },
                503,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.into_response().status().as_u16(), code);
        }
    }
}
