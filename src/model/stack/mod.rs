//! Second stage: calibrated learners fitted after the structural model, on the
//! structural model's log-odds and size gaps plus smoothed outcome rates of the product,
//! the product in that size and its neighbours, its category / brand and the customer,
//! the customer's size history and body features. Stored in the model and applied
//! wherever probabilities are produced (`Predictor::probs_final`: scoring, evaluation,
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
//!   from that model. Each refit runs from scratch by default; with
//!   [`StackParams::exact_refits`] off they are warm-started: the structural model is
//!   fitted on each half of the folds, and fold `f`'s refit starts from the half without
//!   `f` and runs at most [`StackParams::refit_iter`] iterations, so no fold's outcomes
//!   reach its inputs even through the starting point, and the five refits cost about
//!   one fit plus a few passes each instead of five fits;
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
//! customer on the training events. On big data the learners see the events of a random
//! sample of customers ([`StackParams::max_rows`], 1M events) and the cross-validation a
//! smaller one ([`StackParams::cv_rows`], 250k); count tables and refits see every event. At prediction time the standardisation is folded
//! into the coefficients and the product / product-in-size rate features are cached per
//! key ([`PreparedStage`], built with the `Predictor`), so one size costs a few logarithms and a dot product.

use super::eval::metrics;
use super::features::FeatureValues;
use super::math::{event_deriv, probs, uncertainty_scale};
use super::predict::{cut_points, inv2, ArticleRef, CustomerState, SizeBelief};
use super::predictor::Predictor;
use super::score::{Resolved, ScoreOptions};
use super::{FitParams, ModelError};
use crate::data::schema::{Events, NONE};
use crate::data::OutcomeMap;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

mod apply;
mod features;
mod inputs;
mod logit;
mod offer;
mod train;

pub use self::apply::PreparedStage;
pub use self::features::*;
pub use self::inputs::*;
pub use self::logit::*;
pub use self::offer::*;
pub use self::train::*;

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
    /// Per category (aligned with `Fitted::categories`).
    pub category: Vec<Counts>,
    /// Per brand (aligned with `Fitted::brands`).
    pub brand: Vec<Counts>,
    /// Per product (aligned with `Fitted::products`).
    pub product: Vec<Counts>,
    /// Per product in size (aligned with `Fitted::article_sizes`).
    pub article_size: Vec<Counts>,
    /// Per training customer (aligned with `Fitted::customers`; empty without a customer
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

/// A fitted second stage: plain data (its prediction caches live in [`PreparedStage`]).
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
}

/// Level features cached for fast prediction (part of a [`PreparedStage`]).
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
    /// Prior size from the body row ([`Predictor::prior_mean`]).
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
            hess_stride: 1,
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
            hess_stride: 1,
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
            hess_stride: 1,
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
        let lg = StackLogit {
            spec: sp,
            coef: (0..2 * p)
                .map(|j| ((j * 7) % 11) as f64 / 10.0 - 0.5)
                .collect(),
            lambda: 1.0,
            cv: Vec::new(),
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
        // unfolded coefficients (an empty fold) fall back to the standardised path
        let slow = lg.predict(&Folded::default(), &x);
        assert_eq!(slow, lg.predict_unprepared(&x));
        let folded = lg.fold();
        assert_eq!(folded.weight.len(), p);
        let fast = lg.predict(&folded, &x);
        for k in 0..3 {
            assert!((slow[k] - fast[k]).abs() < 1e-12, "{slow:?} {fast:?}");
        }
        assert!((fast.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
}
