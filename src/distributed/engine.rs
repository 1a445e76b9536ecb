//! The plan-based pass engine: a DataFusion session (in-process, Ballista standalone or
//! a remote Ballista scheduler) that runs each iteration's pass as one SQL plan.

use super::prepared::{write_events, write_starts};
use super::udaf::{functions, register_state, CUSTOMER, SUM};
use super::DistError;
use crate::model::fitdata::FitData;
use crate::model::{ModelError, PassEngine, PassJob, PassSums};
use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the plans run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// DataFusion in this process (the baseline for the plans' overhead).
    DataFusion,
    /// Ballista's standalone mode: an in-process scheduler and executor, plans
    /// serialised and sent over gRPC as to a cluster.
    Standalone,
    /// A Ballista scheduler at `host:port`.
    Remote(String),
}

/// Timing of one pass.
#[derive(Clone, Debug, PartialEq)]
pub struct PassStat {
    /// Wall seconds of the pass (writing its files, planning, running, decoding).
    pub seconds: f64,
    /// Customers solved.
    pub customers: usize,
    /// Bytes of the warm starts and parameters the driver wrote for the pass.
    pub broadcast_bytes: u64,
}

/// Table name of the prepared events.
const EVENTS: &str = "runsize_events";

/// Runs the fit's passes as DataFusion plans.
pub struct PlanEngine {
    ctx: SessionContext,
    /// Files of the fit: prepared events, per-pass starts and parameters.
    dir: PathBuf,
    passes: usize,
    /// Per pass: timing and sizes.
    pub stats: Vec<PassStat>,
    /// Declared last: dropped after the session whose tasks it runs.
    rt: tokio::runtime::Runtime,
}

/// How to build a [`PlanEngine`].
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Where the plans run.
    pub kind: EngineKind,
    /// Directory for the prepared events and the per-pass files; with a remote
    /// scheduler it must be at the same path on every executor (a shared file system).
    pub dir: PathBuf,
    /// Partitions of each plan (0 = DataFusion's default, the core count).
    pub partitions: usize,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DistError + '_ {
    move |source| DistError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn path_str(p: &Path) -> Result<String, DistError> {
    let s = p
        .to_str()
        .ok_or_else(|| DistError::Config(format!("{}: not UTF-8", p.display())))?;
    Ok(s.replace('\'', "''"))
}

impl PlanEngine {
    /// Write `data`'s events to `cfg.dir` and open the session.
    pub fn new(cfg: &EngineConfig, data: &FitData) -> Result<PlanEngine, DistError> {
        std::fs::create_dir_all(&cfg.dir).map_err(io(&cfg.dir))?;
        let dir = std::path::absolute(&cfg.dir).map_err(io(&cfg.dir))?;
        let events = dir.join("events.parquet");
        let t = Instant::now();
        write_events(data, &events)?;
        tracing::info!(target: "runsize::dist", events = data.len(), path = %events.display(), seconds = t.elapsed().as_secs_f64(), "prepared events written");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(io(&dir))?;
        let ctx = rt.block_on(session(cfg))?;
        rt.block_on(ctx.register_parquet(
            EVENTS,
            path_str(&events)?,
            ParquetReadOptions::default(),
        ))?;
        Ok(PlanEngine {
            ctx,
            dir,
            passes: 0,
            stats: Vec::new(),
            rt,
        })
    }

    /// The SQL of a pass over the starts table `starts` with parameters at `params`.
    pub fn pass_sql(starts: &str, params: &str) -> String {
        format!(
            "WITH per AS ( \
               SELECT {CUSTOMER}(ev.cust, ev.e, ev.asz, ev.y, st.s0, st.u0, st.m, st.feat, '{params}') AS r \
               FROM {EVENTS} ev JOIN {starts} st ON ev.cust = st.cust \
               GROUP BY ev.cust) \
             SELECT {SUM}(r, '{params}') AS sums FROM per"
        )
    }

