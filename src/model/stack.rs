//! Second stage: a calibrated multinomial logistic regression fitted after the structural
//! model, on the structural model's log-odds and size gap plus smoothed outcome rates of
//! the product, the product in that size, its category / brand and the customer.
//!
//! Training features are computed **out of sample**: each training event sees the
//! customer's state without its own evidence (one Newton step back from the stored
//! posterior, as the fit's leave-one-out pass does), the article's true size without its
//! own outcome (one Newton step on the article's total information), and outcome counts
//! with its own outcome removed. At prediction time the stored training counts are used
//! as they are, so a new event sees what a training event saw without itself.
//!
//! The learner is fitted by Newton's method on sums of per-event gradients and Hessians
//! over fixed chunks of events (deterministic, and a group-by in a distributed setting).
//! The ridge penalty and the feature set are chosen by K-fold cross-validation by
//! customer on the training events.

use super::eval::metrics;
use super::features::{FeatureModel, FeatureValues};
use super::fitted::Model;
use super::math::{event_deriv, probs, uncertainty_scale};
use super::predict::{cut_points, inv2, ArticleRef, CustomerState, EvidenceTerm, SizeBelief};
use super::recommend::{FeatureValue, Shopper};
use super::score::{Resolved, ScoreOptions};
use super::{FitParams, ModelError};
use crate::data::schema::{Events, NONE};
use crate::data::OutcomeMap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Outcome counts `[small, fit, large]`.
pub type Counts = [u32; 3];

/// Probabilities are clamped to at least this before taking log-odds.
const P_FLOOR: f64 = 1e-6;
/// Rows per chunk of the gradient / Hessian sums (fixed: results do not depend on threads).
const CHUNK: usize = 4096;

/// Training outcome counts the second stage reads at prediction time, aligned with the
/// model's tables.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StackTables {
    /// All fit events.
    pub global: [u64; 3],
    /// Per category (aligned with `Model::categories`).
    pub category: Vec<Counts>,
    /// Per brand (aligned with `Model::brands`).
    pub brand: Vec<Counts>,
    /// Per product (aligned with `Model::products`).
    pub product: Vec<Counts>,
    /// Per product in size (aligned with `Model::article_sizes`).
    pub article_size: Vec<Counts>,
    /// Per training customer (aligned with `Model::customers`; empty without a customer table).
    pub customer: Vec<Counts>,
    /// Per product: sums of renters' body-predicted size relative to the label rented
    /// (`z`), by outcome, then the number of such renters by outcome (renters with body
    /// features only).
    pub product_body: Vec<[f64; 6]>,
    /// The same over all products.
    pub body_global: [f64; 6],
}

/// Pseudo-counts of the empirical-Bayes smoothing of outcome rates: each level's rates
/// are shrunk toward its parent's with this many prior events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Smoothing {
    /// Category toward the global rates (default 50).
    pub category: f64,
    /// Brand toward its category (default 20).
    pub brand: f64,
    /// Product toward its brand / category (default 10).
    pub product: f64,
    /// Product-in-size toward its product (default 5).
    pub article_size: f64,
    /// Customer toward the global rates (default 3).
    pub customer: f64,
    /// Per-outcome mean body size of a product's renters toward the global ones (default 5).
    pub centroid: f64,
}

impl Default for Smoothing {
    fn default() -> Self {
        Smoothing {
            category: 50.0,
            brand: 20.0,
            product: 10.0,
            article_size: 5.0,
            customer: 3.0,
            centroid: 5.0,
        }
    }
}

/// Which feature groups enter the second stage (the structural log-odds and an
/// intercept always do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSet {
    /// Gap mean, sd and hinge functions of the gap.
    pub gap: bool,
    /// Product rates and count.
    pub product: bool,
    /// Product-in-size rates (relative to the product) and count.
    pub article_size: bool,
    /// Customer rates and count.
    pub customer: bool,
    /// Category and brand rates.
    pub group: bool,
    /// Rates and log-odds times log counts.
    pub interactions: bool,
    /// The customer's body-feature design row (misfit propensity by body).
    pub body: bool,
    /// Hinge functions of the prior and choice gaps, and the gaps times the customer's
    /// log count.
    pub shape: bool,
    /// Where the customer's body-predicted size falls among the product's small / fit /
    /// large renters' (a linear discriminant on per-outcome means).
    pub centroid: bool,
    /// The label's position (hinges) and whether it is the product's smallest / largest
    /// size (no smaller / larger size to change to).
    pub label: bool,
}

impl FeatureSet {
    /// Every group on except the renter-body centroids (which did not help held out).
    pub const FULL: FeatureSet = FeatureSet {
        gap: true,
        product: true,
        article_size: true,
        customer: true,
        group: true,
        interactions: true,
        body: true,
        shape: true,
        centroid: false,
        label: true,
    };

    /// Every group on except the count interactions.
    pub const NO_INTERACTIONS: FeatureSet = FeatureSet {
        interactions: false,
        ..FeatureSet::FULL
    };
}

/// The feature map of a fitted stage: what to compute and how to standardise it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Feature groups.
    pub set: FeatureSet,
    /// Rate smoothing.
    pub smoothing: Smoothing,
    /// Knots of the hinge functions `max(0, gap − k)` (size steps).
    pub gap_knots: Vec<f64>,
    /// Length of the body-feature row (the structural feature model's design row less
    /// its intercept).
    pub body_dim: usize,
    /// Knots of the hinge functions of the label's position (training quantiles).
    pub label_knots: Vec<f64>,
    /// Mean of each raw feature (intercept: 0).
    pub mean: Vec<f64>,
    /// Standard deviation of each raw feature (intercept: 1).
    pub scale: Vec<f64>,
    /// Smallest standardised training value (prediction inputs are clamped to it).
    pub lo: Vec<f64>,
    /// Largest standardised training value.
    pub hi: Vec<f64>,
}

/// One cross-validation result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CvPoint {
    /// Feature set.
    pub set: FeatureSet,
    /// Ridge penalty (on the sum of per-event log losses).
    pub lambda: f64,
    /// Held-out log loss per event.
    pub log_loss: f64,
    /// Held-out average one-vs-rest AUC (pooled over folds).
    pub auc_avg: f64,
}

/// A fitted second stage: plain data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    /// Feature map.
    pub spec: FeatureSpec,
    /// Training counts.
    pub tables: StackTables,
    /// Coefficients: the small-vs-fit logit's (one per feature), then the large-vs-fit's.
    pub coef: Vec<f64>,
    /// Chosen ridge penalty.
    pub lambda: f64,
    /// Cross-validation results that chose it.
    pub cv: Vec<CvPoint>,
}

/// Raw inputs of the second stage for one event.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StackInput<'a> {
    /// Structural probabilities `[small, fit, large]`.
    pub probs: [f64; 3],
    /// Mean gap customer − article (size steps).
    pub gap: f64,
    /// Standard deviation of the gap.
    pub gap_sd: f64,
    /// Gap from the customer's prior (body features or population) alone.
    pub prior_gap: f64,
    /// Gap from the size chosen alone (its choice centre − the article's true size).
    pub choice_gap: f64,
    /// Category counts.
    pub category: Option<[f64; 3]>,
    /// Brand counts.
    pub brand: Option<[f64; 3]>,
    /// Product counts.
    pub product: Option<[f64; 3]>,
    /// Product-in-size counts.
    pub article_size: Option<[f64; 3]>,
    /// Customer counts (their other events).
    pub customer: [f64; 3],
    /// The customer's body-predicted size relative to the label (common scale), `None`
    /// without body features.
    pub z: Option<f64>,
    /// The product's [`StackTables::product_body`] sums (its own event left out).
    pub centroid: Option<[f64; 6]>,
    /// The label's position on the common scale.
    pub label_pos: f64,
    /// The label is the product's smallest size seen in training.
    pub smallest: bool,
    /// The label is the product's largest size seen in training.
    pub largest: bool,
    /// The customer's body-feature design row without its intercept
    /// ([`super::features::FeatureModel::encode_into`]); empty when unknown.
    pub body: &'a [f64],
}

