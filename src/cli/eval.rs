//! `runsize eval`: the published metric (average one-vs-rest AUC) and friends.

use super::ingest_args::IngestArgs;
use crate::data::ingest;
use crate::model::artifact;
use crate::model::eval::{EvalReport, Metrics};
use std::path::PathBuf;

/// Options of `runsize eval`.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// Model artifact.
    #[arg(long)]
    pub model: PathBuf,
    /// Events with outcomes to evaluate on.
    #[command(flatten)]
    pub ingest: IngestArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Evaluate; returns the report.
pub fn evaluate(args: &EvalArgs) -> Result<EvalReport, crate::Error> {
    let (model, _) = artifact::load_predictor(&args.model)?;
    let cfg = args.ingest.to_config(true)?;
    let ingested = ingest(&cfg)?;
    Ok(model.evaluate(&ingested.events)?)
}

fn line(name: &str, m: &Metrics) -> String {
    format!(
        "{name:<18} n={:<8} auc {:.4} (small {:.4} fit {:.4} large {:.4})  logloss {:.4}  acc {:.4}  ece {:.4}",
        m.n, m.auc_avg, m.auc[0], m.auc[1], m.auc[2], m.log_loss, m.accuracy, m.ece
    )
}

/// `runsize eval`.
pub fn run(args: &EvalArgs) -> Result<(), crate::Error> {
    let r = evaluate(args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        return Ok(());
    }
    println!("{}", line("overall", &r.overall));
    for s in &r.segments {
        println!("{}", line(&format!("{} {}", s.by, s.bucket), &s.metrics));
    }
    Ok(())
}
