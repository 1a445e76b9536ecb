//! The fitted model: plain serde data (global constants, offsets per size system, size
//! label, brand, category, product and product-in-size, the customer table) plus the
//! lookup index rebuilt after loading.

use super::features::FeatureModel;
use crate::data::schema::{SizeSystem, NONE};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerTable {
    /// Customer ids.
    pub ids: Vec<String>,
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

/// The fitted model. Plain data: `Send + Sync`, serde; [`Model::reindex`] rebuilds the
/// lookup maps after deserialising.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Model {
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
    pub stack: Option<super::stack::Stack>,
    /// Lookup maps, rebuilt by [`Model::reindex`].
    #[serde(skip)]
    pub index: ModelIndex,
}

/// Lookup maps from keys to indices.
#[derive(Clone, Debug, Default)]
pub struct ModelIndex {
    /// Canonical label -> label index.
    pub label: HashMap<String, u32>,
    /// Brand name -> index.
    pub brand: HashMap<String, u32>,
    /// Category name -> index.
    pub category: HashMap<String, u32>,
    /// Product id -> index.
    pub product: HashMap<String, u32>,
    /// (product, label) -> article-size index.
    pub article_size: HashMap<(u32, u32), u32>,
    /// Customer id -> index.
    pub customer: HashMap<String, u32>,
}

impl Model {
    /// Rebuild the lookup maps and the second stage's cache (after deserialising or
    /// building).
    pub fn reindex(&mut self) {
        fn map<'a>(names: impl Iterator<Item = &'a str>) -> HashMap<String, u32> {
            names
                .enumerate()
                .map(|(i, n)| (n.to_string(), i as u32))
                .collect()
        }
        self.index = ModelIndex {
            label: map(self.labels.iter().map(|l| l.canonical.as_str())),
            brand: map(self.brands.iter().map(|b| b.name.as_str())),
            category: map(self.categories.iter().map(|b| b.name.as_str())),
            product: map(self.products.iter().map(|b| b.name.as_str())),
            article_size: self
                .article_sizes
                .iter()
                .enumerate()
                .map(|(i, a)| ((a.product, a.label), i as u32))
                .collect(),
            customer: map(self.customers.ids.iter().map(String::as_str)),
        };
        super::stack::prepare_model(self);
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

/// Fit-band log-width of group `i`, 0 for [`NONE`] or out of range.
pub fn group_eta(groups: &[GroupParams], i: u32) -> f64 {
    if i == NONE {
        return 0.0;
    }
    groups.get(i as usize).map_or(0.0, |g| g.eta)
}
