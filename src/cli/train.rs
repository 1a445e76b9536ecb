//! `runsize train`: ingest events, fit, write the artifact atomically, print a summary.

use super::ingest_args::IngestArgs;
use crate::data::ingest;
use crate::model::fitdata::FitData;
use crate::model::fitted::IterationStats;
use crate::model::insight::worth::HeldOut;
use crate::model::memory::{mib, process_memory};
use crate::model::report::ProfileBy;
use crate::model::stack::Select;
use crate::model::stack_fit::{self, Solver, StackParams};
use crate::model::{artifact, FitParams, Fitted, Predictor};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Fit events up to which the second stage's learners are fitted beside the final
/// structural fit (from the cross-fitted inputs, which do not need it); above, after it,
/// so the learners' design is not held beside the fit's data (the bound of the fold
/// models' side-by-side fits, `SIDE_BY_SIDE_EVENTS`).
const LEARNERS_BESIDE_FIT_EVENTS: usize = 1 << 20;

/// `--stack-solver` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SolverArg {
    /// Newton's method (default).
    Newton,
    /// linfa-logistic's L-BFGS.
    Lbfgs,
}

/// How the second stage chooses its penalties (`--stack-select`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectArg {
    /// The highest evidence along the penalty path, each penalty fitted once (default).
    Evidence,
    /// The lowest held-out log loss in cross-validation by customer.
    Cv,
}

