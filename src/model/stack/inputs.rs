//! The second stage's training inputs: every training event's out-of-sample inputs,
//! cross-fitted (structural refits) or leave-one-out, and the customer sample the
//! learners are fitted on.

use super::*;
use crate::model::fitdata::FitData;

/// One training event's model lookups.
#[derive(Clone, Copy, Debug)]
pub(super) struct TrainEvent {
    article: ArticleRef,
    /// Model product-in-size index or NONE.
    art: u32,
    /// Events customer index.
    ec: u32,
    /// Model customer index or NONE.
    customer: u32,
    class: usize,
    /// Stored state of the customer (their prior when the model has no customer table).
    state: CustomerState,
}

/// Which customers' events the learners are fitted on ([`StackParams::max_rows`]).
#[derive(Clone, Debug)]
pub struct CustomerSample {
    /// Share of customers kept, in (0, 1]; 1 keeps every customer.
    pub rate: f64,
    /// Kept or not, per events customer (empty when the rate is 1).
    keep: Vec<bool>,
}

impl CustomerSample {
    /// The sample for `events` under `max_rows` (0 = every customer): customers kept at
    /// rate `max_rows / fit events`, each by its id's hash.
    pub fn new(events: &Events, max_rows: usize) -> Self {
        let fit = events
            .outcome
            .iter()
            .filter(|o| o.class().is_some())
            .count();
        if max_rows == 0 || fit <= max_rows {
            return CustomerSample {
                rate: 1.0,
                keep: Vec::new(),
            };
        }
        let rate = max_rows as f64 / fit as f64;
        let keep = (0..events.customers.len())
            .map(|c| hash_in_sample(customer_hash(events, c as u32), rate))
            .collect();
        CustomerSample { rate, keep }
    }

    /// Whether the learners see the events of events customer `ec` (an index into
    /// `Events::customers`).
    pub fn contains(&self, ec: u32) -> bool {
        self.keep.is_empty() || self.keep.get(ec as usize).copied().unwrap_or(false)
    }
}

/// True for a share `rate` of customer hashes: the hash mixed again (MurmurHash3's
/// 64-bit finaliser: FNV-1a's top bits are poorly mixed for short ids), its top 53 bits
/// as a fraction of one, below the rate. Cross-validation folds use the unmixed hash
/// modulo their count, so sample and folds are independent.
pub fn hash_in_sample(hash: u64, rate: f64) -> bool {
    let mut x = hash;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    rate >= 1.0 || ((x >> 11) as f64) * (1.0 / (1u64 << 53) as f64) < rate
}

/// Out-of-sample inputs of every training event with a small / fit / large outcome.
pub struct TrainingInputs {
    /// Counts of all the training events against the final model.
    pub tables: StackTables,
    /// Inputs per event in the [`Regime::Purchase`] regime (body rows left out: see
    /// `bodies`).
    pub inputs: Vec<StackInput<'static>>,
    /// Inputs per event in the [`Regime::Offer`] regime (no choice evidence).
    pub offer: Vec<StackInput<'static>>,
    /// Class per event.
    pub classes: Vec<u8>,
    /// Cross-validation group per event (hash of the customer id).
    pub group: Vec<u64>,
    /// Body rows of the events' customers, `body_dim` per events customer.
    pub bodies: Vec<f64>,
    /// Length of a body row.
    pub body_dim: usize,
    /// Events customer per event (row of `bodies`).
    pub customer: Vec<u32>,
}

/// Body rows of every customer of `events` straight from the training columns (the
/// encoder's own level codes), flat, and their length.
pub(super) fn body_rows(model: &Predictor, events: &Events) -> (Vec<f64>, usize) {
    let dim = model.features.dim();
    let body_dim = dim.saturating_sub(1);
    let mut bodies = vec![0.0; events.customers.len() * body_dim];
    if body_dim > 0 {
        bodies
            .par_chunks_mut(body_dim)
            .enumerate()
            .for_each(|(c, out)| {
                let mut row = vec![0.0; dim];
                model
                    .features
                    .encode_training(&events.features, c, &mut row);
                out.copy_from_slice(&row[1..]);
            });
    }
    (bodies, body_dim)
}

