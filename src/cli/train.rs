//! `runsize train`: ingest events, fit, write the artifact atomically, print a summary.

use super::ingest_args::IngestArgs;
use crate::data::ingest;
use crate::data::ingest::MixState;
use crate::data::schema::{Events, NONE};
use crate::model::fitdata::{ArticleSizeKey, FitData};
use crate::model::fitted::IterationStats;
use crate::model::report::ProfileBy;
use crate::model::stack::StackParams;
use crate::model::{artifact, FitParams, Model};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;

/// Options of `runsize train`.
#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    /// Where the events come from, and how to read them.
    #[command(flatten)]
    pub ingest: IngestArgs,
    /// Model artifact to write.
    #[arg(long, default_value = "models/model.runsize")]
    pub out: PathBuf,
    /// Maximum fitting iterations.
    #[arg(long, default_value_t = 40)]
    pub max_iter: usize,
    /// Minimum fitting iterations before the tolerance may stop the fit.
    #[arg(long, default_value_t = 5)]
    pub min_iter: usize,
    /// Stop when the objective changes by less than this (relative).
    #[arg(long, default_value_t = 1e-5)]
    pub tol: f64,
    /// Also stop when article sizes and band widths move by less than this per
    /// iteration (RMS, in sizes).
    #[arg(long, default_value_t = 1e-3)]
    pub param_tol: f64,
    /// Big data: iterate on a sample of customers with about this many events until the
    /// parameters settle, then refine on all events (0 = always all events).
    #[arg(long, default_value_t = 4_000_000)]
    pub warm_start_events: usize,
    /// Worker threads (0 = all cores).
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
    /// Out-of-sample inputs of the second stage: refit the structural model this many
    /// times on all but one fold of the events (0 = leave-one-out approximations instead:
    /// no refits, less accurate).
    #[arg(long, default_value_t = 5)]
    pub stack_cross_fit: usize,
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
            .warm_start_events(self.warm_start_events)
            .threads(self.threads)
            .store_customers(!self.no_customers)
            .learn_dispersion(!self.no_dispersion)
    }
}

