//! What the model is worth, measured offline on held-out purchases with outcomes:
//!
//! - the **worth table**: for each purchase, the size runsize would have recommended to
//!   that shopper for that product (from what was known before the purchase: no use of
//!   the size bought), and the fit rate of purchases whose bought size equals it vs those
//!   where it differs, by confidence level: the offline proxy of a size-advice A/B test;
//! - the **reliability table**: predicted vs observed rate of each outcome in ten bins
//!   of predicted probability (the model's probabilities as `runsize eval` scores them).
//!
//! Both are stored in a model artifact's header by `runsize train` when it has a
//! held-out part ([`HeldOut`]), for the merchant page to draw.

use crate::data::schema::{Events, NONE};
use crate::model::eval::metrics;
use crate::model::predict::ArticleRef;
use crate::model::predictor::Predictor;
use crate::model::score::ScoreOptions;
use crate::model::ModelError;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use crate::model::predictor::confidence_level;

/// A number that JSON wrote as `null` (serde_json writes NaN that way: a rate over no
/// events) read back as NaN, so a header that was written can always be read.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Levels in table order.
pub const LEVELS: [&str; 4] = ["high", "medium", "low", "all"];

/// One row of the worth table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorthRow {
    /// Confidence level (`high`, `medium`, `low`) or `all`.
    pub level: String,
    /// Purchases whose bought size was the recommended one.
    pub matched_n: u64,
    /// Their fit rate (NaN, written `null`, when there are none).
    #[serde(deserialize_with = "nan_if_null")]
    pub matched_fit_rate: f64,
    /// Purchases of another size.
    pub other_n: u64,
    /// Their fit rate (NaN, written `null`, when there are none).
    #[serde(deserialize_with = "nan_if_null")]
    pub other_fit_rate: f64,
    /// Of those: bought smaller than recommended (count).
    pub smaller_n: u64,
    /// Their fit rate (NaN, written `null`, when there are none).
    #[serde(deserialize_with = "nan_if_null")]
    pub smaller_fit_rate: f64,
    /// Of those: bought larger than recommended (count).
    pub larger_n: u64,
    /// Their fit rate (NaN, written `null`, when there are none).
    #[serde(deserialize_with = "nan_if_null")]
    pub larger_fit_rate: f64,
}

/// One bin of a reliability table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReliabilityBin {
    /// Lower edge of predicted probability.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Events in the bin.
    pub n: u64,
    /// Mean predicted probability.
    pub predicted: f64,
    /// Observed rate of the outcome.
    pub observed: f64,
}

/// Reliability of one outcome's probabilities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reliability {
    /// `small`, `fit` or `large`.
    pub outcome: String,
    /// Non-empty bins, by predicted probability.
    pub bins: Vec<ReliabilityBin>,
}

/// What a held-out evaluation found, as stored in an artifact header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HeldOut {
    /// Which events (e.g. `part 1 of split 80,10,10 (seed 0)`).
    pub source: String,
    /// Events scored.
    pub n: u64,
    /// Average one-vs-rest AUC (NaN, written `null`, when an outcome is missing).
    #[serde(deserialize_with = "nan_if_null")]
    pub auc_avg: f64,
    /// Log loss.
    #[serde(deserialize_with = "nan_if_null")]
    pub log_loss: f64,
    /// Top-label expected calibration error.
    #[serde(deserialize_with = "nan_if_null")]
    pub ece: f64,
    /// Reliability per outcome.
    pub reliability: Vec<Reliability>,
    /// The worth table.
    pub worth: Vec<WorthRow>,
}

/// Reliability bins (`bins` equal-width) of probabilities `probs` for classes `classes`.
pub fn reliability(probs: &[[f64; 3]], classes: &[usize], bins: usize) -> Vec<Reliability> {
    let bins = bins.max(1);
    ["small", "fit", "large"]
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let mut acc = vec![(0u64, 0.0f64, 0.0f64); bins];
            for (p, &c) in probs.iter().zip(classes) {
                let x = p[k];
                if !x.is_finite() {
                    continue;
                }
                let b = ((x * bins as f64) as usize).min(bins - 1);
                if let Some(a) = acc.get_mut(b) {
                    a.0 += 1;
                    a.1 += x;
                    a.2 += f64::from(u8::from(c == k));
                }
            }
            Reliability {
                outcome: (*name).to_string(),
                bins: acc
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| a.0 > 0)
                    .map(|(i, a)| ReliabilityBin {
                        lo: i as f64 / bins as f64,
                        hi: (i + 1) as f64 / bins as f64,
                        n: a.0,
                        predicted: a.1 / a.0 as f64,
                        observed: a.2 / a.0 as f64,
                    })
                    .collect(),
            }
        })
        .collect()
}

