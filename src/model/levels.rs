//! The offset hierarchy's quadratic solve: coordinate descent over nested levels (size
//! label, brand, category, product, product-in-size) on per-article-size sufficient
//! statistics, with Gaussian shrinkage and empirical-Bayes level variances.

use crate::data::schema::NONE;

/// Inverse-gamma prior strength on level variances (pseudo-groups).
pub(crate) const EB_A0: f64 = 2.0;

/// Most solve / re-estimate rounds of [`solve_levels_eb`] per fit iteration, used for
/// the band-width spreads. One round per pass left the products' band spread shrinking
/// geometrically for seven passes once band widths started (10M synthetic events:
/// 0.091, 0.056, 0.045, 0.036, 0.031, 0.027, 0.025). With up to 4: 10M `--no-stack` 15
/// iterations instead of 16, its cross-fitting halves 12 / 12 instead of 16 / 14, 100M
/// 23 instead of 25, RentTheRunway unchanged (26), held out the same to 4 decimals
/// (BENCHMARKS.md). The location spreads keep one round: with 4, RentTheRunway took 31
/// iterations instead of 26.
pub(crate) const EB_ROUNDS: usize = 4;

/// [`solve_levels_eb`] stops re-solving once no level's sd moves by more than this
/// (relative).
const EB_SETTLED: f64 = 0.01;

/// One level of the offset hierarchy during the quadratic solve.
pub(crate) struct Level<'a> {
    /// Group of each article-size ([`NONE`]: not in this level); precomputed once per fit.
    pub(crate) of_as: &'a [u32],
    /// Group values.
    pub(crate) val: Vec<f64>,
    /// Prior sd.
    pub(crate) sd: f64,
    /// Final curvature per group (data + prior).
    pub(crate) hess: Vec<f64>,
}

