//! The purchase learner: a ridge-penalised multinomial logistic regression (fit as the
//! reference class), as a linfa estimator ([`LogitParams`] → [`FittedLogit`]) on a linfa
//! `Dataset` of standardised ndarray rows. Two solvers: Newton's method on chunked
//! gradient / Hessian sums (default), or linfa-logistic's multinomial regression
//! (L-BFGS) for comparison ([`Solver`]).
//! The numerics (sums, Newton minimiser) live in [`super::newton`].

use super::evidence::logit_evidence_from;
use super::newton::{fit_logit_min, logits, Design, DesignElem, FitSpec};
use crate::model::stack::softmax2;
use crate::model::ModelError;
use linfa::dataset::{AsSingleTargets, DatasetBase};
use linfa::traits::{Fit, PredictInplace};
use linfa::ParamGuard;
use ndarray::{Array2, ArrayBase, ArrayView2, Axis, Data, Ix2};

/// Which solver fits the purchase learner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Solver {
    /// Newton's method on summed gradients and (row-sampled, [`LogitParams::hess_rows`])
    /// Hessians; intercept unpenalised; dataset weights of 0 leave rows out without a
    /// copy (default).
    #[default]
    Newton,
    /// linfa-logistic's `MultiLogisticRegression` (L-BFGS on the three-class softmax,
    /// every coefficient penalised), converted to the fit-as-reference coefficients. Rows
    /// with weight 0 are copied out first (it reads no weights). Kept to compare: see
    /// BENCHMARKS.md.
    Lbfgs,
}

/// L-BFGS iterations per Newton iteration of [`LogitParams::max_iter`] (a Newton step
/// uses the curvature L-BFGS has to learn over many cheap steps).
const LBFGS_ITER_PER_NEWTON: u64 = 10;

/// Checked hyper-parameters of the purchase learner (see [`LogitParams`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ValidLogitParams {
    lambda: f64,
    max_iter: usize,
    hess_rows: usize,
    solver: Solver,
    start: Vec<f64>,
    start_hessian: Vec<f64>,
    evidence: bool,
    tol: f64,
}

/// Hyper-parameters of the purchase learner, a linfa estimator: build, then
/// `.fit(&dataset)` on a `Dataset` of standardised rows (column 0 the constant 1) with
/// classes 0 small / 1 fit / 2 large. Dataset weights of 0 leave rows out (the
/// cross-validation folds); other weights count as 1.
#[derive(Clone, Debug, PartialEq)]
pub struct LogitParams(ValidLogitParams);

impl Default for LogitParams {
    fn default() -> Self {
        LogitParams(ValidLogitParams {
            lambda: 1.0,
            max_iter: 30,
            hess_rows: 65_536,
            solver: Solver::Newton,
            start: Vec::new(),
            start_hessian: Vec::new(),
            evidence: false,
            tol: 1e-10,
        })
    }
}

impl LogitParams {
    /// Ridge penalty on the summed log loss (default 1).
    pub fn lambda(mut self, lambda: f64) -> Self {
        self.0.lambda = lambda;
        self
    }

    /// Newton iterations at most (default 30; L-BFGS runs ten times as many).
    pub fn max_iter(mut self, max_iter: usize) -> Self {
        self.0.max_iter = max_iter;
        self
    }

    /// Rows whose second derivatives enter each Newton step (default 65,536; 0 = all);
    /// see `StackParams::hess_rows`.
    pub fn hess_rows(mut self, hess_rows: usize) -> Self {
        self.0.hess_rows = hess_rows;
        self
    }

    /// Newton's stopping rule: a step gaining less than this share of the objective is
    /// the last (default 1e-10).
    pub fn tol(mut self, tol: f64) -> Self {
        self.0.tol = tol;
        self
    }

    /// The solver (default [`Solver::Newton`]).
    pub fn solver(mut self, solver: Solver) -> Self {
        self.0.solver = solver;
        self
    }

    /// Warm start: coefficients of a previous fit on the same columns (default none:
    /// zeros; a start of the wrong length is ignored).
    pub fn start(mut self, start: Vec<f64>) -> Self {
        self.0.start = start;
        self
    }

