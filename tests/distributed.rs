//! The fit's passes as DataFusion plans (in-process) and through Ballista's standalone
//! mode (in-process scheduler and executor, plans serialised as for a cluster): the
//! same parameters and customer table as the local fit to 1e-6, and the same
//! recommendations from the artifact.

use crate::common;

use runsize::distributed::engine::EngineConfig;
use runsize::distributed::{EngineKind, PlanEngine};
use runsize::model::fitdata::FitData;
use runsize::model::{artifact, FitOn, FitParams, Fitted, Predictor};
use serde_json::Value;

/// Every number of `a` and `b` (parameters, customer table, feature model; not the
/// training summary's timings) within `tol` (relative above 1); returns the largest gap.
fn max_gap(a: &Value, b: &Value, at: &str, tol: f64) -> f64 {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let gap = (x - y).abs() / x.abs().max(1.0);
            assert!(gap <= tol, "{at}: {x} vs {y}");
            gap
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: lengths");
            x.iter()
                .zip(y)
                .enumerate()
                .map(|(i, (x, y))| max_gap(x, y, &format!("{at}[{i}]"), tol))
                .fold(0.0, f64::max)
        }
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .filter(|(k, _)| k.as_str() != "summary")
            .map(|(k, v)| max_gap(v, &y[k], &format!("{at}.{k}"), tol))
            .fold(0.0, f64::max),
        _ => {
            assert_eq!(a, b, "{at}");
            0.0
        }
    }
}

fn fit_on(kind: EngineKind, params: &FitParams, fx: &common::SynthSplit, data: &FitData) -> Fitted {
    let dir = common::tempdir();
    let cfg = EngineConfig {
        kind,
        dir: dir.path().to_path_buf(),
        partitions: 2,
    };
    let mut engine = PlanEngine::new(&cfg, data).expect("engine");
    let on = FitOn {
        meta: &fx.train,
        data,
        init: None,
        engine: &mut engine,
    };
    let model = params.fit_on(on, &mut |_| {}).expect("fit on plans");
    assert_eq!(
        engine.stats.len(),
        model.summary.iterations + 1,
        "one plan per pass"
    );
    model
}

fn check_same(local: &Fitted, other: &Fitted, fx: &common::SynthSplit) {
    assert_eq!(local.summary.iterations, other.summary.iterations);
    assert_eq!(local.summary.converged, other.summary.converged);
    let (a, b) = (
        serde_json::to_value(local).unwrap(),
        serde_json::to_value(other).unwrap(),
    );
    let gap = max_gap(&a, &b, "model", 1e-6);
    println!("largest relative difference: {gap:e}");
    assert!(!local.customers.mean.is_empty(), "customer table compared");
    // the same artifact answers the same recommendations
    let dir = common::tempdir();
    let path = dir.path().join("m.runsize");
    artifact::save(other, &path).unwrap();
    let (back, _) = artifact::load_predictor(&path).unwrap();
    let p_local = Predictor::new(local.clone()).unwrap().score(&fx.test);
    let p_other = back.score(&fx.test);
    assert_eq!(p_local.len(), p_other.len());
    for (x, y) in p_local.iter().zip(&p_other) {
        for (u, v) in x.iter().zip(y) {
            assert!((u - v).abs() < 1e-6, "probabilities {x:?} vs {y:?}");
        }
    }
}

#[test]
fn datafusion_plans_fit_the_local_model_to_1e6() {
    let fx = common::synth_split(20_000, 3, 8, None);
    let data = FitData::from_events(&fx.train);
    let params = FitParams::default().max_iter(12);
    let local = params.fit_prepared(&fx.train, &data, &mut |_| {}).unwrap();
    let df = fit_on(EngineKind::DataFusion, &params, &fx, &data);
    check_same(&local, &df, &fx);
}

#[test]
fn datafusion_plans_follow_the_warm_start_sample_phase() {
    // the big-data path: a sample of customer chunks first, then all of them
    let fx = common::synth_split(20_000, 5, 8, None);
    let data = FitData::from_events(&fx.train);
    let params = FitParams::default()
        .max_iter(14)
        .chunk_events(500)
        .warm_start_events(4000)
        .warm_start_per_article_size(0);
    let local = params.fit_prepared(&fx.train, &data, &mut |_| {}).unwrap();
    assert!(local.summary.history[0].events < local.summary.fit_events);
    let df = fit_on(EngineKind::DataFusion, &params, &fx, &data);
    check_same(&local, &df, &fx);
}

#[test]
fn ballista_standalone_fits_the_local_model_to_1e6() {
    let fx = common::synth_split(20_000, 3, 8, None);
    let data = FitData::from_events(&fx.train);
    let params = FitParams::default().max_iter(12);
    let local = params.fit_prepared(&fx.train, &data, &mut |_| {}).unwrap();
    let ballista = fit_on(EngineKind::Standalone, &params, &fx, &data);
    check_same(&local, &ballista, &fx);
}
