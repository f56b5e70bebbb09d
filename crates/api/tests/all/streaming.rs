//! `/portForward`, `/exec` and `/attach` through the router: mounted only
//! with a `Streaming`, names checked, refusals with upstream's statuses,
//! and `101 Switching Protocols` for a good SPDY upgrade. (Sessions
//! themselves are tested in wasmlet-streaming and end to end in
//! tests/e2e/tests/streaming_kubectl.rs.)

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use tower::ServiceExt;
use wasmlet_api::{LogSource, LookupError, Provider};
use wasmlet_streaming::{Config, ExecOutcome, ExecRequest, StreamError, Streaming, StreamingProvider, Target};

struct Node {
    streaming: Option<Streaming>,
}

impl Provider for Node {
    fn pods(&self) -> Vec<Pod> {
        Vec::new()
    }

    fn container_log(&self, _: &str, _: &str, _: &str, _: bool) -> Result<LogSource, LookupError> {
        Err(LookupError::PodNotFound)
    }

    fn streaming(&self) -> Option<Streaming> {
        self.streaming.clone()
    }
}

struct OnePod;

impl StreamingProvider for OnePod {
    fn lookup(&self, target: &Target<'_>) -> Result<(), StreamError> {
        if target.pod == "web" { Ok(()) } else { Err(StreamError::PodNotFound) }
    }

    fn port_forward_target(&self, _: &str, _: &str, _: Option<&str>, _: u16) -> Result<SocketAddr, StreamError> {
        Err(StreamError::PortUnavailable("none".into()))
    }

    fn exec(&self, _: ExecRequest) -> Result<BoxFuture<'static, Result<ExecOutcome, StreamError>>, StreamError> {
        Err(StreamError::Failed("not in this test".into()))
    }
}

fn router(streaming: bool) -> axum::Router {
    let streaming = streaming.then(|| Streaming::new(Arc::new(OnePod), Config::default()));
    wasmlet_api::router(Arc::new(Node { streaming }))
}

async fn send(
    router: axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String, Vec<String>) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = router.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let accepted = response
        .headers()
        .get_all("x-accepted-stream-protocol-versions")
        .iter()
        .chain(response.headers().get_all("x-stream-protocol-version"))
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap();
    (status, String::from_utf8_lossy(&body).trim_end().to_owned(), accepted)
}

const SPDY: [(&str, &str); 2] = [("connection", "Upgrade"), ("upgrade", "SPDY/3.1")];

#[tokio::test]
async fn routes_exist_only_with_a_streaming_provider() {
    let (status, ..) = send(router(false), "POST", "/exec/ns/web/main?command=ls&output=1", &SPDY).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, ..) = send(router(false), "POST", "/portForward/ns/web", &SPDY).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn names_are_checked_before_anything_else() {
    for uri in
        ["/exec/NS/web/main?command=ls", "/portForward/ns/a..b", "/attach/ns/web/uid_1/main", "/exec/ns/web/x%2Fy"]
    {
        let (status, body, _) = send(router(true), "POST", uri, &SPDY).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(body.starts_with("invalid "), "{uri}: {body}");
    }
}

#[tokio::test]
async fn refusals_have_upstream_statuses() {
    let v4 = [SPDY[0], SPDY[1], ("x-stream-protocol-version", "v4.channel.k8s.io")];
    let (status, body, _) = send(router(true), "POST", "/exec/ns/web/main?command=ls&output=1", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, "unable to upgrade: missing upgrade headers in request")
    );
    let (status, body, _) = send(router(true), "POST", "/exec/ns/gone/main?command=ls&output=1", &v4).await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_FOUND, "pod does not exist"));
    let (status, body, _) = send(router(true), "GET", "/exec/ns/web/main?command=ls", &v4).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, "you must specify at least 1 of stdin, stdout, stderr")
    );
    let (status, _, accepted) = send(router(true), "POST", "/portForward/ns/web", &v4).await;
    assert_eq!((status, accepted), (StatusCode::FORBIDDEN, vec!["portforward.k8s.io".to_owned()]));
}

#[tokio::test]
async fn a_spdy_upgrade_is_switched() {
    let pf = [SPDY[0], SPDY[1], ("x-stream-protocol-version", "portforward.k8s.io")];
    let (status, _, protocol) = send(router(true), "POST", "/portForward/ns/web/0d6e-11", &pf).await;
    assert_eq!((status, protocol), (StatusCode::SWITCHING_PROTOCOLS, vec!["portforward.k8s.io".to_owned()]));
    let exec = [SPDY[0], SPDY[1], ("x-stream-protocol-version", "v3.channel.k8s.io, v4.channel.k8s.io")];
    let (status, _, protocol) =
        send(router(true), "GET", "/exec/ns/web/main?command=ls&input=1&output=1&tty=1", &exec).await;
    assert_eq!((status, protocol), (StatusCode::SWITCHING_PROTOCOLS, vec!["v4.channel.k8s.io".to_owned()]));
}
