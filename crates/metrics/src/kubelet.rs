//! The upstream kubelet's own pod series, under upstream's names, types and
//! buckets, so that dashboards built for the kubelet read wasmlet too.
//!
//! | series | type | upstream meaning |
//! |---|---|---|
//! | `kubelet_pod_start_sli_duration_seconds` | histogram | pod creation → all containers started, image pulls excluded |
//! | `kubelet_pod_start_duration_seconds` | histogram | the kubelet first seeing the pod → the pod running |
//! | `kubelet_running_pods` | gauge | pods with a running sandbox (here: set up, not finished) |
//! | `kubelet_running_containers{container_state}` | gauge | containers by state (here only `running`) |

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of upstream's pod start histograms
/// (`kubelet_pod_start_sli_duration_seconds`, `kubelet_pod_start_duration_seconds`).
pub const POD_START_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 480.0,
    600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    container_state: &'static str,
}

/// The upstream-named series; registered on the root registry (no prefix).
pub(crate) struct Kubelet {
    pub(crate) pod_start_sli: Histogram,
    pub(crate) pod_start: Histogram,
    pub(crate) running_pods: Gauge,
    running_containers: Family<StateLabels, Gauge>,
}

impl Kubelet {
    /// Registers every series in `root`.
    pub(crate) fn register(root: &mut Registry) -> Self {
        let pod_start_sli = Histogram::new(POD_START_BUCKETS);
        root.register(
            "kubelet_pod_start_sli_duration_seconds",
            "Duration in seconds to start a pod, excluding time to pull images, measured from pod creation \
             timestamp to when all its containers are reported as started",
            pod_start_sli.clone(),
        );
        let pod_start = Histogram::new(POD_START_BUCKETS);
        root.register(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
            pod_start.clone(),
        );
        let running_pods = Gauge::default();
        root.register("kubelet_running_pods", "Number of pods that have a running pod sandbox", running_pods.clone());
        let running_containers = Family::<StateLabels, Gauge>::default();
        root.register(
            "kubelet_running_containers",
            "Number of containers currently running",
            running_containers.clone(),
        );
        // Present (at 0) from the first scrape, as upstream's.
        let _ = running_containers.get_or_create(&StateLabels { container_state: "running" });
        Self { pod_start_sli, pod_start, running_pods, running_containers }
    }

    /// Sets the running pods and containers.
    pub(crate) fn set_running(&self, pods: u64, containers: u64) {
        self.running_pods.set(i64::try_from(pods).unwrap_or(i64::MAX));
        self.running_containers
            .get_or_create(&StateLabels { container_state: "running" })
            .set(i64::try_from(containers).unwrap_or(i64::MAX));
    }
}
