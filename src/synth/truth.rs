//! The truth file: every hidden quantity of a synthetic data set, so tests and benchmarks
//! can compare what a model learned with what generated the data.

use super::events::{OUTCOME_VALUES, SPAN_SECONDS, START_EPOCH_SECONDS};
use super::world::{system_scale, ModelParams, SystemScale, World, JEANS_LENGTHS, SYSTEMS};
use crate::data::{DataError, Outcome, SizeSystem};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Version of the truth-file layout.
pub const TRUTH_FORMAT_VERSION: u32 = 1;

/// Everything that generated a synthetic data set (`<out stem>.truth.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// Layout version ([`TRUTH_FORMAT_VERSION`]).
    pub format_version: u32,
    /// How the numbers below are to be read.
    pub conventions: Conventions,
    /// Seed of the run.
    pub seed: u64,
    /// Events written.
    pub events: u64,
    /// Size of the customer universe (`--customers`).
    pub customers: u64,
    /// Customers with at least one event.
    pub buyers: u64,
    /// First event time and span, in seconds since the Unix epoch.
    pub time_start_epoch_seconds: i64,
    /// Span of event times in seconds (two years).
    pub time_span_seconds: i64,
    /// Model constants.
    pub model: ModelParams,
    /// Size systems and their mapping onto the common scale.
    pub systems: Vec<SystemScale>,
    /// Outcome vocabulary of the `outcome` column and what each value means.
    pub outcomes: Vec<OutcomeValue>,
    /// Brands.
    pub brands: Vec<BrandTruth>,
    /// Products.
    pub products: Vec<ProductTruth>,
    /// File (name relative to the truth file) with `customer_id,true_size` per buyer, or
    /// `None` when it was not written.
    pub customers_file: Option<String>,
}

/// The sign and scale conventions, spelled out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Conventions {
    /// Meaning of an offset's sign.
    pub sign: String,
    /// Formula of an article's true size.
    pub article_size: String,
    /// Formula of the outcome.
    pub outcome: String,
    /// How shoppers pick a size.
    pub choice: String,
    /// What is identifiable from the data.
    pub identifiability: String,
}

impl Default for Conventions {
    fn default() -> Self {
        Conventions {
            sign: "offset > 0: the article runs LARGE (bigger than its label says); < 0: runs SMALL. Offsets are in common-scale size steps (one letter size).".into(),
            article_size: "t = (pos - origin[system]) / scale[system] + brand.offset + product.offset, where pos is the label position from parse_size (letters M=0; US/UK/EU/IT/FR/JP value/2; jeans waist inches)".into(),
            outcome: "gap = customer.true_size - t; z = slope * gap + Logistic(0,1); too small if z > threshold, too large if z < -threshold, else fit; then with probability other_return_rate the row becomes a non-fit return".into(),
            choice: "aim = true_size - reputation_k * brand.offset + Normal(0, choice_noise_sd); label step = round(scale * aim) clamped to the product's offered range; jeans length follows the customer's height and does not affect fit".into(),
            identifiability: "only differences are identified: a constant shift of all brand offsets in a system trades off against that system's origin".into(),
        }
    }
}

/// One value of the `outcome` column.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutcomeValue {
    /// The text in the file.
    pub value: String,
    /// Its canonical outcome.
    pub outcome: Outcome,
}

/// One brand's truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BrandTruth {
    /// Brand name, as in the `brand` column.
    pub name: String,
    /// How the brand runs, in size steps (> 0 large).
    pub offset: f64,
    /// Home market (decides its numeric system).
    pub market: super::world::Market,
    /// Categories it sells.
    pub categories: Vec<String>,
}

/// One product's truth.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProductTruth {
    /// Product id, as in the `product_id` column.
    pub product_id: String,
    /// Brand name.
    pub brand: String,
    /// Category.
    pub category: String,
    /// Size system of all its labels.
    pub system: SizeSystem,
    /// Offset relative to its brand (total = brand offset + this), in size steps.
    pub offset: f64,
    /// Offered labels, smallest first (jeans: every waist x length).
    pub sizes: Vec<String>,
    /// Share of purchases drawn for this product.
    pub popularity: f64,
}

impl Truth {
    /// The scale entry of `system`, if the data uses it.
    pub fn system(&self, system: SizeSystem) -> Option<&SystemScale> {
        self.systems.iter().find(|s| s.system == system)
    }

