//! The command layer: clap argument structs, validated once into library configs, and
//! one function per subcommand. `main.rs` only parses, sets up logging and maps errors.

#[cfg(feature = "distributed")]
pub mod ballista;
pub mod brands;
pub mod chart;
pub mod convert;
pub mod demo;
pub mod engine_args;
pub mod eval;
pub mod ingest_args;
pub mod predict;
pub mod report;
pub mod serve;
pub mod synth;
pub mod train;

use clap::{Parser, Subcommand};

/// runsize: learn how brands, products and sizes really run from purchase and return
/// events, and recommend which size a shopper should buy.
#[derive(Parser, Debug)]
#[command(name = "runsize", version, about, long_about = None)]
pub struct Cli {
    /// Log filter (e.g. info, debug, runsize=debug); also RUST_LOG.
    #[arg(long, global = true, default_value = "info", env = "RUNSIZE_LOG")]
    pub log: String,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fit a model to purchase / return events and write a model artifact.
    Train(Box<train::TrainArgs>),
    /// Score events: writes every input column plus p_small, p_fit, p_large.
    Predict(predict::PredictArgs),
    /// Evaluate a model on events with outcomes (AUC, log loss, calibration, cold start).
    Eval(eval::EvalArgs),
    /// How each brand, product or category runs.
    Brands(brands::BrandsArgs),
    /// A brand's size labels on the common scale (normalised size chart).
    Chart(chart::ChartArgs),
    /// Convert a size of one brand into another brand's sizes.
    Convert(convert::ConvertArgs),
    /// Write the merchant pages as one self-contained HTML file.
    Report(report::ReportArgs),
    /// Write synthetic events with known answers.
    Synth(synth::SynthArgs),
    /// Serve recommendations and fit profiles over HTTP.
    Serve(serve::ServeArgs),
    /// Train on the bundled demo catalogue (if needed) and serve it.
    Demo(demo::DemoArgs),
    /// Start an Apache Ballista scheduler or executor for `train --engine ballista`.
    #[cfg(feature = "distributed")]
    Ballista(ballista::BallistaArgs),
}

impl Command {
    /// Worker threads the command is capped at (`--threads` of train, predict and eval;
    /// 0 = all cores).
    pub fn threads(&self) -> usize {
        match self {
            Command::Train(a) => a.threads,
            Command::Predict(a) => a.threads,
            Command::Eval(a) => a.threads,
            _ => 0,
        }
    }

    /// Whether the command talks over sockets (server, Ballista nodes, a train on plans):
    /// these keep Rust's SIGPIPE handling (a closed socket is an error, not an exit).
    pub fn uses_network(&self) -> bool {
        match self {
            Command::Serve(_) | Command::Demo(_) => true,
            #[cfg(feature = "distributed")]
            Command::Ballista(_) => true,
            Command::Train(a) => a.engine.engine != engine_args::EngineArg::Local,
            _ => false,
        }
    }
}

/// Run a parsed command.
pub fn run(cli: Cli) -> Result<(), crate::Error> {
    match cli.command {
        Command::Train(a) => train::run(&a),
        Command::Predict(a) => predict::run(&a),
        Command::Eval(a) => eval::run(&a),
        Command::Brands(a) => brands::run(&a),
        Command::Chart(a) => chart::run(&a),
        Command::Convert(a) => convert::run(&a),
        Command::Report(a) => report::run(&a),
        Command::Synth(a) => synth::run(&a),
        Command::Serve(a) => serve::run(&a),
        Command::Demo(a) => demo::run(&a),
        #[cfg(feature = "distributed")]
        Command::Ballista(a) => ballista::run(&a),
    }
}
