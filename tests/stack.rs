//! The second stage on synthetic data: it does not hurt held-out calibration or log
//! loss, its fit is deterministic, its prediction cache agrees with the plain
//! computation, it keeps the structural choice of size for recommendations, and
//! train -> save -> load -> predict / recommend gives identical numbers; artifacts of the
//! previous format are refused with a clear message.

use crate::common;

use runsize::model::fitdata::FitData;
use runsize::model::stack::{Select, Stack};
use runsize::model::stack_fit::{
    cross_fitted, hash_in_sample, training_inputs, CustomerSample, StackParams,
};
use runsize::model::{artifact, FitParams, Fitted, Predictor};
use runsize::serve::api::{recommend, FeatureValue, PastPurchase, ProductQuery, Shopper};

/// A 40k-event synthetic split (12 brands, 20 products each) with seed `seed`, the fit
/// parameters (12 iterations), the structural model fitted on its training part and that
/// model's predictor.
fn structural_fixture(seed: u64) -> (common::SynthSplit, FitParams, Fitted, Predictor) {
    let fx = common::synth_split(40_000, seed, 12, Some(20));
    let fit = FitParams::default().max_iter(12);
    let structural = fit.fit(&fx.train).unwrap();
    let sp = predictor(&structural);
    (fx, fit, structural, sp)
}

fn predictor(m: &Fitted) -> Predictor {
    Predictor::new(m.clone()).unwrap()
}

