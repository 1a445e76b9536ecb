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
use super::levels::{solve_levels, Level, EB_A0};
use super::math::{
    event_deriv, event_deriv_at, event_score_at, probs, sigmoid_pair, uncertainty_scale,
};
use super::params::FitParams;
use super::predict::{inv2, newton_step, ArticleRef, CustomerState};
use super::ModelError;
use crate::data::schema::{Events, SizeSystem, NONE};
use rayon::prelude::*;
use std::time::Instant;

/// Number of size systems.
const N_SYS: usize = SizeSystem::ALL.len();
/// Iterations of location-only fitting before fit-band widths are learned.
const DISPERSION_FROM: usize = 8;

/// Largest outcome slope per size step: beyond it sizes no longer explain outcomes and
/// the latent scale is not identified (offsets would shrink as the slope grows).
const W_MAX: f64 = 8.0;

/// Steps on the logit of the drift share of choice variance tried in each pass (the
/// best one by leave-one-out log loss is kept).
const DRIFT_STEPS: [f64; 5] = [-0.8, -0.3, 0.0, 0.3, 0.8];

/// Events the drift candidates are scored on per pass: above it, only every k-th
/// customer (k fixed by the data size) scores them, which bounds their cost on big data
/// while small data (every customer) is unaffected.
const DRIFT_SAMPLE_EVENTS: usize = 250_000;

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

/// A pass runs over at least this many shards when there are enough chunks (load
/// balance on a few cores).
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
        self.validate()?;
        if data.is_empty() {
            return Err(ModelError::NoFitEvents);
        }
        if self.threads > 0 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(self.threads)
                .build()
                .map_err(|e| ModelError::Param(format!("threads: {e}")))?;
            pool.install(|| run(self, meta, data, on_iter))
        } else {
            run(self, meta, data, on_iter)
        }
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
    /// reputation terms of the choice model (brand + category, product); recomputed once
    /// per iteration so the passes read plain arrays.
    arts: Vec<ArtRow>,
    /// Per article-size: its group in each level of the offset hierarchy (size label,
    /// brand, category, product, product-in-size); fixed for the fit.
    as_group: [Vec<u32>; 5],
    /// Per article-size: position in size steps and system index.
    as_pos: Vec<f64>,
    as_sys: Vec<u8>,
    ref_system: usize,
    /// Customers: size mean, fit bias, their covariance, prior mean, whether features exist.
    s: Vec<f64>,
    u: Vec<f32>,
    cov: Vec<[f32; 3]>,
    m: Vec<f32>,
    has_feat: Vec<bool>,
    /// Newton steps per customer per pass.
    steps: usize,
}

/// What the passes read per article-size, in one row: an event costs one cache miss,
/// not five (at 100M events there are ~10^6 article-sizes, far beyond cache).
#[derive(Clone, Copy, Debug, Default)]
struct ArtRow {
    /// True size.
    t: f64,
    /// Half fit-band width `h·e^η`.
    half: f64,
    /// `e^half` and `e^−half` (one `exp` per outcome evaluation instead of two).
    exp_half: f64,
    exp_neg_half: f64,
    /// Choice centre.
    xc: f64,
    /// Brand + category reputation.
    r1: f64,
    /// Product reputation.
    r2: f64,
}

/// Pass-2 sums of one article-size, in one row (one cache miss per event): gradient
/// and information of its true size (`gt`, `ht`) and band (`ge`, `he`), and the cross
/// information of (t, η) with the globals (w, c, h).
#[derive(Clone, Copy, Debug, Default)]
struct ArtSums {
    gt: f64,
    ht: f64,
    ge: f64,
    he: f64,
    cross: [f64; 6],
}

impl ArtSums {
    fn add(&mut self, o: &ArtSums) {
        self.gt += o.gt;
        self.ht += o.ht;
        self.ge += o.ge;
        self.he += o.he;
        for (x, y) in self.cross.iter_mut().zip(&o.cross) {
            *x += y;
        }
    }
}

/// Which customers an iteration visits: sorted, disjoint chunks of customers, grouped
/// into at most [`MAX_SHARDS`] shards that each own a set of sums. Fixed by the data
/// alone, so sums (and results) do not depend on the thread count.
struct Plan {
    chunks: Vec<(usize, usize)>,
    shards: Vec<Vec<(usize, usize)>>,
    /// Fit events visited.
    events: usize,
    /// Score the drift candidates on customers `c` with `c % drift_stride == 0`.
    drift_stride: usize,
    /// `XᵀX` of the feature ridge over the visited customers with events (fixed by the
    /// data; only `Xᵀy` changes between passes). Filled by [`State::gram`].
    gram: Vec<f64>,
}

impl Plan {
    /// Every `every`-th chunk of about `chunk_events` events.
    fn new(data: &FitData, chunk_events: usize, every: usize) -> Plan {
        let ev = |&(lo, hi): &(usize, usize)| (data.cust_start[hi] - data.cust_start[lo]) as usize;
        let chunks: Vec<(usize, usize)> = data
            .customer_chunks(chunk_events)
            .into_iter()
            .step_by(every.max(1))
            .collect();
        let events: usize = chunks.iter().map(ev).sum();
        // a shard's sums are as big as the article-size table: keep at least ~8 events
        // per article-size in each (a small sample of a big catalogue gets few shards)
        let n_shards = events
            .div_ceil(8 * data.article_sizes.len().max(1))
            .clamp(MIN_SHARDS, MAX_SHARDS);
        let per_shard = events.div_ceil(n_shards).max(1);
        let mut shards = Vec::new();
        let mut cur = Vec::new();
        let mut n = 0;
        for ch in &chunks {
            cur.push(*ch);
            n += ev(ch);
            if n >= per_shard {
                shards.push(std::mem::take(&mut cur));
                n = 0;
            }
        }
        if !cur.is_empty() {
            shards.push(cur);
        }
        Plan {
            chunks,
            shards,
            events,
            drift_stride: (events / DRIFT_SAMPLE_EVENTS).max(1),
            gram: Vec::new(),
        }
    }
}

/// Split `v` into the sub-slices of sorted, disjoint `chunks`.
fn split_chunks<'a, T>(mut v: &'a mut [T], chunks: &[(usize, usize)]) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(chunks.len());
    let mut at = 0;
    for &(lo, hi) in chunks {
        let rest = std::mem::take(&mut v);
        let (_, rest) = rest.split_at_mut(lo.saturating_sub(at).min(rest.len()));
        let (mine, rest) = rest.split_at_mut((hi - lo).min(rest.len()));
        out.push(mine);
        v = rest;
        at = hi;
    }
    out
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