/// Train and write the model; returns it.
pub fn train(args: &TrainArgs) -> Result<Model, crate::Error> {
    let mut cfg = args.ingest.to_config(true)?;
    // The fit never reads timestamps (time filters are applied while reading).
    cfg.keep_timestamps = false;
    let params = args.fit_params();
    params.validate()?;
    let mut ingested = ingest(&cfg)?;
    tracing::info!(target: "runsize::train", "{}", ingested.report.summary());
    release_free_memory();
    log_memory("ingested", ingested.events.heap_bytes());
    // Group the fit events by customer, freeing the per-event columns on the way: the fit
    // reads only the prepared data plus dictionaries, size labels and customer features.
    // The second stage refits on the events themselves: keep them unless it is off.
    let data = if args.no_stack {
        prepare_fit_data(&mut ingested.events)
    } else {
        FitData::from_events(&ingested.events)
    };
    tracing::info!(
        target: "runsize::train",
        fit_events = data.len(),
        article_sizes = data.article_sizes.len(),
        event_columns_freed = args.no_stack,
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
            customer_pass_seconds = s.customer_pass_seconds,
            article_pass_seconds = s.article_pass_seconds,
            "iteration"
        );
    };
    let mut model = params.fit_prepared(&ingested.events, &data, &mut on_iter)?;
    drop(data);
    log_memory("fitted", 0);
    if let Some(pb) = bar {
        pb.finish_and_clear();
    }
    if !args.no_stack {
        let t0 = std::time::Instant::now();
        let stack = StackParams {
            cross_fit: args.stack_cross_fit,
            structural: params.clone(),
            ..StackParams::default()
        };
        model.stack = Some(stack.fit(&model, &ingested.events)?);
        tracing::info!(target: "runsize::train", seconds = t0.elapsed().as_secs_f64(), "second stage fitted");
    }
    // Dictionaries and features are in the model now: free them before it is serialised.
    let report = ingested.report;
    drop(ingested.events);
    model.summary.source = format!(
        "files: {}",
        report
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let header = artifact::save(&model, &args.out)?;
    log_memory("saved", 0);
    if args.json {
        let out = serde_json::json!({
            "model": args.out,
            "model_id": header.model_id,
            "summary": model.summary,
            "globals": model.globals,
            "ingest": report,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        print_summary(&model, &args.out, &header.model_id);
    }
    Ok(model)
}

/// [`FitData::from_events`] for a table that is not needed afterwards: the same result,
/// built while the per-event columns are freed one by one (the size column's buffer is
/// reused for the article-size index of each event), so the peak is about the event table
/// itself instead of the table plus the fit data plus temporaries. Leaves `events` as
/// [`Events::release_event_columns`] does: outcomes, dictionaries, size labels, features.
pub fn prepare_fit_data(events: &mut Events) -> FitData {
    let n_customers = events.customers.len();
    // 1. Article-size index per fit event (NONE for others), in order of first appearance.
    // Keyed by the four indices packed into a u128 (one cheap hash instead of four).
    let pack = |k: &ArticleSizeKey| {
        u128::from(k.product)
            | u128::from(k.brand) << 32
            | u128::from(k.category) << 64
            | u128::from(k.label) << 96
    };
    let mut key_index: HashMap<u128, u32, MixState> = HashMap::default();
    let mut article_sizes = Vec::new();
    let mut as_of_event = std::mem::take(&mut events.size);
    let cols = (
        &events.outcome,
        &events.product,
        &events.brand,
        &events.category,
    );
    for (i, slot) in as_of_event.iter_mut().enumerate() {
        let (Some(outcome), Some(&product), Some(&brand), Some(&category)) =
            (cols.0.get(i), cols.1.get(i), cols.2.get(i), cols.3.get(i))
        else {
            *slot = NONE;
            continue;
        };
        if outcome.class().is_none() {
            *slot = NONE;
            continue;
        }
        let key = ArticleSizeKey {
            product,
            brand,
            category,
            label: *slot,
        };
        let next = article_sizes.len() as u32;
        *slot = *key_index.entry(pack(&key)).or_insert_with(|| {
            article_sizes.push(key);
            next
        });
    }
    drop(key_index);
    let customer = std::mem::take(&mut events.customer);
    events.release_event_columns();
    // 2. Events per customer, as start offsets.
    let mut cust_start = vec![0u64; n_customers + 1];
    for (&c, &a) in customer.iter().zip(&as_of_event) {
        if a != NONE {
            if let Some(n) = cust_start
                .get_mut(c as usize + 1)
                .filter(|_| (c as usize) < n_customers)
            {
                *n += 1;
            }
        }
    }
    for c in 0..n_customers {
        let prev = cust_start.get(c).copied().unwrap_or(0);
        if let Some(x) = cust_start.get_mut(c + 1) {
            *x += prev;
        }
    }
    // 3. Place events; `cust_start[c]` serves as customer c's cursor and ends as the start
    //    of c + 1, so shift it back afterwards (no second offsets array).
    let total = cust_start.get(n_customers).copied().unwrap_or(0) as usize;
    let mut ev_as = vec![0u32; total];
    let mut ev_y = vec![0u8; total];
    let mut as_count = vec![0u64; article_sizes.len()];
    for (i, (&c, &a)) in customer.iter().zip(&as_of_event).enumerate() {
        if a == NONE || c as usize >= n_customers {
            continue;
        }
        let Some(cursor) = cust_start.get_mut(c as usize) else {
            continue;
        };
        let pos = *cursor as usize;
        *cursor += 1;
        if let (Some(x), Some(y), Some(o)) =
            (ev_as.get_mut(pos), ev_y.get_mut(pos), events.outcome.get(i))
        {
            *x = a;
            *y = *o as u8;
        }
        if let Some(k) = as_count.get_mut(a as usize) {
            *k += 1;
        }
    }
    for c in (1..=n_customers).rev() {
        let prev = cust_start.get(c - 1).copied().unwrap_or(0);
        if let Some(x) = cust_start.get_mut(c) {
            *x = prev;
        }
    }
    if let Some(first) = cust_start.first_mut() {
        *first = 0;
    }
    FitData {
        cust_start,
        ev_as,
        ev_y,
        article_sizes,
        as_count,
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Resident and peak resident memory of this process in bytes (`VmRSS`, `VmHWM` from
/// `/proc/self/status`; `None` where that file does not exist).
pub fn process_memory() -> Option<(usize, usize)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<usize> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
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
pub fn print_summary(model: &Model, out: &std::path::Path, model_id: &str) {
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
            best.map_or(String::new(), |c| format!(
                "; cross-validated log loss {:.4}, auc {:.4}",
                c.log_loss, c.auc_avg
            )),
            match &st.offer {
                Some(c) => format!(
                    "; sizes on offer: calibration, cross-validated log loss {:.4}",
                    c.cv_log_loss
                ),
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
    use crate::data::schema::Outcome;

    /// Events with every case: other outcomes, missing keys, repeated article-sizes,
    /// customers without fit events, customers out of order.
    fn events() -> Events {
        let n = 40;
        let outcomes = [Outcome::Fit, Outcome::Small, Outcome::Other, Outcome::Large];
        Events {
            customer: (0..n).map(|i| (i * 7 % 11) as u32).collect(),
            product: (0..n)
                .map(|i| if i % 5 == 0 { NONE } else { (i % 4) as u32 })
                .collect(),
            brand: (0..n).map(|i| (i % 3) as u32).collect(),
            category: (0..n).map(|i| if i % 6 == 0 { NONE } else { 0 }).collect(),
            size: (0..n).map(|i| (i % 2) as u32).collect(),
            outcome: (0..n).map(|i| outcomes[i % 4]).collect(),
            timestamp: Some(vec![0; n]),
            row: crate::data::RowIds::identity(n),
            customers: (0..12).map(|c| format!("c{c}")).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn lean_preparation_equals_from_events() {
        let mut ev = events();
        let want = FitData::from_events(&ev);
        let got = prepare_fit_data(&mut ev);
        assert_eq!(got.cust_start, want.cust_start);
        assert_eq!(got.ev_as, want.ev_as);
        assert_eq!(got.ev_y, want.ev_y);
        assert_eq!(got.article_sizes, want.article_sizes);
        assert_eq!(got.as_count, want.as_count);
        assert_eq!(got.len(), 30, "the ten `other` events are left out");
        // Columns are gone, what the fit reads is kept.
        assert_eq!(ev.len(), 40);
        assert!(ev.customer.is_empty() && ev.size.is_empty() && ev.product.is_empty());
        assert!(ev.timestamp.is_none());
        assert_eq!(ev.customers.len(), 12);
    }
}