/// Options of `runsize train`.
#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    /// Where the events come from, and how to read them.
    #[command(flatten)]
    pub ingest: IngestArgs,
    /// Where the fit's passes run.
    #[command(flatten)]
    pub engine: super::engine_args::EngineArgs,
    /// Model artifact to write.
    #[arg(long, default_value = "models/model.runsize")]
    pub out: PathBuf,
    /// Maximum fitting iterations.
    #[arg(long, default_value_t = FitParams::default().max_iter)]
    pub max_iter: usize,
    /// Minimum fitting iterations before the tolerance may stop the fit.
    #[arg(long, default_value_t = FitParams::default().min_iter)]
    pub min_iter: usize,
    /// Stop when the objective changes by less than this (relative).
    #[arg(long, default_value_t = FitParams::default().tol)]
    pub tol: f64,
    /// Also stop when article sizes and band widths move by less than this per
    /// iteration (RMS, in sizes).
    #[arg(long, default_value_t = FitParams::default().param_tol)]
    pub param_tol: f64,
    /// `--param-tol` of a warm-started fit: the final fit from the cross-fitting fold
    /// models, or one started by `--init` (it starts within a few hundredths of a size
    /// of the optimum).
    #[arg(long, default_value_t = FitParams::default().warm_param_tol)]
    pub warm_param_tol: f64,
    /// Big data: iterate on a sample of customers with about this many events (or 12
    /// per article-size, if more) until the parameters settle, then refine on all events
    /// (0 = always all events).
    #[arg(long, default_value_t = FitParams::default().warm_start_events)]
    pub warm_start_events: usize,
    /// Newton steps on each customer's size per iteration (warm-started from the last
    /// iteration; the final pass takes this many plus two).
    #[arg(long, default_value_t = FitParams::default().customer_newton_steps)]
    pub newton_steps: usize,
    /// Worker threads of the whole train: reading, cross-fitting, the fits, the
    /// learners and the held-out evaluation (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Do not learn per-brand / category / product fit-band widths.
    #[arg(long)]
    pub no_dispersion: bool,
    /// Leave the customer table out of the artifact (smaller; known customer ids are
    /// then treated as new shoppers).
    #[arg(long)]
    pub no_customers: bool,
    /// Do not fit the second stage (calibrated logistic regression on the structural
    /// model's log-odds and smoothed product / size / customer outcome rates).
    #[arg(long)]
    pub no_stack: bool,
    /// Skip the second stage (with a warning) above this many fit events; 0 (default) = no
    /// limit: the default model includes the stage at every size (100M synthetic events:
    /// about 3 min and 3.9 GiB peak with it on 2 cores, see BENCHMARKS.md). A cap for
    /// machines whose memory holds the structural fit but not the stage (its peak holds
    /// the event table through cross-fitting).
    #[arg(long, default_value_t = 0)]
    pub stack_max_events: usize,
    /// Out-of-sample inputs of the second stage: refit the structural model this many
    /// times on all but one fold of the events (default 2: the two halves, about one
    /// structural fit in all; 0 = leave-one-out approximations instead: no refits, less
    /// accurate).
    #[arg(long, default_value_t = StackParams::default().cross_fit)]
    pub stack_cross_fit: usize,
    /// With more than two cross-fitting folds, warm-start each refit from the model of
    /// the half of the folds that does not hold its fold, instead of fitting it from
    /// scratch (the default): the same inputs to the fit's tolerance, cross-fitting in
    /// about half the time.
    #[arg(long)]
    pub stack_warm_refits: bool,
    /// Most iterations of each warm-started cross-fitting refit (it stops earlier when
    /// it converges).
    #[arg(long, default_value_t = StackParams::default().refit_iter)]
    pub stack_refit_iter: usize,
    /// Parameter tolerance of the cross-fitting refits (0 = the fit's own `--param-tol`;
    /// never tighter than it): they only give the second stage its inputs.
    #[arg(long, default_value_t = StackParams::default().refit_param_tol)]
    pub stack_refit_tol: f64,
    /// Start the fit from this model's parameters (e.g. yesterday's), matched by key:
    /// size labels, brands, categories, products, products in sizes and customers; new
    /// keys start as in a cold fit. The big-data sample phase is skipped and the fit may
    /// stop after 2 iterations. A file that is not a readable runsize model of this
    /// format is an error; a model sharing no size label, brand, category or product
    /// with the events gives a cold start (with a warning).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Most fit events the second stage's learners are fitted on: above it, the events of
    /// a random sample of customers that hold about this many (0 = every event; the
    /// count tables and structural refits always use every event).
    #[arg(long, default_value_t = StackParams::default().max_rows)]
    pub stack_max_rows: usize,
    /// Solver of the second stage's purchase learner: `newton` (the default) or `lbfgs`
    /// (linfa-logistic's multinomial regression, slower; BENCHMARKS.md compares them).
    #[arg(long, value_enum, default_value_t = SolverArg::Newton)]
    pub stack_solver: SolverArg,
    /// Candidate ridge penalties of the second stage's learners (default
    /// 1,10,100,1000; one value: no search).
    #[arg(long, value_delimiter = ',')]
    pub stack_lambdas: Option<Vec<f64>>,
    /// How the second stage chooses among the penalties: `evidence` (the default: each
    /// fitted once on every row, the marginal likelihood decides) or `cv`
    /// (cross-validation by customer, `--stack-cv-folds` fits per penalty and a final
    /// fit; the L-BFGS solver always uses it).
    #[arg(long, value_enum, default_value_t = SelectArg::Evidence)]
    pub stack_select: SelectArg,
    /// Cross-validation folds (by customer) choosing the second stage's penalties with
    /// `--stack-select cv` (1 = no cross-validation: the first penalty).
    #[arg(long, default_value_t = StackParams::default().folds)]
    pub stack_cv_folds: usize,
    /// Evaluate on this part of `--split` after training and store the held-out
    /// reliability and worth tables in the artifact (for the model page). Default:
    /// `valid` when training on `--part train` of a split with more parts; `none` skips.
    #[arg(long = "held-out-part", value_name = "PART")]
    pub held_out_part: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    /// The fit parameters these options describe (validated by the fit).
    pub fn fit_params(&self) -> FitParams {
        FitParams::default()
            .max_iter(self.max_iter)
            .min_iter(self.min_iter)
            .tol(self.tol)
            .param_tol(self.param_tol)
            .warm_param_tol(self.warm_param_tol)
            .warm_start_events(self.warm_start_events)
            .threads(self.threads)
            .customer_newton_steps(self.newton_steps)
            .store_customers(!self.no_customers)
            .learn_dispersion(!self.no_dispersion)
    }
}

