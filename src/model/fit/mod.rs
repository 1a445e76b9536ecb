//! The fit: one group-by pass over events grouped by customer per iteration, then
//! closed-form and quadratic updates from the pass's sums.
//!
//! For each customer (group by customer): a Newton step on their size and fit bias from
//! their prior (body features or population), their choices and outcomes; then, with the
//! customer's leave-one-out size (the size their *other* evidence implies), each of their
//! events adds its gradient and Fisher information to its article-size and to the global
//! slope and band (reduce by article-size). Aggregated per article-size these define a
//! quadratic model that is solved for the whole offset hierarchy (size label, brand,
//! category, product, product-in-size) with Gaussian shrinkage whose variances are
//! re-estimated (empirical Bayes). Choice alignment, the feature ridge and prior
//! variances are closed-form updates from the same pass's sums.
//!
//! The sums are kept per shard of customers (at most [`MAX_SHARDS`], fixed by the data)
//! and merged in shard order, so results do not depend on the thread count. Big fits
//! (more than twice `warm_start_events`, or twice 12 events per article-size) first
//! iterate on a fixed sample of customer chunks until the parameters settle, then on all
//! events until they move by less than `param_tol` per iteration.

use super::features::{FeatureModel, RidgeStats};
use super::fitdata::FitData;
use super::fitted::{
    ArticleSizeParams, CustomerTable, Fitted, GroupParams, IterationStats, LabelParams, Offset,
    ProductInfo, SystemParams, TrainingSummary,
};
use super::levels::{solve_levels_eb, Level, EB_A0, EB_ROUNDS};
use super::math::{
    event_deriv, event_deriv_at, event_score_at, probs, sigmoid_pair, uncertainty_scale,
};
use super::params::FitParams;
use super::predict::{inv2, newton_step, ArticleRef, CustomerState};
use super::ModelError;
use crate::data::schema::{Events, SizeSystem, NONE};
use rayon::prelude::*;
use std::time::Instant;

mod engine;
mod init;
mod kernel;
mod pass;
mod plan;
mod sums;
mod uncertainty;
mod update;
mod warm;

pub use self::engine::{
    CustomerOut, CustomerRows, CustomerStart, FitOn, PassContext, PassEngine, PassJob, PassSums,
};
use self::kernel::Kernel;
use self::plan::{split_chunks, Plan};
use self::sums::{Acc, ArtRow, ArtSums};
pub use self::warm::mean_start;

/// Number of size systems.
const N_SYS: usize = SizeSystem::ALL.len();
/// Iterations of location-only fitting before fit-band widths are learned.
const DISPERSION_FROM: usize = 8;

/// Largest outcome slope per size step: beyond it sizes no longer explain outcomes and
/// the latent scale is not identified (offsets would shrink as the slope grows).
const W_MAX: f64 = 8.0;

/// Smallest outcome slope per size step (sizes must still order the outcomes).
const W_MIN: f64 = 0.05;

/// Steps on the logit of the drift share of choice variance tried in each pass (the
/// best one by leave-one-out log loss is kept).
const DRIFT_STEPS: [f64; 5] = [-0.8, -0.3, 0.0, 0.3, 0.8];

/// Events the drift candidates are scored on per pass, about: above it, only every k-th
/// customer (k fixed by the data size) scores them, which bounds their cost. Scoring five
/// candidates per event was ~40% of a pass on RentTheRunway (123k events, every customer
/// scored at the former 250,000); at 25,000 the held-out numbers were unchanged to four
/// decimals there (random and forward splits, with and without the second stage) and on
/// 1M synthetic events (log loss 0.64506 vs 0.64507).
const DRIFT_SAMPLE_EVENTS: usize = 25_000;

/// Above 10M events the drift candidates are scored on every this-many-th customer
/// (0.25% of the events; scoring every event was ~40% of a pass): a fixed
/// 25,000-event sample left the drift share to its noise. At 100M synthetic events the
/// two cross-fitting halves ended at drift shares 0.0975 and 0.020 (their pooled start
/// then walked for 5 final passes); with 1 in 400 customers scored, 0.029 and 0.057
/// and 3 final passes (BENCHMARKS.md, 2026-12-07 evening).
const MAX_DRIFT_STRIDE: usize = 400;

