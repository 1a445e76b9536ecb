//! The second stage's training inputs: every training event's out-of-sample inputs
//! (cross-fitted, [`super::cross_fit`], or leave-one-out, [`super::loo`]), the count
//! tables, and the customer sample the learners are fitted on.

use super::stored::StoredInput;
use crate::data::schema::{Events, NONE};
use crate::model::fitdata::FitData;
use crate::model::math::prefetch;
use crate::model::predict::{ArticleRef, CustomerState};
use crate::model::predictor::Predictor;
use crate::model::score::{Resolved, ScoreOptions};
use crate::model::stack::{Counts, StackInput, StackTables};
use rayon::prelude::*;

/// One training event's model lookups.
#[derive(Clone, Copy, Debug)]
pub(super) struct TrainEvent {
    pub(super) article: ArticleRef,
    /// Model product-in-size index or NONE.
    pub(super) art: u32,
    /// Events customer index.
    pub(super) ec: u32,
    /// Row in the events table.
    pub(super) row: u32,
    /// Model customer index or NONE.
    pub(super) customer: u32,
    pub(super) class: usize,
    /// Stored state of the customer (their prior when the model has no customer table).
    pub(super) state: CustomerState,
}

/// Which customers' events the learners are fitted on ([`StackParams::max_rows`](super::StackParams::max_rows)).
#[derive(Clone, Debug)]
pub struct CustomerSample {
    /// Share of customers kept, in (0, 1]; 1 keeps every customer.
    pub rate: f64,
    /// Per events customer: its row among the kept customers (their body rows), or
    /// `NONE` when not kept (empty when the rate is 1: every customer is kept, in order).
    row: Vec<u32>,
    /// Number of customers kept.
    kept: usize,
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
                row: Vec::new(),
                kept: events.customers.len(),
            };
        }
        let rate = max_rows as f64 / fit as f64;
        let keep: Vec<bool> = (0..events.customers.len())
            .into_par_iter()
            .with_min_len(4096)
            .map(|c| hash_in_sample(customer_hash(events, c as u32), rate))
            .collect();
        let mut kept = 0u32;
        let row = keep
            .into_iter()
            .map(|k| {
                if k {
                    kept += 1;
                    kept - 1
                } else {
                    NONE
                }
            })
            .collect();
        CustomerSample {
            rate,
            row,
            kept: kept as usize,
        }
    }

    /// Whether the learners see the events of events customer `ec` (an index into
    /// `Events::customers`).
    pub fn contains(&self, ec: u32) -> bool {
        self.body_row(ec).is_some()
    }

    /// Events customer `ec`'s row among the kept customers (`body_rows`), if kept.
    pub fn body_row(&self, ec: u32) -> Option<u32> {
        if self.row.is_empty() {
            return ((ec as usize) < self.kept).then_some(ec);
        }
        self.row.get(ec as usize).copied().filter(|&r| r != NONE)
    }

    /// The kept customers (events customer indices) in the order of their rows:
    /// `kept_customers()[r]` is the customer whose [`CustomerSample::body_row`] is `r`.
    pub fn kept_customers(&self) -> Vec<u32> {
        if self.row.is_empty() {
            return (0..self.kept as u32).collect();
        }
        let mut out = vec![NONE; self.kept];
        for (ec, &r) in self.row.iter().enumerate() {
            if let Some(slot) = out.get_mut(r as usize) {
                *slot = ec as u32;
            }
        }
        out
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
    /// Inputs per event in the [`Regime::Purchase`](crate::model::stack::Regime::Purchase) regime, stored in `f32`
    /// ([`TrainingInputs::purchase_input`] reads one back; body rows left out: see
    /// `bodies`).
    pub inputs: Vec<StoredInput>,
    /// Inputs per event in the [`Regime::Offer`](crate::model::stack::Regime::Offer) regime (no choice evidence):
    /// only what differs from the purchase input ([`TrainingInputs::offer_input`]
    /// rebuilds them; the learners' offer design reads them in place, so no second copy
    /// of the inputs is ever made).
    pub offer: Vec<OfferView>,
    /// Class per event.
    pub classes: Vec<u8>,
    /// Cross-validation group per event (hash of the customer id).
    pub group: Vec<u64>,
    /// Body rows of the sampled customers, `body_dim` per customer (see `customer`).
    pub bodies: Vec<f64>,
    /// Length of a body row.
    pub body_dim: usize,
    /// Row of `bodies` per event (the event's customer among the sampled ones).
    pub customer: Vec<u32>,
    /// Row of `events` per event (its index in the events table).
    pub event: Vec<u32>,
}

