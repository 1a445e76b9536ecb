//! Second stage: calibrated learners fitted after the structural model, on the
//! structural model's log-odds and size gaps plus smoothed outcome rates of the product,
//! the product in that size and its neighbours, its category / brand and the customer,
//! the customer's size history and body features. Stored in the model and applied
//! wherever probabilities are produced ([`Model::probs_final`]: scoring, evaluation,
//! `predict`, recommendations).
//!
//! Two questions, two learners ([`Regime`]):
//! - a **purchase** whose chosen size is evidence of the shopper's size (scoring and
//!   evaluating events): a multinomial logistic regression on every feature group;
//! - a **size on offer** (recommendations, `predict --without-choice`): a calibration
//!   that keeps the structural order of sizes ([`OfferCalibration`]).
//!
//! Training features are computed **out of sample**, in one of two ways:
//! - *cross-fitting* (default, `cross_fit` = 5): the training events are split into
//!   random folds; for each fold the structural model and the outcome counts are refitted
//!   on the other folds, and the fold's events get exactly the inputs a new event gets
//!   from that model;
//! - *leave-one-out* (`cross_fit` = 0, cheaper): each event sees the customer's state
//!   without its own evidence (one Newton step back from the stored posterior, as the
//!   fit's leave-one-out pass does), the article's true size and band without its own
//!   outcome (one Newton step on their information), and counts less its own outcome.
//!   The article step is approximate, and features that isolate the article's true size
//!   (the label position) can learn from its residual: that group is only used with
//!   cross-fitting.
//!
//! The learners are fitted by Newton's method on sums of per-event gradients and
//! Hessians over fixed chunks of events (deterministic, and a group-by in a distributed
//! setting). Ridge penalties and the feature set are chosen by K-fold cross-validation by
//! customer on the training events. At prediction time the standardisation is folded
//! into the coefficients and the product / product-in-size rate features are cached per
//! key ([`Stack::prepare`]), so one size costs a few logarithms and a dot product.

use super::eval::metrics;
use super::features::FeatureValues;
use super::fitted::Model;
use super::math::{event_deriv, probs, uncertainty_scale};
use super::predict::{cut_points, inv2, ArticleRef, CustomerState, SizeBelief};
use super::recommend::ShopperRef;
use super::score::{Resolved, ScoreOptions};
use super::{FitParams, ModelError};
use crate::data::schema::{Events, RowIds, NONE};
use crate::data::OutcomeMap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Outcome counts `[small, fit, large]`.
pub type Counts = [u32; 3];

/// Probabilities are clamped to at least this before taking log-odds.
const P_FLOOR: f64 = 1e-6;
/// Rows per chunk of the gradient / Hessian sums (fixed: results do not depend on threads).
const CHUNK: usize = 4096;
/// Signals whose pairwise products the `pairs` group adds.
const PAIR_BASE: usize = 8;
/// Most of its variance one event may remove from an article (keeps the step stable).
const MAX_SHARE: f64 = 0.5;

// ---------------------------------------------------------------------------------------
// stored data

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
    /// Per training customer (aligned with `Model::customers`; empty without a customer
    /// table).
    pub customer: Vec<Counts>,
    /// Per training customer: sum of the label positions (common scale) of their events.
    pub customer_pos: Vec<f64>,
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
}

impl Default for Smoothing {
    fn default() -> Self {
        Smoothing {
            category: 50.0,
            brand: 20.0,
            product: 10.0,
            article_size: 5.0,
            customer: 3.0,
        }
    }
}

/// Which feature groups enter the second stage (an intercept and the structural
/// log-odds always do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSet {
    /// Gap mean and sd, the gaps from the customer's prior and from the size chosen
    /// alone, hinge functions of the gap.
    pub gap: bool,
    /// Product rates and log count.
    pub product: bool,
    /// Product-in-size rates (relative to the product) and log count.
    pub article_size: bool,
    /// Customer rates and log count.
    pub customer: bool,
    /// Category and brand rates.
    pub group: bool,
    /// Rates and structural log-odds times log counts.
    pub interactions: bool,
    /// The customer's body-feature design row (misfit propensity by body).
    pub body: bool,
    /// Hinge functions of the prior and choice gaps, and gaps times the customer's log
    /// count.
    pub shape: bool,
    /// The label's position (hinges) and whether it is the product's smallest / largest
    /// size (no smaller / larger size to change to). Needs cross-fitting.
    pub label: bool,
    /// Pairwise products of the main signals (structural log-odds, prior and choice
    /// gaps, product and customer log-odds).
    pub pairs: bool,
    /// Rates of the product's next smaller and next larger size.
    pub neighbours: bool,
    /// The customer's mean label position of their other events relative to this label.
    pub history: bool,
}

impl FeatureSet {
    /// Every group.
    pub const FULL: FeatureSet = FeatureSet {
        gap: true,
        product: true,
        article_size: true,
        customer: true,
        group: true,
        interactions: true,
        body: true,
        shape: true,
        label: true,
        pairs: true,
        neighbours: true,
        history: true,
    };

    /// Main effects only: no count interactions, hinges or pairwise products.
    pub const MAIN: FeatureSet = FeatureSet {
        interactions: false,
        shape: false,
        pairs: false,
        ..FeatureSet::FULL
    };

    /// The groups of the sizes-on-offer calibration ([`OfferCalibration`]): only ones
    /// that do not differ between sizes of one product.
    pub const OFFER: FeatureSet = FeatureSet {
        gap: false,
        product: true,
        article_size: false,
        customer: true,
        group: true,
        interactions: false,
        body: true,
        shape: false,
        label: false,
        pairs: false,
        neighbours: false,
        history: false,
    };

    /// The groups that are safe with leave-one-out inputs (no label position).
    pub const LOO: FeatureSet = FeatureSet {
        label: false,
        pairs: false,
        ..FeatureSet::FULL
    };
}

/// The feature map of a fitted stage: what to compute and how to standardise it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Feature groups.
    pub set: FeatureSet,
    /// Knots of the hinge functions `max(0, gap − k)` (size steps).
    pub gap_knots: Vec<f64>,
    /// Knots of the hinge functions of the label's position (training quantiles).
    pub label_knots: Vec<f64>,
    /// Length of the body-feature row (the feature model's design row less its
    /// intercept).
    pub body_dim: usize,
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

/// One fitted logistic regression of the second stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackLogit {
    /// Feature map.
    pub spec: FeatureSpec,
    /// Coefficients on standardised features: the small-vs-fit logit's (one per
    /// feature), then the large-vs-fit's.
    pub coef: Vec<f64>,
    /// Chosen ridge penalty.
    pub lambda: f64,
    /// Cross-validation results that chose the penalty and feature set.
    pub cv: Vec<CvPoint>,
    /// The standardisation folded into the coefficients ([`StackLogit::prepare`]).
    #[serde(skip)]
    pub folded: Folded,
}

/// A [`StackLogit`]'s coefficients on raw features.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Folded {
    /// Coefficients on raw features, `[small, large]` per feature.
    pub weight: Vec<[f64; 2]>,
    /// Raw-feature clamp `[lo, hi]` per feature.
    pub clamp: Vec<[f64; 2]>,
    /// Logit offsets `[small, large]` from folding the standardisation in.
    pub offset: [f64; 2],
}

/// Which question a probability answers: the outcome of a purchase whose chosen size is
/// known evidence of the shopper's size (scoring and evaluating events), or of a size on
/// offer that the shopper has not chosen (recommendations, `predict --without-choice`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Regime {
    /// The chosen size is evidence (default).
    #[default]
    Purchase,
    /// A size on offer; no choice evidence.
    Offer,
}

/// A fitted second stage: plain data plus a cache rebuilt by [`Stack::prepare`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    /// Training counts.
    pub tables: StackTables,
    /// Rate smoothing.
    pub smoothing: Smoothing,
    /// Structural refits behind the training inputs (0: leave-one-out inputs).
    pub cross_fit: usize,
    /// The learner for [`Regime::Purchase`] inputs.
    pub purchase: StackLogit,
    /// The calibration for [`Regime::Offer`] inputs (trained on the same events with the
    /// choice evidence left out); `None`: structural probabilities for sizes on offer.
    pub offer: Option<OfferCalibration>,
    /// Prediction cache.
    #[serde(skip)]
    pub cache: StackCache,
}

/// What [`Stack::prepare`] caches for fast prediction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackCache {
    /// Level features per product (its own brand and category, no size).
    pub product: Vec<LevelFeatures>,
    /// Level features per product-in-size (its product's brand and category).
    pub article_size: Vec<LevelFeatures>,
}

// ---------------------------------------------------------------------------------------
// rates

/// Rates `(c + m·prior) / (n + m)` of counts `c` shrunk toward `prior` with `m`
/// pseudo-events.
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
    let mut out = as_f64(c);
    if let Some(x) = out.get_mut(y) {
        *x = (*x - 1.0).max(0.0);
    }
    out
}

fn as_f64(c: Counts) -> [f64; 3] {
    [f64::from(c[0]), f64::from(c[1]), f64::from(c[2])]
}

/// `[ln(r_small / r_fit), ln(r_large / r_fit), ln((r_small + r_large) / r_fit)]`.
pub fn log_ratios(r: [f64; 3]) -> [f64; 3] {
    let f = r[1].max(P_FLOOR).ln();
    [
        r[0].max(P_FLOOR).ln() - f,
        r[2].max(P_FLOOR).ln() - f,
        (r[0] + r[2]).max(P_FLOOR).ln() - f,
    ]
}

fn total(c: &[f64; 3]) -> f64 {
    c[0] + c[1] + c[2]
}

/// Global rates from counts (add-one).
pub fn global_rates(g: [u64; 3]) -> [f64; 3] {
    let n = (g[0] + g[1] + g[2]) as f64 + 3.0;
    [
        (g[0] as f64 + 1.0) / n,
        (g[1] as f64 + 1.0) / n,
        (g[2] as f64 + 1.0) / n,
    ]
}