/// The sample phase of a big fit ends when parameters move by less than this many
/// times `param_tol` per iteration.
const SAMPLE_SWITCH: f64 = 5.0;

/// Extra Newton steps per customer in the first full pass after a sample phase and in
/// the final pass (customers far from their optimum; the final states are stored).
const FRESH_EXTRA_STEPS: usize = 2;

/// A pass runs over at most this many shards (fixed by the data, not the thread count):
/// each shard owns one set of per-article-size sums, so fewer shards = less memory and
/// merging; it must stay well above the core count for load balance.
const MAX_SHARDS: usize = 16;

/// A pass runs over at least this many shards when there are enough chunks, and over a
/// multiple of it (load balance on 2 or 4 cores: a pass runs its shards in rounds of one
/// per thread).
const MIN_SHARDS: usize = 4;

/// The step on the logit of the drift share from the candidates' leave-one-out losses:
/// the minimum of the least-squares parabola through them (within the candidates'
/// range), or the best candidate when the parabola does not open upwards. Picking the
/// best of the discrete steps alone cycled between two neighbours on big data (the
/// slope and band widths then swung with it every iteration).
fn drift_step(nll: &[f64; DRIFT_STEPS.len()]) -> f64 {
    let best = (0..DRIFT_STEPS.len())
        .min_by(|&x, &y| nll[x].total_cmp(&nll[y]))
        .map_or(0.0, |i| DRIFT_STEPS[i]);
    // normal equations of y = a + b·x + c·x² (steps are symmetric around 0, so the odd
    // moments vanish and b decouples)
    let n = DRIFT_STEPS.len() as f64;
    let (mut s2, mut s4, mut sy, mut sxy, mut sx2y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (&x, &y) in DRIFT_STEPS.iter().zip(nll) {
        s2 += x * x;
        s4 += x * x * x * x;
        sy += y;
        sxy += x * y;
        sx2y += x * x * y;
    }
    let det = n * s4 - s2 * s2;
    if !(det > 0.0 && s2 > 0.0) {
        return best;
    }
    let b = sxy / s2;
    let c = (n * sx2y - s2 * sy) / det;
    if !(c > 0.0 && b.is_finite()) {
        return best;
    }
    let lo = DRIFT_STEPS.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = DRIFT_STEPS
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    (-b / (2.0 * c)).clamp(lo, hi)
}

/// `step`, halved when it reverses the `last` one: an update that overshoots and is
/// undone next iteration (a period-two cycle) then moves by half steps and settles
/// instead of repeating; steps in one direction are untouched.
fn damp_reversal(step: f64, last: f64) -> f64 {
    if step * last < 0.0 {
        0.5 * step
    } else {
        step
    }
}

/// `step`, halved when it reverses `last` without shrinking to under half of it: a
/// period-two cycle (a convergent overshoot that shrinks fast is left alone).
fn damp_cycle(step: f64, last: f64) -> f64 {
    if step * last < 0.0 && step.abs() > 0.5 * last.abs() {
        0.5 * step
    } else {
        step
    }
}

/// Drift share `ρ = sd_drift² / (sd_drift² + sd_choice²)` moved by `step` on the logit scale.
fn drift_share(g: &super::fitted::Globals, step: f64) -> f64 {
    let d = g.sd_drift * g.sd_drift;
    let t = d + g.sd_choice * g.sd_choice;
    let rho = (d / t.max(1e-12)).clamp(0.02, 0.98);
    let logit = (rho / (1.0 - rho)).ln() + step;
    (1.0 / (1.0 + (-logit).exp())).clamp(0.02, 0.98)
}

impl FitParams {
    /// Fit a model to `events` (the linfa-style entry point).
    pub fn fit(&self, events: &Events) -> Result<Fitted, ModelError> {
        self.fit_with(events, &mut |_| {})
    }

    /// Fit, calling `on_iter` after every iteration (progress, logging).
    pub fn fit_with(
        &self,
        events: &Events,
        on_iter: &mut (dyn FnMut(&IterationStats) + Send),
    ) -> Result<Fitted, ModelError> {
        self.validate()?;
        let data = FitData::from_events(events);
        self.fit_prepared(events, &data, on_iter)
    }

    /// Fit from prepared data. `meta` supplies dictionaries, size labels and customer
    /// features; its per-event columns are not read (they may have been freed).
    pub fn fit_prepared(
        &self,
        meta: &Events,
        data: &FitData,
        on_iter: &mut (dyn FnMut(&IterationStats) + Send),
    ) -> Result<Fitted, ModelError> {
        self.fit_from(meta, data, None, on_iter)
    }

    /// [`FitParams::fit_prepared`], starting from `init`'s parameters where its keys
    /// match (a warm start, see `warm::WarmMatch`; `None`: a cold start from the data). A
    /// warm start skips the big-data sample phase, learns band widths from the first
    /// iteration and may stop after 2 iterations (`min_iter` counts at most 2). When
    /// `init` shares no size label, brand, category or product with the data, the fit
    /// starts cold (with a warning): its parameters would describe another catalogue.
    pub fn fit_from(
        &self,
        meta: &Events,
        data: &FitData,
        init: Option<&Fitted>,
        on_iter: &mut (dyn FnMut(&IterationStats) + Send),
    ) -> Result<Fitted, ModelError> {
        let engine = None;
        self.fit_inputs(
            Inputs {
                meta,
                data,
                init,
                engine,
            },
            on_iter,
        )
    }

    /// Validate, then run the fit in the configured thread pool.
    fn fit_inputs(
        &self,
        inputs: Inputs<'_>,
        on_iter: &mut (dyn FnMut(&IterationStats) + Send),
    ) -> Result<Fitted, ModelError> {
        self.validate()?;
        if inputs.data.is_empty() {
            return Err(ModelError::NoFitEvents);
        }
        super::threads::capped(self.threads, || run(self, inputs, on_iter))
    }
}

/// Mutable fit state.
struct State<'a> {
    meta: &'a Events,
    data: &'a FitData,
    model: Fitted,
    /// Per article-size: its reference into the model.
    as_ref: Vec<ArticleRef>,
    /// Per article-size: true size, half fit-band width `h·e^η`, choice centre, and the
    /// reputation terms of the choice model (brand + category, product), recomputed once
    /// per iteration so the passes read plain arrays; position in size steps and system
    /// index, set once.
    arts: Vec<ArtRow>,
    /// Per article-size: its group in each level of the offset hierarchy (size label,
    /// brand, category, product, product-in-size); fixed for the fit.
    as_group: [Vec<u32>; 5],
    ref_system: usize,
    /// Customers: size mean, fit bias, their covariance, prior mean, whether features exist.
    s: Vec<f64>,
    u: Vec<f32>,
    cov: Vec<[f32; 3]>,
    m: Vec<f32>,
    has_feat: Vec<bool>,
    /// Newton steps per customer per pass.
    steps: usize,
    /// The last iteration's drift step (logit of the drift share), to damp a step that
    /// reverses it: the coupled drift / slope updates can otherwise cycle with period two
    /// (100M events: the sample phase's parameter change alternated 0.021 / 0.025 and never
    /// settled).
    last_drift_step: f64,
    /// The last choice-slope steps (k, k_product), damped the same way.
    last_k_step: [f64; 2],
    /// The last steps of the outcome globals (w, c, h); each is damped when it cycles.
    last_glob_step: [f64; 3],
    /// The local pass's shard sums, one per shard in flight, kept from pass to pass and
    /// zeroed in place: allocating them anew each pass (a full article-size table each,
    /// ~140 MB at 100M events) made every pass fault in and clear fresh pages (the
    /// kernel's page clearing was 4% of a 10M-event train).
    shard_sums: Vec<Acc>,
}

