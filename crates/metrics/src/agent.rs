//! [`Metrics`]: the agent's own Prometheus metrics, served on `/metrics`.
//!
//! Built on the `prometheus-client` crate (atomic counters, gauges and
//! histograms, and its OpenMetrics text encoder), so recording is a relaxed
//! atomic add and rendering walks one registry. One `Metrics` per agent,
//! shared as an `Arc`; every method takes `&self`.
//!
//! | series | type | recorded by |
//! |---|---|---|
//! | `wasmlet_pods{phase}` | gauge | [`Metrics::set_pods`] / [`Metrics::pod_phase_changed`] |
//! | `wasmlet_image_pull_duration_seconds` | histogram | [`Metrics::image_pull`] (successful pulls) |
//! | `wasmlet_image_pull_errors_total` | counter | [`Metrics::image_pull`] (failed pulls) |
//! | `wasmlet_container_start_duration_seconds` | histogram | [`Metrics::container_started`] (pod seen → container running) |
//! | `wasmlet_container_restarts_total` | counter | [`Metrics::container_restarted`] |
//! | `wasmlet_compiles_total`, `wasmlet_compile_cache_hits_total`, `wasmlet_compile_failures_total` | counter | [`Metrics::set_compile_source`] (or [`Metrics::compile_stats`]) |
//! | `wasmlet_api_errors_total{operation}` | counter | [`Metrics::api_error`] |
//! | `kubelet_evictions{eviction_signal}` (samples `kubelet_evictions_total`) | counter | [`Metrics::eviction`] (upstream's name) |
//! | `wasmlet_server_expiration_renew_errors_total` | counter | [`Metrics::server_certificate_renew_error`] (upstream's `kubelet_server_expiration_renew_errors`) |
//! | `wasmlet_kubelet_api_start_errors_total{step}` | counter | [`Metrics::kubelet_api_start_error`] (`bind`, `serve`) |
//! | `wasmlet_events_dropped_total` | counter | [`Metrics::event_dropped`] (the event queue was full) |
//! | `kubelet_pod_start_sli_duration_seconds`, `kubelet_pod_start_duration_seconds` | histogram | [`Metrics::pod_start_sli`], [`Metrics::pod_started`] (upstream's names and buckets, see [`kubelet`](crate::kubelet)) |
//! | `kubelet_running_pods`, `kubelet_running_containers{container_state}` | gauge | [`Metrics::set_running`] |
//!
//! Label values come from closed sets (a [`PodPhase`], a `&'static str`
//! operation name), so the number of series is bounded by the code.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::kubelet::Kubelet;

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds) of the image pull histogram buckets.
pub const IMAGE_PULL_BUCKETS: [f64; 14] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// Upper bounds (seconds) of the container start histogram buckets.
pub const CONTAINER_START_BUCKETS: [f64; 15] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];

/// The runtime's cumulative compile counters (`wasmlet_runtime::CompileStats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompileCounts {
    /// Compilations started.
    pub compiles: u64,
    /// Calls answered from the compile cache.
    pub cache_hits: u64,
    /// Compilations (or loads) that failed.
    pub failures: u64,
}

type CompileSource = Box<dyn Fn() -> CompileCounts + Send + Sync>;

