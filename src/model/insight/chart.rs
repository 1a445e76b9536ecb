//! Normalised size charts: every size label a brand (or one of its categories, or one
//! product) sells, placed on the common scale with its interval and event count, and
//! said in words against the catalogue's typical label ("Acme M fits like a typical M/L").
//!
//! The common scale is the model's customer scale in size steps: label `l` of brand `b`
//! sits at `t = pos/scale + align + label + brand [+ category] [+ product + product-in-size]`,
//! the true size of the model (README, "The model") without the terms that are not asked
//! for. Its variance is the sum of the included terms' squared standard errors. The
//! catalogue's typical label is the same sum without brand, category and product terms.

use super::{brand_index, brand_labels, category_index, typical_position, InsightError};
use crate::data::schema::NONE;
use crate::model::fitted::group_value;
use crate::model::predictor::Predictor;
use crate::model::report::describe;
use serde::{Deserialize, Serialize};

/// What a chart is of.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChartQuery {
    /// Brand name (required).
    pub brand: String,
    /// Only the brand's products in this category (default: all its products).
    pub category: Option<String>,
    /// One product of the brand (default: the brand as a whole).
    pub product: Option<String>,
}

/// One size label on the common scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChartRow {
    /// The label (canonical text).
    pub label: String,
    /// Its size system (`letter`, `us`, ...).
    pub system: String,
    /// Position on the common scale, in size steps.
    pub position: f64,
    /// Standard error of the position.
    pub se: f64,
    /// 95% interval of the position.
    pub interval: [f64; 2],
    /// Where the catalogue's typical article of this label sits.
    pub typical: f64,
    /// `position - typical`: how this label runs here (> 0 large, < 0 small).
    pub runs: f64,
    /// Fit events behind it (the brand's / product's purchases in this label).
    pub n: u64,
    /// The typical label(s) it fits like: `M`, `M/L` (between M and L), `>3XL` (larger
    /// than the largest typical label by more than a quarter size), `<XXS`.
    pub fits_like: String,
    /// The sentence, e.g. `Acme M fits like a typical M/L`.
    pub words: String,
}

/// A brand's (category's, product's) labels on the common scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SizeChart {
    /// Brand name.
    pub brand: String,
    /// Category, when the chart is of one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Product id, when the chart is of one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// How it runs overall, in sizes (brand [+ category] [+ product]).
    pub runs: f64,
    /// Standard error of `runs`.
    pub se: f64,
    /// Verdict in words.
    pub verdict: String,
    /// Advice for shoppers.
    pub advice: String,
    /// Its labels, smallest first.
    pub rows: Vec<ChartRow>,
}

/// The brand / category / product terms of a chart: summed offset and variance.
struct Terms {
    value: f64,
    var: f64,
    product: u32,
}

fn sq(x: f64) -> f64 {
    x * x
}

/// The size chart of `q` on `model`.
pub fn size_chart(model: &Predictor, q: &ChartQuery) -> Result<SizeChart, InsightError> {
    let b = brand_index(model, "brand", &q.brand)?;
    let c = category_index(model, q.category.as_deref())?;
    let product = match q
        .product
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => NONE,
        Some(id) => {
            let p = model
                .product_index(id)
                .ok_or_else(|| InsightError::NotFound {
                    field: "product".into(),
                    message: format!("unknown product '{id}'"),
                })?;
            let info_brand = model.product_info.get(p as usize).map(|i| i.brand);
            if info_brand != Some(b) {
                return Err(InsightError::NotFound {
                    field: "product".into(),
                    message: format!("product '{id}' is not sold by brand '{}'", q.brand),
                });
            }
            p
        }
    };
    let brand = model.brands.get(b as usize);
    let mut terms = Terms {
        value: group_value(&model.brands, b),
        var: brand.map_or(0.0, |g| sq(g.offset.se)),
        product,
    };
    // a product's own category; else the asked-for category
    let cat = match model.product_info.get(product as usize) {
        Some(info) if product != NONE => info.category,
        _ => c,
    };
    if cat != NONE {
        terms.value += group_value(&model.categories, cat);
        terms.var += model
            .categories
            .get(cat as usize)
            .map_or(0.0, |g| sq(g.offset.se));
    }
    let labels = if product != NONE {
        let mut l = model
            .product_info
            .get(product as usize)
            .map(|i| i.sizes.clone())
            .unwrap_or_default();
        super::sort_labels(model, &mut l);
        l
    } else {
        brand_labels(model, b, c)
    };
    if product != NONE {
        if let Some(p) = model.products.get(product as usize) {
            terms.value += p.offset.value;
            terms.var += sq(p.offset.se);
        }
    }
    let counts = label_counts(model, b, cat, product);
    let rows = labels
        .iter()
        .filter_map(|&l| row(model, (&q.brand, l), &terms, &counts))
        .collect();
    let se = terms.var.sqrt();
    let (verdict, advice) = describe(terms.value, se);
    Ok(SizeChart {
        brand: q.brand.clone(),
        category: (cat != NONE)
            .then(|| model.categories.get(cat as usize).map(|g| g.name.clone()))
            .flatten(),
        product: q.product.clone().filter(|_| product != NONE),
        runs: terms.value,
        se,
        verdict,
        advice,
        rows,
    })
}

