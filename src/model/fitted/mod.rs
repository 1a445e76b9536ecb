//! The fitted model: plain serde data (global constants, offsets per size system, size
//! label, brand, category, product and product-in-size, the customer table) plus the
//! lookup index rebuilt after loading.

mod validate;

use crate::data::schema::{Dict, SizeSystem, NONE};
use crate::model::features::FeatureModel;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Global constants of the outcome and choice models.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Globals {
    /// Logit slope per size step of gap between customer and article.
    pub w: f64,
    /// Centre of the fit band on the logit scale (0 = symmetric).
    pub c: f64,
    /// Half-width of the fit band on the logit scale.
    pub h: f64,
    /// How much shoppers correct their chosen size for a brand's reputation (0..1).
    pub k: f64,
    /// How much shoppers correct their chosen size for a product's own reputation
    /// (reviews, size notes), 0..1.
    pub k_product: f64,
    /// Standard deviation of a chosen size around the shopper's size at that purchase.
    pub sd_choice: f64,
    /// Standard deviation of a shopper's size at one purchase around their long-run
    /// size (bodies, tastes and occasions change between purchases).
    pub sd_drift: f64,
    /// Prior sd of a customer's size around the feature prediction, when features exist.
    pub sd_customer_features: f64,
    /// Prior sd of a customer's size when nothing is known about them.
    pub sd_customer_population: f64,
    /// Prior sd of a customer's fit bias (how their verdicts lean beyond their size).
    pub sd_customer_bias: f64,
    /// Prior sd of size-label offsets.
    pub sd_label: f64,
    /// Prior sd of brand offsets.
    pub sd_brand: f64,
    /// Prior sd of category offsets.
    pub sd_category: f64,
    /// Prior sd of product offsets around their brand.
    pub sd_product: f64,
    /// Prior sd of product-in-size offsets around their product.
    pub sd_article_size: f64,
    /// Prior sd of brand fit-band log-widths.
    pub sd_eta_brand: f64,
    /// Prior sd of category fit-band log-widths.
    pub sd_eta_category: f64,
    /// Prior sd of product fit-band log-widths.
    pub sd_eta_product: f64,
}

impl Default for Globals {
    /// Starting values of a fit.
    fn default() -> Self {
        Globals {
            w: 2.0,
            c: 0.0,
            h: 2.0,
            k: 0.0,
            k_product: 0.0,
            sd_choice: 0.7,
            sd_drift: 0.3,
            sd_customer_features: 1.0,
            sd_customer_population: 2.0,
            sd_customer_bias: 0.3,
            sd_label: 0.3,
            sd_brand: 0.5,
            sd_category: 0.3,
            sd_product: 0.3,
            sd_article_size: 0.2,
            sd_eta_brand: 0.3,
            sd_eta_category: 0.3,
            sd_eta_product: 0.3,
        }
    }
}

/// An estimated offset in size steps (> 0: runs large, < 0: runs small).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Offset {
    /// Posterior mean.
    pub value: f64,
    /// Standard error.
    pub se: f64,
    /// Fit events behind it.
    pub n: u64,
}

/// Alignment of a size system onto the common customer scale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SystemParams {
    /// The system.
    pub system: SizeSystem,
    /// Position units per size step (2 for jeans inches; estimated from the spread of
    /// chosen sizes for bare numeric scales; 1 otherwise).
    pub scale: f64,
    /// Added to `pos / scale` to land on the common scale.
    pub align: f64,
    /// Events in this system.
    pub n: u64,
}

/// A size label seen in training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelParams {
    /// Canonical label text.
    pub canonical: String,
    /// Its system.
    pub system: SizeSystem,
    /// Position in the system's units.
    pub pos: f64,
    /// Catalogue-wide offset of this size label.
    pub offset: Offset,
}