/// One held-out purchase seen by the worth table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorthCase {
    /// Confidence level index into [`LEVELS`] (0 high, 1 medium, 2 low).
    pub level: usize,
    /// Bought size vs recommended: -1 smaller, 0 the same, +1 larger.
    pub bought_vs_recommended: i8,
    /// The purchase fit.
    pub fit: bool,
}

/// The worth table of `cases`: one row per level with cases, then `all`.
pub fn worth_table(cases: &[WorthCase]) -> Vec<WorthRow> {
    let rate = |fit: u64, n: u64| {
        if n == 0 {
            f64::NAN
        } else {
            fit as f64 / n as f64
        }
    };
    LEVELS
        .iter()
        .enumerate()
        .filter_map(|(k, name)| {
            // [same, smaller, larger] x [n, fit]
            let mut c = [[0u64; 2]; 3];
            for w in cases.iter().filter(|w| k == 3 || w.level == k) {
                let slot = match w.bought_vs_recommended {
                    0 => 0,
                    d if d < 0 => 1,
                    _ => 2,
                };
                c[slot][0] += 1;
                c[slot][1] += u64::from(w.fit);
            }
            let other = [c[1][0] + c[2][0], c[1][1] + c[2][1]];
            (c[0][0] + other[0] > 0).then(|| WorthRow {
                level: (*name).to_string(),
                matched_n: c[0][0],
                matched_fit_rate: rate(c[0][1], c[0][0]),
                other_n: other[0],
                other_fit_rate: rate(other[1], other[0]),
                smaller_n: c[1][0],
                smaller_fit_rate: rate(c[1][1], c[1][0]),
                larger_n: c[2][0],
                larger_fit_rate: rate(c[2][1], c[2][0]),
            })
        })
        .collect()
}

/// Events the worth table is computed on, about: above it, an even sample of them
/// (a rate in the table then rests on at least a few thousand cases per level).
pub const WORTH_SAMPLE_EVENTS: usize = 250_000;

/// The worth cases of `events` under `model`: every purchase with a small / fit / large
/// outcome of a product the model knows with at least two sizes in a known label. The
/// recommendation is the offered size with the highest fit probability for the
/// shopper's belief before the purchase (training posterior, or body-feature /
/// population prior), structural model. Above [`WORTH_SAMPLE_EVENTS`] events, every
/// k-th event only (each case prices every size of its product: at 3.8M held-out events
/// this was most of a train's held-out evaluation).
pub fn worth_cases(model: &Predictor, events: &Events) -> Vec<WorthCase> {
    let r = model.resolve(events);
    let opts = ScoreOptions {
        choice_evidence: false,
    };
    let every = events.len().div_ceil(WORTH_SAMPLE_EVENTS).max(1);
    (0..events.len())
        .into_par_iter()
        .with_min_len(1024)
        .filter(|i| i % every == 0)
        .filter_map(|i| {
            let fit = events.outcome.get(i)?.class()? == 1;
            let (a, belief) = model.event_view(events, &r, i, &opts)?;
            if a.product == NONE || a.label == NONE {
                return None;
            }
            let info = model.product_info.get(a.product as usize)?;
            if info.sizes.len() < 2 {
                return None;
            }
            let mut best: Option<(u32, f64, f64)> = None; // label, p_fit, pos
            for &l in &info.sizes {
                let lp = model.labels.get(l as usize)?;
                let cand = ArticleRef {
                    label: l,
                    system: lp.system,
                    pos: lp.pos,
                    ..a
                };
                let p = model.probs_article(belief, &cand)[1];
                if best.is_none_or(|b| p > b.1) {
                    best = Some((l, p, lp.pos));
                }
            }
            let (label, p_fit, pos) = best?;
            let level = match confidence_level(belief.var.sqrt(), p_fit) {
                "high" => 0,
                "medium" => 1,
                _ => 2,
            };
            let bought_vs_recommended = if a.label == label {
                0
            } else if a.pos < pos {
                -1
            } else {
                1
            };
            Some(WorthCase {
                level,
                bought_vs_recommended,
                fit,
            })
        })
        .collect()
}

