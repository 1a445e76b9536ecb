//! Size recommendation for one shopper and one product: the shopper's size is computed
//! on the fly from whatever the request carries (a known customer id, past purchases,
//! reference sizes, body features), so serving needs no per-customer state beyond the
//! optional training table.

use super::features::FeatureValues;
use super::fitted::Model;
use super::predict::{ArticleRef, CustomerState, EvidenceTerm};
use super::report::{describe, FitProfile};
use crate::data::schema::{Outcome, SizeLabel, NONE};
use crate::data::{parse_size, OutcomeMap};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Errors of a recommendation request; each names the offending field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecommendError {
    /// A field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// JSON path of the field, e.g. `history[2].size`.
        field: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The product, brand or customer is unknown and nothing else identifies it.
    #[error("{field}: {message}")]
    NotFound {
        /// The field.
        field: String,
        /// What was not found.
        message: String,
    },
}

/// The product being looked at.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductQuery {
    /// Brand name.
    #[serde(default)]
    pub brand: Option<String>,
    /// Product id (optional; unseen products fall back on brand and category).
    #[serde(default)]
    pub product_id: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Sizes on offer (labels); default: the sizes seen for the product in training.
    #[serde(default)]
    pub sizes: Option<Vec<String>>,
    /// Size system of the labels (optional; e.g. `us`, `eu`, `letter`).
    #[serde(default)]
    pub size_system: Option<String>,
}

/// A past purchase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PastPurchase {
    /// Brand name.
    #[serde(default)]
    pub brand: Option<String>,
    /// Product id.
    #[serde(default)]
    pub product_id: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Size label bought.
    pub size: String,
    /// Size system of the label.
    #[serde(default)]
    pub size_system: Option<String>,
    /// What became of it (`kept`, `fit`, `too_small`, `returned_too_large`, ...).
    pub outcome: String,
}

/// "I wear M at Acme".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReferenceSize {
    /// Brand name.
    #[serde(default)]
    pub brand: Option<String>,
    /// Category.
    #[serde(default)]
    pub category: Option<String>,
    /// Size label worn.
    pub size: String,
    /// Size system of the label.
    #[serde(default)]
    pub size_system: Option<String>,
}

/// A body feature value: a number or a category.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FeatureValue {
    /// Numeric (height, weight, ...).
    Number(f64),
    /// Categorical (body type, ...).
    Text(String),
}

/// Everything the request knows about the shopper.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Shopper {
    /// A customer id seen in training.
    #[serde(default)]
    pub customer_id: Option<String>,
    /// Past purchases with outcomes.
    #[serde(default)]
    pub history: Vec<PastPurchase>,
    /// Reference sizes the shopper says they wear.
    #[serde(default)]
    pub reference: Vec<ReferenceSize>,
    /// Body features by name, as in training (`height_in`, `body_type`, ...).
    #[serde(default)]
    pub features: BTreeMap<String, FeatureValue>,
}

/// Probabilities for one size on offer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SizeOdds {
    /// Size label as given.
    pub size: String,
    /// Probability it is too small.
    pub p_small: f64,
    /// Probability it fits.
    pub p_fit: f64,
    /// Probability it is too large.
    pub p_large: f64,
}

/// Confidence of a recommendation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Confidence {
    /// `high`, `medium` or `low`.
    pub level: String,
    /// 0..1: fit probability discounted by the uncertainty about the shopper.
    pub score: f64,
    /// Standard deviation of the shopper's size estimate, in sizes.
    pub shopper_size_sd: f64,
    /// What the shopper's size is based on: `customer`, `history`, `reference`, `features`, `population`.
    pub basis: Vec<String>,
}

/// A recommendation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recommendation {
    /// The size to buy.
    pub recommended_size: String,
    /// Its probability of fitting.
    pub fit_probability: f64,
    /// Every size on offer, in size order.
    pub sizes: Vec<SizeOdds>,
    /// How sure we are.
    pub confidence: Confidence,
    /// How the brand runs (when the brand is known).
    pub brand_fit: Option<FitProfile>,
    /// One sentence a shop can show.
    pub explanation: String,
}

