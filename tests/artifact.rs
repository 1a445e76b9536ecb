//! A corrupted artifact is refused the same way everywhere: `predict`, `eval`, `brands`
//! and the server all load through `artifact::load` (decode, checksum, validate), so each
//! names the same broken invariant, exits cleanly and never panics.

use crate::common;
use runsize::model::stack_fit::StackParams;
use runsize::model::{artifact, FitParams, Fitted};
use std::path::Path;

/// A way to break a model: name, the invariant the error names, the change.
type Corruption = (&'static str, &'static str, fn(&mut Fitted));

/// Ways to break a model that the checksum cannot see (the file is written whole).
fn corruptions() -> Vec<Corruption> {
    vec![
        ("inverted bounds", "second stage purchase learner", |m| {
            if let Some(s) = m.stack.as_mut() {
                s.purchase.spec.lo[0] = s.purchase.spec.hi[0] + 1.0;
            }
        }),
        ("table length", "product records", |m| {
            m.product_info.pop();
        }),
        ("NaN coefficient", "second stage purchase learner", |m| {
            if let Some(s) = m.stack.as_mut() {
                s.purchase.coef[0] = f64::NAN;
            }
        }),
        ("NaN constant", "global constant w is NaN", |m| {
            m.globals.w = f64::NAN;
        }),
    ]
}

fn runsize(args: &[&str]) -> (bool, String) {
    let out = common::runsize_bin(args);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_command_refuses_a_corrupted_artifact_with_one_error() {
    let fx = common::synth_split(12_000, 3, 6, Some(8));
    let params = StackParams {
        folds: 2,
        lambdas: vec![10.0],
        cross_fit: 2,
        structural: FitParams::default().max_iter(6),
        ..StackParams::default()
    };
    let model = common::stacked(&fx.train, &params);
    model.validate().expect("the trained model is valid");
    let events = fx.dir.path().join("synth.parquet");
    let events = events.to_str().unwrap();
    let dir = common::tempdir();
    for (what, expect, corrupt) in corruptions() {
        let mut bad = model.clone();
        corrupt(&mut bad);
        let path = dir
            .path()
            .join(format!("{}.runsize", what.replace(' ', "-")));
        artifact::save(&bad, &path).unwrap();
        let p = path.to_str().unwrap();

        let loaded = artifact::load(&path).unwrap_err().to_string();
        assert!(loaded.contains("not a usable model"), "{what}: {loaded}");
        assert!(loaded.contains(expect), "{what}: {loaded}");
        let served = runsize::serve::load_model(&path).unwrap_err().to_string();
        assert_eq!(served, loaded, "{what}: the server says it differently");

        let out = dir.path().join("scored.parquet");
        let out = out.to_str().unwrap();
        for cmd in [
            vec!["predict", "--model", p, "--events", events, "--out", out],
            vec!["eval", "--model", p, "--events", events],
            vec!["brands", "--model", p],
        ] {
            let (ok, stderr) = runsize(&cmd);
            assert!(!ok, "{what}: `{}` accepted the artifact", cmd[0]);
            assert!(!stderr.contains("panicked"), "{what}: {}: {stderr}", cmd[0]);
            assert!(
                stderr.contains(&loaded),
                "{what}: `{}` said {stderr:?}, expected {loaded:?}",
                cmd[0]
            );
        }
        assert!(!Path::new(out).exists(), "{what}: predict wrote output");
    }
}
