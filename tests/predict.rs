//! Fast prediction paths against their references on a fitted synthetic model: batch
//! scoring (`score_with`, per-key tables, parallel fixed chunks) against the per-row
//! `event_view` + `probs_article`, independent of the thread count; the serving solve
//! (`posterior`) against the fit's full 12-step Newton solve for real shoppers; the
//! `eval` and `predict` commands capped at one thread against uncapped.

use crate::common;

use runsize::data::NONE;
use runsize::model::query::{Purchase, Shopper};
use runsize::model::score::ScoreOptions;
use runsize::model::{FitParams, Predictor};

fn fitted() -> (Predictor, common::SynthSplit) {
    let fx = common::synth_split(30_000, 21, 6, Some(10));
    let model = Predictor::new(FitParams::default().max_iter(6).fit(&fx.train).unwrap()).unwrap();
    (model, fx)
}

fn assert_same(fast: &[[f64; 3]], reference: &[[f64; 3]], what: &str) {
    assert_eq!(fast.len(), reference.len(), "{what}: lengths");
    for (i, (x, y)) in fast.iter().zip(reference).enumerate() {
        for k in 0..3 {
            assert!(
                (x[k] - y[k]).abs() <= 1e-12 || (x[k].is_nan() && y[k].is_nan()),
                "{what}: row {i}: fast {x:?} reference {y:?}"
            );
        }
    }
}

#[test]
fn batch_scoring_matches_the_per_row_reference_for_any_thread_count() {
    let (model, fx) = fitted();
    // the held-out part has customers, and some products and sizes, the model never saw
    let unseen = fx
        .test
        .customers
        .iter()
        .filter(|c| model.customer_index(c.as_ref()).is_none())
        .count();
    assert!(unseen > 0, "test part has no unseen customers");
    // keys resolve as the model's maps say (scoring the training table matches most
    // customers by position, without hashing)
    for events in [&fx.train, &fx.test] {
        let r = model.resolve(events);
        for (i, name) in events.customers.iter().enumerate() {
            let want = model.customer_index(name.as_ref()).unwrap_or(NONE);
            assert_eq!(r.customer[i], want, "customer {name}");
        }
        for (i, name) in events.products.iter().enumerate() {
            let want = model.product_index(name.as_ref()).unwrap_or(NONE);
            assert_eq!(r.product[i], want, "product {name}");
        }
    }
    for choice_evidence in [true, false] {
        let opts = ScoreOptions { choice_evidence };
        for events in [&fx.train, &fx.test] {
            let reference = model.score_reference(events, &opts);
            let one = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap()
                .install(|| model.score_with(events, &opts));
            let three = rayon::ThreadPoolBuilder::new()
                .num_threads(3)
                .build()
                .unwrap()
                .install(|| model.score_with(events, &opts));
            assert_same(&one, &reference, "1 thread");
            assert_eq!(one, three, "1 vs 3 threads differ");
            assert!(one
                .iter()
                .all(|p| (p.iter().sum::<f64>() - 1.0).abs() < 1e-9));
        }
    }
}

#[test]
fn serving_posterior_matches_the_full_solve_for_real_shoppers() {
    let (model, _fx) = fitted();
    let outcomes = [
        "kept",
        "returned_too_small",
        "kept",
        "returned_too_large",
        "too_small",
    ];
    let mut compared = 0;
    for start in 0..model.products.len().saturating_sub(30) {
        let n = 1 + start % 30;
        let history: Vec<Purchase> = (start..start + n)
            .filter_map(|p| {
                let info = &model.product_info[p];
                let l = &model.labels[*info.sizes.get((p * 7) % info.sizes.len().max(1))? as usize];
                Some(Purchase {
                    product_id: Some(model.products[p].name.as_str()),
                    size: l.canonical.as_str(),
                    size_system: Some(l.system.as_str()),
                    outcome: outcomes[p % outcomes.len()],
                    ..Purchase::default()
                })
            })
            .collect();
        let shopper = Shopper {
            history,
            ..Shopper::default()
        };
        let (fast, _) = model.shopper_belief(&shopper).unwrap();
        let (prior, terms) = model.shopper_evidence(&shopper).unwrap();
        let diff = |r: &runsize::model::predict::CustomerState| {
            [
                fast.s - r.s,
                fast.u - r.u,
                fast.ss - r.ss,
                fast.su - r.su,
                fast.uu - r.uu,
            ]
            .iter()
            .fold(0.0f64, |m, x| m.max(x.abs()))
        };
        // the optimum (the fit's solve run to convergence) and the 12 steps the
        // server took before
        let converged = model.posterior_reference(prior, &terms, 400);
        let twelve = model.posterior_reference(prior, &terms, 12);
        assert!(
            diff(&converged) < 1e-7,
            "fast {fast:?} converged {converged:?}"
        );
        assert!(diff(&twelve) < 1e-6, "fast {fast:?} 12 steps {twelve:?}");
        compared += 1;
    }
    assert!(compared >= 20, "{compared}");
}

/// `eval --threads 1` and `predict --threads 1` give what the uncapped commands give:
/// every row is scored on its own and the metrics reduce in a fixed order, so the cap
/// changes where the work runs, not its result.
#[test]
fn eval_and_predict_capped_at_one_thread_give_the_same_results() {
    let fx = common::synth_split(12_000, 5, 6, Some(8));
    let params = runsize::model::stack_fit::StackParams {
        lambdas: vec![10.0],
        structural: FitParams::default().max_iter(6),
        ..Default::default()
    };
    let model = common::stacked(&fx.train, &params);
    let dir = common::tempdir();
    let path = dir.path().join("m.runsize");
    runsize::model::artifact::save(&model, &path).unwrap();
    let m = path.to_str().unwrap();
    let events = fx.dir.path().join("synth.parquet");
    let events = events.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = common::runsize_bin(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let eval = ["eval", "--model", m, "--events", events, "--json"];
    let all = run(&eval);
    assert!(all.contains("auc"), "{all}");
    assert_eq!(run(&[&eval[..], &["--threads", "1"]].concat()), all);
    let scored = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        let o = out.to_str().unwrap();
        let args = [
            &["predict", "--model", m, "--events", events, "--out", o][..],
            extra,
        ];
        let run = common::runsize_bin(&args.concat());
        let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
        assert!(run.status.success(), "{stderr}");
        (std::fs::read_to_string(&out).unwrap(), stderr)
    };
    let (all, _) = scored("all.csv", &[]);
    assert!(all.lines().count() > 1000 && all.contains("p_fit"));
    // the scoring reports the threads it ran on
    let log = ["--log", "runsize::predict=info", "--log-json"];
    let (one, stderr) = scored("one.csv", &[&["--threads", "1"][..], &log].concat());
    assert!(stderr.contains("\"threads\":1"), "{stderr}");
    assert_eq!(one, all);
}