/// Hyper-parameters of the second stage's fit. Defaults are documented per field.
#[derive(Clone, Debug, PartialEq)]
pub struct StackParams {
    /// Cross-validation folds, by customer (default 5; 1 = no CV, first penalty and set).
    pub folds: usize,
    /// Candidate ridge penalties on the summed log loss (default 1, 10, 100, 1000).
    pub lambdas: Vec<f64>,
    /// Candidate feature sets (default full, full without interactions).
    pub sets: Vec<FeatureSet>,
    /// Rate smoothing (default [`Smoothing::default`]).
    pub smoothing: Smoothing,
    /// Hinge knots of the gap (default −1, 0, 1 size steps).
    pub gap_knots: Vec<f64>,
    /// Newton iterations at most (default 30).
    pub max_iter: usize,
    /// Take the event's own outcome out of the article's true size for training
    /// features (default true).
    pub loo_article: bool,
    /// How the customer leaves the event out (default [`CustomerLoo::OneStep`]).
    pub customer_loo: CustomerLoo,
    /// Cross-fitting folds: > 1 refits the structural model this many times, each on all
    /// but one random fold of the events, and gives the left-out fold's events the inputs
    /// that model gives new events (default 0: leave-one-out instead).
    pub cross_fit: usize,
    /// Parameters of the structural refits when cross-fitting (default
    /// [`FitParams::default`]).
    pub structural: FitParams,
}

impl Default for StackParams {
    fn default() -> Self {
        StackParams {
            folds: 5,
            lambdas: vec![1.0, 10.0, 100.0, 1000.0],
            sets: vec![FeatureSet::FULL, FeatureSet::NO_INTERACTIONS],
            smoothing: Smoothing::default(),
            gap_knots: vec![-1.0, 0.0, 1.0],
            max_iter: 30,
            loo_article: true,
            customer_loo: CustomerLoo::OneStep,
            cross_fit: 0,
            structural: FitParams::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// rates and features

/// Rates `(c + m·prior) / (n + m)` of counts `c` shrunk toward `prior` with `m` pseudo-events.
pub fn smooth(c: [f64; 3], prior: [f64; 3], m: f64) -> [f64; 3] {
    let n = c[0] + c[1] + c[2];
    let d = (n + m).max(1e-12);
    [
        (c[0] + m * prior[0]) / d,
        (c[1] + m * prior[1]) / d,
        (c[2] + m * prior[2]) / d,
    ]
}

/// Counts with one event of class `y` taken out (never below zero).
pub fn leave_one_out(c: Counts, y: usize) -> [f64; 3] {
    let mut out = [f64::from(c[0]), f64::from(c[1]), f64::from(c[2])];
    if let Some(x) = out.get_mut(y) {
        *x = (*x - 1.0).max(0.0);
    }
    out
}

fn as_f64(c: Counts) -> [f64; 3] {
    [f64::from(c[0]), f64::from(c[1]), f64::from(c[2])]
}

/// `[ln(r_small / r_fit), ln(r_large / r_fit), ln((r_small + r_large) / r_fit)]`.
fn log_ratios(r: [f64; 3]) -> [f64; 3] {
    let f = r[1].max(P_FLOOR);
    [
        (r[0].max(P_FLOOR) / f).ln(),
        (r[2].max(P_FLOOR) / f).ln(),
        ((r[0] + r[2]).max(P_FLOOR) / f).ln(),
    ]
}

fn total(c: &[f64; 3]) -> f64 {
    c[0] + c[1] + c[2]
}

/// Global rates from counts (add-one).
fn global_rates(g: [u64; 3]) -> [f64; 3] {
    let n = (g[0] + g[1] + g[2]) as f64 + 3.0;
    [
        (g[0] as f64 + 1.0) / n,
        (g[1] as f64 + 1.0) / n,
        (g[2] as f64 + 1.0) / n,
    ]
}

/// Number of raw features (including the intercept) of a feature set.
pub fn n_features(set: FeatureSet, knots: usize, body: usize, label_knots: usize) -> usize {
    let mut p = 3;
    if set.gap {
        p += 4 + knots;
    }
    if set.product {
        p += 4 + if set.interactions { 3 } else { 0 };
    }
    if set.article_size {
        p += 3 + if set.interactions { 2 } else { 0 };
    }
    if set.customer {
        p += 4 + if set.interactions { 5 } else { 0 };
    }
    if set.group {
        p += 4;
    }
    if set.body {
        p += body;
    }
    if set.shape {
        p += 2 * knots + 2;
    }
    if set.centroid {
        p += 3;
    }
    if set.label {
        p += 3 + label_knots;
    }
    p
}

/// The raw (unstandardised) feature row of one event; `out` is cleared first.
pub fn raw_features(spec: &FeatureSpec, priors: &GlobalPriors, x: &StackInput, out: &mut Vec<f64>) {
    let global = priors.rates;
    out.clear();
    let set = spec.set;
    let sm = &spec.smoothing;
    let p = x.probs;
    let pf = p[1].max(P_FLOOR);
    let ls = (p[0].max(P_FLOOR) / pf).ln();
    let ll = (p[2].max(P_FLOOR) / pf).ln();
    out.extend_from_slice(&[1.0, ls, ll]);
    if set.gap {
        out.push(x.gap);
        out.push(x.gap_sd);
        out.push(x.prior_gap);
        out.push(x.choice_gap);
        out.extend(spec.gap_knots.iter().map(|k| (x.gap - k).max(0.0)));
    }
    let cat = x
        .category
        .map_or(global, |c| smooth(c, global, sm.category));
    let brand = x.brand.map_or(cat, |c| smooth(c, cat, sm.brand));
    let prod_counts = x.product.unwrap_or([0.0; 3]);
    let prod = smooth(prod_counts, brand, sm.product);
    let as_counts = x.article_size.unwrap_or([0.0; 3]);
    let art = smooth(as_counts, prod, sm.article_size);
    let cust = smooth(x.customer, global, sm.customer);
    if set.product {
        let lr = log_ratios(prod);
        let ln = total(&prod_counts).ln_1p();
        out.extend_from_slice(&[lr[0], lr[1], lr[2], ln]);
        if set.interactions {
            out.extend_from_slice(&[lr[0] * ln, lr[1] * ln, lr[2] * ln]);
        }
    }
    if set.article_size {
        let lr = log_ratios(art);
        let base = log_ratios(prod);
        let (d0, d1) = (lr[0] - base[0], lr[1] - base[1]);
        let ln = total(&as_counts).ln_1p();
        out.extend_from_slice(&[d0, d1, ln]);
        if set.interactions {
            out.extend_from_slice(&[d0 * ln, d1 * ln]);
        }
    }
    if set.customer {
        let lr = log_ratios(cust);
        let ln = total(&x.customer).ln_1p();
        out.extend_from_slice(&[lr[0], lr[1], lr[2], ln]);
        if set.interactions {
            out.extend_from_slice(&[lr[0] * ln, lr[1] * ln, lr[2] * ln, ls * ln, ll * ln]);
        }
    }
    if set.group {
        let c = log_ratios(cat);
        let b = log_ratios(brand);
        out.extend_from_slice(&[c[0], c[1], b[0] - c[0], b[1] - c[1]]);
    }
    if set.body {
        let n = spec.body_dim;
        out.extend((0..n).map(|j| x.body.get(j).copied().unwrap_or(0.0)));
    }
    if set.shape {
        out.extend(spec.gap_knots.iter().map(|k| (x.prior_gap - k).max(0.0)));
        out.extend(spec.gap_knots.iter().map(|k| (x.choice_gap - k).max(0.0)));
        let ln = total(&x.customer).ln_1p();
        out.push(x.gap * ln);
        out.push(x.prior_gap * ln);
    }
    if set.centroid {
        match x.z {
            Some(z) => {
                let m = centroid_means(x.centroid, priors.centroid, sm.centroid);
                out.extend_from_slice(&[
                    z - m[1],
                    (z - 0.5 * (m[0] + m[1])) * (m[0] - m[1]),
                    (z - 0.5 * (m[2] + m[1])) * (m[2] - m[1]),
                ]);
            }
            None => out.extend_from_slice(&[0.0; 3]),
        }
    }
    if set.label {
        out.push(x.label_pos);
        out.extend(spec.label_knots.iter().map(|k| (x.label_pos - k).max(0.0)));
        out.push(f64::from(u8::from(x.smallest)));
        out.push(f64::from(u8::from(x.largest)));
    }
}

/// Smoothed per-outcome means of renters' `z`: `(S_k + m·μ_k) / (N_k + m)`.
pub fn centroid_means(sums: Option<[f64; 6]>, global: [f64; 3], m: f64) -> [f64; 3] {
    let s = sums.unwrap_or([0.0; 6]);
    let mut out = [0.0; 3];
    for k in 0..3 {
        out[k] = (s[k] + m * global[k]) / (s[3 + k] + m).max(1e-12);
    }
    out
}

/// What the features shrink toward: global outcome rates and per-outcome mean `z`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GlobalPriors {
    /// Outcome rates.
    pub rates: [f64; 3],
    /// Per-outcome mean body-predicted size relative to the label.
    pub centroid: [f64; 3],
}

impl StackTables {
    /// The global priors of these tables.
    pub fn priors(&self) -> GlobalPriors {
        let b = &self.body_global;
        let mean = |k: usize| if b[3 + k] > 0.0 { b[k] / b[3 + k] } else { 0.0 };
        GlobalPriors {
            rates: global_rates(self.global),
            centroid: [mean(0), mean(1), mean(2)],
        }
    }
}

/// Softmax probabilities `[small, fit, large]` of the two logits (fit is the reference).
#[inline]
pub fn softmax2(es: f64, el: f64) -> [f64; 3] {
    let m = es.max(el).max(0.0);
    let (a, b, c) = ((es - m).exp(), (-m).exp(), (el - m).exp());
    let s = a + b + c;
    [a / s, b / s, c / s]
}

impl Stack {
    /// Number of features per logit.
    pub fn dim(&self) -> usize {
        self.spec.mean.len()
    }

    /// Second-stage probabilities for raw inputs.
    pub fn predict(&self, x: &StackInput) -> [f64; 3] {
        let mut row = Vec::with_capacity(self.dim());
        raw_features(&self.spec, &self.tables.priors(), x, &mut row);
        let p = self.dim();
        if row.len() != p || self.coef.len() != 2 * p {
            return x.probs;
        }
        let (mut es, mut el) = (0.0, 0.0);
        for (j, v) in row.iter().enumerate() {
            let z = ((v - self.spec.mean[j]) / self.spec.scale[j])
                .clamp(self.spec.lo[j], self.spec.hi[j]);
            es += self.coef[j] * z;
            el += self.coef[p + j] * z;
        }
        let out = softmax2(es, el);
        if out.iter().all(|v| v.is_finite()) {
            out
        } else {
            x.probs
        }
    }
}

// ---------------------------------------------------------------------------------------
// model hooks

/// The standard outcome vocabulary, built once.
fn outcomes() -> &'static OutcomeMap {
    static MAP: std::sync::OnceLock<OutcomeMap> = std::sync::OnceLock::new();
    MAP.get_or_init(OutcomeMap::standard)
}

fn count_at(table: &[Counts], i: u32) -> Option<[f64; 3]> {
    if i == NONE {
        return None;
    }
    table.get(i as usize).copied().map(as_f64)
}

/// What the second stage knows about a customer: outcome counts of their (other) events
/// and their body-feature row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackCustomer {
    /// Outcome counts `[small, fit, large]`.
    pub counts: [f64; 3],
    /// Body-feature design row without the intercept (empty when the model has no stage).
    pub body: Vec<f64>,
    /// Whether any body feature is known.
    pub has_body: bool,
}