/// Evaluate `model` on held-out `events` (with outcomes): metrics, reliability, worth.
pub fn held_out(model: &Predictor, events: &Events, source: &str) -> Result<HeldOut, ModelError> {
    if !events.has_outcome {
        return Err(ModelError::NoOutcomes);
    }
    let probs = model.score(events);
    let (mut p, mut c) = (Vec::new(), Vec::new());
    for (i, pr) in probs.iter().enumerate() {
        let Some(class) = events.outcome.get(i).and_then(|o| o.class()) else {
            continue;
        };
        if pr.iter().all(|x| x.is_finite()) {
            p.push(*pr);
            c.push(class);
        }
    }
    if p.is_empty() {
        return Err(ModelError::NoOutcomes);
    }
    let m = metrics(&p, &c);
    Ok(HeldOut {
        source: source.to_string(),
        n: m.n as u64,
        auc_avg: m.auc_avg,
        log_loss: m.log_loss,
        ece: m.ece,
        reliability: reliability(&p, &c, 10),
        worth: worth_table(&worth_cases(model, events)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_match_the_rule() {
        assert_eq!(confidence_level(0.5, 0.6), "high");
        assert_eq!(confidence_level(0.6, 0.9), "medium");
        assert_eq!(confidence_level(1.1, 0.4), "medium");
        assert_eq!(confidence_level(1.1, 0.39), "low");
        assert_eq!(confidence_level(1.3, 0.9), "low");
    }

    #[test]
    fn worth_table_hand_checked() {
        let w = |level, d, fit| WorthCase {
            level,
            bought_vs_recommended: d,
            fit,
        };
        let cases = [
            w(0, 0, true),
            w(0, 0, true),
            w(0, 0, false),
            w(0, -1, false),
            w(0, 1, true),
            w(2, 0, true),
            w(2, 1, false),
        ];
        let t = worth_table(&cases);
        let levels: Vec<&str> = t.iter().map(|r| r.level.as_str()).collect();
        assert_eq!(
            levels,
            vec!["high", "low", "all"],
            "no medium cases: no row"
        );
        let high = &t[0];
        assert_eq!((high.matched_n, high.other_n), (3, 2));
        assert!((high.matched_fit_rate - 2.0 / 3.0).abs() < 1e-12);
        assert!((high.other_fit_rate - 0.5).abs() < 1e-12);
        assert_eq!((high.smaller_n, high.larger_n), (1, 1));
        assert_eq!(high.smaller_fit_rate, 0.0);
        assert_eq!(high.larger_fit_rate, 1.0);
        let all = &t[2];
        assert_eq!((all.matched_n, all.other_n), (4, 3));
        assert!((all.matched_fit_rate - 0.75).abs() < 1e-12);
        assert!((all.other_fit_rate - 1.0 / 3.0).abs() < 1e-12);
        assert!(t[1].smaller_fit_rate.is_nan());
    }

    #[test]
    fn reliability_hand_checked() {
        let probs = [
            [0.05, 0.9, 0.05],
            [0.05, 0.92, 0.03],
            [0.5, 0.3, 0.2],
            [0.1, 0.35, 0.55],
        ];
        let r = reliability(&probs, &[1, 0, 0, 2], 10);
        let fit = &r[1];
        assert_eq!(fit.outcome, "fit");
        // bins 0.9-1.0: two events, mean 0.91, one fit; 0.3-0.4: two, mean 0.325, none
        assert_eq!(fit.bins.len(), 2);
        assert_eq!(fit.bins[0].n, 2);
        assert!((fit.bins[0].predicted - 0.325).abs() < 1e-12);
        assert_eq!(fit.bins[0].observed, 0.0);
        assert!((fit.bins[1].predicted - 0.91).abs() < 1e-12);
        assert!((fit.bins[1].observed - 0.5).abs() < 1e-12);
        assert!((fit.bins[1].lo - 0.9).abs() < 1e-12);
        // small: 0.05, 0.05, 0.1 (bin 1), 0.5 (bin 5)
        assert_eq!(
            r[0].bins.iter().map(|b| b.n).collect::<Vec<_>>(),
            vec![2, 1, 1]
        );
    }
}
