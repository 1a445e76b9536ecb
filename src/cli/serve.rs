//! `runsize serve`: serve recommendations and fit profiles over HTTP (see [`crate::serve`]).

use crate::serve::{run_blocking, ServeConfig, ServeOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of `runsize serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Model artifact to serve (written by `runsize train`); reloads read it again.
    #[arg(long, required_unless_present = "bare")]
    pub model: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Bearer token enabling POST /admin/reload (at least 8 characters); without one the
    /// route answers 404.
    #[arg(long, env = "RUNSIZE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Largest request body, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub body_limit: usize,
    /// Per-request timeout, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Most items in one POST /v1/recommend/batch.
    #[arg(long, default_value_t = 1000)]
    pub max_batch: usize,
    /// Most requests in flight; past it new requests are answered 503 with Retry-After
    /// at once, never queued (health, readiness and metrics are never shed). 0 = 64 per
    /// worker thread.
    #[arg(long, default_value_t = 0)]
    pub max_in_flight: usize,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Serve a constant answer on every route (HTTP benchmark baseline).
    #[arg(long, hide = true)]
    pub bare: bool,
}

impl ServeArgs {
    /// The library config these options describe.
    pub fn config(&self) -> Result<ServeConfig, crate::Error> {
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= 86_400.0) {
            return Err(crate::serve::ServeError::Config {
                option: "--timeout".into(),
                message: format!("{}: expected seconds in (0, 86400]", self.timeout),
            }
            .into());
        }
        let config = ServeConfig {
            addr: self.addr.clone(),
            model_path: self.model.clone(),
            options: ServeOptions {
                model_path: self.model.clone(),
                admin_token: self.admin_token.clone().filter(|t| !t.is_empty()),
                body_limit: self.body_limit,
                timeout: Duration::from_secs_f64(self.timeout),
                max_batch: self.max_batch,
                max_in_flight: self.max_in_flight,
            },
            bare: self.bare,
            workers: self.workers,
        };
        config.validate()?;
        Ok(config)
    }
}

/// `runsize serve`.
pub fn run(args: &ServeArgs) -> Result<(), crate::Error> {
    let config = args.config()?;
    run_blocking(config)?;
    Ok(())
}

/// Serve the model at `path` on `addr` with default options (admin token from the
/// `RUNSIZE_ADMIN_TOKEN` environment variable, if set). Used by `runsize demo`.
pub fn serve_model(path: &Path, addr: &str) -> Result<(), crate::Error> {
    let token = std::env::var("RUNSIZE_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let config = ServeConfig {
        addr: addr.to_string(),
        model_path: Some(path.to_path_buf()),
        options: ServeOptions {
            model_path: Some(path.to_path_buf()),
            admin_token: token,
            ..ServeOptions::default()
        },
        ..ServeConfig::default()
    };
    run_blocking(config)?;
    Ok(())
}
