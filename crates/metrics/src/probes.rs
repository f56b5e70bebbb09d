//! `/metrics/probes`: upstream's `prober_probe_total{container, namespace,
//! pod, pod_uid, probe_type, result}`, one series per container, probe type
//! and result, removed when the pod goes (as upstream does).

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ProbeLabels {
    container: String,
    namespace: String,
    pod: String,
    pod_uid: String,
    probe_type: &'static str,
    result: &'static str,
}

/// One probe run, for `prober_probe_total`.
#[derive(Debug, Clone, Copy)]
pub struct ProbeRun<'a> {
    /// The pod's namespace, name and UID.
    pub namespace: &'a str,
    /// See `namespace`.
    pub pod: &'a str,
    /// See `namespace`.
    pub pod_uid: &'a str,
    /// The container's name.
    pub container: &'a str,
    /// `Liveness`, `Readiness` or `Startup`, as upstream.
    pub probe_type: &'static str,
    /// `successful`, `failed` or `unknown`, as upstream.
    pub result: &'static str,
}

/// `/metrics/probes`: upstream's `prober_probe_total`, with a pod's series
/// removed when the pod goes.
#[derive(Debug)]
pub(crate) struct Probes {
    registry: Registry,
    total: Family<ProbeLabels, Counter>,
    by_pod: Mutex<std::collections::HashMap<String, std::collections::HashSet<ProbeLabels>>>,
}

impl Probes {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::default();
        let total = Family::<ProbeLabels, Counter>::default();
        registry.register(
            "prober_probe",
            "Cumulative number of a liveness, readiness or startup probe for a container by result",
            total.clone(),
        );
        Self { registry, total, by_pod: Mutex::default() }
    }

    pub(crate) fn record(&self, run: ProbeRun<'_>) {
        let labels = ProbeLabels {
            container: run.container.to_owned(),
            namespace: run.namespace.to_owned(),
            pod: run.pod.to_owned(),
            pod_uid: run.pod_uid.to_owned(),
            probe_type: run.probe_type,
            result: run.result,
        };
        self.total.get_or_create(&labels).inc();
        let mut by_pod = self.by_pod.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        by_pod.entry(run.pod_uid.to_owned()).or_default().insert(labels);
    }

    pub(crate) fn forget(&self, pod_uid: &str) {
        let gone = self.by_pod.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(pod_uid);
        for labels in gone.into_iter().flatten() {
            self.total.remove(&labels);
        }
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "cannot encode the probe metrics; this is a bug");
        }
        out
    }
}
