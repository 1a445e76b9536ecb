//! Drawing events: who buys, what, in which size, and what became of it. Each event is a
//! pure function of (seed, event index), so any range of events can be drawn alone.

use super::world::{system_scale, World};

/// Outcome values written to the `outcome` column, in a retailer's vocabulary. Index 0 is
/// a fit, 1 too small, 2 too large, 3..=5 returns for reasons unrelated to fit.
pub const OUTCOME_VALUES: [&str; 6] = [
    "kept",
    "returned_too_small",
    "returned_too_large",
    "returned_other",
    "damaged",
    "changed_mind",
];

/// First event time: 2023-01-01T00:00:00Z, in seconds since the Unix epoch.
pub const START_EPOCH_SECONDS: i64 = 1_672_531_200;
/// Events span two years (730 days), in seconds; event times grow with the event index.
pub const SPAN_SECONDS: i64 = 730 * 86_400;

/// A range of events in compact form.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    /// Customer id (1-based).
    pub(crate) customer: Vec<u64>,
    /// Product index into `World::products`.
    pub(crate) product: Vec<u32>,
    /// Label id into `World::labels`.
    pub(crate) label: Vec<u32>,
    /// Index into [`OUTCOME_VALUES`].
    pub(crate) outcome: Vec<u8>,
    /// Event time, seconds since the Unix epoch.
    pub(crate) time: Vec<i64>,
    /// Reported height (cm), if any.
    pub(crate) height: Vec<Option<f64>>,
    /// Reported weight (kg), if any.
    pub(crate) weight: Vec<Option<f64>>,
    /// Body shape level, if any.
    pub(crate) shape: Vec<Option<u8>>,
}

impl Chunk {
    /// Number of events.
    pub(crate) fn len(&self) -> usize {
        self.customer.len()
    }
}

/// Which acquired customer (0-based acquisition order) makes event `e`.
fn acquisition_index(world: &World, e: u64) -> u64 {
    let n = u128::from(world.events.max(1));
    let acquired = u128::from(world.acquired);
    let before = (u128::from(e) * acquired / n) as u64;
    let after = (u128::from(e + 1) * acquired / n) as u64;
    if after > before {
        // A new customer's first purchase.
        return before;
    }
    let pool = before.max(1);
    let p = &world.params;
    let u = world.event_stream.unit(e, 0);
    let f = p.repeat_floor;
    let fa = f.powf(p.repeat_exponent);
    let x = ((f + (1.0 - f) * u).powf(p.repeat_exponent) - fa) / (1.0 - fa);
    ((pool as f64 * x) as u64).min(pool - 1)
}