/// Outcome counts of an article's levels (`None`: the level is unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LevelCounts {
    /// Category.
    pub category: Option<[f64; 3]>,
    /// Brand.
    pub brand: Option<[f64; 3]>,
    /// Product.
    pub product: Option<[f64; 3]>,
    /// Product in size.
    pub article_size: Option<[f64; 3]>,
    /// The product in its next smaller size.
    pub down: Option<[f64; 3]>,
    /// The product in its next larger size.
    pub up: Option<[f64; 3]>,
}

/// Smoothed-rate features of an article's levels.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LevelFeatures {
    /// Category log-odds `[small/fit, large/fit]`.
    pub category: [f64; 2],
    /// Brand log-odds relative to its category's.
    pub brand: [f64; 2],
    /// Product log-odds `[small/fit, large/fit, misfit/fit]`.
    pub product: [f64; 3],
    /// `ln(1 + product events)`.
    pub product_n: f64,
    /// Product-in-size log-odds relative to the product's `[small, large]`.
    pub size: [f64; 2],
    /// `ln(1 + product-in-size events)`.
    pub size_n: f64,
    /// The next smaller size's log-odds relative to the product's `[small, large]` and
    /// `ln(1 + its events)`.
    pub down: [f64; 3],
    /// The next larger size's, likewise.
    pub up: [f64; 3],
}

/// Level features from counts: category toward the global rates, brand toward its
/// category, product toward its brand, product-in-size toward its product.
pub fn level_features(sm: &Smoothing, global: [f64; 3], c: &LevelCounts) -> LevelFeatures {
    let cat = c
        .category
        .map_or(global, |x| smooth(x, global, sm.category));
    let brand = c.brand.map_or(cat, |x| smooth(x, cat, sm.brand));
    let pc = c.product.unwrap_or([0.0; 3]);
    let prod = smooth(pc, brand, sm.product);
    let ac = c.article_size.unwrap_or([0.0; 3]);
    let art = smooth(ac, prod, sm.article_size);
    let (lc, lb, lp, la) = (
        log_ratios(cat),
        log_ratios(brand),
        log_ratios(prod),
        log_ratios(art),
    );
    let near = |c: Option<[f64; 3]>| {
        let c = c.unwrap_or([0.0; 3]);
        let l = log_ratios(smooth(c, prod, sm.article_size));
        [l[0] - lp[0], l[1] - lp[1], total(&c).ln_1p()]
    };
    LevelFeatures {
        down: near(c.down),
        up: near(c.up),
        category: [lc[0], lc[1]],
        brand: [lb[0] - lc[0], lb[1] - lc[1]],
        product: lp,
        product_n: total(&pc).ln_1p(),
        size: [la[0] - lp[0], la[1] - lp[1]],
        size_n: total(&ac).ln_1p(),
    }
}

/// Smoothed-rate features of a customer.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CustomerRates {
    /// Log-odds `[small/fit, large/fit, misfit/fit]`.
    pub log_odds: [f64; 3],
    /// `ln(1 + events)`.
    pub n: f64,
    /// Mean label position of their events (common scale), `None` without events.
    pub mean_pos: Option<f64>,
}

/// Customer features from outcome counts (toward the global rates) and the sum of their
/// events' label positions.
pub fn customer_rates(
    sm: &Smoothing,
    global: [f64; 3],
    counts: [f64; 3],
    pos_sum: f64,
) -> CustomerRates {
    let n = total(&counts);
    CustomerRates {
        log_odds: log_ratios(smooth(counts, global, sm.customer)),
        n: n.ln_1p(),
        mean_pos: (n > 0.0).then(|| pos_sum / n),
    }
}

// ---------------------------------------------------------------------------------------
// features

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
    /// The label's position on the common scale.
    pub label_pos: f64,
    /// The label is the product's smallest size seen in training.
    pub smallest: bool,
    /// The label is the product's largest size seen in training.
    pub largest: bool,
    /// Product / size / category / brand rate features.
    pub levels: LevelFeatures,
    /// Customer rate features (their other events).
    pub customer: CustomerRates,
    /// The customer's body-feature design row without its intercept; empty when unknown.
    pub body: &'a [f64],
}

/// Number of raw features (including the intercept) of a feature map.
pub fn n_features(spec: &FeatureSpec) -> usize {
    let mut n = 0usize;
    features(spec, &StackInput::default(), &mut |_| n += 1);
    n
}