/// Per-worker buffers of a pass.
struct Scratch {
    /// Per event of the current customer: outcome gradient and information.
    terms: Vec<(f64, f64)>,
    /// Score the drift candidates on customers `c` with `c % drift_stride == 0`.
    drift_stride: usize,
}

/// One shard's customer slots: sizes, fit biases, covariances.
type CustomerSlots<'a> = (&'a mut [f64], &'a mut [f32], &'a mut [[f32; 3]]);

/// A customer solved at its final point.
struct Solved {
    /// Posterior mean and covariance.
    st: CustomerState,
    /// Information matrix `(ss, su, uu)` (the inverse of the covariance).
    info: (f64, f64, f64),
    /// Penalised objective: outcome and choice log-likelihoods plus the prior.
    obj: f64,
    /// Precision of one past choice as a measurement of the size.
    choice_prec: f64,
}

/// A big fit's warm-start sample is every `k`-th customer chunk; 1 = no sample phase.
/// The sample holds about `warm_start_events` events, or `warm_start_per_article_size`
/// per article-size if more (rare articles must start the full phase near their optimum,
/// else the full passes spend their time moving them), and is used when the data hold
/// more than twice that.
fn sample_every(p: &FitParams, data: &FitData) -> usize {
    let target = p
        .warm_start_events
        .max(p.warm_start_per_article_size * data.article_sizes.len());
    if p.warm_start_events > 0 && data.len() > 2 * target {
        data.len().div_ceil(target)
    } else {
        1
    }
}