/// A pod phase (`status.phase`), the label of `wasmlet_pods`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum PodPhase {
    /// `Pending`.
    Pending,
    /// `Running`.
    Running,
    /// `Succeeded`.
    Succeeded,
    /// `Failed`.
    Failed,
    /// `Unknown`.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PhaseLabels {
    phase: PodPhase,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EvictionLabels {
    eviction_signal: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StepLabels {
    step: &'static str,
}

/// The agent's metrics registry and recording handles.
pub struct Metrics {
    registry: Registry,
    pods: Family<PhaseLabels, Gauge>,
    image_pull_duration: Histogram,
    image_pull_errors: Counter,
    container_start_duration: Histogram,
    container_restarts: Counter,
    compiles: Counter,
    compile_cache_hits: Counter,
    compile_failures: Counter,
    api_errors: Family<OperationLabels, Counter>,
    evictions: Family<EvictionLabels, Counter>,
    server_renew_errors: Counter,
    kubelet_api_start_errors: Family<StepLabels, Counter>,
    events_dropped: Counter,
    kubelet: Kubelet,
    upstream: crate::upstream::Upstream,
    probes: crate::probes::Probes,
    compile_source: OnceLock<CompileSource>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("registry", &self.registry).finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series registered, all at zero.
    pub fn new() -> Self {
        let mut root = Registry::default();
        // Upstream's own series keep upstream's names; the rest are wasmlet_*.
        let evictions = Family::<EvictionLabels, Counter>::default();
        root.register("kubelet_evictions", "Cumulative number of pod evictions by eviction signal", evictions.clone());
        let kubelet = Kubelet::register(&mut root);
        let upstream = crate::upstream::Upstream::register(&mut root);
        let registry = root.sub_registry_with_prefix("wasmlet");
        let pods = Family::<PhaseLabels, Gauge>::default();
        registry.register("pods", "Pods on this node by phase", pods.clone());
        let image_pull_duration = Histogram::new(IMAGE_PULL_BUCKETS);
        registry.register(
            "image_pull_duration_seconds",
            "Duration of successful image pulls (into the node's content store)",
            image_pull_duration.clone(),
        );
        let image_pull_errors = Counter::default();
        registry.register("image_pull_errors", "Failed image pulls", image_pull_errors.clone());
        let container_start_duration = Histogram::new(CONTAINER_START_BUCKETS);
        registry.register(
            "container_start_duration_seconds",
            "Time from the agent first seeing a pod to each of its containers running",
            container_start_duration.clone(),
        );
        let container_restarts = Counter::default();
        registry.register("container_restarts", "Container restarts", container_restarts.clone());
        let compiles = Counter::default();
        registry.register("compiles", "Wasm compilations started", compiles.clone());
        let compile_cache_hits = Counter::default();
        registry.register("compile_cache_hits", "Compiled code served from the cache", compile_cache_hits.clone());
        let compile_failures = Counter::default();
        registry.register("compile_failures", "Wasm compilations (or loads) that failed", compile_failures.clone());
        let api_errors = Family::<OperationLabels, Counter>::default();
        registry.register("api_errors", "Failed Kubernetes API calls by operation", api_errors.clone());
        let server_renew_errors = Counter::default();
        registry.register(
            "server_expiration_renew_errors",
            "Serving certificate requests that ended without a certificate (denied, failed, timed out)",
            server_renew_errors.clone(),
        );
        let kubelet_api_start_errors = Family::<StepLabels, Counter>::default();
        registry.register(
            "kubelet_api_start_errors",
            "Failures to bind or serve the kubelet API (retried) by step",
            kubelet_api_start_errors.clone(),
        );
        let events_dropped = Counter::default();
        registry.register("events_dropped", "Events not sent because the event queue was full", events_dropped.clone());
        Self {
            registry: root,
            pods,
            image_pull_duration,
            image_pull_errors,
            container_start_duration,
            container_restarts,
            compiles,
            compile_cache_hits,
            compile_failures,
            api_errors,
            evictions,
            server_renew_errors,
            kubelet_api_start_errors,
            events_dropped,
            kubelet,
            upstream,
            probes: crate::probes::Probes::new(),
            compile_source: OnceLock::new(),
        }
    }

    /// Sets the number of pods in `phase`.
    pub fn set_pods(&self, phase: PodPhase, count: u64) {
        self.pods.get_or_create(&PhaseLabels { phase }).set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// A pod moved from one phase to another (`None`: it appeared, or left
    /// the node).
    pub fn pod_phase_changed(&self, from: Option<PodPhase>, to: Option<PodPhase>) {
        if from == to {
            return;
        }
        if let Some(phase) = from {
            self.pods.get_or_create(&PhaseLabels { phase }).dec();
        }
        if let Some(phase) = to {
            self.pods.get_or_create(&PhaseLabels { phase }).inc();
        }
    }

    /// An image pull ended after `duration`: its duration is observed if it
    /// succeeded, the error counter counts it if not.
    pub fn image_pull(&self, duration: Duration, ok: bool) {
        if ok {
            self.image_pull_duration.observe(duration.as_secs_f64());
        } else {
            self.image_pull_errors.inc();
        }
    }

    /// A container is running, `latency` after the agent first saw its pod.
    pub fn container_started(&self, latency: Duration) {
        self.container_start_duration.observe(latency.as_secs_f64());
    }

    /// A container is restarted.
    pub fn container_restarted(&self) {
        self.container_restarts.inc();
    }

    /// Mirrors the runtime's cumulative compile counters. Values lower than
    /// the ones already shown are ignored (counters never go back).
    pub fn compile_stats(&self, counts: CompileCounts) {
        use std::sync::atomic::Ordering::Relaxed;
        self.compiles.inner().fetch_max(counts.compiles, Relaxed);
        self.compile_cache_hits.inner().fetch_max(counts.cache_hits, Relaxed);
        self.compile_failures.inner().fetch_max(counts.failures, Relaxed);
    }

    /// Where [`render`](Self::render) reads the compile counters from (e.g.
    /// `move || { let s = runtime.compile_stats(); CompileCounts { .. } }`),
    /// so nothing has to push them. Only the first source set is kept; it
    /// must be cheap (it runs on every scrape).
    pub fn set_compile_source(&self, source: impl Fn() -> CompileCounts + Send + Sync + 'static) {
        if self.compile_source.set(Box::new(source)).is_err() {
            tracing::warn!("a compile counter source is already set; keeping the first");
        }
    }

    /// A Kubernetes API call failed; `operation` names it (e.g.
    /// `"patch_pod_status"`).
    pub fn api_error(&self, operation: &'static str) {
        self.api_errors.get_or_create(&OperationLabels { operation }).inc();
    }

    /// A pod was evicted for node pressure on `signal` (`memory.available`,
    /// `nodefs.available`, ...).
    pub fn eviction(&self, signal: &'static str) {
        self.evictions.get_or_create(&EvictionLabels { eviction_signal: signal }).inc();
    }

    /// A request for the kubelet API's serving certificate ended without
    /// one (it is requested again).
    pub fn server_certificate_renew_error(&self) {
        self.server_renew_errors.inc();
    }

    /// The kubelet API failed to start or stopped at `step` (`"bind"`,
    /// `"serve"`); it is retried.
    pub fn kubelet_api_start_error(&self, step: &'static str) {
        self.kubelet_api_start_errors.get_or_create(&StepLabels { step }).inc();
    }

    /// An event was dropped: the queue to the API server was full.
    pub fn event_dropped(&self) {
        self.events_dropped.inc();
    }

    /// All of a pod's containers started, `latency` after the pod's
    /// `creationTimestamp`, image pulls excluded (upstream's pod start SLI).
    pub fn pod_start_sli(&self, latency: Duration) {
        self.kubelet.pod_start_sli.observe(latency.as_secs_f64());
    }

    /// A pod runs, `latency` after the agent first saw it.
    pub fn pod_started(&self, latency: Duration) {
        self.kubelet.pod_start.observe(latency.as_secs_f64());
    }

    /// Sets how many pods run (set up, not finished) and how many of their
    /// containers are running.
    pub fn set_running(&self, pods: u64, containers: u64) {
        self.kubelet.set_running(pods, containers);
    }

    /// Sets `kubelet_node_name`.
    pub fn set_node_name(&self, name: &str) {
        self.upstream.set_node_name(name);
    }

    /// A pod worker finished `operation_type` (`create`: admission to all
    /// containers started; `kill`: termination) in `took`.
    pub fn pod_worker(&self, operation_type: &'static str, took: Duration) {
        self.upstream.pod_worker(operation_type, took);
    }

    /// An API request ended with `code` (a status code, or `<error>`).
    pub fn rest_client_request(&self, code: String, host: String, method: String) {
        self.upstream.request(code, host, method);
    }

    /// Where the client certificate's expiry comes from, read at each
    /// scrape (`None`: no certificate). Only the first call counts.
    pub fn set_client_certificate_source(
        &self,
        source: impl Fn() -> Option<std::time::SystemTime> + Send + Sync + 'static,
    ) {
        self.upstream.set_client_certificate_source(Box::new(source));
    }

    /// Where the `kubelet_volume_stats_*` figures come from, read at each
    /// scrape. Only the first call counts.
    pub fn set_volume_source(&self, source: impl Fn() -> Vec<crate::ClaimVolume> + Send + Sync + 'static) {
        self.upstream.set_volume_source(Box::new(source));
    }

    /// A probe of a container ran: `prober_probe_total` on `/metrics/probes`.
    pub fn probe(&self, probe: crate::probes::ProbeRun<'_>) {
        self.probes.record(probe);
    }

    /// A pod is gone: its `prober_probe_total` series go too.
    pub fn forget_probes(&self, pod_uid: &str) {
        self.probes.forget(pod_uid);
    }

    /// The text of `/metrics/probes` ([`CONTENT_TYPE`]).
    pub fn render_probes(&self) -> String {
        self.probes.render()
    }

    /// The OpenMetrics text of every series ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        if let Some(source) = self.compile_source.get() {
            self.compile_stats(source());
        }
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing to a String cannot fail; an encoder bug would land here.
            tracing::error!(%error, "cannot encode the agent metrics; this is a bug");
        }
        out
    }
}
