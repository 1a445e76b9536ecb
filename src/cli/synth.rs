//! `runsize synth`: write synthetic events with known answers (see [`crate::synth`]).

use crate::synth::{generate_with_progress, ModelParams, SynthConfig, OUTCOME_VALUES};
use std::path::PathBuf;

/// Options of `runsize synth`.
#[derive(clap::Args, Debug, Clone)]
pub struct SynthArgs {
    /// Number of events (rows) to write.
    #[arg(long)]
    pub events: u64,
    /// Number of fictional brands.
    #[arg(long, default_value_t = 40)]
    pub brands: usize,
    /// Size of the customer universe [default: events / 2].
    #[arg(long)]
    pub customers: Option<u64>,
    /// Random seed; the same seed gives byte-identical output.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output file: .parquet or .csv. Truth files are written beside it as
    /// `<stem>.truth.json` and `<stem>.customers.csv`.
    #[arg(long)]
    pub out: PathBuf,
    /// Average products per brand [default: events / (500 * brands), clamped to 5..=2000].
    #[arg(long)]
    pub products_per_brand: Option<usize>,
    /// Probability that a purchase is returned for a reason unrelated to fit.
    #[arg(long, default_value_t = 0.06)]
    pub other_return_rate: f64,
    /// How much shoppers correct for a brand's reputation (0..=1).
    #[arg(long, default_value_t = 0.5)]
    pub reputation_k: f64,
    /// Events per chunk (memory vs. parallelism; does not change the output).
    #[arg(long, default_value_t = 1_000_000)]
    pub chunk_events: usize,
    /// Do not write `<stem>.customers.csv` (the per-customer true sizes).
    #[arg(long)]
    pub no_customer_truth: bool,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl SynthArgs {
    /// The library config these options describe.
    pub fn config(&self) -> SynthConfig {
        SynthConfig {
            events: self.events,
            brands: self.brands,
            customers: self.customers,
            seed: self.seed,
            chunk_events: self.chunk_events,
            products_per_brand: self.products_per_brand,
            customer_truth: !self.no_customer_truth,
            model: ModelParams {
                other_return_rate: self.other_return_rate,
                reputation_k: self.reputation_k,
                ..ModelParams::default()
            },
        }
    }
}

/// Run `runsize synth`: generate, then print a short summary to stdout.
pub fn run(args: &SynthArgs) -> Result<(), crate::Error> {
    let cfg = args.config();
    cfg.validate()?;
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(cfg.events);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {wide_bar} {human_pos}/{human_len} events ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    };
    let started = std::time::Instant::now();
    let summary = generate_with_progress(&cfg, &args.out, &|n| bar.set_position(n))?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "wrote {} events ({} brands, {} products, {} buyers of {} customers) to {} ({:.1} MB) in {:.1}s ({:.0} events/s)",
        summary.events,
        summary.brands,
        summary.products,
        summary.buyers,
        summary.customers,
        summary.out.display(),
        summary.bytes as f64 / 1e6,
        secs,
        summary.events as f64 / secs.max(1e-9)
    );
    let total = summary.events.max(1) as f64;
    let shares: Vec<String> = OUTCOME_VALUES
        .iter()
        .zip(summary.outcome_counts)
        .map(|(v, n)| format!("{v} {:.1}%", 100.0 * n as f64 / total))
        .collect();
    println!("outcomes: {}", shares.join(", "));
    println!("truth: {}", summary.truth.display());
    if let Some(c) = &summary.customers_file {
        println!("customer true sizes: {}", c.display());
    }
    Ok(())
}