/// The raw (unstandardised) features of one event, in order, into `sink`.
pub fn features<F: FnMut(f64)>(spec: &FeatureSpec, x: &StackInput<'_>, sink: &mut F) {
    let set = spec.set;
    let p = x.probs;
    let lf = p[1].max(P_FLOOR).ln();
    let ls = p[0].max(P_FLOOR).ln() - lf;
    let ll = p[2].max(P_FLOOR).ln() - lf;
    let lv = &x.levels;
    let cu = &x.customer;
    sink(1.0);
    sink(ls);
    sink(ll);
    if set.gap {
        sink(x.gap);
        sink(x.gap_sd);
        sink(x.prior_gap);
        sink(x.choice_gap);
        for k in &spec.gap_knots {
            sink((x.gap - k).max(0.0));
        }
    }
    if set.product {
        lv.product.iter().for_each(|&v| sink(v));
        sink(lv.product_n);
        if set.interactions {
            lv.product.iter().for_each(|&v| sink(v * lv.product_n));
        }
    }
    if set.article_size {
        sink(lv.size[0]);
        sink(lv.size[1]);
        sink(lv.size_n);
        if set.interactions {
            sink(lv.size[0] * lv.size_n);
            sink(lv.size[1] * lv.size_n);
        }
    }
    if set.customer {
        cu.log_odds.iter().for_each(|&v| sink(v));
        sink(cu.n);
        if set.interactions {
            cu.log_odds.iter().for_each(|&v| sink(v * cu.n));
            sink(ls * cu.n);
            sink(ll * cu.n);
        }
    }
    if set.group {
        lv.category.iter().for_each(|&v| sink(v));
        lv.brand.iter().for_each(|&v| sink(v));
    }
    if set.body {
        for j in 0..spec.body_dim {
            sink(x.body.get(j).copied().unwrap_or(0.0));
        }
    }
    if set.shape {
        for k in &spec.gap_knots {
            sink((x.prior_gap - k).max(0.0));
        }
        for k in &spec.gap_knots {
            sink((x.choice_gap - k).max(0.0));
        }
        sink(x.gap * cu.n);
        sink(x.prior_gap * cu.n);
    }
    if set.label {
        sink(x.label_pos);
        for k in &spec.label_knots {
            sink((x.label_pos - k).max(0.0));
        }
        sink(f64::from(u8::from(x.smallest)));
        sink(f64::from(u8::from(x.largest)));
    }
    if set.pairs {
        let base: [f64; PAIR_BASE] = [
            ls,
            ll,
            x.prior_gap,
            x.choice_gap,
            lv.product[0],
            lv.product[1],
            cu.log_odds[0] * cu.n,
            cu.log_odds[1] * cu.n,
        ];
        for i in 0..PAIR_BASE {
            for j in i..PAIR_BASE {
                sink(base[i] * base[j]);
            }
        }
    }
    if set.neighbours {
        lv.down.iter().for_each(|&v| sink(v));
        lv.up.iter().for_each(|&v| sink(v));
    }
    if set.history {
        let d = cu.mean_pos.map_or(0.0, |m| m - x.label_pos);
        sink(d);
        sink(d * cu.n);
        sink((d - 1.0).max(0.0));
        sink((-d - 1.0).max(0.0));
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

fn count_at(table: &[Counts], i: u32) -> Option<[f64; 3]> {
    if i == NONE {
        return None;
    }
    table.get(i as usize).copied().map(as_f64)
}

/// The level counts of an article of `model` in `tables`.
fn level_counts(model: &Model, tables: &StackTables, a: &ArticleRef) -> LevelCounts {
    let (down, up) = model.neighbour_sizes(a);
    LevelCounts {
        category: count_at(&tables.category, a.category),
        brand: count_at(&tables.brand, a.brand),
        product: count_at(&tables.product, a.product),
        article_size: count_at(
            &tables.article_size,
            model.article_size_index(a).unwrap_or(NONE),
        ),
        down: count_at(&tables.article_size, down),
        up: count_at(&tables.article_size, up),
    }
}

impl StackLogit {
    /// Number of features per logit.
    pub fn dim(&self) -> usize {
        self.spec.mean.len()
    }

    /// Fold the standardisation into the coefficients.
    pub fn prepare(&mut self) {
        let p = self.dim();
        let sp = &self.spec;
        let mut f = Folded::default();
        if self.coef.len() == 2 * p && sp.scale.len() == p && sp.lo.len() == p && sp.hi.len() == p {
            for j in 0..p {
                let s = sp.scale[j];
                let w = [self.coef[j] / s, self.coef[p + j] / s];
                f.offset[0] -= w[0] * sp.mean[j];
                f.offset[1] -= w[1] * sp.mean[j];
                f.weight.push(w);
                f.clamp
                    .push([sp.mean[j] + s * sp.lo[j], sp.mean[j] + s * sp.hi[j]]);
            }
        }
        self.folded = f;
    }

    /// Probabilities for raw inputs (the structural ones if the learner is inconsistent).
    pub fn predict(&self, x: &StackInput<'_>) -> [f64; 3] {
        let c = &self.folded;
        let p = self.dim();
        if c.weight.len() != p {
            return self.predict_unprepared(x);
        }
        let (mut es, mut el) = (c.offset[0], c.offset[1]);
        let mut j = 0usize;
        features(&self.spec, x, &mut |v| {
            if let (Some(w), Some(b)) = (c.weight.get(j), c.clamp.get(j)) {
                let v = v.clamp(b[0], b[1]);
                es += w[0] * v;
                el += w[1] * v;
            }
            j += 1;
        });
        let out = softmax2(es, el);
        if j == p && out.iter().all(|v| v.is_finite()) {
            out
        } else {
            x.probs
        }
    }

    /// [`StackLogit::predict`] straight from the standardised coefficients.
    fn predict_unprepared(&self, x: &StackInput<'_>) -> [f64; 3] {
        let sp = &self.spec;
        let p = self.dim();
        if self.coef.len() != 2 * p {
            return x.probs;
        }
        let (mut es, mut el) = (0.0, 0.0);
        let mut j = 0usize;
        features(sp, x, &mut |v| {
            if j < p {
                let z = ((v - sp.mean[j]) / sp.scale[j]).clamp(sp.lo[j], sp.hi[j]);
                es += self.coef[j] * z;
                el += self.coef[p + j] * z;
            }
            j += 1;
        });
        let out = softmax2(es, el);
        if j == p && out.iter().all(|v| v.is_finite()) {
            out
        } else {
            x.probs
        }
    }
}

impl Stack {
    /// Fold the learners' standardisation into their coefficients and cache the level
    /// features of every product and product-in-size (call after building or loading;
    /// the model's `reindex` does).
    pub fn prepare(&mut self, model: &Model) {
        self.purchase.prepare();
        let global = global_rates(self.tables.global);
        let article = |prod: u32, label: u32| {
            let info = model.product_info.get(prod as usize);
            let a = ArticleRef {
                product: prod,
                brand: info.map_or(NONE, |i| i.brand),
                category: info.map_or(NONE, |i| i.category),
                label,
                system: crate::data::schema::SizeSystem::Numeric,
                pos: 0.0,
            };
            level_features(
                &self.smoothing,
                global,
                &level_counts(model, &self.tables, &a),
            )
        };
        self.cache = StackCache {
            product: (0..model.products.len() as u32)
                .map(|pi| article(pi, NONE))
                .collect(),
            article_size: model
                .article_sizes
                .iter()
                .map(|x| article(x.product, x.label))
                .collect(),
        };
    }

    /// Level features of an article: cached for known products in their own brand and
    /// category, computed from the counts otherwise.
    pub fn levels(&self, model: &Model, a: &ArticleRef) -> LevelFeatures {
        self.levels_at(model, a, model.article_size_index(a))
    }

    /// [`Stack::levels`] with the product-in-size index already looked up
    /// ([`Model::article_size_index`]).
    pub fn levels_at(&self, model: &Model, a: &ArticleRef, art: Option<u32>) -> LevelFeatures {
        let art = art.unwrap_or(NONE);
        if let Some(info) = model.product_info.get(a.product as usize) {
            if info.brand == a.brand && info.category == a.category {
                let hit = if art == NONE {
                    self.cache.product.get(a.product as usize)
                } else {
                    self.cache.article_size.get(art as usize)
                };
                if let Some(l) = hit {
                    return *l;
                }
            }
        }
        level_features(
            &self.smoothing,
            global_rates(self.tables.global),
            &level_counts(model, &self.tables, a),
        )
    }

    /// Customer rate features from outcome counts and the sum of their label positions.
    pub fn customer_rates(&self, counts: [f64; 3], pos_sum: f64) -> CustomerRates {
        customer_rates(
            &self.smoothing,
            global_rates(self.tables.global),
            counts,
            pos_sum,
        )
    }

    /// Second-stage probabilities for raw inputs of a regime.
    pub fn predict(&self, x: &StackInput<'_>, regime: Regime) -> [f64; 3] {
        match (regime, &self.offer) {
            (Regime::Purchase, _) => self.purchase.predict(x),
            (Regime::Offer, Some(c)) => c.predict(x),
            (Regime::Offer, None) => x.probs,
        }
    }
}

/// Rebuild a model's second-stage cache (after deserialising; called by `reindex`).
pub fn prepare_model(model: &mut Model) {
    if let Some(mut s) = model.stack.take() {
        s.prepare(model);
        model.stack = Some(s);
    }
}

// ---------------------------------------------------------------------------------------
// model hooks

/// The standard outcome vocabulary, built once.
fn outcomes() -> &'static OutcomeMap {
    static MAP: std::sync::OnceLock<OutcomeMap> = std::sync::OnceLock::new();
    MAP.get_or_init(OutcomeMap::standard)
}

/// What the second stage knows about a customer (rates of their other events, their
/// body-feature row) and which question is asked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StackCustomer {
    /// Purchase (chosen size is evidence) or size on offer.
    pub regime: Regime,
    /// Outcome-rate features.
    pub rates: CustomerRates,
    /// Body-feature design row without the intercept (empty without a second stage).
    pub body: Vec<f64>,
    /// Prior size from the body row ([`Model::prior_mean`]).
    pub prior: f64,
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
    /// intercept).
    pub fn body_row(&self, values: &FeatureValues<'_>) -> Vec<f64> {
        let mut row = vec![0.0; self.features.dim()];
        self.features.encode_into(values, &mut row);
        row.split_off(1.min(row.len()))
    }

    /// The customer's prior size from their body row (the feature model's prediction).
    pub fn prior_mean(&self, body: &[f64]) -> f64 {
        let c = &self.features.coef;
        c.first().copied().unwrap_or(0.0)
            + c.iter().skip(1).zip(body).map(|(a, b)| a * b).sum::<f64>()
    }

    /// The second stage's view of every customer of an event table (indexed like
    /// `events.customers`): training counts of known customers and body rows, in the
    /// regime `opts` scores in. Empty without a second stage.
    pub fn stack_customers(
        &self,
        events: &Events,
        r: &Resolved,
        opts: &ScoreOptions,
    ) -> StackCustomers {
        let regime = if opts.choice_evidence {
            Regime::Purchase
        } else {
            Regime::Offer
        };
        let Some(stack) = &self.stack else {
            return StackCustomers::default();
        };
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
                let mc = r.customer.get(c).copied().unwrap_or(NONE);
                let pos = stack
                    .tables
                    .customer_pos
                    .get(mc as usize)
                    .copied()
                    .unwrap_or(0.0);
                let body = self.body_row(&values);
                StackCustomer {
                    regime,
                    rates: stack.customer_rates(self.customer_counts(mc), pos),
                    prior: self.prior_mean(&body),
                    body,
                }
            })
            .collect();
        StackCustomers {
            list,
            unknown: StackCustomer::default(),
        }
    }

    /// The second stage's view of a shopper: a known customer's training counts plus the
    /// small / fit / large outcomes of the request's history, and their body row, for
    /// sizes on offer.
    pub fn shopper_stack(&self, shopper: &ShopperRef<'_>) -> StackCustomer {
        let mut counts = [0.0; 3];
        let mut pos = 0.0;
        for h in &shopper.history {
            let class = outcomes()
                .classify(h.outcome.as_str())
                .and_then(|o| o.class());
            let label = crate::data::parse_size(
                h.size.as_str(),
                h.size_system.as_ref().map(|t| t.as_str()),
            );
            if let (Some(k), Ok(l)) = (class, label) {
                counts[k] += 1.0;
                pos += l.pos / self.scale(l.system) + self.align(l.system);
            }
        }
        self.shopper_stack_with(shopper, counts, pos)
    }

    /// [`Model::shopper_stack`] with the request history's small / fit / large counts and
    /// the sum of their label positions already computed (the recommend path has parsed
    /// every past purchase through its serving index).
    pub(crate) fn shopper_stack_with(
        &self,
        shopper: &ShopperRef<'_>,
        history_counts: [f64; 3],
        history_pos: f64,
    ) -> StackCustomer {
        let Some(stack) = &self.stack else {
            return StackCustomer::default();
        };
        let mc = shopper
            .customer_id
            .as_ref()
            .and_then(|id| self.customer_index(id.as_str()))
            .unwrap_or(NONE);
        let mut counts = self.customer_counts(mc);
        let mut pos = stack
            .tables
            .customer_pos
            .get(mc as usize)
            .copied()
            .unwrap_or(0.0);
        for (c, h) in counts.iter_mut().zip(history_counts) {
            *c += h;
        }
        pos += history_pos;
        let values = FeatureValues::from_request(&self.features, &shopper.features);
        let body = self.body_row(&values);
        StackCustomer {
            regime: Regime::Offer,
            rates: stack.customer_rates(counts, pos),
            prior: self.prior_mean(&body),
            body,
        }
    }

    /// The final probabilities `[small, fit, large]` of a purchase-time size belief in an
    /// article for a customer: the structural probabilities ([`Model::probs_article`]),
    /// refined by the second stage when the model has one.
    pub fn probs_final(
        &self,
        belief: SizeBelief,
        a: &ArticleRef,
        customer: &StackCustomer,
    ) -> [f64; 3] {
        self.probs_final_at((belief, a, self.article_size_index(a)), customer)
    }

    /// [`Model::probs_final`] with the product-in-size index already looked up
    /// ([`Model::article_size_index`]).
    pub(crate) fn probs_final_at(
        &self,
        (belief, a, art): (SizeBelief, &ArticleRef, Option<u32>),
        customer: &StackCustomer,
    ) -> [f64; 3] {
        let Some(stack) = &self.stack else {
            return self.probs_article_with(belief, a, art);
        };
        let levels = stack.levels_at(self, a, art);
        stack.predict(
            &self.stack_input_at((belief, a, art), levels, customer),
            customer.regime,
        )
    }

    /// [`Model::probs_final_at`] for one of the sizes on offer of one product for one
    /// shopper: the offer calibration's size-invariant part ([`OfferCalibration::tail`])
    /// is computed for the first size and kept in `tail` for the others (same numbers as
    /// computing it again: the features it sums do not depend on the size).
    pub(crate) fn probs_offer_at(
        &self,
        (belief, a, art): (SizeBelief, &ArticleRef, Option<u32>),
        customer: &StackCustomer,
        tail: &mut Option<OfferTail>,
    ) -> [f64; 3] {
        let offer = self
            .stack
            .as_ref()
            .and_then(|s| Some((s, s.offer.as_ref()?)));
        let Some((stack, offer)) = offer else {
            return self.probs_final_at((belief, a, art), customer);
        };
        if customer.regime != Regime::Offer || !offer.size_invariant_tail() {
            return self.probs_final_at((belief, a, art), customer);
        }
        let levels = stack.levels_at(self, a, art);
        let x = self.stack_input_at((belief, a, art), levels, customer);
        if tail.is_none() {
            *tail = offer.tail(&x);
        }
        match tail {
            Some(t) => offer.predict_with(&x, *t),
            None => x.probs,
        }
    }

    /// The second stage's raw inputs for a purchase-time belief in an article.
    pub fn stack_input<'a>(
        &self,
        (belief, a): (SizeBelief, &ArticleRef),
        levels: LevelFeatures,
        customer: &'a StackCustomer,
    ) -> StackInput<'a> {
        self.stack_input_at((belief, a, self.article_size_index(a)), levels, customer)
    }

    /// [`Model::stack_input`] with the product-in-size index already looked up.
    fn stack_input_at<'a>(
        &self,
        (belief, a, art): (SizeBelief, &ArticleRef, Option<u32>),
        levels: LevelFeatures,
        customer: &'a StackCustomer,
    ) -> StackInput<'a> {
        let t = self.true_size_with(a, art);
        let var = belief.var + self.article_var_with(a, art);
        let structural = self.probs_for(
            SizeBelief {
                mean: belief.mean,
                var,
            },
            t,
            self.band(a),
        );
        let (smallest, largest) = self.size_extreme(a);
        StackInput {
            probs: structural,
            gap: belief.mean - t,
            gap_sd: var.sqrt(),
            prior_gap: customer.prior - t,
            choice_gap: self.choice_centre(a) - t,
            label_pos: self.label_position(a),
            smallest,
            largest,
            levels,
            customer: customer.rates,
            body: &customer.body,
        }
    }

    /// The label's position on the common scale (size steps).
    pub fn label_position(&self, a: &ArticleRef) -> f64 {
        a.pos / self.scale(a.system) + self.align(a.system)
    }

    /// Product-in-size indices of the product's next smaller and next larger size seen in
    /// training ([`NONE`] where there is none).
    pub fn neighbour_sizes(&self, a: &ArticleRef) -> (u32, u32) {
        if a.product == NONE || a.label == NONE {
            return (NONE, NONE);
        }
        let Some(info) = self.product_info.get(a.product as usize) else {
            return (NONE, NONE);
        };
        let Some(k) = info.sizes.iter().position(|&l| l == a.label) else {
            return (NONE, NONE);
        };
        let at = |i: Option<usize>| {
            i.and_then(|i| info.sizes.get(i))
                .and_then(|&l| self.index.article_size.get(&(a.product, l)).copied())
                .unwrap_or(NONE)
        };
        (at(k.checked_sub(1)), at(k.checked_add(1)))
    }

    /// Whether the label is the product's (smallest, largest) size seen in training
    /// (both false for unknown products or labels, or a product seen in one size).
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
}

