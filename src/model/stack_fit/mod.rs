//! Fitting the second stage ([`StackParams::fit`]) after the structural model: the
//! training events' out-of-sample inputs, the purchase learner with its chosen penalty
//! and feature set, and the offer calibration.
//!
//! Training features are computed **out of sample**, in one of two ways:
//! - *cross-fitting* (default, `cross_fit` = 2): the training events are split into
//!   random folds (by row); for each fold the structural model and the outcome counts are
//!   refitted on the other folds, and the fold's events get exactly the inputs a new event
//!   gets from that model. With the default two folds the refits are the two halves of
//!   the events, about one structural fit in all (five folds: four fits' worth, for the
//!   same held-out accuracy to ~0.0005 on RentTheRunway and 10M synthetic events, see
//!   BENCHMARKS.md). Each refit runs from scratch by default; with more than two folds
//!   and [`StackParams::exact_refits`] off they are warm-started: the structural model
//!   is fitted on each half of the folds, and fold `f`'s refit starts from the half
//!   without `f` and runs at most [`StackParams::refit_iter`] iterations, so no fold's
//!   outcomes reach its inputs even through the starting point;
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
//! setting); the purchase learner is a linfa estimator ([`LogitParams`]) on
//! ndarray views of its standardised design. Ridge penalties and the feature set are
//! chosen by warm-started fits along the penalties, by default by the evidence
//! ([`Select::Evidence`]: the middle candidate fitted first, then the candidates its
//! fit predicts more marginal likelihood for, each from the fit it was predicted from
//! and its Hessian, until none is predicted to beat the best fitted one; the chosen fit
//! is kept), or by K-fold cross-validation by customer
//! ([`Select::CrossValidation`]: folds x candidates fits, stopped at the first rise of
//! the held-out loss, then a final fit). On big data the learners see the events of a
//! random sample of customers ([`StackParams::max_rows`], 500k events) and the penalty
//! search a smaller one ([`StackParams::cv_rows`], 250k; then one more fit on the
//! learners' rows); count tables and refits see every event. At
//! prediction time the standardisation is folded into the coefficients and the product /
//! product-in-size rate features are cached per key (`PreparedStage`, built with the
//! `Predictor`), so one size costs a few logarithms and a dot product.

mod cross_fit;
mod design;
mod evidence;
mod gram;
mod inputs;
mod learner;
mod loo;
mod minimise;
mod newton;
mod offer;
mod params;
mod stored;

pub use self::cross_fit::{cross_fitted, CrossFitted};
pub use self::inputs::{hash_in_sample, CustomerSample, OfferView, TrainingInputs};
pub use self::learner::{FittedLogit, LogitParams, Solver, ValidLogitParams};
pub use self::newton::{fit_logit, sums, sums_for, Design, FitSpec, Need, Sums};
pub use self::params::StackParams;
pub use self::stored::StoredInput;

use self::cross_fit::cross_fit_inputs;
use self::design::{design_for, in_cv, Rows, NO_FOLD};
use self::evidence::search_by_evidence;
use self::loo::loo_inputs;
use self::newton::Penalty;
use crate::data::schema::Events;
use crate::model::eval::metrics;
use crate::model::fitdata::FitData;
use crate::model::predictor::Predictor;
use crate::model::stack::{
    CvPoint, FeatureSet, FeatureSpec, OfferCalibration, Select, Stack, StackLogit, StackTables,
};
use crate::model::ModelError;
use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};

/// The out-of-sample inputs of the training events `events` (the events the structural
/// `model` was fitted on): cross-fitted when `params.cross_fit > 1`, leave-one-out
/// otherwise.
pub fn training_inputs(
    model: &Predictor,
    events: &Events,
    params: &StackParams,
) -> Result<TrainingInputs, ModelError> {
    if params.cross_fit > 1 {
        cross_fit_inputs(model, events, params)
    } else {
        Ok(loo_inputs(model, events, params))
    }
}

/// The cross-validation fits' stopping rule ([`LogitParams::tol`]): they only rank
/// penalties by held-out log loss, which moves in its fourth decimal long before the
/// coefficients settle to the final fit's 1e-10.
const CV_TOL: f64 = 1e-7;

/// The final fits' stopping rule.
const FINAL_TOL: f64 = 1e-10;

/// Held-out rows of the cross-validation predicted at a time.
const PREDICT_BLOCK: usize = 8192;

