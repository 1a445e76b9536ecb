//! Size recommendation for one shopper and one product: the shopper's size is computed
//! on the fly from whatever the query carries (a known customer id, past purchases,
//! reference sizes, body features), so serving needs no per-customer state beyond the
//! optional training table.

use super::{LabelHit, Predictor};
use crate::data::schema::{Outcome, NONE};
use crate::model::features::{FeatureModel, FeatureValues};
use crate::model::predict::{ArticleRef, CustomerState, EvidenceTerm};
use crate::model::query::{Feature, Query, Shopper};
use crate::model::report::FitProfile;

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

fn invalid(field: impl Into<String>, message: impl Into<String>) -> RecommendError {
    RecommendError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Confidence level of a recommendation from the shopper's size sd and the recommended
/// size's fit probability: `high` (sd < 0.6 and p ≥ 0.6), `medium` (sd < 1.2 and
/// p ≥ 0.4), else `low`.
pub fn confidence_level(sd: f64, p_fit: f64) -> &'static str {
    if sd < 0.6 && p_fit >= 0.6 {
        "high"
    } else if sd < 1.2 && p_fit >= 0.4 {
        "medium"
    } else {
        "low"
    }
}

/// Keys of one article: brand, product, category indices.
type Keys = (u32, u32, u32);

fn article(keys: Keys, label: &LabelHit) -> ArticleRef {
    ArticleRef {
        product: keys.1,
        brand: keys.0,
        category: keys.2,
        label: label.label,
        system: label.system,
        pos: label.pos,
    }
}

/// What a shopper's size estimate is based on, in the order found: `customer`,
/// `features`, `history`, `reference`, or only `population` (no allocation).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Basis {
    items: [&'static str; 4],
    len: usize,
}

impl Basis {
    fn push(&mut self, item: &'static str) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = item;
            self.len += 1;
        }
    }

    /// The bases, in order.
    pub fn as_slice(&self) -> &[&'static str] {
        self.items.get(..self.len).unwrap_or(&[])
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn contains(&self, item: &str) -> bool {
        self.as_slice().contains(&item)
    }

    /// The bases as owned strings.
    pub fn to_strings(self) -> Vec<String> {
        self.as_slice().iter().map(|b| (*b).to_string()).collect()
    }
}

impl FromIterator<&'static str> for Basis {
    /// The first four items (a basis has at most four: customer, features, history,
    /// reference).
    fn from_iter<I: IntoIterator<Item = &'static str>>(iter: I) -> Self {
        let mut b = Basis::default();
        for item in iter {
            b.push(item);
        }
        b
    }
}

/// What a shopper's posterior is computed from.
struct ShopperInputs {
    prior: CustomerState,
    terms: Vec<EvidenceTerm>,
    basis: Basis,
    /// Index of the last past purchase that fit (for the explanation).
    last_fit: Option<usize>,
    /// The history's small / fit / large counts and the sum of those purchases' label
    /// positions (the second stage's view of the request's history).
    history_counts: ([f64; 3], f64),
}

impl Predictor {
    /// The shopper's long-run size and fit bias (posterior) and what it is based on.
    pub fn shopper_belief(
        &self,
        shopper: &Shopper<'_>,
    ) -> Result<(CustomerState, Basis), RecommendError> {
        let x = self.shopper_inputs(shopper)?;
        Ok((self.posterior(x.prior, &x.terms), x.basis))
    }

    /// What the shopper's posterior is computed from: the prior (features or known
    /// customer) and one evidence term per past purchase and reference size.
    pub fn shopper_evidence(
        &self,
        shopper: &Shopper<'_>,
    ) -> Result<(CustomerState, Vec<EvidenceTerm>), RecommendError> {
        let x = self.shopper_inputs(shopper)?;
        Ok((x.prior, x.terms))
    }