/// What a fit reads: dictionaries and features, the prepared events, the warm start.
struct Inputs<'a> {
    meta: &'a Events,
    data: &'a FitData,
    init: Option<&'a Fitted>,
    /// Where the passes run: `None` in this process (the local pass).
    engine: Option<&'a mut dyn PassEngine>,
}

fn run(
    p: &FitParams,
    inputs: Inputs<'_>,
    on_iter: &mut (dyn FnMut(&IterationStats) + Send),
) -> Result<Fitted, ModelError> {
    let Inputs {
        meta,
        data,
        init,
        mut engine,
    } = inputs;
    let started = Instant::now();
    let mut st = State::init(meta, data)?;
    let init = init.filter(|m| {
        let shared = warm::shares_keys(m, meta);
        if !shared {
            tracing::warn!(
                target: "runsize::fit",
                "warm start: the initial model shares no size label, brand, category or product with the data; starting cold"
            );
        }
        shared
    });
    let warm = init.is_some();
    if let Some(m) = init {
        let t = Instant::now();
        let got = st.warm_from(m);
        tracing::info!(target: "runsize::fit", matched = ?got, seconds = t.elapsed().as_secs_f64(), "warm start");
    }
    // a warm start is past the location-only iterations: bands move from the start
    let lag = if warm { DISPERSION_FROM + 2 } else { 0 };
    let min_iter = if warm { p.min_iter.min(2) } else { p.min_iter };
    // a warm start is near the optimum already: a looser tolerance (see
    // `FitParams::warm_param_tol`)
    let param_tol = if warm {
        p.warm_param_tol.max(p.param_tol)
    } else {
        p.param_tol
    };
    st.steps = p.customer_newton_steps;
    let mut full = Plan::new(data, p.chunk_events, 1);
    full.gram = st.gram(&full.chunks);
    // big data: iterate on a fixed sample of customer chunks until the parameters
    // settle, then refine on everything (each full pass is then spent near the optimum);
    // a warm start is near it already
    let every = if warm { 1 } else { sample_every(p, data) };
    let sample = (every > 1).then(|| {
        let mut plan = Plan::new(data, p.chunk_events, every);
        plan.gram = st.gram(&plan.chunks);
        plan
    });
    let mut on_sample = sample.is_some();
    // a warm start's new customers (and its old ones' new events) are far from their
    // optimum in the first pass
    let mut first_full = warm;
    let mut full_iters = 0usize;
    let mut history = Vec::new();
    let mut converged = false;
    let mut last_obj = f64::INFINITY;
    // the converged iteration's pass: its customer states and article information
    // are those of the final pass a non-converged fit still runs (see below)
    let mut last_pass = None;
    // the article rows before each update, to measure its change
    let mut before: Vec<ArtRow> = Vec::new();
    st.refresh_articles();
    tracing::debug!(target: "runsize::fit", seconds = started.elapsed().as_secs_f64(), "fit set up");
    for iter in 1..=p.max_iter {
        let plan = match (&sample, on_sample) {
            (Some(sp), true) => sp,
            _ => &full,
        };
        // customers outside the sample meet the model for the first time in the first
        // full pass: give them a few more steps there
        st.steps = p.customer_newton_steps + if first_full { FRESH_EXTRA_STEPS } else { 0 };
        let t0 = Instant::now();
        let acc = st.pass_via(engine.as_deref_mut(), plan)?;
        let pass_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let objective = acc.objective / acc.n.max(1.0);
        let loo = acc.loo_nll / acc.n.max(1.0);
        // copied into the same buffer every iteration (a fresh clone faulted in a new
        // article-size table each time: 120 MB at 100M events)
        before.clone_from(&st.arts);
        st.update(&acc, p, iter + lag, plan);
        st.refresh_articles();
        let param_change = st.change_since(&before);
        let update_seconds = t1.elapsed().as_secs_f64();
        tracing::debug!(target: "runsize::fit", iter, globals = ?st.model.globals, "globals");
        let stats = IterationStats {
            iter,
            objective,
            loo_log_loss: loo,
            seconds: t0.elapsed().as_secs_f64(),
            param_change,
            events: plan.events as u64,
            pass_seconds,
            update_seconds,
        };
        if !objective.is_finite() {
            return Err(ModelError::Diverged(format!(
                "objective is {objective} at iteration {iter}"
            )));
        }
        on_iter(&stats);
        history.push(stats);
        let rel = (last_obj - objective).abs() / objective.abs().max(1e-12);
        last_obj = objective;
        // band widths start moving after DISPERSION_FROM: give them a few iterations
        let settled = !p.learn_dispersion || iter + lag > DISPERSION_FROM + 2;
        if on_sample {
            if (settled && param_change < SAMPLE_SWITCH * p.param_tol) || 2 * iter >= p.max_iter {
                on_sample = false;
                first_full = true;
                last_obj = f64::INFINITY;
                st.refresh_prior_means(&full.chunks);
            }
            continue;
        }
        full_iters += 1;
        first_full = false;
        let done = rel < p.tol || (settled && param_change < param_tol);
        if iter >= min_iter && (sample.is_none() || full_iters >= 2) && done {
            converged = true;
            last_pass = Some(acc);
            break;
        }
    }
    // customer sizes and standard errors: a converged fit keeps those of its last full
    // pass, whose parameters the last update moved by under `param_tol` (a pass more,
    // the most expensive part of the fit, would move them by about as little: held-out
    // numbers equal to 4 digits on RentTheRunway and 10M synthetic events, see
    // BENCHMARKS.md); otherwise one more pass at the final parameters
    let acc = match last_pass {
        Some(acc) => acc,
        None => {
            if on_sample {
                st.refresh_prior_means(&full.chunks);
            }
            st.steps = p.customer_newton_steps + FRESH_EXTRA_STEPS;
            st.pass_via(engine, &full)?
        }
    };
    // the passes are over: their shard sums go before the customer table is built
    st.shard_sums = Vec::new();
    st.finish_uncertainty(&acc);
    let mut model = st.model;
    if p.store_customers {
        let fit = super::fitted::CustomerFit {
            s: st.s,
            u: st.u,
            cov: st.cov,
        };
        model.customers = CustomerTable::from_fit(meta.customers.clone(), fit, &data.cust_start);
    }
    let counts = data.ev_y.iter().fold([0u64; 3], |mut acc, &y| {
        if let Some(x) = acc.get_mut(y as usize) {
            *x += 1;
        }
        acc
    });
    model.summary = TrainingSummary {
        events: meta.len() as u64,
        fit_events: data.len() as u64,
        other_events: (meta.len() as u64).saturating_sub(data.len() as u64),
        outcome_counts: counts,
        customers: meta.customers.len() as u64,
        products: meta.products.len() as u64,
        brands: meta.brands.len() as u64,
        categories: meta.categories.len() as u64,
        sizes: meta.sizes.len() as u64,
        iterations: history.len(),
        converged,
        history,
        fit_seconds: started.elapsed().as_secs_f64(),
        source: String::new(),
    };
    Ok(model)
}