/// The second stage's two learners, fitted ([`StackParams::fit_learners`]) before their
/// count tables are attached ([`StackParams::assemble`]).
#[derive(Clone, Debug)]
pub struct Learners {
    purchase: StackLogit,
    offer: Option<OfferCalibration>,
}

impl StackParams {
    /// Fit the second stage for the structural model behind `model` on the events it was
    /// trained on.
    pub fn fit(&self, model: &Predictor, events: &Events) -> Result<Stack, ModelError> {
        self.validate()?;
        let inputs = training_inputs(model, events, self)?;
        self.fit_inputs(inputs)
    }

    /// Fit the second stage from inputs cross-fitted before the final structural `model`
    /// ([`cross_fitted`], with these parameters): the same stage as [`StackParams::fit`],
    /// with the count tables of `model`. This order lets the final fit start from a
    /// fold model ([`CrossFitted::warm_start`]).
    pub fn fit_cross_fitted(
        &self,
        model: &Predictor,
        events: &Events,
        cross_fitted: CrossFitted,
    ) -> Result<Stack, ModelError> {
        let data = FitData::from_events(events);
        let inputs = self.complete_inputs(model, (events, &data), cross_fitted)?;
        self.fit_inputs(inputs)
    }

    /// Inputs cross-fitted before the final structural `model` ([`cross_fitted`]) with
    /// that model's count tables added: all the learners need, so the caller may free the
    /// events and fit data before [`StackParams::fit_inputs`]. The tables are counted
    /// from the fit `data` the model was fitted on, built from `events`: only their
    /// dictionaries, size labels and features are read, so the caller may have released
    /// their per-event columns ([`FitData::from_events_releasing`]) before the final fit.
    pub fn complete_inputs(
        &self,
        model: &Predictor,
        (events, data): (&Events, &FitData),
        cross_fitted: CrossFitted,
    ) -> Result<TrainingInputs, ModelError> {
        self.validate()?;
        if self.cross_fit < 2 {
            return Err(ModelError::Param(
                "second stage: cross-fitted inputs need cross_fit >= 2".into(),
            ));
        }
        let mut inputs = cross_fitted.inputs;
        inputs.tables = inputs::count_tables_fit_data(model, events, data);
        Ok(inputs)
    }

    /// The learners (purchase learner and offer calibration) on out-of-sample `inputs`
    /// ([`training_inputs`] or [`StackParams::complete_inputs`]).
    pub fn fit_inputs(&self, inputs: TrainingInputs) -> Result<Stack, ModelError> {
        let learners = self.fit_learners(&inputs)?;
        Ok(self.assemble(learners, inputs.tables))
    }

    /// The learners on out-of-sample `inputs`, without their count tables: they read
    /// only the inputs (not `inputs.tables`), so cross-fitted inputs can be learned from
    /// before the final structural model exists ([`StackParams::assemble`] adds its
    /// tables).
    pub fn fit_learners(&self, inputs: &TrainingInputs) -> Result<Learners, ModelError> {
        self.validate()?;
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
        let t0 = std::time::Instant::now();
        let purchase = self.fit_learner(inputs, &sets)?;
        let t1 = std::time::Instant::now();
        let offer = self.fit_offer(inputs, Rows::offer(inputs), self.offer_set)?;
        tracing::info!(
            target: "runsize::stack",
            rows = inputs.inputs.len(),
            purchase_features = purchase.spec.mean.len(),
            offer_features = offer.as_ref().map_or(0, |o| o.spec.mean.len()),
            purchase_seconds = (t1 - t0).as_secs_f64(),
            offer_seconds = t1.elapsed().as_secs_f64(),
            peak_rss_mib = crate::model::memory::process_memory()
                .map_or(0.0, |(_, peak)| crate::model::memory::mib(peak)),
            "learners fitted"
        );
        Ok(Learners { purchase, offer })
    }

    /// The second stage from its fitted `learners` and the final model's count `tables`.
    pub fn assemble(&self, learners: Learners, tables: StackTables) -> Stack {
        Stack {
            smoothing: self.smoothing.clone(),
            cross_fit: if self.cross_fit > 1 {
                self.cross_fit
            } else {
                0
            },
            purchase: learners.purchase,
            offer: learners.offer,
            tables,
        }
    }

