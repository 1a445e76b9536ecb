//! The size-normalisation view on a fitted model: every brand's size labels placed on one
//! common scale ([`chart`]), brand-to-brand size conversion ([`convert`]), calibrated
//! "runs small / large" product flags ([`flags`]), and what the model is worth offline
//! ([`worth`]: fit rate when the bought size was the one runsize would recommend, and a
//! held-out reliability table).
//!
//! All of it reads the fitted model's public data (offsets with standard errors, size
//! systems, the outcome model's constants); nothing is refitted.

pub mod chart;
pub mod convert;
pub mod flags;
pub mod worth;

use crate::data::schema::{SizeSystem, NONE};
use crate::model::fitted::LabelParams;
use crate::model::predictor::Predictor;

/// Errors of the insight queries; each names the offending input.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InsightError {
    /// A brand, category or product the model has not seen.
    #[error("{field}: {message}")]
    NotFound {
        /// The input (`brand`, `to_brand`, `category`, `product`).
        field: String,
        /// What was not found.
        message: String,
    },
    /// An input that cannot be used (e.g. a size the brand does not sell).
    #[error("{field}: {message}")]
    Invalid {
        /// The input (`size`, ...).
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
}

impl InsightError {
    fn not_found(field: &str, message: String) -> Self {
        InsightError::NotFound {
            field: field.into(),
            message,
        }
    }
}

/// Index of brand `name`, or a not-found error naming `field`.
pub fn brand_index(model: &Predictor, field: &str, name: &str) -> Result<u32, InsightError> {
    model
        .brand_index(name)
        .ok_or_else(|| InsightError::not_found(field, format!("unknown brand '{name}'")))
}

/// Index of category `name` (`None` when not given), or a not-found error.
pub fn category_index(model: &Predictor, name: Option<&str>) -> Result<u32, InsightError> {
    match name.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(NONE),
        Some(c) => model
            .category_index(c)
            .ok_or_else(|| InsightError::not_found("category", format!("unknown category '{c}'"))),
    }
}

/// The size labels sold by `brand` (products of `category` only, unless it is [`NONE`]),
/// in size order (system, then position).
pub fn brand_labels(model: &Predictor, brand: u32, category: u32) -> Vec<u32> {
    let mut seen = vec![false; model.labels.len()];
    for info in &model.product_info {
        if info.brand != brand || (category != NONE && info.category != category) {
            continue;
        }
        for &l in &info.sizes {
            if let Some(s) = seen.get_mut(l as usize) {
                *s = true;
            }
        }
    }
    let mut out: Vec<u32> = (0..model.labels.len() as u32)
        .filter(|&l| seen.get(l as usize).copied().unwrap_or(false))
        .collect();
    sort_labels(model, &mut out);
    out
}

/// Sort label indices by system, then position, then text.
pub fn sort_labels(model: &Predictor, labels: &mut [u32]) {
    labels.sort_by(
        |&a, &b| match (model.labels.get(a as usize), model.labels.get(b as usize)) {
            (Some(x), Some(y)) => x
                .system
                .cmp(&y.system)
                .then(x.pos.total_cmp(&y.pos))
                .then_with(|| x.canonical.cmp(&y.canonical)),
            _ => a.cmp(&b),
        },
    );
}

/// Find `text` among `labels` (a brand's labels): by canonical text, ignoring case, or
/// by the canonical text of `text` parsed as a size label. An error names `field` and
/// lists the sizes on offer.
pub fn find_label(
    model: &Predictor,
    labels: &[u32],
    text: &str,
    field: &str,
) -> Result<u32, InsightError> {
    let want = text.trim();
    let by_text = |t: &str, system: Option<SizeSystem>| {
        labels.iter().copied().find(|&l| {
            model.labels.get(l as usize).is_some_and(|p| {
                p.canonical.eq_ignore_ascii_case(t) && system.is_none_or(|s| s == p.system)
            })
        })
    };
    if let Some(l) = by_text(want, None) {
        return Ok(l);
    }
    if let Ok(parsed) = crate::data::parse_size(want, None) {
        if let Some(l) = by_text(&parsed.canonical, Some(parsed.system)) {
            return Ok(l);
        }
    }
    let offered: Vec<&str> = labels
        .iter()
        .filter_map(|&l| model.labels.get(l as usize))
        .map(|p| p.canonical.as_str())
        .collect();
    Err(InsightError::Invalid {
        field: field.into(),
        message: format!(
            "'{want}' is not a size this brand sells; expected one of: {}",
            if offered.is_empty() {
                "(none)".to_string()
            } else {
                offered.join(", ")
            }
        ),
    })
}

