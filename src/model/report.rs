//! Fit profiles for merchandisers: how each brand, product or category runs, in size
//! steps with an interval and a count, in words, ranked by the effect we are sure of.

use super::fitted::{group_value, Fitted, GroupParams};
use crate::data::schema::NONE;
use serde::Serialize;

/// What to profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileBy {
    /// Brands.
    Brand,
    /// Products (offset includes their brand and category).
    Product,
    /// Categories.
    Category,
}

/// How one brand / product / category runs.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FitProfile {
    /// Brand name, product id or category.
    pub key: String,
    /// Brand of a product, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// How it runs, in sizes (> 0 large, < 0 small).
    pub offset: f64,
    /// Standard error of the offset.
    pub se: f64,
    /// 95% interval of the offset.
    pub interval: [f64; 2],
    /// Fit events behind the estimate.
    pub n: u64,
    /// Fit-band log-width (> 0: fits a wider range of shoppers).
    pub band: f64,
    /// Verdict in words.
    pub verdict: String,
    /// Advice for shoppers.
    pub advice: String,
    /// Ranking score: the effect size we are 1-se sure of.
    pub score: f64,
}

/// Describe an offset (in sizes) in words: (verdict, advice).
pub fn describe(offset: f64, se: f64) -> (String, String) {
    let mag = offset.abs();
    let dir = if offset < 0.0 { "small" } else { "large" };
    let act = if offset < 0.0 { "size up" } else { "size down" };
    let (verdict, advice) = if mag < 0.15 {
        (
            "true to size".to_string(),
            "take your usual size".to_string(),
        )
    } else if mag < 0.35 {
        (
            format!("runs slightly {dir}"),
            format!("take your usual size; {act} if between sizes"),
        )
    } else if mag < 0.75 {
        (
            format!("runs {dir} by about half a size"),
            format!("{act} if between sizes"),
        )
    } else if mag < 1.25 {
        (format!("runs about a full size {dir}"), act.to_string())
    } else {
        let n = mag.round();
        (
            format!("runs about {n:.0} sizes {dir}"),
            format!("{act} {n:.0}"),
        )
    };
    if se.is_finite() && (offset.abs() < 1.96 * se) && mag >= 0.15 {
        (format!("{verdict} (not yet certain)"), advice)
    } else {
        (verdict, advice)
    }
}

fn profile(g: &GroupParams, offset: f64, se: f64, brand: Option<String>) -> FitProfile {
    let (verdict, advice) = describe(offset, se);
    FitProfile {
        key: g.name.clone(),
        brand,
        offset,
        se,
        interval: [offset - 1.96 * se, offset + 1.96 * se],
        n: g.offset.n,
        band: g.eta,
        verdict,
        advice,
        score: (offset.abs() - se).max(0.0),
    }
}

impl Fitted {
    /// Profile of brand `i`.
    pub fn brand_profile(&self, i: usize) -> Option<FitProfile> {
        let b = self.brands.get(i)?;
        Some(profile(b, b.offset.value, b.offset.se, None))
    }

    /// Profile of product `i`: brand + category + product offset.
    pub fn product_profile(&self, i: usize) -> Option<FitProfile> {
        let p = self.products.get(i)?;
        let info = self.product_info.get(i)?;
        let brand = (info.brand != NONE)
            .then(|| self.brands.get(info.brand as usize))
            .flatten();
        let bse = brand.map_or(0.0, |b| b.offset.se);
        let offset = p.offset.value
            + group_value(&self.brands, info.brand)
            + group_value(&self.categories, info.category);
        let se = (p.offset.se * p.offset.se + bse * bse).sqrt();
        Some(profile(p, offset, se, brand.map(|b| b.name.clone())))
    }

    /// Profile of category `i`.
    pub fn category_profile(&self, i: usize) -> Option<FitProfile> {
        let c = self.categories.get(i)?;
        Some(profile(c, c.offset.value, c.offset.se, None))
    }

    /// All profiles of a kind, most certain large effects first.
    pub fn profiles(&self, by: ProfileBy) -> Vec<FitProfile> {
        let mut out: Vec<FitProfile> = match by {
            ProfileBy::Brand => (0..self.brands.len())
                .filter_map(|i| self.brand_profile(i))
                .collect(),
            ProfileBy::Product => (0..self.products.len())
                .filter_map(|i| self.product_profile(i))
                .collect(),
            ProfileBy::Category => (0..self.categories.len())
                .filter_map(|i| self.category_profile(i))
                .collect(),
        };
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.key.cmp(&b.key)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_hand_checked() {
        assert_eq!(describe(0.05, 0.01).0, "true to size");
        assert_eq!(describe(-0.5, 0.05).0, "runs small by about half a size");
        assert_eq!(describe(-0.5, 0.05).1, "size up if between sizes");
        assert_eq!(describe(1.0, 0.1).0, "runs about a full size large");
        assert_eq!(describe(1.0, 0.1).1, "size down");
        assert_eq!(describe(-2.2, 0.1).0, "runs about 2 sizes small");
        assert!(describe(-0.5, 0.4).0.contains("not yet certain"));
    }
}
