//! The upstream-named series, as rendered.

use std::time::{Duration, SystemTime};

use crate::probes::ProbeRun;
use crate::{ClaimVolume, Metrics};

#[test]
fn upstream_series_are_rendered_under_upstream_names() {
    let m = Metrics::new();
    m.set_node_name("n1");
    m.pod_worker("create", Duration::from_millis(20));
    m.rest_client_request("200".into(), "127.0.0.1:6443".into(), "GET".into());
    let expiry = SystemTime::now() + Duration::from_secs(3600);
    m.set_client_certificate_source(move || Some(expiry));
    m.set_volume_source(|| {
        vec![ClaimVolume {
            namespace: "ns".into(),
            claim: "data".into(),
            capacity_bytes: 100,
            available_bytes: 60,
            used_bytes: 40,
            inodes: 10,
            inodes_free: 7,
            inodes_used: 3,
        }]
    });
    let text = m.render();
    for want in [
        "kubelet_node_name{node=\"n1\"} 1",
        "kubelet_pod_worker_duration_seconds_bucket{le=\"0.025\",operation_type=\"create\"} 1",
        "rest_client_requests_total{code=\"200\",host=\"127.0.0.1:6443\",method=\"GET\"} 1",
        "kubelet_volume_stats_used_bytes{namespace=\"ns\",persistentvolumeclaim=\"data\"} 40",
        "kubelet_volume_stats_inodes_free{namespace=\"ns\",persistentvolumeclaim=\"data\"} 7",
        "# TYPE process_cpu_seconds counter",
        "process_open_fds ",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    let ttl: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("kubelet_certificate_manager_client_ttl_seconds "))
        .expect("ttl series")
        .parse()
        .unwrap();
    assert!((3500.0..=3600.0).contains(&ttl), "ttl {ttl}");
}

#[test]
fn probe_series_go_with_their_pod() {
    let m = Metrics::new();
    let run = |uid, result| ProbeRun {
        namespace: "ns",
        pod: "web",
        pod_uid: uid,
        container: "app",
        probe_type: "Readiness",
        result,
    };
    m.probe(run("u1", "successful"));
    m.probe(run("u1", "successful"));
    m.probe(run("u1", "failed"));
    m.probe(run("u2", "successful"));
    let text = m.render_probes();
    assert!(
        text.contains("prober_probe_total{container=\"app\",namespace=\"ns\",pod=\"web\",pod_uid=\"u1\",probe_type=\"Readiness\",result=\"successful\"} 2"),
        "{text}"
    );
    m.forget_probes("u1");
    let text = m.render_probes();
    assert!(!text.contains("pod_uid=\"u1\""), "{text}");
    assert!(text.contains("pod_uid=\"u2\""), "{text}");
}
