//! `runsize convert`: "I wear M at Acme: what at Zeta?" for one size or every size of
//! the source brand, with each target size's probability of fitting.

use crate::model::artifact;
use crate::model::insight::convert::{convert, ConvertQuery};
use crate::model::ModelError;
use std::path::PathBuf;

/// Options of `runsize convert`.
#[derive(clap::Args, Debug, Clone)]
pub struct ConvertArgs {
    /// Model artifact.
    #[arg(long)]
    pub model: PathBuf,
    /// Source brand and size, `BRAND:SIZE` (e.g. `Acme:M`), or `BRAND` for every size.
    #[arg(long)]
    pub from: String,
    /// Target brand.
    #[arg(long)]
    pub to: String,
    /// Category of both (default: each brand's whole range).
    #[arg(long)]
    pub category: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Split `BRAND:SIZE` at its last colon (a brand name may contain colons; a size does not).
pub fn split_from(text: &str) -> (String, Option<String>) {
    match text.rsplit_once(':') {
        Some((b, s)) if !b.is_empty() && !s.trim().is_empty() => {
            (b.to_string(), Some(s.trim().to_string()))
        }
        _ => (text.trim_end_matches(':').to_string(), None),
    }
}

/// `runsize convert`.
pub fn run(args: &ConvertArgs) -> Result<(), crate::Error> {
    let (model, _) = artifact::load_predictor(&args.model)?;
    let (from_brand, size) = split_from(&args.from);
    let table = convert(
        &model,
        &ConvertQuery {
            from_brand,
            size,
            to_brand: args.to.clone(),
            category: args.category.clone(),
        },
    )
    .map_err(ModelError::from)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&table).unwrap_or_default()
        );
        return Ok(());
    }
    for r in &table.rows {
        println!("{}", r.words);
        let odds: Vec<String> = r
            .sizes
            .iter()
            .map(|s| format!("{} {:.0}%", s.size, 100.0 * s.p_fit))
            .collect();
        println!("    fit probability: {}", odds.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_splits_at_the_last_colon() {
        assert_eq!(split_from("Acme:M"), ("Acme".into(), Some("M".into())));
        assert_eq!(
            split_from("A:B:32x30"),
            ("A:B".into(), Some("32x30".into()))
        );
        assert_eq!(split_from("Acme"), ("Acme".into(), None));
        assert_eq!(split_from("Acme:"), ("Acme".into(), None));
    }
}
