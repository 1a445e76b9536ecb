//! Compact fitting data: fit events grouped by customer (CSR), each a 4-byte
//! article-size key and a 1-byte class, with small tables describing article-sizes.
//! This is what every fitting pass streams over: 5 bytes per event.

use crate::data::schema::{Events, NONE};
use foldhash::fast::FixedState;
use std::collections::HashMap;

/// Article-size keys by their four indices packed into one `u128` (one cheap hash per
/// fit event instead of four).
type KeyIndex = HashMap<u128, u32, FixedState>;

/// One article in one size: the unit outcomes are aggregated over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArticleSizeKey {
    /// Product index (events dictionary) or [`NONE`].
    pub product: u32,
    /// Brand index or [`NONE`].
    pub brand: u32,
    /// Category index or [`NONE`].
    pub category: u32,
    /// Size label index.
    pub label: u32,
}

impl ArticleSizeKey {
    /// The four indices in one `u128`.
    fn packed(&self) -> u128 {
        u128::from(self.product)
            | u128::from(self.brand) << 32
            | u128::from(self.category) << 64
            | u128::from(self.label) << 96
    }
}

/// Number the article-size keys of `slots` (one per event) in order of first
/// appearance: `key_of(i, slots[i])` gives event `i`'s key, `None` to leave it out, and
/// `slots[i]` becomes its key's number (`NONE` when left out). The keys come back in
/// their numbering. Contiguous blocks are numbered in parallel, each by its own index,
/// then merged in block order: the numbering is the sequential one for any number of
/// threads (a sequential hash pass took ~8 s of every 100M-event fit's preparation).
fn index_keys<F>(slots: &mut [u32], key_of: F) -> Vec<ArticleSizeKey>
where
    F: Fn(usize, u32) -> Option<ArticleSizeKey> + Sync,
{
    use rayon::prelude::*;
    let block = slots
        .len()
        .div_ceil(rayon::current_num_threads().max(1))
        .max(1 << 16);
    // 1. each block numbers its own keys
    let locals: Vec<Vec<ArticleSizeKey>> = slots
        .par_chunks_mut(block)
        .enumerate()
        .map(|(b, chunk)| {
            let mut index = KeyIndex::default();
            let mut keys = Vec::new();
            for (j, slot) in chunk.iter_mut().enumerate() {
                let Some(key) = key_of(b * block + j, *slot) else {
                    *slot = NONE;
                    continue;
                };
                let next = keys.len() as u32;
                *slot = *index.entry(key.packed()).or_insert_with(|| {
                    keys.push(key);
                    next
                });
            }
            keys
        })
        .collect();
    // 2. the blocks' keys in block order: each block's numbers in the global numbering
    let mut index = KeyIndex::default();
    let mut keys = Vec::new();
    let maps: Vec<Vec<u32>> = locals
        .iter()
        .map(|local| {
            local
                .iter()
                .map(|key| {
                    let next = keys.len() as u32;
                    *index.entry(key.packed()).or_insert_with(|| {
                        keys.push(*key);
                        next
                    })
                })
                .collect()
        })
        .collect();
    drop(index);
    // 3. renumber
    slots
        .par_chunks_mut(block)
        .zip(&maps)
        .for_each(|(chunk, map)| {
            for s in chunk.iter_mut().filter(|s| **s != NONE) {
                *s = map.get(*s as usize).copied().unwrap_or(NONE);
            }
        });
    keys
}

/// Fit events grouped by customer.
#[derive(Clone, Debug, Default)]
pub struct FitData {
    /// `cust_start[c]..cust_start[c+1]` are customer `c`'s events.
    pub cust_start: Vec<u64>,
    /// Article-size index per event, grouped by customer.
    pub ev_as: Vec<u32>,
    /// Class per event (0 small, 1 fit, 2 large), grouped by customer.
    pub ev_y: Vec<u8>,
    /// Article-size table.
    pub article_sizes: Vec<ArticleSizeKey>,
    /// Fit events per article-size.
    pub as_count: Vec<u64>,
}

impl FitData {
    /// Build from ingested events; outcomes other than small / fit / large are left out.
    pub fn from_events(events: &Events) -> FitData {
        Self::from_events_where(events, None)
    }

