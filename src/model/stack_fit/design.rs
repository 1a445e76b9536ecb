//! The learners' standardised design matrices and cross-validation folds.

use super::inputs::{body_of, hash_in_sample, OfferView, TrainingInputs};
use super::params::StackParams;
use super::stored::StoredInput;
use crate::model::stack::{features, n_features, FeatureSet, FeatureSpec, StackInput};
use rayon::prelude::*;

/// Rows per parallel chunk of a design (fixed: the design does not depend on threads).
const DESIGN_CHUNK: usize = 4096;

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

/// The rows a design is built from: the training events' purchase inputs, each seen
/// through its offer view when `offer` is given (the offer regime's rows, without a
/// second copy of every input: ~290 MB at the learners' 1M rows).
#[derive(Clone, Copy)]
pub(super) struct Rows<'r> {
    /// Purchase-regime inputs, one per row.
    pub(super) inputs: &'r [StoredInput],
    /// Offer views, one per row, laid over `inputs` when given.
    pub(super) offer: Option<&'r [OfferView]>,
}

impl<'r> Rows<'r> {
    /// The purchase-regime rows.
    pub(super) fn purchase(inputs: &'r TrainingInputs) -> Self {
        Rows {
            inputs: &inputs.inputs,
            offer: None,
        }
    }

    /// The offer-regime rows of `inputs`.
    pub(super) fn offer(inputs: &'r TrainingInputs) -> Self {
        Rows {
            inputs: &inputs.inputs,
            offer: Some(&inputs.offer),
        }
    }

    /// Number of rows.
    pub(super) fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Rows `lo..lo + len` (clamped to the end).
    fn slice(&self, lo: usize, len: usize) -> Rows<'r> {
        let hi = (lo + len).min(self.inputs.len());
        let lo = lo.min(hi);
        Rows {
            inputs: &self.inputs[lo..hi],
            offer: self.offer.map(|o| o.get(lo..hi).unwrap_or(&[])),
        }
    }

    /// Row `k` with `body` as its body row.
    fn row<'b>(&self, k: usize, body: &'b [f64]) -> Option<StackInput<'b>> {
        let x = StackInput {
            body,
            ..self.inputs.get(k)?.input()
        };
        Some(match self.offer {
            Some(o) => o.get(k)?.onto(&x),
            None => x,
        })
    }
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

/// The standardised design of a feature set on the purchase-regime rows of `inputs`,
/// and its feature map.
pub(super) fn design_for(
    inputs: &TrainingInputs,
    set: FeatureSet,
    params: &StackParams,
) -> (Vec<f32>, FeatureSpec) {
    let spec = FeatureSpec {
        set,
        gap_knots: params.gap_knots.clone(),
        label_knots: quantiles(
            inputs.inputs.iter().map(StoredInput::label_pos).collect(),
            &[0.1, 0.3, 0.5, 0.7, 0.9],
        ),
        body_dim: inputs.body_dim,
        mean: Vec::new(),
        scale: Vec::new(),
        lo: Vec::new(),
        hi: Vec::new(),
    };
    standardised_design(inputs, Rows::purchase(inputs), spec, |spec, x, row| {
        row.clear();
        features(spec, x, &mut |v| row.push(v));
    })
}