/// [`StackCustomer`]s of an event table's customers.
#[derive(Clone, Debug, Default)]
pub struct StackCustomers {
    list: Vec<StackCustomer>,
    unknown: StackCustomer,
}

impl StackCustomers {
    /// Customer `c` of the event table (an empty view when out of range).
    pub fn of(&self, c: u32) -> &StackCustomer {
        self.list.get(c as usize).unwrap_or(&self.unknown)
    }
}

impl Model {
    /// Training outcome counts of model customer `c` (zeros for [`NONE`], unknown
    /// customers, or a model without a second stage).
    pub fn customer_counts(&self, c: u32) -> [f64; 3] {
        self.stack
            .as_ref()
            .and_then(|s| count_at(&s.tables.customer, c))
            .unwrap_or([0.0; 3])
    }

    /// Body-feature row of feature values (the feature model's design row less its
    /// intercept); empty when the model has no second stage.
    pub fn body_row(&self, values: &FeatureValues<'_>) -> Vec<f64> {
        if self.stack.is_none() {
            return Vec::new();
        }
        let mut row = vec![0.0; self.features.dim()];
        self.features.encode_into(values, &mut row);
        row.split_off(1.min(row.len()))
    }

    /// The label's position on the common scale (size steps).
    pub fn label_position(&self, a: &ArticleRef) -> f64 {
        a.pos / self.scale(a.system) + self.align(a.system)
    }

    /// Index of the article's product-in-size in `article_sizes`, [`NONE`] when unknown.
    pub fn article_size_index(&self, a: &ArticleRef) -> u32 {
        if a.product == NONE || a.label == NONE {
            return NONE;
        }
        self.index
            .article_size
            .get(&(a.product, a.label))
            .copied()
            .unwrap_or(NONE)
    }

    /// Whether the label is the product's (smallest, largest) size seen in training
    /// (both false for unknown products or labels).
    pub fn size_extreme(&self, a: &ArticleRef) -> (bool, bool) {
        if a.product == NONE || a.label == NONE {
            return (false, false);
        }
        match self.product_info.get(a.product as usize) {
            Some(info) if info.sizes.len() > 1 => (
                info.sizes.first() == Some(&a.label),
                info.sizes.last() == Some(&a.label),
            ),
            _ => (false, false),
        }
    }

    /// The customer's prior size from their body row (the feature model's prediction).
    pub fn prior_mean(&self, body: &[f64]) -> f64 {
        let c = &self.features.coef;
        c.first().copied().unwrap_or(0.0)
            + c.iter().skip(1).zip(body).map(|(a, b)| a * b).sum::<f64>()
    }

    /// The second stage's view of every customer of an event table (indexed like
    /// `events.customers`): training counts of known customers and body rows.
    pub fn stack_customers(&self, events: &Events, r: &Resolved) -> StackCustomers {
        if self.stack.is_none() {
            return StackCustomers::default();
        }
        let num: Vec<Option<&crate::data::schema::NumericFeature>> = self
            .features
            .numeric
            .iter()
            .map(|f| events.features.numeric.iter().find(|c| c.name == f.name))
            .collect();
        let cat: Vec<Option<&crate::data::schema::CategoricalFeature>> = self
            .features
            .categorical
            .iter()
            .map(|f| {
                events
                    .features
                    .categorical
                    .iter()
                    .find(|c| c.name == f.name)
            })
            .collect();
        let list = (0..events.customers.len())
            .into_par_iter()
            .map(|c| {
                let values = FeatureValues {
                    numeric: num
                        .iter()
                        .map(|f| {
                            f.and_then(|f| f.values.get(c))
                                .map_or(f64::NAN, |&v| f64::from(v))
                        })
                        .collect(),
                    categorical: cat
                        .iter()
                        .map(|f| {
                            let f = (*f)?;
                            let code = *f.codes.get(c)?;
                            f.levels.get(code as usize).map(String::as_str)
                        })
                        .collect(),
                };
                StackCustomer {
                    counts: self.customer_counts(r.customer.get(c).copied().unwrap_or(NONE)),
                    body: self.body_row(&values),
                    has_body: FeatureModel::any_present(&values),
                }
            })
            .collect();
        StackCustomers {
            list,
            unknown: StackCustomer::default(),
        }
    }

    /// The second stage's view of a shopper: a known customer's training counts plus the
    /// small / fit / large outcomes of the request's history, and their body row.
    pub fn shopper_stack(&self, shopper: &Shopper) -> StackCustomer {
        if self.stack.is_none() {
            return StackCustomer::default();
        }
        let mut counts = match &shopper.customer_id {
            Some(id) => self.customer_counts(self.index.customer.get(id).copied().unwrap_or(NONE)),
            None => [0.0; 3],
        };
        for h in &shopper.history {
            if let Some(k) = outcomes().classify(&h.outcome).and_then(|o| o.class()) {
                counts[k] += 1.0;
            }
        }
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
        StackCustomer {
            counts,
            body: self.body_row(&values),
            has_body: FeatureModel::any_present(&values),
        }
    }

    /// The final probabilities `[small, fit, large]` of a purchase-time size belief in an
    /// article for a customer (outcome counts and body row): the structural
    /// probabilities ([`Model::probs_article`]), refined by the second stage when the
    /// model has one.
    pub fn probs_final(
        &self,
        belief: SizeBelief,
        a: &ArticleRef,
        customer: &StackCustomer,
    ) -> [f64; 3] {
        let Some(stack) = &self.stack else {
            return self.probs_article(belief, a);
        };
        stack.predict(&self.stack_input(&stack.tables, (belief, a), customer))
    }

