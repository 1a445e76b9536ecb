//! Synthetic purchase/return events with known answers: brands and products that run
//! small or large, customers with true sizes, and a truth file to check a model against.
//!
//! The generative model (all constants in [`ModelParams`], recorded in the truth file):
//! every customer has a latent size `u ~ N(0, 1.3)` on a common scale (letter steps,
//! M = 0); each size system maps onto it by `pos = origin + scale * u` ([`SYSTEMS`]).
//! Brands run `N(0, 0.45)` steps large (> 0) or small (< 0), products scatter `N(0, 0.25)`
//! around their brand. Shoppers aim at `u - 0.5 * brand offset` plus noise and take the
//! nearest offered size; the outcome is an ordinal logistic in the gap between their size
//! and the article's; 6% of rows become returns for other reasons.
//!
//! Every random number is a pure function of (seed, what, index), so the output is
//! byte-identical for a seed whatever the chunk size or thread count. Events are drawn
//! and encoded in parallel chunks and streamed to disk in order: memory stays bounded
//! (one window of chunks plus one bit per customer) however many events are written.

mod draw;
pub mod events;
mod names;
pub mod sink;
pub mod truth;
pub mod world;

pub use events::{OUTCOME_VALUES, SPAN_SECONDS, START_EPOCH_SECONDS};
pub use sink::{format_iso_seconds, Format, COLUMNS};
pub use truth::{
    read_customer_sizes, read_truth, truth_paths, BrandTruth, Conventions, OutcomeValue,
    ProductTruth, Truth,
};
pub use world::{Market, ModelParams, SystemScale, SYSTEMS};

use crate::data::DataError;
use rayon::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Most events one run may write (10 billion).
pub const MAX_EVENTS: u64 = 10_000_000_000;

/// Largest customer universe (one billion; the run keeps one bit per customer).
pub const MAX_CUSTOMERS: u64 = 1_000_000_000;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthConfig {
    /// Number of events (rows). Required; 1..=10^10.
    pub events: u64,
    /// Number of brands. Default 40.
    pub brands: usize,
    /// Size of the customer universe, 1..=10^9. Default `None` = `events / 2` (at least 1,
    /// at most 10^9).
    pub customers: Option<u64>,
    /// Random seed. Default 0.
    pub seed: u64,
    /// Events per chunk (generated in parallel, written in order). Default 1,000,000.
    /// Does not change the output.
    pub chunk_events: usize,
    /// Average products per brand (each brand gets 0.5x..1.5x of it). Default `None` =
    /// `events / (500 * brands)` clamped to 5..=2000.
    pub products_per_brand: Option<usize>,
    /// Write `<stem>.customers.csv` with every buyer's true size. Default true.
    pub customer_truth: bool,
    /// Model constants. Default [`ModelParams::default`].
    pub model: ModelParams,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            events: 100_000,
            brands: 40,
            customers: None,
            seed: 0,
            chunk_events: 1_000_000,
            products_per_brand: None,
            customer_truth: true,
            model: ModelParams::default(),
        }
    }
}

impl SynthConfig {
    /// A config for `events` events with every other setting at its default.
    pub fn new(events: u64) -> Self {
        SynthConfig {
            events,
            ..SynthConfig::default()
        }
    }

    /// The customer universe size this config uses.
    pub fn effective_customers(&self) -> u64 {
        self.customers
            .unwrap_or((self.events / 2).min(MAX_CUSTOMERS))
            .max(1)
    }

    /// The average products per brand this config uses.
    pub fn effective_products_per_brand(&self) -> usize {
        self.products_per_brand.unwrap_or_else(|| {
            let per = self.events / (500 * self.brands.max(1) as u64);
            per.clamp(5, 2000) as usize
        })
    }

    /// Reject impossible settings with a message saying what is expected.
    pub fn validate(&self) -> Result<(), DataError> {
        let bad = |message: String| DataError::Config {
            what: "synth option",
            message,
        };
        if self.events == 0 || self.events > MAX_EVENTS {
            return Err(bad(format!(
                "--events {}: expected 1..={MAX_EVENTS}",
                self.events
            )));
        }
        if self.brands == 0 || self.brands > 100_000 {
            return Err(bad(format!(
                "--brands {}: expected 1..=100000",
                self.brands
            )));
        }
        if let Some(c) = self.customers {
            if c == 0 || c > MAX_CUSTOMERS {
                return Err(bad(format!(
                    "--customers {c}: expected 1..={MAX_CUSTOMERS}"
                )));
            }
        }
        if self.chunk_events == 0 || self.chunk_events > 50_000_000 {
            return Err(bad(format!(
                "chunk size {}: expected 1..=50000000",
                self.chunk_events
            )));
        }
        if let Some(p) = self.products_per_brand {
            if p == 0 || p > 100_000 {
                return Err(bad(format!(
                    "--products-per-brand {p}: expected 1..=100000"
                )));
            }
        }
        let products = self.brands as u128 * self.effective_products_per_brand() as u128;
        if products > 20_000_000 {
            return Err(bad(format!(
                "{products} products (brands x products per brand) is too many; at most 20000000"
            )));
        }
        self.model.validate()
    }
}

/// What a run wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct SynthSummary {
    /// The events file.
    pub out: PathBuf,
    /// Its format.
    pub format: Format,
    /// Its size in bytes.
    pub bytes: u64,
    /// The truth file.
    pub truth: PathBuf,
    /// The customers truth file, if written.
    pub customers_file: Option<PathBuf>,
    /// Events written.
    pub events: u64,
    /// Customer universe size.
    pub customers: u64,
    /// Customers with at least one event.
    pub buyers: u64,
    /// Brands.
    pub brands: usize,
    /// Products.
    pub products: usize,
    /// Events per value of [`OUTCOME_VALUES`].
    pub outcome_counts: [u64; 6],
}

