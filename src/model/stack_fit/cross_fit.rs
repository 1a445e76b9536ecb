//! Cross-fitted training inputs: the structural model refitted without each fold, and
//! the fold's events given exactly the inputs that model gives new events.

use super::inputs::{
    body_of, body_rows, count_tables_events, count_tables_grouped, customer_hash, log_sample,
    CustomerSample, OfferView, TrainingInputs,
};
use super::params::StackParams;
use super::stored::StoredInput;
use crate::data::schema::{Events, NONE};
use crate::model::fitdata::FitData;
use crate::model::predictor::Predictor;
use crate::model::stack::{
    count_at, customer_rates, global_rates, level_features, Regime, StackCustomer,
};
use crate::model::{Fitted, ModelError};
use rayon::prelude::*;

/// Each event's fold, `bits` bits per event packed into words (1, 2, 4 or 8 bits: the
/// fewest that hold `k - 1`).
struct Folds {
    bits: usize,
    words: Vec<u64>,
}

impl Folds {
    /// The folds of events `0..n`, `fold_of(i) < k` each, filled in parallel.
    fn new(n: usize, k: u8, fold_of: impl Fn(usize) -> u8 + Sync) -> Folds {
        let bits = match k {
            0..=2 => 1,
            3..=4 => 2,
            5..=16 => 4,
            _ => 8,
        };
        let per = 64 / bits;
        let mut words = vec![0u64; n.div_ceil(per)];
        words
            .par_iter_mut()
            .with_min_len(1024)
            .enumerate()
            .for_each(|(w, word)| {
                for j in 0..per {
                    let i = w * per + j;
                    if i < n {
                        *word |= u64::from(fold_of(i)) << (j * bits);
                    }
                }
            });
        Folds { bits, words }
    }

    /// Event `i`'s fold (0 past the end).
    #[inline]
    fn get(&self, i: usize) -> u8 {
        let per = 64 / self.bits;
        let word = self.words.get(i / per).copied().unwrap_or(0);
        ((word >> ((i % per) * self.bits)) & ((1u64 << self.bits) - 1)) as u8
    }
}

/// Training events up to which the fold models are fitted side by side, all before
/// their inputs: the extra memory is every fold's fit data and customer states held at
/// once (RentTheRunway's 123k events, two folds: peak RSS 135 -> 139 MiB), bounded by
/// this.
const SIDE_BY_SIDE_EVENTS: usize = 1 << 20;

/// A fold's structural model and what its inputs still need from its fit.
struct FoldModel {
    model: Predictor,
    /// Its fit data (the fold's training events, grouped by customer).
    data: FitData,
    /// Fit iterations.
    iterations: usize,
    /// When its fit started.
    started: std::time::Instant,
}

/// Candidate events whose fold rows are computed (in parallel) and appended at a time.
const ROW_BLOCK: usize = 1 << 20;

/// Cross-fitted inputs: the events are split into `cross_fit` random folds (by row); for
/// each, the structural model and the counts are refitted on the other folds and the
/// fold's events get exactly the inputs that model gives new events. The count tables
/// are the final `model`'s.
pub(super) fn cross_fit_inputs(
    model: &Predictor,
    events: &Events,
    params: &StackParams,
) -> Result<TrainingInputs, ModelError> {
    let mut out = cross_fitted(events, params)?.inputs;
    out.tables = count_tables_events(model, events, &model.resolve(events));
    Ok(out)
}

/// Cross-fitted training inputs computed before the final structural model (whose count
/// tables they still lack), and a fold model to start the final fit from.
pub struct CrossFitted {
    /// Every training event's inputs; `tables` is empty until
    /// [`StackParams::fit_cross_fitted`] fills it from the final model.
    pub(super) inputs: TrainingInputs,
    /// The first fold's structural model without its customer table, when its fit
    /// converged, averaged with the second's (the fit's `mean_start`) when there are two
    /// folds and it converged too: the final fit on all the events may start from it
    /// (customers start from their priors). `None` when the first did not
    /// converge (a warm start would then not end where a cold fit does).
    pub warm_start: Option<Fitted>,
}