    /// Choose the penalty and feature set by cross-validation by customer on the
    /// purchase-regime rows of `inputs`, then fit on all of them.
    fn fit_learner(
        &self,
        inputs: &TrainingInputs,
        sets: &[FeatureSet],
    ) -> Result<StackLogit, ModelError> {
        if self.select == Select::Evidence
            && self.solver == Solver::Newton
            && sets.len() * self.lambdas.len() > 1
        {
            return self.fit_learner_by_evidence(inputs, sets);
        }
        let k = self.folds as u64;
        let n = inputs.inputs.len();
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
                                                        // the final fit starts from the mean of the best point's fold fits: the same
                                                        // optimum (its own tolerance), a few Newton steps instead of a cold start
        let mut best_start = Vec::new();
        let mut best_design: Option<(Vec<f32>, FeatureSpec)> = None;
        let learner = |lambda: f64, start: Vec<f64>| {
            LogitParams::default()
                .lambda(lambda)
                .max_iter(self.max_iter)
                .hess_rows(self.hess_rows)
                .solver(self.solver)
                .start(start)
        };
        if k > 1 && sets.len() * self.lambdas.len() > 1 {
            // per fold: weights leaving the fold out (and rows outside the sample), and
            // the fold's rows
            let train: Vec<Array1<f32>> = (0..k as u8)
                .map(|f| {
                    folds
                        .iter()
                        .map(|&g| f32::from(u8::from(g != f && g != NO_FOLD)))
                        .collect()
                })
                .collect();
            let held: Vec<Vec<usize>> = (0..k as u8)
                .map(|f| (0..n).filter(|&i| folds[i] == f).collect())
                .collect();
            for (si, &set) in sets.iter().enumerate() {
                let t = std::time::Instant::now();
                let (x_owned, spec) = design_for(inputs, set, self);
                tracing::debug!(target: "runsize::stack", seconds = t.elapsed().as_secs_f64(), "design built");
                let x = ArrayView2::from_shape((n, spec.mean.len()), &x_owned)
                    .map_err(|e| ModelError::Data(format!("second stage design: {e}")))?;
                let y = ArrayView1::from(&inputs.classes[..]);
                // strongest penalty first, each warm-started from the previous one
                let mut lambdas = self.lambdas.clone();
                lambdas.sort_by(|a, b| b.total_cmp(a));
                // each fold's path starts from the structural model itself (zeros would
                // start from equal odds: 10M events, 11 Newton steps for the first
                // penalty)
                let mut starts: Vec<Vec<f64>> = vec![structural_start(&spec); k as usize];
                let mut set_best = f64::INFINITY;
                for (li, &lambda) in lambdas.iter().enumerate() {
                    let first = li == 0;
                    let mut all_p = Vec::new();
                    let mut all_c = Vec::new();
                    for (f, (w, rows_f)) in train.iter().zip(&held).enumerate() {
                        let data = DatasetBase::new(x, y).with_weights(w.clone());
                        let start = path_start(&mut starts, f, first);
                        let fitted: Result<FittedLogit, ModelError> =
                            learner(lambda, start).tol(CV_TOL).fit(&data);
                        let fitted = fitted?;
                        // in blocks: a copy of the whole held-out part of the design
                        // was ~35 MB at the cross-validation's 250k rows
                        for block in rows_f.chunks(PREDICT_BLOCK) {
                            let probs: Array2<f64> = fitted.predict(&x.select(Axis(0), block));
                            all_p.extend(probs.rows().into_iter().map(|r| [r[0], r[1], r[2]]));
                        }
                        all_c.extend(rows_f.iter().map(|&i| usize::from(inputs.classes[i])));
                        starts[f] = fitted.into_coef();
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
                        auc_avg: Some(m.auc_avg),
                    });
                    if best.is_none_or(|b| m.log_loss < b.0) {
                        best = Some((m.log_loss, si, lambda));
                        best_start = mean_coef(&starts);
                    }
                    // down the path the held-out loss falls to its minimum and rises
                    // after it: stop at the first rise (the weaker penalties would
                    // cost the most iterations and cannot win)
                    if m.log_loss > set_best {
                        break;
                    }
                    set_best = m.log_loss;
                }
                // the final fit reuses the best set's design
                if best.is_some_and(|b| b.1 == si) {
                    best_design = Some((x_owned, spec));
                }
            }
        }
        let (_, si, lambda) = best.unwrap_or((f64::NAN, 0, self.lambdas[0]));
        let set = sets[si];
        let (x, spec) = match best_design {
            Some(d) => d,
            None => design_for(inputs, set, self),
        };
        let x = ArrayView2::from_shape((n, spec.mean.len()), &x)
            .map_err(|e| ModelError::Data(format!("second stage design: {e}")))?;
        let data = DatasetBase::new(x, ArrayView1::from(&inputs.classes[..]));
        if best_start.is_empty() {
            best_start = structural_start(&spec);
        }
        let fitted: Result<FittedLogit, ModelError> = learner(lambda, best_start).fit(&data);
        let coef = fitted?.into_coef();
        Ok(StackLogit {
            spec,
            coef,
            lambda,
            select: Select::CrossValidation,
            cv,
        })
    }

    /// Choose the penalty and feature set by the evidence (see [`Select::Evidence`]):
    /// per set, the middle penalty first, then the penalties the fits so far predict
    /// more evidence for ([`evidence::search_by_evidence`]), each fitted on the
    /// purchase-regime rows of `inputs` from the fit it was predicted from and its
    /// Hessian. The search runs on the [`StackParams::cv_rows`] sample of customers when
    /// there are more rows (the chosen penalty is a prior precision: it does not grow
    /// with the rows), then one fit on every row starts from the chosen fit; otherwise
    /// the chosen fit is the model.
    fn fit_learner_by_evidence(
        &self,
        inputs: &TrainingInputs,
        sets: &[FeatureSet],
    ) -> Result<StackLogit, ModelError> {
        let n = inputs.inputs.len();
        let y = ArrayView1::from(&inputs.classes[..]);
        let in_sample: Array1<f32> = inputs
            .group
            .iter()
            .map(|&g| f32::from(u8::from(in_cv(g, n, self.cv_rows))))
            .collect();
        let m = in_sample.iter().filter(|&&w| w > 0.0).count();
        let sampled = m < n;
        let mut cv = Vec::new();
        // (evidence, penalty, coefficients, feature map), and the design of its set
        let mut best: Option<(f64, f64, Vec<f64>, FeatureSpec)> = None;
        let mut best_design: Vec<f32> = Vec::new();
        for &set in sets {
            let (x_owned, spec) = design_for(inputs, set, self);
            let x = ArrayView2::from_shape((n, spec.mean.len()), &x_owned)
                .map_err(|e| ModelError::Data(format!("second stage design: {e}")))?;
            let data = DatasetBase::new(x, y).with_weights(in_sample.clone());
            let penalty = Penalty::Logits { p: spec.mean.len() };
            // each fit starts from the one the search predicted from, with its Hessian
            let (fits, chosen) = search_by_evidence(&self.lambdas, penalty, |lambda, from| {
                let (start, hessian) = match from {
                    Some(f) => (f.beta.clone(), f.loss_hess.clone()),
                    None => (structural_start(&spec), Vec::new()),
                };
                let fitted: FittedLogit = LogitParams::default()
                    .lambda(lambda)
                    .max_iter(self.max_iter)
                    .hess_rows(self.hess_rows)
                    .start(start)
                    .start_hessian(hessian)
                    .evidence(true)
                    .fit(&data)?;
                let ev = fitted.evidence().unwrap_or(f64::NEG_INFINITY);
                tracing::debug!(target: "runsize::stack", set = ?set, lambda, evidence = ev, rows = m, "penalty by evidence");
                Ok(fitted.into_point(lambda))
            })?;
            cv.extend(fits.iter().map(|f| CvPoint {
                set,
                lambda: f.lambda,
                log_loss: -f.evidence.unwrap_or(f64::NEG_INFINITY) / m.max(1) as f64,
                auc_avg: None,
            }));
            let Some(f) = fits.into_iter().nth(chosen) else {
                continue;
            };
            let ev = f.evidence.unwrap_or(f64::NEG_INFINITY);
            if best.as_ref().is_none_or(|b| ev > b.0) {
                best = Some((ev, f.lambda, f.beta, spec.clone()));
                if sampled {
                    best_design = x_owned;
                }
            }
        }
        let Some((_, lambda, mut coef, spec)) = best else {
            return Err(ModelError::Param(
                "second stage: at least one penalty and one feature set".into(),
            ));
        };
        if sampled {
            let x = ArrayView2::from_shape((n, spec.mean.len()), &best_design)
                .map_err(|e| ModelError::Data(format!("second stage design: {e}")))?;
            let fitted: FittedLogit = LogitParams::default()
                .lambda(lambda)
                .max_iter(self.max_iter)
                .hess_rows(self.hess_rows)
                .start(coef)
                .fit(&DatasetBase::new(x, y))?;
            coef = fitted.into_coef();
        }
        Ok(StackLogit {
            spec,
            coef,
            lambda,
            select: Select::Evidence,
            cv,
        })
    }
}