/// A brand, category or product: location offset and fit-band log-width.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupParams {
    /// Key (brand name, category name, product id).
    pub name: String,
    /// Offset (for products: relative to brand and category).
    pub offset: Offset,
    /// Log-width adjustment of the fit band (> 0: wider band, fewer misfits).
    pub eta: f64,
}

/// Product metadata beyond its offsets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProductInfo {
    /// Brand index or [`NONE`].
    pub brand: u32,
    /// Category index or [`NONE`].
    pub category: u32,
    /// Label indices offered (seen in training), in size order.
    pub sizes: Vec<u32>,
}

/// A product in one size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArticleSizeParams {
    /// Product index.
    pub product: u32,
    /// Label index.
    pub label: u32,
    /// Offset relative to the product.
    pub offset: Offset,
}

/// Customers seen in training: posterior mean and variance of their size.
///
/// The ids are a compact [`Dict`] (integer ids as `i64`, other ids in one text arena),
/// stored in the artifact in a compact form too (see [`crate::data::dict::compact_dict`]); look an id up
/// with `Predictor::customer_index`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerTable {
    /// Customer ids, by customer index.
    #[serde(with = "crate::data::dict::compact_dict")]
    pub ids: Dict,
    /// Posterior mean size (common scale).
    pub mean: Vec<f32>,
    /// Posterior variance of the size.
    pub var: Vec<f32>,
    /// Posterior mean fit bias.
    pub bias: Vec<f32>,
    /// Posterior variance of the fit bias.
    pub bias_var: Vec<f32>,
    /// Posterior covariance of size and fit bias.
    pub cov: Vec<f32>,
    /// Fit events in training.
    pub n: Vec<u32>,
}

/// A fit's final customer state, handed over (consumed) to build the [`CustomerTable`].
#[derive(Clone, Debug, Default)]
pub struct CustomerFit {
    /// Posterior mean size per customer.
    pub s: Vec<f64>,
    /// Posterior mean fit bias per customer.
    pub u: Vec<f32>,
    /// Posterior covariance per customer: `[var(s), cov(s, u), var(u)]`.
    pub cov: Vec<[f32; 3]>,
}

impl CustomerTable {
    /// The table of a finished fit: the ids (the events' customer dictionary), the fit's
    /// state (consumed: each input vector is freed as soon as its columns are built, so
    /// the end of a 50M-customer fit holds at most one extra state vector) and the
    /// customers' event ranges (`cust_start[c]..cust_start[c + 1]`, see
    /// [`crate::model::fitdata::FitData`]) for the event counts.
    pub fn from_fit(ids: Dict, fit: CustomerFit, cust_start: &[u64]) -> CustomerTable {
        let CustomerFit { s, u, cov } = fit;
        let [mean] = columns_from_back(s, |&x| [x as f32]);
        let [var, cov_su, bias_var] = columns_from_back(cov, |c| *c);
        let n = cust_start
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]) as u32)
            .collect();
        CustomerTable {
            ids,
            mean,
            var,
            bias: u,
            bias_var,
            cov: cov_su,
            n,
        }
    }

    /// Number of customers.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the table is empty (e.g. trained with `--no-customers`).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The id of customer `i` as text (`None` when out of range; allocates only for
    /// integer ids).
    pub fn id(&self, i: usize) -> Option<Cow<'_, str>> {
        self.ids.get(i)
    }

    /// Heap bytes held by the ids and the per-customer columns (capacities).
    pub fn heap_bytes(&self) -> usize {
        self.ids.heap_bytes()
            + (self.mean.capacity()
                + self.var.capacity()
                + self.bias.capacity()
                + self.bias_var.capacity()
                + self.cov.capacity()
                + self.n.capacity())
                * 4
    }
}

/// Rows per block of [`columns_from_back`].
const COLUMN_BLOCK: usize = 1 << 20;

