//! `runsize predict`: every input column plus p_small, p_fit, p_large, same rows, same
//! order; rows that cannot be scored (bad size label, missing customer) get nulls.

use super::ingest_args::{model_features, IngestArgs};
use crate::data::ingest::ingest_with_frame;
use crate::data::output::write_frame;
use crate::data::{DataError, RowIds};
use crate::model::artifact;
use crate::model::score::ScoreOptions;
use polars::prelude::{Column, DataFrame};
use std::path::PathBuf;

/// Options of `runsize predict`.
#[derive(clap::Args, Debug, Clone)]
pub struct PredictArgs {
    /// Model artifact.
    #[arg(long)]
    pub model: PathBuf,
    /// Events to score (outcome column optional).
    #[command(flatten)]
    pub ingest: IngestArgs,
    /// Output file (.parquet, .csv, .ndjson), written atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// Do not use the purchased size itself as evidence of the shopper's size: score
    /// each row as the server scores a size on offer.
    #[arg(long)]
    pub without_choice: bool,
    /// Worker threads of the command: reading and scoring (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Append probability columns to `df` for the scored rows.
pub fn append_probabilities(
    df: &mut DataFrame,
    rows: &RowIds,
    probs: &[[f64; 3]],
) -> Result<(), DataError> {
    let n = df.height();
    let mut cols: [Vec<Option<f64>>; 3] = [vec![None; n], vec![None; n], vec![None; n]];
    for (r, p) in rows.iter().zip(probs) {
        let r = r as usize;
        if r < n && p.iter().all(|x| x.is_finite()) {
            for k in 0..3 {
                cols[k][r] = Some(p[k]);
            }
        }
    }
    for (name, values) in ["p_small", "p_fit", "p_large"].into_iter().zip(cols) {
        if df.get_column_names().iter().any(|c| c.as_str() == name) {
            return Err(DataError::Config {
                what: "--events",
                message: format!("the input already has a column '{name}'; rename it first"),
            });
        }
        df.with_column(Column::new(name.into(), values))
            .map_err(|e| DataError::Config {
                what: "--events",
                message: e.to_string(),
            })?;
    }
    Ok(())
}

/// CPU seconds used by this process so far (all threads), if the clock is available.
fn cpu_seconds() -> Option<f64> {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime only writes the timespec we pass, which we own.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
        (rc == 0).then_some(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `runsize predict`.
pub fn run(args: &PredictArgs) -> Result<(), crate::Error> {
    crate::model::threads::capped(args.threads, || run_in(args))
}

/// [`run`] in the pool it runs in.
fn run_in(args: &PredictArgs) -> Result<(), crate::Error> {
    let (model, _) = artifact::load_predictor(&args.model)?;
    let mut cfg = args.ingest.to_config(false)?;
    model_features(&model.fitted().features, &mut cfg);
    let (mut df, ingested) = ingest_with_frame(&cfg)?;
    let t0 = std::time::Instant::now();
    let cpu0 = cpu_seconds();
    let opts = ScoreOptions {
        choice_evidence: !args.without_choice,
    };
    let probs = model.score_with(&ingested.events, &opts);
    let secs = t0.elapsed().as_secs_f64();
    // CPU time of the process over the scoring (all threads): unlike wall time it
    // hardly depends on what else the machine is running
    let cpu = cpu_seconds().zip(cpu0).map_or(f64::NAN, |(b, a)| b - a);
    tracing::info!(
        target: "runsize::predict",
        rows = probs.len(),
        seconds = secs,
        rows_per_second = probs.len() as f64 / secs.max(1e-9),
        cpu_seconds = cpu,
        rows_per_cpu_second = probs.len() as f64 / cpu.max(1e-9),
        threads = rayon::current_num_threads(),
        "scored"
    );
    append_probabilities(&mut df, &ingested.events.row, &probs)?;
    write_frame(&mut df, &args.out)?;
    println!(
        "wrote {} rows ({} scored) to {}",
        df.height(),
        probs.iter().filter(|p| p[0].is_finite()).count(),
        args.out.display()
    );
    Ok(())
}