/// Event `i` of `events` as a training event of `model` (resolved by `r`), if it has a
/// small / fit / large outcome and the model can place it.
fn train_event(model: &Predictor, events: &Events, r: &Resolved, i: usize) -> Option<TrainEvent> {
    let class = events.outcome.get(i)?.class()?;
    let (article, _) = model.event_view(events, r, i, &ScoreOptions::default())?;
    let ec = *events.customer.get(i)?;
    Some(TrainEvent {
        article,
        art: model.article_size_index(&article).unwrap_or(NONE),
        ec,
        customer: r.customer.get(ec as usize).copied().unwrap_or(NONE),
        class,
        state: *r.belief.get(ec as usize)?,
    })
}

/// The small / fit / large events of `events` resolved against `model`, grouped by
/// customer.
pub(super) fn train_events(model: &Predictor, events: &Events) -> Vec<TrainEvent> {
    let r: Resolved = model.resolve(events);
    let mut order: Vec<usize> = (0..events.len())
        .filter(|&i| events.outcome[i].class().is_some())
        .collect();
    order.sort_by_key(|&i| (events.customer[i], i));
    order
        .iter()
        .filter_map(|&i| train_event(model, events, &r, i))
        .collect()
}

/// [`count_tables`] of the training events among the rows of `events` where `keep` is
/// true (every row for `None`), streamed in row order instead of materialised (at 100M
/// events the list alone is ~9 GB). The same tables: counts are integers, and each
/// customer's label positions are summed in row order either way.
pub(super) fn count_tables_where(
    model: &Predictor,
    events: &Events,
    keep: Option<&[bool]>,
) -> StackTables {
    let r: Resolved = model.resolve(events);
    let mut t = empty_tables(model);
    for i in 0..events.len() {
        if keep.is_some_and(|k| k.get(i) != Some(&true)) {
            continue;
        }
        if let Some(e) = train_event(model, events, &r, i) {
            add_event(&mut t, model, &e);
        }
    }
    t
}

/// Count the training outcomes into tables aligned with the model.
pub(super) fn count_tables(model: &Predictor, evs: &[TrainEvent]) -> StackTables {
    let mut t = empty_tables(model);
    for e in evs {
        add_event(&mut t, model, e);
    }
    t
}

/// Zero count tables aligned with `model`.
fn empty_tables(model: &Predictor) -> StackTables {
    StackTables {
        global: [0; 3],
        category: vec![[0; 3]; model.categories.len()],
        brand: vec![[0; 3]; model.brands.len()],
        product: vec![[0; 3]; model.products.len()],
        article_size: vec![[0; 3]; model.article_sizes.len()],
        customer: vec![[0; 3]; model.customers.len()],
        customer_pos: vec![0.0; model.customers.len()],
    }
}

/// Count one training event.
fn add_event(t: &mut StackTables, model: &Predictor, e: &TrainEvent) {
    let bump = |table: &mut Vec<Counts>, i: u32, y: usize| {
        if i != NONE {
            if let Some(c) = table.get_mut(i as usize) {
                c[y] = c[y].saturating_add(1);
            }
        }
    };
    if let Some(g) = t.global.get_mut(e.class) {
        *g += 1;
    }
    bump(&mut t.category, e.article.category, e.class);
    bump(&mut t.brand, e.article.brand, e.class);
    bump(&mut t.product, e.article.product, e.class);
    bump(&mut t.article_size, e.art, e.class);
    bump(&mut t.customer, e.customer, e.class);
    if let Some(x) = t.customer_pos.get_mut(e.customer as usize) {
        *x += model.label_position(&e.article);
    }
}

/// Hash of a customer id (cross-validation groups).
pub(super) fn customer_hash(events: &Events, ec: u32) -> u64 {
    events
        .customers
        .get(ec as usize)
        .map_or(u64::from(ec), |n| {
            crate::model::artifact::fnv1a(n.as_bytes())
        })
}

pub(super) fn body_of(bodies: &[f64], dim: usize, ec: u32) -> &[f64] {
    let lo = ec as usize * dim;
    bodies.get(lo..lo + dim).unwrap_or(&[])
}