    /// The second stage's raw inputs for a purchase-time belief in an article, read from
    /// `tables`.
    pub fn stack_input<'a>(
        &self,
        tables: &StackTables,
        (belief, a): (SizeBelief, &ArticleRef),
        customer: &'a StackCustomer,
    ) -> StackInput<'a> {
        let t = self.true_size(a);
        let var = belief.var + self.article_var(a);
        let structural = self.probs_for(
            SizeBelief {
                mean: belief.mean,
                var,
            },
            t,
            self.band(a),
        );
        let art = self.article_size_index(a);
        StackInput {
            probs: structural,
            gap: belief.mean - t,
            gap_sd: var.sqrt(),
            prior_gap: self.prior_mean(&customer.body) - t,
            choice_gap: self.choice_centre(a) - t,
            category: count_at(&tables.category, a.category),
            brand: count_at(&tables.brand, a.brand),
            product: count_at(&tables.product, a.product),
            article_size: count_at(&tables.article_size, art),
            customer: customer.counts,
            label_pos: self.label_position(a),
            smallest: self.size_extreme(a).0,
            largest: self.size_extreme(a).1,
            z: customer
                .has_body
                .then(|| self.prior_mean(&customer.body) - self.label_position(a)),
            centroid: (a.product != NONE)
                .then(|| tables.product_body.get(a.product as usize).copied())
                .flatten(),
            body: &customer.body,
        }
    }
}

// ---------------------------------------------------------------------------------------
// training inputs

/// One training event's model lookups.
#[derive(Clone, Copy, Debug)]
struct TrainEvent {
    article: ArticleRef,
    /// Model article-size index or NONE.
    art: u32,
    /// Model customer index or NONE.
    customer: u32,
    class: usize,
    /// Stored state of the customer (their prior when the model has no customer table).
    state: CustomerState,
    /// The customer's prior (body features or population).
    prior: CustomerState,
    /// Body-predicted size relative to the label, when the customer has body features.
    z: Option<f64>,
}

/// Count the training outcomes into tables aligned with the model.
fn count_tables(model: &Model, evs: &[TrainEvent]) -> StackTables {
    let mut t = StackTables {
        global: [0; 3],
        category: vec![[0; 3]; model.categories.len()],
        brand: vec![[0; 3]; model.brands.len()],
        product: vec![[0; 3]; model.products.len()],
        article_size: vec![[0; 3]; model.article_sizes.len()],
        customer: vec![[0; 3]; model.customers.ids.len()],
        product_body: vec![[0.0; 6]; model.products.len()],
        body_global: [0.0; 6],
    };
    let bump = |table: &mut Vec<Counts>, i: u32, y: usize| {
        if i != NONE {
            if let Some(c) = table.get_mut(i as usize) {
                c[y] = c[y].saturating_add(1);
            }
        }
    };
    for e in evs {
        t.global[e.class] += 1;
        bump(&mut t.category, e.article.category, e.class);
        bump(&mut t.brand, e.article.brand, e.class);
        bump(&mut t.product, e.article.product, e.class);
        bump(&mut t.article_size, e.art, e.class);
        bump(&mut t.customer, e.customer, e.class);
        if let Some(z) = e.z {
            t.body_global[e.class] += z;
            t.body_global[3 + e.class] += 1.0;
            if let Some(b) = t.product_body.get_mut(e.article.product as usize) {
                b[e.class] += z;
                b[3 + e.class] += 1.0;
            }
        }
    }
    t
}

fn loo_at(table: &[Counts], i: u32, y: usize) -> Option<[f64; 3]> {
    if i == NONE {
        return None;
    }
    table.get(i as usize).map(|&c| leave_one_out(c, y))
}

/// How a training event's customer state leaves the event out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CustomerLoo {
    /// Re-solve the customer from their prior and their other events.
    Exact,
    /// One Newton step back from the stored posterior (default; what the fit's
    /// leave-one-out pass does, and closer to the stored posterior new events see).
    OneStep,
}

/// Pass 1 of the training inputs for one event: the customer's leave-one-out belief at
/// the purchase and the event's derivatives with respect to the article's true size and
/// band at that belief.
#[derive(Clone, Copy, Debug)]
struct Pre {
    belief: SizeBelief,
    prior_s: f64,
    xc: f64,
    t: f64,
    eta: f64,
    gt: f64,
    ht: f64,
    ge: f64,
    he: f64,
}

/// The customer at each of their training events without it (in order).
fn customer_pass(model: &Model, evs: &[TrainEvent], opts: &StackParams) -> Vec<Pre> {
    let g = &model.globals;
    let Some(first) = evs.first() else {
        return Vec::new();
    };
    let st = first.state;
    let known = first.customer != NONE && model.known_customer(first.customer as usize).is_some();
    let hist_prec = 1.0 / (g.sd_choice * g.sd_choice + g.sd_drift * g.sd_drift).max(1e-9);
    let (hss, hsu, huu) = inv2(st.ss, st.su, st.uu);
    let terms: Vec<EvidenceTerm> = evs
        .iter()
        .map(|e| model.evidence(&e.article, Some(e.class), true))
        .collect();
    let mut others: Vec<EvidenceTerm> = Vec::with_capacity(terms.len());
    evs.iter()
        .enumerate()
        .map(|(k, e)| {
            let a = &e.article;
            let t = model.true_size(a);
            let eta = model.band(a);
            let xc = model.choice_centre(a);
            let loo = if known && opts.customer_loo == CustomerLoo::Exact {
                // the customer from their prior and other events
                others.clear();
                others.extend(
                    terms
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != k)
                        .map(|x| *x.1),
                );
                model.posterior(e.prior, &others)
            } else if known {
                // one Newton step back from the stored posterior
                let (ca, cb) = cut_points(g, st.s + st.u - t, eta, 1.0);
                let d = event_deriv(ca, cb, e.class);
                let (go, ho) = (d.grad(-g.w, -g.w), d.info(-g.w, -g.w));
                let (ls, lu) = ((hss - ho - hist_prec).max(1e-6), (huu - ho).max(1e-6));
                let lim = 0.999 * (ls * lu).sqrt();
                let lsu = (hsu - ho).clamp(-lim, lim);
                let (css, csu, cuu) = inv2(ls, lsu, lu);
                let gs = go + (st.s - xc) * hist_prec;
                CustomerState {
                    s: st.s + css * gs + csu * go,
                    u: st.u + csu * gs + cuu * go,
                    ss: css,
                    su: csu,
                    uu: cuu,
                }
            } else {
                st
            };
            let belief = model.at_purchase(&loo, Some(xc));
            // derivatives as the fit's article pass takes them (κ from the customer's variance)
            let kappa = uncertainty_scale(g.w, belief.var);
            let (ca, cb) = cut_points(g, belief.mean - t, eta, kappa);
            let d = event_deriv(ca, cb, e.class);
            let dt = (kappa * g.w, kappa * g.w);
            let half = kappa * g.h * eta.exp();
            let de = (half, -half);
            Pre {
                belief,
                prior_s: e.prior.s,
                xc,
                t,
                eta,
                gt: d.grad(dt.0, dt.1),
                ht: d.info(dt.0, dt.1),
                ge: d.grad(de.0, de.1),
                he: d.info(de.0, de.1),
            }
        })
        .collect()
}

/// Variance of the article's true size through which one of its events moved it: the
/// product-in-size offset's, plus the product offset's shrunk by the share the
/// product-in-size level passes on (`se_as² / sd_as²`). Falls back on the article's
/// total variance when the product-in-size is unknown.
fn influence_var(model: &Model, a: &ArticleRef, art: u32) -> f64 {
    let v_as = model.globals.sd_article_size.powi(2).max(1e-12);
    let (Some(x), Some(p)) = (
        model.article_sizes.get(art as usize),
        model.products.get(a.product as usize),
    ) else {
        return model.article_var(a);
    };
    let se_as2 = x.offset.se * x.offset.se;
    let pass = (se_as2 / v_as).min(1.0);
    se_as2 + pass * pass * p.offset.se * p.offset.se
}

/// Most of its variance one event may remove from an article (keeps the step stable).
const MAX_SHARE: f64 = 0.5;