impl CrossFitted {
    /// Every training event's cross-fitted inputs (count tables still empty): all
    /// [`StackParams::fit_learners`] reads.
    pub fn inputs(&self) -> &TrainingInputs {
        &self.inputs
    }
}

/// `cross_fit_inputs` without the final model: the folds' refits and inputs (see
/// [`CrossFitted`]).
pub fn cross_fitted(events: &Events, params: &StackParams) -> Result<CrossFitted, ModelError> {
    params.validate()?;
    let k = params.cross_fit.max(2) as u64;
    let sample = CustomerSample::new(events, params.max_rows);
    log_sample(&sample);
    // each event's fold, from a hash of its original row number, packed (one bit per
    // event with two folds: 12.5 MB at 100M events instead of a 100 MB byte column,
    // and read far faster than hashing the row again at every read)
    let folds = Folds::new(events.len(), k as u8, |i| {
        let r = events.row.get(i).unwrap_or(i as u64);
        (crate::model::artifact::fnv1a(&r.to_le_bytes()) % k) as u8
    });
    let fold_of = |i: usize| folds.get(i);
    let k = k as u8;
    // the events that can give rows: the sampled customers' events with an outcome class
    // (1% of the events at 100M); the folds' rows are made from these alone, not from a
    // scan of every event per fold. Their count bounds the rows (events the model cannot
    // place give none): reserved once, so the row tables are not copied as they grow
    let candidates: Vec<u32> = (0..events.len())
        .into_par_iter()
        .with_min_len(1 << 16)
        .filter(|&i| events.outcome[i].class().is_some() && sample.contains(events.customer[i]))
        .map(|i| i as u32)
        .collect();
    let rows = candidates.len();
    let mut out = TrainingInputs {
        tables: Default::default(),
        inputs: Vec::with_capacity(rows),
        offer: Vec::with_capacity(rows),
        classes: Vec::with_capacity(rows),
        group: Vec::with_capacity(rows),
        bodies: Vec::new(),
        body_dim: 0,
        customer: Vec::with_capacity(rows),
        event: Vec::with_capacity(rows),
    };
    let mut warm_start = None;
    // the kept customers by their rows: the fold models' beliefs are computed for them
    let kept = sample.kept_customers();
    let sm = &params.smoothing;
    // warm starts that never saw the fold: a model of each half of the folds
    let halves = if params.exact_refits || k <= 2 {
        None
    } else {
        Some(half_models(events, &fold_of, k, params)?)
    };
    // fold f's structural model, its fit data (the count tables read it), iterations
    // and seconds
    let fit_fold = |f: u8| -> Result<FoldModel, ModelError> {
        let t0 = std::time::Instant::now();
        // the other folds' rows, read in place (no copy of the events, and no mask of
        // them: 100 MB at 100M events): the same refit as on a copy of them
        let train_k = |i: usize| i < events.len() && fold_of(i) != f;
        let mut iterations = 0;
        let data = FitData::from_events_where(events, Some(&train_k));
        let t_data = t0.elapsed().as_secs_f64();
        // fold f's refit starts from the half that does not hold f
        let init = halves
            .as_ref()
            .map(|(low, high)| if f < k / 2 { high } else { low });
        let structural = match init {
            Some(_) => params.refit_structural().max_iter(params.refit_iter.max(1)),
            None => params.refit_structural(),
        };
        // each iteration at debug level (`--log runsize::stack=debug`): how a refit
        // converges decides the stage's cost on big data
        let mut on_iter = |s: &crate::model::fitted::IterationStats| {
            iterations += 1;
            tracing::debug!(
                target: "runsize::stack",
                fold = f,
                iter = s.iter,
                objective = s.objective,
                param_change = s.param_change,
                events = s.events,
                seconds = s.seconds,
                "refit iteration"
            );
        };
        let model = Predictor::new(structural.fit_from(events, &data, init, &mut on_iter)?)?;
        tracing::debug!(
            target: "runsize::stack",
            fold = f,
            fit_data_seconds = t_data,
            fit_seconds = t0.elapsed().as_secs_f64() - t_data,
            "fold model"
        );
        Ok(FoldModel {
            model,
            data,
            iterations,
            started: t0,
        })
    };
    // small data: the fold models are fitted side by side (a small pass leaves a core
    // idle in its serial updates; the same models bit for bit, the passes' sums do not
    // depend on the threads); big data: one at a time (each holds its fit data)
    let mut side_by_side = if events.len() <= SIDE_BY_SIDE_EVENTS && halves.is_none() {
        let mut fits = Vec::with_capacity(k as usize);
        // fitted in pairs: two cores' worth
        for a in (0..k).step_by(2) {
            if a + 1 < k {
                let (x, y) = rayon::join(|| fit_fold(a), || fit_fold(a + 1));
                fits.extend([x?, y?]);
            } else {
                fits.push(fit_fold(a)?);
            }
        }
        Some(fits.into_iter())
    } else {
        None
    };
    for f in 0..k {
        let fold = match side_by_side.as_mut().and_then(Iterator::next) {
            Some(fold) => fold,
            None => fit_fold(f)?,
        };
        let FoldModel {
            model: mut model_k,
            data,
            iterations,
            started: t0,
        } = fold;
        let t_rows = std::time::Instant::now();
        if f == 0 {
            // body rows depend only on the events' features (every fold model encodes
            // them alike)
            (out.bodies, out.body_dim) = body_rows(&model_k, events, &sample);
        }
        // resolved once: the count tables and the fold's inputs read the same lookups
        let r = model_k.resolve_keys(events);
        let t_resolve = t_rows.elapsed().as_secs_f64();
        // from the fold's fit data (its training events, grouped): one lookup per
        // article-size, and customer counts for the sampled customers only; the fit
        // data is freed before the customers' beliefs (40 bytes per customer) are made
        let in_sample = |c: u32| sample.contains(c);
        let tables_k = count_tables_grouped(&model_k, events, (&data, &r), Some(&in_sample));
        drop(data);
        // the sampled customers' beliefs, by their rows (only they get rows)
        let beliefs = model_k.beliefs_of(events, &r.customer, &kept);
        // the rows read the beliefs, not the customer table: free it (and its index)
        // before they are made, as the warm start leaves it out anyway
        model_k.release_customers();
        let t_tables = t_rows.elapsed().as_secs_f64() - t_resolve;
        let global = global_rates(tables_k.global);
        let (bodies, body_dim) = (&out.bodies, out.body_dim);
        type Row = (StoredInput, OfferView, u8, u32, u32, u32);
        // this fold's rows, in place
        let row_of = |i: usize| -> Option<Row> {
            if fold_of(i) != f {
                return None;
            }
            let class = events.outcome[i].class()?;
            let ec = events.customer[i];
            let body_row = sample.body_row(ec)?;
            // as `Predictor::event_view` with and without the choice's evidence
            let a = model_k.event_article(events, &r, i)?;
            let st = beliefs.get(body_row as usize)?;
            let belief = model_k.at_purchase(st, Some(model_k.choice_centre(&a)));
            let belief_free = model_k.at_purchase(st, None);
            let counts = count_at(
                &tables_k.customer,
                r.customer.get(ec as usize).copied().unwrap_or(NONE),
            )
            .unwrap_or([0.0; 3]);
            let mc = r.customer.get(ec as usize).copied().unwrap_or(NONE);
            let pos = tables_k
                .customer_pos
                .get(mc as usize)
                .copied()
                .unwrap_or(0.0);
            let body = body_of(bodies, body_dim, body_row).to_vec();
            let sc = StackCustomer {
                regime: Regime::Purchase,
                rates: customer_rates(sm, global, counts, pos),
                prior: model_k.prior_mean(&body),
                body,
            };
            let levels = level_features(sm, global, &model_k.level_counts(&tables_k, &a));
            let x = model_k.stack_input((belief, &a), levels, &sc);
            let o = model_k.stack_input((belief_free, &a), levels, &sc);
            debug_assert_eq!(OfferView::of(&o).onto(&x), o);
            Some((
                StoredInput::of(&x),
                OfferView::of(&o),
                class as u8,
                ec,
                body_row,
                i as u32,
            ))
        };
        // in blocks of events, each appended as it is done: the rows (~180 bytes each)
        // are then held once, not also in a fold-sized temporary (~90 MB at 1M rows)
        for block in candidates.chunks(ROW_BLOCK) {
            let rows: Vec<Row> = block
                .par_iter()
                .with_min_len(1024)
                .filter_map(|&i| row_of(i as usize))
                .collect();
            for (x, o, y, ec, body_row, i) in rows {
                out.event.push(i);
                out.inputs.push(x);
                out.offer.push(o);
                out.classes.push(y);
                out.group.push(customer_hash(events, ec));
                out.customer.push(body_row);
            }
        }
        drop((tables_k, r));
        tracing::debug!(
            target: "runsize::stack",
            fold = f,
            resolve_seconds = t_resolve,
            tables_seconds = t_tables,
            rows_seconds = t_rows.elapsed().as_secs_f64() - t_resolve - t_tables,
            "fold inputs"
        );
        // the first fold model, and with two folds the mean of both halves (nearer the
        // fit on all the events than either: 10M events, 5 final passes instead of 7)
        let keep = f == 0 || (f == 1 && k == 2 && warm_start.is_some());
        if keep && model_k.summary.converged {
            // its customer table (the biggest part of a model) is left out: the final fit
            // starts customers from their priors, and the next fold's fit runs meanwhile
            let start = model_k.into_fitted();
            warm_start = Some(match warm_start.take() {
                Some(first) => crate::model::fit::mean_start(&first, &start),
                None => start,
            });
        } else {
            drop(model_k);
        }
        let (rss, peak) = crate::model::memory::process_memory().unwrap_or((0, 0));
        tracing::info!(
            target: "runsize::stack",
            fold = f,
            iterations,
            warm = halves.is_some(),
            seconds = t0.elapsed().as_secs_f64(),
            rows = out.inputs.len(),
            rss_mib = crate::model::memory::mib(rss),
            peak_rss_mib = crate::model::memory::mib(peak),
            "cross-fitted fold"
        );
    }
    Ok(CrossFitted {
        inputs: out,
        warm_start,
    })
}