/// Fit events per label of the brand's (category's) products, or of one product.
fn label_counts(model: &Predictor, brand: u32, category: u32, product: u32) -> Vec<u64> {
    let mut counts = vec![0u64; model.labels.len()];
    for a in &model.article_sizes {
        let keep = if product != NONE {
            a.product == product
        } else {
            model
                .product_info
                .get(a.product as usize)
                .is_some_and(|i| i.brand == brand && (category == NONE || i.category == category))
        };
        if keep {
            if let Some(n) = counts.get_mut(a.label as usize) {
                *n += a.offset.n;
            }
        }
    }
    counts
}

fn row(
    model: &Predictor,
    (brand, l): (&str, u32),
    terms: &Terms,
    counts: &[u64],
) -> Option<ChartRow> {
    let lp = model.labels.get(l as usize)?;
    let typical = typical_position(model, lp);
    let mut position = typical + terms.value;
    let mut var = terms.var + sq(lp.offset.se);
    if terms.product != NONE {
        let at = crate::model::predict::ArticleRef {
            product: terms.product,
            brand: NONE,
            category: NONE,
            label: l,
            system: lp.system,
            pos: lp.pos,
        };
        if let Some(i) = model.article_size_index(&at) {
            if let Some(a) = model.article_sizes.get(i as usize) {
                position += a.offset.value;
                var += sq(a.offset.se);
            }
        }
    }
    let se = var.sqrt();
    let fits_like = fits_like(model, lp.system, position);
    Some(ChartRow {
        label: lp.canonical.clone(),
        system: lp.system.as_str().to_string(),
        position,
        se,
        interval: [position - 1.96 * se, position + 1.96 * se],
        typical,
        runs: position - typical,
        n: counts.get(l as usize).copied().unwrap_or(0),
        words: match fits_like.chars().next() {
            Some('<' | '>') => format!("{brand} {} is {}", lp.canonical, fits_phrase(&fits_like)),
            _ => format!(
                "{brand} {} fits like {}",
                lp.canonical,
                fits_phrase(&fits_like)
            ),
        },
        fits_like,
    })
}

/// The catalogue's typical labels of `system` by position: one label per distinct
/// position (the one with most events), smallest first.
pub fn typical_labels(
    model: &Predictor,
    system: crate::data::schema::SizeSystem,
) -> Vec<(f64, &str)> {
    let mut v: Vec<(f64, &str, u64)> = model
        .labels
        .iter()
        .filter(|l| l.system == system)
        .map(|l| (typical_position(model, l), l.canonical.as_str(), l.offset.n))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.2.cmp(&a.2)));
    let mut out: Vec<(f64, &str)> = Vec::with_capacity(v.len());
    for (t, name, _) in v {
        if out.last().is_none_or(|last| (t - last.0).abs() > 1e-9) {
            out.push((t, name));
        }
    }
    out
}