/// Pass 2: the event's inputs without its own outcome in the article's size and band or in
/// the counts.
fn event_input(
    model: &Model,
    tables: &StackTables,
    e: &TrainEvent,
    x: &Pre,
    band_var: f64,
) -> StackInput<'static> {
    let a = &e.article;
    let y = e.class;
    let mut t = x.t;
    let mut eta = x.eta;
    let mut var = x.belief.var + model.article_var(a);
    let v = influence_var(model, a, e.art);
    let r = (v * x.ht).min(MAX_SHARE);
    t += v * x.gt / (1.0 - r);
    var += v / (1.0 - r) - v;
    if band_var > 0.0 {
        let r = (band_var * x.he).min(MAX_SHARE);
        eta += band_var * x.ge / (1.0 - r);
    }
    let g = &model.globals;
    let (ca, cb) = cut_points(g, x.belief.mean - t, eta, uncertainty_scale(g.w, var));
    StackInput {
        probs: probs(ca, cb),
        gap: x.belief.mean - t,
        gap_sd: var.sqrt(),
        prior_gap: x.prior_s - t,
        choice_gap: x.xc - t,
        category: loo_at(&tables.category, a.category, y),
        brand: loo_at(&tables.brand, a.brand, y),
        product: loo_at(&tables.product, a.product, y),
        article_size: loo_at(&tables.article_size, e.art, y),
        customer: loo_at(&tables.customer, e.customer, y).unwrap_or([0.0; 3]),
        label_pos: model.label_position(a),
        smallest: model.size_extreme(a).0,
        largest: model.size_extreme(a).1,
        z: e.z,
        centroid: tables.product_body.get(a.product as usize).map(|b| {
            let mut b = *b;
            if let Some(z) = e.z {
                b[y] -= z;
                b[3 + y] = (b[3 + y] - 1.0).max(0.0);
            }
            b
        }),
        body: &[],
    }
}

/// Out-of-sample inputs of every training event with a small / fit / large outcome.
pub struct TrainingInputs {
    /// Tables counted from the events.
    pub tables: StackTables,
    /// Inputs per event.
    pub inputs: Vec<StackInput<'static>>,
    /// Class per event.
    pub classes: Vec<u8>,
    /// Cross-validation group per event (hash of the customer id).
    pub group: Vec<u64>,
    /// Body rows of the events' customers, `body_dim` per events customer.
    pub bodies: Vec<f64>,
    /// Length of a body row.
    pub body_dim: usize,
    /// Events customer per event (row of `bodies`).
    pub customer: Vec<u32>,
}

/// Body rows of every customer of `events` straight from the training columns (the
/// encoder's own level codes), flat; and whether each has any body feature.
fn body_rows(model: &Model, events: &Events) -> (Vec<f64>, Vec<bool>, usize) {
    let dim = model.features.dim();
    let body_dim = dim.saturating_sub(1);
    let mut bodies = vec![0.0; events.customers.len() * body_dim];
    let mut has_body = vec![false; events.customers.len()];
    if body_dim > 0 {
        bodies
            .par_chunks_mut(body_dim)
            .zip(has_body.par_iter_mut())
            .enumerate()
            .for_each(|(c, (out, has))| {
                let mut row = vec![0.0; dim];
                *has = model
                    .features
                    .encode_training(&events.features, c, &mut row);
                out.copy_from_slice(&row[1..]);
            });
    }
    (bodies, has_body, body_dim)
}

/// The small / fit / large events of `events` resolved against `model`, grouped by
/// customer (events customer index first).
fn train_events(model: &Model, events: &Events, has_body: &[bool]) -> Vec<(u32, TrainEvent)> {
    let r: Resolved = model.resolve(events);
    // customers' priors: resolved against a model that knows no customers
    let bare = Model {
        globals: model.globals.clone(),
        features: model.features.clone(),
        ..Model::default()
    };
    let priors = bare.resolve(events).belief;
    let opts = ScoreOptions::default();
    let mut order: Vec<usize> = (0..events.len())
        .filter(|&i| events.outcome[i].class().is_some())
        .collect();
    order.sort_by_key(|&i| (events.customer[i], i));
    order
        .iter()
        .filter_map(|&i| {
            let class = events.outcome[i].class()?;
            let (article, _) = model.event_view(events, &r, i, &opts)?;
            let ec = events.customer[i];
            let customer = r.customer.get(ec as usize).copied().unwrap_or(NONE);
            let state = *r.belief.get(ec as usize)?;
            let prior = *priors.get(ec as usize)?;
            Some((
                ec,
                TrainEvent {
                    article,
                    art: model.article_size_index(&article),
                    customer,
                    class,
                    state,
                    prior,
                    z: has_body
                        .get(ec as usize)
                        .copied()
                        .unwrap_or(false)
                        .then(|| prior.s - model.label_position(&article)),
                },
            ))
        })
        .collect()
}

/// Hash of a customer id (cross-validation groups).
fn customer_hash(events: &Events, ec: u32) -> u64 {
    events
        .customers
        .names
        .get(ec as usize)
        .map_or(u64::from(ec), |n| super::artifact::fnv1a(n.as_bytes()))
}

/// The out-of-sample inputs of the training events `events` (the events the
/// structural `model` was fitted on): cross-fitted when `params.cross_fit > 1`,
/// leave-one-out otherwise.
pub fn training_inputs(
    model: &Model,
    events: &Events,
    params: &StackParams,
) -> Result<TrainingInputs, ModelError> {
    if params.cross_fit > 1 {
        cross_fit_inputs(model, events, params)
    } else {
        Ok(loo_inputs(model, events, params))
    }
}

/// Events with only the rows where `keep` is true (dictionaries and customer features
/// unchanged, so indices stay valid).
fn subset(events: &Events, keep: &[bool]) -> Events {
    fn pick<T: Copy>(v: &[T], keep: &[bool]) -> Vec<T> {
        v.iter().zip(keep).filter(|x| *x.1).map(|x| *x.0).collect()
    }
    Events {
        customer: pick(&events.customer, keep),
        product: pick(&events.product, keep),
        brand: pick(&events.brand, keep),
        category: pick(&events.category, keep),
        size: pick(&events.size, keep),
        outcome: pick(&events.outcome, keep),
        has_outcome: events.has_outcome,
        timestamp: events.timestamp.as_ref().map(|t| pick(t, keep)),
        row: pick(&events.row, keep),
        customers: events.customers.clone(),
        products: events.products.clone(),
        brands: events.brands.clone(),
        categories: events.categories.clone(),
        sizes: events.sizes.clone(),
        features: events.features.clone(),
    }
}

