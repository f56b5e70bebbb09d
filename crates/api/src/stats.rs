//! `/stats/summary`, `/metrics/resource`, `/metrics/cadvisor` and
//! `/metrics`: the node's stats and metrics, from the sources in a
//! [`Telemetry`].
//!
//! | route | answer |
//! |---|---|
//! | `GET`/`POST /stats/summary` | the `stats/v1alpha1` `Summary` as JSON; `?only_cpu_and_memory=true` leaves out the filesystems |
//! | `GET /metrics/resource` | the resource metrics metrics-server scrapes (Prometheus text 0.0.4, timestamped samples) |
//! | `GET /metrics/cadvisor` | the containers' memory series under cAdvisor's names (Prometheus text 0.0.4; see `wasmlet_metrics::cadvisor`) |
//! | `GET /metrics` | the agent's own metrics (OpenMetrics text) |
//!
//! A route whose source was not given is not served: it answers 404 like
//! any unknown path (a kubelet without a stats provider has no such
//! handler), so a client can tell "not here" from "failed" (500).
//!
//! `only_cpu_and_memory` is read like the kubelet reads it: only when given
//! exactly once, with Go's `strconv.ParseBool` spellings (`1`, `t`, `T`,
//! `TRUE`, `true`, `True` and the `false` ones); anything else is false.
//!
//! Building a payload reads `/proc` and calls `statvfs`, which a hung
//! filesystem could block, so it runs on the blocking pool.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use wasmlet_metrics::{Metrics, Stats, StatsSource};

use crate::error::ApiError;

/// Where the stats and metrics routes get their data; each part is
/// optional, and a route without its part answers 404.
#[derive(Clone, Default)]
pub struct Telemetry {
    stats: Option<(Arc<dyn StatsSource>, Arc<Stats>)>,
    metrics: Option<Arc<Metrics>>,
}

impl Telemetry {
    /// No sources: the routes answer 404.
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves `/stats/summary`, `/metrics/resource` and `/metrics/cadvisor`
    /// from `source`, built by `stats` (which remembers readings between
    /// scrapes for the CPU rates).
    #[must_use]
    pub fn stats(mut self, source: Arc<dyn StatsSource>, stats: Stats) -> Self {
        self.stats = Some((source, Arc::new(stats)));
        self
    }

    /// Serves `/metrics` from `metrics`.
    #[must_use]
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("stats", &self.stats.is_some())
            .field("metrics", &self.metrics.is_some())
            .finish()
    }
}

#[derive(Clone)]
struct StatsState {
    source: Arc<dyn StatsSource>,
    stats: Arc<Stats>,
}

/// The routes `telemetry` has sources for, ready to merge into the API's
/// router.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(telemetry: Telemetry) -> Router<S> {
    let mut router = Router::new();
    if let Some((source, stats)) = telemetry.stats {
        let state = StatsState { source, stats };
        router = router.merge(
            Router::new()
                .route("/stats/summary", get(summary).post(summary))
                .route("/metrics/resource", get(resource))
                .route("/metrics/cadvisor", get(cadvisor))
                .with_state(state),
        );
    }
    if let Some(metrics) = telemetry.metrics {
        router = router.merge(
            Router::new()
                .route("/metrics", get(agent_metrics))
                .route("/metrics/probes", get(probe_metrics))
                .with_state(metrics),
        );
    }
    router
}

async fn summary(State(state): State<StatsState>, Query(pairs): Query<Vec<(String, String)>>) -> Response {
    let only = only_cpu_and_memory(&pairs);
    match blocking(move || state.stats.summary(state.source.as_ref(), only)).await {
        Ok(summary) => Json(summary).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn resource(State(state): State<StatsState>) -> Response {
    match blocking(move || state.stats.resource_metrics(state.source.as_ref())).await {
        Ok(text) => ([(header::CONTENT_TYPE, wasmlet_metrics::text::CONTENT_TYPE)], text).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn cadvisor(State(state): State<StatsState>) -> Response {
    match blocking(move || state.stats.cadvisor_metrics(state.source.as_ref())).await {
        Ok(text) => ([(header::CONTENT_TYPE, wasmlet_metrics::text::CONTENT_TYPE)], text).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn agent_metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    // Rendering reads /proc (the process series): off the async workers.
    match blocking(move || metrics.render()).await {
        Ok(text) => ([(header::CONTENT_TYPE, wasmlet_metrics::agent::CONTENT_TYPE)], text).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn probe_metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    ([(header::CONTENT_TYPE, wasmlet_metrics::agent::CONTENT_TYPE)], metrics.render_probes()).into_response()
}

async fn blocking<T: Send + 'static>(build: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(build).await.map_err(|error| {
        tracing::error!(error = %error, "building the stats payload panicked; this is a bug");
        ApiError::Internal
    })
}

/// The kubelet's reading of `only_cpu_and_memory`: one value, Go's bools.
fn only_cpu_and_memory(pairs: &[(String, String)]) -> bool {
    let mut values = pairs.iter().filter(|(name, _)| name == "only_cpu_and_memory");
    match (values.next(), values.next()) {
        (Some((_, value)), None) => matches!(value.as_str(), "1" | "t" | "T" | "TRUE" | "true" | "True"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn only_cpu_and_memory_reads_like_the_kubelet() {
        for yes in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(only_cpu_and_memory(&pairs(&[("only_cpu_and_memory", yes)])), "{yes}");
        }
        for no in ["0", "false", "yes", "", "tRuE"] {
            assert!(!only_cpu_and_memory(&pairs(&[("only_cpu_and_memory", no)])), "{no}");
        }
        assert!(!only_cpu_and_memory(&pairs(&[])));
        assert!(!only_cpu_and_memory(&pairs(&[("only_cpu_and_memory", "true"), ("only_cpu_and_memory", "true")])));
    }
}