/// The structural models of the two halves of the cross-fitting folds: folds
/// `0..k/2` and `k/2..k`, each fitted cold on its rows. Fold `f`'s refit (every fold
/// but `f`) starts from the half without `f`, so no fold's outcomes reach its own
/// inputs through the starting point, and the refit only has to add the other half's
/// remaining folds: a few passes instead of a fit from scratch. The two halves cost
/// about one fit on all the events.
fn half_models(
    events: &Events,
    fold_of: &(dyn Fn(usize) -> u8 + Sync),
    k: u8,
    params: &StackParams,
) -> Result<(Fitted, Fitted), ModelError> {
    let fit_half = |low: bool| -> Result<Fitted, ModelError> {
        let t0 = std::time::Instant::now();
        let rows = |i: usize| i < events.len() && (fold_of(i) < k / 2) == low;
        let data = FitData::from_events_where(events, Some(&rows));
        let mut iterations = 0;
        let m = params
            .refit_structural()
            .store_customers(true)
            .fit_prepared(events, &data, &mut |_| iterations += 1)?;
        tracing::info!(
            target: "runsize::stack",
            half = if low { "low" } else { "high" },
            iterations,
            seconds = t0.elapsed().as_secs_f64(),
            "cross-fitting warm start"
        );
        Ok(m)
    };
    Ok((fit_half(true)?, fit_half(false)?))
}

#[cfg(test)]
mod tests {
    use super::Folds;

    #[test]
    fn packed_folds_read_back_what_was_stored() {
        for k in [2u8, 3, 5, 17] {
            let f = |i: usize| ((i * 7 + i / 3) % k as usize) as u8;
            let folds = Folds::new(1000, k, f);
            assert!((0..1000).all(|i| folds.get(i) == f(i)), "k = {k}");
            assert_eq!(folds.words.len(), 1000usize.div_ceil(64 / folds.bits));
        }
        // two folds: one bit per event
        assert_eq!(Folds::new(1000, 2, |_| 1).words.len(), 16);
    }
}