/// A stack input that no longer borrows the customer's body row.
fn detach(x: &StackInput<'_>) -> StackInput<'static> {
    StackInput {
        probs: x.probs,
        gap: x.gap,
        gap_sd: x.gap_sd,
        prior_gap: x.prior_gap,
        choice_gap: x.choice_gap,
        category: x.category,
        brand: x.brand,
        product: x.product,
        article_size: x.article_size,
        customer: x.customer,
        label_pos: x.label_pos,
        smallest: x.smallest,
        largest: x.largest,
        z: x.z,
        centroid: x.centroid,
        body: &[],
    }
}

/// Cross-fitted inputs: the events are split into `cross_fit` random folds; for each,
/// the structural model is refitted on the other folds and the fold's events get exactly
/// the inputs a new event would get from that model and its counts.
fn cross_fit_inputs(
    model: &Model,
    events: &Events,
    params: &StackParams,
) -> Result<TrainingInputs, ModelError> {
    let k = params.cross_fit as u64;
    let (bodies, has_body, body_dim) = body_rows(model, events);
    let all = train_events(model, events, &has_body);
    let plain: Vec<TrainEvent> = all.iter().map(|x| x.1).collect();
    let tables = count_tables(model, &plain);
    let fold: Vec<u64> = (0..events.len())
        .map(|i| {
            let r = events.row.get(i).copied().unwrap_or(i as u64);
            super::artifact::fnv1a(&r.to_le_bytes()) % k
        })
        .collect();
    let mut out = TrainingInputs {
        tables,
        inputs: Vec::new(),
        classes: Vec::new(),
        group: Vec::new(),
        bodies,
        body_dim,
        customer: Vec::new(),
    };
    let opts = ScoreOptions::default();
    for f in 0..k {
        let train_k = subset(events, &fold.iter().map(|&x| x != f).collect::<Vec<_>>());
        let held = subset(events, &fold.iter().map(|&x| x == f).collect::<Vec<_>>());
        let model_k = params.structural.fit(&train_k)?;
        let evs_k: Vec<TrainEvent> = train_events(&model_k, &train_k, &has_body)
            .into_iter()
            .map(|x| x.1)
            .collect();
        let tables_k = count_tables(&model_k, &evs_k);
        let r = model_k.resolve(&held);
        let rows: Vec<(StackInput<'static>, u8, u32)> = (0..held.len())
            .into_par_iter()
            .with_min_len(1024)
            .filter_map(|i| {
                let class = held.outcome[i].class()?;
                let (a, belief) = model_k.event_view(&held, &r, i, &opts)?;
                let ec = held.customer[i];
                let lo = ec as usize * body_dim;
                let sc = StackCustomer {
                    counts: count_at(
                        &tables_k.customer,
                        r.customer.get(ec as usize).copied().unwrap_or(NONE),
                    )
                    .unwrap_or([0.0; 3]),
                    body: out.bodies.get(lo..lo + body_dim).unwrap_or(&[]).to_vec(),
                    has_body: has_body.get(ec as usize).copied().unwrap_or(false),
                };
                let x = model_k.stack_input(&tables_k, (belief, &a), &sc);
                Some((detach(&x), class as u8, ec))
            })
            .collect();
        for (x, y, ec) in rows {
            out.inputs.push(x);
            out.classes.push(y);
            out.group.push(customer_hash(events, ec));
            out.customer.push(ec);
        }
    }
    Ok(out)
}

/// Leave-one-out inputs (see the module documentation).
fn loo_inputs(model: &Model, events: &Events, params: &StackParams) -> TrainingInputs {
    let (bodies, has_body, body_dim) = body_rows(model, events);
    let evs = train_events(model, events, &has_body);
    let plain: Vec<TrainEvent> = evs.iter().map(|x| x.1).collect();
    let tables = count_tables(model, &plain);
    // customer groups
    let mut bounds = Vec::new();
    let mut lo = 0;
    for k in 1..=evs.len() {
        if k == evs.len() || evs[k].0 != evs[lo].0 {
            bounds.push((lo, k));
            lo = k;
        }
    }
    let pre: Vec<Pre> = bounds
        .par_iter()
        .map(|&(lo, hi)| customer_pass(model, &plain[lo..hi], params))
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect();
    // products' band information (the fit learns a band per product when any is non-zero)
    let learned_bands = model.products.iter().any(|p| p.eta != 0.0);
    let mut band_info = vec![0.0; model.products.len()];
    for (e, x) in plain.iter().zip(&pre) {
        if let Some(h) = band_info.get_mut(e.article.product as usize) {
            *h += x.he;
        }
    }
    let prior_prec = 1.0 / model.globals.sd_eta_product.powi(2).max(1e-12);
    let inputs: Vec<StackInput<'static>> = plain
        .par_iter()
        .zip(pre.par_iter())
        .map(|(e, x)| {
            let (t_loo, band_var) = match (params.loo_article, learned_bands) {
                (false, _) => (false, 0.0),
                (true, false) => (true, 0.0),
                (true, true) => (
                    true,
                    band_info
                        .get(e.article.product as usize)
                        .map_or(0.0, |h| 1.0 / (h + prior_prec)),
                ),
            };
            if t_loo {
                event_input(model, &tables, e, x, band_var)
            } else {
                let no_loo = Pre {
                    gt: 0.0,
                    ge: 0.0,
                    ..*x
                };
                event_input(model, &tables, e, &no_loo, 0.0)
            }
        })
        .collect();
    let group = evs
        .iter()
        .map(|(ec, _)| customer_hash(events, *ec))
        .collect();
    TrainingInputs {
        tables,
        inputs,
        classes: plain.iter().map(|e| e.class as u8).collect(),
        group,
        bodies,
        body_dim,
        customer: evs.iter().map(|(ec, _)| *ec).collect(),
    }
}

// ---------------------------------------------------------------------------------------
// multinomial logistic regression

/// A standardised design matrix with classes.
pub struct Design<'a> {
    /// Rows, row-major, `p` per row.
    pub x: &'a [f64],
    /// Class per row (0 small, 1 fit, 2 large).
    pub y: &'a [u8],
    /// Features per row.
    pub p: usize,
}

/// Which rows a fit uses and how it is penalised.
#[derive(Clone, Copy, Debug)]
pub struct FitSpec<'a> {
    /// Ridge penalty on the summed log loss (intercepts unpenalised).
    pub lambda: f64,
    /// Rows whose fold equals `.1` are left out (`.0` is the fold per row).
    pub exclude: Option<(&'a [u8], u8)>,
    /// Newton iterations at most.
    pub max_iter: usize,
}

/// Sums over rows: penalised-free log loss, gradient (2p) and Hessian (2p × 2p, row-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Sums {
    /// Summed negative log-likelihood.
    pub nll: f64,
    /// Gradient: small logit's block, then large logit's.
    pub grad: Vec<f64>,
    /// Hessian.
    pub hess: Vec<f64>,
    /// Rows summed.
    pub n: f64,
}

impl Sums {
    fn new(p: usize, hessian: bool) -> Sums {
        Sums {
            nll: 0.0,
            grad: vec![0.0; 2 * p],
            hess: vec![0.0; if hessian { 4 * p * p } else { 0 }],
            n: 0.0,
        }
    }

    fn merge(&mut self, o: &Sums) {
        self.nll += o.nll;
        self.n += o.n;
        self.grad.iter_mut().zip(&o.grad).for_each(|(a, b)| *a += b);
        self.hess.iter_mut().zip(&o.hess).for_each(|(a, b)| *a += b);
    }
}

fn included(spec: &FitSpec<'_>, i: usize) -> bool {
    match spec.exclude {
        Some((folds, f)) => folds.get(i).is_some_and(|&x| x != f),
        None => true,
    }
}

fn logits(row: &[f64], beta: &[f64], p: usize) -> (f64, f64) {
    let mut es = 0.0;
    let mut el = 0.0;
    for j in 0..p {
        es += beta[j] * row[j];
        el += beta[p + j] * row[j];
    }
    (es, el)
}

/// Log loss, gradient and Hessian of the multinomial logit (fit as reference) summed over
/// the included rows, in fixed chunks merged in order. `hessian = false` skips it.
pub fn sums(d: &Design<'_>, spec: &FitSpec<'_>, beta: &[f64], hessian: bool) -> Sums {
    let p = d.p;
    let n = d.y.len();
    let chunks: Vec<(usize, usize)> = (0..n)
        .step_by(CHUNK)
        .map(|lo| (lo, (lo + CHUNK).min(n)))
        .collect();
    let parts: Vec<Sums> = chunks
        .par_iter()
        .map(|&(lo, hi)| {
            let mut s = Sums::new(p, hessian);
            let mut xx = vec![0.0; if hessian { p * p } else { 0 }];
            let mut acc_ss = vec![0.0; if hessian { p * p } else { 0 }];
            let mut acc_sl = acc_ss.clone();
            let mut acc_ll = acc_ss.clone();
            for i in lo..hi {
                if !included(spec, i) {
                    continue;
                }
                let row = &d.x[i * p..(i + 1) * p];
                let (es, el) = logits(row, beta, p);
                let pr = softmax2(es, el);
                let y = usize::from(d.y[i]);
                s.nll -= pr[y].max(1e-300).ln();
                s.n += 1.0;
                let rs = pr[0] - f64::from(u8::from(y == 0));
                let rl = pr[2] - f64::from(u8::from(y == 2));
                for j in 0..p {
                    s.grad[j] += rs * row[j];
                    s.grad[p + j] += rl * row[j];
                }
                if hessian {
                    let wss = pr[0] * (1.0 - pr[0]);
                    let wsl = -pr[0] * pr[2];
                    let wll = pr[2] * (1.0 - pr[2]);
                    for j in 0..p {
                        let xj = row[j];
                        for k in j..p {
                            xx[j * p + k] = xj * row[k];
                        }
                    }
                    for j in 0..p {
                        for k in j..p {
                            let v = xx[j * p + k];
                            acc_ss[j * p + k] += wss * v;
                            acc_sl[j * p + k] += wsl * v;
                            acc_ll[j * p + k] += wll * v;
                        }
                    }
                }
            }
            if hessian {
                let q = 2 * p;
                for j in 0..p {
                    for k in j..p {
                        let (a, b, c) = (acc_ss[j * p + k], acc_sl[j * p + k], acc_ll[j * p + k]);
                        for (r, cidx, v) in [
                            (j, k, a),
                            (k, j, a),
                            (p + j, p + k, c),
                            (p + k, p + j, c),
                            (j, p + k, b),
                            (p + k, j, b),
                            (k, p + j, b),
                            (p + j, k, b),
                        ] {
                            s.hess[r * q + cidx] = v;
                        }
                    }
                }
            }
            s
        })
        .collect();
    let mut total = Sums::new(p, hessian);
    for part in &parts {
        total.merge(part);
    }
    total
}

