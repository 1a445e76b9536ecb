//! Brand-to-brand size conversion at the population level: "I wear M at Acme: what at
//! Zeta?". For each source size, a shopper for whom the source size fits gets a size
//! posterior: the outcome model's likelihood of "fit" in the source article (a random
//! product of the source brand) under a diffuse prior ([`PRIOR_SD`] sizes around the
//! population's mean size). Each of the target brand's sizes then gets its small / fit /
//! large probabilities from the outcome model, integrating the shopper's and the
//! article's uncertainty (a random product of the target brand: the product-level prior
//! variance is included). The best size is the most likely to fit.
//!
//! Unlike `POST /v1/recommend` with a reference size, neither the population prior nor
//! the choice term is used: both are right for one shopper (regression to the mean, how
//! shoppers pick labels) but pull a size-to-size table towards the middle of the range
//! and towards the source label's nominal size; on synthetic data they made the table
//! miss the true shift at the ends of the range.
//!
//! Structural model only: the second stage calibrates individual shoppers' offers and is
//! not applied to this population-level table.

use super::{brand_index, brand_labels, category_index, find_label, InsightError};
use crate::data::schema::NONE;
use crate::model::predict::ArticleRef;
use crate::model::predictor::Predictor;
use serde::{Deserialize, Serialize};

/// Standard deviation (sizes) of the diffuse prior on the shopper's size.
pub const PRIOR_SD: f64 = 10.0;

/// A conversion request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConvertQuery {
    /// Brand the shopper knows their size in.
    pub from_brand: String,
    /// Their size there; `None`: every size the source brand sells (the full table).
    pub size: Option<String>,
    /// Brand to convert to.
    pub to_brand: String,
    /// Category of both (optional; default: each brand's whole range).
    pub category: Option<String>,
}

/// One target size's probabilities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TargetOdds {
    /// Target label.
    pub size: String,
    /// Probability it is too small.
    pub p_small: f64,
    /// Probability it fits.
    pub p_fit: f64,
    /// Probability it is too large.
    pub p_large: f64,
}

/// The conversion of one source size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversionRow {
    /// Source label.
    pub from_size: String,
    /// The target size most likely to fit.
    pub best: String,
    /// Its fit probability.
    pub best_p_fit: f64,
    /// Every target size, smallest first: those of the source size's system when the
    /// target brand sells it, else all of them.
    pub sizes: Vec<TargetOdds>,
    /// In words, e.g. `Acme M -> Zeta L (fits 72%)`.
    pub words: String,
}

/// A conversion table between two brands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Conversion {
    /// Source brand.
    pub from_brand: String,
    /// Target brand.
    pub to_brand: String,
    /// Category, when restricted to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// One row per source size asked for, smallest first.
    pub rows: Vec<ConversionRow>,
}

fn article(model: &Predictor, brand: u32, category: u32, label: u32) -> Option<ArticleRef> {
    let l = model.labels.get(label as usize)?;
    Some(ArticleRef {
        product: NONE,
        brand,
        category,
        label,
        system: l.system,
        pos: l.pos,
    })
}

/// Convert `q` on `model`.
pub fn convert(model: &Predictor, q: &ConvertQuery) -> Result<Conversion, InsightError> {
    let from = brand_index(model, "from_brand", &q.from_brand)?;
    let to = brand_index(model, "to_brand", &q.to_brand)?;
    let c = category_index(model, q.category.as_deref())?;
    let source_labels = brand_labels(model, from, c);
    let target_labels = brand_labels(model, to, c);
    if target_labels.is_empty() {
        return Err(InsightError::Invalid {
            field: "to_brand".into(),
            message: format!(
                "brand '{}' sells no sized products{}",
                q.to_brand,
                q.category
                    .as_deref()
                    .map(|c| format!(" in category '{c}'"))
                    .unwrap_or_default()
            ),
        });
    }
    let sources = match q.size.as_deref() {
        Some(s) => vec![find_label(model, &source_labels, s, "size")?],
        None => source_labels,
    };
    let targets: Vec<(String, ArticleRef)> = target_labels
        .iter()
        .filter_map(|&l| {
            let name = model.labels.get(l as usize)?.canonical.clone();
            Some((name, article(model, to, c, l)?))
        })
        .collect();
    let rows = sources
        .iter()
        .filter_map(|&l| {
            let src = article(model, from, c, l)?;
            let from_size = model.labels.get(l as usize)?.canonical.clone();
            // within the source size's system when the target brand sells it
            let same: Vec<(String, ArticleRef)> = targets
                .iter()
                .filter(|(_, a)| a.system == src.system)
                .cloned()
                .collect();
            let offer = if same.is_empty() { &targets } else { &same };
            Some(convert_one(model, (&src, from_size), q, offer))
        })
        .collect();
    Ok(Conversion {
        from_brand: q.from_brand.clone(),
        to_brand: q.to_brand.clone(),
        category: (c != NONE)
            .then(|| model.categories.get(c as usize).map(|g| g.name.clone()))
            .flatten(),
        rows,
    })
}