// ---------------------------------------------------------------------------------------
// training inputs

/// One training event's model lookups.
#[derive(Clone, Copy, Debug)]
struct TrainEvent {
    article: ArticleRef,
    /// Model product-in-size index or NONE.
    art: u32,
    /// Events customer index.
    ec: u32,
    /// Model customer index or NONE.
    customer: u32,
    class: usize,
    /// Stored state of the customer (their prior when the model has no customer table).
    state: CustomerState,
}

/// Which customers' events the learners are fitted on ([`StackParams::max_rows`]).
#[derive(Clone, Debug)]
pub struct CustomerSample {
    /// Share of customers kept, in (0, 1]; 1 keeps every customer.
    pub rate: f64,
    /// Kept or not, per events customer (empty when the rate is 1).
    keep: Vec<bool>,
}

impl CustomerSample {
    /// The sample for `events` under `max_rows` (0 = every customer): customers kept at
    /// rate `max_rows / fit events`, each by its id's hash.
    pub fn new(events: &Events, max_rows: usize) -> Self {
        let fit = events
            .outcome
            .iter()
            .filter(|o| o.class().is_some())
            .count();
        if max_rows == 0 || fit <= max_rows {
            return CustomerSample {
                rate: 1.0,
                keep: Vec::new(),
            };
        }
        let rate = max_rows as f64 / fit as f64;
        let keep = (0..events.customers.len())
            .map(|c| hash_in_sample(customer_hash(events, c as u32), rate))
            .collect();
        CustomerSample { rate, keep }
    }

    /// Whether the learners see events customer `ec`'s events.
    pub fn contains(&self, ec: u32) -> bool {
        self.keep.is_empty() || self.keep.get(ec as usize).copied().unwrap_or(false)
    }
}

/// True for a share `rate` of customer hashes: the hash mixed again (MurmurHash3's
/// 64-bit finaliser: FNV-1a's top bits are poorly mixed for short ids), its top 53 bits
/// as a fraction of one, below the rate. Cross-validation folds use the unmixed hash
/// modulo their count, so sample and folds are independent.
pub fn hash_in_sample(hash: u64, rate: f64) -> bool {
    let mut x = hash;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    rate >= 1.0 || ((x >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < rate
}

/// Out-of-sample inputs of every training event with a small / fit / large outcome.
pub struct TrainingInputs {
    /// Counts of all the training events against the final model.
    pub tables: StackTables,
    /// Inputs per event in the [`Regime::Purchase`] regime (body rows left out: see
    /// `bodies`).
    pub inputs: Vec<StackInput<'static>>,
    /// Inputs per event in the [`Regime::Offer`] regime (no choice evidence).
    pub offer: Vec<StackInput<'static>>,
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
/// encoder's own level codes), flat, and their length.
fn body_rows(model: &Model, events: &Events) -> (Vec<f64>, usize) {
    let dim = model.features.dim();
    let body_dim = dim.saturating_sub(1);
    let mut bodies = vec![0.0; events.customers.len() * body_dim];
    if body_dim > 0 {
        bodies
            .par_chunks_mut(body_dim)
            .enumerate()
            .for_each(|(c, out)| {
                let mut row = vec![0.0; dim];
                model
                    .features
                    .encode_training(&events.features, c, &mut row);
                out.copy_from_slice(&row[1..]);
            });
    }
    (bodies, body_dim)
}

/// The small / fit / large events of `events` resolved against `model`, grouped by
/// customer.
fn train_events(model: &Model, events: &Events) -> Vec<TrainEvent> {
    let r: Resolved = model.resolve(events);
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
            Some(TrainEvent {
                article,
                art: model.article_size_index(&article).unwrap_or(NONE),
                ec,
                customer: r.customer.get(ec as usize).copied().unwrap_or(NONE),
                class,
                state: *r.belief.get(ec as usize)?,
            })
        })
        .collect()
}

/// Count the training outcomes into tables aligned with the model.
fn count_tables(model: &Model, evs: &[TrainEvent]) -> StackTables {
    let mut t = StackTables {
        global: [0; 3],
        category: vec![[0; 3]; model.categories.len()],
        brand: vec![[0; 3]; model.brands.len()],
        product: vec![[0; 3]; model.products.len()],
        article_size: vec![[0; 3]; model.article_sizes.len()],
        customer: vec![[0; 3]; model.customers.len()],
        customer_pos: vec![0.0; model.customers.len()],
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
        if let Some(x) = t.customer_pos.get_mut(e.customer as usize) {
            *x += model.label_position(&e.article);
        }
    }
    t
}

/// Hash of a customer id (cross-validation groups).
fn customer_hash(events: &Events, ec: u32) -> u64 {
    events
        .customers
        .get(ec as usize)
        .map_or(u64::from(ec), |n| super::artifact::fnv1a(n.as_bytes()))
}

fn body_of(bodies: &[f64], dim: usize, ec: u32) -> &[f64] {
    let lo = ec as usize * dim;
    bodies.get(lo..lo + dim).unwrap_or(&[])
}

/// A stack input that no longer borrows the customer's body row.
fn detach(x: &StackInput<'_>) -> StackInput<'static> {
    StackInput {
        probs: x.probs,
        gap: x.gap,
        gap_sd: x.gap_sd,
        prior_gap: x.prior_gap,
        choice_gap: x.choice_gap,
        label_pos: x.label_pos,
        smallest: x.smallest,
        largest: x.largest,
        levels: x.levels,
        customer: x.customer,
        body: &[],
    }
}

/// The out-of-sample inputs of the training events `events` (the events the structural
/// `model` was fitted on): cross-fitted when `params.cross_fit > 1`, leave-one-out
/// otherwise.
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
        row: RowIds::Dense(
            events
                .row
                .iter()
                .zip(keep)
                .filter(|x| *x.1)
                .map(|x| x.0)
                .collect(),
        ),
        customers: events.customers.clone(),
        products: events.products.clone(),
        brands: events.brands.clone(),
        categories: events.categories.clone(),
        sizes: events.sizes.clone(),
        features: events.features.clone(),
    }
}