fn penalised(s: &Sums, beta: &[f64], lambda: f64, p: usize) -> f64 {
    let mut pen = 0.0;
    for (j, b) in beta.iter().enumerate() {
        if j % p != 0 {
            pen += b * b;
        }
    }
    s.nll + 0.5 * lambda * pen
}

/// Penalised Newton fit of the two logits from `start` (length 2p); deterministic.
pub fn fit_logit(
    d: &Design<'_>,
    spec: &FitSpec<'_>,
    start: &[f64],
) -> Result<Vec<f64>, ModelError> {
    let p = d.p;
    let q = 2 * p;
    let mut beta = start.to_vec();
    if beta.len() != q {
        beta = vec![0.0; q];
    }
    let mut s = sums(d, spec, &beta, true);
    let mut obj = penalised(&s, &beta, spec.lambda, p);
    for _ in 0..spec.max_iter {
        let mut h = s.hess.clone();
        let mut g = s.grad.clone();
        for j in 0..q {
            let pen = if j % p == 0 {
                1e-8
            } else {
                spec.lambda.max(1e-8)
            };
            h[j * q + j] += pen;
            if j % p != 0 {
                g[j] += spec.lambda * beta[j];
            }
        }
        let neg: Vec<f64> = g.iter().map(|v| -v).collect();
        let step = super::features::cholesky_solve(&mut h, &neg, q)
            .ok_or_else(|| ModelError::Diverged("second stage: singular Hessian".into()))?;
        let mut scale = 1.0;
        let mut accepted = false;
        for _ in 0..12 {
            let cand: Vec<f64> = beta.iter().zip(&step).map(|(b, d)| b + scale * d).collect();
            let cs = sums(d, spec, &cand, true);
            let cobj = penalised(&cs, &cand, spec.lambda, p);
            if cobj.is_finite() && cobj <= obj + 1e-12 * obj.abs() {
                let gain = obj - cobj;
                beta = cand;
                s = cs;
                obj = cobj;
                accepted = true;
                if gain <= 1e-10 * obj.abs().max(1.0) {
                    return Ok(beta);
                }
                break;
            }
            scale *= 0.5;
        }
        if !accepted {
            break;
        }
    }
    if !obj.is_finite() {
        return Err(ModelError::Diverged(format!(
            "second stage: objective is {obj}"
        )));
    }
    Ok(beta)
}

// ---------------------------------------------------------------------------------------
// the whole second-stage fit

/// Standardise raw rows in place; returns (mean, scale, lo, hi).
type Standardisation = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

fn standardise(x: &mut [f64], p: usize) -> Standardisation {
    let n = (x.len() / p.max(1)).max(1) as f64;
    let mut mean = vec![0.0; p];
    let mut sq = vec![0.0; p];
    for row in x.chunks(p) {
        for j in 0..p {
            mean[j] += row[j];
            sq[j] += row[j] * row[j];
        }
    }
    let mut scale = vec![1.0; p];
    for j in 0..p {
        mean[j] /= n;
        let var = (sq[j] / n - mean[j] * mean[j]).max(0.0);
        scale[j] = if var > 1e-18 { var.sqrt() } else { 1.0 };
    }
    mean[0] = 0.0;
    scale[0] = 1.0;
    let mut lo = vec![f64::INFINITY; p];
    let mut hi = vec![f64::NEG_INFINITY; p];
    for row in x.chunks_mut(p) {
        for j in 0..p {
            row[j] = (row[j] - mean[j]) / scale[j];
            lo[j] = lo[j].min(row[j]);
            hi[j] = hi[j].max(row[j]);
        }
    }
    for j in 0..p {
        if !lo[j].is_finite() || !hi[j].is_finite() {
            lo[j] = -1e6;
            hi[j] = 1e6;
        }
    }
    (mean, scale, lo, hi)
}

/// Quantiles of `v` (nearest rank), deduplicated.
fn quantiles(mut v: Vec<f64>, qs: &[f64]) -> Vec<f64> {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    let mut out: Vec<f64> = Vec::new();
    if v.is_empty() {
        return out;
    }
    for q in qs {
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        let x = v[i.min(v.len() - 1)];
        if out.last().is_none_or(|l| *l < x) {
            out.push(x);
        }
    }
    out
}

fn design_for(
    inputs: &TrainingInputs,
    set: FeatureSet,
    params: &StackParams,
) -> (Vec<f64>, FeatureSpec) {
    let mut spec = FeatureSpec {
        set,
        smoothing: params.smoothing.clone(),
        gap_knots: params.gap_knots.clone(),
        body_dim: inputs.body_dim,
        label_knots: quantiles(
            inputs.inputs.iter().map(|x| x.label_pos).collect(),
            &[0.1, 0.3, 0.5, 0.7, 0.9],
        ),
        mean: Vec::new(),
        scale: Vec::new(),
        lo: Vec::new(),
        hi: Vec::new(),
    };
    let p = n_features(
        set,
        spec.gap_knots.len(),
        spec.body_dim,
        spec.label_knots.len(),
    );
    let global = inputs.tables.priors();
    let mut x = Vec::with_capacity(inputs.inputs.len() * p);
    let mut row = Vec::with_capacity(p);
    let bd = inputs.body_dim;
    for (inp, &c) in inputs.inputs.iter().zip(&inputs.customer) {
        let lo = c as usize * bd;
        let body = inputs.bodies.get(lo..lo + bd).unwrap_or(&[]);
        raw_features(&spec, &global, &StackInput { body, ..*inp }, &mut row);
        x.extend_from_slice(&row);
    }
    let (mean, scale, lo, hi) = standardise(&mut x, p);
    spec.mean = mean;
    spec.scale = scale;
    spec.lo = lo;
    spec.hi = hi;
    (x, spec)
}

/// Held-out probabilities of the rows in fold `f` under coefficients `beta`.
fn fold_probs(d: &Design<'_>, folds: &[u8], f: u8, beta: &[f64]) -> (Vec<[f64; 3]>, Vec<usize>) {
    let p = d.p;
    let mut pr = Vec::new();
    let mut cl = Vec::new();
    for (i, &fi) in folds.iter().enumerate() {
        if fi != f {
            continue;
        }
        let row = &d.x[i * p..(i + 1) * p];
        let (es, el) = logits(row, beta, p);
        pr.push(softmax2(es, el));
        cl.push(usize::from(d.y[i]));
    }
    (pr, cl)
}

