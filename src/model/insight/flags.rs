//! Product flags: products that run small or large by at least half a size, with the
//! probability that they do, the evidence and the advice to show. A product's offset
//! (brand + category + its own, as in its fit profile) has a Gaussian posterior with
//! mean `m` and standard error `se`; the flag's probability is
//! `P(offset beyond ±magnitude in the direction of m) = Φ((|m| − magnitude) / se)`, and a
//! product is flagged when it reaches the threshold. Products with few events have wide
//! posteriors (shrunk towards their brand), so they are flagged only on strong evidence:
//! early, but at the stated confidence.

use super::normal_cdf;
use crate::data::schema::NONE;
use crate::model::fitted::group_value;
use crate::model::predictor::Predictor;
use serde::{Deserialize, Serialize};

/// When to flag.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlagOptions {
    /// Smallest probability of running beyond `magnitude` to flag. Default 0.9.
    pub threshold: f64,
    /// How far off (in sizes) a product must run to be worth a flag. Default 0.5.
    pub magnitude: f64,
}

impl Default for FlagOptions {
    fn default() -> Self {
        FlagOptions {
            threshold: 0.9,
            magnitude: 0.5,
        }
    }
}

/// A flagged product.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductFlag {
    /// Product id.
    pub product: String,
    /// Its brand, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// `runs_small` or `runs_large`.
    pub flag: String,
    /// Probability it runs beyond the flag's magnitude in that direction.
    pub probability: f64,
    /// How it runs, in sizes (brand + category + product).
    pub runs: f64,
    /// Standard error of `runs`.
    pub se: f64,
    /// Fit events of the product.
    pub n: u64,
    /// The evidence in words.
    pub evidence: String,
    /// The advice to show shoppers, e.g. `runs small: order one size up`.
    pub advice: String,
}

/// `(direction, probability)` that an offset with mean `m` and standard error `se` runs
/// beyond `magnitude` in the direction of its sign (`-1` small, `+1` large).
pub fn flag_probability(m: f64, se: f64, magnitude: f64) -> (i8, f64) {
    let dir = if m < 0.0 { -1 } else { 1 };
    let p = if se > 0.0 {
        normal_cdf((m.abs() - magnitude) / se)
    } else if m.abs() > magnitude {
        1.0
    } else {
        0.0
    };
    (dir, p)
}

/// The advice for a product running `m` sizes off.
pub fn advice(m: f64) -> String {
    let (dir, act) = if m < 0.0 {
        ("small", "up")
    } else {
        ("large", "down")
    };
    let mag = m.abs();
    if mag < 0.75 {
        format!("runs {dir}: if between sizes, order one size {act}")
    } else if mag < 1.5 {
        format!("runs {dir}: order one size {act}")
    } else {
        format!("runs {dir}: order {:.0} sizes {act}", mag.round())
    }
}

/// Offset of product `p` (brand + category + product) and its standard error.
pub fn product_offset(model: &Predictor, p: usize) -> Option<(f64, f64, u64)> {
    let g = model.products.get(p)?;
    let info = model.product_info.get(p)?;
    let se_of = |groups: &[crate::model::fitted::GroupParams], i: u32| {
        if i == NONE {
            0.0
        } else {
            groups.get(i as usize).map_or(0.0, |x| x.offset.se)
        }
    };
    let m = g.offset.value
        + group_value(&model.brands, info.brand)
        + group_value(&model.categories, info.category);
    let var = g.offset.se.powi(2)
        + se_of(&model.brands, info.brand).powi(2)
        + se_of(&model.categories, info.category).powi(2);
    Some((m, var.sqrt(), g.offset.n))
}

