//! The `runsize` binary: parse arguments, set up logging, run the command, map errors
//! to an exit code. All work happens in the library.

use clap::Parser;
use runsize::cli::{run, Cli};
use std::process::ExitCode;

fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.compact().init();
    }
}

/// Report commands (eval, brands, ...) piped into `head` should stop quietly when the
/// pipe closes, as Unix tools do, instead of panicking on a failed print. The server
/// keeps Rust's default (SIGPIPE ignored) so a closed socket is an error, not an exit.
fn default_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called once at startup before any thread is spawned; restores the
    // default disposition of one signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// A command capped at `n` worker threads caps polars' own pool too (the Parquet
/// decoder's, sized from `POLARS_MAX_THREADS` at its first use), unless the environment
/// already sizes it. Called at startup, before any thread is spawned.
fn cap_polars_threads(n: usize) {
    if n > 0 && std::env::var_os("POLARS_MAX_THREADS").is_none() {
        std::env::set_var("POLARS_MAX_THREADS", n.to_string());
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.command.uses_network() {
        default_sigpipe();
    }
    cap_polars_threads(cli.command.threads());
    init_logging(&cli.log, cli.log_json);
    match run(cli).map_err(anyhow::Error::from) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