    /// [`FitData::from_events`] of the rows `i` where `keep(i)` is true (every row for `None`):
    /// the same data as of a copy of those rows, without the copy (the second stage's
    /// cross-fitting refits leave one fold out this way).
    pub fn from_events_where(
        events: &Events,
        keep: Option<&(dyn Fn(usize) -> bool + Sync)>,
    ) -> FitData {
        let n_customers = events.customers.len();
        let mut as_of_event = vec![NONE; events.len()];
        let article_sizes = index_keys(&mut as_of_event, |i, _| {
            if events.outcome[i].class().is_none() || keep.is_some_and(|k| !k(i)) {
                return None;
            }
            Some(ArticleSizeKey {
                product: events.product[i],
                brand: events.brand[i],
                category: events.category[i],
                label: events.size[i],
            })
        });
        let mut counts = vec![0u64; n_customers + 1];
        for (&a, &c) in as_of_event.iter().zip(&events.customer) {
            let c = c as usize;
            if a != NONE && c < n_customers {
                counts[c + 1] += 1;
            }
        }
        for c in 0..n_customers {
            counts[c + 1] += counts[c];
        }
        let total = counts[n_customers] as usize;
        let mut cursor = counts.clone();
        let mut ev_as = vec![0u32; total];
        let mut ev_y = vec![0u8; total];
        let mut as_count = vec![0u64; article_sizes.len()];
        for (i, &a) in as_of_event.iter().enumerate() {
            if a == NONE {
                continue;
            }
            let c = events.customer[i] as usize;
            if c >= n_customers {
                continue;
            }
            let pos = cursor[c] as usize;
            cursor[c] += 1;
            ev_as[pos] = a;
            ev_y[pos] = events.outcome[i] as u8;
            as_count[a as usize] += 1;
        }
        FitData {
            cust_start: counts,
            ev_as,
            ev_y,
            article_sizes,
            as_count,
        }
        .by_popularity()
    }

    /// [`FitData::from_events`] for a table that is not needed afterwards: the same result,
    /// built while the per-event columns are freed one by one (the size column's buffer is
    /// reused for the article-size index of each event), so the peak is about the event table
    /// itself instead of the table plus the fit data plus temporaries. Leaves `events` as
    /// [`Events::release_event_columns`] does: outcomes, dictionaries, size labels, features.
    pub fn from_events_releasing(events: &mut Events) -> FitData {
        let n_customers = events.customers.len();
        // 1. Article-size index per fit event (NONE for others), in order of first appearance.
        let mut as_of_event = std::mem::take(&mut events.size);
        let cols = (
            &events.outcome,
            &events.product,
            &events.brand,
            &events.category,
        );
        let article_sizes = index_keys(&mut as_of_event, |i, label| {
            let (Some(outcome), Some(&product), Some(&brand), Some(&category)) =
                (cols.0.get(i), cols.1.get(i), cols.2.get(i), cols.3.get(i))
            else {
                return None;
            };
            outcome.class()?;
            Some(ArticleSizeKey {
                product,
                brand,
                category,
                label,
            })
        });
        let customer = std::mem::take(&mut events.customer);
        events.release_event_columns();
        // 2. Events per customer, as start offsets.
        let mut cust_start = vec![0u64; n_customers + 1];
        for (&c, &a) in customer.iter().zip(&as_of_event) {
            if a != NONE {
                if let Some(n) = cust_start
                    .get_mut(c as usize + 1)
                    .filter(|_| (c as usize) < n_customers)
                {
                    *n += 1;
                }
            }
        }
        for c in 0..n_customers {
            let prev = cust_start.get(c).copied().unwrap_or(0);
            if let Some(x) = cust_start.get_mut(c + 1) {
                *x += prev;
            }
        }
        // 3. Place events; `cust_start[c]` serves as customer c's cursor and ends as the start
        //    of c + 1, so shift it back afterwards (no second offsets array).
        let total = cust_start.get(n_customers).copied().unwrap_or(0) as usize;
        let mut ev_as = vec![0u32; total];
        let mut ev_y = vec![0u8; total];
        let mut as_count = vec![0u64; article_sizes.len()];
        for (i, (&c, &a)) in customer.iter().zip(&as_of_event).enumerate() {
            if a == NONE || c as usize >= n_customers {
                continue;
            }
            let Some(cursor) = cust_start.get_mut(c as usize) else {
                continue;
            };
            let pos = *cursor as usize;
            *cursor += 1;
            if let (Some(x), Some(y), Some(o)) =
                (ev_as.get_mut(pos), ev_y.get_mut(pos), events.outcome.get(i))
            {
                *x = a;
                *y = *o as u8;
            }
            if let Some(k) = as_count.get_mut(a as usize) {
                *k += 1;
            }
        }
        for c in (1..=n_customers).rev() {
            let prev = cust_start.get(c - 1).copied().unwrap_or(0);
            if let Some(x) = cust_start.get_mut(c) {
                *x = prev;
            }
        }
        if let Some(first) = cust_start.first_mut() {
            *first = 0;
        }
        FitData {
            cust_start,
            ev_as,
            ev_y,
            article_sizes,
            as_count,
        }
        .by_popularity()
    }

