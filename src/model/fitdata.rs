//! Compact fitting data: fit events grouped by customer (CSR), each a 4-byte
//! article-size key and a 1-byte class, with small tables describing article-sizes.
//! This is what every fitting pass streams over: 5 bytes per event.

use crate::data::schema::{Events, NONE};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Multiply-rotate hasher (FxHash's scheme) for the small integer article-size keys:
/// one hash per fit event, where SipHash's DoS resistance buys nothing (keys are dense
/// indices we assigned) and costs several times more.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

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
        let n_customers = events.customers.len();
        let mut key_index: HashMap<ArticleSizeKey, u32, BuildHasherDefault<KeyHasher>> =
            HashMap::default();
        let mut article_sizes = Vec::new();
        let mut as_of_event = vec![NONE; events.len()];
        let mut counts = vec![0u64; n_customers + 1];
        for (i, slot) in as_of_event.iter_mut().enumerate() {
            if events.outcome[i].class().is_none() {
                continue;
            }
            let key = ArticleSizeKey {
                product: events.product[i],
                brand: events.brand[i],
                category: events.category[i],
                label: events.size[i],
            };
            let next = article_sizes.len() as u32;
            let idx = *key_index.entry(key).or_insert_with(|| {
                article_sizes.push(key);
                next
            });
            *slot = idx;
            let c = events.customer[i] as usize;
            if c < n_customers {
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
