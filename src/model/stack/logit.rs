//! Multinomial logistic regression for the second stage: chunked gradient / Hessian
//! sums, a ridge-penalised Newton fit, standardised designs and cross-validation folds.

use super::*;

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
    /// Rows `i` with `i % hess_stride == 0` enter the Hessian, scaled up to all the
    /// included rows (1 = every row). The gradient and objective always use every
    /// included row, so the fit converges to the same optimum; the Hessian only shapes
    /// the steps, and its cost (`p²` per row) stays bounded as rows grow (see
    /// [`StackParams::hess_rows`]).
    pub hess_stride: usize,
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
pub(super) fn in_cv(group: u64, n: usize, cv_rows: usize) -> bool {
    if cv_rows == 0 || n <= cv_rows {
        return true;
    }
    hash_in_sample(
        group.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15,
        cv_rows as f64 / n as f64,
    )
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

pub(super) fn logits(row: &[f64], beta: &[f64], p: usize) -> (f64, f64) {
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
                if hessian && i % spec.hess_stride.max(1) == 0 {
                    s.hn += 1.0;
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
        let step = crate::model::features::cholesky_solve(&mut h, &neg, q)
            .ok_or_else(|| ModelError::Diverged("second stage: singular Hessian".into()))?;
        let Some((cand, cs, cobj)) = damped_step(&beta, &step, obj, |c| {
            let cs = sums(d, spec, c, true);
            let o = penalised(&cs, c, spec.lambda, p);
            (cs, o)
        }) else {
            break;
        };
        let gain = obj - cobj;
        (beta, s, obj) = (cand, cs, cobj);
        if gain <= 1e-10 * obj.abs().max(1.0) {
            return Ok(beta);
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
// standardised designs and cross-validation folds

/// Standardise raw rows in place; returns (mean, scale, lo, hi).
pub(super) type Standardisation = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

pub(super) fn standardise(x: &mut [f64], p: usize) -> Standardisation {
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
pub(super) fn quantiles(mut v: Vec<f64>, qs: &[f64]) -> Vec<f64> {
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
pub(super) fn design_for(
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
pub(super) fn fold_probs(
    d: &Design<'_>,
    folds: &[u8],
    f: u8,
    beta: &[f64],
) -> (Vec<[f64; 3]>, Vec<usize>) {
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
