//! The `/metrics/resource` payload: byte for byte what the kubelet writes.

use wasmlet_metrics::{Config, Stats};

use crate::Fake;

const EXPECTED: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="app",namespace="demo",pod="web-0"} 1.5 1800000000000
container_cpu_usage_seconds_total{container="sidecar",namespace="demo",pod="web-0"} 0.5 1800000000000
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="app",namespace="demo",pod="web-0"} 1.6777216e+07 1800000000000
container_memory_working_set_bytes{container="sidecar",namespace="demo",pod="web-0"} 1.048576e+06 1800000000000
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="app",namespace="demo",pod="web-0"} 1.79999997e+09
container_start_time_seconds{container="sidecar",namespace="demo",pod="web-0"} 1.79999997e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 6197.005020909 1800000000000
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1.137475584e+09 1800000000000
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="demo",pod="web-0"} 2 1800000000000
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="demo",pod="web-0"} 1.8153472e+07 1800000000000
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
# HELP scrape_error [ALPHA] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE scrape_error gauge
scrape_error 0
"#;

fn stats() -> Stats {
    Stats::new(Config { pod_overhead_bytes: 64 << 10, container_overhead_bytes: 256 << 10, ..Config::default() })
}

#[test]
fn matches_the_kubelet_byte_for_byte() {
    assert_eq!(stats().resource_metrics(&Fake::standard()), EXPECTED);
}

/// A parsed sample line: name, labels, value, timestamp.
type Line = (String, Vec<(String, String)>, f64, Option<i64>);

/// A strict reader of the text format for what this payload uses.
fn parse(text: &str) -> Vec<Line> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_owned()), "family {name} twice");
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, rest) = match line.split_once('}') {
            Some((series, rest)) => (series.to_owned() + "}", rest.trim_start()),
            None => line.split_once(' ').map(|(s, r)| (s.to_owned(), r)).unwrap(),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.trim_end_matches('}');
                let pairs = labels
                    .split(',')
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap();
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), pairs)
            }
            None => (series.clone(), Vec::new()),
        };
        assert!(typed.contains(&name), "{name} before its TYPE");
        let mut fields = rest.split(' ');
        let value: f64 = fields.next().unwrap().parse().unwrap();
        let ts = fields.next().map(|t| t.parse().unwrap());
        assert_eq!(fields.next(), None, "{line}");
        samples.push((name, labels, value, ts));
    }
    samples
}

#[test]
fn samples_carry_labels_and_millisecond_timestamps() {
    let samples = parse(&stats().resource_metrics(&Fake::standard()));
    let names: Vec<&str> = samples.iter().map(|(n, ..)| n.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "families are sorted by name");
    for (name, labels, value, ts) in &samples {
        let label_names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
        let expected: &[&str] = match name.split('_').next().unwrap() {
            "container" => &["container", "namespace", "pod"],
            "pod" => &["namespace", "pod"],
            _ => &[],
        };
        assert_eq!(label_names, expected, "{name}");
        let stamped = !name.ends_with("scrape_error") && name != "container_start_time_seconds";
        assert_eq!(ts.is_some(), stamped, "{name}");
        if let Some(ts) = ts {
            assert_eq!(*ts, 1_800_000_000_000, "{name}");
        }
        assert!(value.is_finite(), "{name}");
    }
}

#[test]
fn a_node_without_pods_has_no_pod_series() {
    let fake = Fake::standard();
    fake.pods.lock().unwrap().clear();
    let samples = parse(&stats().resource_metrics(&fake));
    let names: Vec<&str> = samples.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(
        names,
        ["node_cpu_usage_seconds_total", "node_memory_working_set_bytes", "resource_scrape_error", "scrape_error"]
    );
}
