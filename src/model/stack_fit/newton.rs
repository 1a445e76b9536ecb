//! The purchase learner's numerics: a standardised design and the rows a fit uses,
//! log loss / gradient / Hessian sums over fixed chunks of rows (deterministic, a
//! group-by in a distributed setting), and the damped Newton minimiser the purchase
//! learner ([`super::learner`]) and the offer calibration share.

use super::gram::symmetric_gram;
use super::minimise::{minimise, Minimum, Quadratic, Start};
use crate::model::stack::softmax2;
use crate::model::ModelError;
use ndarray::ArrayView2;
use rayon::prelude::*;

/// Rows per chunk of the gradient / Hessian sums (fixed: results do not depend on threads).
pub(super) const CHUNK: usize = 4096;

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

/// What one evaluation of a learner's objective computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Objective and gradient over every included row.
    Value,
    /// Those and the Hessian on its row sample.
    All,
    /// The Hessian alone, on its row sample only (the objective and gradient come back
    /// empty): for a point whose value is known already. A Hessian samples ~65k rows, so
    /// this skips a pass over all the others.
    Hessian,
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
    /// (default [`LogitParams::tol`](super::LogitParams::tol): 1e-10).
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
    sums_for(d, spec, beta, if hessian { Need::All } else { Need::Value })
}

