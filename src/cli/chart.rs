//! `runsize chart`: a brand's size labels on the common scale, with intervals, event
//! counts and the catalogue's typical label each one fits like.

use crate::model::artifact;
use crate::model::insight::chart::{fits_phrase, size_chart, ChartQuery};
use crate::model::ModelError;
use std::path::PathBuf;

/// Options of `runsize chart`.
#[derive(clap::Args, Debug, Clone)]
pub struct ChartArgs {
    /// Model artifact.
    #[arg(long)]
    pub model: PathBuf,
    /// Brand name, as in training.
    #[arg(long)]
    pub brand: String,
    /// Only the brand's products in this category.
    #[arg(long)]
    pub category: Option<String>,
    /// One product of the brand.
    #[arg(long)]
    pub product: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `runsize chart`.
pub fn run(args: &ChartArgs) -> Result<(), crate::Error> {
    let (model, _) = artifact::load_predictor(&args.model)?;
    let chart = size_chart(
        &model,
        &ChartQuery {
            brand: args.brand.clone(),
            category: args.category.clone(),
            product: args.product.clone(),
        },
    )
    .map_err(ModelError::from)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&chart).unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "{}{}{}: {} ({:+.2} sizes, se {:.2}); {}",
        chart.brand,
        chart
            .category
            .as_deref()
            .map(|c| format!(" / {c}"))
            .unwrap_or_default(),
        chart
            .product
            .as_deref()
            .map(|p| format!(" / {p}"))
            .unwrap_or_default(),
        chart.verdict,
        chart.runs,
        chart.se,
        chart.advice
    );
    println!(
        "{:<10} {:<7} {:>8} {:>17} {:>7} {:>8}  fits like",
        "label", "system", "position", "95% interval", "runs", "events"
    );
    for r in &chart.rows {
        println!(
            "{:<10} {:<7} {:>8.2} [{:>6.2}, {:>6.2}] {:>+7.2} {:>8}  {}",
            r.label,
            r.system,
            r.position,
            r.interval[0],
            r.interval[1],
            r.runs,
            r.n,
            fits_phrase(&r.fits_like)
        );
    }
    if chart.rows.is_empty() {
        println!("(no sized products)");
    }
    Ok(())
}
