//! Shared server state: the model being served (swapped atomically on reload, so no
//! request ever sees a half-loaded model), options, and metrics.

use super::error::{ApiError, ServeError};
use super::metrics::Metrics;
use super::overload::{resolve_max_in_flight, InFlight};
use crate::model::artifact::{self, ArtifactHeader};
use crate::model::Predictor;
use arc_swap::ArcSwapOption;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Server options.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeOptions {
    /// Artifact the model was loaded from; reloads read it again unless given another
    /// path. Default `None` (then `/admin/reload` needs a `path`; SIGHUP does nothing).
    pub model_path: Option<PathBuf>,
    /// Bearer token for `/admin/reload`. Default `None`: the route answers 404.
    pub admin_token: Option<String>,
    /// Largest request body in bytes. Default 1 MiB.
    pub body_limit: usize,
    /// Per-request timeout (not applied to `/admin/reload`). Default 10 s.
    pub timeout: Duration,
    /// Most items in one batch request. Default 1000.
    pub max_batch: usize,
    /// Most requests in flight before new ones are shed with 503 (the ops routes are
    /// never shed). Default 0: derived, 64 per core (see
    /// [`super::overload::resolve_max_in_flight`]).
    pub max_in_flight: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            model_path: None,
            admin_token: None,
            body_limit: 1 << 20,
            timeout: Duration::from_secs(10),
            max_batch: 1000,
            max_in_flight: 0,
        }
    }
}

/// A model being served: its [`Predictor`] (every index and cache requests read) and
/// where it came from. Swapped whole on reload.
#[derive(Debug)]
pub struct Loaded {
    /// The model, ready to predict.
    pub predictor: Predictor,
    /// Its artifact header (model id, training summary).
    pub header: ArtifactHeader,
    /// Where it was loaded from, if from a file.
    pub path: Option<PathBuf>,
    /// When it was installed (seconds since the Unix epoch).
    pub loaded_unix: u64,
}

impl Loaded {
    /// A predictor with its artifact header and origin.
    pub fn new(predictor: Predictor, header: ArtifactHeader, path: Option<PathBuf>) -> Self {
        Loaded {
            predictor,
            header,
            path,
            loaded_unix: now_unix(),
        }
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

struct Shared {
    current: ArcSwapOption<Loaded>,
    options: ServeOptions,
    metrics: Metrics,
    in_flight: InFlight,
    reload_lock: tokio::sync::Mutex<()>,
}

/// State shared by every request: cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field(
                "model_id",
                &self.current().map(|l| l.header.model_id.clone()),
            )
            .field("options", &self.inner.options)
            .finish()
    }
}

/// What a successful reload did.
#[derive(Clone, Debug, PartialEq)]
pub struct ReloadReport {
    /// The model now serving.
    pub model_id: String,
    /// The model it replaced.
    pub previous_model_id: Option<String>,
    /// The artifact read.
    pub path: PathBuf,
    /// Load + validation time.
    pub seconds: f64,
}

impl AppState {
    /// State serving `predictor` (with its artifact `header`). `options.model_path` is where
    /// reloads read from by default.
    pub fn new(predictor: Predictor, header: ArtifactHeader, options: ServeOptions) -> Self {
        let state = Self::empty(options);
        let path = state.inner.options.model_path.clone();
        state.install(Loaded::new(predictor, header, path));
        state
    }

    /// State with no model yet: `/readyz` and the model routes answer 503 until one is installed.
    pub fn empty(options: ServeOptions) -> Self {
        AppState {
            inner: Arc::new(Shared {
                current: ArcSwapOption::empty(),
                in_flight: InFlight::new(resolve_max_in_flight(options.max_in_flight, 0)),
                options,
                metrics: Metrics::new(),
                reload_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The model serving now, if any.
    pub fn current(&self) -> Option<Arc<Loaded>> {
        self.inner.current.load_full()
    }

    /// The model serving now, or [`ApiError::NotReady`].
    pub fn loaded(&self) -> Result<Arc<Loaded>, ApiError> {
        self.current().ok_or(ApiError::NotReady)
    }

    /// `f` of the model serving now, or [`ApiError::NotReady`]. Unlike [`AppState::loaded`]
    /// it takes no reference count on the model (whose counter every request on every
    /// core would write): for synchronous work, e.g. one recommendation.
    pub fn with_loaded<T>(
        &self,
        f: impl FnOnce(&Loaded) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let current = self.inner.current.load();
        match current.as_ref() {
            Some(loaded) => f(loaded),
            None => Err(ApiError::NotReady),
        }
    }

    /// Swap in a model atomically; returns the one it replaced.
    pub fn install(&self, loaded: Loaded) -> Option<Arc<Loaded>> {
        self.inner.current.swap(Some(Arc::new(loaded)))
    }

    /// Server options.
    pub fn options(&self) -> &ServeOptions {
        &self.inner.options
    }

    /// Metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The bound on requests in flight and its counters.
    pub fn in_flight(&self) -> &InFlight {
        &self.inner.in_flight
    }

    /// Load the artifact at `path` (default: the path the current model came from, else
    /// `options.model_path`) off the async threads, validate it, and swap it in. A bad
    /// artifact is refused ([`ApiError::ReloadRefused`]) and the old model keeps serving.
    /// Reloads run one at a time.
    pub async fn reload(&self, path: Option<PathBuf>) -> Result<ReloadReport, ApiError> {
        let _guard = self.inner.reload_lock.lock().await;
        let path = path
            .or_else(|| self.current().and_then(|l| l.path.clone()))
            .or_else(|| self.inner.options.model_path.clone())
            .ok_or_else(|| {
                ApiError::invalid(
                    "path",
                    "the server was not started from a file: give the artifact path",
                )
            })?;
        let started = Instant::now();
        let p = path.clone();
        let result = tokio::task::spawn_blocking(move || {
            load_model(&p).map(|(m, h)| Loaded::new(m, h, Some(p)))
        })
        .await
        .map_err(|e| ApiError::Internal {
            message: format!("model loading task failed: {e}"),
        })?;
        let loaded = match result {
            Ok(l) => l,
            Err(e) => {
                self.metrics().reload(false);
                tracing::warn!(path = %path.display(), error = %e, "model reload refused; the old model keeps serving");
                return Err(ApiError::ReloadRefused {
                    message: e.to_string(),
                });
            }
        };
        let model_id = loaded.header.model_id.clone();
        let previous = self.install(loaded);
        self.metrics().reload(true);
        let previous_model_id = previous.map(|p| p.header.model_id.clone());
        tracing::info!(path = %path.display(), model_id = %model_id, previous = ?previous_model_id, "model reloaded");
        Ok(ReloadReport {
            model_id,
            previous_model_id,
            path,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Load an artifact ([`artifact::load`]: decoded, checksummed, validated) and build its
/// predictor (blocking file IO: call it from `spawn_blocking` inside the server).
pub fn load_model(path: &Path) -> Result<(Predictor, ArtifactHeader), ServeError> {
    Ok(artifact::load_predictor(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Fitted;

    #[test]
    fn not_ready_until_installed() {
        let s = AppState::empty(ServeOptions::default());
        assert!(matches!(s.loaded(), Err(ApiError::NotReady)));
        let (_, header) = artifact::to_bytes(&Fitted::minimal()).unwrap();
        let predictor = Predictor::new(Fitted::minimal()).unwrap();
        assert!(s
            .install(Loaded::new(predictor, header.clone(), None))
            .is_none());
        assert_eq!(s.loaded().unwrap().header.model_id, header.model_id);
    }
}
