//! HTTP server: size recommendations, fit profiles, health, metrics and an OpenAPI
//! description over axum, with atomic model hot swap (`POST /admin/reload`, SIGHUP),
//! JSON errors, body limits, timeouts, panic catching and graceful shutdown.
//!
//! Layout: [`routes`] (handlers, middleware, [`router`]), [`api`] (the wire format:
//! request and response bodies, the fast request parser, the answer writer, limits),
//! [`state`] ([`AppState`] holding the served [`crate::model::Predictor`]), [`error`]
//! ([`ServeError`], [`ApiError`] — the one place status codes are chosen), [`metrics`]
//! (Prometheus text), [`openapi`], [`web`] (the merchant web page at `/` and the size
//! chart, conversion and flag routes), [`overload`] (the bound on requests in flight),
//! [`request_id`] (`x-request-id`).

pub mod api;
pub mod app;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod overload;
pub mod request_id;
pub mod routes;
pub mod state;
pub mod web;

pub use app::router;
pub use error::{ApiError, ErrorBody, ServeError};
pub use metrics::Metrics;
pub use middleware::{bare_router, layered};
pub use state::{load_model, AppState, Loaded, ReloadReport, ServeOptions};

use std::future::Future;
use std::path::PathBuf;

/// What to serve and how.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeConfig {
    /// Address to listen on, `host:port`. Default `127.0.0.1:8080`.
    pub addr: String,
    /// Model artifact (required unless `bare`); also the default path of reloads.
    pub model_path: Option<PathBuf>,
    /// Admin token, body limit, timeout, batch cap, in-flight bound (see [`ServeOptions`]; its
    /// `model_path` is set from `model_path` above).
    pub options: ServeOptions,
    /// Serve the constant bare endpoint instead of the API (benchmark baseline). Default false.
    pub bare: bool,
    /// Tokio worker threads for [`run_blocking`]; 0 = one per core. Default 0.
    pub workers: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: "127.0.0.1:8080".into(),
            model_path: None,
            options: ServeOptions::default(),
            bare: false,
            workers: 0,
        }
    }
}

impl ServeConfig {
    /// Reject impossible settings with a message saying what is expected.
    pub fn validate(&self) -> Result<(), ServeError> {
        let bad = |option: &str, message: String| ServeError::Config {
            option: option.into(),
            message,
        };
        if !self.bare && self.model_path.is_none() {
            return Err(bad(
                "--model",
                "a model artifact is required (train one with `runsize train`)".into(),
            ));
        }
        let o = &self.options;
        if o.body_limit < 1024 {
            return Err(bad(
                "--body-limit",
                format!("{} bytes: expected at least 1024", o.body_limit),
            ));
        }
        if o.timeout.is_zero() {
            return Err(bad(
                "--timeout",
                "expected a positive number of seconds".into(),
            ));
        }
        if o.max_batch == 0 {
            return Err(bad("--max-batch", "expected at least 1".into()));
        }
        if o.admin_token.as_deref().is_some_and(|t| t.trim().len() < 8) {
            return Err(bad(
                "--admin-token",
                "expected at least 8 characters".into(),
            ));
        }
        Ok(())
    }
}

/// Load the model, bind `config.addr`, and serve until SIGTERM or ctrl-c (in-flight
/// requests finish). SIGHUP reloads the model from its path.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(&config.addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.addr.clone(),
            source,
        })?;
    if config.bare {
        tracing::info!(addr = %config.addr, "serving the bare constant endpoint");
        axum::serve(listener, bare_router())
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        return Ok(());
    }
    let path = config
        .model_path
        .clone()
        .ok_or_else(|| ServeError::Config {
            option: "--model".into(),
            message: "a model artifact is required".into(),
        })?;
    let p = path.clone();
    let (model, header) = tokio::task::spawn_blocking(move || load_model(&p))
        .await
        .map_err(|e| ServeError::Io(std::io::Error::other(e)))??;
    let mut options = config.options.clone();
    options.model_path = Some(path.clone());
    options.max_in_flight = overload::resolve_max_in_flight(options.max_in_flight, config.workers);
    tracing::info!(
        path = %path.display(),
        model_id = %header.model_id,
        brands = model.brands.len(),
        products = model.products.len(),
        "model loaded"
    );
    let state = AppState::new(model, header, options);
    spawn_reload_on_hangup(state.clone());
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, max_in_flight = state.in_flight().max(), "serving");
    serve_on(listener, state, shutdown_signal()).await
}

/// Serve `state` on an already bound listener until `shutdown` resolves; in-flight
/// requests finish first. For tests and embedding.
pub async fn serve_on<F>(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: F,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("server stopped");
    Ok(())
}

/// [`serve`] on a new multi-threaded tokio runtime (`config.workers` threads, 0 = one per core).
pub fn run_blocking(config: ServeConfig) -> Result<(), ServeError> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name("runsize-serve");
    if config.workers > 0 {
        builder.worker_threads(config.workers);
    }
    let runtime = builder.build()?;
    runtime.block_on(serve(config))
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// On SIGHUP, reload the model from its path (errors are logged; the old model keeps serving).
fn spawn_reload_on_hangup(state: AppState) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: reload with POST /admin/reload");
                return;
            }
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the model");
            // success and refusal are logged by reload itself
            let _ = state.reload(None).await;
        }
    });
    #[cfg(not(unix))]
    drop(state);
}