    /// Renumber article-sizes by falling event count (ties: first appearance). The
    /// passes read and write one row per article-size for every event; with popular
    /// ones first, the rows most events touch share cache lines and pages.
    fn by_popularity(mut self) -> FitData {
        let n = self.article_sizes.len();
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_by_key(|&j| std::cmp::Reverse(self.as_count.get(j as usize).copied()));
        let mut new_of_old = vec![0u32; n];
        for (new, &old) in order.iter().enumerate() {
            if let Some(x) = new_of_old.get_mut(old as usize) {
                *x = new as u32;
            }
        }
        for a in &mut self.ev_as {
            *a = new_of_old.get(*a as usize).copied().unwrap_or(NONE);
        }
        let pick = |j: &u32| *j as usize;
        self.article_sizes = order
            .iter()
            .filter_map(|j| self.article_sizes.get(pick(j)).copied())
            .collect();
        self.as_count = order
            .iter()
            .filter_map(|j| self.as_count.get(pick(j)).copied())
            .collect();
        self
    }

    /// Number of fit events.
    pub fn len(&self) -> usize {
        self.ev_as.len()
    }

    /// True when there are no fit events.
    pub fn is_empty(&self) -> bool {
        self.ev_as.is_empty()
    }

    /// Number of customers (including ones with no fit events).
    pub fn customers(&self) -> usize {
        self.cust_start.len().saturating_sub(1)
    }