/// A stack input that no longer borrows the customer's body row.
pub(super) fn detach(x: &StackInput<'_>) -> StackInput<'static> {
    StackInput {
        probs: x.probs,
        gap: x.gap,
        gap_sd: x.gap_sd,
        prior_gap: x.prior_gap,
        choice_gap: x.choice_gap,
        label_pos: x.label_pos,
        smallest: x.smallest,
        largest: x.largest,
        levels: x.levels,
        customer: x.customer,
        body: &[],
    }
}

/// The out-of-sample inputs of the training events `events` (the events the structural
/// `model` was fitted on): cross-fitted when `params.cross_fit > 1`, leave-one-out
/// otherwise.
pub fn training_inputs(
    model: &Predictor,
    events: &Events,
    params: &StackParams,
) -> Result<TrainingInputs, ModelError> {
    if params.cross_fit > 1 {
        cross_fit_inputs(model, events, params)
    } else {
        Ok(loo_inputs(model, events, params))
    }
}

/// Cross-fitted inputs: the events are split into `cross_fit` random folds (by row); for
/// each, the structural model and the counts are refitted on the other folds and the
/// fold's events get exactly the inputs that model gives new events.
pub(super) fn cross_fit_inputs(
    model: &Predictor,
    events: &Events,
    params: &StackParams,
) -> Result<TrainingInputs, ModelError> {
    let k = params.cross_fit as u64;
    let (bodies, body_dim) = body_rows(model, events);
    let tables = count_tables_where(model, events, None);
    let sample = CustomerSample::new(events, params.max_rows);
    log_sample(&sample);
    let fold: Vec<u64> = (0..events.len())
        .map(|i| {
            let r = events.row.get(i).unwrap_or(i as u64);
            crate::model::artifact::fnv1a(&r.to_le_bytes()) % k
        })
        .collect();
    let mut out = TrainingInputs {
        tables,
        inputs: Vec::new(),
        offer: Vec::new(),
        classes: Vec::new(),
        group: Vec::new(),
        bodies,
        body_dim,
        customer: Vec::new(),
    };
    let opts = ScoreOptions::default();
    let free = ScoreOptions {
        choice_evidence: false,
    };
    let sm = &params.smoothing;
    for f in 0..k {
        let t0 = std::time::Instant::now();
        // the other folds' rows, read in place (no copy of the events): the same
        // refit as on a copy of them
        let train_k: Vec<bool> = fold.iter().map(|&x| x != f).collect();
        let model_k = {
            let data = FitData::from_events_where(events, Some(&train_k));
            Predictor::new(params.structural.fit_prepared(events, &data, &mut |_| {})?)?
        };
        let tables_k = count_tables_where(&model_k, events, Some(&train_k));
        drop(train_k);
        let global = global_rates(tables_k.global);
        let r = model_k.resolve(events);
        let bodies = &out.bodies;
        type Row = (StackInput<'static>, StackInput<'static>, u8, u32);
        // this fold's rows, in place
        let rows: Vec<Row> = (0..events.len())
            .into_par_iter()
            .with_min_len(1024)
            .filter_map(|i| {
                if *fold.get(i)? != f {
                    return None;
                }
                let class = events.outcome[i].class()?;
                let ec = events.customer[i];
                if !sample.contains(ec) {
                    return None;
                }
                let (a, belief) = model_k.event_view(events, &r, i, &opts)?;
                let (_, belief_free) = model_k.event_view(events, &r, i, &free)?;
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
                let body = body_of(bodies, body_dim, ec).to_vec();
                let sc = StackCustomer {
                    regime: Regime::Purchase,
                    rates: customer_rates(sm, global, counts, pos),
                    prior: model_k.prior_mean(&body),
                    body,
                };
                let levels = level_features(sm, global, &level_counts(&model_k, &tables_k, &a));
                let x = model_k.stack_input((belief, &a), levels, &sc);
                let o = model_k.stack_input((belief_free, &a), levels, &sc);
                Some((detach(&x), detach(&o), class as u8, ec))
            })
            .collect();
        for (x, o, y, ec) in rows {
            out.inputs.push(x);
            out.offer.push(o);
            out.classes.push(y);
            out.group.push(customer_hash(events, ec));
            out.customer.push(ec);
        }
        tracing::info!(
            target: "runsize::stack",
            fold = f,
            seconds = t0.elapsed().as_secs_f64(),
            "cross-fitted fold"
        );
    }
    Ok(out)
}

/// Pass 1 of the leave-one-out inputs for one event: the customer's leave-one-out belief
/// at the purchase and the event's derivatives with respect to the article's true size
/// and band at that belief.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pre {
    belief: SizeBelief,
    /// The belief without this purchase's choice (sizes on offer).
    belief_free: SizeBelief,
    t: f64,
    eta: f64,
    gt: f64,
    ht: f64,
    ge: f64,
    he: f64,
}

