//! A stand-in API server for unit tests of the API writers: a `kube::Client`
//! whose requests are recorded and answered by a closure.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use kube::client::Body;

/// One request as received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) body: serde_json::Value,
}

type Answer = Arc<dyn Fn(&Seen) -> BoxFuture<'static, (u16, serde_json::Value)> + Send + Sync>;

/// The requests a mock client received, in order.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<Mutex<Vec<Seen>>>);

impl Log {
    pub(crate) fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A client answered by `answer` (status code, JSON body), and its log.
pub(crate) fn client(
    answer: impl Fn(&Seen) -> BoxFuture<'static, (u16, serde_json::Value)> + Send + Sync + 'static,
) -> (kube::Client, Log) {
    let log = Log::default();
    let service = Mock { answer: Arc::new(answer), log: log.clone() };
    (kube::Client::new(service, "default"), log)
}

#[derive(Clone)]
struct Mock {
    answer: Answer,
    log: Log,
}

impl tower::Service<http::Request<Body>> for Mock {
    type Response = http::Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let (answer, log) = (self.answer.clone(), self.log.clone());
        Box::pin(async move {
            let method = request.method().to_string();
            let path = request.uri().path().to_owned();
            let bytes = request.into_body().collect_bytes().await.unwrap_or_default();
            let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            let seen = Seen { method, path, body };
            log.0.lock().unwrap_or_else(|p| p.into_inner()).push(seen.clone());
            let (code, json) = answer(&seen).await;
            let mut response = http::Response::new(Body::from(serde_json::to_vec(&json).unwrap_or_default()));
            *response.status_mut() =
                http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/json"));
            Ok(response)
        })
    }
}
