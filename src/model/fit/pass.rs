//! One iteration's pass: each customer's Newton steps and their events' leave-one-out sums per article-size.

use super::*;

/// The passes prefetch the article-size rows of the customer this many ahead.
const PREFETCH_CUSTOMERS: usize = 3;

/// Hint the CPU to load the cache lines of `x` (a row of at most two lines); a no-op
/// off x86_64.
#[inline(always)]
fn prefetch<T>(x: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = (x as *const T).cast::<i8>();
        // SAFETY: a prefetch is only a hint: it never faults or changes memory, and both
        // addresses lie within `x`.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(std::mem::size_of::<T>() - 1));
        }
    }
}

impl<'a> State<'a> {
    /// Event-weighted RMS change of article true sizes and relative band widths since
    /// `before` (the larger of the two).
    pub(super) fn change_since(&self, before: &[ArtRow]) -> f64 {
        let (mut n, mut dt, mut dh) = (0.0, 0.0, 0.0);
        for ((new, old), &cnt) in self.arts.iter().zip(before).zip(&self.data.as_count) {
            let w = cnt as f64;
            n += w;
            dt += w * (new.t - old.t).powi(2);
            dh += w * ((new.half - old.half) / old.half.max(1e-12)).powi(2);
        }
        if n <= 0.0 {
            return 0.0;
        }
        (dt / n).sqrt().max((dh / n).sqrt())
    }

    /// Recompute the per-article-size arrays the passes read from the model.
    pub(super) fn refresh_articles(&mut self) {
        let model = &self.model;
        let h = model.globals.h;
        self.as_ref
            .par_iter()
            .zip(self.as_group[4].par_iter())
            .zip(self.arts.par_iter_mut())
            .for_each(|((a, &art), row)| {
                let half = h * model.band(a).exp();
                *row = ArtRow {
                    t: model.true_size_with(a, (art != NONE).then_some(art)),
                    half,
                    exp_half: half.exp(),
                    exp_neg_half: (-half).exp(),
                    xc: model.choice_centre(a),
                    r1: model.brand_offset(a.brand)
                        + crate::model::fitted::group_value(&model.categories, a.category),
                    r2: crate::model::fitted::group_value(&model.products, a.product),
                };
            });
    }

    pub(super) fn prior_of(&self, c: usize) -> CustomerState {
        let g = &self.model.globals;
        let sd = if self.has_feat[c] {
            g.sd_customer_features
        } else {
            g.sd_customer_population
        };
        CustomerState::prior(
            f64::from(self.m[c]),
            sd * sd,
            g.sd_customer_bias * g.sd_customer_bias,
        )
    }

