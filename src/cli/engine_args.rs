//! `train --engine`: where the fit's passes run (this process, DataFusion plans, or a
//! Ballista cluster) and the settings of the plan engines.

use crate::data::schema::Events;
use crate::model::fitdata::FitData;
use crate::model::fitted::IterationStats;
use crate::model::{FitParams, Fitted};
use std::path::PathBuf;

/// `--engine` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    /// The local pass in this process (default).
    Local,
    /// The passes as Apache DataFusion plans in this process (the plans' overhead
    /// without a cluster). Needs the `distributed` feature.
    Datafusion,
    /// The passes as plans on an Apache Ballista cluster (`--scheduler`). Needs the
    /// `distributed` feature.
    Ballista,
}

/// Options of the fit's engine.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Where the fit's passes run: local, datafusion or ballista (same flags, same
    /// artifact; the second stage's refits stay local).
    #[arg(long, value_enum, default_value_t = EngineArg::Local)]
    pub engine: EngineArg,
    /// `--engine ballista`: the scheduler, HOST:PORT (`runsize ballista scheduler`), or
    /// `standalone` for an in-process scheduler and executor.
    #[arg(long, default_value = "localhost:50050")]
    pub scheduler: String,
    /// `--engine datafusion|ballista`: directory of the plans' files (the prepared
    /// events, each pass's warm starts and parameters); every executor must see it at
    /// the same path. Default: a new temporary directory.
    #[arg(long)]
    pub engine_dir: Option<PathBuf>,
    /// `--engine datafusion|ballista`: partitions of each plan (0 = the core count).
    #[arg(long, default_value_t = 0)]
    pub engine_partitions: usize,
}

/// What a fit reads: dictionaries and features, prepared events, the warm start.
pub type FitInputs<'a> = (&'a Events, &'a FitData, Option<&'a Fitted>);

impl EngineArgs {
    /// Fit on the chosen engine.
    pub fn fit(
        &self,
        params: &FitParams,
        inputs: FitInputs<'_>,
        on_iter: &mut (dyn FnMut(&IterationStats) + Send),
    ) -> Result<Fitted, crate::Error> {
        let (meta, data, init) = inputs;
        if self.engine == EngineArg::Local {
            return Ok(params.fit_from(meta, data, init, on_iter)?);
        }
        self.fit_on_plans(params, inputs, on_iter)
    }

    #[cfg(not(feature = "distributed"))]
    fn fit_on_plans(
        &self,
        _: &FitParams,
        _: FitInputs<'_>,
        _: &mut (dyn FnMut(&IterationStats) + Send),
    ) -> Result<Fitted, crate::Error> {
        Err(crate::model::ModelError::Param(
            "--engine datafusion|ballista: this runsize was built without the `distributed` feature (cargo build --release --features distributed)".into(),
        )
        .into())
    }

    #[cfg(feature = "distributed")]
    fn fit_on_plans(
        &self,
        params: &FitParams,
        inputs: FitInputs<'_>,
        on_iter: &mut (dyn FnMut(&IterationStats) + Send),
    ) -> Result<Fitted, crate::Error> {
        use crate::distributed::engine::EngineConfig;
        use crate::distributed::{DistError, EngineKind, PlanEngine};
        let (meta, data, init) = inputs;
        let kind = match (self.engine, self.scheduler.as_str()) {
            (EngineArg::Ballista, "standalone") => EngineKind::Standalone,
            (EngineArg::Ballista, addr) => EngineKind::Remote(addr.to_string()),
            _ => EngineKind::DataFusion,
        };
        // a temporary directory unless one is given (kept until the fit ends)
        let tmp;
        let dir = match &self.engine_dir {
            Some(d) => d.clone(),
            None => {
                tmp = tempfile::Builder::new()
                    .prefix("runsize-engine-")
                    .tempdir()
                    .map_err(|source| DistError::Io {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                tmp.path().to_path_buf()
            }
        };
        let cfg = EngineConfig {
            kind,
            dir,
            partitions: self.engine_partitions,
        };
        let mut engine = PlanEngine::new(&cfg, data)?;
        let on = crate::model::FitOn {
            meta,
            data,
            init,
            engine: &mut engine,
        };
        let model = params.fit_on(on, on_iter)?;
        let n = engine.stats.len().max(1) as f64;
        let secs: f64 = engine.stats.iter().map(|s| s.seconds).sum();
        let bytes: u64 = engine.stats.iter().map(|s| s.broadcast_bytes).sum();
        tracing::info!(
            target: "runsize::train",
            engine = ?cfg.kind,
            passes = engine.stats.len(),
            seconds_per_pass = secs / n,
            broadcast_bytes_per_pass = bytes as f64 / n,
            "plan passes"
        );
        Ok(model)
    }
}
