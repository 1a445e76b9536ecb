//! `runsize eval`: the published metric (average one-vs-rest AUC) and friends.

use super::ingest_args::{model_features, IngestArgs};
use crate::data::ingest;
use crate::model::artifact;
use crate::model::eval::{EvalReport, Metrics};
use crate::model::insight::worth::{self, Reliability, WorthRow};
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
    /// Worker threads of the command: reading and scoring (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Evaluate; returns the report.
pub fn evaluate(args: &EvalArgs) -> Result<EvalReport, crate::Error> {
    Ok(evaluate_all(args)?.0)
}

/// Evaluate; returns the report, the worth table and the reliability table.
pub fn evaluate_all(
    args: &EvalArgs,
) -> Result<(EvalReport, Vec<WorthRow>, Vec<Reliability>), crate::Error> {
    crate::model::threads::capped(args.threads, || evaluate_in(args))
}

/// [`evaluate_all`] in the pool it runs in.
fn evaluate_in(
    args: &EvalArgs,
) -> Result<(EvalReport, Vec<WorthRow>, Vec<Reliability>), crate::Error> {
    let (model, _) = artifact::load_predictor(&args.model)?;
    let mut cfg = args.ingest.to_config(true)?;
    model_features(&model.fitted().features, &mut cfg);
    let ingested = ingest(&cfg)?;
    let report = model.evaluate(&ingested.events)?;
    let held = worth::held_out(&model, &ingested.events, "eval")?;
    Ok((report, held.worth, held.reliability))
}

/// The JSON of `runsize eval --json`: the report's fields plus the worth and
/// reliability tables.
#[derive(serde::Serialize)]
struct EvalJson<'a> {
    #[serde(flatten)]
    report: &'a EvalReport,
    worth: &'a [WorthRow],
    reliability: &'a [Reliability],
}

/// The worth table as text lines.
pub fn worth_lines(rows: &[WorthRow]) -> Vec<String> {
    let pct = |x: f64| {
        if x.is_finite() {
            format!("{:5.1}%", 100.0 * x)
        } else {
            "     -".to_string()
        }
    };
    let mut out = vec![
        "worth: fit rate of purchases whose bought size was the size runsize would recommend, vs another size".to_string(),
        format!(
            "{:<8} {:>10} {:>8} {:>10} {:>8} {:>10} {:>8} {:>10} {:>8}",
            "level", "bought rec", "fit", "other", "fit", "smaller", "fit", "larger", "fit"
        ),
    ];
    for r in rows {
        out.push(format!(
            "{:<8} {:>10} {:>8} {:>10} {:>8} {:>10} {:>8} {:>10} {:>8}",
            r.level,
            r.matched_n,
            pct(r.matched_fit_rate),
            r.other_n,
            pct(r.other_fit_rate),
            r.smaller_n,
            pct(r.smaller_fit_rate),
            r.larger_n,
            pct(r.larger_fit_rate)
        ));
    }
    out
}

fn line(name: &str, m: &Metrics) -> String {
    format!(
        "{name:<18} n={:<8} auc {:.4} (small {:.4} fit {:.4} large {:.4})  logloss {:.4}  acc {:.4}  ece {:.4}",
        m.n, m.auc_avg, m.auc[0], m.auc[1], m.auc[2], m.log_loss, m.accuracy, m.ece
    )
}

/// `runsize eval`.
pub fn run(args: &EvalArgs) -> Result<(), crate::Error> {
    let (r, worth, reliability) = evaluate_all(args)?;
    if args.json {
        let out = EvalJson {
            report: &r,
            worth: &worth,
            reliability: &reliability,
        };
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    println!("{}", line("overall", &r.overall));
    for s in &r.segments {
        println!("{}", line(&format!("{} {}", s.by, s.bucket), &s.metrics));
    }
    for l in worth_lines(&worth) {
        println!("{l}");
    }
    Ok(())
}