/// The standard outcome vocabulary, built once (it was rebuilt on every request).
fn standard_outcomes() -> &'static OutcomeMap {
    static MAP: std::sync::OnceLock<OutcomeMap> = std::sync::OnceLock::new();
    MAP.get_or_init(OutcomeMap::standard)
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> RecommendError {
    RecommendError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

fn lookup(map: &std::collections::HashMap<String, u32>, key: Option<&String>) -> u32 {
    key.and_then(|k| map.get(k)).copied().unwrap_or(NONE)
}

impl Model {
    fn article(&self, brand: u32, product: u32, category: u32, label: &SizeLabel) -> ArticleRef {
        ArticleRef {
            product,
            brand,
            category,
            label: self
                .index
                .label
                .get(&label.canonical)
                .copied()
                .unwrap_or(NONE),
            system: label.system,
            pos: label.pos,
        }
    }

    fn resolve_product(
        &self,
        brand: Option<&String>,
        product: Option<&String>,
        category: Option<&String>,
    ) -> (u32, u32, u32) {
        let p = lookup(&self.index.product, product);
        let info = (p != NONE)
            .then(|| self.product_info.get(p as usize))
            .flatten();
        let b = match lookup(&self.index.brand, brand) {
            NONE => info.map_or(NONE, |i| i.brand),
            b => b,
        };
        let c = match lookup(&self.index.category, category) {
            NONE => info.map_or(NONE, |i| i.category),
            c => c,
        };
        (b, p, c)
    }

    /// The shopper's long-run size and fit bias (posterior) and what it is based on.
    pub fn shopper_belief(
        &self,
        shopper: &Shopper,
    ) -> Result<(CustomerState, Vec<String>), RecommendError> {
        let mut basis = Vec::new();
        let values = FeatureValues {
            numeric: self
                .features
                .numeric
                .iter()
                .map(|f| match shopper.features.get(&f.name) {
                    Some(FeatureValue::Number(x)) => *x,
                    _ => f64::NAN,
                })
                .collect(),
            categorical: self
                .features
                .categorical
                .iter()
                .map(|f| match shopper.features.get(&f.name) {
                    Some(FeatureValue::Text(s)) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
        };
        for (name, v) in &shopper.features {
            let known_num = self.features.numeric.iter().any(|f| &f.name == name);
            let known_cat = self.features.categorical.iter().any(|f| &f.name == name);
            match v {
                FeatureValue::Number(x) if known_num && !x.is_finite() => {
                    return Err(invalid(
                        format!("shopper.features.{name}"),
                        "expected a finite number",
                    ))
                }
                FeatureValue::Text(_) if known_num => {
                    return Err(invalid(
                        format!("shopper.features.{name}"),
                        "expected a number",
                    ))
                }
                FeatureValue::Number(_) if known_cat => {
                    return Err(invalid(
                        format!("shopper.features.{name}"),
                        "expected a text category",
                    ))
                }
                _ => {}
            }
        }
        let mut prior = self.customer_prior(Some(&values));
        if super::features::FeatureModel::any_present(&values) {
            basis.push("features".to_string());
        }
        if let Some(id) = &shopper.customer_id {
            if let Some(st) = self
                .index
                .customer
                .get(id)
                .and_then(|&c| self.known_customer(c as usize))
            {
                prior = st;
                basis.push("customer".to_string());
            }
        }
        let outcomes = standard_outcomes();
        let mut terms: Vec<EvidenceTerm> = Vec::new();
        for (i, h) in shopper.history.iter().enumerate() {
            let label = parse_size(&h.size, h.size_system.as_deref())
                .map_err(|e| invalid(format!("shopper.history[{i}].size"), e.to_string()))?;
            let outcome = outcomes.classify(&h.outcome).ok_or_else(|| {
                invalid(
                    format!("shopper.history[{i}].outcome"),
                    format!("unknown outcome '{}': expected e.g. kept, fit, too_small, too_large, returned_other", h.outcome),
                )
            })?;
            let (b, p, c) =
                self.resolve_product(h.brand.as_ref(), h.product_id.as_ref(), h.category.as_ref());
            let a = self.article(b, p, c, &label);
            terms.push(self.evidence(&a, outcome.class(), true));
        }
        if !shopper.history.is_empty() {
            basis.push("history".to_string());
        }
        for (i, r) in shopper.reference.iter().enumerate() {
            let label = parse_size(&r.size, r.size_system.as_deref())
                .map_err(|e| invalid(format!("shopper.reference[{i}].size"), e.to_string()))?;
            let (b, p, c) = self.resolve_product(r.brand.as_ref(), None, r.category.as_ref());
            let a = self.article(b, p, c, &label);
            // "I wear M at Acme": chosen, and it fits
            terms.push(self.evidence(&a, Some(1), true));
        }
        if !shopper.reference.is_empty() {
            basis.push("reference".to_string());
        }
        if basis.is_empty() {
            basis.push("population".to_string());
        }
        Ok((self.posterior(prior, &terms), basis))
    }

    /// Recommend a size of `product` for `shopper`.
    pub fn recommend(
        &self,
        product: &ProductQuery,
        shopper: &Shopper,
    ) -> Result<Recommendation, RecommendError> {
        let (b, p, c) = self.resolve_product(
            product.brand.as_ref(),
            product.product_id.as_ref(),
            product.category.as_ref(),
        );
        if b == NONE && p == NONE && c == NONE && product.sizes.is_none() {
            return Err(RecommendError::NotFound {
                field: "product".into(),
                message: "unknown product, brand and category, and no sizes given: nothing to recommend from".into(),
            });
        }
        // sizes on offer
        let mut offered: Vec<(String, SizeLabel)> = match &product.sizes {
            Some(list) => {
                if list.is_empty() {
                    return Err(invalid("product.sizes", "expected at least one size label"));
                }
                let mut v = Vec::with_capacity(list.len());
                for (i, s) in list.iter().enumerate() {
                    let l = parse_size(s, product.size_system.as_deref())
                        .map_err(|e| invalid(format!("product.sizes[{i}]"), e.to_string()))?;
                    v.push((s.clone(), l));
                }
                v
            }
            None => {
                let info = (p != NONE)
                    .then(|| self.product_info.get(p as usize))
                    .flatten();
                let Some(info) = info else {
                    return Err(invalid(
                        "product.sizes",
                        "the product was not seen in training: list the sizes on offer",
                    ));
                };
                info.sizes
                    .iter()
                    .filter_map(|&l| self.labels.get(l as usize))
                    .map(|l| {
                        (
                            l.canonical.clone(),
                            SizeLabel {
                                system: l.system,
                                pos: l.pos,
                                secondary: None,
                                canonical: l.canonical.clone(),
                            },
                        )
                    })
                    .collect()
            }
        };
        offered.sort_by(|x, y| x.1.cmp_order(&y.1));
        let (state, basis) = self.shopper_belief(shopper)?;
        let belief = self.at_purchase(&state, None);
        let sc = self.shopper_stack(shopper);
        let mut sizes = Vec::with_capacity(offered.len());
        let mut best = 0usize;
        for (i, (text, label)) in offered.iter().enumerate() {
            let a = self.article(b, p, c, label);
            let pr = self.probs_final(belief, &a, &sc);
            sizes.push(SizeOdds {
                size: text.clone(),
                p_small: pr[0],
                p_fit: pr[1],
                p_large: pr[2],
            });
            if pr[1] > sizes[best].p_fit {
                best = i;
            }
        }
        let chosen = &sizes[best];
        let sd = belief.var.sqrt();
        let score = chosen.p_fit / (1.0 + sd);
        let level = if sd < 0.6 && chosen.p_fit >= 0.6 {
            "high"
        } else if sd < 1.2 && chosen.p_fit >= 0.4 {
            "medium"
        } else {
            "low"
        };
        let brand_fit = (b != NONE)
            .then(|| self.brand_profile(b as usize))
            .flatten();
        let explanation = self.explain(&ExplainInput {
            brand: brand_fit.as_ref(),
            shopper,
            basis: &basis,
            size: &chosen.size,
        });
        Ok(Recommendation {
            recommended_size: chosen.size.clone(),
            fit_probability: chosen.p_fit,
            sizes,
            confidence: Confidence {
                level: level.to_string(),
                score,
                shopper_size_sd: sd,
                basis,
            },
            brand_fit,
            explanation,
        })
    }

    fn explain(&self, x: &ExplainInput<'_>) -> String {
        let mut parts = Vec::new();
        if let Some(bf) = x.brand {
            let (verdict, _) = describe(bf.offset, bf.se);
            parts.push(format!("{} {}", bf.key, verdict));
        }
        let because = if let Some(h) = x.shopper.history.iter().rev().find(|h| {
            standard_outcomes()
                .classify(&h.outcome)
                .is_some_and(|o| o == Outcome::Fit)
        }) {
            match &h.brand {
                Some(b) => format!("based on the {} you kept from {b}", h.size),
                None => format!("based on the {} you kept", h.size),
            }
        } else if let Some(r) = x.shopper.reference.first() {
            match &r.brand {
                Some(b) => format!("based on the {} you wear at {b}", r.size),
                None => format!("based on the {} you usually wear", r.size),
            }
        } else if let Some(h) = x.shopper.history.last() {
            format!(
                "based on your past purchases (the {} was {})",
                h.size,
                h.outcome.replace('_', " ")
            )
        } else if x.basis.iter().any(|b| b == "customer") {
            "based on your purchase history".to_string()
        } else if x.basis.iter().any(|b| b == "features") {
            "based on your measurements".to_string()
        } else {
            "based on what most shoppers keep".to_string()
        };
        parts.push(format!("{because} we recommend {}", x.size));
        let mut s = parts.join("; ");
        if let Some(first) = s.get(..1) {
            s = first.to_uppercase() + s.get(1..).unwrap_or("");
        }
        s.push('.');
        s
    }
}

struct ExplainInput<'a> {
    brand: Option<&'a FitProfile>,
    shopper: &'a Shopper,
    basis: &'a [String],
    size: &'a str,
}
