//! Health, pods, unknown paths and hostile path segments.

use axum::http::StatusCode;
use k8s_openapi::List;
use k8s_openapi::api::core::v1::Pod;

use crate::support::{Fake, app, get, send};

#[tokio::test]
async fn healthz_answers_ok() {
    let (app, _) = app(Fake::new());
    for path in ["/healthz", "/healthz/ping"] {
        assert_eq!(get(&app, path).await, (StatusCode::OK, "ok".into()), "{path}");
    }
    let (status, _, _) = send(&app, "POST", "/healthz").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn pods_is_a_v1_pod_list() {
    let mut fake = Fake::new();
    fake.add("default", "web-0", "app", false);
    fake.add("kube-system", "dns", "coredns", false);
    let (app, _) = app(fake);
    let (status, content_type, body) = send(&app, "GET", "/pods").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type, "application/json");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["kind"], "PodList");
    assert_eq!(json["apiVersion"], "v1");
    assert_eq!(json["metadata"], serde_json::json!({}));
    let list: List<Pod> = serde_json::from_str(&body).unwrap();
    let names: Vec<_> = list.items.iter().map(|p| p.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["web-0", "dns"]);
    assert_eq!(list.items[0].spec.as_ref().unwrap().containers[0].name, "app");
}

#[tokio::test]
async fn empty_pod_list() {
    let (app, _) = app(Fake::new());
    let (_, body) = get(&app, "/pods").await;
    let list: List<Pod> = serde_json::from_str(&body).unwrap();
    assert!(list.items.is_empty());
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let (app, _) = app(Fake::new());
    for path in ["/", "/metrics", "/pods/x", "/containerLogs/default/web", "/containerLogs/a/b/c/d"] {
        assert_eq!(get(&app, path).await, (StatusCode::NOT_FOUND, "404 page not found\n".into()), "{path}");
    }
}

#[tokio::test]
async fn hostile_names_never_reach_the_provider() {
    let mut fake = Fake::new();
    fake.add("default", "web", "app", false);
    let (app, fake) = app(fake);
    let bad = [
        "/containerLogs/..%2F..%2Fetc/passwd/x",
        "/containerLogs/default/..%2F..%2Fetc%2Fpasswd/app",
        "/containerLogs/default/web/..",
        "/containerLogs/default/..%2e/app",
        "/containerLogs/default/web/app%00",
        "/containerLogs/default/web/%2Fetc%2Fshadow",
        "/containerLogs/Default/web/app",
        "/containerLogs/default/web/app%20x",
    ];
    for path in bad {
        let (status, body) = get(&app, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body.starts_with("invalid "), "{path}: {body}");
    }
    // Literal `..` segments do not even match the route.
    let (status, _) = get(&app, "/containerLogs/../../etc/passwd").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(*fake.calls.borrow(), 0);
    let (status, body) = get(&app, "/containerLogs/..%2F..%2Fetc/passwd/x").await;
    assert_eq!(
        body,
        "invalid namespace \"../../etc\": a lowercase RFC 1123 label must consist of lower case \
         alphanumeric characters or '-', and must start and end with an alphanumeric character\n"
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
