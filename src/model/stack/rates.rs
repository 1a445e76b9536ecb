//! Smoothed outcome rates: empirical-Bayes shrinkage of count tables level by level
//! (category, brand, product, product in size, customer) into log-odds features.

use super::data::{Counts, Smoothing};
use crate::data::schema::NONE;

/// Probabilities are clamped to at least this before taking log-odds.
pub(crate) const P_FLOOR: f64 = 1e-6;

/// Rates `(c + m·prior) / (n + m)` of counts `c` shrunk toward `prior` with `m`
/// pseudo-events.
pub fn smooth(c: [f64; 3], prior: [f64; 3], m: f64) -> [f64; 3] {
    let n = c[0] + c[1] + c[2];
    let d = (n + m).max(1e-12);
    [
        (c[0] + m * prior[0]) / d,
        (c[1] + m * prior[1]) / d,
        (c[2] + m * prior[2]) / d,
    ]
}

/// Counts with one event of class `y` taken out (never below zero).
pub fn leave_one_out(c: Counts, y: usize) -> [f64; 3] {
    let mut out = as_f64(c);
    if let Some(x) = out.get_mut(y) {
        *x = (*x - 1.0).max(0.0);
    }
    out
}

fn as_f64(c: Counts) -> [f64; 3] {
    [f64::from(c[0]), f64::from(c[1]), f64::from(c[2])]
}

/// `[ln(r_small / r_fit), ln(r_large / r_fit), ln((r_small + r_large) / r_fit)]`.
pub fn log_ratios(r: [f64; 3]) -> [f64; 3] {
    let f = r[1].max(P_FLOOR).ln();
    [
        r[0].max(P_FLOOR).ln() - f,
        r[2].max(P_FLOOR).ln() - f,
        (r[0] + r[2]).max(P_FLOOR).ln() - f,
    ]
}

fn total(c: &[f64; 3]) -> f64 {
    c[0] + c[1] + c[2]
}

/// Global rates from counts (add-one).
pub fn global_rates(g: [u64; 3]) -> [f64; 3] {
    let n = (g[0] + g[1] + g[2]) as f64 + 3.0;
    [
        (g[0] as f64 + 1.0) / n,
        (g[1] as f64 + 1.0) / n,
        (g[2] as f64 + 1.0) / n,
    ]
}

/// Outcome counts of an article's levels (`None`: the level is unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LevelCounts {
    /// Category.
    pub category: Option<[f64; 3]>,
    /// Brand.
    pub brand: Option<[f64; 3]>,
    /// Product.
    pub product: Option<[f64; 3]>,
    /// Product in size.
    pub article_size: Option<[f64; 3]>,
    /// The product in its next smaller size.
    pub down: Option<[f64; 3]>,
    /// The product in its next larger size.
    pub up: Option<[f64; 3]>,
}

/// Smoothed-rate features of an article's levels.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LevelFeatures {
    /// Category log-odds `[small/fit, large/fit]`.
    pub category: [f64; 2],
    /// Brand log-odds relative to its category's.
    pub brand: [f64; 2],
    /// Product log-odds `[small/fit, large/fit, misfit/fit]`.
    pub product: [f64; 3],
    /// `ln(1 + product events)`.
    pub product_n: f64,
    /// Product-in-size log-odds relative to the product's `[small, large]`.
    pub size: [f64; 2],
    /// `ln(1 + product-in-size events)`.
    pub size_n: f64,
    /// The next smaller size's log-odds relative to the product's `[small, large]` and
    /// `ln(1 + its events)`.
    pub down: [f64; 3],
    /// The next larger size's, likewise.
    pub up: [f64; 3],
}

/// Level features from counts: category toward the global rates, brand toward its
/// category, product toward its brand, product-in-size toward its product.
pub fn level_features(sm: &Smoothing, global: [f64; 3], c: &LevelCounts) -> LevelFeatures {
    let cat = c
        .category
        .map_or(global, |x| smooth(x, global, sm.category));
    let brand = c.brand.map_or(cat, |x| smooth(x, cat, sm.brand));
    let pc = c.product.unwrap_or([0.0; 3]);
    let prod = smooth(pc, brand, sm.product);
    let ac = c.article_size.unwrap_or([0.0; 3]);
    let art = smooth(ac, prod, sm.article_size);
    let (lc, lb, lp, la) = (
        log_ratios(cat),
        log_ratios(brand),
        log_ratios(prod),
        log_ratios(art),
    );
    let near = |c: Option<[f64; 3]>| {
        let c = c.unwrap_or([0.0; 3]);
        let l = log_ratios(smooth(c, prod, sm.article_size));
        [l[0] - lp[0], l[1] - lp[1], total(&c).ln_1p()]
    };
    LevelFeatures {
        down: near(c.down),
        up: near(c.up),
        category: [lc[0], lc[1]],
        brand: [lb[0] - lc[0], lb[1] - lc[1]],
        product: lp,
        product_n: total(&pc).ln_1p(),
        size: [la[0] - lp[0], la[1] - lp[1]],
        size_n: total(&ac).ln_1p(),
    }
}

