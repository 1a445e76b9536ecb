//! `runsize demo`: train on the bundled demo catalogue when no demo model exists yet,
//! then serve it, printing the URL and a ready-to-paste request.

use crate::data::{ingest, IngestConfig};
use crate::model::{artifact, FitParams};
use std::path::PathBuf;

/// Options of `runsize demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Demo events.
    #[arg(long, default_value = "data/demo.parquet")]
    pub data: PathBuf,
    /// Demo model artifact (trained if missing).
    #[arg(long, default_value = "models/demo.runsize")]
    pub model: PathBuf,
    /// Retrain even if the model exists.
    #[arg(long)]
    pub retrain: bool,
    /// Train only; do not serve.
    #[arg(long)]
    pub no_serve: bool,
}

/// Body features in the demo catalogue.
pub const DEMO_FEATURES: [&str; 3] = ["height_cm", "weight_kg", "body_shape"];

/// Train the demo model if needed; returns its path.
pub fn ensure_model(args: &DemoArgs) -> Result<PathBuf, crate::Error> {
    if args.model.exists() && !args.retrain {
        if artifact::load(&args.model).is_ok() {
            println!("using demo model {}", args.model.display());
            return Ok(args.model.clone());
        }
        println!(
            "demo model {} is unreadable: retraining",
            args.model.display()
        );
    }
    let mut cfg = IngestConfig::new(vec![args.data.display().to_string()]);
    cfg.customer_features = DEMO_FEATURES.iter().map(|s| s.to_string()).collect();
    println!("training on {} ...", args.data.display());
    let ingested = ingest(&cfg)?;
    let mut model = FitParams::default().fit(&ingested.events)?;
    model.summary.source = format!("demo catalogue {}", args.data.display());
    let header = artifact::save(&model, &args.model)?;
    super::train::print_summary(&model, &args.model, &header.model_id);
    Ok(args.model.clone())
}

/// An example request for the demo model: the first brand's first product.
pub fn example_request(model: &crate::model::Fitted) -> String {
    let product = model
        .products
        .first()
        .map(|p| p.name.clone())
        .unwrap_or_default();
    let brand = model
        .product_info
        .first()
        .and_then(|i| model.brands.get(i.brand as usize))
        .map(|b| b.name.clone())
        .unwrap_or_default();
    let other = model
        .brands
        .get(1)
        .map(|b| b.name.clone())
        .unwrap_or_else(|| brand.clone());
    let body = serde_json::json!({
        "product": {"brand": brand, "product_id": product},
        "shopper": {
            "history": [{"brand": other, "size": "M", "size_system": "letter", "outcome": "kept"}],
            "features": {"height_cm": 170.0}
        }
    });
    body.to_string()
}

/// `runsize demo`.
pub fn run(args: &DemoArgs) -> Result<(), crate::Error> {
    let path = ensure_model(args)?;
    if args.no_serve {
        return Ok(());
    }
    let (model, _) = artifact::load(&path)?;
    println!();
    println!("serving on http://{}", args.addr);
    println!("try:");
    println!(
        "  curl -s http://{}/v1/recommend -H 'content-type: application/json' -d '{}'",
        args.addr,
        example_request(&model)
    );
    println!("  curl -s 'http://{}/v1/brands?limit=5'", args.addr);
    drop(model);
    super::serve::serve_model(&path, &args.addr)
}