/// The passes prefetch the article-size rows of the customer this many ahead.
const PREFETCH_CUSTOMERS: usize = 3;

/// Hint the CPU to load the cache lines of `x` (a row of at most two lines); a no-op
/// off x86_64.
#[inline(always)]
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = (x as *const T).cast::<i8>();
        // SAFETY: a prefetch is only a hint: it never faults or changes memory, and both
        // addresses lie within `x`.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(std::mem::size_of::<T>() - 1));
        }
    }
}

/// Sums of a pass for one shard of customers.
struct Acc {
    /// Per article-size sums.
    art: Vec<ArtSums>,
    gglob: [f64; 3],
    iglob: [f64; 6],
    loo_nll: f64,
    objective: f64,
    n: f64,
    /// Per system: n, Σe, Σr1, Σr2, Σr1r1, Σr1r2, Σr2r2, Σe·r1, Σe·r2, Σee
    /// (e = s − pos, r1 = brand + category reputation, r2 = product reputation).
    sys: [[f64; 10]; N_SYS],
    /// Leave-one-out log loss under each candidate drift sd.
    drift_nll: [f64; DRIFT_STEPS.len()],
    sum_var: f64,
    /// `Xᵀy` of the feature ridge (`y` = customer sizes; `XᵀX` is the plan's).
    xty: Vec<f64>,
    /// (n, Σ resid² + var) for customers with / without features.
    tau: [f64; 4],
    /// (n, Σ bias² + var) over customers with events.
    bias: [f64; 2],
}

impl Acc {
    fn new(n_as: usize, dim: usize) -> Acc {
        Acc {
            art: vec![ArtSums::default(); n_as],
            gglob: [0.0; 3],
            iglob: [0.0; 6],
            loo_nll: 0.0,
            objective: 0.0,
            n: 0.0,
            sys: [[0.0; 10]; N_SYS],
            drift_nll: [0.0; DRIFT_STEPS.len()],
            sum_var: 0.0,
            xty: vec![0.0; dim],
            tau: [0.0; 4],
            bias: [0.0; 2],
        }
    }