/// Draw events `start..end`.
pub(crate) fn draw_chunk(world: &World, start: u64, end: u64) -> Chunk {
    let n = end.saturating_sub(start) as usize;
    let mut chunk = Chunk {
        customer: Vec::with_capacity(n),
        product: Vec::with_capacity(n),
        label: Vec::with_capacity(n),
        outcome: Vec::with_capacity(n),
        time: Vec::with_capacity(n),
        height: Vec::with_capacity(n),
        weight: Vec::with_capacity(n),
        shape: Vec::with_capacity(n),
    };
    let p = &world.params;
    let s = world.event_stream;
    let total = u128::from(world.events.max(1));
    let last = world.products.len().saturating_sub(1);
    for e in start..end {
        let id = world.customer_id(acquisition_index(world, e));
        let cust = world.customer(id);

        let u = s.unit(e, 1);
        let pi = world.cumulative.partition_point(|&c| c < u).min(last);
        let Some(product) = world.products.get(pi) else {
            continue;
        };
        let brand_offset = world.brands.get(product.brand).map_or(0.0, |b| b.offset);
        let sc = system_scale(product.system);

        // The shopper aims at their size, partly corrected for the brand's reputation.
        let target = cust.size - p.reputation_k * brand_offset + p.choice_noise_sd * s.normal(e, 2);
        let k = ((sc.scale * target).round() as i64)
            .clamp(i64::from(product.lo), i64::from(product.hi));
        let article = k as f64 / sc.scale + brand_offset + product.offset;
        let gap = cust.size - article;
        let z = p.slope * gap + s.logistic(e, 4);
        let outcome = if s.unit(e, 5) < p.other_return_rate {
            3 + ((s.unit(e, 6) * 3.0) as u8).min(2)
        } else if z > p.threshold {
            1
        } else if z < -p.threshold {
            2
        } else {
            0
        };
        let row = usize::try_from(k - i64::from(product.lo)).unwrap_or(0);
        let label = product
            .labels
            .get(row)
            .and_then(|r| r.get(cust.length))
            .copied()
            .unwrap_or(0);
        let offset = (u128::from(e) * SPAN_SECONDS as u128 / total) as i64;

        chunk.customer.push(id);
        chunk.product.push(pi as u32);
        chunk.label.push(label);
        chunk.outcome.push(outcome);
        chunk.time.push(START_EPOCH_SECONDS + offset);
        chunk.height.push(cust.height);
        chunk.weight.push(cust.weight);
        chunk.shape.push(cust.shape);
    }
    chunk
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::world::{ModelParams, WorldSpec};

    fn world(events: u64, customers: u64) -> World {
        World::build(&WorldSpec {
            params: &ModelParams::default(),
            seed: 11,
            events,
            brands: 10,
            customers,
            products_per_brand: 20,
        })
        .unwrap()
    }

    #[test]
    fn chunks_do_not_depend_on_boundaries() {
        let w = world(10_000, 5_000);
        let whole = draw_chunk(&w, 0, 10_000);
        let a = draw_chunk(&w, 0, 3_333);
        let b = draw_chunk(&w, 3_333, 10_000);
        assert_eq!(whole.len(), 10_000);
        let joined: Vec<u64> = a.customer.iter().chain(&b.customer).copied().collect();
        assert_eq!(joined, whole.customer);
        let joined: Vec<u8> = a.outcome.iter().chain(&b.outcome).copied().collect();
        assert_eq!(joined, whole.outcome);
        let joined: Vec<u32> = a.label.iter().chain(&b.label).copied().collect();
        assert_eq!(joined, whole.label);
    }

    #[test]
    fn every_customer_is_acquired_once_in_order() {
        let w = world(1_000, 400);
        let mut firsts = Vec::new();
        let mut prev = 0;
        for e in 0..1_000u64 {
            let after = (e + 1) * 400 / 1_000;
            if after > prev {
                firsts.push(acquisition_index(&w, e));
            }
            prev = after;
            assert!(acquisition_index(&w, e) < 400);
        }
        assert_eq!(firsts, (0..400).collect::<Vec<_>>());
    }

    #[test]
    fn times_increase_and_span_two_years() {
        let w = world(1_000, 500);
        let c = draw_chunk(&w, 0, 1_000);
        assert_eq!(c.time[0], START_EPOCH_SECONDS);
        assert!(c.time.windows(2).all(|t| t[0] <= t[1]));
        let last = c.time[999] - START_EPOCH_SECONDS;
        assert!(last < SPAN_SECONDS && last > SPAN_SECONDS * 99 / 100);
    }

    #[test]
    fn outcome_shares_are_in_range() {
        let w = world(100_000, 50_000);
        let c = draw_chunk(&w, 0, 100_000);
        let mut counts = [0usize; 6];
        for &o in &c.outcome {
            counts[o as usize] += 1;
        }
        let share = |i: usize| counts[i] as f64 / 100_000.0;
        let fit_classes = (counts[0] + counts[1] + counts[2]) as f64;
        let fit_share = counts[0] as f64 / fit_classes;
        assert!((0.62..0.80).contains(&fit_share), "fit share {fit_share}");
        assert!(share(1) > 0.06 && share(2) > 0.06, "{counts:?}");
        let other = share(3) + share(4) + share(5);
        assert!((other - 0.06).abs() < 0.006, "other {other}");
    }

    #[test]
    fn products_follow_a_heavy_tail() {
        let w = world(50_000, 25_000);
        let c = draw_chunk(&w, 0, 50_000);
        let mut counts = vec![0usize; w.products.len()];
        for &p in &c.product {
            counts[p as usize] += 1;
        }
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // The most popular product sells far more than the median one.
        let median = counts[counts.len() / 2].max(1);
        assert!(counts[0] > 10 * median, "{} vs {}", counts[0], median);
    }
}
