//! Criterion benches of the fitting and scoring hot loops over a grid of event counts:
//! one full fit iteration (customer pass + article pass + updates) and batch scoring.
//! Data: synthetic events from `runsize::synth`, written once per size to a temp dir.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use runsize::data::{ingest, Events, IngestConfig};
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
        group.throughput(Throughput::Elements(ev.len() as u64));
        group.bench_with_input(BenchmarkId::new("score", n), &ev, |b, ev| {
            b.iter(|| model.score(ev))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
