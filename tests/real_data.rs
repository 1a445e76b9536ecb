//! The RentTheRunway data in ../shared/data (skipped cleanly when absent): the published
//! protocol (random 80/10/10 split of rows, seed 0, test on the last 10%) must beat the
//! best published average AUC, 0.719.

use crate::common;

use runsize::model::{FitParams, Predictor};

#[test]
fn rtr_random_split_beats_published_auc() {
    let Some(path) = common::real_data_path() else {
        eprintln!("skipping: ../shared/data/renttherunway.parquet not present");
        return;
    };
    let train = common::rtr_events(&path, Some(0));
    let test = common::rtr_events(&path, Some(2));
    assert!(train.len() > 100_000 && test.len() > 10_000);
    let model = Predictor::new(FitParams::default().fit(&train).unwrap()).unwrap();
    let r = model.evaluate(&test).unwrap();
    let m = &r.overall;
    println!(
        "RTR random split (test part): auc {:.4} (small {:.4} fit {:.4} large {:.4}) logloss {:.4} ece {:.4}",
        m.auc_avg, m.auc[0], m.auc[1], m.auc[2], m.log_loss, m.ece
    );
    assert_eq!(m.n, test.len());
    assert!(
        m.auc_avg > 0.719,
        "average AUC {} does not beat 0.719",
        m.auc_avg
    );
    assert!(m.ece < 0.05, "ECE {}", m.ece);
}
