//! `/stats/summary`, `/metrics/resource`, `/metrics/cadvisor` and `/metrics` through the router,
//! with a fake stats source.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::StatusCode;
use wasmlet_api::Telemetry;
use wasmlet_metrics::{ContainerSample, CpuSample, MemorySample, Metrics, NodeSample, PodSample, Stats, StatsSource};

use crate::support::{Fake, send};

struct Source;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl StatsSource for Source {
    fn node(&self) -> NodeSample {
        NodeSample {
            name: "wasm-1".into(),
            start_time: at(1_700_000_000),
            cpu: Some(CpuSample { time: at(1_800_000_000), usage_core_nanos: 42_000_000_000 }),
            memory: Some(MemorySample { working_set_bytes: Some(1 << 30), ..MemorySample::at(at(1_800_000_000)) }),
            fs: Some(wasmlet_metrics::host::fs(std::path::Path::new("/"), at(1_800_000_000)).unwrap()),
            image_fs: None,
            agent: None,
        }
    }

    fn pods(&self) -> Vec<PodSample> {
        vec![PodSample {
            namespace: "demo".into(),
            name: "web-0".into(),
            uid: "uid-1".into(),
            start_time: at(1_799_999_000),
            containers: vec![ContainerSample {
                name: "app".into(),
                start_time: at(1_799_999_001),
                time: at(1_800_000_000),
                cpu_nanos: 1_500_000_000,
                memory_bytes: 4 << 20,
                memory_peak_bytes: 6 << 20,
                oom_kills: 2,
                memory_limit_bytes: None,
                running: true,
            }],
        }]
    }
}

fn app(telemetry: Telemetry) -> Router {
    let config = wasmlet_api::router::Config { telemetry, ..Default::default() };
    wasmlet_api::router::with_config(Arc::new(Fake::new()), config)
}

fn full() -> Router {
    app(Telemetry::new().stats(Arc::new(Source), Stats::default()).metrics(Arc::new(Metrics::new())))
}

#[tokio::test]
async fn without_sources_the_routes_are_404() {
    let app = app(Telemetry::new());
    for (method, path) in [
        ("GET", "/stats/summary"),
        ("POST", "/stats/summary"),
        ("GET", "/metrics/resource"),
        ("GET", "/metrics/cadvisor"),
        ("GET", "/metrics"),
    ] {
        let (status, _, body) = send(&app, method, path).await;
        assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, "404 page not found\n"), "{method} {path}");
    }
}

#[tokio::test]
async fn each_source_serves_only_its_routes() {
    let metrics_only = app(Telemetry::new().metrics(Arc::new(Metrics::new())));
    assert_eq!(send(&metrics_only, "GET", "/metrics").await.0, StatusCode::OK);
    assert_eq!(send(&metrics_only, "GET", "/stats/summary").await.0, StatusCode::NOT_FOUND);
    let stats_only = app(Telemetry::new().stats(Arc::new(Source), Stats::default()));
    assert_eq!(send(&stats_only, "GET", "/stats/summary").await.0, StatusCode::OK);
    assert_eq!(send(&stats_only, "GET", "/metrics/resource").await.0, StatusCode::OK);
    assert_eq!(send(&stats_only, "GET", "/metrics/cadvisor").await.0, StatusCode::OK);
    assert_eq!(send(&stats_only, "GET", "/metrics").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn summary_is_json_with_or_without_filesystems() {
    let app = full();
    for method in ["GET", "POST"] {
        let (status, content_type, body) = send(&app, method, "/stats/summary").await;
        assert_eq!((status, content_type.as_str()), (StatusCode::OK, "application/json"), "{method}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["node"]["nodeName"], "wasm-1", "{method}");
        assert!(json["node"]["fs"]["capacityBytes"].as_u64().unwrap() > 0, "{method}");
        assert_eq!(json["pods"][0]["podRef"]["uid"], "uid-1", "{method}");
        assert_eq!(json["pods"][0]["containers"][0]["cpu"]["usageCoreNanoSeconds"], 1_500_000_000_u64);
        let (_, _, only) = send(&app, method, "/stats/summary?only_cpu_and_memory=true").await;
        let only: serde_json::Value = serde_json::from_str(&only).unwrap();
        assert!(only["node"].get("fs").is_none(), "{method}: {only}");
        assert_eq!(only["node"]["memory"]["workingSetBytes"], 1_u64 << 30);
    }
    // Anything but one Go bool is false.
    let (_, _, body) = send(&app, "GET", "/stats/summary?only_cpu_and_memory=yes").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(json["node"].get("fs").is_some());
}

#[tokio::test]
async fn resource_metrics_are_prometheus_text() {
    let (status, content_type, body) = send(&full(), "GET", "/metrics/resource").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let lines: Vec<&str> = body.lines().collect();
    assert!(lines.contains(&"node_cpu_usage_seconds_total 42 1800000000000"), "{body}");
    assert!(
        lines.contains(
            &"container_cpu_usage_seconds_total{container=\"app\",namespace=\"demo\",pod=\"web-0\"} 1.5 1800000000000"
        ),
        "{body}"
    );
    assert_eq!(lines.last(), Some(&"scrape_error 0"));
}

#[tokio::test]
async fn cadvisor_metrics_carry_the_memory_peak_and_oom_events() {
    let (status, content_type, body) = send(&full(), "GET", "/metrics/cadvisor").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let labels = "{container=\"app\",namespace=\"demo\",pod=\"web-0\"}";
    let lines: Vec<&str> = body.lines().collect();
    for line in [
        format!("container_memory_max_usage_bytes{labels} 6.291456e+06 1800000000000"),
        format!("container_memory_working_set_bytes{labels} 4.194304e+06 1800000000000"),
        format!("container_oom_events_total{labels} 2 1800000000000"),
        format!("container_spec_memory_limit_bytes{labels} 0"),
    ] {
        assert!(lines.contains(&line.as_str()), "{line} missing in {body}");
    }
}

#[tokio::test]
async fn agent_metrics_are_openmetrics() {
    let metrics = Arc::new(Metrics::new());
    metrics.container_restarted();
    let app = app(Telemetry::new().metrics(metrics));
    let (status, content_type, body) = send(&app, "GET", "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert!(body.lines().any(|l| l == "wasmlet_container_restarts_total 1"), "{body}");
    assert!(body.ends_with("# EOF\n"), "{body}");
}