fn convert_one(
    model: &Predictor,
    (src, from_size): (&ArticleRef, String),
    q: &ConvertQuery,
    targets: &[(String, ArticleRef)],
) -> ConversionRow {
    // a diffuse prior (see the module docs): the population's prior would pull every
    // answer towards the middle of the size range
    let mut prior = model.customer_prior(None);
    prior.ss = PRIOR_SD * PRIOR_SD;
    // "this size fits me here": the fit outcome only (a choice term would pull the
    // shopper towards the label, away from where the label really sits)
    let term = model.evidence(src, Some(1), false);
    let state = model.posterior(prior, &[term]);
    let belief = model.at_purchase(&state, None);
    let sizes: Vec<TargetOdds> = targets
        .iter()
        .map(|(name, a)| {
            let p = model.probs_article(belief, a);
            TargetOdds {
                size: name.clone(),
                p_small: p[0],
                p_fit: p[1],
                p_large: p[2],
            }
        })
        .collect();
    let best = sizes
        .iter()
        .fold(None::<&TargetOdds>, |b, s| match b {
            Some(b) if b.p_fit >= s.p_fit => Some(b),
            _ => Some(s),
        })
        .cloned();
    let (best, best_p_fit) = best.map_or((String::new(), f64::NAN), |b| (b.size, b.p_fit));
    ConversionRow {
        words: format!(
            "{} {from_size} -> {} {best} (fits {:.0}%)",
            q.from_brand,
            q.to_brand,
            100.0 * best_p_fit
        ),
        from_size,
        best,
        best_p_fit,
        sizes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::insight::testmodel;

    fn q(from: &str, size: Option<&str>, to: &str) -> ConvertQuery {
        ConvertQuery {
            from_brand: from.into(),
            size: size.map(Into::into),
            to_brand: to.into(),
            category: None,
        }
    }

    #[test]
    fn one_size_apart_converts_one_size_up() {
        let m = testmodel::model();
        // Acme runs half a size large, Zeta half a size small: Acme M is Zeta L
        let c = convert(&m, &q("Acme", Some("M"), "Zeta")).unwrap();
        assert_eq!(c.rows.len(), 1);
        assert_eq!(c.rows[0].best, "L");
        // and back: Zeta L is Acme M, Zeta M is Acme S
        let back = convert(&m, &q("Zeta", None, "Acme")).unwrap();
        let best: Vec<&str> = back.rows.iter().map(|r| r.best.as_str()).collect();
        assert_eq!(best, vec!["S", "S", "M"]);
        // same brand: same size
        let same = convert(&m, &q("Mid", None, "Mid")).unwrap();
        assert!(same.rows.iter().all(|r| r.best == r.from_size));
        for r in same.rows.iter().chain(&c.rows) {
            for s in &r.sizes {
                assert!((s.p_small + s.p_fit + s.p_large - 1.0).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn symmetric_around_the_source_position() {
        let m = testmodel::model();
        // Mid M sits at 0: Mid S (-1) and Mid L (+1) are equally likely to fit, M most
        let c = convert(&m, &q("Mid", Some("M"), "Mid")).unwrap();
        let s = &c.rows[0].sizes;
        assert_eq!(c.rows[0].best, "M");
        assert!((s[0].p_fit - s[2].p_fit).abs() < 1e-9, "{s:?}");
        assert!((s[0].p_small - s[2].p_large).abs() < 1e-9, "{s:?}");
        assert!(s[1].p_fit > s[0].p_fit, "{s:?}");
        // Acme S sits at -0.5, as does Zeta M: Zeta S (-1.5) and L (+0.5) nearly tie (the
        // diffuse prior, centred at 0, tips it slightly towards L)
        let c = convert(&m, &q("Acme", Some("S"), "Zeta")).unwrap();
        let s = &c.rows[0].sizes;
        assert_eq!(c.rows[0].best, "M");
        assert!((s[0].p_fit - s[2].p_fit).abs() < 0.01, "{s:?}");
        assert!(s[2].p_fit > s[0].p_fit, "{s:?}");
        assert!(
            c.rows[0].words.starts_with("Acme S -> Zeta M (fits "),
            "{}",
            c.rows[0].words
        );
    }

    #[test]
    fn errors_name_the_input() {
        let m = testmodel::model();
        let e = convert(&m, &q("Acme", Some("XXL"), "Zeta")).unwrap_err();
        assert!(matches!(e, InsightError::Invalid { ref field, .. } if field == "size"));
        let e = convert(&m, &q("Acme", Some("M"), "Nope")).unwrap_err();
        assert!(matches!(e, InsightError::NotFound { ref field, .. } if field == "to_brand"));
    }
}
