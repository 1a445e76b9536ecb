//! Leave-one-out training inputs (`cross_fit` = 0): each event sees the customer, the
//! article and the counts without its own outcome, by one Newton step back.

use super::inputs::{
    body_of, body_rows, count_tables, customer_hash, log_sample, train_events, CustomerSample,
    OfferView, TrainEvent, TrainingInputs,
};
use super::params::StackParams;
use super::stored::StoredInput;
use crate::data::schema::{Events, NONE};
use crate::model::math::{event_deriv, probs, uncertainty_scale};
use crate::model::predict::{cut_points, inv2, ArticleRef, CustomerState, SizeBelief};
use crate::model::predictor::Predictor;
use crate::model::stack::{
    count_at, customer_rates, global_rates, leave_one_out, level_features, Counts, LevelCounts,
    Smoothing, StackInput, StackTables,
};
use rayon::prelude::*;

/// Most of its variance one event may remove from an article (keeps the step stable).
const MAX_SHARE: f64 = 0.5;

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
    /// The learners' customers (their rows of `bodies`).
    sample: &'a CustomerSample,
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
    let row = cx.sample.body_row(e.ec).unwrap_or(NONE);
    let prior = model.prior_mean(body_of(cx.bodies, cx.body_dim, row));
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

/// Leave-one-out inputs (see the module documentation).
pub(super) fn loo_inputs(
    model: &Predictor,
    events: &Events,
    params: &StackParams,
) -> TrainingInputs {
    let sample = CustomerSample::new(events, params.max_rows);
    log_sample(&sample);
    let (bodies, body_dim) = body_rows(model, events, &sample);
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
        sample: &sample,
    };
    // the band information above sums over every event; the inputs only for the sample
    let (evs, pre): (Vec<TrainEvent>, Vec<Pre>) = if sample.rate < 1.0 {
        evs.into_iter()
            .zip(pre)
            .filter(|(e, _)| sample.contains(e.ec))
            .unzip()
    } else {
        (evs, pre)
    };
    let (inputs, offer): (Vec<StoredInput>, Vec<OfferView>) = evs
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
            let (x, o) = event_input(&cx, e, x, band_var);
            (StoredInput::of(&x), OfferView::of(&o))
        })
        .collect();
    let group = evs.iter().map(|e| customer_hash(events, e.ec)).collect();
    let classes = evs.iter().map(|e| e.class as u8).collect();
    let customer = evs
        .iter()
        .map(|e| sample.body_row(e.ec).unwrap_or(NONE))
        .collect();
    let event = evs.iter().map(|e| e.row).collect();
    TrainingInputs {
        event,
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