/// Cross-fitted inputs: the events are split into `cross_fit` random folds (by row); for
/// each, the structural model and the counts are refitted on the other folds and the
/// fold's events get exactly the inputs that model gives new events.
fn cross_fit_inputs(
    model: &Model,
    events: &Events,
    params: &StackParams,
) -> Result<TrainingInputs, ModelError> {
    let k = params.cross_fit as u64;
    let (bodies, body_dim) = body_rows(model, events);
    let tables = count_tables(model, &train_events(model, events));
    let sample = CustomerSample::new(events, params.max_rows);
    log_sample(&sample);
    let fold: Vec<u64> = (0..events.len())
        .map(|i| {
            let r = events.row.get(i).unwrap_or(i as u64);
            super::artifact::fnv1a(&r.to_le_bytes()) % k
        })
        .collect();
    let mut out = TrainingInputs {
        tables,
        inputs: Vec::new(),
        offer: Vec::new(),
        classes: Vec::new(),
        group: Vec::new(),
        bodies,
        body_dim,
        customer: Vec::new(),
    };
    let opts = ScoreOptions::default();
    let free = ScoreOptions {
        choice_evidence: false,
    };
    let sm = &params.smoothing;
    for f in 0..k {
        let t0 = std::time::Instant::now();
        let train_k = subset(events, &fold.iter().map(|&x| x != f).collect::<Vec<_>>());
        let held = subset(events, &fold.iter().map(|&x| x == f).collect::<Vec<_>>());
        let model_k = params.structural.fit(&train_k)?;
        let tables_k = count_tables(&model_k, &train_events(&model_k, &train_k));
        let global = global_rates(tables_k.global);
        let r = model_k.resolve(&held);
        let bodies = &out.bodies;
        type Row = (StackInput<'static>, StackInput<'static>, u8, u32);
        let rows: Vec<Row> = (0..held.len())
            .into_par_iter()
            .with_min_len(1024)
            .filter_map(|i| {
                let class = held.outcome[i].class()?;
                if !sample.contains(held.customer[i]) {
                    return None;
                }
                let (a, belief) = model_k.event_view(&held, &r, i, &opts)?;
                let (_, belief_free) = model_k.event_view(&held, &r, i, &free)?;
                let ec = held.customer[i];
                let counts = count_at(
                    &tables_k.customer,
                    r.customer.get(ec as usize).copied().unwrap_or(NONE),
                )
                .unwrap_or([0.0; 3]);
                let mc = r.customer.get(ec as usize).copied().unwrap_or(NONE);
                let pos = tables_k
                    .customer_pos
                    .get(mc as usize)
                    .copied()
                    .unwrap_or(0.0);
                let body = body_of(bodies, body_dim, ec).to_vec();
                let sc = StackCustomer {
                    regime: Regime::Purchase,
                    rates: customer_rates(sm, global, counts, pos),
                    prior: model_k.prior_mean(&body),
                    body,
                };
                let levels = level_features(sm, global, &level_counts(&model_k, &tables_k, &a));
                let x = model_k.stack_input((belief, &a), levels, &sc);
                let o = model_k.stack_input((belief_free, &a), levels, &sc);
                Some((detach(&x), detach(&o), class as u8, ec))
            })
            .collect();
        for (x, o, y, ec) in rows {
            out.inputs.push(x);
            out.offer.push(o);
            out.classes.push(y);
            out.group.push(customer_hash(events, ec));
            out.customer.push(ec);
        }
        tracing::info!(
            target: "runsize::stack",
            fold = f,
            seconds = t0.elapsed().as_secs_f64(),
            "cross-fitted fold"
        );
    }
    Ok(out)
}

/// Pass 1 of the leave-one-out inputs for one event: the customer's leave-one-out belief
/// at the purchase and the event's derivatives with respect to the article's true size
/// and band at that belief.
#[derive(Clone, Copy, Debug)]
struct Pre {
    belief: SizeBelief,
    /// The belief without this purchase's choice (sizes on offer).
    belief_free: SizeBelief,
    t: f64,
    eta: f64,
    gt: f64,
    ht: f64,
    ge: f64,
    he: f64,
}

