//! The pass-engine seam: an iteration's pass run elsewhere (a DataFusion plan, a Ballista
//! cluster) on the same per-customer kernel as the local pass, and the types that cross
//! it (the broadcast parameters, one customer's rows, mergeable sums).
//!
//! The driver keeps everything else: the quadratic solve and empirical-Bayes updates,
//! the feature ridge (`Xᵀy` from the returned customer sizes, since features live on the
//! driver), the plan (which customers a pass visits) and the customer states between
//! passes (sent as warm starts, returned solved).

use super::kernel::{Cust, SparseArt};
use super::*;
use crate::model::fitted::Globals;
use serde::{Deserialize, Serialize};

/// Runs an iteration's pass outside this process's local pass.
pub trait PassEngine: Send {
    /// The pass over `job`'s customers: for each, [`PassContext::customer`] on their
    /// events, summed with [`PassSums`] in any order.
    fn pass(&mut self, job: &PassJob<'_>) -> Result<PassSums, ModelError>;
}

/// What a pass engine gets: the broadcast parameters and the visited customers' starts.
pub struct PassJob<'a> {
    /// The parameters every customer's kernel reads (small: O(article-sizes)).
    pub context: &'a PassContext,
    /// The visited customers that have events, by index (O(customers)).
    pub customers: &'a [CustomerStart],
}

/// A visited customer's warm start and prior, as a pass engine ships it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CustomerStart {
    /// Customer index (the fit's, as in the prepared events).
    pub customer: u32,
    /// Size mean where the Newton steps start.
    pub s: f64,
    /// Fit bias where the Newton steps start.
    pub u: f32,
    /// Prior mean of the size.
    pub prior_mean: f32,
    /// Whether the prior comes from body features.
    pub has_features: bool,
}

/// One customer's events as a plan hands them to the kernel (in event order).
pub struct CustomerRows<'e> {
    /// The customer's warm start and prior.
    pub start: CustomerStart,
    /// Article-size index per event.
    pub ev_as: &'e [u32],
    /// Outcome class per event (0 small, 1 fit, 2 large).
    pub ev_y: &'e [u8],
}

/// The parameters a pass's kernel reads, owned and serialisable: globals, per
/// article-size rows (with their positions and systems) and the pass's settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PassContext {
    g: Globals,
    arts: Vec<ArtRow>,
    steps: usize,
    drift_stride: usize,
}

/// A customer's solved state as a pass returns it: size mean, fit bias and the
/// size/bias covariance (ss, su, uu), as the fit stores them.
pub(crate) type CustomerState = (f64, f32, [f32; 3]);

/// One customer's solved state and contribution to a pass's sums.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CustomerOut {
    customer: u32,
    slot: CustomerState,
    acc: Acc<SparseArt>,
}

/// A pass's sums (by article-size and global) and its solved customers' states:
/// mergeable in any order (sums; the states are disjoint).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PassSums {
    acc: Acc,
    states: Vec<(u32, CustomerState)>,
}

impl PassContext {
    fn kernel(&self) -> Kernel<'_> {
        Kernel {
            g: &self.g,
            arts: &self.arts,
            steps: self.steps,
            drift_stride: self.drift_stride,
        }
    }

    /// Number of article-sizes (the length of the summed tables).
    pub fn article_sizes(&self) -> usize {
        self.arts.len()
    }

    /// Solve one customer and compute their events' sums: the local pass's kernel.
    pub fn customer(&self, rows: &CustomerRows<'_>) -> CustomerOut {
        let st = &rows.start;
        let c = st.customer as usize;
        let cu = Cust {
            c,
            prior: kernel::prior(&self.g, st.prior_mean, st.has_features),
            has_feat: st.has_features,
            start: (st.s, f64::from(st.u)),
            ev_as: rows.ev_as,
            ev_y: rows.ev_y,
        };
        let kernel = self.kernel();
        let mut terms = Vec::with_capacity(rows.ev_as.len());
        let solved = kernel.solve(&cu, &mut terms);
        let mut acc = Acc::<SparseArt>::sparse();
        kernel.add_sums(&cu, &solved, &mut acc, &terms);
        CustomerOut {
            customer: st.customer,
            slot: solved.slot(),
            acc,
        }
    }

    /// Serialise (postcard) for the executors.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        postcard::to_stdvec(self)
            .map_err(|e| ModelError::Engine(format!("encode pass context: {e}")))
    }

    /// Read [`PassContext::to_bytes`]'s output.
    pub fn from_bytes(b: &[u8]) -> Result<PassContext, ModelError> {
        postcard::from_bytes(b).map_err(|e| ModelError::Engine(format!("decode pass context: {e}")))
    }
}

impl CustomerOut {
    /// Serialise (postcard) as one value of a plan's column.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        postcard::to_stdvec(self).map_err(|e| ModelError::Engine(format!("encode customer: {e}")))
    }

    /// Read [`CustomerOut::to_bytes`]'s output.
    pub fn from_bytes(b: &[u8]) -> Result<CustomerOut, ModelError> {
        postcard::from_bytes(b).map_err(|e| ModelError::Engine(format!("decode customer: {e}")))
    }
}

impl Acc<SparseArt> {
    fn sparse() -> Self {
        Acc::zeroed(Vec::new(), 0)
    }
}

