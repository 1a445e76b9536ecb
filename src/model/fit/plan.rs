//! The passes' plan: which customer chunks an iteration visits, grouped into shards.

use super::*;

/// Which customers an iteration visits: sorted, disjoint chunks of customers, grouped
/// into at most [`MAX_SHARDS`] shards that each own a set of sums. Fixed by the data
/// alone, so sums (and results) do not depend on the thread count.
pub(super) struct Plan {
    pub(super) chunks: Vec<(usize, usize)>,
    pub(super) shards: Vec<Vec<(usize, usize)>>,
    /// Fit events visited.
    pub(super) events: usize,
    /// Score the drift candidates on customers `c` with `c % drift_stride == 0`.
    pub(super) drift_stride: usize,
    /// `XᵀX` of the feature ridge over the visited customers with events (fixed by the
    /// data; only `Xᵀy` changes between passes). Filled by [`State::gram`].
    pub(super) gram: Vec<f64>,
}

impl Plan {
    /// Every `every`-th chunk of about `chunk_events` events.
    pub(super) fn new(data: &FitData, chunk_events: usize, every: usize) -> Plan {
        let ev = |&(lo, hi): &(usize, usize)| (data.cust_start[hi] - data.cust_start[lo]) as usize;
        let chunks: Vec<(usize, usize)> = data
            .customer_chunks(chunk_events)
            .into_iter()
            .step_by(every.max(1))
            .collect();
        let events: usize = chunks.iter().map(ev).sum();
        // a shard's sums are as big as the article-size table: keep at least ~8 events
        // per article-size in each (a small sample of a big catalogue gets few shards).
        // The count is a multiple of MIN_SHARDS: a pass runs its shards in rounds of one
        // per thread, so 5 shards on 2 threads left a thread idle for a fifth of every
        // pass (10M events: a full pass 1.07 s at 5 shards, 0.93 s at 8)
        let n_shards = events
            .div_ceil(8 * data.article_sizes.len().max(1))
            .next_multiple_of(MIN_SHARDS)
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
            drift_stride: drift_stride(events),
            gram: Vec::new(),
        }
    }
}

/// Every how-many-th customer scores the drift candidates in a pass over `events`: about
/// [`DRIFT_SAMPLE_EVENTS`] events, or 1 in [`MAX_DRIFT_STRIDE`] customers on big data
/// (above 10M events) so the drift share's sample grows with the data.
fn drift_stride(events: usize) -> usize {
    (events / DRIFT_SAMPLE_EVENTS).clamp(1, MAX_DRIFT_STRIDE)
}

/// Split `v` into the sub-slices of sorted, disjoint `chunks`.
pub(super) fn split_chunks<'a, T>(
    mut v: &'a mut [T],
    chunks: &[(usize, usize)],
) -> Vec<&'a mut [T]> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_chunks_hands_out_exactly_the_chunks() {
        let mut v: Vec<u32> = (0..10).collect();
        let parts = split_chunks(&mut v, &[(1, 3), (3, 4), (7, 10)]);
        let got: Vec<Vec<u32>> = parts.iter().map(|p| p.to_vec()).collect();
        assert_eq!(got, vec![vec![1, 2], vec![3], vec![7, 8, 9]]);
    }

    use crate::model::fit::tests::data;

    #[test]
    fn drift_sample_is_fixed_then_grows_with_the_data() {
        assert_eq!(drift_stride(0), 1);
        assert_eq!(drift_stride(123_000), 4);
        // 7.5M events: every 300th customer, ~25k events
        assert_eq!(drift_stride(7_500_000), 300);
        assert_eq!(drift_stride(10_000_000), 400);
        // 94M events: every 400th customer (235k events), not every 3760th (25k)
        assert_eq!(drift_stride(94_000_000), 400);
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
        // 3000 events over 75 article-sizes => ceil(3000 / 600) = 5, rounded up to 8
        // (rounds of 2 or 4 threads stay full)
        let eight = Plan::new(&data(1000, 3, 75), 30, 1);
        assert_eq!(eight.shards.len(), 8);
        assert_eq!(eight.shards.concat(), eight.chunks);
    }
}
