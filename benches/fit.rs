//! Criterion benches of the fitting and scoring hot loops over a grid of event counts:
//! one full fit iteration (customer pass + article pass + updates) and batch scoring;
//! the second stage's fit with leave-one-out inputs (no structural refits: its inputs
//! and learners) with each penalty search; and the purchase learner: one objective +
//! gradient pass and one with the (row-sampled) Hessian over a design of its size.
//! Data: synthetic events from `runsize::synth`, written once per size to a temp dir;
//! the learner's design is pseudo-random (its cost does not depend on the values).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use runsize::data::{ingest, Events, IngestConfig};
use runsize::model::stack::Select;
use runsize::model::stack_fit::StackParams;
use runsize::model::FitParams;
use runsize::synth::{generate, SynthConfig};

fn events(n: u64, dir: &std::path::Path) -> Events {
    let path = dir.join(format!("synth-{n}.parquet"));
    let cfg = SynthConfig {
        customer_truth: false,
        ..SynthConfig::new(n)
    };
    generate(&cfg, &path).expect("generate");
    let mut ic = IngestConfig::new(vec![path.display().to_string()]);
    ic.customer_features = vec!["height_cm".into(), "weight_kg".into(), "body_shape".into()];
    ingest(&ic).expect("ingest").events
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut group = c.benchmark_group("fit");
    group.sample_size(10);
    for n in [100_000u64, 1_000_000] {
        let ev = events(n, dir.path());
        let fit_events = ev.outcome.iter().filter(|o| o.class().is_some()).count() as u64;
        group.throughput(Throughput::Elements(fit_events));
        // one iteration = 2 passes over the events + the final pass for standard errors
        group.bench_with_input(BenchmarkId::new("one_iteration", n), &ev, |b, ev| {
            b.iter(|| {
                FitParams::default()
                    .max_iter(1)
                    .min_iter(1)
                    .fit(ev)
                    .expect("fit")
            })
        });
        let fitted = FitParams::default().max_iter(5).fit(&ev).expect("fit");
        let model = runsize::model::Predictor::new(fitted).expect("valid model");
        if n == 100_000 {
            // the stage's learners by each penalty search (leave-one-out inputs: the
            // same inputs for both, no structural refits)
            for (name, select) in [
                ("stage_loo_evidence", Select::Evidence),
                ("stage_loo_cross_validation", Select::CrossValidation),
            ] {
                let params = StackParams {
                    select,
                    ..StackParams::default()
                }
                .leave_one_out();
                group.bench_with_input(BenchmarkId::new(name, n), &ev, |b, ev| {
                    b.iter(|| params.fit(&model, ev).expect("stage"))
                });
            }
        }
        group.throughput(Throughput::Elements(ev.len() as u64));
        group.bench_with_input(BenchmarkId::new("score", n), &ev, |b, ev| {
            b.iter(|| model.score(ev))
        });
    }
    group.finish();
}

/// The purchase learner's sums ([`runsize::model::stack_fit::sums`]) on a design of
/// 120k rows x 116 standardised features (RentTheRunway's size): the objective and
/// gradient alone (what each Newton step's candidates cost) and with the Hessian on the
/// default 16,384-row budget (stride 8).
fn bench_learner(c: &mut Criterion) {
    use runsize::model::stack_fit::{sums, Design, FitSpec};
    let (n, p) = (120_000usize, 116usize);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let x: Vec<f64> = (0..n * p)
        .map(|i| if i % p == 0 { 1.0 } else { next() })
        .collect();
    let y: Vec<u8> = (0..n).map(|i| (i % 7).min(2) as u8).collect();
    let beta: Vec<f64> = (0..2 * p).map(|_| 0.1 * next()).collect();
    let d = Design { x: &x, y: &y, p };
    let spec = |hess_stride| FitSpec {
        lambda: 10.0,
        weights: None,
        max_iter: 1,
        hess_stride,
        tol: 1e-10,
    };
    let mut group = c.benchmark_group("learner");
    group.sample_size(10);
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("gradient_120k_x_116", |b| {
        b.iter(|| sums(&d, &spec(1), &beta, false))
    });
    group.bench_function("hessian_120k_x_116_stride_8", |b| {
        b.iter(|| sums(&d, &spec(8), &beta, true))
    });
    // the stored designs are f32 (half the bytes per pass)
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let d32 = Design { x: &x32, y: &y, p };
    group.bench_function("gradient_120k_x_116_f32", |b| {
        b.iter(|| sums(&d32, &spec(1), &beta, false))
    });
    group.bench_function("hessian_120k_x_116_stride_8_f32", |b| {
        b.iter(|| sums(&d32, &spec(8), &beta, true))
    });
    group.finish();
}

criterion_group!(benches, bench, bench_learner);
criterion_main!(benches);
