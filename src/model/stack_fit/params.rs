//! [`StackParams`]: the second stage's hyper-parameters, with their defaults and checks.

use super::learner::Solver;
use crate::model::stack::{FeatureSet, Select, Smoothing};
use crate::model::{FitParams, ModelError};

/// Hyper-parameters of the second stage's fit. Defaults are documented per field.
#[derive(Clone, Debug, PartialEq)]
pub struct StackParams {
    /// How the penalties (and feature set) are chosen (default [`Select::Evidence`]:
    /// each candidate fitted once on every row and the chosen one kept, against
    /// `folds` x candidates fits and a final fit for [`Select::CrossValidation`]; see
    /// BENCHMARKS.md for both on the same data).
    pub select: Select,
    /// Cross-validation folds, by customer, choosing the penalty and feature set with
    /// [`Select::CrossValidation`] (default 3; 1 = no cross-validation: the first
    /// penalty and set). Five folds chose
    /// the same penalties on RentTheRunway (random and forward splits) and 10M synthetic
    /// events, at 1.6x the cross-validation's time.
    pub folds: usize,
    /// Candidate ridge penalties on the summed log loss (default 1, 10, 100, 1000).
    /// Cross-validation walks them from the strongest down, each fit warm-started from
    /// the previous one, and stops at the first penalty whose held-out loss is worse than
    /// the one before (along a ridge path it falls to one minimum and rises). The
    /// evidence fits the middle one, then the candidates the fits predict more evidence
    /// for (see `evidence::search_by_evidence`).
    pub lambdas: Vec<f64>,
    /// Candidate feature sets (default [`FeatureSet::FULL`] alone: [`FeatureSet::MAIN`]
    /// lost 0.005 AUC in cross-validation on RentTheRunway).
    /// Without cross-fitting the `label` group is dropped from each (see the module
    /// documentation).
    pub sets: Vec<FeatureSet>,
    /// Feature groups of the [`Regime::Offer`](crate::model::stack::Regime::Offer) calibration (default
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
    /// that model gives new events; 0 or 1 uses leave-one-out inputs instead (default 2:
    /// the two halves, about one structural fit in all; 5 folds cost four fits' worth
    /// for the same held-out accuracy to ~0.0005 AUC and log loss, see BENCHMARKS.md).
    pub cross_fit: usize,
    /// Parameters of the structural refits when cross-fitting (default
    /// [`FitParams::default`]; pass the main fit's).
    pub structural: FitParams,
    /// Most training events the learners are fitted on (default 500,000; 0 = all).
    /// With more, they are fitted on the events of a random sample of customers (by a
    /// hash of the customer id, so a customer's events are all in or all out and the
    /// cross-validation by customer stays honest) that hold about this many; the count
    /// tables and the structural refits still use every event. The bound comes from the
    /// learners' size, not the data's: a logit with `p` coefficients fitted on `n` rows
    /// loses about `p / 2n` nats per event to estimation error (the bias term of AIC),
    /// and the purchase learner has a little over 200 (two logits: 106 features at 10M
    /// synthetic events, 116 on RentTheRunway), so 500k rows cost about 2e-4 nats per
    /// event (10M synthetic events, held out: log loss 0.6438 against 0.6437 with 1M
    /// rows, see BENCHMARKS.md). Its cost (time, and memory for its design matrix) then
    /// no longer grows with the data.
    pub max_rows: usize,
    /// Most events the penalty search (the choice of penalty and feature set, by
    /// evidence or cross-validation) is run on (default 250,000; 0 = all): above it, the
    /// events of a random sample of customers holding about this many, drawn
    /// independently of the `max_rows` sample. The chosen penalty is a prior precision
    /// on the coefficients, which does not depend on the number of events: the final
    /// fits use every row with it. The search is most of a learner's time (penalties
    /// fits by evidence, penalties x folds by cross-validation).
    pub cv_rows: usize,
    /// Cross-fitting refits each fitted from scratch (true, default) instead of
    /// warm-started from the model of the half of the folds without the refit's fold
    /// (only with more than two folds: with two, the halves are the refits)
    /// (false: the same inputs to the fit's tolerance, cross-fitting at 0.57x of its
    /// time on RentTheRunway, but the whole train was not measured faster yet; both keep
    /// every fold's outcomes out of its inputs exactly).
    pub exact_refits: bool,
    /// Most iterations of a warm-started refit (default 8; it stops earlier when it
    /// converges). The starting half-model has already run the structural fit's
    /// iterations, so a refit only adds the folds the half lacks.
    pub refit_iter: usize,
    /// Parameter tolerance of the cross-fitting refits (default 3e-3; 0 = the structural
    /// fit's own `param_tol`; never tighter than that). The refits only give the
    /// learners their inputs, so they may stop earlier than the model that is served:
    /// at 3e-3 instead of 1e-3 RentTheRunway's halves took 18 / 19 iterations instead of
    /// 23 / 23 and 10M synthetic events' 16 / 14 instead of 18 / 18, with the same
    /// held-out accuracy on four random splits and the forward split (BENCHMARKS.md;
    /// 1e-2 cost 0.001 AUC on RentTheRunway).
    pub refit_param_tol: f64,
    /// Rows whose second derivatives enter each Newton step of the learners (default
    /// 65,536; 0 = all): above it, every k-th row, scaled up. Gradients and objectives
    /// use every row, so the fit reaches the same optimum; the Hessian, `p²` work per
    /// row (p ~ 200 features: ~70k multiply-adds, in f32), then costs a fixed budget
    /// instead of growing with the rows. A sampled Hessian makes Newton's steps
    /// converge linearly, at a rate that improves with the sample: at 10M synthetic
    /// events (1M learner rows) 16,384 rows took 10 steps and 3 Hessians for the final
    /// purchase fit, 65,536 took 6 and 1, and the purchase learner 3.0 s -> 2.4 s.
    pub hess_rows: usize,
    /// The purchase learner's solver (default [`Solver::Newton`]; see BENCHMARKS.md for
    /// linfa-logistic's L-BFGS on the same data).
    pub solver: Solver,
}

