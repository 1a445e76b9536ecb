//! The per-customer kernel of a pass: one customer's Newton steps and their events'
//! leave-one-out sums, on borrowed parameters, so that the local pass (over slices of
//! `FitData`) and a plan-based pass (over one customer's rows) run the same code.

use super::*;
use crate::model::fitted::Globals;

/// What the kernel reads of the current parameters: globals, the article-size rows
/// (positions and systems included) and the pass's settings.
#[derive(Clone, Copy)]
pub(super) struct Kernel<'k> {
    pub(super) g: &'k Globals,
    pub(super) arts: &'k [ArtRow],
    /// Newton steps per customer.
    pub(super) steps: usize,
    /// Score the drift candidates on customers `c` with `c % drift_stride == 0`.
    pub(super) drift_stride: usize,
}

/// A customer's last Newton step is cut back when the slope along it at its end is
/// uphill by more than this share of its downhill slope at its start (an exact step on
/// a quadratic ends at slope 0).
const OVERSHOOT: f64 = 0.5;

/// One customer as the kernel sees them: index, prior, warm start and events.
pub(super) struct Cust<'e> {
    pub(super) c: usize,
    pub(super) prior: CustomerState,
    pub(super) has_feat: bool,
    /// Where the Newton steps start (last pass's size and fit bias).
    pub(super) start: (f64, f64),
    pub(super) ev_as: &'e [u32],
    pub(super) ev_y: &'e [u8],
}

/// Where a customer's per-article-size sums go: the dense table of a shard (local
/// pass) or one row per event (one customer's sums in a plan, merged later).
pub(super) trait ArtSink {
    /// The sums of article-size `j` to add this event's terms to.
    fn row(&mut self, j: usize) -> &mut ArtSums;
}

impl ArtSink for Vec<ArtSums> {
    #[inline]
    fn row(&mut self, j: usize) -> &mut ArtSums {
        &mut self[j]
    }
}

/// One customer's article-size sums, one row per event (index, sums).
pub(super) type SparseArt = Vec<(u32, ArtSums)>;

impl ArtSink for SparseArt {
    #[inline]
    fn row(&mut self, j: usize) -> &mut ArtSums {
        let k = self.len();
        self.push((j as u32, ArtSums::default()));
        &mut self[k].1
    }
}

/// The prior of a customer with prior mean `m` (from features when `has_feat`).
pub(super) fn prior(g: &Globals, m: f32, has_feat: bool) -> CustomerState {
    let sd = if has_feat {
        g.sd_customer_features
    } else {
        g.sd_customer_population
    };
    CustomerState::prior(
        f64::from(m),
        sd * sd,
        g.sd_customer_bias * g.sd_customer_bias,
    )
}

impl Solved {
    /// The customer's slot values as the fit stores them (bias and covariance in f32).
    pub(super) fn slot(&self) -> super::engine::CustomerState {
        let st = &self.st;
        (
            st.s,
            st.u as f32,
            [st.ss as f32, st.su as f32, st.uu as f32],
        )
    }
}