/// Where label `l` sits on the common scale for the catalogue's average article
/// (position in its system, the system's alignment, the label's own offset): the
/// reference every brand's label is compared with.
pub fn typical_position(model: &Predictor, l: &LabelParams) -> f64 {
    l.pos / model.scale(l.system) + model.align(l.system) + l.offset.value
}

/// Standard normal cumulative distribution function (Abramowitz–Stegun 7.1.26 on
/// erf, absolute error below 1.5e-7).
pub fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

#[cfg(test)]
pub(crate) mod testmodel {
    //! A hand-made model for the unit tests: letter sizes S, M, L (positions -1, 0, 1,
    //! no label offsets), brands Acme (+0.5, runs large), Zeta (-0.5, runs small) and
    //! Mid (0), one product each plus a second Acme product running 0.8 sizes small.
    use crate::data::schema::{SizeSystem, NONE};
    use crate::model::fitted::*;
    use crate::model::predictor::Predictor;

    fn group(name: &str, value: f64, se: f64, n: u64) -> GroupParams {
        GroupParams {
            name: name.into(),
            offset: Offset { value, se, n },
            eta: 0.0,
        }
    }

    /// The test model.
    pub fn model() -> Predictor {
        let label = |c: &str, pos: f64| LabelParams {
            canonical: c.into(),
            system: SizeSystem::Letter,
            pos,
            offset: Offset {
                value: 0.0,
                se: 0.0,
                n: 100,
            },
        };
        let mut m = Fitted {
            systems: vec![SystemParams {
                system: SizeSystem::Letter,
                scale: 1.0,
                align: 0.0,
                n: 1000,
            }],
            labels: vec![label("S", -1.0), label("M", 0.0), label("L", 1.0)],
            brands: vec![
                group("Acme", 0.5, 0.1, 400),
                group("Zeta", -0.5, 0.1, 400),
                group("Mid", 0.0, 0.1, 400),
            ],
            categories: vec![group("dresses", 0.0, 0.0, 1200)],
            products: vec![
                group("a1", 0.0, 0.05, 300),
                group("z1", 0.0, 0.05, 400),
                group("m1", 0.0, 0.05, 400),
                group("a2", -1.3, 0.2, 100),
            ],
            product_info: [0u32, 1, 2, 0]
                .iter()
                .map(|&b| ProductInfo {
                    brand: b,
                    category: 0,
                    sizes: vec![0, 1, 2],
                })
                .collect(),
            ..Fitted::default()
        };
        m.article_sizes = (0..4u32)
            .flat_map(|p| {
                (0..3u32).map(move |l| ArticleSizeParams {
                    product: p,
                    label: l,
                    offset: Offset {
                        value: 0.0,
                        se: 0.0,
                        n: 10 + u64::from(l),
                    },
                })
            })
            .collect();
        let _ = NONE;
        Predictor::new(m).expect("a valid test model")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_hand_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(-1.0) - 0.158_655).abs() < 1e-5);
        assert!((normal_cdf(1.281_55) - 0.9).abs() < 1e-4);
    }

    #[test]
    fn labels_lookup_and_errors() {
        let m = testmodel::model();
        let acme = brand_index(&m, "brand", "Acme").unwrap();
        let labels = brand_labels(&m, acme, NONE);
        assert_eq!(labels, vec![0, 1, 2]);
        assert_eq!(find_label(&m, &labels, "m", "size").unwrap(), 1);
        assert_eq!(find_label(&m, &labels, " L ", "size").unwrap(), 2);
        let e = find_label(&m, &labels, "XXL", "size").unwrap_err();
        assert!(e.to_string().contains("S, M, L"), "{e}");
        assert!(matches!(
            brand_index(&m, "to_brand", "Nope"),
            Err(InsightError::NotFound { ref field, .. }) if field == "to_brand"
        ));
        assert_eq!(category_index(&m, Some("dresses")).unwrap(), 0);
        assert_eq!(category_index(&m, None).unwrap(), NONE);
        assert!(category_index(&m, Some("hats")).is_err());
    }
}
