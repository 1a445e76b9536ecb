//! The second stage on synthetic data: it does not hurt held-out calibration or log
//! loss, its fit is deterministic, and train -> save -> load -> predict / recommend gives
//! identical numbers; artifacts of the previous format are refused with a clear message.

mod common;

use runsize::model::recommend::{ProductQuery, Shopper};
use runsize::model::stack::StackParams;
use runsize::model::{artifact, FitParams};

#[test]
fn second_stage_keeps_calibration_and_round_trips_exactly() {
    let fx = common::synth_split(60_000, 7, 15, Some(20));
    let structural = FitParams::default().max_iter(15).fit(&fx.train).unwrap();
    let params = StackParams {
        folds: 3,
        lambdas: vec![10.0, 100.0],
        ..StackParams::default()
    };
    let stack = params.fit(&structural, &fx.train).unwrap();
    assert_eq!(stack.coef.len(), 2 * stack.dim());
    assert!(stack.coef.iter().all(|c| c.is_finite()));
    assert_eq!(stack.cv.len(), params.lambdas.len() * params.sets.len());
    // deterministic: a second fit gives the same coefficients, bit for bit
    let again = params.fit(&structural, &fx.train).unwrap();
    assert_eq!(stack.coef, again.coef);

    let mut model = structural.clone();
    model.stack = Some(stack);
    let before = structural.evaluate(&fx.test).unwrap().overall;
    let after = model.evaluate(&fx.test).unwrap().overall;
    println!(
        "held-out structural: auc {:.4} logloss {:.4} ece {:.4}",
        before.auc_avg, before.log_loss, before.ece
    );
    println!(
        "held-out stacked:    auc {:.4} logloss {:.4} ece {:.4}",
        after.auc_avg, after.log_loss, after.ece
    );
    assert_eq!(before.n, after.n);
    assert!(after.ece < 0.02, "stacked ECE {}", after.ece);
    assert!(
        after.ece <= before.ece + 0.005,
        "stacked ECE {} vs structural {}",
        after.ece,
        before.ece
    );
    assert!(
        after.log_loss <= before.log_loss + 0.002,
        "stacked log loss {} vs structural {}",
        after.log_loss,
        before.log_loss
    );
    assert!(after.auc_avg >= before.auc_avg - 0.005);

    // train -> save -> load -> predict: identical
    let dir = common::tempdir();
    let path = dir.path().join("stacked.runsize");
    artifact::save(&model, &path).unwrap();
    let (back, _) = artifact::load(&path).unwrap();
    assert!(back.stack.is_some());
    let p1 = model.score(&fx.test);
    let p2 = back.score(&fx.test);
    assert_eq!(p1, p2);
    for p in &p1 {
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    // and the server's recommendation, for a known and a new shopper
    let product = ProductQuery {
        product_id: Some(model.products[0].name.clone()),
        ..Default::default()
    };
    for shopper in [
        Shopper {
            customer_id: Some(model.customers.ids[0].clone()),
            ..Default::default()
        },
        Shopper::default(),
    ] {
        let a = model.recommend(&product, &shopper).unwrap();
        let b = back.recommend(&product, &shopper).unwrap();
        assert_eq!(a, b);
        for s in &a.sizes {
            assert!((s.p_small + s.p_fit + s.p_large - 1.0).abs() < 1e-9);
        }
    }

    // an artifact of the previous format is refused, saying to retrain
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    let err = artifact::from_bytes(&bytes, &path).unwrap_err().to_string();
    assert!(
        err.contains("version 1") && err.contains("retrain"),
        "{err}"
    );
}