/// [`sums`] of what `need` asks for: with [`Need::Hessian`] only the Hessian's sampled
/// rows are visited (the same Hessian, bit for bit: same rows, same chunks; `nll` and
/// `grad` stay zero, `n` still counts every included row for the scaling).
pub fn sums_for<E: DesignElem>(
    d: &Design<'_, E>,
    spec: &FitSpec<'_>,
    beta: &[f64],
    need: Need,
) -> Sums {
    let hessian = need != Need::Value;
    let value = need != Need::Hessian;
    let stride = spec.hess_stride.max(1);
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
            // (in f32: the design's own precision, and twice the lanes of f64 in the
            // products that are most of a Hessian's cost; the Hessian only shapes the
            // steps, the gradient and objective stay in f64)
            let mut hx: Vec<f32> = Vec::new();
            let mut hw: [Vec<f32>; 3] = [Vec::new(), Vec::new(), Vec::new()];
            for i in lo..hi {
                if !included(spec, i) {
                    continue;
                }
                s.n += 1.0;
                let in_hessian = hessian && i % stride == 0;
                if !value && !in_hessian {
                    continue;
                }
                let row = &d.x[i * p..(i + 1) * p];
                let (es, el) = logits(row, beta, p);
                let pr = softmax2(es, el);
                if value {
                    let y = usize::from(d.y[i]);
                    s.nll -= pr[y].max(1e-300).ln();
                    let rs = pr[0] - f64::from(u8::from(y == 0));
                    let rl = pr[2] - f64::from(u8::from(y == 2));
                    let (gs, gl) = s.grad.split_at_mut(p);
                    for ((a, b), &v) in gs.iter_mut().zip(gl.iter_mut()).zip(row) {
                        let v = v.to_f64();
                        *a += rs * v;
                        *b += rl * v;
                    }
                }
                if in_hessian {
                    s.hn += 1.0;
                    hx.extend(row.iter().map(|v| v.to_f64() as f32));
                    hw[0].push((pr[0] * (1.0 - pr[0])) as f32);
                    hw[1].push((-pr[0] * pr[2]) as f32);
                    hw[2].push((pr[2] * (1.0 - pr[2])) as f32);
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
                        let h = symmetric_gram(xw.view(), x);
                        for &(r0, c0) in blocks {
                            for j in 0..p {
                                let dst = &mut s.hess[(r0 + j) * q + c0..(r0 + j) * q + c0 + p];
                                for (a, &b) in dst.iter_mut().zip(h.row(j)) {
                                    *a += f64::from(b);
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

/// How a ridge fit is penalised: which coefficients the penalty `(λ/2)·Σβ²` counts
/// (the intercepts are free), and the diagonal it adds to the loss Hessian: `λ` on the
/// penalised coefficients, a token 1e-8 on the free ones (a Hessian that stays positive
/// definite). The fits, their evidence and its predictions all read it from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Penalty {
    /// The purchase learner's two logits of `p` coefficients each; coefficient 0 of each
    /// (`j % p == 0`) is its intercept.
    Logits { p: usize },
    /// A binary fit; column 0 is the intercept.
    Binary,
}

impl Penalty {
    /// Whether coefficient `j` is penalised.
    pub(super) fn penalised(self, j: usize) -> bool {
        match self {
            Penalty::Logits { p } => !j.is_multiple_of(p),
            Penalty::Binary => j > 0,
        }
    }

    /// How many of `q` coefficients are penalised.
    pub(super) fn count(self, q: usize) -> usize {
        (0..q).filter(|&j| self.penalised(j)).count()
    }

    /// The Hessian's diagonal term on coefficient `j` at penalty `lambda`.
    pub(super) fn ridge(self, j: usize, lambda: f64) -> f64 {
        if self.penalised(j) {
            lambda.max(1e-8)
        } else {
            1e-8
        }
    }

    /// The penalty `(λ/2)·Σβ²` over the penalised coefficients of `beta`.
    pub(super) fn value(self, beta: &[f64], lambda: f64) -> f64 {
        let mut sum = 0.0;
        for (j, b) in beta.iter().enumerate() {
            if self.penalised(j) {
                sum += b * b;
            }
        }
        0.5 * lambda * sum
    }
}

/// Add `diag(j)` to each diagonal entry of the row-major `q × q` matrix `hess` (too short
/// a matrix is left as is): a loss Hessian becomes the penalised one.
pub(super) fn add_ridge(hess: &mut [f64], q: usize, diag: impl Fn(usize) -> f64) {
    if hess.len() < q * q {
        return;
    }
    for j in 0..q {
        hess[j * q + j] += diag(j);
    }
}

/// Penalised Newton fit of the two logits from `start` (length 2p; `minimise`);
/// deterministic. `start_hessian`: the loss Hessian (no penalty) at `start` over the same
/// rows, when the caller has it (the previous fit of a penalty path: see
/// `evidence::logit_evidence`); the first step then computes none.
pub fn fit_logit<E: DesignElem>(
    d: &Design<'_, E>,
    spec: &FitSpec<'_>,
    start: &[f64],
    start_hessian: Option<&[f64]>,
) -> Result<Vec<f64>, ModelError> {
    Ok(fit_logit_min(d, spec, start, start_hessian)?.beta)
}

/// [`fit_logit`]'s whole end state: the coefficients, their penalised objective and
/// the last (penalised) Hessian computed, for the evidence at the optimum
/// ([`super::evidence::logit_evidence_from`]).
pub(super) fn fit_logit_min<E: DesignElem>(
    d: &Design<'_, E>,
    spec: &FitSpec<'_>,
    start: &[f64],
    start_hessian: Option<&[f64]>,
) -> Result<Minimum, ModelError> {
    let p = d.p;
    let q = 2 * p;
    let mut beta = start.to_vec();
    let mut hess = start_hessian.map(<[f64]>::to_vec);
    if beta.len() != q {
        beta = vec![0.0; q];
        hess = None;
    }
    let pen = Penalty::Logits { p };
    if let Some(h) = hess.as_mut().filter(|h| h.len() == q * q) {
        add_ridge(h, q, |j| pen.ridge(j, spec.lambda));
    }
    let hessians = std::cell::Cell::new(0u32);
    let eval = |b: &[f64], need: Need| {
        let hessian = need != Need::Value;
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
        let s = sums_for(d, &at, b, need);
        let obj = s.nll + pen.value(b, spec.lambda);
        let mut grad = s.grad;
        let mut hess = s.hess;
        for j in 0..q {
            if pen.penalised(j) {
                grad[j] += spec.lambda * b[j];
            }
        }
        if hessian {
            add_ridge(&mut hess, q, |j| pen.ridge(j, spec.lambda));
        }
        Quadratic { obj, grad, hess }
    };
    let min = minimise(
        Start { beta, hess },
        (spec.max_iter, spec.tol),
        "second stage",
        eval,
    )?;
    if !min.obj.is_finite() {
        return Err(ModelError::Diverged(format!(
            "second stage: objective is {}",
            min.obj
        )));
    }
    Ok(min)
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
        // (summed in f32: to its precision)
        let h = &s.hess;
        assert!((h[0] - 2.0 / 9.0).abs() < 1e-7);
        assert!((h[1] + 1.0 / 9.0).abs() < 1e-7);
        assert!((h[2] + 1.0 / 9.0).abs() < 1e-7);
        assert!((h[3] - 2.0 / 9.0).abs() < 1e-7);
    }

    #[test]
    fn hessian_alone_is_the_same_hessian() {
        // 11 rows of 3 features over three chunks' worth of strides, one row left out
        let x: Vec<f32> = (0..33).map(|k| ((k * 7 % 11) as f32 - 5.0) / 3.0).collect();
        let y: Vec<u8> = (0..11).map(|i| (i * 5 % 3) as u8).collect();
        let d = Design { x: &x, y: &y, p: 3 };
        let w: Vec<f32> = (0..11).map(|i| if i == 4 { 0.0 } else { 1.0 }).collect();
        let spec = FitSpec {
            lambda: 0.0,
            weights: Some(&w),
            max_iter: 10,
            hess_stride: 2,
            tol: 1e-10,
        };
        let beta = [0.1, -0.2, 0.3, -0.4, 0.5, 0.05];
        let all = sums_for(&d, &spec, &beta, Need::All);
        let alone = sums_for(&d, &spec, &beta, Need::Hessian);
        assert_eq!(alone.hess, all.hess);
        assert_eq!((alone.n, alone.hn), (all.n, all.hn));
        assert_eq!((alone.n, alone.hn), (10.0, 5.0));
        assert_eq!(alone.nll, 0.0);
        // the value alone: the same log loss and gradient, no Hessian
        let value = sums_for(&d, &spec, &beta, Need::Value);
        assert_eq!((value.nll, &value.grad), (all.nll, &all.grad));
        assert!(value.hess.is_empty());
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
            // an objective within ~1e-14 of its minimum: coefficients within ~1e-7
            tol: 1e-14,
        };
        let b = fit_logit(&d, &spec, &[], None).unwrap();
        assert!((b[0] - (0.4f64).ln()).abs() < 1e-6, "{b:?}");
        assert!((b[1] - (0.6f64).ln()).abs() < 1e-6, "{b:?}");
        // deterministic
        assert_eq!(b, fit_logit(&d, &spec, &[], None).unwrap());
        // the loss Hessian at the optimum, per row [[ps(1-ps), -ps·pl], [., pl(1-pl)]]
        // with ps = 0.2, pl = 0.3, over 10 rows; without a penalty there is no evidence
        let at = super::super::evidence::logit_evidence(&d, &spec, &b);
        assert!(at.evidence.is_none());
        let h = at.loss_hess;
        for (got, want) in h.iter().zip([1.6, -0.6, -0.6, 2.1]) {
            assert!((got - want).abs() < 1e-5, "{h:?}");
        }
        // started at the optimum with that Hessian: still the optimum (to the fit's
        // tolerance, as above)
        let again = fit_logit(&d, &spec, &b, Some(&h)).unwrap();
        for (x, y) in again.iter().zip(&b) {
            assert!((x - y).abs() < 1e-6, "{again:?} vs {b:?}");
        }
    }
}