/// Generate `cfg.events` events into `out` (`.parquet` or `.csv`) plus the truth files
/// `<stem>.truth.json` and `<stem>.customers.csv` beside it. Every file is written to a
/// temporary file in the same directory and renamed into place when complete.
pub fn generate(cfg: &SynthConfig, out: &Path) -> Result<SynthSummary, DataError> {
    generate_with_progress(cfg, out, &|_| {})
}

/// [`generate`], calling `progress(events_written_so_far)` after every written chunk.
pub fn generate_with_progress(
    cfg: &SynthConfig,
    out: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SynthSummary, DataError> {
    cfg.validate()?;
    let format = Format::of(out)?;
    let world = world::World::build(&world::WorldSpec {
        params: &cfg.model,
        seed: cfg.seed,
        events: cfg.events,
        brands: cfg.brands,
        customers: cfg.effective_customers(),
        products_per_brand: cfg.effective_products_per_brand(),
    })?;

    let words = usize::try_from(world.customers.div_ceil(64)).map_err(|_| DataError::Config {
        what: "synth option",
        message: "too many customers for this platform".into(),
    })?;
    let mut buyers = vec![0u64; words];
    let mut outcome_counts = [0u64; 6];

    let mut file = sink::AtomicFile::create(out)?;
    {
        let mut buf = std::io::BufWriter::with_capacity(4 << 20, file.file());
        let mut sink = sink::Sink::open(format, &mut buf, out)?;
        let chunk = cfg.chunk_events as u64;
        let n_chunks = cfg.events.div_ceil(chunk);
        let window = rayon::current_num_threads().clamp(1, 8) as u64;
        let mut written = 0u64;
        let mut first = 0u64;
        while first < n_chunks {
            let last = (first + window).min(n_chunks);
            let encoded: Vec<Result<(events::Chunk, sink::Encoded), DataError>> = (first..last)
                .into_par_iter()
                .map(|i| {
                    let start = i * chunk;
                    let end = (start + chunk).min(cfg.events);
                    let c = events::draw_chunk(&world, start, end);
                    let e = match format {
                        Format::Parquet => sink::Encoded::Frame(sink::to_frame(&world, &c, out)?),
                        Format::Csv => sink::Encoded::Text(sink::to_csv(&world, &c)),
                    };
                    Ok((c, e))
                })
                .collect();
            for item in encoded {
                let (c, e) = item?;
                sink.write(&e, out)?;
                for &id in &c.customer {
                    let i = id.saturating_sub(1);
                    if let Some(w) = buyers.get_mut((i / 64) as usize) {
                        *w |= 1u64 << (i % 64);
                    }
                }
                for &o in &c.outcome {
                    if let Some(n) = outcome_counts.get_mut(o as usize) {
                        *n += 1;
                    }
                }
                written += c.len() as u64;
                progress(written);
            }
            first = last;
        }
        sink.finish(out)?;
        buf.flush().map_err(|e| DataError::Write {
            path: out.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    let bytes = file.commit()?;

    let buyer_count: u64 = buyers.iter().map(|w| u64::from(w.count_ones())).sum();
    let (truth_path, customers_path) = truth_paths(out);
    let customers_file = if cfg.customer_truth {
        let mut f = sink::AtomicFile::create(&customers_path)?;
        {
            let mut buf = std::io::BufWriter::with_capacity(1 << 20, f.file());
            truth::write_customers(&world, &buyers, &mut buf)
                .and_then(|()| buf.flush())
                .map_err(|e| DataError::Write {
                    path: customers_path.clone(),
                    message: e.to_string(),
                })?;
        }
        f.commit()?;
        Some(customers_path)
    } else {
        None
    };
    let truth = truth::build_truth(
        &world,
        cfg.seed,
        buyer_count,
        customers_file
            .as_ref()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned()),
    );
    let mut f = sink::AtomicFile::create(&truth_path)?;
    {
        let mut buf = std::io::BufWriter::new(f.file());
        serde_json::to_writer_pretty(&mut buf, &truth)
            .map_err(std::io::Error::from)
            .and_then(|()| buf.write_all(b"\n"))
            .and_then(|()| buf.flush())
            .map_err(|e| DataError::Write {
                path: truth_path.clone(),
                message: e.to_string(),
            })?;
    }
    f.commit()?;

    Ok(SynthSummary {
        out: out.to_path_buf(),
        format,
        bytes,
        truth: truth_path,
        customers_file,
        events: cfg.events,
        customers: world.customers,
        buyers: buyer_count,
        brands: world.brands.len(),
        products: world.products.len(),
        outcome_counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_events() {
        let c = SynthConfig::new(300_000);
        assert_eq!(c.effective_customers(), 150_000);
        assert_eq!(c.effective_products_per_brand(), 15);
        let c = SynthConfig {
            brands: 24,
            ..SynthConfig::new(300_000)
        };
        assert_eq!(c.effective_products_per_brand(), 25);
        assert_eq!(SynthConfig::new(1).effective_customers(), 1);
        assert_eq!(
            SynthConfig::new(100_000_000).effective_products_per_brand(),
            2000
        );
    }

    #[test]
    fn validate_rejects_bad_options() {
        assert!(SynthConfig::new(0).validate().is_err());
        assert!(SynthConfig {
            brands: 0,
            ..SynthConfig::new(10)
        }
        .validate()
        .is_err());
        assert!(SynthConfig {
            customers: Some(0),
            ..SynthConfig::new(10)
        }
        .validate()
        .is_err());
        assert!(SynthConfig {
            chunk_events: 0,
            ..SynthConfig::new(10)
        }
        .validate()
        .is_err());
        assert!(SynthConfig::new(10).validate().is_ok());
    }
}