impl Default for StackParams {
    fn default() -> Self {
        StackParams {
            select: Select::Evidence,
            folds: 3,
            lambdas: vec![1.0, 10.0, 100.0, 1000.0],
            sets: vec![FeatureSet::FULL],
            offer_set: FeatureSet::OFFER,
            smoothing: Smoothing::default(),
            gap_knots: vec![-1.0, 0.0, 1.0],
            max_iter: 30,
            cross_fit: 2,
            structural: FitParams::default(),
            max_rows: 500_000,
            cv_rows: 250_000,
            exact_refits: true,
            refit_iter: 8,
            refit_param_tol: 3e-3,
            hess_rows: 65_536,
            solver: Solver::Newton,
        }
    }
}

impl StackParams {
    /// The structural parameters of a cross-fitting refit: the main fit's, with
    /// [`StackParams::refit_param_tol`] where looser.
    pub(super) fn refit_structural(&self) -> FitParams {
        let p = self.structural.clone();
        let tol = p.param_tol.max(self.refit_param_tol);
        p.param_tol(tol)
    }

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
        if !(self.refit_param_tol.is_finite() && self.refit_param_tol >= 0.0) {
            return bad("refit_param_tol must be finite and >= 0");
        }
        if self.gap_knots.iter().any(|k| !k.is_finite()) {
            return bad("gap knots must be finite");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refits_stop_at_the_looser_of_the_two_tolerances() {
        let tol = |fit: f64, refit: f64| {
            StackParams {
                structural: FitParams::default().param_tol(fit),
                refit_param_tol: refit,
                ..StackParams::default()
            }
            .refit_structural()
            .param_tol
        };
        assert_eq!(StackParams::default().refit_param_tol, 3e-3);
        assert_eq!(tol(1e-3, 3e-3), 3e-3);
        // 0: the fit's own; a looser fit tolerance is never tightened
        assert_eq!(tol(1e-3, 0.0), 1e-3);
        assert_eq!(tol(1e-2, 3e-3), 1e-2);
    }
}
