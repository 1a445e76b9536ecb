//! The fitted second stage as plain serde data: count tables, smoothing, feature maps,
//! the learners' coefficients; and the per-predictor caches built from them.

use serde::{Deserialize, Serialize};

/// Outcome counts `[small, fit, large]`.
pub type Counts = [u32; 3];

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

/// How the second stage chose its penalties (and feature set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Select {
    /// The highest evidence along the penalty path: the Laplace approximation to the
    /// marginal likelihood, each candidate fitted once on every row, the next one
    /// warm-started from it with its Hessian (default).
    #[default]
    Evidence,
    /// The lowest held-out log loss in cross-validation by customer: folds x
    /// candidates fits, then a final fit.
    CrossValidation,
}

/// One point of the penalty search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CvPoint {
    /// Feature set.
    pub set: FeatureSet,
    /// Ridge penalty (on the sum of per-event log losses).
    pub lambda: f64,
    /// The criterion per event, lower is better: held-out log loss
    /// ([`Select::CrossValidation`]) or the negative log evidence ([`Select::Evidence`]).
    pub log_loss: f64,
    /// Held-out average one-vs-rest AUC (pooled over folds); none under
    /// [`Select::Evidence`].
    pub auc_avg: Option<f64>,
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
    /// How it was chosen.
    pub select: Select,
    /// The search's points that chose the penalty and feature set.
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

/// A fitted second stage: plain data (its prediction caches live in
/// [`PreparedStage`](super::PreparedStage)).
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
    /// How they were chosen.
    pub select: Select,
    /// The criterion per event at the chosen penalties, lower is better: held-out log
    /// loss of the three-class probabilities ([`Select::CrossValidation`]) or the two
    /// fits' negative log evidence ([`Select::Evidence`]).
    pub criterion: f64,
}
