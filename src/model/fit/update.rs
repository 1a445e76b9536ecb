//! The closed-form and quadratic updates of an iteration from its pass's sums.

use super::*;

impl State<'_> {
    /// All closed-form and quadratic updates from the pass's sums.
    pub(super) fn update(&mut self, acc: &Acc, p: &FitParams, iter: usize, plan: &Plan) {
        let delta = self.update_globals(acc);
        // fold the global step into the article-size gradients (block Gauss-Seidel)
        let gt: Vec<f64> = acc
            .art
            .iter()
            .map(|x| x.gt + x.cross[0] * delta[0] + x.cross[1] * delta[1] + x.cross[2] * delta[2])
            .collect();
        let ge: Vec<f64> = acc
            .art
            .iter()
            .map(|x| x.ge + x.cross[3] * delta[0] + x.cross[4] * delta[1] + x.cross[5] * delta[2])
            .collect();
        let ht: Vec<f64> = acc.art.iter().map(|x| x.ht).collect();
        self.update_locations(&gt, &ht, p.level_sweeps);
        // band widths only once locations have settled: early on they would absorb
        // misfit that the offsets are about to explain
        if p.learn_dispersion && iter > DISPERSION_FROM {
            let he: Vec<f64> = acc.art.iter().map(|x| x.he).collect();
            self.update_bands(&ge, &he, p.level_sweeps);
        }
        self.update_choice(acc);
        self.update_prior(acc, p.ridge_lambda, plan);
    }

    /// Damped Newton step on (w, c, h); returns the step taken.
    pub(super) fn update_globals(&mut self, acc: &Acc) -> [f64; 3] {
        let i = &acc.iglob;
        let mut a = [i[0], i[1], i[2], i[1], i[3], i[4], i[2], i[4], i[5]];
        let ridge = 1e-6 * (i[0] + i[3] + i[5]).max(1e-9);
        a[0] += ridge;
        a[4] += ridge;
        a[8] += ridge;
        let neg_g = [-acc.gglob[0], -acc.gglob[1], -acc.gglob[2]];
        let Some(mut step) = crate::model::features::cholesky_solve(&mut a, &neg_g, 3) else {
            return [0.0; 3];
        };
        for x in &mut step {
            *x = x.clamp(-1.0, 1.0);
        }
        let (w0, h0) = (self.model.globals.w, self.model.globals.h);
        // the slope's box [W_MIN, W_MAX]: a step that leaves it stops at the bound and
        // (c, h) take their Newton step given it. Scaling the whole step instead froze c
        // and h once the slope reached the bound (RentTheRunway's does) and let the
        // slope creep past it by the last halving's remainder
        let w_to = (w0 + step[0]).clamp(W_MIN, W_MAX);
        if w_to != w0 + step[0] {
            step = bounded_slope_step(i, &acc.gglob, w_to - w0).to_vec();
        }
        // keep the band positive
        let mut scale: f64 = 1.0;
        while scale > 1e-3 && h0 + scale * step[2] < 0.05 {
            scale *= 0.5;
        }
        // near the optimum the Newton step on the globals, taken against customers that
        // re-adapt in the next pass, alternated around it (period two: h 2.649 / 2.653
        // for 30 iterations of RentTheRunway's final fit, holding the bands' change at
        // 0.0015; and the slope on 100M synthetic events, w 3.603, 3.620, 3.631, 3.624,
        // 3.628, ...): a component that reverses its last step without shrinking to
        // under half of it is halved. For the slope and intercept this acts mostly early:
        // at 100M their halved early reversals let the drift share reach its bound within
        // the sample phase (full passes 11 -> 5); damped only from iteration 9 on, the
        // full phase took 21 passes, its change stalled at 0.0013 (BENCHMARKS.md)
        for (x, last) in step.iter_mut().zip(self.last_glob_step) {
            *x = super::damp_cycle(*x * scale, last);
        }
        self.last_glob_step = [step[0], step[1], step[2]];
        let g = &mut self.model.globals;
        g.w += step[0];
        g.c += step[1];
        g.h += step[2];
        [step[0], step[1], step[2]]
    }

    /// Solve the quadratic model of the outcome likelihood in the article-size totals
    /// for the location hierarchy, then re-estimate each level's prior variance.
    pub(super) fn update_locations(&mut self, g: &[f64], h: &[f64], sweeps: usize) {
        let gl = &self.model.globals;
        let [g_lab, g_bra, g_cat, g_pro, g_art] = &self.as_group;
        let mut levels = [
            Level::new(
                g_lab,
                self.model.labels.iter().map(|l| l.offset.value).collect(),
                gl.sd_label,
            ),
            Level::new(g_bra, values(&self.model.brands), gl.sd_brand),
            Level::new(g_cat, values(&self.model.categories), gl.sd_category),
            Level::new(g_pro, values(&self.model.products), gl.sd_product),
            Level::new(
                g_art,
                self.model
                    .article_sizes
                    .iter()
                    .map(|x| x.offset.value)
                    .collect(),
                gl.sd_article_size,
            ),
        ];
        // one round: with `EB_ROUNDS` RentTheRunway took 31 iterations instead of 26
        solve_levels_eb(g, h, &mut levels, sweeps, &[0.3, 0.5, 0.3, 0.3, 0.2], 1);
        let [lab, bra, cat, pro, art] = levels;
        let gl = &mut self.model.globals;
        gl.sd_label = lab.sd;
        gl.sd_brand = bra.sd;
        gl.sd_category = cat.sd;
        gl.sd_product = pro.sd;
        gl.sd_article_size = art.sd;
        for (l, v) in self.model.labels.iter_mut().zip(lab.val) {
            l.offset.value = v;
        }
        set_values(&mut self.model.brands, &bra.val);
        set_values(&mut self.model.categories, &cat.val);
        set_values(&mut self.model.products, &pro.val);
        for (x, v) in self.model.article_sizes.iter_mut().zip(art.val) {
            x.offset.value = v;
        }
    }

    /// Same for the fit-band log-widths (brand, category, product).
    pub(super) fn update_bands(&mut self, g: &[f64], h: &[f64], sweeps: usize) {
        let gl = &self.model.globals;
        let etas = |gs: &[GroupParams]| gs.iter().map(|x| x.eta).collect::<Vec<_>>();
        let [_, g_bra, g_cat, g_pro, _] = &self.as_group;
        let mut levels = [
            Level::new(g_bra, etas(&self.model.brands), gl.sd_eta_brand),
            Level::new(g_cat, etas(&self.model.categories), gl.sd_eta_category),
            Level::new(g_pro, etas(&self.model.products), gl.sd_eta_product),
        ];
        // the spreads' empirical-Bayes fixed point within the update (see
        // `EB_ROUNDS`): one step per pass left the products' band spread shrinking
        // geometrically for seven passes after band widths started
        solve_levels_eb(g, h, &mut levels, sweeps, &[0.3, 0.3, 0.3], EB_ROUNDS);
        let [bra, cat, pro] = levels;
        let gl = &mut self.model.globals;
        gl.sd_eta_brand = bra.sd;
        gl.sd_eta_category = cat.sd;
        gl.sd_eta_product = pro.sd;
        for (gs, lv) in [
            (&mut self.model.brands, bra),
            (&mut self.model.categories, cat),
            (&mut self.model.products, pro),
        ] {
            for (x, v) in gs.iter_mut().zip(lv.val) {
                x.eta = v.clamp(-3.0, 3.0);
            }
        }
    }

    /// Choice model `s − pos = align_sys + k·r1 + k_product·r2`: least squares with
    /// shared slopes and per-system intercepts (the busiest system's alignment stays
    /// fixed); its residual variance, less the drift, is the choice noise. The drift sd
    /// moves to the candidate with the lowest leave-one-out log loss.
    pub(super) fn update_choice(&mut self, acc: &Acc) {
        // normal equations for (k, k_product) on within-system centred sums
        let (mut a11, mut a12, mut a22, mut b1, mut b2) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (si, sy) in acc.sys.iter().enumerate() {
            let n = sy[0];
            if n < 1.0 {
                continue;
            }
            if si == self.ref_system {
                let al = self.model.align(SizeSystem::ALL[si]);
                a11 += sy[4];
                a12 += sy[5];
                a22 += sy[6];
                b1 += sy[7] - al * sy[2];
                b2 += sy[8] - al * sy[3];
            } else {
                a11 += sy[4] - sy[2] * sy[2] / n;
                a12 += sy[5] - sy[2] * sy[3] / n;
                a22 += sy[6] - sy[3] * sy[3] / n;
                b1 += sy[7] - sy[1] * sy[2] / n;
                b2 += sy[8] - sy[1] * sy[3] / n;
            }
        }
        let ridge = 1e-6 * (a11 + a22).max(1e-9);
        let mut m = [a11 + ridge, a12, a12, a22 + ridge];
        let (k1, k2) = match crate::model::features::cholesky_solve(&mut m, &[b1, b2], 2) {
            Some(k) => (k[0].clamp(0.0, 1.0), k[1].clamp(0.0, 1.0)),
            None => (0.0, 0.0),
        };
        // the slopes and the offsets they read answer each other: at the optimum the
        // least-squares slopes alternated around it (period two: k 0.591 / 0.596 for 25
        // iterations on RentTheRunway, holding the offsets' change at 0.006); a step that
        // reverses the last one is halved, as the drift's
        let g = &self.model.globals;
        let steps = [
            super::damp_reversal(k1 - g.k, self.last_k_step[0]),
            super::damp_reversal(k2 - g.k_product, self.last_k_step[1]),
        ];
        self.last_k_step = steps;
        let (k1, k2) = (g.k + steps[0], g.k_product + steps[1]);
        let mut sse = 0.0;
        let mut n_all = 0.0;
        for sp in &mut self.model.systems {
            let si = sp.system.index();
            let sy = &acc.sys[si];
            let n = sy[0];
            if n < 1.0 {
                continue;
            }
            if si != self.ref_system {
                sp.align = (sy[1] - k1 * sy[2] - k2 * sy[3]) / n;
            }
            let al = sp.align;
            sse += sy[9] + n * al * al + k1 * k1 * sy[4] + k2 * k2 * sy[6]
                - 2.0 * al * sy[1]
                - 2.0 * k1 * sy[7]
                - 2.0 * k2 * sy[8]
                + 2.0 * al * k1 * sy[2]
                + 2.0 * al * k2 * sy[3]
                + 2.0 * k1 * k2 * sy[5];
            n_all += n;
        }
        let step = super::damp_reversal(drift_step(&acc.drift_nll), self.last_drift_step);
        self.last_drift_step = step;
        let rho = drift_share(&self.model.globals, step);
        let g = &mut self.model.globals;
        g.k = k1;
        g.k_product = k2;
        if n_all > 0.0 {
            let total = ((sse.max(0.0) + acc.sum_var) / n_all).clamp(0.05 * 0.05, 25.0);
            g.sd_drift = (rho * total).sqrt();
            g.sd_choice = ((1.0 - rho) * total).sqrt();
        }
    }

    /// Feature ridge and the customer prior variances.
    pub(super) fn update_prior(&mut self, acc: &Acc, lambda: f64, plan: &Plan) {
        let stats = RidgeStats {
            dim: acc.xty.len(),
            xtx: plan.gram.clone(),
            xty: acc.xty.clone(),
        };
        if let Some(coef) = stats.solve(lambda) {
            self.model.features.coef = coef;
        }
        let g = &mut self.model.globals;
        if acc.tau[0] > 0.0 {
            g.sd_customer_features = (acc.tau[1] / acc.tau[0]).sqrt().clamp(0.05, 10.0);
        }
        if acc.tau[2] > 0.0 {
            g.sd_customer_population = (acc.tau[3] / acc.tau[2]).sqrt().clamp(0.05, 10.0);
        }
        if acc.bias[0] > 0.0 {
            // empirical Bayes, with an inverse-gamma prior worth EB_A0 customers at 0.3
            // sizes: the evidence fixed point (MacKay's update, as `Level::eb_sd`), over
            // the customers the data determine; EM's fixed point, reached in a few
            // iterations instead of EM's creep
            let guess = 0.3f64;
            let prec = 1.0 / (g.sd_customer_bias * g.sd_customer_bias).max(1e-24);
            let determined = (acc.bias[0] - acc.bias[2] * prec).clamp(0.0, acc.bias[0]);
            g.sd_customer_bias = ((acc.bias[1] + 2.0 * EB_A0 * guess * guess)
                / (determined + 2.0 * EB_A0))
                .sqrt()
                .clamp(0.01, 5.0);
        }
        self.refresh_prior_means(&plan.chunks);
    }
}