    fn shopper_inputs(&self, shopper: &Shopper<'_>) -> Result<ShopperInputs, RecommendError> {
        let look = self.catalog();
        let mut basis = Basis::default();
        let mut prior = if shopper.features.is_empty() {
            self.population()
        } else {
            for &(name, v) in &shopper.features {
                let known_num = self.features.numeric.iter().any(|f| f.name == name);
                let known_cat = self.features.categorical.iter().any(|f| f.name == name);
                match v {
                    Feature::Number(x) if known_num && !x.is_finite() => {
                        return Err(invalid(
                            format!("shopper.features.{name}"),
                            "expected a finite number",
                        ))
                    }
                    Feature::Text(_) if known_num => {
                        return Err(invalid(
                            format!("shopper.features.{name}"),
                            "expected a number",
                        ))
                    }
                    Feature::Number(_) if known_cat => {
                        return Err(invalid(
                            format!("shopper.features.{name}"),
                            "expected a text category",
                        ))
                    }
                    _ => {}
                }
            }
            let values = FeatureValues::from_query(&self.features, shopper);
            if FeatureModel::any_present(&values) {
                basis.push("features");
            }
            self.customer_prior(Some(&values))
        };
        if let Some(id) = shopper.customer_id {
            if let Some(st) = self
                .customer_index(id)
                .and_then(|c| self.known_customer(c as usize))
            {
                prior = st;
                basis.push("customer");
            }
        }
        let mut terms: Vec<EvidenceTerm> =
            Vec::with_capacity(shopper.history.len() + shopper.reference.len());
        let mut last_fit = None;
        let mut history_counts = ([0.0; 3], 0.0);
        for (i, h) in shopper.history.iter().enumerate() {
            let label = look
                .parse(h.size, h.size_system)
                .map_err(|e| invalid(format!("shopper.history[{i}].size"), e))?;
            let outcome = look.outcome(h.outcome).ok_or_else(|| {
                invalid(
                    format!("shopper.history[{i}].outcome"),
                    format!("unknown outcome '{}': expected e.g. kept, fit, too_small, too_large, returned_other", h.outcome),
                )
            })?;
            if outcome == Outcome::Fit {
                last_fit = Some(i);
            }
            let keys = look.resolve_product(self, (h.brand, h.product_id, h.category));
            let a = article(keys, &label);
            if let Some(k) = outcome.class() {
                // as Predictor::shopper_stack counts them (same parse, same outcome words)
                if let Some(c) = history_counts.0.get_mut(k) {
                    *c += 1.0;
                }
                history_counts.1 += self.label_position(&a);
            }
            terms.push(self.evidence_with(&a, look.article_size(&a), outcome.class(), true));
        }
        if !shopper.history.is_empty() {
            basis.push("history");
        }
        for (i, r) in shopper.reference.iter().enumerate() {
            let label = look
                .parse(r.size, r.size_system)
                .map_err(|e| invalid(format!("shopper.reference[{i}].size"), e))?;
            let keys = look.resolve_product(self, (r.brand, None, r.category));
            let a = article(keys, &label);
            // "I wear M at Acme": chosen, and it fits
            terms.push(self.evidence_with(&a, look.article_size(&a), Some(1), true));
        }
        if !shopper.reference.is_empty() {
            basis.push("reference");
        }
        if basis.is_empty() {
            basis.push("population");
        }
        Ok(ShopperInputs {
            prior,
            terms,
            basis,
            last_fit,
            history_counts,
        })
    }

    /// Recommend a size of the query's product for its shopper. The answer borrows the
    /// size labels from the query and the model, and the brand profile from the predictor
    /// (what a server writes straight to JSON).
    pub fn recommend<'a>(
        &'a self,
        query: &'a Query<'_>,
    ) -> Result<RecommendationView<'a>, RecommendError> {
        let look = self.catalog();
        let product = &query.product;
        let keys =
            look.resolve_product(self, (product.brand, product.product_id, product.category));
        let (b, p, c) = keys;
        if b == NONE && p == NONE && c == NONE && product.sizes.is_none() {
            return Err(RecommendError::NotFound {
                field: "product".into(),
                message: "unknown product, brand and category, and no sizes given: nothing to recommend from".into(),
            });
        }
        // sizes on offer: (text as given or canonical, parsed)
        let mut offered: Vec<(&str, LabelHit)> = match &product.sizes {
            Some(list) => {
                if list.is_empty() {
                    return Err(invalid("product.sizes", "expected at least one size label"));
                }
                let mut v = Vec::with_capacity(list.len());
                for (i, &s) in list.iter().enumerate() {
                    let l = look
                        .parse(s, product.size_system)
                        .map_err(|e| invalid(format!("product.sizes[{i}]"), e))?;
                    v.push((s, l));
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
                    .filter_map(|&i| Some((i, self.labels.get(i as usize)?)))
                    .map(|(i, l)| {
                        (
                            l.canonical.as_str(),
                            LabelHit {
                                system: l.system,
                                pos: l.pos,
                                secondary: None,
                                label: look.label_of(i, &l.canonical),
                            },
                        )
                    })
                    .collect()
            }
        };
        offered.sort_by(|x, y| x.1.cmp_order(&y.1));
        let shopper = &query.shopper;
        let inputs = self.shopper_inputs(shopper)?;
        let state = self.posterior(inputs.prior, &inputs.terms);
        let belief = self.at_purchase(&state, None);
        let sc = self.stage().is_some().then(|| {
            let (counts, pos) = inputs.history_counts;
            self.shopper_stack_with(shopper, counts, pos)
        });
        let mut sizes = Vec::with_capacity(offered.len());
        let mut best = 0usize;
        // every size here is of one product for one shopper: the offer calibration's
        // size-invariant part is computed once
        let mut tail = None;
        for (i, (text, label)) in offered.iter().enumerate() {
            let a = article(keys, label);
            let art = look.article_size(&a);
            let pr = match &sc {
                Some(sc) => self.probs_offer_at((belief, &a, art), sc, &mut tail),
                None => self.probs_article_with(belief, &a, art),
            };
            if sizes
                .get(best)
                .is_some_and(|s: &SizeOddsView<'_>| pr[1] > s.probs[1])
            {
                best = i;
            }
            sizes.push(SizeOddsView {
                size: text,
                probs: pr,
            });
        }
        let Some(chosen) = sizes.get(best).copied() else {
            // a product seen in training without a size label
            return Err(invalid(
                "product.sizes",
                "no sizes known for the product: list the sizes on offer",
            ));
        };
        let sd = belief.var.sqrt();
        let p_fit = chosen.probs[1];
        let score = p_fit / (1.0 + sd);
        let level = confidence_level(sd, p_fit);
        let brand_fit = self.brand_profile(b);
        let explanation = explain(&ExplainInput {
            brand: brand_fit,
            shopper,
            basis: &inputs.basis,
            last_fit: inputs.last_fit,
            size: chosen.size,
        });
        Ok(RecommendationView {
            sizes,
            best,
            level,
            score,
            shopper_size_sd: sd,
            basis: inputs.basis,
            brand_json: self.brand_profile_json(b),
            brand_fit,
            explanation,
        })
    }
}