/// The rows' features as `write` computes them under `spec` (each with its customer's
/// body row), standardised, as `E` (`f32` for the purchase learner's big design, `f64`
/// for the offer calibration's); `spec` gains the standardisation. Two passes over the
/// rows in fixed parallel chunks (moments, then standardised values), so no
/// full-precision copy of the design is ever held and the result does not depend on the
/// thread count.
pub(super) fn standardised_design<E: FromF64>(
    inputs: &TrainingInputs,
    rows: Rows<'_>,
    mut spec: FeatureSpec,
    write: impl Fn(&FeatureSpec, &StackInput<'_>, &mut Vec<f64>) + Sync,
) -> (Vec<E>, FeatureSpec) {
    let p = n_features(&spec).max(1);
    let n_chunks = rows.len().div_ceil(DESIGN_CHUNK);
    // chunk `ci`'s rows, written one at a time into `row`
    let each_row = |ci: usize, f: &mut dyn FnMut(usize, &[f64])| {
        let lo = ci * DESIGN_CHUNK;
        let chunk = rows.slice(lo, DESIGN_CHUNK);
        let customers = inputs.customer.get(lo..).unwrap_or(&[]);
        let mut row = Vec::with_capacity(p);
        for (k, &c) in (0..chunk.len()).zip(customers) {
            let body = body_of(&inputs.bodies, inputs.body_dim, c);
            let Some(x) = chunk.row(k, body) else {
                continue;
            };
            write(&spec, &x, &mut row);
            row.resize(p, 0.0);
            f(k, &row);
        }
    };
    // pass 1: per-chunk sums and sums of squares, merged in chunk order
    let moments: Vec<(Vec<f64>, Vec<f64>)> = (0..n_chunks)
        .into_par_iter()
        .map(|ci| {
            let (mut sum, mut sq) = (vec![0.0; p], vec![0.0; p]);
            each_row(ci, &mut |_, row| {
                for ((s, q), &v) in sum.iter_mut().zip(sq.iter_mut()).zip(row) {
                    *s += v;
                    *q += v * v;
                }
            });
            (sum, sq)
        })
        .collect();
    let n = rows.len().max(1) as f64;
    let (mut mean, mut sq) = (vec![0.0; p], vec![0.0; p]);
    for (s, q) in &moments {
        mean.iter_mut().zip(s).for_each(|(a, b)| *a += b);
        sq.iter_mut().zip(q).for_each(|(a, b)| *a += b);
    }
    let mut scale = vec![1.0; p];
    for j in 0..p {
        mean[j] /= n;
        let var = (sq[j] / n - mean[j] * mean[j]).max(0.0);
        scale[j] = if var > 1e-18 { var.sqrt() } else { 1.0 };
    }
    mean[0] = 0.0;
    scale[0] = 1.0;
    // pass 2: standardised values, and their per-column range
    let mut x = vec![E::from_f64(0.0); rows.len() * p];
    let ranges: Vec<(Vec<f64>, Vec<f64>)> = x
        .par_chunks_mut(p * DESIGN_CHUNK)
        .enumerate()
        .map(|(ci, out)| {
            let (mut lo, mut hi) = (vec![f64::INFINITY; p], vec![f64::NEG_INFINITY; p]);
            each_row(ci, &mut |k, row| {
                let dst = &mut out[k * p..(k + 1) * p];
                for j in 0..p {
                    let z = (row[j] - mean[j]) / scale[j];
                    lo[j] = lo[j].min(z);
                    hi[j] = hi[j].max(z);
                    dst[j] = E::from_f64(z);
                }
            });
            (lo, hi)
        })
        .collect();
    let (mut lo, mut hi) = (vec![f64::INFINITY; p], vec![f64::NEG_INFINITY; p]);
    for (l, h) in &ranges {
        lo.iter_mut().zip(l).for_each(|(a, b)| *a = a.min(*b));
        hi.iter_mut().zip(h).for_each(|(a, b)| *a = a.max(*b));
    }
    for j in 0..p {
        if !lo[j].is_finite() || !hi[j].is_finite() {
            lo[j] = -1e6;
            hi[j] = 1e6;
        }
    }
    (spec.mean, spec.scale, spec.lo, spec.hi) = (mean, scale, lo, hi);
    (x, spec)
}

/// A design element written from an `f64` value (rounded to `f32`, or kept).
pub(super) trait FromF64: Copy + Send + Sync {
    /// `v` as this type.
    fn from_f64(v: f64) -> Self;
}

impl FromF64 for f32 {
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl FromF64 for f64 {
    fn from_f64(v: f64) -> Self {
        v
    }
}
