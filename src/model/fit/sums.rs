//! The sums a pass adds up and the per-article-size rows it reads: [`ArtRow`] (what an
//! event reads), [`ArtSums`] (what it adds per article-size) and [`Acc`] (a shard's sums).

use super::{DRIFT_STEPS, N_SYS};

/// What the passes read per article-size, in one row (72 bytes, the two cache lines the
/// passes prefetch together) instead of seven scattered reads (at 100M events there
/// are ~10^6 article-sizes, far beyond cache).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct ArtRow {
    /// True size.
    pub(super) t: f64,
    /// Half fit-band width `h·e^η`.
    pub(super) half: f64,
    /// `e^half` and `e^−half` (one `exp` per outcome evaluation instead of two).
    pub(super) exp_half: f64,
    pub(super) exp_neg_half: f64,
    /// Choice centre.
    pub(super) xc: f64,
    /// Brand + category reputation.
    pub(super) r1: f64,
    /// Product reputation.
    pub(super) r2: f64,
    /// Label position on the common scale (the choice model's `pos`).
    pub(super) pos: f64,
    /// Size system index (the choice model's per-system sums).
    pub(super) sys: u8,
}

/// Pass-2 sums of one article-size, in one row (one cache miss per event): gradient
/// and information of its true size (`gt`, `ht`) and band (`ge`, `he`), and the cross
/// information of (t, η) with the globals (w, c, h).
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct ArtSums {
    pub(super) gt: f64,
    pub(super) ht: f64,
    pub(super) ge: f64,
    pub(super) he: f64,
    pub(super) cross: [f64; 6],
}

impl ArtSums {
    pub(super) fn add(&mut self, o: &ArtSums) {
        self.gt += o.gt;
        self.ht += o.ht;
        self.ge += o.ge;
        self.he += o.he;
        for (x, y) in self.cross.iter_mut().zip(&o.cross) {
            *x += y;
        }
    }
}

/// Sums of a pass for one shard of customers (`A`: dense per article-size; one
/// customer's sums in a plan-based pass are sparse, see `kernel::ArtSink`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct Acc<A = Vec<ArtSums>> {
    /// Per article-size sums.
    pub(super) art: A,
    pub(super) gglob: [f64; 3],
    pub(super) iglob: [f64; 6],
    pub(super) loo_nll: f64,
    pub(super) objective: f64,
    pub(super) n: f64,
    /// Per system: n, Σe, Σr1, Σr2, Σr1r1, Σr1r2, Σr2r2, Σe·r1, Σe·r2, Σee
    /// (e = s − pos, r1 = brand + category reputation, r2 = product reputation).
    pub(super) sys: [[f64; 10]; N_SYS],
    /// Leave-one-out log loss under each candidate drift sd.
    pub(super) drift_nll: [f64; DRIFT_STEPS.len()],
    pub(super) sum_var: f64,
    /// `Xᵀy` of the feature ridge (`y` = customer sizes; `XᵀX` is the plan's).
    pub(super) xty: Vec<f64>,
    /// (n, Σ resid² + var) for customers with / without features.
    pub(super) tau: [f64; 4],
    /// (n, Σ bias², Σ bias posterior variance) over customers with events.
    pub(super) bias: [f64; 3],
}

impl Acc {
    pub(super) fn new(n_as: usize, dim: usize) -> Acc {
        Acc::zeroed(vec![ArtSums::default(); n_as], dim)
    }

    /// These sums zeroed in place for `n_as` article-sizes and a feature ridge of `dim`:
    /// [`Acc::new`] without a new allocation when the sizes match.
    pub(super) fn reset(&mut self, n_as: usize, dim: usize) {
        let mut art = std::mem::take(&mut self.art);
        art.clear();
        art.resize(n_as, ArtSums::default());
        *self = Acc::zeroed(art, dim);
    }

    pub(super) fn merge(&mut self, o: &Acc) {
        for (x, y) in self.art.iter_mut().zip(&o.art) {
            x.add(y);
        }
        self.add_scalars(o);
    }
}

impl<A> Acc<A> {
    /// Zero sums around the per-article-size sums `art`, with a feature ridge of `dim`.
    pub(super) fn zeroed(art: A, dim: usize) -> Self {
        Acc {
            art,
            gglob: [0.0; 3],
            iglob: [0.0; 6],
            loo_nll: 0.0,
            objective: 0.0,
            n: 0.0,
            sys: [[0.0; 10]; N_SYS],
            drift_nll: [0.0; DRIFT_STEPS.len()],
            sum_var: 0.0,
            xty: vec![0.0; dim],
            tau: [0.0; 4],
            bias: [0.0; 3],
        }
    }

    /// Add `o`'s sums other than the per-article-size ones (`xty` only where both have
    /// it: a plan's per-customer sums carry none).
    pub(super) fn add_scalars<B>(&mut self, o: &Acc<B>) {
        let add = |a: &mut [f64], b: &[f64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut self.gglob, &o.gglob);
        add(&mut self.iglob, &o.iglob);
        self.loo_nll += o.loo_nll;
        self.objective += o.objective;
        self.n += o.n;
        for (x, y) in self.sys.iter_mut().zip(&o.sys) {
            add(x, y);
        }
        add(&mut self.drift_nll, &o.drift_nll);
        self.sum_var += o.sum_var;
        add(&mut self.xty, &o.xty);
        add(&mut self.tau, &o.tau);
        add(&mut self.bias, &o.bias);
    }
}