/// Probabilities of one size on offer, its label borrowed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SizeOddsView<'a> {
    /// Size label as given (or the model's canonical label).
    pub size: &'a str,
    /// `[small, fit, large]`.
    pub probs: [f64; 3],
}

/// A recommendation whose texts are borrowed (from the query and the predictor): no
/// copy of every label and of the brand profile. The server's wire type is made from it.
#[derive(Clone, Debug)]
pub struct RecommendationView<'a> {
    /// Every size on offer, in size order (never empty).
    pub sizes: Vec<SizeOddsView<'a>>,
    /// Index of the recommended size in `sizes`.
    pub best: usize,
    /// Confidence level: `high`, `medium` or `low`.
    pub level: &'static str,
    /// Confidence score, 0..1: fit probability discounted by the uncertainty about the
    /// shopper (`p_fit / (1 + sd)`).
    pub score: f64,
    /// Standard deviation of the shopper's size estimate, in sizes.
    pub shopper_size_sd: f64,
    /// What the shopper's size is based on.
    pub basis: Basis,
    /// How the brand runs (when the brand is known).
    pub brand_fit: Option<&'a FitProfile>,
    /// `brand_fit` as JSON, byte for byte what serde writes for it, when the serving
    /// index has it ready.
    pub brand_json: Option<&'a str>,
    /// One sentence a shop can show.
    pub explanation: String,
}

impl RecommendationView<'_> {
    /// The recommended size and its probabilities.
    pub fn chosen(&self) -> Option<&SizeOddsView<'_>> {
        self.sizes.get(self.best)
    }
}

struct ExplainInput<'a> {
    brand: Option<&'a FitProfile>,
    shopper: &'a Shopper<'a>,
    basis: &'a Basis,
    /// Index of the last past purchase that fit.
    last_fit: Option<usize>,
    size: &'a str,
}

/// One sentence: how the brand runs, what the size is based on, the size.
fn explain(x: &ExplainInput<'_>) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(160);
    if let Some(bf) = x.brand {
        // (a profile's verdict is `describe(offset, se)`'s, see report::profile)
        s.push_str(&bf.key);
        s.push(' ');
        s.push_str(&bf.verdict);
        s.push_str("; ");
    }
    let history = &x.shopper.history;
    let kept = x.last_fit.and_then(|i| history.get(i));
    let _ = if let Some(h) = kept {
        match &h.brand {
            Some(b) => write!(s, "based on the {} you kept from {b}", h.size),
            None => write!(s, "based on the {} you kept", h.size),
        }
    } else if let Some(r) = x.shopper.reference.first() {
        match &r.brand {
            Some(b) => write!(s, "based on the {} you wear at {b}", r.size),
            None => write!(s, "based on the {} you usually wear", r.size),
        }
    } else if let Some(h) = history.last() {
        write!(
            s,
            "based on your past purchases (the {} was {})",
            h.size,
            h.outcome.replace('_', " ")
        )
    } else if x.basis.contains("customer") {
        s.write_str("based on your purchase history")
    } else if x.basis.contains("features") {
        s.write_str("based on your measurements")
    } else {
        s.write_str("based on what most shoppers keep")
    };
    let _ = write!(s, " we recommend {}.", x.size);
    // capitalise the first character when it is ASCII
    if let Some(first) = s.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    s
}