    /// Split customers into contiguous ranges of roughly `target` events each; the
    /// ranges depend only on the data, never on the thread count, so sums over them
    /// are reproducible.
    pub fn customer_chunks(&self, target: usize) -> Vec<(usize, usize)> {
        let target = target.max(1) as u64;
        let n = self.customers();
        let mut chunks = Vec::new();
        let mut start = 0usize;
        while start < n {
            let goal = self.cust_start[start] + target;
            // first customer whose start reaches the goal
            let mut end = self.cust_start.partition_point(|&s| s < goal);
            end = end.clamp(start + 1, n);
            chunks.push((start, end));
            start = end;
        }
        chunks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::schema::{Dict, Outcome};

    #[test]
    fn key_numbering_is_first_appearance_for_any_thread_count() {
        // 300k events over up to 997 x 3 keys, every 7th left out: four blocks of
        // 65,536 and a short one
        let n = 300_000;
        let key_of = |i: usize, _: u32| {
            (i % 7 != 3).then(|| ArticleSizeKey {
                product: ((i as u64 * 2_654_435_761) % 997) as u32,
                brand: 1,
                category: NONE,
                label: ((i / 7) % 3) as u32,
            })
        };
        // reference: one sequential pass
        let mut want_slots = vec![0u32; n];
        let mut want_keys: Vec<ArticleSizeKey> = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for (i, slot) in want_slots.iter_mut().enumerate() {
            *slot = match key_of(i, 0) {
                None => NONE,
                Some(k) => *seen.entry(k).or_insert_with(|| {
                    want_keys.push(k);
                    want_keys.len() as u32 - 1
                }),
            };
        }
        for threads in [1, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut slots = vec![0u32; n];
            let keys = pool.install(|| index_keys(&mut slots, key_of));
            assert_eq!(keys, want_keys, "{threads} threads");
            assert_eq!(slots, want_slots, "{threads} threads");
        }
        assert!(want_keys.len() > 997, "{} keys", want_keys.len());
        assert_eq!(want_slots[3], NONE);
    }

    fn events() -> Events {
        Events {
            customer: vec![1, 0, 1, 0, 2],
            product: vec![0, 0, 1, NONE, 1],
            brand: vec![0, 0, 0, 0, 0],
            category: vec![NONE; 5],
            size: vec![0, 0, 1, 0, 1],
            outcome: vec![
                Outcome::Small,
                Outcome::Fit,
                Outcome::Other,
                Outcome::Large,
                Outcome::Fit,
            ],
            customers: ["a", "b", "c"].into_iter().collect::<Dict>(),
            ..Default::default()
        }
    }

    /// Events with every case: other outcomes, missing keys, repeated article-sizes,
    /// customers without fit events, customers out of order.
    fn big_events() -> Events {
        let n = 40;
        let outcomes = [Outcome::Fit, Outcome::Small, Outcome::Other, Outcome::Large];
        Events {
            customer: (0..n).map(|i| (i * 7 % 11) as u32).collect(),
            product: (0..n)
                .map(|i| if i % 5 == 0 { NONE } else { (i % 4) as u32 })
                .collect(),
            brand: (0..n).map(|i| (i % 3) as u32).collect(),
            category: (0..n).map(|i| if i % 6 == 0 { NONE } else { 0 }).collect(),
            size: (0..n).map(|i| (i % 2) as u32).collect(),
            outcome: (0..n).map(|i| outcomes[i % 4]).collect(),
            timestamp: Some(vec![0; n]),
            row: crate::data::RowIds::identity(n),
            customers: (0..12).map(|c| format!("c{c}")).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn lean_preparation_equals_from_events() {
        let mut ev = big_events();
        let want = FitData::from_events(&ev);
        let got = FitData::from_events_releasing(&mut ev);
        assert_eq!(got.cust_start, want.cust_start);
        assert_eq!(got.ev_as, want.ev_as);
        assert_eq!(got.ev_y, want.ev_y);
        assert_eq!(got.article_sizes, want.article_sizes);
        assert_eq!(got.as_count, want.as_count);
        assert_eq!(got.len(), 30, "the ten `other` events are left out");
        // Columns are gone, what the fit reads is kept.
        assert_eq!(ev.len(), 40);
        assert!(ev.customer.is_empty() && ev.size.is_empty() && ev.product.is_empty());
        assert!(ev.timestamp.is_none());
        assert_eq!(ev.customers.len(), 12);
    }

    #[test]
    fn rows_in_place_equal_a_copy_of_them() {
        let ev = big_events();
        // every third row left out (as a cross-fitting fold is)
        let keep: Vec<bool> = (0..ev.len()).map(|i| i % 3 != 1).collect();
        let pick = |v: &[u32]| -> Vec<u32> {
            v.iter().zip(&keep).filter(|x| *x.1).map(|x| *x.0).collect()
        };
        let copy = Events {
            customer: pick(&ev.customer),
            product: pick(&ev.product),
            brand: pick(&ev.brand),
            category: pick(&ev.category),
            size: pick(&ev.size),
            outcome: ev
                .outcome
                .iter()
                .zip(&keep)
                .filter(|x| *x.1)
                .map(|x| *x.0)
                .collect(),
            customers: ev.customers.clone(),
            ..Default::default()
        };
        let want = FitData::from_events(&copy);
        let got = FitData::from_events_where(&ev, Some(&|i| keep[i]));
        assert!(got.len() < FitData::from_events(&ev).len());
        assert_eq!(got.cust_start, want.cust_start);
        assert_eq!(got.ev_as, want.ev_as);
        assert_eq!(got.ev_y, want.ev_y);
        assert_eq!(got.article_sizes, want.article_sizes);
        assert_eq!(got.as_count, want.as_count);
    }

    #[test]
    fn article_sizes_are_numbered_by_popularity() {
        let fd = FitData::from_events(&big_events());
        assert!(
            fd.as_count.windows(2).all(|w| w[0] >= w[1]),
            "{:?}",
            fd.as_count
        );
        // every event's article-size still has its own key: recount from the events
        let ev = big_events();
        let mut want = std::collections::HashMap::new();
        for i in 0..ev.len() {
            if ev.outcome[i].class().is_some() {
                let key = (ev.product[i], ev.brand[i], ev.category[i], ev.size[i]);
                *want.entry(key).or_insert(0u64) += 1;
            }
        }
        for (j, k) in fd.article_sizes.iter().enumerate() {
            let got = fd.ev_as.iter().filter(|&&a| a as usize == j).count() as u64;
            assert_eq!(got, fd.as_count[j]);
            assert_eq!(want[&(k.product, k.brand, k.category, k.label)], got);
        }
    }

    #[test]
    fn groups_by_customer_and_drops_other() {
        let fd = FitData::from_events(&events());
        assert_eq!(fd.len(), 4);
        assert_eq!(fd.cust_start, vec![0, 2, 3, 4]);
        // customer 0: events 1 (fit, as 0) and 3 (large, product NONE => as 1)
        assert_eq!(&fd.ev_y[0..2], &[1, 2]);
        assert_eq!(fd.ev_as[0], 0);
        // customer 1: event 0 (small, same article-size as event 1)
        assert_eq!(fd.ev_y[2], 0);
        assert_eq!(fd.ev_as[2], 0);
        assert_eq!(fd.article_sizes.len(), 3);
        assert_eq!(fd.as_count.iter().sum::<u64>(), 4);
        assert_eq!(fd.as_count[0], 2);
    }

    #[test]
    fn chunks_cover_all_customers_once() {
        let fd = FitData::from_events(&events());
        for target in 1..6 {
            let ch = fd.customer_chunks(target);
            assert_eq!(ch.first().unwrap().0, 0);
            assert_eq!(ch.last().unwrap().1, 3);
            for w in ch.windows(2) {
                assert_eq!(w[0].1, w[1].0);
            }
        }
    }
}
