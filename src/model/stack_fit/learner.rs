//! The purchase learner: a ridge-penalised multinomial logistic regression (fit as the
//! reference class), as a linfa estimator ([`LogitParams`] → [`FittedLogit`]) on a linfa
//! `Dataset` of standardised ndarray rows. Two solvers: Newton's method on chunked
//! gradient / Hessian sums (default), or linfa-logistic's multinomial regression
//! (L-BFGS) for comparison ([`Solver`]).

use crate::model::stack::softmax2;
use crate::model::ModelError;
use linfa::dataset::{AsSingleTargets, DatasetBase};
use linfa::traits::{Fit, PredictInplace};
use linfa::ParamGuard;
use ndarray::{Array2, ArrayBase, ArrayView2, Axis, Data, Ix2};
use rayon::prelude::*;

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

/// Rows per chunk of the gradient / Hessian sums (fixed: results do not depend on threads).
pub(super) const CHUNK: usize = 4096;

/// A Newton fit keeps its Hessian for the next step while each step's gain in the
/// objective is at most this share of the previous step's (the Hessian, `p²` work per
/// row, is most of an iteration's cost; a gradient is `p`).
pub(super) const HESSIAN_KEEP: f64 = 0.25;

/// A design matrix element: `f32` (the stored designs: half the memory and memory
/// traffic of a pass, and standardised features need no more digits) or `f64`; every
/// sum is taken in `f64`.
pub trait DesignElem: Copy + Send + Sync + 'static {
    /// The value as `f64`.
    fn to_f64(self) -> f64;
}

impl DesignElem for f32 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
}

impl DesignElem for f64 {
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
}

/// Hessians a Newton fit computes on its row sample ([`FitSpec::hess_stride`]) before
/// each further one doubles the rows.
const HESSIAN_SAMPLE_TRIES: u32 = 5;

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
            hess_rows: 16_384,
            solver: Solver::Newton,
            start: Vec::new(),
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

    /// Rows whose second derivatives enter each Newton step (default 16,384; 0 = all);
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
        let coef = match self.solver {
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
                fit_logit(&d, &spec, &self.start)?
            }
            Solver::Lbfgs => {
                let x64 = x.mapv(DesignElem::to_f64);
                self.fit_lbfgs(x64.view(), &y.to_vec(), dataset.weights())?
            }
        };
        Ok(FittedLogit { coef })
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

/// A standardised design matrix with classes.
pub struct Design<'a, E: DesignElem = f64> {
    /// Rows, row-major, `p` per row.
    pub x: &'a [E],
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
    /// Weight per row: rows of weight 0 are left out (`None`: every row).
    pub weights: Option<&'a [f32]>,
    /// Newton iterations at most.
    pub max_iter: usize,
    /// Rows `i` with `i % hess_stride == 0` enter the Hessian, scaled up to all the
    /// included rows (1 = every row). The gradient and objective always use every
    /// included row, so the fit converges to the same optimum; the Hessian only shapes
    /// the steps, and its cost (`p²` per row) stays bounded as rows grow (see
    /// `StackParams::hess_rows`).
    pub hess_stride: usize,
    /// The fit stops when a step gains less than this share of the objective
    /// (default [`LogitParams::tol`]: 1e-10).
    pub tol: f64,
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
    /// Rows summed into the Hessian.
    pub hn: f64,
}

impl Sums {
    fn new(p: usize, hessian: bool) -> Sums {
        Sums {
            nll: 0.0,
            grad: vec![0.0; 2 * p],
            hess: vec![0.0; if hessian { 4 * p * p } else { 0 }],
            n: 0.0,
            hn: 0.0,
        }
    }

    fn merge(&mut self, o: &Sums) {
        self.nll += o.nll;
        self.n += o.n;
        self.hn += o.hn;
        self.grad.iter_mut().zip(&o.grad).for_each(|(a, b)| *a += b);
        self.hess.iter_mut().zip(&o.hess).for_each(|(a, b)| *a += b);
    }
}