    fn merge(&mut self, o: &Acc) {
        let add = |a: &mut [f64], b: &[f64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        for (x, y) in self.art.iter_mut().zip(&o.art) {
            x.add(y);
        }
        add(&mut self.gglob, &o.gglob);
        add(&mut self.iglob, &o.iglob);
        self.loo_nll += o.loo_nll;
        self.objective += o.objective;
        self.n += o.n;
        for (x, y) in self.sys.iter_mut().zip(&o.sys) {
            add(x, y);
        }
        add(&mut self.drift_nll, &o.drift_nll);
        self.sum_var += o.sum_var;
        add(&mut self.xty, &o.xty);
        add(&mut self.tau, &o.tau);
        add(&mut self.bias, &o.bias);
    }
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

fn run(
    p: &FitParams,
    meta: &Events,
    data: &FitData,
    on_iter: &mut (dyn FnMut(&IterationStats) + Send),
) -> Result<Fitted, ModelError> {
    let started = Instant::now();
    let mut st = State::init(meta, data)?;
    st.steps = p.customer_newton_steps;
    let mut full = Plan::new(data, p.chunk_events, 1);
    full.gram = st.gram(&full.chunks);
    // big data: iterate on a fixed sample of customer chunks until the parameters
    // settle, then refine on everything (each full pass is then spent near the optimum)
    let every = sample_every(p, data);
    let sample = (every > 1).then(|| {
        let mut plan = Plan::new(data, p.chunk_events, every);
        plan.gram = st.gram(&plan.chunks);
        plan
    });
    let mut on_sample = sample.is_some();
    let mut first_full = false;
    let mut full_iters = 0usize;
    let mut history = Vec::new();
    let mut converged = false;
    let mut last_obj = f64::INFINITY;
    st.refresh_articles();
    for iter in 1..=p.max_iter {
        let plan = match (&sample, on_sample) {
            (Some(sp), true) => sp,
            _ => &full,
        };
        // customers outside the sample meet the model for the first time in the first
        // full pass: give them a few more steps there
        st.steps = p.customer_newton_steps + if first_full { FRESH_EXTRA_STEPS } else { 0 };
        let t0 = Instant::now();
        let acc = st.pass(plan);
        let pass_seconds = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let objective = acc.objective / acc.n.max(1.0);
        let loo = acc.loo_nll / acc.n.max(1.0);
        let before = st.arts.clone();
        st.update(&acc, p, iter, plan);
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
        let settled = !p.learn_dispersion || iter > DISPERSION_FROM + 2;
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
        let done = rel < p.tol || (settled && param_change < p.param_tol);
        if iter >= p.min_iter && (sample.is_none() || full_iters >= 2) && done {
            converged = true;
            break;
        }
    }
    // final customer sizes and standard errors at the final parameters
    if on_sample {
        st.refresh_prior_means(&full.chunks);
    }
    st.steps = p.customer_newton_steps + FRESH_EXTRA_STEPS;
    let acc = st.pass(&full);
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

/// Position units per size step: the system's own step where it is known; for bare
/// numeric scales the event-weighted median absolute deviation of chosen positions,
/// divided by 0.9 (the MAD of shoppers' sizes on the letter scale), so one step means
/// roughly one size whatever the retailer's numbering.
fn system_scale(system: SizeSystem, positions: &mut [(f64, u64)]) -> f64 {
    if system != SizeSystem::Numeric || positions.is_empty() {
        return system.step();
    }
    let weighted_median = |v: &mut [(f64, u64)]| -> f64 {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total: u64 = v.iter().map(|x| x.1).sum();
        let mut acc = 0u64;
        for &(x, n) in v.iter() {
            acc += n;
            if 2 * acc >= total {
                return x;
            }
        }
        v.last().map_or(0.0, |x| x.0)
    };
    let med = weighted_median(positions);
    let mut dev: Vec<(f64, u64)> = positions
        .iter()
        .map(|&(x, n)| ((x - med).abs(), n))
        .collect();
    let mad = weighted_median(&mut dev);
    if mad > 1e-9 {
        mad / 0.9
    } else {
        1.0
    }
}

fn group_params(names: &[String]) -> Vec<GroupParams> {
    names
        .iter()
        .map(|n| GroupParams {
            name: n.clone(),
            offset: Offset::default(),
            eta: 0.0,
        })
        .collect()
}

/// Index of `i` in `0..n`, or `NONE` when out of range.
fn checked(i: u32, n: usize) -> u32 {
    if (i as usize) < n {
        i
    } else {
        NONE
    }
}

impl<'a> State<'a> {
    fn init(meta: &'a Events, data: &'a FitData) -> Result<State<'a>, ModelError> {
        let n_as = data.article_sizes.len();
        let mut model = Fitted {
            labels: meta
                .sizes
                .iter()
                .map(|l| LabelParams {
                    canonical: l.canonical.clone(),
                    system: l.system,
                    pos: l.pos,
                    offset: Offset::default(),
                })
                .collect(),
            brands: group_params(&meta.brands.names()),
            categories: group_params(&meta.categories.names()),
            products: group_params(&meta.products.names()),
            product_info: vec![
                ProductInfo {
                    brand: NONE,
                    category: NONE,
                    sizes: Vec::new(),
                };
                meta.products.len()
            ],
            ..Default::default()
        };
        let mut as_ref = Vec::with_capacity(n_as);
        let mut as_sys = Vec::with_capacity(n_as);
        let mut sys_n = [0u64; N_SYS];
        let mut sys_pos = [0.0f64; N_SYS];
        let mut sys_positions: Vec<Vec<(f64, u64)>> = vec![Vec::new(); N_SYS];
        for (j, k) in data.article_sizes.iter().enumerate() {
            let label = meta
                .sizes
                .get(k.label as usize)
                .ok_or_else(|| ModelError::Data(format!("size index {} out of range", k.label)))?;
            let a = ArticleRef {
                product: checked(k.product, meta.products.len()),
                brand: checked(k.brand, meta.brands.len()),
                category: checked(k.category, meta.categories.len()),
                label: k.label,
                system: label.system,
                pos: label.pos,
            };
            let si = label.system.index();
            let n = data.as_count[j];
            sys_n[si] += n;
            sys_positions[si].push((label.pos, n));
            if a.product != NONE {
                let info = &mut model.product_info[a.product as usize];
                if info.brand == NONE {
                    info.brand = a.brand;
                }
                if info.category == NONE {
                    info.category = a.category;
                }
                if !info.sizes.contains(&a.label) {
                    info.sizes.push(a.label);
                }
                model.article_sizes.push(ArticleSizeParams {
                    product: a.product,
                    label: a.label,
                    offset: Offset::default(),
                });
            }
            as_ref.push(a);
            as_sys.push(si as u8);
        }
        let scales: Vec<f64> = SizeSystem::ALL
            .iter()
            .map(|s| system_scale(*s, &mut sys_positions[s.index()]))
            .collect();
        let as_pos: Vec<f64> = as_ref
            .iter()
            .map(|a| a.pos / scales[a.system.index()])
            .collect();
        for (j, a) in as_ref.iter().enumerate() {
            let si = a.system.index();
            sys_pos[si] += as_pos[j] * data.as_count[j] as f64;
        }
        for info in &mut model.product_info {
            info.sizes.sort_by(|&x, &y| {
                match (meta.sizes.get(x as usize), meta.sizes.get(y as usize)) {
                    (Some(a), Some(b)) => a.cmp_order(b),
                    _ => x.cmp(&y),
                }
            });
        }
        // align systems so their mean chosen positions coincide with the busiest system's
        let ref_system = (0..N_SYS).max_by_key(|&i| sys_n[i]).unwrap_or(0);
        let mean_pos = |i: usize| {
            if sys_n[i] > 0 {
                sys_pos[i] / sys_n[i] as f64
            } else {
                0.0
            }
        };
        model.systems = SizeSystem::ALL
            .iter()
            .filter(|s| sys_n[s.index()] > 0)
            .map(|&s| SystemParams {
                system: s,
                scale: scales[s.index()],
                align: if s.index() == ref_system {
                    0.0
                } else {
                    mean_pos(ref_system) - mean_pos(s.index())
                },
                n: sys_n[s.index()],
            })
            .collect();
        let article_size: std::collections::HashMap<(u32, u32), u32> = model
            .article_sizes
            .iter()
            .enumerate()
            .map(|(i, a)| ((a.product, a.label), i as u32))
            .collect();
        let art_of = |a: &ArticleRef| {
            if a.product == NONE {
                NONE
            } else {
                article_size
                    .get(&(a.product, a.label))
                    .copied()
                    .unwrap_or(NONE)
            }
        };
        let as_group = [
            as_ref.iter().map(|a| a.label).collect(),
            as_ref.iter().map(|a| a.brand).collect(),
            as_ref.iter().map(|a| a.category).collect(),
            as_ref.iter().map(|a| a.product).collect(),
            as_ref.iter().map(art_of).collect(),
        ];
        // customers start at their mean chosen size
        let nc = data.customers();
        let mut s = vec![0.0; nc];
        let mut total = 0.0;
        for (c, sc) in s.iter_mut().enumerate() {
            let (lo, hi) = (data.cust_start[c] as usize, data.cust_start[c + 1] as usize);
            if hi > lo {
                let sum: f64 = data.ev_as[lo..hi]
                    .iter()
                    .map(|&j| {
                        let a = &as_ref[j as usize];
                        as_pos[j as usize] + model.align(a.system)
                    })
                    .sum();
                *sc = sum / (hi - lo) as f64;
                total += sum;
            }
        }
        let pop_mean = total / data.len().max(1) as f64;
        for (c, sc) in s.iter_mut().enumerate() {
            if data.cust_start[c + 1] == data.cust_start[c] {
                *sc = pop_mean;
            }
        }
        model.features = FeatureModel::from_training(&meta.features, pop_mean);
        let dim = model.features.dim();
        let mut row = vec![0.0; dim];
        let mut has_feat = vec![false; nc];
        for (c, hf) in has_feat.iter_mut().enumerate() {
            *hf = model.features.encode_training(&meta.features, c, &mut row);
        }
        let mut st = State {
            meta,
            data,
            model,
            arts: vec![ArtRow::default(); n_as],
            as_group,
            as_ref,
            as_pos,
            as_sys,
            ref_system,
            m: vec![pop_mean as f32; nc],
            u: vec![0.0; nc],
            cov: vec![[1.0, 0.0, 0.1]; nc],
            s,
            has_feat,
            steps: 2,
        };
        st.fit_prior(1.0);
        Ok(st)
    }

    /// Ridge fit of the feature model on the current customer sizes, then prior means.
    fn fit_prior(&mut self, lambda: f64) {
        let fm = &self.model.features;
        let dim = fm.dim();
        let mut stats = RidgeStats::new(dim);
        let mut row = vec![0.0; dim];
        for c in 0..self.data.customers() {
            if self.data.cust_start[c + 1] > self.data.cust_start[c] {
                fm.encode_training(&self.meta.features, c, &mut row);
                stats.add(&row, self.s[c]);
            }
        }
        if let Some(coef) = stats.solve(lambda) {
            self.model.features.coef = coef;
        }
        let n = self.data.customers();
        let all: Vec<(usize, usize)> = (0..n)
            .step_by(1 << 16)
            .map(|lo| (lo, (lo + (1 << 16)).min(n)))
            .collect();
        self.refresh_prior_means(&all);
    }

    /// Prior means of the customers in `chunks` from the current feature model.
    fn refresh_prior_means(&mut self, chunks: &[(usize, usize)]) {
        let fm = &self.model.features;
        let feats = &self.meta.features;
        split_chunks(&mut self.m, chunks)
            .into_par_iter()
            .zip(chunks.par_iter())
            .for_each(|(part, &(lo, _))| {
                for (k, m) in part.iter_mut().enumerate() {
                    *m = fm.predict_training(feats, lo + k) as f32;
                }
            });
    }

    /// `XᵀX` of the feature ridge over the customers with events in `chunks`.
    fn gram(&self, chunks: &[(usize, usize)]) -> Vec<f64> {
        let fm = &self.model.features;
        let dim = fm.dim();
        let parts: Vec<RidgeStats> = chunks
            .par_iter()
            .map(|&(lo, hi)| {
                let mut row = vec![0.0; dim];
                let mut stats = RidgeStats::new(dim);
                for c in lo..hi {
                    if self.data.cust_start[c + 1] > self.data.cust_start[c] {
                        fm.encode_training(&self.meta.features, c, &mut row);
                        stats.add(&row, 0.0);
                    }
                }
                stats
            })
            .collect();
        // merged in chunk order: the same sums whatever the thread count
        let mut total = RidgeStats::new(dim);
        for part in &parts {
            total.merge(part);
        }
        total.xtx
    }

    /// Event-weighted RMS change of article true sizes and relative band widths since
    /// `before` (the larger of the two).
    fn change_since(&self, before: &[ArtRow]) -> f64 {
        let (mut n, mut dt, mut dh) = (0.0, 0.0, 0.0);
        for ((new, old), &cnt) in self.arts.iter().zip(before).zip(&self.data.as_count) {
            let w = cnt as f64;
            n += w;
            dt += w * (new.t - old.t).powi(2);
            dh += w * ((new.half - old.half) / old.half.max(1e-12)).powi(2);
        }
        if n <= 0.0 {
            return 0.0;
        }
        (dt / n).sqrt().max((dh / n).sqrt())
    }

    /// Recompute the per-article-size arrays the passes read from the model.
    fn refresh_articles(&mut self) {
        let model = &self.model;
        let h = model.globals.h;
        self.as_ref
            .par_iter()
            .zip(self.as_group[4].par_iter())
            .zip(self.arts.par_iter_mut())
            .for_each(|((a, &art), row)| {
                let half = h * model.band(a).exp();
                *row = ArtRow {
                    t: model.true_size_with(a, (art != NONE).then_some(art)),
                    half,
                    exp_half: half.exp(),
                    exp_neg_half: (-half).exp(),
                    xc: model.choice_centre(a),
                    r1: model.brand_offset(a.brand)
                        + super::fitted::group_value(&model.categories, a.category),
                    r2: super::fitted::group_value(&model.products, a.product),
                };
            });
    }

    fn prior_of(&self, c: usize) -> CustomerState {
        let g = &self.model.globals;
        let sd = if self.has_feat[c] {
            g.sd_customer_features
        } else {
            g.sd_customer_population
        };
        CustomerState::prior(
            f64::from(self.m[c]),
            sd * sd,
            g.sd_customer_bias * g.sd_customer_bias,
        )
    }

    /// [`solve_customer`] for training customer `c` (events `lo..hi`), reading the
    /// per-article-size arrays directly: every event is a choice and an outcome, and the
    /// band half-width is precomputed, so a step costs two logistic evaluations per event.
    /// Takes up to `steps` Newton steps from `start`, then evaluates the final point once
    /// more with log-likelihoods, leaving each event's outcome gradient and information
    /// (on `s + u`) in `terms` for the leave-one-out sums.
    fn solve(
        &self,
        c: usize,
        events: (usize, usize),
        start: (f64, f64),
        terms: &mut Vec<(f64, f64)>,
    ) -> Solved {
        let (lo, hi) = events;
        let g = &self.model.globals;
        let prior = self.prior_of(c);
        let ps = 1.0 / prior.ss.max(1e-9);
        let pu = 1.0 / prior.uu.max(1e-9);
        let choice_prec = 1.0 / (g.sd_choice * g.sd_choice + g.sd_drift * g.sd_drift).max(1e-9);
        let n = (hi - lo) as f64;
        let ev_as = &self.data.ev_as[lo..hi];
        let ev_y = &self.data.ev_y[lo..hi];
        let (mut s, mut u) = start;
        let mut step = 0;
        while step < self.steps {
            let mut gs = (s - prior.s) * ps;
            let mut gu = (u - prior.u) * pu;
            let mut ho_sum = 0.0;
            for (&j, &y) in ev_as.iter().zip(ev_y) {
                let r = &self.arts[j as usize];
                gs += (s - r.xc) * choice_prec;
                let base = g.c - g.w * (s + u - r.t);
                let f = sigmoid_pair(base, r.exp_half, r.exp_neg_half);
                let d = event_score_at(f, y as usize);
                let go = d.grad(-g.w, -g.w);
                gs += go;
                gu += go;
                ho_sum += d.info(-g.w, -g.w);
            }
            let info = (ps + n * choice_prec + ho_sum, ho_sum, pu + ho_sum);
            let (ds, du) = newton_step((gs, gu), info);
            s -= ds;
            // the bias is stored in f32: evaluate where the next iteration will start
            u = f64::from((u - du) as f32);
            step += 1;
            if ds.abs() < 1e-9 && du.abs() < 1e-9 {
                break;
            }
        }
        // the final point: information, per-event terms and the penalised objective
        terms.clear();
        let mut obj = 0.5 * (s - prior.s).powi(2) / prior.ss + 0.5 * u * u / prior.uu;
        let mut ho_sum = 0.0;
        for (&j, &y) in ev_as.iter().zip(ev_y) {
            let r = &self.arts[j as usize];
            let base = g.c - g.w * (s + u - r.t);
            let f = sigmoid_pair(base, r.exp_half, r.exp_neg_half);
            let d = event_deriv_at(f, y as usize);
            let (go, ho) = (d.grad(-g.w, -g.w), d.info(-g.w, -g.w));
            ho_sum += ho;
            obj += d.nll + 0.5 * (s - r.xc).powi(2) * choice_prec;
            terms.push((go, ho));
        }
        let info = (ps + n * choice_prec + ho_sum, ho_sum, pu + ho_sum);
        let (ss, su, uu) = inv2(info.0, info.1, info.2);
        Solved {
            st: CustomerState { s, u, ss, su, uu },
            info,
            obj,
            choice_prec,
        }
    }

    /// One iteration's pass over the customers of `plan`, grouped by customer: Newton
    /// steps on each customer's size and fit bias (each shard owns its customers'
    /// slots), then each event's leave-one-out derivatives aggregated by article-size
    /// and globally. One set of sums per shard, merged in shard order, so the result
    /// does not depend on the thread count. (Article parameters are fixed within a
    /// pass, so solving a customer and adding their sums at once is the same as two
    /// passes, with one read of each event instead of two.)
    fn pass(&mut self, plan: &Plan) -> Acc {
        let mut s = std::mem::take(&mut self.s);
        let mut u = std::mem::take(&mut self.u);
        let mut cov = std::mem::take(&mut self.cov);
        let ranges: Vec<(usize, usize)> = plan
            .shards
            .iter()
            .map(|sh| {
                let lo = sh.first().map_or(0, |x| x.0);
                (lo, sh.last().map_or(lo, |x| x.1))
            })
            .collect();
        let total = {
            let this = &*self;
            let n_as = this.arts.len();
            let dim = this.model.features.dim();
            let mut total = Acc::new(n_as, dim);
            let mut slots = split_chunks(&mut s, &ranges)
                .into_iter()
                .zip(split_chunks(&mut u, &ranges))
                .zip(split_chunks(&mut cov, &ranges))
                .map(|((a, b), c)| (a, b, c));
            // shards in flight at once: each holds a full table of article-size sums
            let window = rayon::current_num_threads().max(1) * 2;
            for group in plan.shards.chunks(window) {
                let parts: Vec<CustomerSlots<'_>> = slots.by_ref().take(group.len()).collect();
                let accs: Vec<Acc> = parts
                    .into_par_iter()
                    .zip(group.par_iter())
                    .map(|(mut slots, shard)| {
                        let base = shard.first().map_or(0, |x| x.0);
                        let mut acc = Acc::new(n_as, dim);
                        let mut scratch = Scratch {
                            terms: Vec::new(),
                            drift_stride: plan.drift_stride,
                        };
                        for &(lo, hi) in shard {
                            for c in lo..hi {
                                this.prefetch_customer(c + PREFETCH_CUSTOMERS, &acc);
                                this.visit(c, (&mut slots, c - base), &mut acc, &mut scratch);
                            }
                        }
                        acc
                    })
                    .collect();
                for part in &accs {
                    total.merge(part);
                }
            }
            total
        };
        self.s = s;
        self.u = u;
        self.cov = cov;
        total
    }

    /// Ask for the article-size rows customer `c`'s events read and write, ahead of
    /// their use (each is a cache miss on big catalogues).
    #[inline]
    fn prefetch_customer(&self, c: usize, acc: &Acc) {
        let d = self.data;
        let (Some(&lo), Some(&hi)) = (d.cust_start.get(c), d.cust_start.get(c + 1)) else {
            return;
        };
        for &j in d.ev_as.get(lo as usize..hi as usize).unwrap_or(&[]) {
            if let (Some(r), Some(a)) = (self.arts.get(j as usize), acc.art.get(j as usize)) {
                prefetch(r);
                prefetch(a);
            }
        }
    }

    /// Customer `c`: solve (into `slots` at `at`), then add their events' sums.
    fn visit(
        &self,
        c: usize,
        slots: (&mut CustomerSlots<'_>, usize),
        acc: &mut Acc,
        scratch: &mut Scratch,
    ) {
        let ((sp, up, cp), k) = slots;
        let data = self.data;
        let (lo, hi) = (data.cust_start[c] as usize, data.cust_start[c + 1] as usize);
        if hi == lo {
            let st = self.prior_of(c);
            sp[k] = st.s;
            up[k] = st.u as f32;
            cp[k] = [st.ss as f32, st.su as f32, st.uu as f32];
            return;
        }
        let solved = self.solve(c, (lo, hi), (sp[k], f64::from(up[k])), &mut scratch.terms);
        let st = &solved.st;
        sp[k] = st.s;
        up[k] = st.u as f32;
        cp[k] = [st.ss as f32, st.su as f32, st.uu as f32];
        self.add_sums(c, &solved, acc, scratch);
    }

    /// Leave-one-out derivatives of customer `c`'s events at their solved state.
    fn add_sums(&self, c: usize, solved: &Solved, acc: &mut Acc, scratch: &mut Scratch) {
        let Scratch {
            terms,
            drift_stride,
        } = scratch;
        let data = self.data;
        let (lo, hi) = (data.cust_start[c] as usize, data.cust_start[c + 1] as usize);
        let g = &self.model.globals;
        let prior = self.prior_of(c);
        let (s, u) = (solved.st.s, solved.st.u);
        let (hss, hsu, huu) = solved.info;
        let (vss, vuu) = (solved.st.ss, solved.st.uu);
        // a past choice measures the size at that purchase (choice noise + drift)
        let hist_prec = solved.choice_prec;
        let total_var = 1.0 / hist_prec;
        let own_var = g.sd_choice * g.sd_choice;
        let drift_var = g.sd_drift * g.sd_drift;
        let score_drift = c % *drift_stride == 0;
        let rhos = DRIFT_STEPS.map(|step| drift_share(g, step));
        acc.objective += solved.obj;
        for (k, e) in (lo..hi).enumerate() {
            let j = data.ev_as[e] as usize;
            let y = data.ev_y[e] as usize;
            let (go, ho) = terms[k];
            let r = self.arts[j];
            let xc = r.xc;
            // the customer from all *other* purchases (one Newton step from the optimum)
            let (css, csu, cuu) = inv2(hss - ho - hist_prec, hsu - ho, huu - ho);
            let gs = go + (s - xc) * hist_prec;
            let s_loo = s + css * gs + csu * go;
            let u_loo = u + csu * gs + cuu * go;
            let loo = CustomerState {
                s: s_loo,
                u: u_loo,
                ss: css,
                su: csu,
                uu: cuu,
            };
            // at this purchase: drift, then this purchase's own choice
            let now = super::predict::purchase_belief(&loo, drift_var, Some((xc, own_var)));
            let (s_now, v_now) = (now.mean, now.var);
            let kappa = uncertainty_scale(g.w, v_now);
            let prec = 1.0 / v_now;
            let half = r.half;
            if score_drift {
                for (slot, &rho) in rhos.iter().enumerate() {
                    let alt = super::predict::purchase_belief(
                        &loo,
                        rho * total_var,
                        Some((xc, (1.0 - rho) * total_var)),
                    );
                    let k = uncertainty_scale(g.w, alt.var);
                    let base = g.c - g.w * (alt.mean - r.t);
                    let p = probs(k * (base + half), k * (base - half));
                    acc.drift_nll[slot] -= p[y].max(super::math::P_MIN).ln();
                }
            }
            let d_gap = s_now - r.t;
            let e_eta = half / g.h;
            let base = g.c - g.w * d_gap;
            let d = event_deriv(kappa * (base + half), kappa * (base - half), y);
            acc.loo_nll += d.nll;
            acc.n += 1.0;
            let dt = (kappa * g.w, kappa * g.w);
            let de = (kappa * g.h * e_eta, -kappa * g.h * e_eta);
            // the slope also widens or narrows the uncertainty scale: ∂κ/∂w = −κ³·π·w·v/8
            let dkappa = -kappa.powi(3) * std::f64::consts::PI * g.w / (8.0 * prec);
            let dw = (
                -kappa * d_gap + dkappa * (g.c + half - g.w * d_gap),
                -kappa * d_gap + dkappa * (g.c - half - g.w * d_gap),
            );
            let dc = (kappa, kappa);
            let dh = (kappa * e_eta, -kappa * e_eta);
            let sums = &mut acc.art[j];
            sums.gt += d.grad(dt.0, dt.1);
            sums.ht += d.info(dt.0, dt.1);
            sums.ge += d.grad(de.0, de.1);
            sums.he += d.info(de.0, de.1);
            let cr = &mut sums.cross;
            cr[0] += d.info_cross(dt, dw);
            cr[1] += d.info_cross(dt, dc);
            cr[2] += d.info_cross(dt, dh);
            cr[3] += d.info_cross(de, dw);
            cr[4] += d.info_cross(de, dc);
            cr[5] += d.info_cross(de, dh);
            acc.gglob[0] += d.grad(dw.0, dw.1);
            acc.gglob[1] += d.grad(dc.0, dc.1);
            acc.gglob[2] += d.grad(dh.0, dh.1);
            acc.iglob[0] += d.info(dw.0, dw.1);
            acc.iglob[1] += d.info_cross(dw, dc);
            acc.iglob[2] += d.info_cross(dw, dh);
            acc.iglob[3] += d.info(dc.0, dc.1);
            acc.iglob[4] += d.info_cross(dc, dh);
            acc.iglob[5] += d.info(dh.0, dh.1);
            // choice model: s − pos = align + k·reputation + k_product·product + noise
            let (r1, r2) = (r.r1, r.r2);
            let ev = s - self.as_pos[j];
            let sy = &mut acc.sys[self.as_sys[j] as usize];
            for (slot, v) in [
                1.0,
                ev,
                r1,
                r2,
                r1 * r1,
                r1 * r2,
                r2 * r2,
                ev * r1,
                ev * r2,
                ev * ev,
            ]
            .into_iter()
            .enumerate()
            {
                sy[slot] += v;
            }
            acc.sum_var += vss;
        }
        // feature model and prior variance sums
        let xty = &mut acc.xty;
        self.model
            .features
            .for_each_training(&self.meta.features, c, |j, x| {
                if let Some(v) = xty.get_mut(j) {
                    *v += x * s;
                }
            });
        let resid = (s - prior.s).powi(2) + vss;
        acc.bias[0] += 1.0;
        acc.bias[1] += u * u + vuu;
        let slot = if self.has_feat[c] { 0 } else { 2 };
        acc.tau[slot] += 1.0;
        acc.tau[slot + 1] += resid;
    }

    /// All closed-form and quadratic updates from the pass's sums.
    fn update(&mut self, acc: &Acc, p: &FitParams, iter: usize, plan: &Plan) {
        let delta = self.update_globals(acc);
        // fold the global step into the article-size gradients (block Gauss-Seidel)
        let gt: Vec<f64> = acc
            .art
            .iter()
            .map(|x| x.gt + x.cross[0] * delta[0] + x.cross[1] * delta[1] + x.cross[2] * delta[2])
            .collect();
        let ge: Vec<f64> = acc
            .art
            .iter()
            .map(|x| x.ge + x.cross[3] * delta[0] + x.cross[4] * delta[1] + x.cross[5] * delta[2])
            .collect();
        let ht: Vec<f64> = acc.art.iter().map(|x| x.ht).collect();
        self.update_locations(&gt, &ht, p.level_sweeps);
        // band widths only once locations have settled: early on they would absorb
        // misfit that the offsets are about to explain
        if p.learn_dispersion && iter > DISPERSION_FROM {
            let he: Vec<f64> = acc.art.iter().map(|x| x.he).collect();
            self.update_bands(&ge, &he, p.level_sweeps);
        }
        self.update_choice(acc);
        self.update_prior(acc, p.ridge_lambda, plan);
    }

    /// Damped Newton step on (w, c, h); returns the step taken.
    fn update_globals(&mut self, acc: &Acc) -> [f64; 3] {
        let i = &acc.iglob;
        let mut a = [i[0], i[1], i[2], i[1], i[3], i[4], i[2], i[4], i[5]];
        let ridge = 1e-6 * (i[0] + i[3] + i[5]).max(1e-9);
        a[0] += ridge;
        a[4] += ridge;
        a[8] += ridge;
        let neg_g = [-acc.gglob[0], -acc.gglob[1], -acc.gglob[2]];
        let Some(mut step) = super::features::cholesky_solve(&mut a, &neg_g, 3) else {
            return [0.0; 3];
        };
        for x in &mut step {
            *x = x.clamp(-1.0, 1.0);
        }
        let g = &mut self.model.globals;
        // keep slope and band positive
        let mut scale: f64 = 1.0;
        while scale > 1e-3
            && (g.w + scale * step[0] < 0.05
                || g.w + scale * step[0] > W_MAX
                || g.h + scale * step[2] < 0.05)
        {
            scale *= 0.5;
        }
        for x in &mut step {
            *x *= scale;
        }
        g.w += step[0];
        g.c += step[1];
        g.h += step[2];
        [step[0], step[1], step[2]]
    }

    /// Solve the quadratic model of the outcome likelihood in the article-size totals
    /// for the location hierarchy, then re-estimate each level's prior variance.
    fn update_locations(&mut self, g: &[f64], h: &[f64], sweeps: usize) {
        let gl = &self.model.globals;
        let [g_lab, g_bra, g_cat, g_pro, g_art] = &self.as_group;
        let mut levels = [
            Level::new(
                g_lab,
                self.model.labels.iter().map(|l| l.offset.value).collect(),
                gl.sd_label,
            ),
            Level::new(g_bra, values(&self.model.brands), gl.sd_brand),
            Level::new(g_cat, values(&self.model.categories), gl.sd_category),
            Level::new(g_pro, values(&self.model.products), gl.sd_product),
            Level::new(
                g_art,
                self.model
                    .article_sizes
                    .iter()
                    .map(|x| x.offset.value)
                    .collect(),
                gl.sd_article_size,
            ),
        ];
        solve_levels(g, h, &mut levels, sweeps);
        let [lab, bra, cat, pro, art] = levels;
        let gl = &mut self.model.globals;
        gl.sd_label = lab.eb_sd(0.3);
        gl.sd_brand = bra.eb_sd(0.5);
        gl.sd_category = cat.eb_sd(0.3);
        gl.sd_product = pro.eb_sd(0.3);
        gl.sd_article_size = art.eb_sd(0.2);
        for (l, v) in self.model.labels.iter_mut().zip(lab.val) {
            l.offset.value = v;
        }
        set_values(&mut self.model.brands, &bra.val);
        set_values(&mut self.model.categories, &cat.val);
        set_values(&mut self.model.products, &pro.val);
        for (x, v) in self.model.article_sizes.iter_mut().zip(art.val) {
            x.offset.value = v;
        }
    }

    /// Same for the fit-band log-widths (brand, category, product).
    fn update_bands(&mut self, g: &[f64], h: &[f64], sweeps: usize) {
        let gl = &self.model.globals;
        let etas = |gs: &[GroupParams]| gs.iter().map(|x| x.eta).collect::<Vec<_>>();
        let [_, g_bra, g_cat, g_pro, _] = &self.as_group;
        let mut levels = [
            Level::new(g_bra, etas(&self.model.brands), gl.sd_eta_brand),
            Level::new(g_cat, etas(&self.model.categories), gl.sd_eta_category),
            Level::new(g_pro, etas(&self.model.products), gl.sd_eta_product),
        ];
        solve_levels(g, h, &mut levels, sweeps);
        let [bra, cat, pro] = levels;
        let gl = &mut self.model.globals;
        gl.sd_eta_brand = bra.eb_sd(0.3);
        gl.sd_eta_category = cat.eb_sd(0.3);
        gl.sd_eta_product = pro.eb_sd(0.3);
        for (gs, lv) in [
            (&mut self.model.brands, bra),
            (&mut self.model.categories, cat),
            (&mut self.model.products, pro),
        ] {
            for (x, v) in gs.iter_mut().zip(lv.val) {
                x.eta = v.clamp(-3.0, 3.0);
            }
        }
    }

    /// Choice model `s − pos = align_sys + k·r1 + k_product·r2`: least squares with
    /// shared slopes and per-system intercepts (the busiest system's alignment stays
    /// fixed); its residual variance, less the drift, is the choice noise. The drift sd
    /// moves to the candidate with the lowest leave-one-out log loss.
    fn update_choice(&mut self, acc: &Acc) {
        // normal equations for (k, k_product) on within-system centred sums
        let (mut a11, mut a12, mut a22, mut b1, mut b2) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (si, sy) in acc.sys.iter().enumerate() {
            let n = sy[0];
            if n < 1.0 {
                continue;
            }
            if si == self.ref_system {
                let al = self.model.align(SizeSystem::ALL[si]);
                a11 += sy[4];
                a12 += sy[5];
                a22 += sy[6];
                b1 += sy[7] - al * sy[2];
                b2 += sy[8] - al * sy[3];
            } else {
                a11 += sy[4] - sy[2] * sy[2] / n;
                a12 += sy[5] - sy[2] * sy[3] / n;
                a22 += sy[6] - sy[3] * sy[3] / n;
                b1 += sy[7] - sy[1] * sy[2] / n;
                b2 += sy[8] - sy[1] * sy[3] / n;
            }
        }
        let ridge = 1e-6 * (a11 + a22).max(1e-9);
        let mut m = [a11 + ridge, a12, a12, a22 + ridge];
        let (k1, k2) = match super::features::cholesky_solve(&mut m, &[b1, b2], 2) {
            Some(k) => (k[0].clamp(0.0, 1.0), k[1].clamp(0.0, 1.0)),
            None => (0.0, 0.0),
        };
        let mut sse = 0.0;
        let mut n_all = 0.0;
        for sp in &mut self.model.systems {
            let si = sp.system.index();
            let sy = &acc.sys[si];
            let n = sy[0];
            if n < 1.0 {
                continue;
            }
            if si != self.ref_system {
                sp.align = (sy[1] - k1 * sy[2] - k2 * sy[3]) / n;
            }
            let al = sp.align;
            sse += sy[9] + n * al * al + k1 * k1 * sy[4] + k2 * k2 * sy[6]
                - 2.0 * al * sy[1]
                - 2.0 * k1 * sy[7]
                - 2.0 * k2 * sy[8]
                + 2.0 * al * k1 * sy[2]
                + 2.0 * al * k2 * sy[3]
                + 2.0 * k1 * k2 * sy[5];
            n_all += n;
        }
        let rho = drift_share(&self.model.globals, drift_step(&acc.drift_nll));
        let g = &mut self.model.globals;
        g.k = k1;
        g.k_product = k2;
        if n_all > 0.0 {
            let total = ((sse.max(0.0) + acc.sum_var) / n_all).clamp(0.05 * 0.05, 25.0);
            g.sd_drift = (rho * total).sqrt();
            g.sd_choice = ((1.0 - rho) * total).sqrt();
        }
    }

    /// Feature ridge and the customer prior variances.
    fn update_prior(&mut self, acc: &Acc, lambda: f64, plan: &Plan) {
        let stats = RidgeStats {
            dim: acc.xty.len(),
            xtx: plan.gram.clone(),
            xty: acc.xty.clone(),
        };
        if let Some(coef) = stats.solve(lambda) {
            self.model.features.coef = coef;
        }
        let g = &mut self.model.globals;
        if acc.tau[0] > 0.0 {
            g.sd_customer_features = (acc.tau[1] / acc.tau[0]).sqrt().clamp(0.05, 10.0);
        }
        if acc.tau[2] > 0.0 {
            g.sd_customer_population = (acc.tau[3] / acc.tau[2]).sqrt().clamp(0.05, 10.0);
        }
        if acc.bias[0] > 0.0 {
            // empirical Bayes, with an inverse-gamma prior worth EB_A0 customers at 0.3 sizes
            let guess = 0.3f64;
            g.sd_customer_bias = ((acc.bias[1] + 2.0 * EB_A0 * guess * guess)
                / (acc.bias[0] + 2.0 * EB_A0))
                .sqrt()
                .clamp(0.01, 5.0);
        }
        self.refresh_prior_means(&plan.chunks);
    }

    /// Standard errors and counts of every offset from the final pass.
    fn finish_uncertainty(&mut self, acc: &Acc) {
        let g = self.model.globals.clone();
        let v_as = g.sd_article_size.powi(2);
        let v_prod = g.sd_product.powi(2);
        let np = self.model.products.len();
        let mut prod_info = vec![0.0; np];
        let mut prod_n = vec![0u64; np];
        let mut brand_info = vec![0.0; self.model.brands.len()];
        let mut brand_n = vec![0u64; self.model.brands.len()];
        let mut cat_info = vec![0.0; self.model.categories.len()];
        let mut cat_n = vec![0u64; self.model.categories.len()];
        let mut lab_info = vec![0.0; self.model.labels.len()];
        let mut lab_n = vec![0u64; self.model.labels.len()];
        for (j, a) in self.as_ref.iter().enumerate() {
            let h = acc.art[j].ht;
            let n = self.data.as_count[j];
            // the model's product-in-size of fit article-size j (as the plan mapped it)
            if let Some(&i) = self.as_group[4].get(j).filter(|&&i| i != NONE) {
                if let Some(x) = self.model.article_sizes.get_mut(i as usize) {
                    x.offset.se = 1.0 / (h + 1.0 / v_as).sqrt();
                    x.offset.n = n;
                }
            }
            if a.product != NONE {
                prod_info[a.product as usize] += 1.0 / (v_as + 1.0 / h.max(1e-12));
                prod_n[a.product as usize] += n;
            } else if a.brand != NONE {
                brand_info[a.brand as usize] += 1.0 / (v_as + v_prod + 1.0 / h.max(1e-12));
                brand_n[a.brand as usize] += n;
            }
            if a.category != NONE {
                cat_info[a.category as usize] += h;
                cat_n[a.category as usize] += n;
            }
            if (a.label as usize) < lab_info.len() {
                lab_info[a.label as usize] += h;
                lab_n[a.label as usize] += n;
            }
        }
        for (p, info) in self.model.product_info.iter().enumerate() {
            if info.brand != NONE {
                brand_info[info.brand as usize] += 1.0 / (v_prod + 1.0 / prod_info[p].max(1e-12));
                brand_n[info.brand as usize] += prod_n[p];
            }
        }
        let se = |info: f64, sd: f64| 1.0 / (info + 1.0 / (sd * sd)).sqrt();
        for (p, x) in self.model.products.iter_mut().enumerate() {
            x.offset.se = se(prod_info[p], g.sd_product);
            x.offset.n = prod_n[p];
        }
        for (b, x) in self.model.brands.iter_mut().enumerate() {
            x.offset.se = se(brand_info[b], g.sd_brand);
            x.offset.n = brand_n[b];
        }
        for (k, x) in self.model.categories.iter_mut().enumerate() {
            x.offset.se = se(cat_info[k], g.sd_category);
            x.offset.n = cat_n[k];
        }
        for (k, x) in self.model.labels.iter_mut().enumerate() {
            x.offset.se = se(lab_info[k], g.sd_label);
            x.offset.n = lab_n[k];
        }
    }
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
mod tests {
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

    #[test]
    fn split_chunks_hands_out_exactly_the_chunks() {
        let mut v: Vec<u32> = (0..10).collect();
        let parts = split_chunks(&mut v, &[(1, 3), (3, 4), (7, 10)]);
        let got: Vec<Vec<u32>> = parts.iter().map(|p| p.to_vec()).collect();
        assert_eq!(got, vec![vec![1, 2], vec![3], vec![7, 8, 9]]);
    }

    /// `n` customers with `k` events each, `n_as` article-sizes.
    fn data(n: usize, k: usize, n_as: usize) -> FitData {
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

    #[test]
    fn plan_covers_everything_or_a_fixed_sample_in_few_shards() {
        let d = data(1000, 3, 10);
        let full = Plan::new(&d, 30, 1);
        assert_eq!(full.events, 3000);
        assert_eq!(full.chunks.len(), 100);
        assert!(full.shards.len() > MIN_SHARDS && full.shards.len() <= MAX_SHARDS);
        let in_shards: Vec<(usize, usize)> = full.shards.concat();
        assert_eq!(in_shards, full.chunks);
        // every 4th chunk: 25 chunks of 10 customers = 750 events
        let sample = Plan::new(&d, 30, 4);
        assert_eq!(sample.events, 750);
        assert_eq!(sample.chunks[1], full.chunks[4]);
        // a big catalogue: 3000 events over 100 article-sizes => ceil(3000 / 800) = 4 shards
        let few = Plan::new(&data(1000, 3, 100), 30, 1);
        assert_eq!(few.shards.len(), 4);
        assert_eq!(few.shards.concat(), few.chunks);
    }
}