/// The customer at each of their training events without it (in order): one Newton
/// step back from the stored posterior, as the fit's leave-one-out pass takes it.
pub(super) fn customer_pass(model: &Predictor, evs: &[TrainEvent]) -> Vec<Pre> {
    let g = &model.globals;
    let Some(first) = evs.first() else {
        return Vec::new();
    };
    let st = first.state;
    let known = first.customer != NONE && model.known_customer(first.customer as usize).is_some();
    let hist_prec = 1.0 / (g.sd_choice * g.sd_choice + g.sd_drift * g.sd_drift).max(1e-9);
    let (hss, hsu, huu) = inv2(st.ss, st.su, st.uu);
    evs.iter()
        .map(|e| {
            let a = &e.article;
            let t = model.true_size(a);
            let eta = model.band(a);
            let xc = model.choice_centre(a);
            let loo = if known {
                let (ca, cb) = cut_points(g, st.s + st.u - t, eta, 1.0);
                let d = event_deriv(ca, cb, e.class);
                let (go, ho) = (d.grad(-g.w, -g.w), d.info(-g.w, -g.w));
                let (ls, lu) = ((hss - ho - hist_prec).max(1e-6), (huu - ho).max(1e-6));
                let lim = 0.999 * (ls * lu).sqrt();
                let lsu = (hsu - ho).clamp(-lim, lim);
                let (css, csu, cuu) = inv2(ls, lsu, lu);
                let gs = go + (st.s - xc) * hist_prec;
                CustomerState {
                    s: st.s + css * gs + csu * go,
                    u: st.u + csu * gs + cuu * go,
                    ss: css,
                    su: csu,
                    uu: cuu,
                }
            } else {
                st
            };
            let belief = model.at_purchase(&loo, Some(xc));
            // derivatives as the fit's article pass takes them (κ from the customer's variance)
            let kappa = uncertainty_scale(g.w, belief.var);
            let (ca, cb) = cut_points(g, belief.mean - t, eta, kappa);
            let d = event_deriv(ca, cb, e.class);
            let dt = (kappa * g.w, kappa * g.w);
            let half = kappa * g.h * eta.exp();
            let de = (half, -half);
            Pre {
                belief,
                belief_free: model.at_purchase(&loo, None),
                t,
                eta,
                gt: d.grad(dt.0, dt.1),
                ht: d.info(dt.0, dt.1),
                ge: d.grad(de.0, de.1),
                he: d.info(de.0, de.1),
            }
        })
        .collect()
}

/// Variance of the article's true size through which one of its events moved it: the
/// product-in-size offset's, plus the product offset's shrunk by the share the
/// product-in-size level passes on (`se_as² / sd_as²`). Falls back on the article's
/// total variance when the product-in-size is unknown.
pub(super) fn influence_var(model: &Predictor, a: &ArticleRef, art: u32) -> f64 {
    let v_as = model.globals.sd_article_size.powi(2).max(1e-12);
    let (Some(x), Some(p)) = (
        model.article_sizes.get(art as usize),
        model.products.get(a.product as usize),
    ) else {
        return model.article_var(a);
    };
    let se_as2 = x.offset.se * x.offset.se;
    let pass = (se_as2 / v_as).min(1.0);
    se_as2 + pass * pass * p.offset.se * p.offset.se
}

/// What the leave-one-out pass 2 reads.
pub(super) struct LooContext<'a> {
    model: &'a Predictor,
    tables: &'a StackTables,
    smoothing: &'a Smoothing,
    global: [f64; 3],
    bodies: &'a [f64],
    body_dim: usize,
}

pub(super) fn loo_at(table: &[Counts], i: u32, y: usize) -> Option<[f64; 3]> {
    if i == NONE {
        return None;
    }
    table.get(i as usize).map(|&c| leave_one_out(c, y))
}