    fn run_pass(&mut self, job: &PassJob<'_>) -> Result<PassSums, DistError> {
        let t = Instant::now();
        self.passes += 1;
        let n = self.passes;
        let params = self.dir.join(format!("pass-{n}.params"));
        let bytes = job.context.to_bytes()?;
        std::fs::write(&params, &bytes).map_err(io(&params))?;
        let starts = self.dir.join(format!("starts-{n}.parquet"));
        write_starts(job.customers, &starts)?;
        let broadcast_bytes =
            bytes.len() as u64 + std::fs::metadata(&starts).map_err(io(&starts))?.len();
        let table = format!("runsize_starts_{n}");
        let sql = Self::pass_sql(&table, &path_str(&params)?);
        let ctx = &self.ctx;
        let batches = self.rt.block_on(async {
            ctx.register_parquet(&table, path_str(&starts)?, ParquetReadOptions::default())
                .await?;
            let out = ctx.sql(&sql).await?.collect().await;
            ctx.deregister_table(&table)?;
            Ok::<_, DistError>(out?)
        })?;
        let mut sums = None;
        for b in &batches {
            let col = b.column(0).as_binary::<i32>();
            for i in 0..col.len() {
                if col.is_valid(i) {
                    let part = PassSums::from_bytes(col.value(i))?;
                    match sums.as_mut() {
                        None => sums = Some(part),
                        Some(s) => PassSums::merge(s, part)?,
                    }
                }
            }
        }
        let sums = sums.unwrap_or_else(|| PassSums::new(job.context.article_sizes()));
        for f in [&params, &starts] {
            if let Err(e) = std::fs::remove_file(f) {
                tracing::warn!(target: "runsize::dist", path = %f.display(), "could not remove: {e}");
            }
        }
        let stat = PassStat {
            seconds: t.elapsed().as_secs_f64(),
            customers: sums.customers(),
            broadcast_bytes,
        };
        tracing::debug!(target: "runsize::dist", pass = n, ?stat, "pass");
        self.stats.push(stat);
        Ok(sums)
    }
}

impl PassEngine for PlanEngine {
    fn pass(&mut self, job: &PassJob<'_>) -> Result<PassSums, ModelError> {
        Ok(self.run_pass(job)?)
    }
}

/// The session of `cfg.kind`, with runsize's aggregates registered on the client (and,
/// for standalone, in the in-process scheduler and executor).
async fn session(cfg: &EngineConfig) -> Result<SessionContext, DistError> {
    let config = |c: SessionConfig| {
        if cfg.partitions > 0 {
            c.with_target_partitions(cfg.partitions)
        } else {
            c
        }
    };
    let ctx = match &cfg.kind {
        EngineKind::DataFusion => SessionContext::new_with_config(config(SessionConfig::new())),
        EngineKind::Standalone => {
            let c = config(SessionConfig::new_with_ballista())
                .with_ballista_standalone_parallelism(cfg.partitions.max(2))
                .with_ballista_grpc_client_max_message_size(super::MAX_MESSAGE_BYTES);
            let mut state = SessionStateBuilder::new()
                .with_config(c)
                .with_default_features()
                .build();
            // the in-process scheduler and executor are built from this state
            register_state(&mut state)?;
            SessionContext::standalone_with_state(state).await?
        }
        EngineKind::Remote(addr) => {
            let state = SessionStateBuilder::new()
                .with_config(
                    config(SessionConfig::new_with_ballista())
                        .with_ballista_grpc_client_max_message_size(super::MAX_MESSAGE_BYTES),
                )
                .with_default_features()
                .build();
            SessionContext::remote_with_state(&format!("df://{addr}"), state).await?
        }
    };
    // after creating the context: Ballista's contexts replace the state's functions
    for f in functions() {
        ctx.register_udaf(f.as_ref().clone());
    }
    Ok(ctx)
}
