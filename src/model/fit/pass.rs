//! One iteration's pass: each customer's Newton steps and their events' leave-one-out sums per article-size.

use super::*;

/// The passes prefetch the article-size rows of the customer this many ahead.
const PREFETCH_CUSTOMERS: usize = 3;

use crate::model::math::prefetch;

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
                    // fixed for the fit, set at its start
                    pos: row.pos,
                    sys: row.sys,
                };
            });
    }

    pub(super) fn prior_of(&self, c: usize) -> CustomerState {
        kernel::prior(&self.model.globals, self.m[c], self.has_feat[c])
    }

    /// The per-customer kernel over the current parameters.
    pub(super) fn kernel(&self, drift_stride: usize) -> Kernel<'_> {
        Kernel {
            g: &self.model.globals,
            arts: &self.arts,
            steps: self.steps,
            drift_stride,
        }
    }

    /// Customer `c` (events `lo..hi`) as the kernel reads them.
    pub(super) fn cust(
        &self,
        c: usize,
        events: (usize, usize),
        start: (f64, f64),
    ) -> kernel::Cust<'_> {
        let (lo, hi) = events;
        kernel::Cust {
            c,
            prior: self.prior_of(c),
            has_feat: self.has_feat[c],
            start,
            ev_as: &self.data.ev_as[lo..hi],
            ev_y: &self.data.ev_y[lo..hi],
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
        let mut pool = std::mem::take(&mut self.shard_sums);
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
            // shards in flight at once, one per thread: each holds a full table of
            // article-size sums (150 MB at 1.9M article-sizes), allocated for the pass;
            // two per thread made a 100M-event fit's peak 300 MB higher for no time
            let window = rayon::current_num_threads().max(1);
            for group in plan.shards.chunks(window) {
                let parts: Vec<CustomerSlots<'_>> = slots.by_ref().take(group.len()).collect();
                // the sums of the shards in flight, reused (zeroed by their task)
                while pool.len() < group.len() {
                    pool.push(Acc::new(0, 0));
                }
                let reused: Vec<Acc> = pool.drain(..group.len()).collect();
                let accs: Vec<Acc> = parts
                    .into_par_iter()
                    .zip(group.par_iter())
                    .zip(reused)
                    .map(|((mut slots, shard), mut acc)| {
                        let base = shard.first().map_or(0, |x| x.0);
                        acc.reset(n_as, dim);
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
                pool.extend(accs);
            }
            total
        };
        self.shard_sums = pool;
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
        let kernel = self.kernel(scratch.drift_stride);
        let cu = self.cust(c, (lo, hi), (sp[k], f64::from(up[k])));
        let solved = kernel.solve(&cu, &mut scratch.terms);
        (sp[k], up[k], cp[k]) = solved.slot();
        kernel.add_sums(&cu, &solved, acc, &scratch.terms);
        self.add_xty(c, solved.st.s, &mut acc.xty);
    }

    /// The feature ridge's `Xᵀy` term of customer `c` with size `s`.
    pub(super) fn add_xty(&self, c: usize, s: f64, xty: &mut [f64]) {
        self.model
            .features
            .for_each_training(&self.meta.features, c, |j, x| {
                if let Some(v) = xty.get_mut(j) {
                    *v += x * s;
                }
            });
    }
}
