//! Evaluation metrics: one-vs-rest ROC AUC per class and their average (the published
//! metric), log loss, accuracy, expected calibration error, overall and by cold-start
//! segment (training events of the customer / product).

use super::predictor::Predictor;
use super::ModelError;
use crate::data::schema::{Events, NONE};
use rayon::prelude::*;
use serde::Serialize;

/// Metrics over one set of events.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Events scored (small / fit / large outcomes only).
    pub n: usize,
    /// Average of the three one-vs-rest AUCs (NaN where a class is absent).
    pub auc_avg: f64,
    /// One-vs-rest AUC for small, fit, large.
    pub auc: [f64; 3],
    /// Mean negative log-likelihood.
    pub log_loss: f64,
    /// Share of events whose most likely class was the outcome.
    pub accuracy: f64,
    /// Top-label expected calibration error (15 equal-width bins).
    pub ece: f64,
    /// Class-wise expected calibration error, averaged over the three classes.
    pub ece_classwise: f64,
}

/// A segment's metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Segment {
    /// Which dimension: `customer` or `product`.
    pub by: &'static str,
    /// Bucket of training events: `0`, `1-2`, `3-9`, `10+`.
    pub bucket: &'static str,
    /// Metrics in the bucket.
    pub metrics: Metrics,
}

/// Full evaluation report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    /// Over all scored events.
    pub overall: Metrics,
    /// By cold-start segment.
    pub segments: Vec<Segment>,
}

