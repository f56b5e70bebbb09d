//! `rest_client_requests_total`: every request of the node's API client
//! counted by status code, method and host, as client-go counts them.
//!
//! The node's [`kube::Client`] is wrapped in another one whose service
//! sends through the original ([`kube::Client::send`] returns any status as
//! a response), so the count covers every caller — watches, patches,
//! events, leases — without touching them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use kube::client::Body;
use wasmlet_metrics::Metrics;

/// `client`, with its requests counted in `metrics` under `host` (the
/// apiserver's `host:port`).
pub(crate) fn counted(client: kube::Client, metrics: Arc<Metrics>, host: String) -> kube::Client {
    let namespace = client.default_namespace().to_owned();
    kube::Client::new(Counted { inner: client, metrics, host }, namespace)
}

#[derive(Clone)]
struct Counted {
    inner: kube::Client,
    metrics: Arc<Metrics>,
    host: String,
}

impl tower::Service<http::Request<Body>> for Counted {
    type Response = http::Response<Body>;
    type Error = kube::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // `send` waits for the inner client's readiness itself.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Counted { inner, metrics, host } = self.clone();
        let method = request.method().as_str().to_owned();
        Box::pin(async move {
            let result = inner.send(request).await;
            let code = match &result {
                Ok(response) => response.status().as_u16().to_string(),
                // client-go's label for a request that got no response.
                Err(_) => "<error>".to_owned(),
            };
            metrics.rest_client_request(code, host, method);
            result
        })
    }
}

/// The apiserver's `host:port` in the kubeconfig at `path` (for the `host`
/// label); `unknown` if it cannot be read.
pub(crate) fn api_host(path: &std::path::Path) -> String {
    let server = kube::config::Kubeconfig::read_from(path).ok().and_then(|kc| {
        let context = kc.current_context.as_deref()?;
        let cluster = kc.contexts.iter().find(|c| c.name == context)?.context.as_ref()?.cluster.clone();
        kc.clusters.iter().find(|c| c.name == cluster)?.cluster.as_ref()?.server.clone()
    });
    server
        .and_then(|s| s.parse::<http::Uri>().ok())
        .and_then(|uri| uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "unknown".to_owned())
}
