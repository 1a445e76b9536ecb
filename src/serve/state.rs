//! Shared server state: the model being served (swapped atomically on reload, so no
//! request ever sees a half-loaded model), options, and metrics.

use super::error::{ApiError, ServeError};
use super::metrics::Metrics;
use super::overload::{resolve_max_in_flight, InFlight};
use crate::model::artifact::{self, ArtifactHeader};
use crate::model::recommend::RecommendIndex;
use crate::model::report::{FitProfile, ProfileBy};
use crate::model::stack::{n_features, FeatureSpec, Stack};
use crate::model::Model;
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
    /// [`resolve_max_in_flight`](super::overload::resolve_max_in_flight)).
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

/// A loaded model with everything precomputed that requests read.
#[derive(Debug)]
pub struct Loaded {
    /// The model.
    pub model: Model,
    /// Its artifact header (model id, training summary).
    pub header: ArtifactHeader,
    /// Where it was loaded from, if from a file.
    pub path: Option<PathBuf>,
    /// When it was installed (seconds since the Unix epoch).
    pub loaded_unix: u64,
    /// Fit profiles by brand, category, product (ranked by score, most certain first).
    pub profiles: [Vec<FitProfile>; 3],
    /// Lookup tables of `POST /v1/recommend` for this model.
    pub index: RecommendIndex,
}

impl Loaded {
    /// Precompute what requests read.
    pub fn new(model: Model, header: ArtifactHeader, path: Option<PathBuf>) -> Self {
        let profiles = [
            model.profiles(ProfileBy::Brand),
            model.profiles(ProfileBy::Category),
            model.profiles(ProfileBy::Product),
        ];
        let index = RecommendIndex::new(&model);
        Loaded {
            model,
            header,
            path,
            loaded_unix: now_unix(),
            profiles,
            index,
        }
    }