impl Kernel<'_> {
    /// [`solve_customer`] for training customer `cu`, reading the per-article-size
    /// arrays directly: every event is a choice and an outcome, and the band half-width
    /// is precomputed, so a step costs two logistic evaluations per event. Takes up to
    /// `steps` Newton steps from `cu.start`, then evaluates the final point once more
    /// with log-likelihoods (and its gradient: a last step that overshot is cut back,
    /// see [`OVERSHOOT`], and its end evaluated again), leaving each event's outcome
    /// gradient and information (on `s + u`) in `terms` for the leave-one-out sums.
    ///
    /// [`solve_customer`]: crate::model::predict::solve_customer
    pub(super) fn solve(&self, cu: &Cust<'_>, terms: &mut Vec<(f64, f64)>) -> Solved {
        let g = self.g;
        let prior = cu.prior;
        let ps = 1.0 / prior.ss.max(1e-9);
        let pu = 1.0 / prior.uu.max(1e-9);
        let choice_prec = 1.0 / (g.sd_choice * g.sd_choice + g.sd_drift * g.sd_drift).max(1e-9);
        let n = cu.ev_as.len() as f64;
        let (ev_as, ev_y) = (cu.ev_as, cu.ev_y);
        let (mut s, mut u) = cu.start;
        // the last step: where it started, its gradient there and the step taken
        let mut last: Option<[(f64, f64); 3]> = None;
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
            let from = (s, u);
            s -= ds;
            // the bias is stored in f32: evaluate where the next iteration will start
            u = f64::from((u - du) as f32);
            last = Some([from, (gs, gu), (s - from.0, u - from.1)]);
            step += 1;
            if ds.abs() < 1e-9 && du.abs() < 1e-9 {
                break;
            }
        }
        // the final point: information, per-event terms and the penalised objective
        let (mut obj, mut ho_sum, grad) = self.evaluate(cu, (s, u), choice_prec, terms);
        // a Newton step that overshot the minimum along its line (the slope there uphill
        // by more than half the start's downhill slope) is cut back to the secant's zero
        // of that slope: with a steep outcome slope, customers far from their optimum
        // (a warm start on other events) otherwise overshot pass after pass and, with
        // the offsets answering each overshoot, the whole fit alternated between two
        // states (RentTheRunway: 40 iterations, not converged)
        if let Some([from, g0, d]) = last {
            let slope0 = g0.0 * d.0 + g0.1 * d.1;
            let slope1 = grad.0 * d.0 + grad.1 * d.1;
            if slope0 < 0.0 && slope1 > -OVERSHOOT * slope0 {
                let t = slope0 / (slope0 - slope1);
                s = from.0 + t * d.0;
                u = f64::from((from.1 + t * d.1) as f32);
                (obj, ho_sum, _) = self.evaluate(cu, (s, u), choice_prec, terms);
            }
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

    /// Customer `cu` at `(s, u)`: the penalised objective, the summed outcome
    /// information and the gradient on `(s, u)`, with each event's outcome gradient and
    /// information (on `s + u`) in `terms`.
    fn evaluate(
        &self,
        cu: &Cust<'_>,
        (s, u): (f64, f64),
        choice_prec: f64,
        terms: &mut Vec<(f64, f64)>,
    ) -> (f64, f64, (f64, f64)) {
        let g = self.g;
        let prior = cu.prior;
        terms.clear();
        let mut obj = 0.5 * (s - prior.s).powi(2) / prior.ss + 0.5 * u * u / prior.uu;
        let mut gs = (s - prior.s) / prior.ss.max(1e-9);
        let mut gu = (u - prior.u) / prior.uu.max(1e-9);
        let mut ho_sum = 0.0;
        for (&j, &y) in cu.ev_as.iter().zip(cu.ev_y) {
            let r = &self.arts[j as usize];
            let base = g.c - g.w * (s + u - r.t);
            let f = sigmoid_pair(base, r.exp_half, r.exp_neg_half);
            let d = event_deriv_at(f, y as usize);
            let (go, ho) = (d.grad(-g.w, -g.w), d.info(-g.w, -g.w));
            ho_sum += ho;
            obj += d.nll + 0.5 * (s - r.xc).powi(2) * choice_prec;
            gs += go + (s - r.xc) * choice_prec;
            gu += go;
            terms.push((go, ho));
        }
        (obj, ho_sum, (gs, gu))
    }

    /// Leave-one-out derivatives of customer `cu`'s events at their solved state, added
    /// by article-size and globally, and the customer's prior-variance sums (the
    /// feature ridge's `Xᵀy` is the caller's: it reads the customer's features).
    /// `terms` are [`Kernel::solve`]'s.
    pub(super) fn add_sums<A: ArtSink>(
        &self,
        cu: &Cust<'_>,
        solved: &Solved,
        acc: &mut Acc<A>,
        terms: &[(f64, f64)],
    ) {
        let g = self.g;
        let c = cu.c;
        let prior = cu.prior;
        let (s, u) = (solved.st.s, solved.st.u);
        let (hss, hsu, huu) = solved.info;
        let (vss, vuu) = (solved.st.ss, solved.st.uu);
        // a past choice measures the size at that purchase (choice noise + drift)
        let hist_prec = solved.choice_prec;
        let total_var = 1.0 / hist_prec;
        let own_var = g.sd_choice * g.sd_choice;
        let drift_var = g.sd_drift * g.sd_drift;
        let score_drift = c.is_multiple_of(self.drift_stride.max(1));
        let rhos = DRIFT_STEPS.map(|step| drift_share(g, step));
        acc.objective += solved.obj;
        for (k, (&j, &y)) in cu.ev_as.iter().zip(cu.ev_y).enumerate() {
            let (j, y) = (j as usize, y as usize);
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
            let sums = acc.art.row(j);
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
            let ev = s - r.pos;
            let sy = &mut acc.sys[usize::from(r.sys)];
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
        // prior variance sums
        let resid = (s - prior.s).powi(2) + vss;
        acc.bias[0] += 1.0;
        acc.bias[1] += u * u;
        acc.bias[2] += vuu;
        let slot = if cu.has_feat { 0 } else { 2 };
        acc.tau[slot] += 1.0;
        acc.tau[slot + 1] += resid;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: f64, half: f64, xc: f64) -> ArtRow {
        ArtRow {
            t,
            half,
            exp_half: half.exp(),
            exp_neg_half: (-half).exp(),
            xc,
            r1: 0.0,
            r2: 0.0,
            pos: 0.0,
            sys: 0,
        }
    }

    /// A kernel taking one Newton step per customer, as the fit's passes do.
    fn one_step<'k>(g: &'k Globals, arts: &'k [ArtRow]) -> Kernel<'k> {
        Kernel {
            g,
            arts,
            steps: 1,
            drift_stride: 1,
        }
    }

    /// RentTheRunway's globals at the slope's bound (8 per size step).
    fn steep() -> Globals {
        Globals {
            w: 8.0,
            c: -0.2,
            h: 2.65,
            sd_choice: 0.06,
            sd_drift: 0.43,
            ..Globals::default()
        }
    }

    #[test]
    fn a_customer_without_events_lands_on_the_prior_mean() {
        let g = steep();
        let k = one_step(&g, &[]);
        let cu = Cust {
            c: 0,
            prior: CustomerState::prior(0.7, 0.25, 0.0016),
            has_feat: false,
            start: (-1.3, 0.02),
            ev_as: &[],
            ev_y: &[],
        };
        let solved = k.solve(&cu, &mut Vec::new());
        // a quadratic objective: Newton's step is exact, nothing to cut back
        assert!((solved.st.s - 0.7).abs() < 1e-12, "{}", solved.st.s);
        assert!(solved.st.u.abs() < 1e-9, "{}", solved.st.u);
        assert!(solved.obj.abs() < 1e-12);
        // the posterior is the prior
        assert!((solved.st.ss - 0.25).abs() < 1e-12);
        assert!((solved.st.uu - 0.0016).abs() < 1e-12);
    }

    #[test]
    fn an_overshooting_step_is_cut_back_to_a_lower_objective() {
        let g = steep();
        // one "large" outcome on an article of true size 0 chosen at 0; the customer
        // starts at -1 (a start fitted on other events), the prior at 0
        let arts = [row(0.0, 2.65, 0.0)];
        let k = one_step(&g, &arts);
        let cu = Cust {
            c: 0,
            prior: CustomerState::prior(0.0, 1.0, 0.0016),
            has_feat: false,
            start: (-1.0, 0.0),
            ev_as: &[0],
            ev_y: &[2],
        };
        let mut terms = Vec::new();
        let choice_prec = 1.0 / (0.06f64 * 0.06 + 0.43 * 0.43);
        // the plain Newton step from the start, by hand from the start's derivatives
        let (obj0, ho, (gs, gu)) = k.evaluate(&cu, cu.start, choice_prec, &mut terms);
        let info = (1.0 + choice_prec + ho, ho, 1.0 / 0.0016 + ho);
        let (ds, du) = newton_step((gs, gu), info);
        let newton = (cu.start.0 - ds, cu.start.1 - du);
        let (obj_newton, _, gn) = k.evaluate(&cu, newton, choice_prec, &mut terms);
        // it overshoots: uphill along the step at its end, by more than half the
        // start's downhill slope
        let slope = |g: (f64, f64)| -(g.0 * ds + g.1 * du);
        assert!(slope((gs, gu)) < 0.0 && slope(gn) > -0.5 * slope((gs, gu)));
        let solved = k.solve(&cu, &mut terms);
        // cut back between the start and Newton's point, below both objectives
        let t = (solved.st.s - cu.start.0) / (newton.0 - cu.start.0);
        assert!(t > 0.0 && t < 1.0, "t = {t}");
        assert!(solved.obj < obj_newton && solved.obj < obj0);
        println!(
            "start {:.4} (objective {obj0:.4}), Newton {:.4} ({obj_newton:.4}), cut {:.4} ({:.4})",
            cu.start.0, newton.0, solved.st.s, solved.obj
        );
        // passes from there settle (the fit's outer loop, parameters fixed)
        let mut cu = cu;
        cu.start = (solved.st.s, solved.st.u);
        for _ in 0..8 {
            let next = k.solve(&cu, &mut terms);
            cu.start = (next.st.s, next.st.u);
        }
        let again = k.solve(&cu, &mut terms);
        assert!(
            (again.st.s - cu.start.0).abs() < 1e-9,
            "{} vs {}",
            again.st.s,
            cu.start.0
        );
    }
}