impl StackParams {
    /// Fit the second stage for `model` on the events it was trained on.
    pub fn fit(&self, model: &Model, events: &Events) -> Result<Stack, ModelError> {
        if self.lambdas.is_empty() || self.sets.is_empty() {
            return Err(ModelError::Param(
                "second stage: at least one penalty and one feature set".into(),
            ));
        }
        if self.lambdas.iter().any(|l| !(l.is_finite() && *l >= 0.0)) {
            return Err(ModelError::Param(
                "second stage: penalties must be finite and >= 0".into(),
            ));
        }
        let inputs = training_inputs(model, events, self)?;
        if inputs.inputs.is_empty() {
            return Err(ModelError::NoFitEvents);
        }
        let k = self.folds.clamp(1, 50) as u64;
        let folds: Vec<u8> = inputs.group.iter().map(|g| (g % k) as u8).collect();
        let mut cv = Vec::new();
        let mut best: Option<(f64, usize, f64)> = None; // (log loss, set index, lambda)
        if k > 1 {
            for (si, &set) in self.sets.iter().enumerate() {
                let (x, spec) = design_for(&inputs, set, self);
                let d = Design {
                    x: &x,
                    y: &inputs.classes,
                    p: spec.mean.len(),
                };
                // strongest penalty first, each warm-started from the previous one
                let mut lambdas = self.lambdas.clone();
                lambdas.sort_by(|a, b| b.total_cmp(a));
                let mut starts: Vec<Vec<f64>> = vec![Vec::new(); k as usize];
                for &lambda in &lambdas {
                    let mut all_p = Vec::new();
                    let mut all_c = Vec::new();
                    for f in 0..k as u8 {
                        let spec_f = FitSpec {
                            lambda,
                            exclude: Some((&folds, f)),
                            max_iter: self.max_iter,
                        };
                        let beta = fit_logit(&d, &spec_f, &starts[f as usize])?;
                        let (pr, cl) = fold_probs(&d, &folds, f, &beta);
                        all_p.extend(pr);
                        all_c.extend(cl);
                        starts[f as usize] = beta;
                    }
                    let m = metrics(&all_p, &all_c);
                    tracing::info!(
                        target: "runsize::stack",
                        set = ?set, lambda, log_loss = m.log_loss, auc = m.auc_avg,
                        "cross-validation"
                    );
                    cv.push(CvPoint {
                        set,
                        lambda,
                        log_loss: m.log_loss,
                        auc_avg: m.auc_avg,
                    });
                    if best.is_none_or(|b| m.log_loss < b.0) {
                        best = Some((m.log_loss, si, lambda));
                    }
                }
            }
        }
        let (_, si, lambda) = best.unwrap_or((f64::NAN, 0, self.lambdas[0]));
        let set = self.sets[si];
        let (x, spec) = design_for(&inputs, set, self);
        let d = Design {
            x: &x,
            y: &inputs.classes,
            p: spec.mean.len(),
        };
        let coef = fit_logit(
            &d,
            &FitSpec {
                lambda,
                exclude: None,
                max_iter: self.max_iter,
            },
            &[],
        )?;
        Ok(Stack {
            spec,
            tables: inputs.tables,
            coef,
            lambda,
            cv,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_hand_values() {
        // (c + m·prior)/(n + m) = ([1,2,1] + 4·[.2,.6,.2]) / 8
        let r = smooth([1.0, 2.0, 1.0], [0.2, 0.6, 0.2], 4.0);
        assert!((r[0] - 0.225).abs() < 1e-12);
        assert!((r[1] - 0.55).abs() < 1e-12);
        assert!((r[2] - 0.225).abs() < 1e-12);
        // no data: the prior
        assert_eq!(smooth([0.0; 3], [0.1, 0.7, 0.2], 3.0), [0.1, 0.7, 0.2]);
    }

    #[test]
    fn leave_one_out_counts() {
        assert_eq!(leave_one_out([3, 5, 2], 1), [3.0, 4.0, 2.0]);
        assert_eq!(leave_one_out([3, 5, 2], 0), [2.0, 5.0, 2.0]);
        // never below zero
        assert_eq!(leave_one_out([0, 1, 0], 2), [0.0, 1.0, 0.0]);
        // an item rented twice, one small one fit: the small event sees one fit
        let r = smooth(leave_one_out([1, 1, 0], 0), [0.25, 0.5, 0.25], 2.0);
        // ([0,1,0] + 2·[.25,.5,.25]) / 3
        assert!((r[0] - 0.5 / 3.0).abs() < 1e-12);
        assert!((r[1] - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn softmax_hand_values() {
        let p = softmax2(0.0, 0.0);
        for v in p {
            assert!((v - 1.0 / 3.0).abs() < 1e-15);
        }
        // e^1 : 1 : e^-1
        let p = softmax2(1.0, -1.0);
        let z = 1f64.exp() + 1.0 + (-1f64).exp();
        assert!((p[0] - 1f64.exp() / z).abs() < 1e-12);
        assert!((p[1] - 1.0 / z).abs() < 1e-12);
        // large logits stay finite
        assert!(softmax2(800.0, -800.0).iter().all(|v| v.is_finite()));
    }

    #[test]
    fn logistic_gradient_and_hessian_on_one_event() {
        // intercept only, beta = 0: p = 1/3 each; one "small" event.
        let x = [1.0];
        let y = [0u8];
        let d = Design { x: &x, y: &y, p: 1 };
        let spec = FitSpec {
            lambda: 0.0,
            exclude: None,
            max_iter: 10,
        };
        let s = sums(&d, &spec, &[0.0, 0.0], true);
        assert!((s.nll - 3f64.ln()).abs() < 1e-12);
        // gradient (p - y)·x: small 1/3 - 1 = -2/3, large 1/3
        assert!((s.grad[0] + 2.0 / 3.0).abs() < 1e-12);
        assert!((s.grad[1] - 1.0 / 3.0).abs() < 1e-12);
        // Hessian [[p_s(1-p_s), -p_s p_l], [., p_l(1-p_l)]] = [[2/9, -1/9], [-1/9, 2/9]]
        let h = &s.hess;
        assert!((h[0] - 2.0 / 9.0).abs() < 1e-12);
        assert!((h[1] + 1.0 / 9.0).abs() < 1e-12);
        assert!((h[2] + 1.0 / 9.0).abs() < 1e-12);
        assert!((h[3] - 2.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        // two features, five events
        let x = [1.0, 0.5, 1.0, -1.0, 1.0, 2.0, 1.0, 0.0, 1.0, -0.3];
        let y = [0u8, 1, 2, 1, 0];
        let d = Design { x: &x, y: &y, p: 2 };
        let spec = FitSpec {
            lambda: 0.0,
            exclude: Some((&[0, 0, 1, 0, 0], 1)),
            max_iter: 10,
        };
        let beta = [0.2, -0.4, -0.1, 0.7];
        let s = sums(&d, &spec, &beta, true);
        assert_eq!(s.n, 4.0);
        let h = 1e-6;
        for j in 0..4 {
            let mut up = beta;
            up[j] += h;
            let mut dn = beta;
            dn[j] -= h;
            let fd =
                (sums(&d, &spec, &up, false).nll - sums(&d, &spec, &dn, false).nll) / (2.0 * h);
            assert!(
                (s.grad[j] - fd).abs() < 1e-6,
                "grad {j}: {} vs {fd}",
                s.grad[j]
            );
            // Hessian column j by differences of gradients
            let gu = sums(&d, &spec, &up, false).grad;
            let gd = sums(&d, &spec, &dn, false).grad;
            for k in 0..4 {
                let fd = (gu[k] - gd[k]) / (2.0 * h);
                assert!((s.hess[k * 4 + j] - fd).abs() < 1e-5, "hess {k},{j}");
            }
        }
    }

    #[test]
    fn intercept_only_fit_recovers_log_ratios() {
        // 2 small, 5 fit, 3 large: beta_s = ln(2/5), beta_l = ln(3/5)
        let y = [0u8, 0, 1, 1, 1, 1, 1, 2, 2, 2];
        let x = [1.0; 10];
        let d = Design { x: &x, y: &y, p: 1 };
        let spec = FitSpec {
            lambda: 0.0,
            exclude: None,
            max_iter: 50,
        };
        let b = fit_logit(&d, &spec, &[]).unwrap();
        assert!((b[0] - (0.4f64).ln()).abs() < 1e-6, "{b:?}");
        assert!((b[1] - (0.6f64).ln()).abs() < 1e-6, "{b:?}");
        // deterministic
        assert_eq!(b, fit_logit(&d, &spec, &[]).unwrap());
    }

    #[test]
    fn feature_count_matches_row() {
        for set in [
            FeatureSet::FULL,
            FeatureSet::NO_INTERACTIONS,
            FeatureSet {
                gap: false,
                product: false,
                article_size: false,
                customer: false,
                group: false,
                interactions: false,
                body: false,
                shape: false,
                centroid: false,
                label: false,
            },
        ] {
            let spec = FeatureSpec {
                set,
                smoothing: Smoothing::default(),
                gap_knots: vec![-1.0, 0.0, 1.0],
                body_dim: 2,
                label_knots: vec![0.0, 1.0],
                mean: Vec::new(),
                scale: Vec::new(),
                lo: Vec::new(),
                hi: Vec::new(),
            };
            let mut row = Vec::new();
            let x = StackInput {
                probs: [0.2, 0.6, 0.2],
                gap_sd: 1.0,
                product: Some([1.0, 2.0, 3.0]),
                ..Default::default()
            };
            let priors = GlobalPriors {
                rates: [0.15, 0.7, 0.15],
                centroid: [0.3, 0.0, -0.3],
            };
            raw_features(&spec, &priors, &x, &mut row);
            assert_eq!(row.len(), n_features(set, 3, 2, 2));
            assert!(row.iter().all(|v| v.is_finite()));
        }
    }
}