fn values(gs: &[GroupParams]) -> Vec<f64> {
    gs.iter().map(|g| g.offset.value).collect()
}

fn set_values(gs: &mut [GroupParams], v: &[f64]) {
    for (g, x) in gs.iter_mut().zip(v) {
        g.offset.value = *x;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn sample_size_follows_events_and_article_sizes() {
        // 30,000 events over 100 article-sizes
        let d = data(10_000, 3, 100);
        let p = |events, per_as| {
            FitParams::default()
                .warm_start_events(events)
                .warm_start_per_article_size(per_as)
        };
        assert_eq!(sample_every(&p(4_000, 0), &d), 8); // ceil(30000 / 4000)
                                                       // 12 per article-size = 1,200 < 4,000: the event target rules
        assert_eq!(sample_every(&p(4_000, 12), &d), 8);
        // 100 per article-size = 10,000 > 4,000: every 3rd chunk
        assert_eq!(sample_every(&p(4_000, 100), &d), 3);
        // 200 per article-size = 20,000: not even twice that many events, no sample
        assert_eq!(sample_every(&p(4_000, 200), &d), 1);
        assert_eq!(sample_every(&p(0, 12), &d), 1);
    }

    #[test]
    fn a_reversed_drift_step_is_halved() {
        assert_eq!(damp_reversal(0.4, -0.3), 0.2);
        assert_eq!(damp_reversal(-0.4, 0.3), -0.2);
        // same direction, or no last step: unchanged
        assert_eq!(damp_reversal(0.4, 0.1), 0.4);
        assert_eq!(damp_reversal(-0.4, 0.0), -0.4);
        // alternating proposals of ±0.5: every reversal is applied at half size
        let mut last = 0.0;
        let applied: Vec<f64> = [0.5, -0.5, 0.5, -0.5]
            .iter()
            .map(|&s| {
                last = damp_reversal(s, last);
                last
            })
            .collect();
        assert_eq!(applied, vec![0.5, -0.25, 0.25, -0.25]);
    }

    #[test]
    fn drift_step_is_the_parabola_minimum() {
        // y = 1 + (x − 0.2)²: minimum at 0.2, between the candidates 0.0 and 0.3
        let nll = DRIFT_STEPS.map(|x| 1.0 + (x - 0.2) * (x - 0.2));
        assert!((drift_step(&nll) - 0.2).abs() < 1e-12);
        // minimum beyond the range: clamped to the last candidate
        let nll = DRIFT_STEPS.map(|x| (x - 3.0) * (x - 3.0));
        assert!((drift_step(&nll) - 0.8).abs() < 1e-12);
        // opens downwards: the best candidate
        let nll = DRIFT_STEPS.map(|x| -(x - 0.1) * (x - 0.1));
        assert_eq!(drift_step(&nll), -0.8);
    }

    /// `n` customers with `k` events each, `n_as` article-sizes (shared with plan's tests).
    pub(crate) fn data(n: usize, k: usize, n_as: usize) -> FitData {
        let key = super::super::fitdata::ArticleSizeKey {
            product: 0,
            brand: 0,
            category: 0,
            label: 0,
        };
        FitData {
            cust_start: (0..=n).map(|c| (c * k) as u64).collect(),
            ev_as: vec![0; n * k],
            ev_y: vec![1; n * k],
            article_sizes: vec![key; n_as],
            as_count: vec![0; n_as],
        }
    }
}
