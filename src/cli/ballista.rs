//! `runsize ballista scheduler|executor`: a Ballista scheduler or executor with
//! runsize's aggregate functions registered (the runsize binary is the executor image).

use crate::distributed::cluster::{run_executor, run_scheduler, ExecutorOptions, SchedulerOptions};

/// Options of `runsize ballista`.
#[derive(clap::Args, Debug, Clone)]
pub struct BallistaArgs {
    /// The node to start.
    #[command(subcommand)]
    pub node: Node,
}

/// A Ballista node.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Node {
    /// Start a scheduler (clients and executors connect to its port).
    Scheduler(SchedulerArgs),
    /// Start an executor that registers with a scheduler.
    Executor(ExecutorArgs),
}

/// Options of `runsize ballista scheduler`.
#[derive(clap::Args, Debug, Clone)]
pub struct SchedulerArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_host: String,
    /// gRPC port.
    #[arg(long, default_value_t = 50050)]
    pub port: u16,
    /// Attempts of a failed task before its job fails.
    #[arg(long, default_value_t = 4)]
    pub task_max_failures: usize,
    /// Seconds without a heartbeat before an executor is lost and its tasks re-run.
    #[arg(long, default_value_t = 180)]
    pub executor_timeout_seconds: u64,
    /// Seconds after a job ends before the executors remove its shuffle files.
    #[arg(long, default_value_t = 300)]
    pub job_data_cleanup_seconds: u64,
}

/// Options of `runsize ballista executor`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExecutorArgs {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind_host: String,
    /// Arrow Flight port (other executors and the client fetch shuffle data here).
    #[arg(long, default_value_t = 50051)]
    pub port: u16,
    /// gRPC port.
    #[arg(long, default_value_t = 50052)]
    pub grpc_port: u16,
    /// The scheduler, HOST:PORT.
    #[arg(long, default_value = "localhost:50050")]
    pub scheduler: String,
    /// Tasks run at once (0 = the core count).
    #[arg(long, default_value_t = 0)]
    pub concurrent_tasks: usize,
    /// Directory of shuffle files (default: a temporary directory).
    #[arg(long)]
    pub work_dir: Option<String>,
    /// Seconds between heartbeats to the scheduler.
    #[arg(long, default_value_t = 60)]
    pub heartbeat_seconds: u64,
}

fn runtime() -> Result<tokio::runtime::Runtime, crate::Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| crate::distributed::DistError::Config(format!("tokio runtime: {e}")).into())
}

/// Run `runsize ballista ...` until the node is stopped.
pub fn run(args: &BallistaArgs) -> Result<(), crate::Error> {
    let rt = runtime()?;
    match &args.node {
        Node::Scheduler(a) => {
            let o = SchedulerOptions {
                bind_host: a.bind_host.clone(),
                port: a.port,
                task_max_failures: a.task_max_failures,
                executor_timeout_seconds: a.executor_timeout_seconds,
                job_data_cleanup_seconds: a.job_data_cleanup_seconds,
            };
            rt.block_on(run_scheduler(&o))?;
        }
        Node::Executor(a) => {
            let (host, port) = a.scheduler.rsplit_once(':').ok_or_else(|| {
                crate::distributed::DistError::Config(format!(
                    "--scheduler {}: expected HOST:PORT",
                    a.scheduler
                ))
            })?;
            let scheduler_port = port.parse().map_err(|e| {
                crate::distributed::DistError::Config(format!("--scheduler port {port}: {e}"))
            })?;
            let o = ExecutorOptions {
                bind_host: a.bind_host.clone(),
                port: a.port,
                grpc_port: a.grpc_port,
                scheduler_host: host.to_string(),
                scheduler_port,
                concurrent_tasks: a.concurrent_tasks,
                work_dir: a.work_dir.clone(),
                heartbeat_seconds: a.heartbeat_seconds,
            };
            rt.block_on(run_executor(&o))?;
        }
    }
    Ok(())
}