/// Smoothed-rate features of a customer.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CustomerRates {
    /// Log-odds `[small/fit, large/fit, misfit/fit]`.
    pub log_odds: [f64; 3],
    /// `ln(1 + events)`.
    pub n: f64,
    /// Mean label position of their events (common scale), `None` without events.
    pub mean_pos: Option<f64>,
}

/// Customer features from outcome counts (toward the global rates) and the sum of their
/// events' label positions.
pub fn customer_rates(
    sm: &Smoothing,
    global: [f64; 3],
    counts: [f64; 3],
    pos_sum: f64,
) -> CustomerRates {
    let n = total(&counts);
    CustomerRates {
        log_odds: log_ratios(smooth(counts, global, sm.customer)),
        n: n.ln_1p(),
        mean_pos: (n > 0.0).then(|| pos_sum / n),
    }
}

/// Counts of entry `i` of a table as floats (`None` for [`NONE`] or out of range).
pub fn count_at(table: &[Counts], i: u32) -> Option<[f64; 3]> {
    if i == NONE {
        return None;
    }
    table.get(i as usize).copied().map(as_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_hand_values() {
        // (c + m·prior)/(n + m) = ([1,2,1] + 4·[.2,.6,.2]) / 8
        let r = smooth([1.0, 2.0, 1.0], [0.2, 0.6, 0.2], 4.0);
        assert!((r[0] - 0.225).abs() < 1e-12);
        assert!((r[1] - 0.55).abs() < 1e-12);
        assert!((r[2] - 0.225).abs() < 1e-12);
        // no data: the prior
        let r = smooth([0.0; 3], [0.1, 0.7, 0.2], 3.0);
        for (a, b) in r.iter().zip([0.1, 0.7, 0.2]) {
            assert!((a - b).abs() < 1e-12);
        }
    }

    #[test]
    fn leave_one_out_counts() {
        assert_eq!(leave_one_out([3, 5, 2], 1), [3.0, 4.0, 2.0]);
        assert_eq!(leave_one_out([3, 5, 2], 0), [2.0, 5.0, 2.0]);
        // never below zero
        assert_eq!(leave_one_out([0, 1, 0], 2), [0.0, 1.0, 0.0]);
        // an item rented twice, one small one fit: the small event sees one fit
        let r = smooth(leave_one_out([1, 1, 0], 0), [0.25, 0.5, 0.25], 2.0);
        // ([0,1,0] + 2·[.25,.5,.25]) / 3
        assert!((r[0] - 0.5 / 3.0).abs() < 1e-12);
        assert!((r[1] - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn level_features_hand_values() {
        let sm = Smoothing::default();
        let global = [0.25, 0.5, 0.25];
        // nothing known: everything at the global rates, relative terms zero
        let l = level_features(&sm, global, &LevelCounts::default());
        assert!((l.product[0] - 0.5f64.ln()).abs() < 1e-12);
        assert_eq!(l.size, [0.0, 0.0]);
        assert_eq!(l.brand, [0.0, 0.0]);
        assert_eq!((l.product_n, l.size_n), (0.0, 0.0));
        // a product with 10 small / 0 fit / 0 large and prior 10 events:
        // (10 + 2.5, 5, 2.5) / 20 = (0.625, 0.25, 0.125)
        let l = level_features(
            &sm,
            global,
            &LevelCounts {
                product: Some([10.0, 0.0, 0.0]),
                ..Default::default()
            },
        );
        assert!((l.product[0] - (0.625f64 / 0.25).ln()).abs() < 1e-12);
        assert!((l.product[1] - (0.125f64 / 0.25).ln()).abs() < 1e-12);
        assert!((l.product[2] - (0.75f64 / 0.25).ln()).abs() < 1e-12);
        assert!((l.product_n - 11f64.ln()).abs() < 1e-12);
        // customers toward the global rates with 3 pseudo-events: 1 large seen
        // -> (0.75, 1.5, 1.75) / 4
        let c = customer_rates(&sm, global, [0.0, 0.0, 1.0], 4.0);
        assert_eq!(c.mean_pos, Some(4.0));
        assert!((c.log_odds[1] - (1.75f64 / 1.5).ln()).abs() < 1e-12);
        assert!((c.n - 2f64.ln()).abs() < 1e-12);
    }
}