    /// The loss Hessian (no penalty; `(2p)²`, row-major) at [`LogitParams::start`] over
    /// the same rows, when known ([`FittedLogit::hessian`] of the previous fit of a
    /// penalty path): Newton's first step then computes none (default none; one of the
    /// wrong size is ignored; the L-BFGS solver ignores it).
    pub fn start_hessian(mut self, hessian: Vec<f64>) -> Self {
        self.0.start_hessian = hessian;
        self
    }

    /// Also compute the fit's log evidence and its loss Hessian at the optimum
    /// ([`FittedLogit::evidence`]; default false: one more pass over the rows).
    pub fn evidence(mut self, evidence: bool) -> Self {
        self.0.evidence = evidence;
        self
    }
}

impl ParamGuard for LogitParams {
    type Checked = ValidLogitParams;
    type Error = ModelError;

    fn check_ref(&self) -> Result<&ValidLogitParams, ModelError> {
        let v = &self.0;
        if !(v.lambda.is_finite() && v.lambda >= 0.0) {
            return Err(ModelError::Param(format!(
                "second stage: penalty {} must be finite and >= 0",
                v.lambda
            )));
        }
        if v.max_iter == 0 {
            return Err(ModelError::Param(
                "second stage: at least one iteration".into(),
            ));
        }
        Ok(v)
    }

    fn check(self) -> Result<ValidLogitParams, ModelError> {
        self.check_ref()?;
        Ok(self.0)
    }
}

/// A fitted purchase learner: the small-vs-fit logit's coefficients on the standardised
/// columns, then the large-vs-fit logit's.
#[derive(Clone, Debug, PartialEq)]
pub struct FittedLogit {
    coef: Vec<f64>,
    evidence: Option<f64>,
    hessian: Vec<f64>,
    /// The loss (no penalty) at the coefficients: NaN unless the evidence was asked for.
    loss: f64,
}

impl FittedLogit {
    /// The coefficients (`2p`: small logit's block, then large logit's).
    pub fn coef(&self) -> &[f64] {
        &self.coef
    }

    /// The coefficients, owned.
    pub fn into_coef(self) -> Vec<f64> {
        self.coef
    }

    /// The log evidence of the fit (Laplace approximation, up to a constant that does
    /// not depend on the penalty; see `super::evidence::log_evidence`), when asked for
    /// ([`LogitParams::evidence`]) and defined (a positive penalty).
    pub fn evidence(&self) -> Option<f64> {
        self.evidence
    }

    /// The loss Hessian at the coefficients (empty unless the evidence was asked for):
    /// the next penalty's fit starts here with it ([`LogitParams::start_hessian`]).
    pub fn hessian(&self) -> &[f64] {
        &self.hessian
    }

    /// The fit as a point of a penalty search (its penalty is `lambda`).
    pub(super) fn into_point(self, lambda: f64) -> super::evidence::PathPoint {
        super::evidence::PathPoint {
            lambda,
            beta: self.coef,
            evidence: self.evidence,
            loss: self.loss,
            loss_hess: self.hessian,
        }
    }
}

impl<E: DesignElem, D: Data<Elem = E>> PredictInplace<ArrayBase<D, Ix2>, Array2<f64>>
    for FittedLogit
{
    /// Probabilities `[small, fit, large]` per row (one row of `y` per row of `x`).
    fn predict_inplace(&self, x: &ArrayBase<D, Ix2>, y: &mut Array2<f64>) {
        let p = x.ncols();
        if self.coef.len() != 2 * p {
            y.fill(f64::NAN);
            return;
        }
        let xs = x.as_standard_layout();
        for (row, mut out) in xs.rows().into_iter().zip(y.rows_mut()) {
            // a standard-layout row is contiguous
            let (es, el) = logits(row.as_slice().unwrap_or(&[]), &self.coef, p);
            for (o, v) in out.iter_mut().zip(softmax2(es, el)) {
                *o = v;
            }
        }
    }

    fn default_target(&self, x: &ArrayBase<D, Ix2>) -> Array2<f64> {
        Array2::zeros((x.nrows(), 3))
    }
}