/// A way to break a second stage and a word the refusal must name.
type Breakage = (&'static str, fn(&mut Stack));

/// Second stages that do not fit their model: what breaks them and a word the refusal
/// must name.
fn broken_stages() -> Vec<Breakage> {
    vec![
        ("brand", |s| {
            s.tables.brand.pop();
        }),
        ("category", |s| s.tables.category.push([0; 3])),
        ("product", |s| {
            s.tables.product.pop();
        }),
        ("article_size", |s| s.tables.article_size.push([1; 3])),
        ("customer", |s| s.tables.customer.clear()),
        ("customer_pos", |s| {
            s.tables.customer_pos.pop();
        }),
        ("customer_pos", |s| s.tables.customer_pos[0] = f64::NAN),
        ("purchase", |s| {
            s.purchase.coef.pop();
        }),
        ("purchase", |s| s.purchase.spec.gap_knots.push(2.0)),
        ("offer", |s| {
            if let Some(o) = &mut s.offer {
                o.split.pop();
            }
        }),
        ("offer", |s| {
            if let Some(o) = &mut s.offer {
                o.spec.lo[1] = f64::NAN;
            }
        }),
        ("offer", |s| {
            if let Some(o) = &mut s.offer {
                o.spec.body_dim += 1;
            }
        }),
    ]
}

/// A model whose second stage was broken by `f`.
fn broken(model: &Fitted, f: fn(&mut Stack)) -> Fitted {
    let mut m = model.clone();
    if let Some(s) = m.stack.as_mut() {
        f(s);
    }
    m
}

#[test]
fn second_stage_keeps_calibration_and_round_trips_exactly() {
    let (fx, fit, structural, sp) = structural_fixture(7);
    let params = StackParams {
        folds: 3,
        lambdas: vec![10.0, 100.0],
        cross_fit: 3,
        structural: fit.clone(),
        ..StackParams::default()
    };
    let stack = params.fit(&sp, &fx.train).unwrap();
    let lg = &stack.purchase;
    assert_eq!(lg.coef.len(), 2 * lg.dim());
    assert!(lg.coef.iter().all(|c| c.is_finite()));
    // the evidence fits the strongest penalty and those predicted to beat it: each
    // fitted one is recorded, the chosen one among them
    assert!(!lg.cv.is_empty() && lg.cv.len() <= params.lambdas.len() * params.sets.len());
    assert!(lg.cv.iter().any(|p| p.lambda == lg.lambda));
    assert_eq!(stack.cross_fit, 3);

    // leave-one-out inputs: deterministic, bit for bit
    let loo = params.clone().leave_one_out();
    let a = loo.fit(&sp, &fx.train).unwrap();
    let b = loo.fit(&sp, &fx.train).unwrap();
    assert_eq!(a.purchase.coef, b.purchase.coef);
    assert_eq!(a.offer, b.offer);
    assert_eq!(a.cross_fit, 0);
    assert!(
        !a.purchase.spec.set.label,
        "leave-one-out inputs must not use the label group"
    );

    let mut model = structural.clone();
    model.stack = Some(stack);
    let mut loo_model = structural.clone();
    loo_model.stack = Some(a);
    let pm = predictor(&model);
    let before = sp.evaluate(&fx.test).unwrap().overall;
    let after = pm.evaluate(&fx.test).unwrap().overall;
    let after_loo = predictor(&loo_model).evaluate(&fx.test).unwrap().overall;
    for (name, m) in [
        ("structural", &before),
        ("cross-fitted", &after),
        ("leave-one-out", &after_loo),
    ] {
        println!(
            "held-out {name:<14} auc {:.4} logloss {:.4} ece {:.4}",
            m.auc_avg, m.log_loss, m.ece
        );
    }
    for m in [&after, &after_loo] {
        assert_eq!(before.n, m.n);
        assert!(m.ece < 0.02, "stacked ECE {}", m.ece);
        assert!(
            m.ece <= before.ece + 0.005,
            "ECE {} vs {}",
            m.ece,
            before.ece
        );
        assert!(
            m.log_loss <= before.log_loss + 0.002,
            "log loss {} vs {}",
            m.log_loss,
            before.log_loss
        );
        assert!(m.auc_avg >= before.auc_avg - 0.005);
    }

    // the cached product / product-in-size features are the ones computed from counts
    let st = model.stack.as_ref().unwrap().clone();
    let mut checked = 0;
    for (p, info) in model.product_info.iter().enumerate().take(50) {
        for &label in &info.sizes {
            let l = &model.labels[label as usize];
            let a = runsize::model::predict::ArticleRef {
                product: p as u32,
                brand: info.brand,
                category: info.category,
                label,
                system: l.system,
                pos: l.pos,
            };
            // the stage's predictor reads its cache; the structural one computes them
            assert_eq!(pm.levels(&st, &a), sp.levels(&st, &a));
            checked += 1;
        }
    }
    assert!(checked > 50);

    // train -> save -> load -> predict: identical
    let dir = common::tempdir();
    let path = dir.path().join("stacked.runsize");
    artifact::save(&model, &path).unwrap();
    let (back, _) = artifact::load_predictor(&path).unwrap();
    assert!(back.stack.is_some());
    // and the server takes it
    let (served, _) = runsize::serve::load_model(&path).unwrap();
    assert_eq!(served.stack, model.stack);
    let p1 = pm.score(&fx.test);
    let p2 = back.score(&fx.test);
    assert_eq!(p1, p2);
    for p in &p1 {
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    // sizes on offer: the calibration keeps the structural choice of size
    let st = model.stack.as_ref().unwrap();
    assert!(st.offer.is_some(), "no offer calibration");
    let mut plain = model.clone();
    plain.stack = None;
    let plain = predictor(&plain);
    let mut moved = 0;
    for (p, prod) in model.products.iter().enumerate().take(40) {
        if model.product_info[p].sizes.len() < 2 {
            continue;
        }
        let q = ProductQuery {
            product_id: Some(prod.name.clone()),
            ..Default::default()
        };
        let sh = Shopper {
            customer_id: Some(model.customers.id(p).unwrap().into_owned()),
            ..Default::default()
        };
        let (a, b) = (
            recommend(&pm, &q, &sh).unwrap(),
            recommend(&plain, &q, &sh).unwrap(),
        );
        assert_eq!(a.recommended_size, b.recommended_size);
        moved += a
            .sizes
            .iter()
            .zip(&b.sizes)
            .filter(|(x, y)| (x.p_fit - y.p_fit).abs() > 1e-6)
            .count();
    }
    assert!(moved > 0, "the calibration changed no probability");

    // and the server's recommendation, for a known and a new shopper
    let product = ProductQuery {
        product_id: Some(model.products[0].name.clone()),
        ..Default::default()
    };
    for shopper in [
        Shopper {
            customer_id: Some(model.customers.id(0).unwrap().into_owned()),
            ..Default::default()
        },
        Shopper::default(),
    ] {
        let a = recommend(&pm, &product, &shopper).unwrap();
        let b = recommend(&back, &product, &shopper).unwrap();
        assert_eq!(a, b);
        for s in &a.sizes {
            assert!((s.p_small + s.p_fit + s.p_large - 1.0).abs() < 1e-9);
        }
    }

    // a second stage that does not fit its model is refused at load (and so on reload),
    // naming what is wrong
    model.validate().unwrap();
    for (i, (word, f)) in broken_stages().into_iter().enumerate() {
        let bad = broken(&model, f);
        let e = bad.validate().unwrap_err().to_string();
        assert!(
            e.contains("second stage") && e.contains(word),
            "{word}: {e}"
        );
        if i == 0 {
            let p = dir.path().join("broken.runsize");
            artifact::save(&bad, &p).unwrap();
            let e = runsize::serve::load_model(&p).unwrap_err().to_string();
            assert!(e.contains("brand"), "{e}");
        }
    }

    // the served path (the history parsed through the catalogue, its stack counts from
    // that parse, product-in-size lookups shared) gives exactly the second stage's
    // probabilities as computed piece by piece: the shopper's belief,
    // Predictor::shopper_stack (which parses the history itself), Predictor::probs_final
    let info = &model.product_info[0];
    let history: Vec<PastPurchase> = (1..13)
        .map(|p| {
            let i = &model.product_info[p];
            let l = &model.labels[i.sizes[i.sizes.len() / 2] as usize];
            PastPurchase {
                brand: Some(model.brands[i.brand as usize].name.clone()),
                product_id: Some(model.products[p].name.clone()),
                category: None,
                size: l.canonical.clone(),
                size_system: Some(l.system.as_str().into()),
                outcome: ["kept", "returned_too_small", "too_large", "returned_other"][p % 4]
                    .into(),
            }
        })
        .collect();
    let mut features = std::collections::BTreeMap::new();
    features.insert("height_cm".to_string(), FeatureValue::Number(168.0));
    for shopper in [
        Shopper {
            history: history.clone(),
            ..Default::default()
        },
        Shopper {
            customer_id: Some(model.customers.id(5).unwrap().into_owned()),
            history,
            features,
            ..Default::default()
        },
    ] {
        let served = recommend(&pm, &product, &shopper).unwrap();
        let view = shopper.view();
        let query = view.to_query();
        let (state, _) = pm.shopper_belief(&query).unwrap();
        let belief = pm.at_purchase(&state, None);
        let sc = pm.shopper_stack(&query);
        assert_eq!(served.sizes.len(), info.sizes.len());
        for odds in &served.sizes {
            let label = pm.label_index(&odds.size).unwrap();
            let l = &model.labels[label as usize];
            let a = runsize::model::predict::ArticleRef {
                product: 0,
                brand: info.brand,
                category: info.category,
                label,
                system: l.system,
                pos: l.pos,
            };
            let want = pm.probs_final(belief, &a, &sc);
            assert_eq!([odds.p_small, odds.p_fit, odds.p_large], want);
        }
    }

    // an artifact of the previous format is refused, saying to retrain
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let err = artifact::from_bytes(&bytes, &path).unwrap_err().to_string();
    assert!(
        err.contains("version 2") && err.contains("retrain"),
        "{err}"
    );
}

/// Above `max_rows` the learners see the events of a sample of customers: every event of
/// a sampled customer, none of the others, about `max_rows` in all, with the same inputs
/// as without the sample; and the stage fitted on them still helps.
#[test]
fn learners_fit_on_a_customer_sample() {
    use std::collections::HashMap;
    let (fx, fit, structural, sp) = structural_fixture(11);
    let max_rows = 8_000;
    let sample = CustomerSample::new(&fx.train, max_rows);
    assert!(
        sample.rate > 0.1 && sample.rate < 0.5,
        "rate {}",
        sample.rate
    );
    let mut tables = Vec::new();
    for cross_fit in [2, 0] {
        let params = StackParams {
            folds: 2,
            lambdas: vec![10.0],
            cross_fit,
            structural: fit.clone(),
            max_rows: 0,
            ..StackParams::default()
        };
        let all = training_inputs(&sp, &fx.train, &params).unwrap();
        tables.push(all.tables.clone());
        let sampled = training_inputs(
            &sp,
            &fx.train,
            &StackParams {
                max_rows,
                ..params.clone()
            },
        )
        .unwrap();
        let n = sampled.inputs.len();
        assert!(
            n > max_rows * 6 / 10 && n < max_rows * 14 / 10,
            "cross_fit {cross_fit}: {n} rows of {}",
            all.inputs.len()
        );
        assert_eq!(sampled.offer.len(), n);
        assert_eq!(sampled.classes.len(), n);
        let count = |c: &[u32]| {
            let mut m: HashMap<u32, usize> = HashMap::new();
            for &x in c {
                *m.entry(x).or_default() += 1;
            }
            m
        };
        // rows name their customer's body row: the events customer without a sample,
        // its rank among the kept customers with one
        let (every, kept) = (count(&all.customer), count(&sampled.customer));
        let every_kept: HashMap<u32, usize> = every
            .iter()
            .filter_map(|(c, k)| sample.body_row(*c).map(|r| (r, *k)))
            .collect();
        assert_eq!(kept, every_kept, "not all events of the kept customers");
        let expected: usize = every_kept.values().sum();
        assert_eq!(n, expected);
        for (g, c) in sampled.group.iter().zip(&sampled.customer) {
            assert!(hash_in_sample(*g, sample.rate), "customer {c}");
        }
        // a kept event's inputs are the ones it gets without the sample (same refits)
        let first = |t: &runsize::model::stack_fit::TrainingInputs, c: u32| {
            t.customer
                .iter()
                .position(|&x| x == c)
                .and_then(|i| t.purchase_input(i))
                .map(|x| x.gap)
        };
        let c = sampled.customer[0];
        let ec = all
            .customer
            .iter()
            .copied()
            .find(|&e| sample.body_row(e) == Some(c))
            .expect("the kept customer is among all rows");
        assert!(first(&sampled, c).is_some());
        assert_eq!(first(&sampled, c), first(&all, ec));
    }
    // the count tables of the full model: streamed over the rows (cross-fitting) and
    // from the materialised training events (leave-one-out), the same
    assert_eq!(tables[0], tables[1]);
    assert!(tables[0].global.iter().sum::<u64>() > 10_000);
    // the stage fitted on the sample keeps held-out log loss and calibration
    // and the cross-validation on a further sample (a quarter of the rows)
    let params = StackParams {
        folds: 2,
        lambdas: vec![10.0, 100.0],
        cross_fit: 2,
        structural: fit.clone(),
        max_rows,
        cv_rows: max_rows / 4,
        ..StackParams::default()
    };
    let stack = params.fit(&sp, &fx.train).unwrap();
    assert!((1..=2).contains(&stack.purchase.cv.len()));
    assert!(stack
        .purchase
        .cv
        .iter()
        .any(|p| p.lambda == stack.purchase.lambda));
    assert!(stack.purchase.cv.iter().all(|p| p.log_loss.is_finite()));
    assert!(stack.purchase.coef.iter().all(|c| c.is_finite()));
    let mut model = structural.clone();
    model.stack = Some(stack);
    let before = sp.evaluate(&fx.test).unwrap().overall;
    let after = predictor(&model).evaluate(&fx.test).unwrap().overall;
    println!(
        "held-out: structural log loss {:.4} ece {:.4}; stage on a {:.0}% sample {:.4} / {:.4}",
        before.log_loss,
        before.ece,
        100.0 * sample.rate,
        after.log_loss,
        after.ece
    );
    assert!(after.log_loss <= before.log_loss + 0.003);
    assert!(after.ece < 0.025, "ECE {}", after.ece);
}

/// Cross-fitted inputs keep every training event's own outcome out of its inputs, with
/// the default two halves and with three folds, warm-started refits and exact ones: flipping one event's outcome and
/// training again leaves that event's inputs bit-identical, while other events' inputs
/// and the full model's own probabilities for the event (what in-sample inputs would
/// carry) move.
#[test]
fn cross_fitted_inputs_never_see_their_own_outcome() {
    use runsize::data::schema::Outcome;
    let fx = common::synth_split(8_000, 5, 6, Some(8));
    let fit = FitParams::default().max_iter(20);
    let structural = Predictor::new(fit.fit(&fx.train).unwrap()).unwrap();
    // three folds warm-started and exact, and the default two halves
    for (cross_fit, exact_refits) in [
        (3, false),
        (3, true),
        (StackParams::default().cross_fit, true),
    ] {
        let params = StackParams {
            cross_fit,
            structural: fit.clone(),
            max_rows: 0,
            exact_refits,
            ..StackParams::default()
        };
        let base = training_inputs(&structural, &fx.train, &params).unwrap();
        let n = base.inputs.len();
        assert_eq!(base.event.len(), n);
        for pick in [0, n / 3, n - 1] {
            let i = base.event[pick] as usize;
            let mut events = fx.train.clone();
            let was = events.outcome[i];
            events.outcome[i] = if was == Outcome::Fit {
                Outcome::Large
            } else {
                Outcome::Fit
            };
            let refit = Predictor::new(fit.fit(&events).unwrap()).unwrap();
            let flipped = training_inputs(&refit, &events, &params).unwrap();
            let j = flipped.event.iter().position(|&e| e as usize == i).unwrap();
            assert_eq!(
                flipped.inputs[j], base.inputs[pick],
                "event {i}: purchase inputs"
            );
            assert_eq!(
                flipped.offer[j], base.offer[pick],
                "event {i}: offer inputs"
            );
            // the flip is visible: to other events' inputs, and to the full model
            let moved = flipped
                .inputs
                .iter()
                .zip(&base.inputs)
                .filter(|(a, b)| a != b)
                .count();
            assert!(moved > 0, "event {i}: flipping changed no input at all");
            let own = |m: &Predictor, ev: &runsize::data::schema::Events| m.score(ev)[i];
            assert_ne!(own(&structural, &fx.train), own(&refit, &events));
        }
    }
}

/// Cross-fitting before the final fit (as `runsize train` does) gives the same second
/// stage as cross-fitting after it, and its converged fold model starts a final fit
/// that converges to the same parameters.
#[test]
fn cross_fitting_first_gives_the_same_stage_and_a_warm_start() {
    // the events of model.rs's warm-start test: the fit converges on them
    let fx = common::synth_split(40_000, 3, 10, Some(12));
    let fit = FitParams::default();
    let params = StackParams {
        lambdas: vec![10.0, 100.0],
        structural: fit.clone(),
        ..StackParams::default()
    };
    let first = cross_fitted(&fx.train, &params).unwrap();
    let mut first = first;
    let start = first
        .warm_start
        .take()
        .expect("the first half's fit converges on this data");
    let data = FitData::from_events(&fx.train);
    let cold = fit.fit_prepared(&fx.train, &data, &mut |_| {}).unwrap();
    let warm = fit
        .fit_from(&fx.train, &data, Some(&start), &mut |_| {})
        .unwrap();
    // on these 32k events: 9 iterations warm against 20 cold (with the EM variance
    // updates it was 27 against 30)
    assert!(cold.summary.converged && warm.summary.converged);
    assert!(
        warm.summary.iterations < cold.summary.iterations,
        "warm {} iterations, cold {}",
        warm.summary.iterations,
        cold.summary.iterations
    );
    // the same article true sizes to the fit's tolerance (as tests/model.rs's warm
    // start): both stop once an iteration moves them by under 1e-3 RMS, so they agree to
    // a few hundredths (measured: RMS 0.020, largest 0.050; 0.018 / 0.046 with EM)
    let (a, b) = (
        common::article_offsets(&cold),
        common::article_offsets(&warm),
    );
    let d = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let rms = (a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64).sqrt();
    assert!(rms < 0.025, "article true sizes differ by {rms} RMS");
    assert!(d < 0.06, "article true sizes differ by up to {d}");
    // the stage does not depend on when its inputs were cross-fitted
    let model = predictor(&cold);
    let after = params.fit(&model, &fx.train).unwrap();
    let before = params.fit_cross_fitted(&model, &fx.train, first).unwrap();
    assert_eq!(after.purchase.coef, before.purchase.coef);
    assert_eq!(after.offer, before.offer);
    assert_eq!(after.tables, before.tables);
    // the tables streamed in parallel blocks (cross-fitting) are those counted from the
    // list of training events (leave-one-out): the same integers, positions summed in
    // row order
    let loo = params
        .clone()
        .leave_one_out()
        .fit(&model, &fx.train)
        .unwrap();
    assert_eq!(loo.tables, after.tables);
}

/// Second-stage scoring with few rows per customer (a held-out part) makes each row's
/// customer view on the fly instead of a table of every customer's views: the same
/// probabilities, bit for bit, as the reference, which reads the table.
#[test]
fn stacked_scoring_without_the_customer_table_matches_the_reference() {
    use runsize::model::score::ScoreOptions;
    let fx = common::synth_split(20_000, 4, 6, Some(8));
    let params = StackParams {
        lambdas: vec![10.0],
        structural: FitParams::default().max_iter(10),
        ..StackParams::default()
    };
    let model = predictor(&common::stacked(&fx.train, &params));
    for events in [&fx.train, &fx.test] {
        // under the 4 rows per customer from which scoring builds the table
        assert!(events.len() < 4 * events.customers.len());
        for choice_evidence in [true, false] {
            let opts = ScoreOptions { choice_evidence };
            let fast = model.score_with(events, &opts);
            let reference = model.score_reference(events, &opts);
            assert_eq!(fast.len(), reference.len());
            for (i, (x, y)) in fast.iter().zip(&reference).enumerate() {
                assert!(
                    x.iter()
                        .zip(y)
                        .all(|(a, b)| a == b || (a.is_nan() && b.is_nan())),
                    "row {i}: {x:?} against the reference's {y:?}"
                );
            }
            assert!(fast.iter().filter(|p| p[0].is_finite()).count() > events.len() / 2);
        }
    }
}

/// Penalties chosen by the evidence (the default: each candidate fitted once) score the
/// held-out events as the cross-validated choice does (folds x candidates fits), and the
/// search's record says how it chose.
#[test]
fn penalties_by_evidence_score_as_cross_validation_does() {
    let (fx, fit, structural, sp) = structural_fixture(11);
    let base = StackParams {
        structural: fit.clone(),
        ..StackParams::default()
    };
    let mut scores = Vec::new();
    for select in [Select::Evidence, Select::CrossValidation] {
        let params = StackParams {
            select,
            ..base.clone()
        };
        let stack = params.fit(&sp, &fx.train).unwrap();
        let lg = &stack.purchase;
        assert_eq!(lg.select, select);
        assert!(params.lambdas.contains(&lg.lambda));
        // cross-validation's path stops at the first worse point: at least two; the
        // evidence fits the strongest and those predicted to beat the best: at least one
        let least = if select == Select::Evidence { 1 } else { 2 };
        assert!((least..=params.lambdas.len()).contains(&lg.cv.len()));
        assert!(lg.cv.iter().any(|c| c.lambda == lg.lambda));
        assert!(lg.cv.iter().all(|c| c.log_loss.is_finite()));
        let offer = stack.offer.as_ref().expect("an offer calibration");
        assert_eq!(offer.select, select);
        assert!(offer.criterion.is_finite());
        let mut model = structural.clone();
        model.stack = Some(stack);
        let m = predictor(&model).evaluate(&fx.test).unwrap().overall;
        println!(
            "{select:?}: penalty {} ({} tried), held-out auc {:.4} log loss {:.4} ece {:.4}",
            model.stack.as_ref().unwrap().purchase.lambda,
            model.stack.as_ref().unwrap().purchase.cv.len(),
            m.auc_avg,
            m.log_loss,
            m.ece
        );
        scores.push(m);
    }
    let (ev, cv) = (&scores[0], &scores[1]);
    assert!(
        (ev.log_loss - cv.log_loss).abs() < 0.002,
        "log loss {} (evidence) vs {} (cross-validation)",
        ev.log_loss,
        cv.log_loss
    );
    assert!((ev.auc_avg - cv.auc_avg).abs() < 0.003);
}