/// Which typical label of `system` a position fits like: the nearest one when within a
/// quarter of the gap to its neighbour, `A/B` between two, `<A` / `>Z` beyond the ends
/// (by more than a quarter size).
pub fn fits_like(model: &Predictor, system: crate::data::schema::SizeSystem, x: f64) -> String {
    let refs = typical_labels(model, system);
    let (Some(first), Some(last)) = (refs.first(), refs.last()) else {
        return "(no reference)".into();
    };
    if x < first.0 - 0.25 {
        return format!("<{}", first.1);
    }
    if x > last.0 + 0.25 {
        return format!(">{}", last.1);
    }
    if x <= first.0 {
        return first.1.to_string();
    }
    for pair in refs.windows(2) {
        let (lo, hi) = (pair[0], pair[1]);
        if x >= lo.0 && x <= hi.0 {
            let frac = (x - lo.0) / (hi.0 - lo.0).max(1e-12);
            return if frac < 0.25 {
                lo.1.to_string()
            } else if frac > 0.75 {
                hi.1.to_string()
            } else {
                format!("{}/{}", lo.1, hi.1)
            };
        }
    }
    last.1.to_string()
}

/// [`ChartRow::fits_like`] in words: `a typical M/L`, `larger than a typical 3XL`.
pub fn fits_phrase(fits_like: &str) -> String {
    if let Some(x) = fits_like.strip_prefix('>') {
        format!("larger than a typical {x}")
    } else if let Some(x) = fits_like.strip_prefix('<') {
        format!("smaller than a typical {x}")
    } else {
        format!("a typical {fits_like}")
    }
}

/// Every brand's chart (all its products), in the model's brand order.
pub fn all_charts(model: &Predictor) -> Vec<SizeChart> {
    model
        .brands
        .iter()
        .filter_map(|b| {
            size_chart(
                model,
                &ChartQuery {
                    brand: b.name.clone(),
                    ..ChartQuery::default()
                },
            )
            .ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::insight::testmodel;

    fn chart(brand: &str, category: Option<&str>, product: Option<&str>) -> SizeChart {
        size_chart(
            &testmodel::model(),
            &ChartQuery {
                brand: brand.into(),
                category: category.map(Into::into),
                product: product.map(Into::into),
            },
        )
        .unwrap()
    }

    #[test]
    fn brand_chart_hand_checked() {
        let c = chart("Acme", None, None);
        assert_eq!(c.rows.len(), 3);
        let m = &c.rows[1];
        assert_eq!(m.label, "M");
        // M at 0 + Acme +0.5; se = brand se 0.1 (label se 0)
        assert!((m.position - 0.5).abs() < 1e-12);
        assert!((m.se - 0.1).abs() < 1e-12);
        assert!((m.interval[0] - (0.5 - 0.196)).abs() < 1e-12);
        assert!((m.runs - 0.5).abs() < 1e-12);
        assert_eq!(m.fits_like, "M/L");
        assert_eq!(m.words, "Acme M fits like a typical M/L");
        // events: a1 and a2 in M, 11 each
        assert_eq!(m.n, 22);
        assert_eq!(c.rows[0].fits_like, "S/M");
        assert_eq!(c.rows[2].fits_like, ">L");
        assert_eq!(c.rows[2].words, "Acme L is larger than a typical L");
        assert_eq!(fits_phrase("<S"), "smaller than a typical S");
        assert_eq!(c.verdict, "runs large by about half a size");
        assert_eq!(chart("Zeta", None, None).rows[1].fits_like, "S/M");
        assert_eq!(chart("Mid", Some("dresses"), None).rows[1].fits_like, "M");
    }

    #[test]
    fn product_chart_adds_product_terms() {
        let c = chart("Acme", None, Some("a2"));
        // a2: Acme +0.5, product -1.3 -> M at -0.8, se sqrt(0.1² + 0.2²)
        let m = &c.rows[1];
        assert!((m.position + 0.8).abs() < 1e-12);
        assert!((m.se - (0.01f64 + 0.04).sqrt()).abs() < 1e-12);
        assert_eq!(m.fits_like, "S", "-0.8 is within a quarter of S");
        assert_eq!(m.n, 11);
        assert!((c.runs + 0.8).abs() < 1e-12);
        assert_eq!(c.product.as_deref(), Some("a2"));
    }

    #[test]
    fn chart_errors() {
        let m = testmodel::model();
        let q = |b: &str, p: Option<&str>| ChartQuery {
            brand: b.into(),
            category: None,
            product: p.map(Into::into),
        };
        assert!(matches!(
            size_chart(&m, &q("Nope", None)),
            Err(InsightError::NotFound { .. })
        ));
        // z1 is Zeta's
        assert!(size_chart(&m, &q("Acme", Some("z1"))).is_err());
        assert_eq!(all_charts(&m).len(), 3);
    }
}