/// The Newton step on (w, c, h) with the slope's step fixed at `dw` (its bound): (c, h)
/// solve their block of the information `i` (upper triangle of the 3x3, row-major:
/// ww, wc, wh, cc, ch, hh) given it, each clamped to ±1 as the free step.
fn bounded_slope_step(i: &[f64; 6], g: &[f64; 3], dw: f64) -> [f64; 3] {
    let ridge = 1e-6 * (i[3] + i[5]).max(1e-9);
    let mut a = [i[3] + ridge, i[4], i[4], i[5] + ridge];
    let b = [-g[1] - i[1] * dw, -g[2] - i[2] * dw];
    match crate::model::features::cholesky_solve(&mut a, &b, 2) {
        Some(ch) => [dw, ch[0].clamp(-1.0, 1.0), ch[1].clamp(-1.0, 1.0)],
        None => [dw, 0.0, 0.0],
    }
}

#[cfg(test)]
mod tests {
    use super::bounded_slope_step;

    #[test]
    fn bounded_slope_step_solves_the_rest_given_the_slope() {
        // information diag(4, 2, 1) plus a w-c coupling of 1; gradient (-8, -2, 3)
        let i = [4.0, 1.0, 0.0, 2.0, 0.0, 1.0];
        let g = [-8.0, -2.0, 3.0];
        // w fixed at +0.5: c solves 2·dc = 2 − 1·0.5 → 0.75; h: 1·dh = −3 → −1 (clamped)
        let s = bounded_slope_step(&i, &g, 0.5);
        assert_eq!(s[0], 0.5);
        assert!((s[1] - 0.75).abs() < 1e-5, "{s:?}");
        assert_eq!(s[2], -1.0);
        // no coupling left to the slope: the same as the free 2x2 step
        let s = bounded_slope_step(&[4.0, 0.0, 0.0, 2.0, 0.0, 4.0], &[0.0, -1.0, 2.0], 0.0);
        assert!(
            (s[1] - 0.5).abs() < 1e-5 && (s[2] + 0.5).abs() < 1e-5,
            "{s:?}"
        );
    }
}