    /// Path of the customers file next to a truth file at `truth_path`, if one was written.
    pub fn customers_path(&self, truth_path: &Path) -> Option<PathBuf> {
        let name = self.customers_file.as_ref()?;
        Some(match truth_path.parent() {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        })
    }
}

/// `<dir>/<stem>.truth.json` and `<dir>/<stem>.customers.csv` for an output file.
pub fn truth_paths(out: &Path) -> (PathBuf, PathBuf) {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "synth".into());
    let dir = out.parent().map(Path::to_path_buf).unwrap_or_default();
    (
        dir.join(format!("{stem}.truth.json")),
        dir.join(format!("{stem}.customers.csv")),
    )
}

/// Read a truth file written by [`crate::synth::generate`].
pub fn read_truth(path: &Path) -> Result<Truth, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| DataError::Read {
        path: path.to_path_buf(),
        message: format!("not a runsize truth file: {e}"),
    })
}

/// Read a customers truth file: `(customer_id, true_size)` per buyer, by id.
pub fn read_customer_sizes(path: &Path) -> Result<Vec<(i64, f64)>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, what: &str| DataError::Read {
        path: path.to_path_buf(),
        message: format!("line {line}: {what}"),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split(',');
        let id = parts
            .next()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| bad(i + 1, "bad customer_id"))?;
        let size = parts
            .next()
            .and_then(|s| s.parse::<f64>().ok())
            .ok_or_else(|| bad(i + 1, "bad true_size"))?;
        out.push((id, size));
    }
    Ok(out)
}

/// Build the truth of a run.
pub(crate) fn build_truth(
    world: &World,
    seed: u64,
    buyers: u64,
    customers_file: Option<String>,
) -> Truth {
    let outcomes = OUTCOME_VALUES
        .iter()
        .enumerate()
        .map(|(i, v)| OutcomeValue {
            value: (*v).to_string(),
            outcome: match i {
                0 => Outcome::Fit,
                1 => Outcome::Small,
                2 => Outcome::Large,
                _ => Outcome::Other,
            },
        })
        .collect();
    let mut used: Vec<SizeSystem> = world.products.iter().map(|p| p.system).collect();
    used.sort_unstable();
    used.dedup();
    let systems = SYSTEMS
        .iter()
        .filter(|s| used.contains(&s.system))
        .copied()
        .collect();
    let brands = world
        .brands
        .iter()
        .map(|b| BrandTruth {
            name: b.name.clone(),
            offset: b.offset,
            market: b.market,
            categories: b.categories.iter().map(|c| (*c).to_string()).collect(),
        })
        .collect();
    let products = world
        .products
        .iter()
        .map(|p| {
            let lengths = if p.system == SizeSystem::Jeans {
                JEANS_LENGTHS.len()
            } else {
                1
            };
            let sizes = p
                .labels
                .iter()
                .flat_map(|row| row.iter().take(lengths))
                .filter_map(|&l| world.labels.get(l as usize).cloned())
                .collect();
            ProductTruth {
                product_id: p.id.clone(),
                brand: world
                    .brands
                    .get(p.brand)
                    .map(|b| b.name.clone())
                    .unwrap_or_default(),
                category: p.category.to_string(),
                system: system_scale(p.system).system,
                offset: p.offset,
                sizes,
                popularity: p.popularity,
            }
        })
        .collect();
    Truth {
        format_version: TRUTH_FORMAT_VERSION,
        conventions: Conventions::default(),
        seed,
        events: world.events,
        customers: world.customers,
        buyers,
        time_start_epoch_seconds: START_EPOCH_SECONDS,
        time_span_seconds: SPAN_SECONDS,
        model: world.params.clone(),
        systems,
        outcomes,
        brands,
        products,
        customers_file,
    }
}

/// Write `customer_id,true_size` for every id whose bit is set in `buyers`, by id.
pub(crate) fn write_customers<W: Write>(
    world: &World,
    buyers: &[u64],
    out: &mut W,
) -> std::io::Result<()> {
    out.write_all(b"customer_id,true_size\n")?;
    for (word_index, &word) in buyers.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            let b = u64::from(bits.trailing_zeros());
            bits &= bits - 1;
            let id = word_index as u64 * 64 + b + 1;
            writeln!(out, "{id},{:.4}", world.customer(id).size)?;
        }
    }
    Ok(())
}