    /// [`solve_customer`] for training customer `c` (events `lo..hi`), reading the
    /// per-article-size arrays directly: every event is a choice and an outcome, and the
    /// band half-width is precomputed, so a step costs two logistic evaluations per event.
    /// Takes up to `steps` Newton steps from `start`, then evaluates the final point once
    /// more with log-likelihoods, leaving each event's outcome gradient and information
    /// (on `s + u`) in `terms` for the leave-one-out sums.
    pub(super) fn solve(
        &self,
        c: usize,
        events: (usize, usize),
        start: (f64, f64),
        terms: &mut Vec<(f64, f64)>,
    ) -> Solved {
        let (lo, hi) = events;
        let g = &self.model.globals;
        let prior = self.prior_of(c);
        let ps = 1.0 / prior.ss.max(1e-9);
        let pu = 1.0 / prior.uu.max(1e-9);
        let choice_prec = 1.0 / (g.sd_choice * g.sd_choice + g.sd_drift * g.sd_drift).max(1e-9);
        let n = (hi - lo) as f64;
        let ev_as = &self.data.ev_as[lo..hi];
        let ev_y = &self.data.ev_y[lo..hi];
        let (mut s, mut u) = start;
        let mut step = 0;
        while step < self.steps {
            let mut gs = (s - prior.s) * ps;
            let mut gu = (u - prior.u) * pu;
            let mut ho_sum = 0.0;
            for (&j, &y) in ev_as.iter().zip(ev_y) {
                let r = &self.arts[j as usize];
                gs += (s - r.xc) * choice_prec;
                let base = g.c - g.w * (s + u - r.t);
                let f = sigmoid_pair(base, r.exp_half, r.exp_neg_half);
                let d = event_score_at(f, y as usize);
                let go = d.grad(-g.w, -g.w);
                gs += go;
                gu += go;
                ho_sum += d.info(-g.w, -g.w);
            }
            let info = (ps + n * choice_prec + ho_sum, ho_sum, pu + ho_sum);
            let (ds, du) = newton_step((gs, gu), info);
            s -= ds;
            // the bias is stored in f32: evaluate where the next iteration will start
            u = f64::from((u - du) as f32);
            step += 1;
            if ds.abs() < 1e-9 && du.abs() < 1e-9 {
                break;
            }
        }
        // the final point: information, per-event terms and the penalised objective
        terms.clear();
        let mut obj = 0.5 * (s - prior.s).powi(2) / prior.ss + 0.5 * u * u / prior.uu;
        let mut ho_sum = 0.0;
        for (&j, &y) in ev_as.iter().zip(ev_y) {
            let r = &self.arts[j as usize];
            let base = g.c - g.w * (s + u - r.t);
            let f = sigmoid_pair(base, r.exp_half, r.exp_neg_half);
            let d = event_deriv_at(f, y as usize);
            let (go, ho) = (d.grad(-g.w, -g.w), d.info(-g.w, -g.w));
            ho_sum += ho;
            obj += d.nll + 0.5 * (s - r.xc).powi(2) * choice_prec;
            terms.push((go, ho));
        }
        let info = (ps + n * choice_prec + ho_sum, ho_sum, pu + ho_sum);
        let (ss, su, uu) = inv2(info.0, info.1, info.2);
        Solved {
            st: CustomerState { s, u, ss, su, uu },
            info,
            obj,
            choice_prec,
        }
    }

    /// One iteration's pass over the customers of `plan`, grouped by customer: Newton
    /// steps on each customer's size and fit bias (each shard owns its customers'
    /// slots), then each event's leave-one-out derivatives aggregated by article-size
    /// and globally. One set of sums per shard, merged in shard order, so the result
    /// does not depend on the thread count. (Article parameters are fixed within a
    /// pass, so solving a customer and adding their sums at once is the same as two
    /// passes, with one read of each event instead of two.)
    pub(super) fn pass(&mut self, plan: &Plan) -> Acc {
        let mut s = std::mem::take(&mut self.s);
        let mut u = std::mem::take(&mut self.u);
        let mut cov = std::mem::take(&mut self.cov);
        let ranges: Vec<(usize, usize)> = plan
            .shards
            .iter()
            .map(|sh| {
                let lo = sh.first().map_or(0, |x| x.0);
                (lo, sh.last().map_or(lo, |x| x.1))
            })
            .collect();
        let total = {
            let this = &*self;
            let n_as = this.arts.len();
            let dim = this.model.features.dim();
            let mut total = Acc::new(n_as, dim);
            let mut slots = split_chunks(&mut s, &ranges)
                .into_iter()
                .zip(split_chunks(&mut u, &ranges))
                .zip(split_chunks(&mut cov, &ranges))
                .map(|((a, b), c)| (a, b, c));
            // shards in flight at once: each holds a full table of article-size sums
            let window = rayon::current_num_threads().max(1) * 2;
            for group in plan.shards.chunks(window) {
                let parts: Vec<CustomerSlots<'_>> = slots.by_ref().take(group.len()).collect();
                let accs: Vec<Acc> = parts
                    .into_par_iter()
                    .zip(group.par_iter())
                    .map(|(mut slots, shard)| {
                        let base = shard.first().map_or(0, |x| x.0);
                        let mut acc = Acc::new(n_as, dim);
                        let mut scratch = Scratch {
                            terms: Vec::new(),
                            drift_stride: plan.drift_stride,
                        };
                        for &(lo, hi) in shard {
                            for c in lo..hi {
                                this.prefetch_customer(c + PREFETCH_CUSTOMERS, &acc);
                                this.visit(c, (&mut slots, c - base), &mut acc, &mut scratch);
                            }
                        }
                        acc
                    })
                    .collect();
                for part in &accs {
                    total.merge(part);
                }
            }
            total
        };
        self.s = s;
        self.u = u;
        self.cov = cov;
        total
    }