/// The part of an event's offer-regime input that differs from its purchase input: what
/// depends on the customer's belief (the rest is the same article, counts and customer).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OfferView {
    /// Structural probabilities `[small, fit, large]` without the purchase's own choice.
    pub probs: [f64; 3],
    /// Mean gap customer − article (size steps).
    pub gap: f64,
    /// Standard deviation of the gap.
    pub gap_sd: f64,
}

impl OfferView {
    /// The belief-dependent part of `x`.
    pub fn of(x: &StackInput<'_>) -> Self {
        OfferView {
            probs: x.probs,
            gap: x.gap,
            gap_sd: x.gap_sd,
        }
    }

    /// The full offer input: the purchase input `x` with this view's fields.
    pub fn onto<'a>(&self, x: &StackInput<'a>) -> StackInput<'a> {
        StackInput {
            probs: self.probs,
            gap: self.gap,
            gap_sd: self.gap_sd,
            ..*x
        }
    }
}

impl TrainingInputs {
    /// Row `i`'s purchase-regime input (without its body row).
    pub fn purchase_input(&self, i: usize) -> Option<StackInput<'static>> {
        self.inputs.get(i).map(StoredInput::input)
    }

    /// Row `i`'s offer-regime input: its purchase input with the offer view's
    /// belief-dependent fields.
    pub fn offer_input(&self, i: usize) -> Option<StackInput<'static>> {
        Some(self.offer.get(i)?.onto(&self.purchase_input(i)?))
    }
}

