//! A Ballista scheduler and executor with runsize's aggregates registered: what
//! `runsize ballista scheduler` and `runsize ballista executor` run (the runsize binary
//! is the executor image).

use super::udaf::register_state;
use super::DistError;
use ballista::prelude::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::utils::default_session_builder;
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::SessionState;
use datafusion::prelude::SessionConfig;
use std::sync::Arc;

/// Settings of a scheduler.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Address to bind.
    pub bind_host: String,
    /// gRPC port (clients and executors connect here).
    pub port: u16,
    /// Attempts of a failed task before its job fails.
    pub task_max_failures: usize,
    /// Seconds without a heartbeat before an executor is declared lost (its tasks are
    /// then re-run elsewhere).
    pub executor_timeout_seconds: u64,
    /// Seconds after a job ends before its shuffle files are removed from the executors.
    pub job_data_cleanup_seconds: u64,
}

/// Settings of an executor.
#[derive(Clone, Debug)]
pub struct ExecutorOptions {
    /// Address to bind.
    pub bind_host: String,
    /// Arrow Flight port (shuffle reads).
    pub port: u16,
    /// gRPC port.
    pub grpc_port: u16,
    /// The scheduler's host.
    pub scheduler_host: String,
    /// The scheduler's port.
    pub scheduler_port: u16,
    /// Tasks run at once (0 = the core count).
    pub concurrent_tasks: usize,
    /// Directory of shuffle files (None: a temporary directory).
    pub work_dir: Option<String>,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat_seconds: u64,
}

fn session_builder(cfg: SessionConfig) -> datafusion::error::Result<SessionState> {
    let mut state = default_session_builder(cfg)?;
    register_state(&mut state)
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))?;
    Ok(state)
}

/// Run a scheduler until the process is stopped.
pub async fn run_scheduler(o: &SchedulerOptions) -> Result<(), DistError> {
    let config = SchedulerConfig {
        bind_host: o.bind_host.clone(),
        bind_port: o.port,
        task_max_failures: o.task_max_failures,
        executor_timeout_seconds: o.executor_timeout_seconds,
        finished_job_data_clean_up_interval_seconds: o.job_data_cleanup_seconds,
        override_session_builder: Some(Arc::new(session_builder)),
        ..Default::default()
    };
    let addr: std::net::SocketAddr = format!("{}:{}", o.bind_host, o.port)
        .parse()
        .map_err(|e| DistError::Config(format!("scheduler address: {e}")))?;
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, addr, Arc::new(config)).await?;
    Ok(())
}

/// Run an executor until the process is stopped (ctrl-c, SIGTERM).
pub async fn run_executor(o: &ExecutorOptions) -> Result<(), DistError> {
    let state = session_builder(
        SessionConfig::new_with_ballista()
            .with_ballista_grpc_client_max_message_size(super::MAX_MESSAGE_BYTES),
    )?;
    let registry = Arc::new(BallistaFunctionRegistry::from(&state));
    let vcores = if o.concurrent_tasks > 0 {
        o.concurrent_tasks
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let config = ExecutorProcessConfig {
        bind_host: o.bind_host.clone(),
        port: o.port,
        grpc_port: o.grpc_port,
        scheduler_host: o.scheduler_host.clone(),
        scheduler_port: o.scheduler_port,
        scheduler_connect_timeout_seconds: 30,
        vcores,
        work_dir: o.work_dir.clone(),
        executor_heartbeat_interval_seconds: o.heartbeat_seconds,
        override_function_registry: Some(registry),
        // a pass's partial sums are one large row (see MAX_MESSAGE_BYTES)
        grpc_max_encoding_message_size: super::MAX_MESSAGE_BYTES as u32,
        grpc_max_decoding_message_size: super::MAX_MESSAGE_BYTES as u32,
        ..Default::default()
    };
    start_executor_process(Arc::new(config)).await?;
    Ok(())
}
