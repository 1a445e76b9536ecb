//! Customer feature model: encodes body data (numeric and categorical) into a design
//! row and predicts a customer's prior size from it with ridge regression.

use super::query::{Feature, Shopper};
use crate::data::schema::{CustomerFeatures, NONE};
use serde::{Deserialize, Serialize};

/// Encoding of one numeric feature: standardised value, its square and a missing flag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NumericEnc {
    /// Feature name.
    pub name: String,
    /// Mean of observed values.
    pub mean: f64,
    /// Standard deviation of observed values (1 when constant).
    pub sd: f64,
}

/// Encoding of one categorical feature: one-hot over the levels seen in training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CategoricalEnc {
    /// Feature name.
    pub name: String,
    /// Levels in code order; unseen levels encode as all zeros.
    pub levels: Vec<String>,
}

/// One customer's feature values, by the encoder's feature order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeatureValues<'a> {
    /// Numeric values (NaN when unknown), one per numeric feature.
    pub numeric: Vec<f64>,
    /// Categorical levels (None when unknown), one per categorical feature.
    pub categorical: Vec<Option<&'a str>>,
}

impl<'a> FeatureValues<'a> {
    /// The values of a query's body features (`shopper.features`) in `model`'s feature
    /// order: a numeric feature given as a number, a categorical one given as text;
    /// anything missing or of the other type is unknown (NaN / `None`). Names the model
    /// does not know are ignored (the recommend path reports type errors itself).
    pub fn from_query(model: &FeatureModel, shopper: &Shopper<'a>) -> Self {
        FeatureValues {
            numeric: model
                .numeric
                .iter()
                .map(|f| match shopper.feature(&f.name) {
                    Some(Feature::Number(x)) => x,
                    _ => f64::NAN,
                })
                .collect(),
            categorical: model
                .categorical
                .iter()
                .map(|f| match shopper.feature(&f.name) {
                    Some(Feature::Text(s)) => Some(s),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// Maps customer features to a design row and a prior size.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureModel {
    /// Numeric feature encodings.
    pub numeric: Vec<NumericEnc>,
    /// Categorical feature encodings.
    pub categorical: Vec<CategoricalEnc>,
    /// Ridge coefficients, one per design column (intercept first).
    pub coef: Vec<f64>,
}

/// Standardised values are clipped to this many standard deviations.
const Z_CLIP: f64 = 5.0;

impl FeatureModel {
    /// The names of the body features this model reads, numeric ones first (its design
    /// order).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.numeric
            .iter()
            .map(|f| f.name.as_str())
            .chain(self.categorical.iter().map(|f| f.name.as_str()))
    }

    /// The model's feature names that `listed` (the columns a command was told to read)
    /// leaves out: scoring without them silently drops the body data the model learned
    /// from, so `eval` and `predict` warn about them.
    pub fn unlisted(&self, listed: &[String]) -> Vec<String> {
        self.names()
            .filter(|n| !listed.iter().any(|l| l == n))
            .map(str::to_string)
            .collect()
    }

    /// Build the encoding (means, standard deviations, levels) from training features;
    /// coefficients start at zero except the intercept.
    pub fn from_training(features: &CustomerFeatures, intercept: f64) -> Self {
        let numeric = features
            .numeric
            .iter()
            .map(|f| {
                let (mut n, mut s, mut ss) = (0.0f64, 0.0f64, 0.0f64);
                for &v in &f.values {
                    if v.is_finite() {
                        let v = f64::from(v);
                        n += 1.0;
                        s += v;
                        ss += v * v;
                    }
                }
                let mean = if n > 0.0 { s / n } else { 0.0 };
                let var = if n > 1.0 {
                    (ss / n - mean * mean).max(0.0)
                } else {
                    0.0
                };
                let sd = if var > 1e-12 { var.sqrt() } else { 1.0 };
                NumericEnc {
                    name: f.name.clone(),
                    mean,
                    sd,
                }
            })
            .collect();
        let categorical = features
            .categorical
            .iter()
            .map(|f| CategoricalEnc {
                name: f.name.clone(),
                levels: f.levels.clone(),
            })
            .collect();
        let mut model = FeatureModel {
            numeric,
            categorical,
            coef: Vec::new(),
        };
        model.coef = vec![0.0; model.dim()];
        if let Some(c) = model.coef.first_mut() {
            *c = intercept;
        }
        model
    }

    /// Number of design columns: intercept, 3 per numeric feature, one per level.
    pub fn dim(&self) -> usize {
        1 + 3 * self.numeric.len()
            + self
                .categorical
                .iter()
                .map(|c| c.levels.len())
                .sum::<usize>()
    }

    /// Whether any feature is present in the values.
    pub fn any_present(values: &FeatureValues<'_>) -> bool {
        values.numeric.iter().any(|v| v.is_finite())
            || values.categorical.iter().any(Option::is_some)
    }

    /// Write the design row for `values` into `row` (length [`FeatureModel::dim`]).
    pub fn encode_into(&self, values: &FeatureValues<'_>, row: &mut [f64]) {
        row.iter_mut().for_each(|r| *r = 0.0);
        if row.len() != self.dim() {
            return;
        }
        row[0] = 1.0;
        let mut j = 1;
        for (i, enc) in self.numeric.iter().enumerate() {
            match values.numeric.get(i) {
                Some(v) if v.is_finite() => {
                    let z = ((v - enc.mean) / enc.sd).clamp(-Z_CLIP, Z_CLIP);
                    row[j] = z;
                    row[j + 1] = z * z - 1.0;
                }
                _ => row[j + 2] = 1.0,
            }
            j += 3;
        }
        for (i, enc) in self.categorical.iter().enumerate() {
            if let Some(Some(level)) = values.categorical.get(i) {
                if let Some(k) = enc.levels.iter().position(|l| l == level) {
                    row[j + k] = 1.0;
                }
            }
            j += enc.levels.len();
        }
    }

    /// Calls `put(column, value)` for every non-zero entry of training customer `c`'s
    /// design row, read straight from the ingest columns (categorical codes there are the
    /// encoder's level codes), intercept first; returns whether any feature was present.
    /// Rows are mostly zeros (missing flags, one-hot levels): the fit's per-customer sums
    /// touch only these entries.
    #[inline]
    pub fn for_each_training(
        &self,
        features: &CustomerFeatures,
        c: usize,
        mut put: impl FnMut(usize, f64),
    ) -> bool {
        put(0, 1.0);
        let mut any = false;
        let mut j = 1;
        for (enc, f) in self.numeric.iter().zip(features.numeric.iter()) {
            match f.values.get(c) {
                Some(v) if v.is_finite() => {
                    let z = ((f64::from(*v) - enc.mean) / enc.sd).clamp(-Z_CLIP, Z_CLIP);
                    put(j, z);
                    put(j + 1, z * z - 1.0);
                    any = true;
                }
                _ => put(j + 2, 1.0),
            }
            j += 3;
        }
        for (enc, f) in self.categorical.iter().zip(features.categorical.iter()) {
            if let Some(&code) = f.codes.get(c) {
                if code != NONE && (code as usize) < enc.levels.len() {
                    put(j + code as usize, 1.0);
                    any = true;
                }
            }
            j += enc.levels.len();
        }
        any
    }

    /// Design row of training customer `c` (see [`FeatureModel::for_each_training`]);
    /// returns whether any feature was present.
    pub fn encode_training(&self, features: &CustomerFeatures, c: usize, row: &mut [f64]) -> bool {
        row.iter_mut().for_each(|r| *r = 0.0);
        if row.len() != self.dim() {
            return false;
        }
        self.for_each_training(features, c, |j, x| row[j] = x)
    }

    /// Prior size of training customer `c` (the design row never materialised).
    #[inline]
    pub fn predict_training(&self, features: &CustomerFeatures, c: usize) -> f64 {
        let mut sum = 0.0;
        self.for_each_training(features, c, |j, x| {
            sum += self.coef.get(j).copied().unwrap_or(0.0) * x;
        });
        sum
    }

    /// Prior size for a design row.
    pub fn predict_row(&self, row: &[f64]) -> f64 {
        self.coef.iter().zip(row).map(|(c, x)| c * x).sum()
    }

    /// Prior size for feature values.
    pub fn predict(&self, values: &FeatureValues<'_>) -> f64 {
        let mut row = vec![0.0; self.dim()];
        self.encode_into(values, &mut row);
        self.predict_row(&row)
    }
}

/// Sufficient statistics of a ridge regression: `XᵀX` (upper triangle, row-major full)
/// and `Xᵀy`; additive, so partial sums from any grouping combine.
#[derive(Clone, Debug, PartialEq)]
pub struct RidgeStats {
    /// Dimension.
    pub dim: usize,
    /// XᵀX, full `dim × dim`, row-major.
    pub xtx: Vec<f64>,
    /// Xᵀy.
    pub xty: Vec<f64>,
}

impl RidgeStats {
    /// Zero statistics of dimension `dim`.
    pub fn new(dim: usize) -> Self {
        RidgeStats {
            dim,
            xtx: vec![0.0; dim * dim],
            xty: vec![0.0; dim],
        }
    }

    /// Add one observation.
    pub fn add(&mut self, row: &[f64], y: f64) {
        let dim = self.dim;
        // design rows are mostly zeros (missing indicators, one-hot levels): touch only
        // the non-zero pairs
        let mut nz = [0usize; 64];
        let mut n = 0;
        for (i, &xi) in row.iter().enumerate().take(dim) {
            if xi != 0.0 {
                if n == nz.len() {
                    n = usize::MAX;
                    break;
                }
                nz[n] = i;
                n += 1;
            }
        }
        if n == usize::MAX {
            // dense row: every pair
            for (i, &xi) in row.iter().enumerate().take(dim) {
                self.xty[i] += xi * y;
                let out = &mut self.xtx[i * dim..(i + 1) * dim];
                for (o, &xk) in out.iter_mut().zip(row) {
                    *o += xi * xk;
                }
            }
            return;
        }
        for &i in &nz[..n] {
            let xi = row[i];
            self.xty[i] += xi * y;
            let out = &mut self.xtx[i * dim..(i + 1) * dim];
            for &k in &nz[..n] {
                out[k] += xi * row[k];
            }
        }
    }

    /// Add another set of statistics.
    pub fn merge(&mut self, other: &RidgeStats) {
        self.xtx
            .iter_mut()
            .zip(&other.xtx)
            .for_each(|(a, b)| *a += b);
        self.xty
            .iter_mut()
            .zip(&other.xty)
            .for_each(|(a, b)| *a += b);
    }

    /// Solve `(XᵀX + λ·I') β = Xᵀy` where `I'` leaves the intercept (column 0)
    /// unpenalised. Returns `None` when the system is not positive definite.
    pub fn solve(&self, lambda: f64) -> Option<Vec<f64>> {
        let n = self.dim;
        let mut a = self.xtx.clone();
        for i in 0..n {
            a[i * n + i] += if i == 0 { 1e-9 } else { lambda };
        }
        cholesky_solve(&mut a, &self.xty, n)
    }
}

/// Factor symmetric positive definite `A` (n × n row-major) in place into its Cholesky
/// factor `L` (lower triangle; `A = L·Lᵀ`); `None` when `A` is not positive definite.
fn cholesky_factor(a: &mut [f64], n: usize) -> Option<()> {
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in (j + 1)..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    Some(())
}

/// Solve `A x = b` for symmetric positive definite `A` (n × n row-major, overwritten).
pub fn cholesky_solve(a: &mut [f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    cholesky_factor(a, n)?;
    let mut y = vec![0.0; n];
    for i in 0..n {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * n + k] * y[k];
        }
        y[i] = s / a[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let mut s = y[i];
        for k in (i + 1)..n {
            s -= a[k * n + i] * x[k];
        }
        x[i] = s / a[i * n + i];
    }
    Some(x)
}

/// [`cholesky_solve`] and the log determinant of `a` from the same factorisation.
pub fn cholesky_solve_log_det(a: &mut [f64], b: &[f64], n: usize) -> Option<(Vec<f64>, f64)> {
    let x = cholesky_solve(a, b, n)?;
    Some((x, (0..n).map(|j| 2.0 * a[j * n + j].ln()).sum()))
}

/// `ln det A` of symmetric positive definite `A` (n × n row-major, overwritten by its
/// Cholesky factor): twice the summed logs of the factor's diagonal. `None` when `A` is
/// not positive definite.
pub fn cholesky_log_det(a: &mut [f64], n: usize) -> Option<f64> {
    cholesky_factor(a, n)?;
    Some((0..n).map(|j| 2.0 * a[j * n + j].ln()).sum())
}

/// A feature model of one numeric (`height_in`) and one categorical (`body_type`)
/// feature, for tests of what reads a model's feature names.
#[cfg(test)]
pub(crate) fn two_feature_model() -> FeatureModel {
    FeatureModel {
        numeric: vec![NumericEnc {
            name: "height_in".into(),
            mean: 65.0,
            sd: 3.0,
        }],
        categorical: vec![CategoricalEnc {
            name: "body_type".into(),
            levels: vec!["petite".into()],
        }],
        coef: vec![0.0; 3],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::schema::{CategoricalFeature, NumericFeature};

    #[test]
    fn unlisted_names_the_features_a_command_left_out() {
        let m = two_feature_model();
        assert_eq!(m.names().collect::<Vec<_>>(), ["height_in", "body_type"]);
        assert_eq!(m.unlisted(&[]), ["height_in", "body_type"]);
        assert_eq!(m.unlisted(&["body_type".to_string()]), ["height_in"]);
        let all = ["body_type".to_string(), "height_in".to_string()];
        assert!(m.unlisted(&all).is_empty());
    }

    #[test]
    fn cholesky_hand_checked() {
        // [[4,2],[2,3]] x = [2,1] => x = [0.5, 0]
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let x = cholesky_solve(&mut a, &[2.0, 1.0], 2).unwrap();
        assert!((x[0] - 0.5).abs() < 1e-12 && x[1].abs() < 1e-12);
        let mut bad = vec![1.0, 2.0, 2.0, 1.0];
        assert!(cholesky_solve(&mut bad, &[1.0, 1.0], 2).is_none());
        // det [[4,2],[2,3]] = 8
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        let ld = cholesky_log_det(&mut a, 2).unwrap();
        assert!((ld - 8f64.ln()).abs() < 1e-12, "{ld}");
        let mut bad = vec![1.0, 2.0, 2.0, 1.0];
        assert!(cholesky_log_det(&mut bad, 2).is_none());
    }

    #[test]
    fn ridge_recovers_line() {
        // y = 1 + 2x on x = 0..10, tiny penalty
        let mut st = RidgeStats::new(2);
        for i in 0..10 {
            let x = i as f64;
            st.add(&[1.0, x], 1.0 + 2.0 * x);
        }
        let b = st.solve(1e-9).unwrap();
        assert!((b[0] - 1.0).abs() < 1e-6 && (b[1] - 2.0).abs() < 1e-6);
    }

    #[test]
    fn ridge_sums_skip_zeros_exactly() {
        // sparse row [2, 0, 3] with y = 5: X'X has 4, 6, 6, 9 at (0,0), (0,2), (2,0), (2,2)
        let mut st = RidgeStats::new(3);
        st.add(&[2.0, 0.0, 3.0], 5.0);
        assert_eq!(st.xtx, vec![4.0, 0.0, 6.0, 0.0, 0.0, 0.0, 6.0, 0.0, 9.0]);
        assert_eq!(st.xty, vec![10.0, 0.0, 15.0]);
        // a dense row wider than the sparse buffer takes the dense path, same sums
        let n = 70;
        let row: Vec<f64> = (0..n).map(|i| (i + 1) as f64).collect();
        let mut big = RidgeStats::new(n);
        big.add(&row, 1.0);
        assert_eq!(big.xtx[n + 2], 2.0 * 3.0);
        assert_eq!(big.xty[n - 1], n as f64);
    }

    #[test]
    fn encodes_numeric_missing_and_categorical() {
        let feats = CustomerFeatures {
            numeric: vec![NumericFeature {
                name: "h".into(),
                values: vec![160.0, 170.0, f32::NAN],
            }],
            categorical: vec![CategoricalFeature {
                name: "shape".into(),
                codes: vec![0, NONE, 1],
                levels: vec!["pear".into(), "apple".into()],
            }],
        };
        let m = FeatureModel::from_training(&feats, 3.0);
        assert_eq!(m.dim(), 1 + 3 + 2);
        assert!((m.numeric[0].mean - 165.0).abs() < 1e-9);
        assert!((m.numeric[0].sd - 5.0).abs() < 1e-9);
        let mut row = vec![0.0; m.dim()];
        assert!(m.encode_training(&feats, 0, &mut row));
        assert_eq!(row, vec![1.0, -1.0, 0.0, 0.0, 1.0, 0.0]);
        assert!(m.encode_training(&feats, 2, &mut row));
        assert_eq!(row, vec![1.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
        // the same through the serving path
        let vals = FeatureValues {
            numeric: vec![160.0],
            categorical: vec![Some("pear")],
        };
        let mut row2 = vec![0.0; m.dim()];
        m.encode_into(&vals, &mut row2);
        assert_eq!(row2, vec![1.0, -1.0, 0.0, 0.0, 1.0, 0.0]);
        assert!((m.predict(&vals) - 3.0).abs() < 1e-12);
    }
}
