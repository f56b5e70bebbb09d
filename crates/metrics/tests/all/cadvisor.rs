//! The `/metrics/cadvisor` payload: cAdvisor's memory series of each
//! container, from the runtime's figures.

use wasmlet_metrics::Stats;

use crate::Fake;

const EXPECTED: &str = r#"# HELP container_memory_max_usage_bytes Maximum memory usage recorded in bytes
# TYPE container_memory_max_usage_bytes gauge
container_memory_max_usage_bytes{container="app",namespace="demo",pod="web-0"} 1.7825792e+07 1800000000000
container_memory_max_usage_bytes{container="sidecar",namespace="demo",pod="web-0"} 2.097152e+06 1800000000000
# HELP container_memory_usage_bytes Current memory usage in bytes, including all memory regardless of when it was accessed
# TYPE container_memory_usage_bytes gauge
container_memory_usage_bytes{container="app",namespace="demo",pod="web-0"} 1.6777216e+07 1800000000000
container_memory_usage_bytes{container="sidecar",namespace="demo",pod="web-0"} 1.048576e+06 1800000000000
# HELP container_memory_working_set_bytes Current working set in bytes.
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="demo",pod="web-0"} 1.6777216e+07 1800000000000
container_memory_working_set_bytes{container="sidecar",namespace="demo",pod="web-0"} 1.048576e+06 1800000000000
# HELP container_oom_events_total Count of out of memory events observed for the container
# TYPE container_oom_events_total counter
container_oom_events_total{container="app",namespace="demo",pod="web-0"} 0 1800000000000
container_oom_events_total{container="sidecar",namespace="demo",pod="web-0"} 1 1800000000000
# HELP container_spec_memory_limit_bytes Memory limit for the container.
# TYPE container_spec_memory_limit_bytes gauge
container_spec_memory_limit_bytes{container="app",namespace="demo",pod="web-0"} 6.7108864e+07
container_spec_memory_limit_bytes{container="sidecar",namespace="demo",pod="web-0"} 6.7108864e+07
"#;

#[test]
fn writes_the_memory_series_of_every_container() {
    assert_eq!(Stats::default().cadvisor_metrics(&Fake::standard()), EXPECTED);
}

#[test]
fn no_containers_no_families() {
    let fake = Fake::standard();
    fake.pods.lock().unwrap().clear();
    assert_eq!(Stats::default().cadvisor_metrics(&fake), "");
}

#[test]
fn no_limit_is_zero_as_in_cadvisor() {
    let fake = Fake::standard();
    for pod in fake.pods.lock().unwrap().iter_mut() {
        for c in &mut pod.containers {
            c.memory_limit_bytes = None;
        }
    }
    let text = Stats::default().cadvisor_metrics(&fake);
    assert!(
        text.contains("container_spec_memory_limit_bytes{container=\"app\",namespace=\"demo\",pod=\"web-0\"} 0\n"),
        "{text}"
    );
}