    /// Ask for the article-size rows customer `c`'s events read and write, ahead of
    /// their use (each is a cache miss on big catalogues).
    #[inline]
    pub(super) fn prefetch_customer(&self, c: usize, acc: &Acc) {
        let d = self.data;
        let (Some(&lo), Some(&hi)) = (d.cust_start.get(c), d.cust_start.get(c + 1)) else {
            return;
        };
        for &j in d.ev_as.get(lo as usize..hi as usize).unwrap_or(&[]) {
            if let (Some(r), Some(a)) = (self.arts.get(j as usize), acc.art.get(j as usize)) {
                prefetch(r);
                prefetch(a);
            }
        }
    }

    /// Customer `c`: solve (into `slots` at `at`), then add their events' sums.
    pub(super) fn visit(
        &self,
        c: usize,
        slots: (&mut CustomerSlots<'_>, usize),
        acc: &mut Acc,
        scratch: &mut Scratch,
    ) {
        let ((sp, up, cp), k) = slots;
        let data = self.data;
        let (lo, hi) = (data.cust_start[c] as usize, data.cust_start[c + 1] as usize);
        if hi == lo {
            let st = self.prior_of(c);
            sp[k] = st.s;
            up[k] = st.u as f32;
            cp[k] = [st.ss as f32, st.su as f32, st.uu as f32];
            return;
        }
        let solved = self.solve(c, (lo, hi), (sp[k], f64::from(up[k])), &mut scratch.terms);
        let st = &solved.st;
        sp[k] = st.s;
        up[k] = st.u as f32;
        cp[k] = [st.ss as f32, st.su as f32, st.uu as f32];
        self.add_sums(c, &solved, acc, scratch);
    }

    /// Leave-one-out derivatives of customer `c`'s events at their solved state.
    pub(super) fn add_sums(&self, c: usize, solved: &Solved, acc: &mut Acc, scratch: &mut Scratch) {
        let Scratch {
            terms,
            drift_stride,
        } = scratch;
        let data = self.data;
        let (lo, hi) = (data.cust_start[c] as usize, data.cust_start[c + 1] as usize);
        let g = &self.model.globals;
        let prior = self.prior_of(c);
        let (s, u) = (solved.st.s, solved.st.u);
        let (hss, hsu, huu) = solved.info;
        let (vss, vuu) = (solved.st.ss, solved.st.uu);
        // a past choice measures the size at that purchase (choice noise + drift)
        let hist_prec = solved.choice_prec;
        let total_var = 1.0 / hist_prec;
        let own_var = g.sd_choice * g.sd_choice;
        let drift_var = g.sd_drift * g.sd_drift;
        let score_drift = c % *drift_stride == 0;
        let rhos = DRIFT_STEPS.map(|step| drift_share(g, step));
        acc.objective += solved.obj;
        for (k, e) in (lo..hi).enumerate() {
            let j = data.ev_as[e] as usize;
            let y = data.ev_y[e] as usize;
            let (go, ho) = terms[k];
            let r = self.arts[j];
            let xc = r.xc;
            // the customer from all *other* purchases (one Newton step from the optimum)
            let (css, csu, cuu) = inv2(hss - ho - hist_prec, hsu - ho, huu - ho);
            let gs = go + (s - xc) * hist_prec;
            let s_loo = s + css * gs + csu * go;
            let u_loo = u + csu * gs + cuu * go;
            let loo = CustomerState {
                s: s_loo,
                u: u_loo,
                ss: css,
                su: csu,
                uu: cuu,
            };
            // at this purchase: drift, then this purchase's own choice
            let now = crate::model::predict::purchase_belief(&loo, drift_var, Some((xc, own_var)));
            let (s_now, v_now) = (now.mean, now.var);
            let kappa = uncertainty_scale(g.w, v_now);
            let prec = 1.0 / v_now;
            let half = r.half;
            if score_drift {
                for (slot, &rho) in rhos.iter().enumerate() {
                    let alt = crate::model::predict::purchase_belief(
                        &loo,
                        rho * total_var,
                        Some((xc, (1.0 - rho) * total_var)),
                    );
                    let k = uncertainty_scale(g.w, alt.var);
                    let base = g.c - g.w * (alt.mean - r.t);
                    let p = probs(k * (base + half), k * (base - half));
                    acc.drift_nll[slot] -= p[y].max(crate::model::math::P_MIN).ln();
                }
            }
            let d_gap = s_now - r.t;
            let e_eta = half / g.h;
            let base = g.c - g.w * d_gap;
            let d = event_deriv(kappa * (base + half), kappa * (base - half), y);
            acc.loo_nll += d.nll;
            acc.n += 1.0;
            let dt = (kappa * g.w, kappa * g.w);
            let de = (kappa * g.h * e_eta, -kappa * g.h * e_eta);
            // the slope also widens or narrows the uncertainty scale: ∂κ/∂w = −κ³·π·w·v/8
            let dkappa = -kappa.powi(3) * std::f64::consts::PI * g.w / (8.0 * prec);
            let dw = (
                -kappa * d_gap + dkappa * (g.c + half - g.w * d_gap),
                -kappa * d_gap + dkappa * (g.c - half - g.w * d_gap),
            );
            let dc = (kappa, kappa);
            let dh = (kappa * e_eta, -kappa * e_eta);
            let sums = &mut acc.art[j];
            sums.gt += d.grad(dt.0, dt.1);
            sums.ht += d.info(dt.0, dt.1);
            sums.ge += d.grad(de.0, de.1);
            sums.he += d.info(de.0, de.1);
            let cr = &mut sums.cross;
            cr[0] += d.info_cross(dt, dw);
            cr[1] += d.info_cross(dt, dc);
            cr[2] += d.info_cross(dt, dh);
            cr[3] += d.info_cross(de, dw);
            cr[4] += d.info_cross(de, dc);
            cr[5] += d.info_cross(de, dh);
            acc.gglob[0] += d.grad(dw.0, dw.1);
            acc.gglob[1] += d.grad(dc.0, dc.1);
            acc.gglob[2] += d.grad(dh.0, dh.1);
            acc.iglob[0] += d.info(dw.0, dw.1);
            acc.iglob[1] += d.info_cross(dw, dc);
            acc.iglob[2] += d.info_cross(dw, dh);
            acc.iglob[3] += d.info(dc.0, dc.1);
            acc.iglob[4] += d.info_cross(dc, dh);
            acc.iglob[5] += d.info(dh.0, dh.1);
            // choice model: s − pos = align + k·reputation + k_product·product + noise
            let (r1, r2) = (r.r1, r.r2);
            let ev = s - self.as_pos[j];
            let sy = &mut acc.sys[self.as_sys[j] as usize];
            for (slot, v) in [
                1.0,
                ev,
                r1,
                r2,
                r1 * r1,
                r1 * r2,
                r2 * r2,
                ev * r1,
                ev * r2,
                ev * ev,
            ]
            .into_iter()
            .enumerate()
            {
                sy[slot] += v;
            }
            acc.sum_var += vss;
        }
        // feature model and prior variance sums
        let xty = &mut acc.xty;
        self.model
            .features
            .for_each_training(&self.meta.features, c, |j, x| {
                if let Some(v) = xty.get_mut(j) {
                    *v += x * s;
                }
            });
        let resid = (s - prior.s).powi(2) + vss;
        acc.bias[0] += 1.0;
        acc.bias[1] += u * u + vuu;
        let slot = if self.has_feat[c] { 0 } else { 2 };
        acc.tau[slot] += 1.0;
        acc.tau[slot + 1] += resid;
    }
}