pub(super) fn included(spec: &FitSpec<'_>, i: usize) -> bool {
    spec.weights
        .is_none_or(|w| w.get(i).is_some_and(|&w| w > 0.0))
}

/// A damped Newton step: `beta + scale·step` for `scale` = 1, 1/2, ... (12 tries); the
/// first candidate whose objective (`eval` gives its state and objective) is finite and
/// not above `obj` is returned with them, `None` when none is.
pub(super) fn damped_step<T>(
    beta: &[f64],
    step: &[f64],
    obj: f64,
    mut eval: impl FnMut(&[f64]) -> (T, f64),
) -> Option<(Vec<f64>, T, f64)> {
    let mut scale = 1.0;
    for _ in 0..12 {
        let cand: Vec<f64> = beta.iter().zip(step).map(|(b, d)| b + scale * d).collect();
        let (state, cobj) = eval(&cand);
        if cobj.is_finite() && cobj <= obj + 1e-12 * obj.abs() {
            return Some((cand, state, cobj));
        }
        scale *= 0.5;
    }
    None
}

pub(super) fn logits<E: DesignElem>(row: &[E], beta: &[f64], p: usize) -> (f64, f64) {
    (dot(row, &beta[..p]), dot(row, &beta[p..2 * p]))
}

/// `Σ a_j·b_j` over the shorter of the two, in eight independent partial sums (the
/// compiler cannot reorder one running float sum into SIMD lanes itself).
#[inline]
pub(super) fn dot<E: DesignElem>(a: &[E], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let (ca, ra) = (a.chunks_exact(8), a.chunks_exact(8).remainder());
    let rb = b.chunks_exact(8).remainder();
    for (x, y) in ca.zip(b.chunks_exact(8)) {
        for k in 0..8 {
            acc[k] += x[k].to_f64() * y[k];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x.to_f64() * y).sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Log loss, gradient and Hessian of the multinomial logit (fit as reference) summed over
/// the included rows, in fixed chunks merged in order. `hessian = false` skips it.
pub fn sums<E: DesignElem>(
    d: &Design<'_, E>,
    spec: &FitSpec<'_>,
    beta: &[f64],
    hessian: bool,
) -> Sums {
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
            // the chunk's Hessian rows and their three weights (small-small,
            // small-large, large-large), multiplied out at the end as blocked matrix
            // products: a per-row rank-one update streams three p×p accumulators
            // through the cache for every row
            let mut hx: Vec<f64> = Vec::new();
            let mut hw: [Vec<f64>; 3] = [Vec::new(), Vec::new(), Vec::new()];
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
                    let v = v.to_f64();
                    *a += rs * v;
                    *b += rl * v;
                }
                if hessian && i % spec.hess_stride.max(1) == 0 {
                    s.hn += 1.0;
                    hx.extend(row.iter().map(|v| v.to_f64()));
                    hw[0].push(pr[0] * (1.0 - pr[0]));
                    hw[1].push(-pr[0] * pr[2]);
                    hw[2].push(pr[2] * (1.0 - pr[2]));
                }
            }
            if hessian && !hw[0].is_empty() {
                let m = hw[0].len();
                let x = ArrayView2::from_shape((m, p), &hx[..]).ok();
                let q = 2 * p;
                if let Some(x) = x {
                    // block (a, b) of the 2p × 2p Hessian: Xᵀ·diag(w)·X
                    for (w, blocks) in
                        hw.iter()
                            .zip([&[(0, 0)][..], &[(0, p), (p, 0)][..], &[(p, p)][..]])
                    {
                        let mut xw = x.to_owned();
                        for (mut r, &wi) in xw.rows_mut().into_iter().zip(w) {
                            r *= wi;
                        }
                        let h = xw.t().dot(&x);
                        for &(r0, c0) in blocks {
                            for j in 0..p {
                                let dst = &mut s.hess[(r0 + j) * q + c0..(r0 + j) * q + c0 + p];
                                for (a, b) in dst.iter_mut().zip(h.row(j)) {
                                    *a += b;
                                }
                            }
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
    if hessian && total.hn > 0.0 && total.hn < total.n {
        let up = total.n / total.hn;
        total.hess.iter_mut().for_each(|h| *h *= up);
    }
    total
}

pub(super) fn penalised(s: &Sums, beta: &[f64], lambda: f64, p: usize) -> f64 {
    let mut pen = 0.0;
    for (j, b) in beta.iter().enumerate() {
        if j % p != 0 {
            pen += b * b;
        }
    }
    s.nll + 0.5 * lambda * pen
}

/// Penalised Newton fit of the two logits from `start` (length 2p; [`minimise`]);
/// deterministic.
pub fn fit_logit<E: DesignElem>(
    d: &Design<'_, E>,
    spec: &FitSpec<'_>,
    start: &[f64],
) -> Result<Vec<f64>, ModelError> {
    let p = d.p;
    let q = 2 * p;
    let mut beta = start.to_vec();
    if beta.len() != q {
        beta = vec![0.0; q];
    }
    let hessians = std::cell::Cell::new(0u32);
    let eval = |b: &[f64], hessian: bool| {
        let mut at = *spec;
        if hessian {
            // a row sample's curvature misses rare features: when Newton's steps have
            // needed more than HESSIAN_SAMPLE_TRIES Hessians, each further one doubles
            // its rows (a 751k-row final fit took 30 steps and 24 Hessians without it,
            // 9 and 5 with every row)
            let k = hessians.get();
            hessians.set(k + 1);
            let doublings = k.saturating_sub(HESSIAN_SAMPLE_TRIES).min(usize::BITS - 1);
            at.hess_stride = (spec.hess_stride >> doublings).max(1);
        }
        let s = sums(d, &at, b, hessian);
        let obj = penalised(&s, b, spec.lambda, p);
        let mut grad = s.grad;
        let mut hess = s.hess;
        for j in 0..q {
            if j % p != 0 {
                grad[j] += spec.lambda * b[j];
            }
            if hessian {
                hess[j * q + j] += if j % p == 0 {
                    1e-8
                } else {
                    spec.lambda.max(1e-8)
                };
            }
        }
        Quadratic { obj, grad, hess }
    };
    let (beta, obj) = minimise(beta, (spec.max_iter, spec.tol), "second stage", eval)?;
    if !obj.is_finite() {
        return Err(ModelError::Diverged(format!(
            "second stage: objective is {obj}"
        )));
    }
    Ok(beta)
}

/// A penalised objective at one point, for [`minimise`]: its value, gradient and (when
/// asked for) Hessian, row-major; each includes the ridge penalty.
pub(super) struct Quadratic {
    pub(super) obj: f64,
    pub(super) grad: Vec<f64>,
    /// Empty unless asked for.
    pub(super) hess: Vec<f64>,
}

/// Newton's method from `start` on the objective `eval` gives (`eval(b, true)` with the
/// Hessian), at most `max_iter` steps, each damped until it does not increase the
/// objective. The Hessian (`p²` work per row, against `p` for a gradient) is kept for the
/// next step while each step gains at most [`HESSIAN_KEEP`] of the previous one's, and
/// recomputed otherwise; the fit stops at a step that gains less than `tol` of the
/// objective, but only on a step taken with a fresh Hessian (a stale one's small gain may
/// be slow progress), so it ends where Newton's method would. `what` names the fit in
/// errors. Returns the point and its objective.
pub(super) fn minimise(
    start: Vec<f64>,
    (max_iter, tol): (usize, f64),
    what: &str,
    eval: impl Fn(&[f64], bool) -> Quadratic,
) -> Result<(Vec<f64>, f64), ModelError> {
    let q = start.len();
    let mut beta = start;
    let mut at = eval(&beta, true);
    let mut hess = std::mem::take(&mut at.hess);
    let (mut fresh, mut hessians, mut last_gain, mut iter) = (true, 1, f64::INFINITY, 0);
    while iter < max_iter {
        iter += 1;
        let mut h = hess.clone();
        let neg: Vec<f64> = at.grad.iter().map(|v| -v).collect();
        let step = crate::model::features::cholesky_solve(&mut h, &neg, q)
            .ok_or_else(|| ModelError::Diverged(format!("{what}: singular Hessian")))?;
        // candidates are judged on the objective alone (no Hessian)
        let Some((cand, next, _)) = damped_step(&beta, &step, at.obj, |c| {
            let e = eval(c, false);
            let o = e.obj;
            (e, o)
        }) else {
            if fresh {
                break;
            }
            // a stale Hessian's step found no descent: refresh it here and retry
            hess = eval(&beta, true).hess;
            (hessians, fresh) = (hessians + 1, true);
            continue;
        };
        let gain = at.obj - next.obj;
        (beta, at) = (cand, next);
        if gain <= tol * at.obj.abs().max(1.0) {
            if fresh {
                tracing::trace!(target: "runsize::stack", what, iter, hessians, "converged");
                return Ok((beta, at.obj));
            }
            hess = eval(&beta, true).hess;
            (hessians, fresh, last_gain) = (hessians + 1, true, f64::INFINITY);
            continue;
        }
        if gain > HESSIAN_KEEP * last_gain {
            hess = eval(&beta, true).hess;
            (hessians, fresh) = (hessians + 1, true);
        } else {
            fresh = false;
        }
        last_gain = gain;
    }
    tracing::trace!(target: "runsize::stack", what, iter, hessians, "stopped");
    Ok((beta, at.obj))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_gradient_and_hessian_on_one_event() {
        // intercept only, beta = 0: p = 1/3 each; one "small" event.
        let x = [1.0];
        let y = [0u8];
        let d = Design { x: &x, y: &y, p: 1 };
        let spec = FitSpec {
            lambda: 0.0,
            weights: None,
            max_iter: 10,
            hess_stride: 1,
            tol: 1e-10,
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
    fn dot_sums_every_product_in_lanes() {
        // 11 terms: one full lane block of 8 and a tail of 3; Σ j·(j+1) for j = 0..10 = 440
        let a: Vec<f64> = (0..11).map(f64::from).collect();
        let b: Vec<f64> = (1..12).map(f64::from).collect();
        assert_eq!(dot(&a, &b), 440.0);
        // shorter of the two: 0·1 + 1·2 + 2·3 = 8
        assert_eq!(dot(&a[..3], &b), 8.0);
        assert_eq!(dot::<f64>(&[], &b), 0.0);
        // f32 rows are summed in f64: 0.1f32·10 + 0.5f32·2 = 2.000000014901161
        assert_eq!(
            dot(&[0.1f32, 0.5], &[10.0, 2.0]),
            f64::from(0.1f32) * 10.0 + 1.0
        );
    }

    #[test]
    fn gradient_matches_finite_differences() {
        // two features, five events
        let x = [1.0, 0.5, 1.0, -1.0, 1.0, 2.0, 1.0, 0.0, 1.0, -0.3];
        let y = [0u8, 1, 2, 1, 0];
        let d = Design { x: &x, y: &y, p: 2 };
        let spec = FitSpec {
            lambda: 0.0,
            weights: Some(&[1.0, 1.0, 0.0, 1.0, 1.0]),
            max_iter: 10,
            hess_stride: 1,
            tol: 1e-10,
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
            weights: None,
            max_iter: 50,
            hess_stride: 1,
            tol: 1e-10,
        };
        let b = fit_logit(&d, &spec, &[]).unwrap();
        assert!((b[0] - (0.4f64).ln()).abs() < 1e-6, "{b:?}");
        assert!((b[1] - (0.6f64).ln()).abs() < 1e-6, "{b:?}");
        // deterministic
        assert_eq!(b, fit_logit(&d, &spec, &[]).unwrap());
    }
}