impl PassSums {
    /// Empty sums over `n_as` article-sizes.
    pub fn new(n_as: usize) -> PassSums {
        PassSums {
            acc: Acc::new(n_as, 0),
            states: Vec::new(),
        }
    }

    /// Add one customer's result (their per-event terms summed by article-size).
    pub fn add(&mut self, o: &CustomerOut) -> Result<(), ModelError> {
        let n_as = self.acc.art.len();
        for (j, x) in &o.acc.art {
            let row = self.acc.art.get_mut(*j as usize).ok_or_else(|| {
                ModelError::Engine(format!("article-size {j} beyond the {n_as} of the pass"))
            })?;
            row.add(x);
        }
        self.acc.add_scalars(&o.acc);
        self.states.push((o.customer, o.slot));
        Ok(())
    }

    /// Add another part's sums and states.
    pub fn merge(&mut self, o: PassSums) -> Result<(), ModelError> {
        if o.acc.art.len() != self.acc.art.len() {
            return Err(ModelError::Engine(format!(
                "merging sums over {} and {} article-sizes",
                self.acc.art.len(),
                o.acc.art.len()
            )));
        }
        self.acc.merge(&o.acc);
        self.states.extend(o.states);
        Ok(())
    }

    /// Number of solved customers.
    pub fn customers(&self) -> usize {
        self.states.len()
    }

    /// Approximate heap size (for an engine's memory accounting).
    pub fn heap_bytes(&self) -> usize {
        self.acc.art.capacity() * std::mem::size_of::<ArtSums>()
            + self.states.capacity() * std::mem::size_of::<(u32, CustomerState)>()
    }

    /// Serialise (postcard) as one value of a plan's column.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        postcard::to_stdvec(self).map_err(|e| ModelError::Engine(format!("encode sums: {e}")))
    }

    /// Read [`PassSums::to_bytes`]'s output.
    pub fn from_bytes(b: &[u8]) -> Result<PassSums, ModelError> {
        postcard::from_bytes(b).map_err(|e| ModelError::Engine(format!("decode sums: {e}")))
    }
}

/// A fit whose passes run on a [`PassEngine`] (see [`FitParams::fit_on`]).
pub struct FitOn<'a> {
    /// Dictionaries, size labels and customer features.
    pub meta: &'a Events,
    /// The prepared events (the engine reads its own copy of them).
    pub data: &'a FitData,
    /// Warm start (see [`FitParams::fit_from`]).
    pub init: Option<&'a Fitted>,
    /// Where the passes run.
    pub engine: &'a mut dyn PassEngine,
}

impl FitParams {
    /// [`FitParams::fit_from`] with every pass run by `on.engine`; the driver's updates
    /// are the same, so the result equals the local fit's up to the order of sums.
    pub fn fit_on(
        &self,
        on: FitOn<'_>,
        on_iter: &mut (dyn FnMut(&IterationStats) + Send),
    ) -> Result<Fitted, ModelError> {
        let FitOn {
            meta,
            data,
            init,
            engine,
        } = on;
        let engine = Some(engine);
        self.fit_inputs(
            Inputs {
                meta,
                data,
                init,
                engine,
            },
            on_iter,
        )
    }
}

impl State<'_> {
    /// The pass over `plan` locally (`engine` None) or on `engine`.
    pub(super) fn pass_via(
        &mut self,
        engine: Option<&mut (dyn PassEngine + '_)>,
        plan: &Plan,
    ) -> Result<Acc, ModelError> {
        let Some(engine) = engine else {
            return Ok(self.pass(plan));
        };
        let context = PassContext {
            g: self.model.globals.clone(),
            arts: self.arts.clone(),
            steps: self.steps,
            drift_stride: plan.drift_stride,
        };
        let mut customers = Vec::new();
        for &(lo, hi) in &plan.chunks {
            for c in lo..hi {
                if self.data.cust_start[c + 1] > self.data.cust_start[c] {
                    customers.push(CustomerStart {
                        customer: c as u32,
                        s: self.s[c],
                        u: self.u[c],
                        prior_mean: self.m[c],
                        has_features: self.has_feat[c],
                    });
                } else {
                    // no events: the prior, as the local pass sets it
                    let st = self.prior_of(c);
                    self.s[c] = st.s;
                    self.u[c] = st.u as f32;
                    self.cov[c] = [st.ss as f32, st.su as f32, st.uu as f32];
                }
            }
        }
        let job = PassJob {
            context: &context,
            customers: &customers,
        };
        let PassSums {
            mut acc,
            mut states,
        } = engine.pass(&job)?;
        if states.len() != customers.len() || acc.art.len() != self.arts.len() {
            return Err(ModelError::Engine(format!(
                "the pass returned {} of {} customers and {} of {} article-sizes",
                states.len(),
                customers.len(),
                acc.art.len(),
                self.arts.len()
            )));
        }
        // in customer order: Xᵀy's sums do not depend on the engine's order
        states.sort_unstable_by_key(|x| x.0);
        acc.xty = vec![0.0; self.model.features.dim()];
        for &(c, (s, u, cov)) in &states {
            let c = c as usize;
            if c >= self.s.len() {
                return Err(ModelError::Engine(format!("customer {c} beyond the data")));
            }
            (self.s[c], self.u[c], self.cov[c]) = (s, u, cov);
            self.add_xty(c, s, &mut acc.xty);
        }
        Ok(acc)
    }
}