/// The `K` `f32` columns `f(row)` of `rows`, consuming `rows` from the back a block at a
/// time and shrinking it as the columns grow (then reversing them in place), so that
/// at 50M customers the conversion costs one block of memory rather than a second copy
/// of the fit state.
fn columns_from_back<T, const K: usize>(
    mut rows: Vec<T>,
    f: impl Fn(&T) -> [f32; K],
) -> [Vec<f32>; K] {
    let mut cols: [Vec<f32>; K] = std::array::from_fn(|_| Vec::with_capacity(rows.len()));
    while !rows.is_empty() {
        let start = rows.len().saturating_sub(COLUMN_BLOCK);
        for row in rows.iter().skip(start).rev() {
            for (col, x) in cols.iter_mut().zip(f(row)) {
                col.push(x);
            }
        }
        rows.truncate(start);
        rows.shrink_to_fit();
    }
    for col in &mut cols {
        col.reverse();
    }
    cols
}

/// One fitting iteration's diagnostics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterationStats {
    /// Iteration number, from 1.
    pub iter: usize,
    /// Penalised objective per fit event (outcome + choice + priors).
    pub objective: f64,
    /// Leave-one-out outcome log loss per fit event (what a new purchase would see).
    pub loo_log_loss: f64,
    /// Seconds spent in this iteration.
    pub seconds: f64,
    /// How far the article true sizes and band widths moved in this iteration's update
    /// (event-weighted RMS, sizes; band widths relative): the stopping criterion.
    pub param_change: f64,
    /// Fit events this iteration visited (fewer than all during a big fit's sample phase).
    pub events: u64,
    /// Seconds of the pass over the events (customers solved, sums by article-size).
    pub pass_seconds: f64,
    /// Seconds of the update from the pass's sums (offset hierarchy, globals, priors).
    pub update_seconds: f64,
}

/// Training summary stored in the artifact.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Events read.
    pub events: u64,
    /// Events used for fit learning (small / fit / large).
    pub fit_events: u64,
    /// Events with other return reasons (kept out).
    pub other_events: u64,
    /// Outcome counts small, fit, large.
    pub outcome_counts: [u64; 3],
    /// Distinct customers, products, brands, categories, size labels.
    pub customers: u64,
    /// Distinct products.
    pub products: u64,
    /// Distinct brands.
    pub brands: u64,
    /// Distinct categories.
    pub categories: u64,
    /// Distinct size labels.
    pub sizes: u64,
    /// Iterations run.
    pub iterations: usize,
    /// Whether the tolerance was reached.
    pub converged: bool,
    /// Per-iteration diagnostics.
    pub history: Vec<IterationStats>,
    /// Wall seconds of the fit.
    pub fit_seconds: f64,
    /// Input description (files, mapping), free text.
    pub source: String,
}

/// The fitted model: the artifact's plain serde data, nothing derived (`Send + Sync`).
/// [`Fitted::validate`] checks its invariants; [`crate::model::Predictor::new`] builds
/// every index and cache prediction reads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Fitted {
    /// Global constants.
    pub globals: Globals,
    /// Feature model for customers' prior size.
    pub features: FeatureModel,
    /// Size systems seen.
    pub systems: Vec<SystemParams>,
    /// Size labels.
    pub labels: Vec<LabelParams>,
    /// Brands.
    pub brands: Vec<GroupParams>,
    /// Categories.
    pub categories: Vec<GroupParams>,
    /// Products.
    pub products: Vec<GroupParams>,
    /// Product metadata (same order as `products`).
    pub product_info: Vec<ProductInfo>,
    /// Products in sizes.
    pub article_sizes: Vec<ArticleSizeParams>,
    /// Customers seen in training.
    pub customers: CustomerTable,
    /// Training summary.
    pub summary: TrainingSummary,
    /// Second stage applied to every probability (None: structural probabilities only).
    pub stack: Option<crate::model::stack::Stack>,
}

