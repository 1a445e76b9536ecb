//! Second stage: calibrated learners fitted after the structural model, on the
//! structural model's log-odds and size gaps plus smoothed outcome rates of the product,
//! the product in that size and its neighbours, its category / brand and the customer,
//! the customer's size history and body features. This folder holds the fitted stage as
//! plain data and the maths that applies it; `Predictor::probs_final` applies it wherever
//! probabilities are produced (scoring, evaluation, `predict`, recommendations), and
//! `model::stack_fit` fits it.
//!
//! Two questions, two learners ([`Regime`]):
//! - a **purchase** whose chosen size is evidence of the shopper's size (scoring and
//!   evaluating events): a multinomial logistic regression on every feature group;
//! - a **size on offer** (recommendations, `predict --without-choice`): a calibration
//!   that keeps the structural order of sizes ([`OfferCalibration`]).

mod data;
mod features;
mod offer;
mod prepared;
mod rates;

pub use self::data::{
    Counts, CvPoint, FeatureSet, FeatureSpec, Folded, OfferCalibration, Regime, Select, Smoothing,
    Stack, StackLogit, StackTables,
};
pub use self::features::{
    features, n_features, offer_features, softmax2, StackCustomer, StackCustomers, StackInput,
};
pub use self::offer::OfferTail;
pub use self::prepared::{PreparedStage, StackCache};
pub use self::rates::{
    count_at, customer_rates, global_rates, leave_one_out, level_features, log_ratios, smooth,
    CustomerRates, LevelCounts, LevelFeatures,
};
