//! Request limits (list lengths, string lengths), checked before the model is asked.

use super::request::{RecommendRequest, RecommendRequestRef, Text};
use crate::serve::error::ApiError;

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
    use crate::serve::api::PastPurchase;

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