/// The customer at each of their training events without it (in order): one Newton
/// step back from the stored posterior, as the fit's leave-one-out pass takes it.
fn customer_pass(model: &Model, evs: &[TrainEvent]) -> Vec<Pre> {
    let g = &model.globals;
    let Some(first) = evs.first() else {
        return Vec::new();
    };
    let st = first.state;
    let known = first.customer != NONE && model.known_customer(first.customer as usize).is_some();
    let hist_prec = 1.0 / (g.sd_choice * g.sd_choice + g.sd_drift * g.sd_drift).max(1e-9);
    let (hss, hsu, huu) = inv2(st.ss, st.su, st.uu);
    evs.iter()
        .map(|e| {
            let a = &e.article;
            let t = model.true_size(a);
            let eta = model.band(a);
            let xc = model.choice_centre(a);
            let loo = if known {
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
                belief_free: model.at_purchase(&loo, None),
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

/// What the leave-one-out pass 2 reads.
struct LooContext<'a> {
    model: &'a Model,
    tables: &'a StackTables,
    smoothing: &'a Smoothing,
    global: [f64; 3],
    bodies: &'a [f64],
    body_dim: usize,
}

fn loo_at(table: &[Counts], i: u32, y: usize) -> Option<[f64; 3]> {
    if i == NONE {
        return None;
    }
    table.get(i as usize).map(|&c| leave_one_out(c, y))
}

/// Pass 2: the event's inputs without its own outcome in the article's size and band
/// (`band_var`: the product band's variance, 0 to leave the band) or in the counts.
fn event_input(
    cx: &LooContext<'_>,
    e: &TrainEvent,
    x: &Pre,
    band_var: f64,
) -> (StackInput<'static>, StackInput<'static>) {
    let model = cx.model;
    let a = &e.article;
    let y = e.class;
    let mut t = x.t;
    let mut eta = x.eta;
    let v = influence_var(model, a, e.art);
    let r = (v * x.ht).min(MAX_SHARE);
    t += v * x.gt / (1.0 - r);
    let article_var = model.article_var(a) + v / (1.0 - r) - v;
    if band_var > 0.0 {
        let r = (band_var * x.he).min(MAX_SHARE);
        eta += band_var * x.ge / (1.0 - r);
    }
    let g = &model.globals;
    let (down, up) = model.neighbour_sizes(a);
    let counts = LevelCounts {
        category: loo_at(&cx.tables.category, a.category, y),
        brand: loo_at(&cx.tables.brand, a.brand, y),
        product: loo_at(&cx.tables.product, a.product, y),
        article_size: loo_at(&cx.tables.article_size, e.art, y),
        down: count_at(&cx.tables.article_size, down),
        up: count_at(&cx.tables.article_size, up),
    };
    let customer = loo_at(&cx.tables.customer, e.customer, y).unwrap_or([0.0; 3]);
    let pos = cx
        .tables
        .customer_pos
        .get(e.customer as usize)
        .map_or(0.0, |p| p - model.label_position(a));
    let (smallest, largest) = model.size_extreme(a);
    let levels = level_features(cx.smoothing, cx.global, &counts);
    let rates = customer_rates(cx.smoothing, cx.global, customer, pos);
    let prior = model.prior_mean(body_of(cx.bodies, cx.body_dim, e.ec));
    let input = |belief: SizeBelief| {
        let var = belief.var + article_var;
        let (ca, cb) = cut_points(g, belief.mean - t, eta, uncertainty_scale(g.w, var));
        StackInput {
            probs: probs(ca, cb),
            gap: belief.mean - t,
            gap_sd: var.sqrt(),
            prior_gap: prior - t,
            choice_gap: model.choice_centre(a) - t,
            label_pos: model.label_position(a),
            smallest,
            largest,
            levels,
            customer: rates,
            body: &[],
        }
    };
    (input(x.belief), input(x.belief_free))
}

fn log_sample(sample: &CustomerSample) {
    if sample.rate < 1.0 {
        tracing::info!(
            target: "runsize::stack",
            rate = sample.rate,
            "second stage learners on a sample of customers (see StackParams::max_rows)"
        );
    }
}

/// Leave-one-out inputs (see the module documentation).
fn loo_inputs(model: &Model, events: &Events, params: &StackParams) -> TrainingInputs {
    let (bodies, body_dim) = body_rows(model, events);
    let evs = train_events(model, events);
    let tables = count_tables(model, &evs);
    // customer groups
    let mut bounds = Vec::new();
    let mut lo = 0;
    for k in 1..=evs.len() {
        if k == evs.len() || evs[k].ec != evs[lo].ec {
            bounds.push((lo, k));
            lo = k;
        }
    }
    let pre: Vec<Pre> = bounds
        .par_iter()
        .map(|&(lo, hi)| customer_pass(model, &evs[lo..hi]))
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect();
    // products' band information (the fit learns a band per product when any is non-zero)
    let learned_bands = model.products.iter().any(|p| p.eta != 0.0);
    let mut band_info = vec![0.0; model.products.len()];
    for (e, x) in evs.iter().zip(&pre) {
        if let Some(h) = band_info.get_mut(e.article.product as usize) {
            *h += x.he;
        }
    }
    let prior_prec = 1.0 / model.globals.sd_eta_product.powi(2).max(1e-12);
    let cx = LooContext {
        model,
        tables: &tables,
        smoothing: &params.smoothing,
        global: global_rates(tables.global),
        bodies: &bodies,
        body_dim,
    };
    let sample = CustomerSample::new(events, params.max_rows);
    log_sample(&sample);
    // the band information above sums over every event; the inputs only for the sample
    let (evs, pre): (Vec<TrainEvent>, Vec<Pre>) = if sample.rate < 1.0 {
        evs.into_iter()
            .zip(pre)
            .filter(|(e, _)| sample.contains(e.ec))
            .unzip()
    } else {
        (evs, pre)
    };
    let (inputs, offer): (Vec<StackInput<'static>>, Vec<StackInput<'static>>) = evs
        .par_iter()
        .zip(pre.par_iter())
        .map(|(e, x)| {
            let band_var = if learned_bands {
                band_info
                    .get(e.article.product as usize)
                    .map_or(0.0, |h| 1.0 / (h + prior_prec))
            } else {
                0.0
            };
            event_input(&cx, e, x, band_var)
        })
        .collect();
    let group = evs.iter().map(|e| customer_hash(events, e.ec)).collect();
    let classes = evs.iter().map(|e| e.class as u8).collect();
    let customer = evs.iter().map(|e| e.ec).collect();
    TrainingInputs {
        tables,
        inputs,
        offer,
        classes,
        group,
        bodies,
        body_dim,
        customer,
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
        Some((folds, f)) => folds.get(i).is_some_and(|&x| x != f && x != NO_FOLD),
        None => true,
    }
}

/// Fold of a row outside the cross-validation sample ([`StackParams::cv_rows`]): in no
/// fold's training or held-out part.
pub const NO_FOLD: u8 = u8::MAX;

/// Whether the row of a customer with hash `group` takes part in the cross-validation
/// of `n` rows under `cv_rows` (0 = all): a sample of customers independent of the
/// [`StackParams::max_rows`] one (the hash is salted first).
fn in_cv(group: u64, n: usize, cv_rows: usize) -> bool {
    if cv_rows == 0 || n <= cv_rows {
        return true;
    }
    hash_in_sample(
        group.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15,
        cv_rows as f64 / n as f64,
    )
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
                let (gs, gl) = s.grad.split_at_mut(p);
                for ((a, b), &v) in gs.iter_mut().zip(gl.iter_mut()).zip(row) {
                    *a += rs * v;
                    *b += rl * v;
                }
                if hessian {
                    let wss = pr[0] * (1.0 - pr[0]);
                    let wsl = -pr[0] * pr[2];
                    let wll = pr[2] * (1.0 - pr[2]);
                    for (j, &xj) in row.iter().enumerate() {
                        let (a, b, c) = (wss * xj, wsl * xj, wll * xj);
                        let tail = &row[j..];
                        let lo = j * p + j;
                        let hi = j * p + p;
                        for (((s, l), m), &xk) in acc_ss[lo..hi]
                            .iter_mut()
                            .zip(acc_sl[lo..hi].iter_mut())
                            .zip(acc_ll[lo..hi].iter_mut())
                            .zip(tail)
                        {
                            *s += a * xk;
                            *l += b * xk;
                            *m += c * xk;
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

/// The standardised design of a feature set, and its feature map.
fn design_for(
    inputs: &TrainingInputs,
    rows: &[StackInput<'static>],
    set: FeatureSet,
    params: &StackParams,
) -> (Vec<f64>, FeatureSpec) {
    let mut spec = FeatureSpec {
        set,
        gap_knots: params.gap_knots.clone(),
        label_knots: quantiles(
            rows.iter().map(|x| x.label_pos).collect(),
            &[0.1, 0.3, 0.5, 0.7, 0.9],
        ),
        body_dim: inputs.body_dim,
        mean: Vec::new(),
        scale: Vec::new(),
        lo: Vec::new(),
        hi: Vec::new(),
    };
    let p = n_features(&spec);
    let mut x = Vec::with_capacity(rows.len() * p);
    for (inp, &c) in rows.iter().zip(&inputs.customer) {
        let body = body_of(&inputs.bodies, inputs.body_dim, c);
        features(&spec, &StackInput { body, ..*inp }, &mut |v| x.push(v));
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

// ---------------------------------------------------------------------------------------
// the whole second-stage fit

/// Hyper-parameters of the second stage's fit. Defaults are documented per field.
#[derive(Clone, Debug, PartialEq)]
pub struct StackParams {
    /// Cross-validation folds, by customer, choosing the penalty and feature set
    /// (default 5; 1 = no cross-validation: the first penalty and set).
    pub folds: usize,
    /// Candidate ridge penalties on the summed log loss (default 1, 10, 100, 1000).
    pub lambdas: Vec<f64>,
    /// Candidate feature sets (default [`FeatureSet::FULL`] alone: [`FeatureSet::MAIN`]
    /// lost 0.005 AUC in cross-validation on RentTheRunway).
    /// Without cross-fitting the `label` group is dropped from each (see the module
    /// documentation).
    pub sets: Vec<FeatureSet>,
    /// Feature groups of the [`Regime::Offer`] calibration (default
    /// [`FeatureSet::OFFER`]; groups that differ between sizes would let it reorder them).
    pub offer_set: FeatureSet,
    /// Rate smoothing (default [`Smoothing::default`]).
    pub smoothing: Smoothing,
    /// Hinge knots of the gaps (default −1, 0, 1 size steps).
    pub gap_knots: Vec<f64>,
    /// Newton iterations at most (default 30).
    pub max_iter: usize,
    /// Cross-fitting folds: > 1 refits the structural model this many times, each on all
    /// but one random fold of the events, and gives the left-out fold's events the inputs
    /// that model gives new events; 0 or 1 uses leave-one-out inputs instead (default 5).
    pub cross_fit: usize,
    /// Parameters of the structural refits when cross-fitting (default
    /// [`FitParams::default`]; pass the main fit's).
    pub structural: FitParams,
    /// Most training events the learners are fitted on (default 1,000,000; 0 = all).
    /// With more, they are fitted on the events of a random sample of customers (by a
    /// hash of the customer id, so a customer's events are all in or all out and the
    /// cross-validation by customer stays honest) that hold about this many; the count
    /// tables and the structural refits still use every event. A learner has a few
    /// hundred coefficients at most: a million events pin them down, and its cost
    /// (time, and memory for its design matrix) no longer grows with the data.
    pub max_rows: usize,
    /// Most events the cross-validation (the choice of penalty and feature set) is run
    /// on (default 250,000; 0 = all): above it, the events of a random sample of
    /// customers holding about this many, drawn independently of the `max_rows`
    /// sample. The chosen penalty is a prior precision on the coefficients, which does
    /// not depend on the number of events: the final fits use every row with it. The
    /// cross-validation is most of a learner's time (penalties x folds fits).
    pub cv_rows: usize,
}

impl Default for StackParams {
    fn default() -> Self {
        StackParams {
            folds: 5,
            lambdas: vec![1.0, 10.0, 100.0, 1000.0],
            sets: vec![FeatureSet::FULL],
            offer_set: FeatureSet::OFFER,
            smoothing: Smoothing::default(),
            gap_knots: vec![-1.0, 0.0, 1.0],
            max_iter: 30,
            cross_fit: 5,
            structural: FitParams::default(),
            max_rows: 1_000_000,
            cv_rows: 250_000,
        }
    }
}

impl StackParams {
    /// Leave-one-out inputs (no structural refits) with the feature set that is safe
    /// for them.
    pub fn leave_one_out(mut self) -> Self {
        self.cross_fit = 0;
        self.sets = vec![FeatureSet::LOO];
        self
    }

    /// Check the parameters.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |why: &str| Err(ModelError::Param(format!("second stage: {why}")));
        if self.lambdas.is_empty() || self.sets.is_empty() {
            return bad("at least one penalty and one feature set");
        }
        if self.lambdas.iter().any(|l| !(l.is_finite() && *l >= 0.0)) {
            return bad("penalties must be finite and >= 0");
        }
        if self.folds == 0 || self.folds > 50 || self.cross_fit > 50 {
            return bad("folds must be 1..=50 and cross_fit 0..=50");
        }
        let s = &self.smoothing;
        if [s.category, s.brand, s.product, s.article_size, s.customer]
            .iter()
            .any(|m| !(m.is_finite() && *m > 0.0))
        {
            return bad("smoothing pseudo-counts must be positive");
        }
        if self.gap_knots.iter().any(|k| !k.is_finite()) {
            return bad("gap knots must be finite");
        }
        Ok(())
    }

    /// Fit the second stage for `model` on the events it was trained on; the result is
    /// prepared for prediction.
    pub fn fit(&self, model: &Model, events: &Events) -> Result<Stack, ModelError> {
        self.validate()?;
        let inputs = training_inputs(model, events, self)?;
        if inputs.inputs.is_empty() {
            return Err(ModelError::NoFitEvents);
        }
        // the label position isolates the article's true size, whose leave-one-out
        // step is approximate: only with cross-fitted inputs
        let sets: Vec<FeatureSet> = self
            .sets
            .iter()
            .map(|s| FeatureSet {
                label: s.label && self.cross_fit > 1,
                ..*s
            })
            .collect();
        let mut stack = Stack {
            smoothing: self.smoothing.clone(),
            cross_fit: if self.cross_fit > 1 {
                self.cross_fit
            } else {
                0
            },
            purchase: self.fit_learner(&inputs, &inputs.inputs, &sets)?,
            offer: self.fit_offer(&inputs, &inputs.offer, self.offer_set)?,
            tables: inputs.tables,
            cache: StackCache::default(),
        };
        stack.prepare(model);
        Ok(stack)
    }

    /// Choose the penalty and feature set by cross-validation by customer on `rows`,
    /// then fit on all of them.
    fn fit_learner(
        &self,
        inputs: &TrainingInputs,
        rows: &[StackInput<'static>],
        sets: &[FeatureSet],
    ) -> Result<StackLogit, ModelError> {
        let k = self.folds as u64;
        let n = rows.len();
        let folds: Vec<u8> = inputs
            .group
            .iter()
            .map(|&g| {
                if in_cv(g, n, self.cv_rows) {
                    (g % k) as u8
                } else {
                    NO_FOLD
                }
            })
            .collect();
        let mut cv = Vec::new();
        let mut best: Option<(f64, usize, f64)> = None; // (log loss, set index, lambda)
        if k > 1 && sets.len() * self.lambdas.len() > 1 {
            for (si, &set) in sets.iter().enumerate() {
                let (x, spec) = design_for(inputs, rows, set, self);
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
                    tracing::debug!(
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
        let set = sets[si];
        let (x, spec) = design_for(inputs, rows, set, self);
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
        Ok(StackLogit {
            spec,
            coef,
            lambda,
            cv,
            folded: Folded::default(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// sizes on offer: a calibration that keeps the structural order of sizes

/// The learner for [`Regime::Offer`]: calibrates the structural probabilities of a size
/// on offer without reordering the sizes of one product for one shopper.
///
/// `P(fit) = σ(w·z)` where `z` holds the structural `logit P(fit)` and features that do
/// not differ between sizes (product, customer, category / brand rates, body); its
/// weight on the structural logit is positive, so the size with the highest structural
/// fit probability keeps it. `P(small | misfit) = σ(v·z')` adds the structural
/// `ln(P(small) / P(large))`. Learned from observed purchases, size-level features (label
/// position, size rates, gaps) would rank hypothetical sizes by who chose them: on the
/// RentTheRunway valid part an unconstrained learner recommended the rented size of fit
/// events 24% of the time against the structural model's 41%.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OfferCalibration {
    /// Feature map (its `set` picks the size-invariant groups; the first three raw
    /// features are 1, the structural fit logit and the small-vs-large log-odds).
    pub spec: FeatureSpec,
    /// Coefficients of `P(fit)` on the standardised features less the third.
    pub fit: Vec<f64>,
    /// Coefficients of `P(small | misfit)` on all standardised features.
    pub split: Vec<f64>,
    /// Ridge penalties chosen for the two.
    pub lambda: [f64; 2],
    /// Cross-validated log loss per event of the three-class probabilities.
    pub cv_log_loss: f64,
}

/// The raw offer features: [`features`] with the structural log-odds replaced by the
/// fit logit and the small-vs-large log-odds.
fn offer_features(spec: &FeatureSpec, x: &StackInput<'_>, out: &mut Vec<f64>) {
    out.clear();
    features(spec, x, &mut |v| out.push(v));
    if out.len() >= 3 {
        let (ls, ll) = (out[1], out[2]);
        let m = ls.max(ll);
        // logit P(fit) = −ln(P(small)/P(fit) + P(large)/P(fit))
        out[1] = -(m + ((ls - m).exp() + (ll - m).exp()).ln());
        out[2] = ls - ll;
    }
}

/// Sums of a penalised binary logistic regression over `rows` (indices into `x`, `p`
/// columns, `cols` of them used): log loss, gradient, Hessian.
struct BinaryFit<'a> {
    x: &'a [f64],
    p: usize,
    cols: &'a [usize],
    y: &'a [bool],
}

impl BinaryFit<'_> {
    fn sums(&self, rows: &[u32], beta: &[f64]) -> (f64, Vec<f64>, Vec<f64>) {
        let q = self.cols.len();
        let parts: Vec<(f64, Vec<f64>, Vec<f64>)> = rows
            .par_chunks(CHUNK)
            .map(|chunk| {
                let (mut nll, mut g, mut h) = (0.0, vec![0.0; q], vec![0.0; q * q]);
                let mut z = vec![0.0; q];
                for &i in chunk {
                    let i = i as usize;
                    let row = &self.x[i * self.p..(i + 1) * self.p];
                    for (zk, &c) in z.iter_mut().zip(self.cols) {
                        *zk = row[c];
                    }
                    let eta: f64 = z.iter().zip(beta).map(|(a, b)| a * b).sum();
                    let pr = super::math::sigmoid(eta);
                    let yi = self.y[i];
                    nll -= if yi { pr } else { 1.0 - pr }.max(1e-300).ln();
                    let r = pr - f64::from(u8::from(yi));
                    let w = pr * (1.0 - pr);
                    for j in 0..q {
                        g[j] += r * z[j];
                        let a = w * z[j];
                        for (hk, &zk) in h[j * q..j * q + q].iter_mut().zip(&z) {
                            *hk += a * zk;
                        }
                    }
                }
                (nll, g, h)
            })
            .collect();
        let mut total = (0.0, vec![0.0; q], vec![0.0; q * q]);
        for (n, g, h) in &parts {
            total.0 += n;
            total.1.iter_mut().zip(g).for_each(|(a, b)| *a += b);
            total.2.iter_mut().zip(h).for_each(|(a, b)| *a += b);
        }
        total
    }

    /// Penalised Newton fit (column 0, the intercept, unpenalised).
    fn fit(&self, rows: &[u32], lambda: f64, max_iter: usize) -> Result<Vec<f64>, ModelError> {
        let q = self.cols.len();
        let mut beta = vec![0.0; q];
        let pen = |b: &[f64]| 0.5 * lambda * b.iter().skip(1).map(|v| v * v).sum::<f64>();
        let (mut nll, mut g, mut h) = self.sums(rows, &beta);
        let mut obj = nll + pen(&beta);
        for _ in 0..max_iter {
            for j in 0..q {
                h[j * q + j] += if j == 0 { 1e-8 } else { lambda.max(1e-8) };
                if j > 0 {
                    g[j] += lambda * beta[j];
                }
            }
            let neg: Vec<f64> = g.iter().map(|v| -v).collect();
            let step = super::features::cholesky_solve(&mut h, &neg, q).ok_or_else(|| {
                ModelError::Diverged("offer calibration: singular Hessian".into())
            })?;
            let mut scale = 1.0;
            let mut accepted = false;
            for _ in 0..12 {
                let cand: Vec<f64> = beta.iter().zip(&step).map(|(b, d)| b + scale * d).collect();
                let (cn, cg, ch) = self.sums(rows, &cand);
                let cobj = cn + pen(&cand);
                if cobj.is_finite() && cobj <= obj + 1e-12 * obj.abs() {
                    let gain = obj - cobj;
                    (beta, nll, g, h, obj) = (cand, cn, cg, ch, cobj);
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
        let _ = nll;
        Ok(beta)
    }
}

/// The two logits of an [`OfferCalibration`], summed feature by feature.
struct OfferSum<'c> {
    calibration: &'c OfferCalibration,
    fit: f64,
    split: f64,
    /// Next coefficient of the fit logit (it skips feature 2).
    k: usize,
}

impl OfferSum<'_> {
    /// Add raw feature `j` of value `v`.
    #[inline]
    fn add(&mut self, j: usize, v: f64) {
        let c = self.calibration;
        let sp = &c.spec;
        let (Some(mean), Some(scale), Some(lo), Some(hi), Some(w)) = (
            sp.mean.get(j),
            sp.scale.get(j),
            sp.lo.get(j),
            sp.hi.get(j),
            c.split.get(j),
        ) else {
            return;
        };
        let z = ((v - mean) / scale).clamp(*lo, *hi);
        self.split += w * z;
        if j != 2 {
            if let Some(f) = c.fit.get(self.k) {
                self.fit += f * z;
            }
            self.k += 1;
        }
    }
}

/// An [`OfferCalibration`]'s two logits summed over the features after the first three
/// (which are the same for every size of one product for one shopper with the default
/// feature groups, see [`OfferCalibration::size_invariant_tail`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OfferTail {
    fit: f64,
    split: f64,
}

impl OfferCalibration {
    /// Probabilities `[small, fit, large]` for raw inputs (the structural ones if the
    /// calibration does not fit its feature map).
    pub fn predict(&self, x: &StackInput<'_>) -> [f64; 3] {
        match self.tail(x) {
            Some(tail) => self.predict_with(x, tail),
            None => x.probs,
        }
    }

    /// Whether its features after the first three depend only on the product, its brand
    /// and category, and the shopper — not on the size (true for the default offer groups,
    /// [`FeatureSet::OFFER`]): then [`OfferCalibration::tail`] of one size of a product
    /// serves every size of it.
    pub fn size_invariant_tail(&self) -> bool {
        let s = self.spec.set;
        !(s.gap
            || s.article_size
            || s.interactions
            || s.shape
            || s.label
            || s.pairs
            || s.neighbours
            || s.history)
    }

    /// The two logits summed over the raw features after the first three (`None` when
    /// the calibration does not fit its feature map).
    pub fn tail(&self, x: &StackInput<'_>) -> Option<OfferTail> {
        let sp = &self.spec;
        let p = sp.mean.len();
        if p < 3 || self.fit.len() + 1 != p || self.split.len() != p {
            return None;
        }
        // the features as they come, without a row buffer; feature 3 is the fit
        // logit's coefficient 2 (it skips feature 2)
        let mut sum = OfferSum {
            calibration: self,
            fit: 0.0,
            split: 0.0,
            k: 2,
        };
        let mut j = 0usize;
        features(sp, x, &mut |v| {
            if j >= 3 {
                sum.add(j, v);
            }
            j += 1;
        });
        (j == p).then_some(OfferTail {
            fit: sum.fit,
            split: sum.split,
        })
    }

    /// Probabilities `[small, fit, large]` for raw inputs whose features after the first
    /// three sum to `tail`: the first three (1, the structural fit logit, the
    /// small-vs-large log-odds; see `offer_features`) from the structural probabilities.
    pub fn predict_with(&self, x: &StackInput<'_>, tail: OfferTail) -> [f64; 3] {
        let pr = x.probs;
        // as `features` writes them ...
        let lf = pr[1].max(P_FLOOR).ln();
        let ls = pr[0].max(P_FLOOR).ln() - lf;
        let ll = pr[2].max(P_FLOOR).ln() - lf;
        // ... and `offer_features` replaces them
        let m = ls.max(ll);
        let head = [1.0, -(m + ((ls - m).exp() + (ll - m).exp()).ln()), ls - ll];
        let mut sum = OfferSum {
            calibration: self,
            fit: 0.0,
            split: 0.0,
            k: 0,
        };
        for (i, &h) in head.iter().enumerate() {
            sum.add(i, h);
        }
        let pf = super::math::sigmoid(sum.fit + tail.fit);
        let q = super::math::sigmoid(sum.split + tail.split);
        let out = [(1.0 - pf) * q, pf, (1.0 - pf) * (1.0 - q)];
        if out.iter().all(|v| v.is_finite()) {
            out
        } else {
            x.probs
        }
    }
}

impl StackParams {
    /// Fit the offer calibration on `rows` (offer-regime inputs of the training events);
    /// penalties by cross-validation by customer. `None` when the weight on the
    /// structural fit logit does not come out positive (the calibration could then
    /// reorder sizes).
    fn fit_offer(
        &self,
        inputs: &TrainingInputs,
        rows: &[StackInput<'static>],
        set: FeatureSet,
    ) -> Result<Option<OfferCalibration>, ModelError> {
        let mut spec = FeatureSpec {
            set,
            gap_knots: self.gap_knots.clone(),
            label_knots: Vec::new(),
            body_dim: inputs.body_dim,
            mean: Vec::new(),
            scale: Vec::new(),
            lo: Vec::new(),
            hi: Vec::new(),
        };
        let p = n_features(&spec);
        let mut x = Vec::with_capacity(rows.len() * p);
        let mut row = Vec::with_capacity(p);
        for (inp, &c) in rows.iter().zip(&inputs.customer) {
            let body = body_of(&inputs.bodies, inputs.body_dim, c);
            offer_features(&spec, &StackInput { body, ..*inp }, &mut row);
            x.extend_from_slice(&row);
        }
        let (mean, scale, lo, hi) = standardise(&mut x, p);
        (spec.mean, spec.scale, spec.lo, spec.hi) = (mean, scale, lo, hi);
        let fit_cols: Vec<usize> = (0..p).filter(|&j| j != 2).collect();
        let all_cols: Vec<usize> = (0..p).collect();
        let is_fit: Vec<bool> = inputs.classes.iter().map(|&c| c == 1).collect();
        let is_small: Vec<bool> = inputs.classes.iter().map(|&c| c == 0).collect();
        let fit_model = BinaryFit {
            x: &x,
            p,
            cols: &fit_cols,
            y: &is_fit,
        };
        let split_model = BinaryFit {
            x: &x,
            p,
            cols: &all_cols,
            y: &is_small,
        };
        let k = self.folds.max(1) as u64;
        let n = rows.len();
        // rows outside the cross-validation sample are in no fold (u64::MAX)
        let fold: Vec<u64> = inputs
            .group
            .iter()
            .map(|&g| {
                if in_cv(g, n, self.cv_rows) {
                    g % k
                } else {
                    u64::MAX
                }
            })
            .collect();
        let misfit = |i: usize| inputs.classes[i] != 1;
        let pick = |keep: &dyn Fn(usize) -> bool| -> Vec<u32> {
            (0..n).filter(|&i| keep(i)).map(|i| i as u32).collect()
        };
        // penalties by held-out log loss of each part
        let mut best = [(f64::INFINITY, self.lambdas[0]); 2];
        if k > 1 && self.lambdas.len() > 1 {
            for &lambda in &self.lambdas {
                let mut loss = [0.0; 2];
                for f in 0..k {
                    let train_all = pick(&|i| fold[i] != f && fold[i] != u64::MAX);
                    let train_mis = pick(&|i| fold[i] != f && fold[i] != u64::MAX && misfit(i));
                    let bf = fit_model.fit(&train_all, lambda, self.max_iter)?;
                    let bs = split_model.fit(&train_mis, lambda, self.max_iter)?;
                    loss[0] += fit_model.sums(&pick(&|i| fold[i] == f), &bf).0;
                    loss[1] += split_model
                        .sums(&pick(&|i| fold[i] == f && misfit(i)), &bs)
                        .0;
                }
                for (b, l) in best.iter_mut().zip(loss) {
                    if l < b.0 {
                        *b = (l, lambda);
                    }
                }
            }
        }
        let all = pick(&|_| true);
        let fit = fit_model.fit(&all, best[0].1, self.max_iter)?;
        let split = split_model.fit(&pick(&misfit), best[1].1, self.max_iter)?;
        if fit.get(1).is_none_or(|&w| w <= 0.0) {
            return Ok(None);
        }
        Ok(Some(OfferCalibration {
            spec,
            fit,
            split,
            lambda: [best[0].1, best[1].1],
            cv_log_loss: (best[0].0 + best[1].0)
                / fold.iter().filter(|&&f| f != u64::MAX).count().max(1) as f64,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_sample_keeps_its_share() {
        // FNV-1a hashes of customer-like ids, as the sample sees them
        let hashes: Vec<u64> = (0..100_000)
            .map(|i| super::super::artifact::fnv1a(format!("C{i:07}").as_bytes()))
            .collect();
        for rate in [0.01, 0.1, 0.3, 0.77] {
            let kept = hashes.iter().filter(|&&h| hash_in_sample(h, rate)).count();
            let share = kept as f64 / hashes.len() as f64;
            // binomial sd at 100k draws is at most 0.0016
            assert!((share - rate).abs() < 0.006, "rate {rate}: kept {share}");
            // independent of the cross-validation folds (the hash's low bits)
            let fold0 = hashes
                .iter()
                .filter(|&&h| h % 5 == 0 && hash_in_sample(h, rate))
                .count();
            let fold_share = fold0 as f64 / kept as f64;
            assert!(
                (fold_share - 0.2).abs() < 0.03,
                "rate {rate}: fold 0 {fold_share}"
            );
        }
        assert!(hashes.iter().all(|&h| hash_in_sample(h, 1.0)));
        assert!(!hashes.iter().any(|&h| hash_in_sample(h, 0.0)));
    }

    #[test]
    fn smoothing_hand_values() {
        // (c + m·prior)/(n + m) = ([1,2,1] + 4·[.2,.6,.2]) / 8
        let r = smooth([1.0, 2.0, 1.0], [0.2, 0.6, 0.2], 4.0);
        assert!((r[0] - 0.225).abs() < 1e-12);
        assert!((r[1] - 0.55).abs() < 1e-12);
        assert!((r[2] - 0.225).abs() < 1e-12);
        // no data: the prior
        let r = smooth([0.0; 3], [0.1, 0.7, 0.2], 3.0);
        for (a, b) in r.iter().zip([0.1, 0.7, 0.2]) {
            assert!((a - b).abs() < 1e-12);
        }
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

    fn spec(set: FeatureSet) -> FeatureSpec {
        FeatureSpec {
            set,
            gap_knots: vec![-1.0, 0.0, 1.0],
            label_knots: vec![0.0, 1.0],
            body_dim: 2,
            mean: Vec::new(),
            scale: Vec::new(),
            lo: Vec::new(),
            hi: Vec::new(),
        }
    }

    #[test]
    fn feature_counts_and_values() {
        let none = FeatureSet {
            gap: false,
            product: false,
            article_size: false,
            customer: false,
            group: false,
            interactions: false,
            body: false,
            shape: false,
            label: false,
            pairs: false,
            neighbours: false,
            history: false,
        };
        // intercept and the two structural log-odds
        assert_eq!(n_features(&spec(none)), 3);
        // 3 + gap 7 + product 7 + size 5 + customer 9 + group 4 + body 2 + shape 8
        //   + label 5 + pairs 36 + neighbours 6 + history 4
        assert_eq!(n_features(&spec(FeatureSet::FULL)), 96);
        let x = StackInput {
            probs: [0.2, 0.5, 0.3],
            gap: 0.5,
            ..Default::default()
        };
        let mut row = Vec::new();
        features(&spec(none), &x, &mut |v| row.push(v));
        assert_eq!(row[0], 1.0);
        assert!((row[1] - (0.4f64).ln()).abs() < 1e-12);
        assert!((row[2] - (0.6f64).ln()).abs() < 1e-12);
    }

    #[test]
    fn level_features_hand_values() {
        let sm = Smoothing::default();
        let global = [0.25, 0.5, 0.25];
        // nothing known: everything at the global rates, relative terms zero
        let l = level_features(&sm, global, &LevelCounts::default());
        assert!((l.product[0] - 0.5f64.ln()).abs() < 1e-12);
        assert_eq!(l.size, [0.0, 0.0]);
        assert_eq!(l.brand, [0.0, 0.0]);
        assert_eq!((l.product_n, l.size_n), (0.0, 0.0));
        // a product with 10 small / 0 fit / 0 large and prior 10 events:
        // (10 + 2.5, 5, 2.5) / 20 = (0.625, 0.25, 0.125)
        let l = level_features(
            &sm,
            global,
            &LevelCounts {
                product: Some([10.0, 0.0, 0.0]),
                ..Default::default()
            },
        );
        assert!((l.product[0] - (0.625f64 / 0.25).ln()).abs() < 1e-12);
        assert!((l.product[1] - (0.125f64 / 0.25).ln()).abs() < 1e-12);
        assert!((l.product[2] - (0.75f64 / 0.25).ln()).abs() < 1e-12);
        assert!((l.product_n - 11f64.ln()).abs() < 1e-12);
        // customers toward the global rates with 3 pseudo-events: 1 large seen
        // -> (0.75, 1.5, 1.75) / 4
        let c = customer_rates(&sm, global, [0.0, 0.0, 1.0], 4.0);
        assert_eq!(c.mean_pos, Some(4.0));
        assert!((c.log_odds[1] - (1.75f64 / 1.5).ln()).abs() < 1e-12);
        assert!((c.n - 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn offer_features_hand_values() {
        // P = (0.2, 0.5, 0.3): logit P(fit) = 0, ln(P(small)/P(large)) = ln(2/3)
        let x = StackInput {
            probs: [0.2, 0.5, 0.3],
            ..Default::default()
        };
        let mut row = Vec::new();
        offer_features(&spec(FeatureSet::OFFER), &x, &mut row);
        assert_eq!(row[0], 1.0);
        assert!(row[1].abs() < 1e-12, "{}", row[1]);
        assert!((row[2] - (2.0f64 / 3.0).ln()).abs() < 1e-12);
        // a binary fit on one feature recovers the log-odds: 3 of 4 positive
        let xs = [1.0, 1.0, 1.0, 1.0];
        let ys = [true, true, true, false];
        let b = BinaryFit {
            x: &xs,
            p: 1,
            cols: &[0],
            y: &ys,
        }
        .fit(&[0, 1, 2, 3], 0.0, 50)
        .unwrap();
        assert!((b[0] - 3f64.ln()).abs() < 1e-6, "{b:?}");
    }

    #[test]
    fn folded_prediction_matches_standardised() {
        let mut sp = spec(FeatureSet::MAIN);
        let p = n_features(&sp);
        sp.mean = (0..p)
            .map(|j| if j == 0 { 0.0 } else { 0.1 * j as f64 })
            .collect();
        sp.scale = (0..p)
            .map(|j| if j == 0 { 1.0 } else { 0.5 + 0.05 * j as f64 })
            .collect();
        sp.lo = vec![-3.0; p];
        sp.hi = vec![3.0; p];
        let mut lg = StackLogit {
            spec: sp,
            coef: (0..2 * p)
                .map(|j| ((j * 7) % 11) as f64 / 10.0 - 0.5)
                .collect(),
            lambda: 1.0,
            cv: Vec::new(),
            folded: Folded::default(),
        };
        let body = [0.3, -1.0];
        let x = StackInput {
            probs: [0.15, 0.7, 0.15],
            gap: 0.4,
            gap_sd: 0.9,
            prior_gap: 40.0, // far outside: clamped
            choice_gap: -0.2,
            levels: LevelFeatures {
                product: [-1.0, -2.0, -0.5],
                product_n: 2.0,
                ..Default::default()
            },
            body: &body,
            ..Default::default()
        };
        let slow = lg.predict(&x);
        lg.prepare();
        assert_eq!(lg.folded.weight.len(), p);
        let fast = lg.predict(&x);
        for k in 0..3 {
            assert!((slow[k] - fast[k]).abs() < 1e-12, "{slow:?} {fast:?}");
        }
        assert!((fast.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