/// Body rows of the customers of `events` kept by `sample` (row
/// [`CustomerSample::body_row`]) straight from the training columns (the encoder's own
/// level codes), flat, and their length. Only the sample's customers: at 10M customers
/// and a handful of body features every customer's row would be most of a gigabyte.
pub(super) fn body_rows(
    model: &Predictor,
    events: &Events,
    sample: &CustomerSample,
) -> (Vec<f64>, usize) {
    let dim = model.features.dim();
    let body_dim = dim.saturating_sub(1);
    let mut bodies = vec![0.0; sample.kept * body_dim];
    if body_dim > 0 {
        let kept: Vec<u32> = (0..events.customers.len() as u32)
            .filter(|&c| sample.contains(c))
            .collect();
        bodies
            .par_chunks_mut(body_dim)
            .zip(kept.par_iter())
            .for_each(|(out, &c)| {
                let mut row = vec![0.0; dim];
                model
                    .features
                    .encode_training(&events.features, c as usize, &mut row);
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
        row: i as u32,
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

/// [`count_tables`] of the training events of `events` (resolved by `r`), streamed in
/// row order instead of materialised (at 100M events the list alone is ~9 GB). The same
/// tables: counts are integers, and each customer's label positions are summed in row
/// order either way. The lookups run in parallel over blocks of [`COUNT_BLOCK`] rows (no
/// customer belief: only the article is needed), the counting in row order.
pub(super) fn count_tables_events(model: &Predictor, events: &Events, r: &Resolved) -> StackTables {
    let mut t = empty_tables(model);
    let mut block: Vec<Option<Counted>> = Vec::with_capacity(COUNT_BLOCK.min(events.len()));
    for lo in (0..events.len()).step_by(COUNT_BLOCK) {
        let hi = (lo + COUNT_BLOCK).min(events.len());
        (lo..hi)
            .into_par_iter()
            .with_min_len(4096)
            .map(|i| counted(model, events, r, i))
            .collect_into_vec(&mut block);
        add_block(&mut t, &block);
    }
    t
}

/// Rows ahead whose table entries [`add_block`] prefetches.
const COUNT_PREFETCH: usize = 16;

/// Count a block of events in row order: the customer tables (the big, randomly read
/// ones: 10M customers are 200 MB) in one task and the article tables in another, each
/// prefetching the entries a few rows ahead. The same sums as counting row by row.
fn add_block(t: &mut StackTables, block: &[Option<Counted>]) {
    let StackTables {
        global,
        category,
        brand,
        product,
        article_size,
        customer,
        customer_pos,
    } = t;
    let ahead = |j: usize| block.get(j + COUNT_PREFETCH).copied().flatten();
    rayon::join(
        || {
            for (j, e) in block.iter().enumerate() {
                if let Some(n) = ahead(j) {
                    if let Some(x) = customer.get(n.customer as usize) {
                        prefetch(x);
                    }
                    if let Some(x) = customer_pos.get(n.customer as usize) {
                        prefetch(x);
                    }
                }
                let Some(e) = e else { continue };
                bump(customer, e.customer, e.class);
                if let Some(x) = customer_pos.get_mut(e.customer as usize) {
                    *x += e.pos;
                }
            }
        },
        || {
            for (j, e) in block.iter().enumerate() {
                if let Some(x) = ahead(j).and_then(|n| article_size.get(n.art as usize)) {
                    prefetch(x);
                }
                let Some(e) = e else { continue };
                if let Some(g) = global.get_mut(usize::from(e.class)) {
                    *g += 1;
                }
                bump(category, e.category, e.class);
                bump(brand, e.brand, e.class);
                bump(product, e.product, e.class);
                bump(article_size, e.art, e.class);
            }
        },
    );
}

/// Add one outcome of class `y` to row `i` of `table` (none for [`NONE`]).
fn bump(table: &mut [Counts], i: u32, y: u8) {
    if i != NONE {
        if let Some(c) = table.get_mut(i as usize) {
            let y = usize::from(y);
            c[y] = c[y].saturating_add(1);
        }
    }
}

/// [`count_tables_events`] of every fit event, read from the fit data `data` built from
/// `events` (whose per-event columns may since have been released: only dictionaries,
/// size labels and features are read): each article-size is looked up once, and the
/// events are counted customer by customer. The same tables: a customer's label
/// positions are summed in row order either way (fit data keep each customer's events
/// in row order), and counts are integers.
pub(super) fn count_tables_fit_data(
    model: &Predictor,
    events: &Events,
    data: &FitData,
) -> StackTables {
    count_tables_grouped(model, events, (data, &model.resolve(events)), None)
}

/// [`count_tables_fit_data`] with the model's lookups `r` of `events`, keeping customer
/// counts only for the customers `keep_customer` accepts (event dictionary index;
/// `None`: all): a cross-fitting fold counts its tables from the fit data of its
/// training events, one lookup per article-size instead of one per event.
pub(super) fn count_tables_grouped(
    model: &Predictor,
    events: &Events,
    (data, r): (&FitData, &Resolved),
    keep_customer: Option<&(dyn Fn(u32) -> bool + Sync)>,
) -> StackTables {
    let arts: Vec<Option<Counted>> = data
        .article_sizes
        .par_iter()
        .map(|key| {
            let a = Predictor::key_article(events, r, key)?;
            Some(Counted {
                category: a.category,
                brand: a.brand,
                product: a.product,
                art: model.article_size_index(&a).unwrap_or(NONE),
                customer: NONE,
                class: 0,
                pos: model.label_position(&a),
            })
        })
        .collect();
    let mut t = empty_tables(model);
    let mut block: Vec<Option<Counted>> = Vec::with_capacity(COUNT_BLOCK);
    let customers = data.customers().min(r.customer.len());
    for c in 0..customers {
        let customer = match keep_customer {
            Some(keep) if !keep(c as u32) => NONE,
            _ => r.customer.get(c).copied().unwrap_or(NONE),
        };
        let (lo, hi) = (data.cust_start[c] as usize, data.cust_start[c + 1] as usize);
        for (&a, &y) in data.ev_as[lo..hi].iter().zip(&data.ev_y[lo..hi]) {
            block.push(arts.get(a as usize).copied().flatten().map(|e| Counted {
                customer,
                class: y,
                ..e
            }));
        }
        if block.len() >= COUNT_BLOCK {
            add_block(&mut t, &block);
            block.clear();
        }
    }
    add_block(&mut t, &block);
    t
}

/// Rows whose lookups [`count_tables_events`] computes at once (32 bytes each).
const COUNT_BLOCK: usize = 1 << 20;

/// What counting one training event needs: its keys in the model and its class.
#[derive(Clone, Copy, Debug)]
struct Counted {
    category: u32,
    brand: u32,
    product: u32,
    art: u32,
    customer: u32,
    class: u8,
    /// The label's position on the common scale.
    pos: f64,
}

/// Event `i` as a [`Counted`] training event of `model`, if it has a small / fit / large
/// outcome and the model can place it (the events [`train_event`] keeps).
fn counted(model: &Predictor, events: &Events, r: &Resolved, i: usize) -> Option<Counted> {
    let class = events.outcome.get(i)?.class()?;
    let article = model.event_article(events, r, i)?;
    let ec = *events.customer.get(i)?;
    r.belief.get(ec as usize)?;
    Some(Counted {
        category: article.category,
        brand: article.brand,
        product: article.product,
        art: model.article_size_index(&article).unwrap_or(NONE),
        customer: r.customer.get(ec as usize).copied().unwrap_or(NONE),
        class: class as u8,
        pos: model.label_position(&article),
    })
}

/// Count the training outcomes into tables aligned with the model.
pub(super) fn count_tables(model: &Predictor, evs: &[TrainEvent]) -> StackTables {
    let mut t = empty_tables(model);
    for chunk in evs.chunks(COUNT_BLOCK) {
        let block: Vec<Option<Counted>> = chunk
            .iter()
            .map(|e| {
                Some(Counted {
                    category: e.article.category,
                    brand: e.article.brand,
                    product: e.article.product,
                    art: e.art,
                    customer: e.customer,
                    class: e.class as u8,
                    pos: model.label_position(&e.article),
                })
            })
            .collect();
        add_block(&mut t, &block);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_sample_keeps_its_share() {
        // FNV-1a hashes of customer-like ids, as the sample sees them
        let hashes: Vec<u64> = (0..100_000)
            .map(|i| crate::model::artifact::fnv1a(format!("C{i:07}").as_bytes()))
            .collect();
        for rate in [0.01, 0.1, 0.3, 0.77] {
            let kept = hashes.iter().filter(|&&h| hash_in_sample(h, rate)).count();
            let share = kept as f64 / hashes.len() as f64;
            // binomial sd at 100k draws is at most 0.0016
            assert!((share - rate).abs() < 0.006, "rate {rate}: kept {share}");
            // independent of the cross-validation folds (the hash's low bits)
            let fold0 = hashes
                .iter()
                .filter(|&&h| h % 5 == 0 && hash_in_sample(h, rate))
                .count();
            let fold_share = fold0 as f64 / kept as f64;
            assert!(
                (fold_share - 0.2).abs() < 0.03,
                "rate {rate}: fold 0 {fold_share}"
            );
        }
        assert!(hashes.iter().all(|&h| hash_in_sample(h, 1.0)));
        assert!(!hashes.iter().any(|&h| hash_in_sample(h, 0.0)));
    }

    #[test]
    fn kept_customers_invert_the_body_rows() {
        let sample = CustomerSample {
            rate: 0.5,
            row: vec![NONE, 0, NONE, 1, NONE],
            kept: 2,
        };
        assert_eq!(sample.kept_customers(), vec![1, 3]);
        for (r, &ec) in sample.kept_customers().iter().enumerate() {
            assert_eq!(sample.body_row(ec), Some(r as u32));
        }
        // every customer kept: rows are the customers themselves
        let all = CustomerSample {
            rate: 1.0,
            row: Vec::new(),
            kept: 3,
        };
        assert_eq!(all.kept_customers(), vec![0, 1, 2]);
    }
}