impl<'a> Level<'a> {
    pub(crate) fn new(of_as: &'a [u32], val: Vec<f64>, sd: f64) -> Level<'a> {
        let n = val.len();
        Level {
            of_as,
            val,
            sd,
            hess: vec![0.0; n],
        }
    }

    /// Empirical-Bayes prior sd with an inverse-gamma prior centred on `guess`: the
    /// evidence fixed point `sd² = (Σ v² + 2a·guess²) / (γ + 2a)`, where
    /// `γ = Σ (1 − var_k / sd²)` counts the groups the data determine (MacKay's update).
    /// Its fixed point is the EM update's, `sd² = (Σ (v² + var_k) + 2a·guess²) / (n + 2a)`,
    /// but EM moves a variance by the data's share of each group's precision per
    /// iteration: with weakly determined groups (a few events per product-in-size) it
    /// crept for 40 iterations on RentTheRunway without settling; this reaches the same
    /// point in a few.
    pub(crate) fn eb_sd(&self, guess: f64) -> f64 {
        let n = self.val.len() as f64;
        if n == 0.0 {
            return self.sd;
        }
        let prec = 1.0 / (self.sd * self.sd).max(1e-24);
        let (ss, gamma) =
            self.val
                .iter()
                .zip(&self.hess)
                .fold((0.0, 0.0), |(ss, gamma), (v, h)| {
                    let determined = (1.0 - prec / h.max(1e-12)).clamp(0.0, 1.0);
                    (ss + v * v, gamma + determined)
                });
        ((ss + 2.0 * EB_A0 * guess * guess) / (gamma + 2.0 * EB_A0))
            .sqrt()
            .clamp(0.01, 30.0)
    }
}

/// [`sweep_levels`] from no change, at the levels' current sds (tests: the fit calls
/// [`solve_levels_eb`]).
#[cfg(test)]
pub(crate) fn solve_levels(g: &[f64], h: &[f64], levels: &mut [Level<'_>], sweeps: usize) {
    let mut u = vec![0.0; g.len()];
    sweep_levels(g, h, levels, sweeps, &mut u);
}

/// Solve the levels ([`sweep_levels`] from no change), then each level's empirical-Bayes sd ([`Level::eb_sd`] with its
/// entry of `guesses`) into `Level::sd`; repeated up to `rounds` times (the values
/// re-solved at the new sds, the sds re-estimated from them) until no sd moves by more
/// than 1%. One round is one step of the fit's outer iteration on the spreads; the
/// quadratic model holds what the next steps need, so they cost no pass over the data.
pub(crate) fn solve_levels_eb(
    g: &[f64],
    h: &[f64],
    levels: &mut [Level<'_>],
    sweeps: usize,
    guesses: &[f64],
    rounds: usize,
) {
    let mut u = vec![0.0; g.len()];
    for _ in 0..rounds.max(1) {
        sweep_levels(g, h, levels, sweeps, &mut u);
        let mut moved: f64 = 0.0;
        for (lv, &guess) in levels.iter_mut().zip(guesses) {
            let sd = lv.eb_sd(guess);
            moved = moved.max((sd / lv.sd).ln().abs());
            lv.sd = sd;
        }
        if moved < EB_SETTLED {
            break;
        }
    }
}

/// Coordinate descent on `Σ_j g_j u_j + ½ h_j u_j² + Σ_levels Σ_k v_k² / (2 sd²)`, where
/// `u_j` is the change of article-size `j`'s total and each level adds its group's
/// change to every article-size in the group: `sweeps` sweeps from the changes `u` so
/// far (updated).
fn sweep_levels(g: &[f64], h: &[f64], levels: &mut [Level<'_>], sweeps: usize, u: &mut [f64]) {
    let n_as = g.len();
    for _ in 0..sweeps {
        for lv in levels.iter_mut() {
            let n = lv.val.len();
            let mut grad = vec![0.0; n];
            let mut hess = vec![0.0; n];
            for j in 0..n_as {
                let k = lv.of_as[j];
                if k == NONE || (k as usize) >= n {
                    continue;
                }
                grad[k as usize] += g[j] + h[j] * u[j];
                hess[k as usize] += h[j];
            }
            let prec = 1.0 / (lv.sd * lv.sd);
            let mut step = vec![0.0; n];
            for k in 0..n {
                let gk = grad[k] + lv.val[k] * prec;
                let hk = hess[k] + prec;
                step[k] = (-gk / hk).clamp(-2.0, 2.0);
                lv.val[k] += step[k];
                lv.hess[k] = hk;
            }
            for (uj, &k) in u.iter_mut().zip(lv.of_as) {
                if k != NONE && (k as usize) < n {
                    *uj += step[k as usize];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eb_sd_hand_value_and_em_fixed_point() {
        // values ±1, posterior precision 2 at prior sd 1: each group half determined
        // (γ = 1); (Σv² + 2a·0.3²) / (γ + 2a) = (2 + 0.36) / 5
        let mut lv = Level::new(&[], vec![1.0, -1.0], 1.0);
        lv.hess = vec![2.0, 2.0];
        assert!((lv.eb_sd(0.3) - (2.36f64 / 5.0).sqrt()).abs() < 1e-12);
        // the EM update's fixed point, in far fewer steps: groups with data precision
        // d_k whose posterior mean is v_k = d_k·y_k / (d_k + 1/sd²)
        let d = [0.5, 1.0, 4.0, 0.2];
        let y = [2.0f64, -1.0, 0.5, 3.0];
        let level_at = |sd: f64| {
            let p = 1.0 / (sd * sd);
            let mut lv = Level::new(
                &[],
                d.iter().zip(&y).map(|(d, y)| d * y / (d + p)).collect(),
                sd,
            );
            lv.hess = d.iter().map(|d| d + p).collect();
            lv
        };
        let em = |sd: f64| {
            let lv = level_at(sd);
            let ss: f64 = lv
                .val
                .iter()
                .zip(&lv.hess)
                .map(|(v, h)| v * v + 1.0 / h)
                .sum();
            ((ss + 2.0 * EB_A0 * 0.09) / (4.0 + 2.0 * EB_A0)).sqrt()
        };
        let solve = |step: &dyn Fn(f64) -> f64| {
            let mut sd = 1.0;
            for n in 1..10_000 {
                let next = step(sd);
                if (next - sd).abs() < 1e-12 {
                    return (next, n);
                }
                sd = next;
            }
            (sd, 10_000)
        };
        let (sd_em, n_em) = solve(&em);
        let (sd_mk, n_mk) = solve(&|sd| level_at(sd).eb_sd(0.3));
        assert!((sd_em - sd_mk).abs() < 1e-9, "{sd_em} vs {sd_mk}");
        assert!(n_mk < n_em, "{n_mk} steps against EM's {n_em}");
    }

    #[test]
    fn eb_rounds_reach_the_outer_iterations_fixed_point() {
        // one level of 4 groups, one article-size each, with data precision d_k and
        // data optimum y_k (gradient at 0: −d_k·y_k). The fit's outer loop solves at
        // the last sd and re-estimates it once per iteration; rounds within one update
        // head for the same point
        let d = [0.5, 1.0, 4.0, 0.2];
        let y = [2.0f64, -1.0, 0.5, 3.0];
        let g: Vec<f64> = d.iter().zip(&y).map(|(d, y)| -d * y).collect();
        let groups = [0u32, 1, 2, 3];
        let outer = |n: usize| {
            let mut sd = 1.0;
            for _ in 0..n {
                let mut lv = [Level::new(&groups, vec![0.0; 4], sd)];
                solve_levels(&g, &d, &mut lv, 4);
                sd = lv[0].eb_sd(0.3);
            }
            sd
        };
        let fixed = outer(500);
        // one round is one outer step
        let mut one = [Level::new(&groups, vec![0.0; 4], 1.0)];
        solve_levels_eb(&g, &d, &mut one, 4, &[0.3], 1);
        assert!((one[0].sd - outer(1)).abs() < 1e-12);
        // four rounds are four outer steps (none settles within 1% here), closer to
        // the fixed point than one
        let mut four = [Level::new(&groups, vec![0.0; 4], 1.0)];
        solve_levels_eb(&g, &d, &mut four, 4, &[0.3], 4);
        assert!(
            (four[0].sd - outer(4)).abs() < 1e-9,
            "{} vs {}",
            four[0].sd,
            outer(4)
        );
        assert!((four[0].sd - fixed).abs() < (one[0].sd - fixed).abs());
        // many rounds stop within about 1% of the fixed point, the values solved at
        // (about) that sd: v_k = d_k·y_k / (d_k + 1/sd²)
        let mut many = [Level::new(&groups, vec![0.0; 4], 1.0)];
        solve_levels_eb(&g, &d, &mut many, 4, &[0.3], 100);
        assert!(
            (many[0].sd - fixed).abs() < 0.05 * fixed,
            "{} vs {fixed}",
            many[0].sd
        );
        let p = 1.0 / (many[0].sd * many[0].sd);
        for k in 0..4 {
            let want = d[k] * y[k] / (d[k] + p);
            assert!(
                (many[0].val[k] - want).abs() < 0.05,
                "{k}: {} vs {want}",
                many[0].val[k]
            );
        }
    }

    #[test]
    fn level_solve_shrinks_toward_zero_by_precision() {
        // one group, two article-sizes: g = -10, h = 10 each (data says +1),
        // prior sd 1 => precision 1: optimum v = 20 / (20 + 1) = 0.952...
        let mut lv = [Level::new(&[0, 0], vec![0.0], 1.0)];
        solve_levels(&[-10.0, -10.0], &[10.0, 10.0], &mut lv, 3);
        assert!((lv[0].val[0] - 20.0 / 21.0).abs() < 1e-9);
    }

    #[test]
    fn level_solve_splits_between_nested_levels() {
        // brand (1 group) and product (2 groups); data: product 0 wants +1, product 1 wants +1
        // with lots of information; the sum brand + product must reach ~+1 for both.
        let mut lv = [
            Level::new(&[0, 0], vec![0.0], 0.5),
            Level::new(&[0, 1], vec![0.0, 0.0], 0.5),
        ];
        for _ in 0..50 {
            // re-linearise: gradient at the current totals for a quadratic centred at +1
            let tot = |j: usize| lv[0].val[0] + lv[1].val[j];
            let g = [1000.0 * (tot(0) - 1.0), 1000.0 * (tot(1) - 1.0)];
            solve_levels(&g, &[1000.0, 1000.0], &mut lv, 4);
        }
        let tot0 = lv[0].val[0] + lv[1].val[0];
        assert!((tot0 - 1.0).abs() < 0.01, "{tot0}");
        // shared effect goes to the brand, not duplicated in products
        assert!(lv[0].val[0] > lv[1].val[0]);
    }
}