impl<E, D, T> Fit<ArrayBase<D, Ix2>, T, ModelError> for ValidLogitParams
where
    E: DesignElem,
    D: Data<Elem = E>,
    T: AsSingleTargets<Elem = u8>,
{
    type Object = FittedLogit;

    fn fit(&self, dataset: &DatasetBase<ArrayBase<D, Ix2>, T>) -> Result<FittedLogit, ModelError> {
        let x = dataset.records();
        let y = dataset.as_single_targets();
        if y.len() != x.nrows() {
            return Err(ModelError::Data(format!(
                "second stage: {} rows but {} classes",
                x.nrows(),
                y.len()
            )));
        }
        let (coef, evidence, hessian, loss) = match self.solver {
            Solver::Newton => {
                let xs = x.as_standard_layout();
                let ys = y.as_standard_layout();
                let (Some(xs), Some(ys)) = (xs.as_slice(), ys.as_slice()) else {
                    return Err(ModelError::Data(
                        "second stage: design not contiguous".into(),
                    ));
                };
                // the Hessian's row budget is spread over the rows the fit uses (a
                // cross-validation fold on a sample of a big design uses a fraction)
                let used = dataset
                    .weights()
                    .map_or(x.nrows(), |w| w.iter().filter(|&&v| v > 0.0).count());
                let spec = FitSpec {
                    lambda: self.lambda,
                    weights: dataset.weights(),
                    max_iter: self.max_iter,
                    tol: self.tol,
                    hess_stride: if self.hess_rows == 0 {
                        1
                    } else {
                        used.div_ceil(self.hess_rows).max(1)
                    },
                };
                let d = Design {
                    x: xs,
                    y: ys,
                    p: x.ncols(),
                };
                let start_hessian = Some(&self.start_hessian[..]).filter(|h| !h.is_empty());
                let min = fit_logit_min(&d, &spec, &self.start, start_hessian)?;
                if self.evidence {
                    let at = logit_evidence_from(&d, &spec, min);
                    (at.beta, at.evidence, at.loss_hess, at.loss)
                } else {
                    (min.beta, None, Vec::new(), f64::NAN)
                }
            }
            Solver::Lbfgs => {
                let x64 = x.mapv(DesignElem::to_f64);
                let coef = self.fit_lbfgs(x64.view(), &y.to_vec(), dataset.weights())?;
                (coef, None, Vec::new(), f64::NAN)
            }
        };
        Ok(FittedLogit {
            coef,
            evidence,
            hessian,
            loss,
        })
    }
}

impl ValidLogitParams {
    /// linfa-logistic's multinomial regression on the included rows, converted to the
    /// fit-as-reference coefficients (`w_small − w_fit`, `w_large − w_fit`).
    fn fit_lbfgs(
        &self,
        x: ArrayView2<'_, f64>,
        y: &[u8],
        weights: Option<&[f32]>,
    ) -> Result<Vec<f64>, ModelError> {
        let p = x.ncols();
        let rows: Vec<usize> = (0..x.nrows())
            .filter(|&i| weights.is_none_or(|w| w.get(i).is_some_and(|&w| w > 0.0)))
            .collect();
        let xs = x.select(Axis(0), &rows);
        let ys = ndarray::Array1::from_iter(rows.iter().map(|&i| y[i]));
        let mut lr = linfa_logistic::MultiLogisticRegression::default()
            .alpha(self.lambda)
            .with_intercept(false)
            .max_iterations(self.max_iter as u64 * LBFGS_ITER_PER_NEWTON);
        if self.start.len() == 2 * p {
            let mut w = Array2::zeros((p, 3));
            for j in 0..p {
                w[[j, 0]] = self.start[j];
                w[[j, 2]] = self.start[p + j];
            }
            lr = lr.initial_params(w);
        }
        let fitted = lr
            .fit(&DatasetBase::new(xs, ys))
            .map_err(|e| ModelError::Diverged(format!("second stage (L-BFGS): {e}")))?;
        let col = |c: u8| fitted.classes().iter().position(|&k| k == c);
        let (Some(cs), Some(cf), Some(cl)) = (col(0), col(1), col(2)) else {
            return Err(ModelError::Data(
                "second stage: L-BFGS needs small, fit and large events".into(),
            ));
        };
        let w = fitted.params();
        let mut coef = vec![0.0; 2 * p];
        for j in 0..p {
            coef[j] = w[[j, cs]] - w[[j, cf]];
            coef[p + j] = w[[j, cl]] - w[[j, cf]];
        }
        Ok(coef)
    }
}