/// ROC AUC of `scores` for binary `labels` (ties get average rank); NaN when one
/// class is absent. The (score, label) pairs are sorted in place, in parallel: sorting
/// indices by the scores they point to was a serial, cache-missing second of a 10M-event
/// train's held-out evaluation (1.9M events, three classes). Equal scores form one group
/// whatever their order, so the result is the same.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let n = scores.len().min(labels.len());
    let mut pairs: Vec<(f64, bool)> = scores[..n]
        .iter()
        .copied()
        .zip(labels[..n].iter().copied())
        .collect();
    pairs.par_sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let n_pos = pairs.iter().filter(|p| p.1).count() as f64;
    let n_neg = n as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return f64::NAN;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && pairs[j + 1].0 == pairs[i].0 {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for p in &pairs[i..=j] {
            if p.1 {
                rank_sum += avg_rank;
            }
        }
        i = j + 1;
    }
    (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// Compute metrics from probabilities and classes (0 small, 1 fit, 2 large).
pub fn metrics(probs: &[[f64; 3]], classes: &[usize]) -> Metrics {
    let n = probs.len().min(classes.len());
    if n == 0 {
        return Metrics {
            auc_avg: f64::NAN,
            auc: [f64::NAN; 3],
            log_loss: f64::NAN,
            accuracy: f64::NAN,
            ece: f64::NAN,
            ece_classwise: f64::NAN,
            ..Default::default()
        };
    }
    let mut auc = [0.0; 3];
    for (k, a) in auc.iter_mut().enumerate() {
        let s: Vec<f64> = probs[..n].iter().map(|p| p[k]).collect();
        let l: Vec<bool> = classes[..n].iter().map(|&c| c == k).collect();
        *a = roc_auc(&s, &l);
    }
    let mut ll = 0.0;
    let mut correct = 0usize;
    const BINS: usize = 15;
    let mut top = [[0.0f64; 3]; BINS]; // count, Σconfidence, Σcorrect
    let mut cw = [[[0.0f64; 3]; BINS]; 3];
    for (p, &c) in probs[..n].iter().zip(&classes[..n]) {
        ll -= p[c].max(1e-15).ln();
        let (arg, conf) =
            p.iter().enumerate().fold(
                (0, f64::NEG_INFINITY),
                |acc, (k, &v)| if v > acc.1 { (k, v) } else { acc },
            );
        if arg == c {
            correct += 1;
        }
        let bin = ((conf * BINS as f64) as usize).min(BINS - 1);
        top[bin][0] += 1.0;
        top[bin][1] += conf;
        top[bin][2] += f64::from(u8::from(arg == c));
        for k in 0..3 {
            let b = ((p[k] * BINS as f64) as usize).min(BINS - 1);
            cw[k][b][0] += 1.0;
            cw[k][b][1] += p[k];
            cw[k][b][2] += f64::from(u8::from(c == k));
        }
    }
    let ece_of = |bins: &[[f64; 3]; BINS]| -> f64 {
        bins.iter()
            .filter(|b| b[0] > 0.0)
            .map(|b| (b[1] - b[2]).abs())
            .sum::<f64>()
            / n as f64
    };
    Metrics {
        n,
        auc_avg: auc.iter().sum::<f64>() / 3.0,
        auc,
        log_loss: ll / n as f64,
        accuracy: correct as f64 / n as f64,
        ece: ece_of(&top),
        ece_classwise: cw.iter().map(ece_of).sum::<f64>() / 3.0,
    }
}

fn bucket(n: u64) -> usize {
    match n {
        0 => 0,
        1..=2 => 1,
        3..=9 => 2,
        _ => 3,
    }
}

const BUCKETS: [&str; 4] = ["0", "1-2", "3-9", "10+"];

impl Predictor {
    /// Evaluate the model on events with outcomes.
    pub fn evaluate(&self, events: &Events) -> Result<EvalReport, ModelError> {
        if !events.has_outcome {
            return Err(ModelError::NoOutcomes);
        }
        let probs = self.score(events);
        let r = self.resolve(events);
        let mut all_p = Vec::new();
        let mut all_c = Vec::new();
        let mut seg: Vec<(Vec<[f64; 3]>, Vec<usize>)> = vec![(Vec::new(), Vec::new()); 8];
        for (i, p) in probs.iter().enumerate() {
            let Some(c) = events.outcome[i].class() else {
                continue;
            };
            if p.iter().any(|x| !x.is_finite()) {
                continue;
            }
            all_p.push(*p);
            all_c.push(c);
            let mc = r
                .customer
                .get(events.customer[i] as usize)
                .copied()
                .unwrap_or(NONE);
            let cn = if mc == NONE {
                0
            } else {
                u64::from(self.customers.n.get(mc as usize).copied().unwrap_or(0))
            };
            let mp = if events.product[i] == NONE {
                NONE
            } else {
                r.product
                    .get(events.product[i] as usize)
                    .copied()
                    .unwrap_or(NONE)
            };
            let pn = if mp == NONE {
                0
            } else {
                self.products.get(mp as usize).map_or(0, |p| p.offset.n)
            };
            let (a, b) = (bucket(cn), 4 + bucket(pn));
            seg[a].0.push(*p);
            seg[a].1.push(c);
            seg[b].0.push(*p);
            seg[b].1.push(c);
        }
        if all_p.is_empty() {
            return Err(ModelError::NoOutcomes);
        }
        let segments = seg
            .iter()
            .enumerate()
            .filter(|(_, (p, _))| !p.is_empty())
            .map(|(k, (p, c))| Segment {
                by: if k < 4 { "customer" } else { "product" },
                bucket: BUCKETS[k % 4],
                metrics: metrics(p, c),
            })
            .collect();
        Ok(EvalReport {
            overall: metrics(&all_p, &all_c),
            segments,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_hand_values() {
        // perfect ranking
        assert_eq!(
            roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]),
            1.0
        );
        // reversed
        assert_eq!(
            roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]),
            0.0
        );
        // all tied: 0.5
        assert_eq!(roc_auc(&[0.5; 4], &[false, true, false, true]), 0.5);
        // one inversion out of 4 pairs: 0.75
        assert_eq!(
            roc_auc(&[0.1, 0.6, 0.5, 0.9], &[false, false, true, true]),
            0.75
        );
        assert!(roc_auc(&[0.1, 0.2], &[true, true]).is_nan());
    }

    #[test]
    fn metrics_hand_values() {
        let probs = [
            [0.8, 0.1, 0.1],
            [0.1, 0.8, 0.1],
            [0.1, 0.1, 0.8],
            [0.1, 0.8, 0.1],
        ];
        let m = metrics(&probs, &[0, 1, 2, 0]);
        assert_eq!(m.n, 4);
        assert!((m.accuracy - 0.75).abs() < 1e-12);
        // log loss = -(3 ln 0.8 + ln 0.1)/4
        let ll = -(3.0 * 0.8f64.ln() + 0.1f64.ln()) / 4.0;
        assert!((m.log_loss - ll).abs() < 1e-12);
        // all top confidences 0.8 in one bin, 3 of 4 correct: |3.2 - 3| / 4 = 0.05
        assert!((m.ece - 0.05).abs() < 1e-12);
    }
}