/// The coefficients that reproduce the structural model on a standardised design of
/// `spec` (columns 1 and 2 are the structural log-odds of small and of large against
/// fit, `x = mean + scale·z`): the small logit is `mean₁ + scale₁·z₁`, the large one
/// `mean₂ + scale₂·z₂`. The learner is a correction of that model, so its fits start
/// there. Empty when the design has fewer than three columns.
pub(super) fn structural_start(spec: &FeatureSpec) -> Vec<f64> {
    let p = spec.mean.len();
    if p < 3 || spec.scale.len() != p {
        return Vec::new();
    }
    let mut beta = vec![0.0; 2 * p];
    beta[0] = spec.mean[1];
    beta[1] = spec.scale[1];
    beta[p] = spec.mean[2];
    beta[p + 2] = spec.scale[2];
    beta
}

/// Where cross-validation fold `f`'s fit on a penalty path starts: its own fit at the
/// previous penalty, or at the `first` penalty, for every fold after the first, the first
/// fold's fit there (most of their rows in common) instead of the path's common start.
/// With the minimiser's stop on its quadratic model, the purchase learner evaluated 43
/// Newton steps and 13 Hessians on RentTheRunway instead of 61 and 18 (the offer
/// calibration 64 and 28 instead of 110 and 32).
pub(super) fn path_start(starts: &mut [Vec<f64>], f: usize, first: bool) -> Vec<f64> {
    match (first && f > 0, starts.first()) {
        (true, Some(s0)) => s0.clone(),
        _ => starts.get_mut(f).map(std::mem::take).unwrap_or_default(),
    }
}