/// The flag of product `p`, if it has one under `opts`.
pub fn product_flag(model: &Predictor, p: usize, opts: &FlagOptions) -> Option<ProductFlag> {
    let (m, se, n) = product_offset(model, p)?;
    let (dir, prob) = flag_probability(m, se, opts.magnitude);
    if prob < opts.threshold {
        return None;
    }
    let info = model.product_info.get(p)?;
    let brand = (info.brand != NONE)
        .then(|| model.brands.get(info.brand as usize))
        .flatten();
    let own = model.products.get(p).map_or(0.0, |g| g.offset.value);
    let word = if dir < 0 { "small" } else { "large" };
    Some(ProductFlag {
        product: model.products.get(p)?.name.clone(),
        brand: brand.map(|b| b.name.clone()),
        flag: format!("runs_{word}"),
        probability: prob,
        runs: m,
        se,
        n,
        evidence: format!(
            "{n} fit events; runs {m:+.2} sizes (95% {:+.2} to {:+.2}; brand {:+.2}, product's own {own:+.2}); {:.0}% sure it runs more than {} size {word}",
            m - 1.96 * se,
            m + 1.96 * se,
            brand.map_or(0.0, |b| b.offset.value),
            100.0 * prob,
            half(opts.magnitude),
        ),
        advice: advice(m),
    })
}

fn half(x: f64) -> String {
    if (x - 0.5).abs() < 1e-9 {
        "half a".into()
    } else {
        format!("{x}")
    }
}

/// Every flagged product (of `brand` only, unless [`NONE`]), most certain first.
pub fn flags(model: &Predictor, brand: u32, opts: &FlagOptions) -> Vec<ProductFlag> {
    let mut out: Vec<ProductFlag> = (0..model.products.len())
        .filter(|&p| brand == NONE || model.product_info.get(p).is_some_and(|i| i.brand == brand))
        .filter_map(|p| product_flag(model, p, opts))
        .collect();
    out.sort_by(|a, b| {
        b.probability
            .total_cmp(&a.probability)
            .then(b.runs.abs().total_cmp(&a.runs.abs()))
            .then_with(|| a.product.cmp(&b.product))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::insight::testmodel;

    #[test]
    fn probability_hand_checked() {
        // m = -0.8, se = 0.2: Φ((0.8 - 0.5) / 0.2) = Φ(1.5) = 0.93319
        let (dir, p) = flag_probability(-0.8, 0.2, 0.5);
        assert_eq!(dir, -1);
        assert!((p - 0.933_193).abs() < 1e-5, "{p}");
        // exactly at the magnitude: 0.5
        assert!((flag_probability(0.5, 0.3, 0.5).1 - 0.5).abs() < 1e-7);
        assert_eq!(flag_probability(0.7, 0.0, 0.5), (1, 1.0));
        assert_eq!(flag_probability(0.3, 0.0, 0.5), (1, 0.0));
    }

    #[test]
    fn advice_words() {
        assert_eq!(
            advice(-0.6),
            "runs small: if between sizes, order one size up"
        );
        assert_eq!(advice(-1.0), "runs small: order one size up");
        assert_eq!(advice(2.2), "runs large: order 2 sizes down");
    }

    #[test]
    fn flags_on_the_test_model() {
        let m = testmodel::model();
        let f = flags(&m, NONE, &FlagOptions::default());
        // only a2 (Acme +0.5, own -1.3: -0.8, se sqrt(0.1² + 0.2²) = 0.2236) is beyond
        // half a size: Φ(0.3 / 0.2236) = Φ(1.3416) = 0.910
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].product, "a2");
        assert_eq!(f[0].flag, "runs_small");
        assert!((f[0].runs + 0.8).abs() < 1e-12);
        assert!(
            (f[0].probability - 0.910_13).abs() < 1e-3,
            "{}",
            f[0].probability
        );
        assert_eq!(f[0].advice, "runs small: order one size up");
        assert!(
            f[0].evidence.starts_with("100 fit events"),
            "{}",
            f[0].evidence
        );
        // a stricter threshold drops it; z1 (Zeta -0.5) is never beyond half a size
        let strict = FlagOptions {
            threshold: 0.95,
            ..FlagOptions::default()
        };
        assert!(flags(&m, NONE, &strict).is_empty());
        assert!(flags(&m, 1, &FlagOptions::default()).is_empty());
    }
}