/// Pass 2: the event's inputs without its own outcome in the article's size and band
/// (`band_var`: the product band's variance, 0 to leave the band) or in the counts.
pub(super) fn event_input(
    cx: &LooContext<'_>,
    e: &TrainEvent,
    x: &Pre,
    band_var: f64,
) -> (StackInput<'static>, StackInput<'static>) {
    let model = cx.model;
    let a = &e.article;
    let y = e.class;
    let mut t = x.t;
    let mut eta = x.eta;
    let v = influence_var(model, a, e.art);
    let r = (v * x.ht).min(MAX_SHARE);
    t += v * x.gt / (1.0 - r);
    let article_var = model.article_var(a) + v / (1.0 - r) - v;
    if band_var > 0.0 {
        let r = (band_var * x.he).min(MAX_SHARE);
        eta += band_var * x.ge / (1.0 - r);
    }
    let g = &model.globals;
    let (down, up) = model.neighbour_sizes(a);
    let counts = LevelCounts {
        category: loo_at(&cx.tables.category, a.category, y),
        brand: loo_at(&cx.tables.brand, a.brand, y),
        product: loo_at(&cx.tables.product, a.product, y),
        article_size: loo_at(&cx.tables.article_size, e.art, y),
        down: count_at(&cx.tables.article_size, down),
        up: count_at(&cx.tables.article_size, up),
    };
    let customer = loo_at(&cx.tables.customer, e.customer, y).unwrap_or([0.0; 3]);
    let pos = cx
        .tables
        .customer_pos
        .get(e.customer as usize)
        .map_or(0.0, |p| p - model.label_position(a));
    let (smallest, largest) = model.size_extreme(a);
    let levels = level_features(cx.smoothing, cx.global, &counts);
    let rates = customer_rates(cx.smoothing, cx.global, customer, pos);
    let prior = model.prior_mean(body_of(cx.bodies, cx.body_dim, e.ec));
    let input = |belief: SizeBelief| {
        let var = belief.var + article_var;
        let (ca, cb) = cut_points(g, belief.mean - t, eta, uncertainty_scale(g.w, var));
        StackInput {
            probs: probs(ca, cb),
            gap: belief.mean - t,
            gap_sd: var.sqrt(),
            prior_gap: prior - t,
            choice_gap: model.choice_centre(a) - t,
            label_pos: model.label_position(a),
            smallest,
            largest,
            levels,
            customer: rates,
            body: &[],
        }
    };
    (input(x.belief), input(x.belief_free))
}

/// Log the sample's rate when the learners see only part of the customers.
pub(super) fn log_sample(sample: &CustomerSample) {
    if sample.rate < 1.0 {
        tracing::info!(
            target: "runsize::stack",
            rate = sample.rate,
            "second stage learners on a sample of customers (see StackParams::max_rows)"
        );
    }
}

/// Leave-one-out inputs (see the module documentation).
pub(super) fn loo_inputs(
    model: &Predictor,
    events: &Events,
    params: &StackParams,
) -> TrainingInputs {
    let (bodies, body_dim) = body_rows(model, events);
    let evs = train_events(model, events);
    let tables = count_tables(model, &evs);
    // customer groups
    let mut bounds = Vec::new();
    let mut lo = 0;
    for k in 1..=evs.len() {
        if k == evs.len() || evs[k].ec != evs[lo].ec {
            bounds.push((lo, k));
            lo = k;
        }
    }
    let pre: Vec<Pre> = bounds
        .par_iter()
        .map(|&(lo, hi)| customer_pass(model, &evs[lo..hi]))
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect();
    // products' band information (the fit learns a band per product when any is non-zero)
    let learned_bands = model.products.iter().any(|p| p.eta != 0.0);
    let mut band_info = vec![0.0; model.products.len()];
    for (e, x) in evs.iter().zip(&pre) {
        if let Some(h) = band_info.get_mut(e.article.product as usize) {
            *h += x.he;
        }
    }
    let prior_prec = 1.0 / model.globals.sd_eta_product.powi(2).max(1e-12);
    let cx = LooContext {
        model,
        tables: &tables,
        smoothing: &params.smoothing,
        global: global_rates(tables.global),
        bodies: &bodies,
        body_dim,
    };
    let sample = CustomerSample::new(events, params.max_rows);
    log_sample(&sample);
    // the band information above sums over every event; the inputs only for the sample
    let (evs, pre): (Vec<TrainEvent>, Vec<Pre>) = if sample.rate < 1.0 {
        evs.into_iter()
            .zip(pre)
            .filter(|(e, _)| sample.contains(e.ec))
            .unzip()
    } else {
        (evs, pre)
    };
    let (inputs, offer): (Vec<StackInput<'static>>, Vec<StackInput<'static>>) = evs
        .par_iter()
        .zip(pre.par_iter())
        .map(|(e, x)| {
            let band_var = if learned_bands {
                band_info
                    .get(e.article.product as usize)
                    .map_or(0.0, |h| 1.0 / (h + prior_prec))
            } else {
                0.0
            };
            event_input(&cx, e, x, band_var)
        })
        .collect();
    let group = evs.iter().map(|e| customer_hash(events, e.ec)).collect();
    let classes = evs.iter().map(|e| e.class as u8).collect();
    let customer = evs.iter().map(|e| e.ec).collect();
    TrainingInputs {
        tables,
        inputs,
        offer,
        classes,
        group,
        bodies,
        body_dim,
        customer,
    }
}