/// Train and write the model; returns it. With `--threads N` every parallel part of
/// the job (ingest encoding, cross-fitting, the fits, the learners, the held-out
/// evaluation) runs on one pool of N threads.
pub fn train(args: &TrainArgs) -> Result<Fitted, crate::Error> {
    let pool = crate::model::threads::pool(args.threads)?;
    let pool = pool.as_ref();
    crate::model::threads::within(pool, || train_in(args, pool))
}

/// [`train`] inside its thread pool (`None`: rayon's global pool).
fn train_in(args: &TrainArgs, pool: Option<&rayon::ThreadPool>) -> Result<Fitted, crate::Error> {
    let mut cfg = args.ingest.to_config(true)?;
    // The fit never reads timestamps (time filters are applied while reading).
    cfg.keep_timestamps = false;
    let params = args.fit_params();
    params.validate()?;
    let init = match &args.init {
        Some(path) => Some(artifact::load(path)?.0),
        None => None,
    };
    let mut ingested = ingest(&cfg)?;
    tracing::info!(target: "runsize::train", "{}", ingested.report.summary());
    release_free_memory();
    log_memory("ingested", ingested.events.heap_bytes());
    // Group the fit events by customer, freeing the per-event columns on the way: the fit
    // reads only the prepared data plus dictionaries, size labels and customer features.
    // The second stage refits on the events themselves: keep them unless it is off.
    let fit_events = ingested
        .events
        .outcome
        .iter()
        .filter(|o| o.class().is_some())
        .count();
    let stack =
        !args.no_stack && (args.stack_max_events == 0 || fit_events <= args.stack_max_events);
    if !args.no_stack && !stack {
        tracing::warn!(
            target: "runsize::train",
            fit_events,
            limit = args.stack_max_events,
            "second stage skipped: more fit events than --stack-max-events (raise it, or 0 for no limit, to fit it anyway)"
        );
    }
    let stack_params = stack.then(|| StackParams {
        cross_fit: args.stack_cross_fit,
        structural: params.clone(),
        max_rows: args.stack_max_rows,
        exact_refits: !args.stack_warm_refits,
        refit_iter: args.stack_refit_iter,
        refit_param_tol: args.stack_refit_tol,
        lambdas: (args.stack_lambdas.clone()).unwrap_or_else(|| StackParams::default().lambdas),
        folds: args.stack_cv_folds,
        select: match args.stack_select {
            SelectArg::Evidence => Select::Evidence,
            SelectArg::Cv => Select::CrossValidation,
        },
        solver: match args.stack_solver {
            SolverArg::Newton => Solver::Newton,
            SolverArg::Lbfgs => Solver::Lbfgs,
        },
        ..StackParams::default()
    });
    // Cross-fitting first: its fold models never see the final model, and a converged
    // one is where the final fit on all the events starts (unless --init names a start):
    // it only has to add the fold that model lacks.
    let t_stack = std::time::Instant::now();
    let mut cross_fitted = match &stack_params {
        Some(sp) if sp.cross_fit >= 2 => Some(stack_fit::cross_fitted(&ingested.events, sp)?),
        _ => None,
    };
    let stack_seconds = t_stack.elapsed().as_secs_f64();
    let fold_start = cross_fitted.as_mut().and_then(|c| c.warm_start.take());
    let init = init.or(fold_start);
    // Cross-fitted inputs need no more per-event columns (the final count tables are
    // read from the fit data): free them before the final fit, as without the stage.
    // Leave-one-out inputs are computed from the events after the fit: keep them.
    let release = !stack || cross_fitted.is_some();
    let data = if release {
        FitData::from_events_releasing(&mut ingested.events)
    } else {
        FitData::from_events(&ingested.events)
    };
    tracing::info!(
        target: "runsize::train",
        fit_events = data.len(),
        article_sizes = data.article_sizes.len(),
        event_columns_freed = release,
        "prepared fit data"
    );
    release_free_memory();
    log_memory("prepared", ingested.events.heap_bytes());
    let bar = (!args.quiet && std::io::stderr().is_terminal()).then(|| {
        let pb = indicatif::ProgressBar::new(args.max_iter as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "fitting {bar:30} {pos}/{len} iterations  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    });
    let mut on_iter = |s: &IterationStats| {
        if let Some(pb) = &bar {
            pb.set_position(s.iter as u64);
            pb.set_message(format!(
                "objective {:.5}  held-out log loss {:.5}",
                s.objective, s.loo_log_loss
            ));
        }
        tracing::info!(
            target: "runsize::train",
            iter = s.iter,
            objective = s.objective,
            loo_log_loss = s.loo_log_loss,
            seconds = s.seconds,
            param_change = s.param_change,
            events = s.events,
            pass_seconds = s.pass_seconds,
            update_seconds = s.update_seconds,
            "iteration"
        );
    };
    let inputs = (&ingested.events, &data, init.as_ref());
    // Small data: the learners read only the cross-fitted inputs, not the final model,
    // so they are fitted beside the final fit (each leaves a core idle in its serial
    // parts); on big data one after the other, as the learners' design would sit beside
    // the fit's data in memory
    let beside = stack_params
        .as_ref()
        .zip(cross_fitted.as_ref())
        .filter(|_| data.len() <= LEARNERS_BESIDE_FIT_EVENTS);
    let (model, early_learners) = std::thread::scope(|s| {
        // the learners' thread joins the train's pool (its parallel work would otherwise
        // run on rayon's global pool, past `--threads`)
        let learners = beside.map(|(sp, cf)| {
            s.spawn(move || crate::model::threads::within(pool, || sp.fit_learners(cf.inputs())))
        });
        let model = args.engine.fit(&params, inputs, &mut on_iter);
        let learners = learners.map(|h| {
            // in the train's pool this thread is one of its workers: it waits by running
            // the pool's pending work (with `--threads 1`, the learners' own job, which
            // no other worker would take), not by blocking
            while !h.is_finished() {
                if rayon::yield_now() != Some(rayon::Yield::Executed) {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
        });
        (model, learners)
    });
    let mut model = model?;
    let early_learners = early_learners.transpose()?;
    drop(init);
    // the cross-fitted stage counts its tables from the fit data
    let data = cross_fitted.is_some().then_some(data);
    log_memory("fitted", 0);
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    if let Some(sp) = stack_params {
        let t0 = std::time::Instant::now();
        let predictor = Predictor::new(model)?;
        let (fitted, fitted_stack) = match (cross_fitted, data) {
            (Some(cf), Some(data)) => {
                let inputs = sp.complete_inputs(&predictor, (&ingested.events, &data), cf)?;
                // the learners read only their inputs: free the events, the fit data and
                // the predictor's indexes first (the model holds the dictionaries and
                // features; 10M customers' index is ~40 MB)
                let fitted = predictor.into_fitted();
                drop(data);
                drop(std::mem::take(&mut ingested.events));
                release_free_memory();
                let stack = match early_learners {
                    Some(learners) => sp.assemble(learners, inputs.tables),
                    None => sp.fit_inputs(inputs)?,
                };
                (fitted, stack)
            }
            _ => {
                let stack = sp.fit(&predictor, &ingested.events)?;
                (predictor.into_fitted(), stack)
            }
        };
        model = fitted;
        model.stack = Some(fitted_stack);
        tracing::info!(
            target: "runsize::train",
            seconds = stack_seconds + t0.elapsed().as_secs_f64(),
            "second stage fitted"
        );
    }
    // Dictionaries and features are in the model now: free them before it is serialised,
    // and give the heap the fit and the learners freed back before the held-out
    // evaluation reads its events
    let report = ingested.report;
    drop(ingested.events);
    release_free_memory();
    model.summary.source = format!(
        "files: {}",
        report
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (model, held_out) = held_out(model, args)?;
    let header = artifact::save_with(&model, &args.out, held_out.as_ref())?;
    log_memory("saved", 0);
    if args.json {
        let out = serde_json::json!({
            "model": args.out,
            "model_id": header.model_id,
            "summary": model.summary,
            "held_out": held_out,
            "globals": model.globals,
            "ingest": report,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        print_summary(&model, &args.out, &header.model_id);
        if let Some(h) = &held_out {
            println!(
                "held out    {} events ({}): auc {:.4}, log loss {:.4}, ece {:.4}",
                h.n, h.source, h.auc_avg, h.log_loss, h.ece
            );
            for l in super::eval::worth_lines(&h.worth) {
                println!("            {l}");
            }
        }
    }
    Ok(model)
}

/// The held-out part to evaluate after training (see [`TrainArgs::held_out_part`]).
fn held_out_part(args: &TrainArgs) -> Option<String> {
    let split = args.ingest.split.as_deref()?;
    match args.held_out_part.as_deref().map(str::trim) {
        Some("none") => None,
        Some(p) => Some(p.to_string()),
        None => {
            let parts = super::ingest_args::parse_split(split).ok()?.len();
            let train = args.ingest.part.as_deref()?;
            (super::ingest_args::parse_part(train).ok()? == 0 && parts > 1).then(|| "valid".into())
        }
    }
}

/// Evaluate the trained model on its held-out part, if it has one (the model is handed
/// back: a predictor is built around it for the evaluation).
fn held_out(model: Fitted, args: &TrainArgs) -> Result<(Fitted, Option<HeldOut>), crate::Error> {
    let Some(part) = held_out_part(args) else {
        return Ok((model, None));
    };
    let mut ingest_args = args.ingest.clone();
    ingest_args.part = Some(part.clone());
    let cfg = ingest_args.to_config(true)?;
    let events = ingest(&cfg)?.events;
    let source = format!(
        "part {part} of split {} (seed {})",
        args.ingest.split.as_deref().unwrap_or(""),
        args.ingest.split_seed
    );
    let predictor = Predictor::new(model)?;
    let h = crate::model::insight::worth::held_out(&predictor, &events, &source)?;
    tracing::info!(target: "runsize::train", events = h.n, auc = h.auc_avg, "held-out evaluation stored in the artifact");
    Ok((predictor.into_fitted(), Some(h)))
}

/// Hand free heap memory back to the OS (glibc keeps freed blocks of its arenas, e.g. the
/// reader's decoded batches, which later large allocations, served by fresh mappings, never
/// reuse). No-op off glibc.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator to the OS; it touches
    // no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Log process memory at a stage of training, with the event table's own heap bytes.
fn log_memory(stage: &str, events_bytes: usize) {
    if let Some((rss, peak)) = process_memory() {
        tracing::info!(
            target: "runsize::train",
            stage,
            rss_mib = mib(rss),
            peak_rss_mib = mib(peak),
            events_mib = mib(events_bytes),
            "memory"
        );
    }
}

/// `runsize train`.
pub fn run(args: &TrainArgs) -> Result<(), crate::Error> {
    let model = train(args)?;
    // the process exits next: handing tens of millions of customer-id strings back to
    // the allocator one by one took minutes after a 100M-event fit, for nothing
    std::mem::forget(model);
    Ok(())
}

/// One screen: data, fit, how the model sees sizes, the brands that run most off.
pub fn print_summary(model: &Fitted, out: &std::path::Path, model_id: &str) {
    let s = &model.summary;
    let g = &model.globals;
    println!("model       {} (id {model_id})", out.display());
    println!(
        "events      {} read, {} used for fit ({} small / {} fit / {} large), {} other returns kept out",
        s.events, s.fit_events, s.outcome_counts[0], s.outcome_counts[1], s.outcome_counts[2], s.other_events
    );
    println!(
        "catalogue   {} customers, {} products, {} brands, {} categories, {} size labels",
        s.customers, s.products, s.brands, s.categories, s.sizes
    );
    let last = s.history.last();
    println!(
        "fit         {} iterations{} in {:.1}s; objective {:.5}, held-out log loss {:.5}",
        s.iterations,
        if s.converged {
            " (converged)"
        } else {
            " (max-iter reached)"
        },
        s.fit_seconds,
        last.map_or(f64::NAN, |h| h.objective),
        last.map_or(f64::NAN, |h| h.loo_log_loss)
    );
    println!(
        "sizes       slope {:.2}/size, fit band ±{:.2}; shoppers choose within ±{:.2} sizes and correct {:.0}% for reputation",
        g.w,
        g.h / g.w.max(1e-9),
        g.sd_choice,
        g.k * 100.0
    );
    println!(
        "spread      brands ±{:.2}, categories ±{:.2}, products ±{:.2}, product sizes ±{:.2} sizes",
        g.sd_brand, g.sd_category, g.sd_product, g.sd_article_size
    );
    if let Some(st) = &model.stack {
        let lg = &st.purchase;
        let best = lg
            .cv
            .iter()
            .filter(|c| c.lambda == lg.lambda)
            .min_by(|a, b| a.log_loss.total_cmp(&b.log_loss));
        println!(
            "2nd stage   {} features, penalty {}{}{}",
            lg.dim(),
            lg.lambda,
            best.map_or(String::new(), |c| match lg.select {
                Select::CrossValidation => format!(
                    "; cross-validated log loss {:.4}, auc {:.4}",
                    c.log_loss,
                    c.auc_avg.unwrap_or(f64::NAN)
                ),
                Select::Evidence => format!(
                    " by evidence (of {} tried; negative log evidence {:.4}/event)",
                    lg.cv.len(),
                    c.log_loss
                ),
            }),
            match &st.offer {
                Some(c) if c.criterion.is_finite() => format!(
                    "; sizes on offer: calibration, {} {:.4}",
                    match c.select {
                        Select::CrossValidation => "cross-validated log loss",
                        Select::Evidence => "negative log evidence/event",
                    },
                    c.criterion
                ),
                Some(_) => "; sizes on offer: calibration".to_string(),
                None => "; sizes on offer: structural".to_string(),
            }
        );
    }
    for (by, title) in [
        (ProfileBy::Brand, "brands"),
        (ProfileBy::Category, "categories"),
    ] {
        let profiles = model.profiles(by);
        if profiles.is_empty() {
            continue;
        }
        println!("{title} running furthest off:");
        for p in profiles.iter().take(5) {
            println!(
                "  {:<24} {:+.2} [{:+.2}, {:+.2}] n={:<8} {}",
                p.key, p.offset, p.interval[0], p.interval[1], p.n, p.verdict
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        train: TrainArgs,
    }

    /// `train` on the bundled demo events into `out`, with `extra` flags.
    fn demo_args(out: &std::path::Path, extra: &[&str]) -> TrainArgs {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/data/demo.parquet");
        let out = out.to_str().unwrap();
        let mut argv = vec!["train", "--events", data, "--out", out, "--quiet"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).train
    }

    #[test]
    fn second_stage_is_skipped_above_the_event_limit() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.runsize");
        let flags = [
            "--max-iter",
            "2",
            "--min-iter",
            "1",
            "--stack-max-events",
            "1000",
        ];
        let model = train(&demo_args(&out, &flags)).unwrap();
        assert!(model.stack.is_none(), "300k events > 1000: no second stage");
        assert!(model.summary.fit_events > 1000);
        assert!(out.exists());
    }

    #[test]
    fn one_thread_trains_the_stage_beside_the_fit() {
        // `--threads 1`: the whole train runs on one worker, the learners (fitted beside
        // the final fit on small data) included: their job must not wait for a worker
        // that waits for them
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.runsize");
        let flags = [
            "--max-iter",
            "3",
            "--min-iter",
            "1",
            "--stack-max-rows",
            "20000",
            "--threads",
            "1",
        ];
        let model = train(&demo_args(&out, &flags)).unwrap();
        assert!(model.stack.is_some(), "the stage is fitted");
        assert!(out.exists());
    }

    #[test]
    fn init_from_a_file_that_is_not_a_model_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m.runsize");
        let bad = dir.path().join("yesterday.runsize");
        std::fs::write(&bad, b"not a runsize model").unwrap();
        let args = demo_args(&out, &["--init", bad.to_str().unwrap(), "--no-stack"]);
        let err = train(&args).unwrap_err().to_string();
        assert!(err.contains("yesterday.runsize"), "{err}");
        assert!(!out.exists(), "no model written");
    }
}