    /// The profiles of a kind.
    pub fn profiles(&self, by: ProfileBy) -> &[FitProfile] {
        let i = match by {
            ProfileBy::Brand => 0,
            ProfileBy::Category => 1,
            ProfileBy::Product => 2,
        };
        self.profiles.get(i).map_or(&[], Vec::as_slice)
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
    /// State serving `model` (with its artifact `header`). `options.model_path` is where
    /// reloads read from by default.
    pub fn new(model: Model, header: ArtifactHeader, options: ServeOptions) -> Self {
        let state = Self::empty(options);
        let path = state.inner.options.model_path.clone();
        state.install(Loaded::new(model, header, path));
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

/// Load an artifact and check it is a usable model (blocking file IO: call it from
/// `spawn_blocking` inside the server).
pub fn load_model(path: &Path) -> Result<(Model, ArtifactHeader), ServeError> {
    let (model, header) = artifact::load(path)?;
    validate_model(&model).map_err(|message| ServeError::InvalidModel {
        path: path.to_path_buf(),
        message,
    })?;
    Ok((model, header))
}

/// Sanity checks beyond the artifact checksum: finite constants, positive slope and band,
/// at least one size label, tables of consistent lengths, finite offsets, and a second
/// stage (if any) whose count tables are aligned with the model's and whose learners'
/// coefficients fit their feature maps.
pub fn validate_model(m: &Model) -> Result<(), String> {
    let g = &m.globals;
    let constants = [
        ("w", g.w),
        ("c", g.c),
        ("h", g.h),
        ("k", g.k),
        ("sd_choice", g.sd_choice),
        ("sd_customer_features", g.sd_customer_features),
        ("sd_customer_population", g.sd_customer_population),
    ];
    if let Some((name, v)) = constants.iter().find(|(_, v)| !v.is_finite()) {
        return Err(format!("global constant {name} is {v}"));
    }
    if g.w <= 0.0 || g.h <= 0.0 {
        return Err(format!(
            "slope w = {} and band h = {} must be positive",
            g.w, g.h
        ));
    }
    if m.labels.is_empty() {
        return Err("no size labels: the model was trained on nothing".into());
    }
    if m.product_info.len() != m.products.len() {
        return Err(format!(
            "{} products but {} product records",
            m.products.len(),
            m.product_info.len()
        ));
    }
    let c = &m.customers;
    if c.mean.len() != c.ids.len() || c.var.len() != c.ids.len() {
        return Err("customer table columns differ in length".into());
    }
    let groups = [
        ("brand", &m.brands),
        ("category", &m.categories),
        ("product", &m.products),
    ];
    for (kind, list) in groups {
        if let Some(g) = list
            .iter()
            .find(|g| !g.offset.value.is_finite() || !g.eta.is_finite())
        {
            return Err(format!("{kind} {} has a non-finite offset", g.name));
        }
    }
    if let Some(l) = m
        .labels
        .iter()
        .find(|l| !l.offset.value.is_finite() || !l.pos.is_finite())
    {
        return Err(format!(
            "size label {} has a non-finite offset",
            l.canonical
        ));
    }
    if let Some(stack) = &m.stack {
        validate_stack(m, stack)?;
    }
    Ok(())
}

/// The second stage's tables must be aligned with the model's (prediction would fall
/// back on structural probabilities or zero counts for keys out of range, silently
/// answering with another model's numbers), and its learners' coefficients must fit
/// their feature maps.
fn validate_stack(m: &Model, stack: &Stack) -> Result<(), String> {
    let t = &stack.tables;
    let tables = [
        (
            "category",
            t.category.len(),
            m.categories.len(),
            "categories",
        ),
        ("brand", t.brand.len(), m.brands.len(), "brands"),
        ("product", t.product.len(), m.products.len(), "products"),
        (
            "article_size",
            t.article_size.len(),
            m.article_sizes.len(),
            "products in sizes",
        ),
        (
            "customer",
            t.customer.len(),
            m.customers.ids.len(),
            "customers",
        ),
        (
            "customer_pos",
            t.customer_pos.len(),
            m.customers.ids.len(),
            "customers",
        ),
    ];
    for (name, got, want, what) in tables {
        if got != want {
            return Err(format!(
                "second stage table {name} has {got} rows but the model has {want} {what}"
            ));
        }
    }
    if let Some(x) = t.customer_pos.iter().find(|x| !x.is_finite()) {
        return Err(format!("second stage table customer_pos holds {x}"));
    }
    let body_dim = m.features.dim().saturating_sub(1);
    let spec_ok = |s: &FeatureSpec| {
        let p = s.mean.len();
        p > 0
            && s.body_dim == body_dim
            && s.scale.len() == p
            && s.lo.len() == p
            && s.hi.len() == p
            && n_features(s) == p
            && s.scale.iter().all(|v| v.is_finite() && *v > 0.0)
            && s.mean.iter().all(|v| v.is_finite())
            // (clamping to [lo, hi] panics when lo > hi or either is NaN)
            && s.lo.iter().zip(&s.hi).all(|(lo, hi)| lo <= hi)
    };
    let finite = |c: &[f64]| c.iter().all(|v| v.is_finite());
    let purchase = &stack.purchase;
    if !spec_ok(&purchase.spec)
        || purchase.coef.len() != 2 * purchase.spec.mean.len()
        || !finite(&purchase.coef)
    {
        return Err(format!(
            "second stage purchase learner: {} coefficients for {} features (expected twice as many, finite, with a consistent standardisation)",
            purchase.coef.len(),
            purchase.spec.mean.len()
        ));
    }
    if let Some(offer) = &stack.offer {
        let p = offer.spec.mean.len();
        if !spec_ok(&offer.spec)
            || offer.fit.len() + 1 != p
            || offer.split.len() != p
            || !finite(&offer.fit)
            || !finite(&offer.split)
        {
            return Err(format!(
                "second stage offer calibration: {} fit and {} split coefficients for {p} features (expected {} and {p}, finite, with a consistent standardisation)",
                offer.fit.len(),
                offer.split.len(),
                p.saturating_sub(1)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_model_is_refused() {
        let e = validate_model(&Model::default()).unwrap_err();
        assert!(e.contains("no size labels"), "{e}");
        let mut m = Model::default();
        m.globals.w = f64::NAN;
        assert!(validate_model(&m).unwrap_err().contains("w is NaN"));
    }

    #[test]
    fn not_ready_until_installed() {
        let s = AppState::empty(ServeOptions::default());
        assert!(matches!(s.loaded(), Err(ApiError::NotReady)));
        let (_, header) = artifact::to_bytes(&Model::default()).unwrap();
        assert!(s
            .install(Loaded::new(Model::default(), header.clone(), None))
            .is_none());
        assert_eq!(s.loaded().unwrap().header.model_id, header.model_id);
    }
}