impl Fitted {
    /// Each product in size's index by its (product, label) indices.
    pub(crate) fn article_size_keys(&self) -> std::collections::HashMap<(u32, u32), u32> {
        self.article_sizes
            .iter()
            .enumerate()
            .map(|(i, a)| ((a.product, a.label), i as u32))
            .collect()
    }

    /// The smallest model that passes [`Fitted::validate`]: one size label, default
    /// constants, no keys (for tests and examples).
    pub fn minimal() -> Fitted {
        Fitted {
            labels: vec![LabelParams {
                canonical: "M".into(),
                system: SizeSystem::Letter,
                pos: 3.0,
                offset: Offset::default(),
            }],
            ..Fitted::default()
        }
    }

    /// Alignment of a size system (0 when the system was not seen).
    pub fn align(&self, system: SizeSystem) -> f64 {
        self.systems
            .iter()
            .find(|s| s.system == system)
            .map_or(0.0, |s| s.align)
    }

    /// Position units per size step of a system (its default step when not seen).
    pub fn scale(&self, system: SizeSystem) -> f64 {
        self.systems
            .iter()
            .find(|s| s.system == system)
            .map_or(system.step(), |s| s.scale)
    }

    /// Brand offset value, 0 for [`NONE`] or out of range.
    pub fn brand_offset(&self, b: u32) -> f64 {
        group_value(&self.brands, b)
    }
}

/// Offset value of group `i`, 0 for [`NONE`] or out of range.
pub fn group_value(groups: &[GroupParams], i: u32) -> f64 {
    if i == NONE {
        return 0.0;
    }
    groups.get(i as usize).map_or(0.0, |g| g.offset.value)
}

/// Uncertainty (variance) of group `i`'s offset: its squared standard error; the
/// level's prior variance `sd²` for [`NONE`] or an unknown group; 0 when the level has no
/// groups at all (it plays no part).
pub fn group_var(groups: &[GroupParams], i: u32, sd: f64) -> f64 {
    if groups.is_empty() {
        0.0
    } else if i == NONE {
        sd * sd
    } else {
        groups
            .get(i as usize)
            .map_or(sd * sd, |x| x.offset.se * x.offset.se)
    }
}

/// Fit-band log-width of group `i`, 0 for [`NONE`] or out of range.
pub fn group_eta(groups: &[GroupParams], i: u32) -> f64 {
    if i == NONE {
        return 0.0;
    }
    groups.get(i as usize).map_or(0.0, |g| g.eta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(keys: &[&str]) -> Dict {
        keys.iter().collect()
    }

    #[test]
    fn customer_table_from_fit_takes_columns_apart() {
        let fit = CustomerFit {
            s: vec![1.5, -0.25],
            u: vec![0.1, 0.2],
            cov: vec![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
        };
        let t = CustomerTable::from_fit(dict(&["7", "9"]), fit, &[0, 3, 4]);
        assert_eq!(t.mean, vec![1.5, -0.25]);
        assert_eq!(t.var, vec![1.0, 4.0]);
        assert_eq!(t.cov, vec![2.0, 5.0]);
        assert_eq!(t.bias_var, vec![3.0, 6.0]);
        assert_eq!(t.bias, vec![0.1, 0.2]);
        assert_eq!(t.n, vec![3, 1]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.id(1).as_deref(), Some("9"));
        assert_eq!(t.id(2), None);
    }

    #[test]
    fn columns_from_back_keep_row_order_across_blocks() {
        let n = 2 * COLUMN_BLOCK + 3;
        let rows: Vec<[f32; 2]> = (0..n).map(|i| [i as f32, -(i as f32)]).collect();
        let [a, b] = columns_from_back(rows, |r| *r);
        assert_eq!(a.len(), n);
        assert!(a.iter().enumerate().all(|(i, &x)| x == i as f32));
        assert!(b.iter().enumerate().all(|(i, &x)| x == -(i as f32)));
        let [empty] = columns_from_back(Vec::<f64>::new(), |&x| [x as f32]);
        assert!(empty.is_empty());
    }
}
