//! `runsize brands`: how each brand, product or category runs.

use crate::model::artifact;
use crate::model::report::ProfileBy;
use std::path::PathBuf;

/// What to list.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// Brands.
    Brand,
    /// Products.
    Product,
    /// Categories.
    Category,
}

/// Options of `runsize brands`.
#[derive(clap::Args, Debug, Clone)]
pub struct BrandsArgs {
    /// Model artifact.
    #[arg(long)]
    pub model: PathBuf,
    /// What to profile.
    #[arg(long, value_enum, default_value_t = By::Brand)]
    pub by: By,
    /// Show at most this many.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `runsize brands`.
pub fn run(args: &BrandsArgs) -> Result<(), crate::Error> {
    let (model, _) = artifact::load_predictor(&args.model)?;
    let by = match args.by {
        By::Brand => ProfileBy::Brand,
        By::Product => ProfileBy::Product,
        By::Category => ProfileBy::Category,
    };
    let all = model.profiles(by);
    let profiles = all.get(..args.top.min(all.len())).unwrap_or(all);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&profiles).unwrap_or_default()
        );
        return Ok(());
    }
    println!(
        "{:<26} {:>7} {:>17} {:>9}  verdict",
        "key", "offset", "95% interval", "events"
    );
    for p in profiles {
        println!(
            "{:<26} {:>+7.2} [{:>+6.2}, {:>+6.2}] {:>9}  {}: {}",
            p.key, p.offset, p.interval[0], p.interval[1], p.n, p.verdict, p.advice
        );
    }
    if profiles.is_empty() {
        println!("(none: the training data had no such key)");
    }
    Ok(())
}
