//! The learners' standardised design matrices and cross-validation folds.

use super::inputs::{body_of, hash_in_sample, TrainingInputs};
use super::params::StackParams;
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
    let spec = FeatureSpec {
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
    standardised_design(inputs, rows, spec, |spec, x, row| {
        row.clear();
        features(spec, x, &mut |v| row.push(v));
    })
}

/// The rows' features as `write` computes them under `spec` (each with its customer's
/// body row), standardised; `spec` gains the standardisation.
pub(super) fn standardised_design(
    inputs: &TrainingInputs,
    rows: &[StackInput<'static>],
    mut spec: FeatureSpec,
    write: impl Fn(&FeatureSpec, &StackInput<'_>, &mut Vec<f64>) + Sync,
) -> (Vec<f64>, FeatureSpec) {
    let p = n_features(&spec);
    let mut x = vec![0.0; rows.len() * p];
    // rows written in parallel chunks (each row's features are its own)
    x.par_chunks_mut(p.max(1) * DESIGN_CHUNK)
        .zip(rows.par_chunks(DESIGN_CHUNK))
        .zip(inputs.customer.par_chunks(DESIGN_CHUNK))
        .for_each(|((out, rows), customers)| {
            let mut row = Vec::with_capacity(p);
            for ((dst, inp), &c) in out.chunks_mut(p.max(1)).zip(rows).zip(customers) {
                let body = body_of(&inputs.bodies, inputs.body_dim, c);
                write(&spec, &StackInput { body, ..*inp }, &mut row);
                for (d, v) in dst.iter_mut().zip(&row) {
                    *d = *v;
                }
            }
        });
    let (mean, scale, lo, hi) = standardise(&mut x, p);
    (spec.mean, spec.scale, spec.lo, spec.hi) = (mean, scale, lo, hi);
    (x, spec)
}
