//! The per-customer kernel of a pass: one customer's Newton steps and their events'
//! leave-one-out sums, on borrowed parameters, so that the local pass (over slices of
//! `FitData`) and a plan-based pass (over one customer's rows) run the same code.

use super::*;
use crate::model::fitted::Globals;

/// What the kernel reads of the current parameters: globals, the article-size rows,
/// their positions and systems, and the pass's settings.
#[derive(Clone, Copy)]
pub(super) struct Kernel<'k> {
    pub(super) g: &'k Globals,
    pub(super) arts: &'k [ArtRow],
    pub(super) as_pos: &'k [f64],
    pub(super) as_sys: &'k [u8],
    /// Newton steps per customer.
    pub(super) steps: usize,
    /// Score the drift candidates on customers `c` with `c % drift_stride == 0`.
    pub(super) drift_stride: usize,
}

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
    /// with log-likelihoods, leaving each event's outcome gradient and information (on
    /// `s + u`) in `terms` for the leave-one-out sums.
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