/// The element-wise mean of the fold fits' coefficients (empty when there are none or
/// their lengths differ).
pub(super) fn mean_coef(fits: &[Vec<f64>]) -> Vec<f64> {
    let Some(first) = fits.first() else {
        return Vec::new();
    };
    if first.is_empty() || fits.iter().any(|f| f.len() != first.len()) {
        return Vec::new();
    }
    let k = fits.len() as f64;
    (0..first.len())
        .map(|j| fits.iter().map(|f| f[j]).sum::<f64>() / k)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{mean_coef, path_start, structural_start};
    use crate::model::stack::{FeatureSet, FeatureSpec};

    #[test]
    fn structural_start_reproduces_the_structural_log_odds() {
        let spec = FeatureSpec {
            set: FeatureSet::FULL,
            gap_knots: Vec::new(),
            label_knots: Vec::new(),
            body_dim: 0,
            mean: vec![0.0, -1.5, -2.0, 3.0],
            scale: vec![1.0, 0.5, 2.0, 1.0],
            lo: Vec::new(),
            hi: Vec::new(),
        };
        let b = structural_start(&spec);
        // raw row [1, ls = -1, ll = -3, 7] standardised: [1, 1, -0.5, 4]
        let z = [1.0, 1.0, -0.5, 4.0];
        let dot = |w: &[f64]| w.iter().zip(&z).map(|(a, b)| a * b).sum::<f64>();
        assert_eq!(dot(&b[..4]), -1.0);
        assert_eq!(dot(&b[4..]), -3.0);
        // too few columns: no start
        let short = FeatureSpec {
            mean: vec![0.0, 1.0],
            scale: vec![1.0, 1.0],
            ..spec
        };
        assert!(structural_start(&short).is_empty());
    }

    #[test]
    fn later_folds_start_the_path_from_the_first_folds_fit() {
        let mut starts = vec![vec![1.0], vec![2.0], vec![3.0]];
        // the first penalty: fold 0 its own start, later folds fold 0's (kept)
        assert_eq!(path_start(&mut starts, 1, true), vec![1.0]);
        assert_eq!(path_start(&mut starts, 0, true), vec![1.0]);
        assert!(starts[0].is_empty());
        // later penalties: each fold its own fit, taken out
        assert_eq!(path_start(&mut starts, 2, false), vec![3.0]);
        assert!(starts[2].is_empty());
        assert!(path_start(&mut starts, 7, false).is_empty());
    }

    #[test]
    fn mean_coef_averages_matching_fits_only() {
        let fits = vec![vec![1.0, 2.0], vec![3.0, -2.0]];
        assert_eq!(mean_coef(&fits), vec![2.0, 0.0]);
        // a fold without a fit (empty) or of another width: no start
        assert!(mean_coef(&[vec![1.0], Vec::new()]).is_empty());
        assert!(mean_coef(&[vec![1.0], vec![1.0, 2.0]]).is_empty());
        assert!(mean_coef(&[]).is_empty());
    }
}
