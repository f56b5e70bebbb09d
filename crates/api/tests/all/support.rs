//! A fake provider whose containers have real log files, and request
//! helpers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::FutureExt;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use wasmlet_api::{LogSource, LookupError, Provider};
use wasmlet_logs::{LogFile, LogLimits};

/// Upper bound for any wait on a condition.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// One container's attempts.
pub(crate) struct Attempts {
    pub(crate) current: PathBuf,
    pub(crate) previous: Option<PathBuf>,
    pub(crate) finished: CancellationToken,
    pub(crate) waiting: Option<String>,
}

pub(crate) struct Fake {
    pub(crate) dir: tempfile::TempDir,
    pods: Vec<Pod>,
    containers: HashMap<(String, String, String), Attempts>,
    /// Counts `container_log` calls.
    pub(crate) calls: watch::Sender<usize>,
}

impl Fake {
    pub(crate) fn new() -> Self {
        Fake {
            dir: tempfile::tempdir().unwrap(),
            pods: Vec::new(),
            containers: HashMap::new(),
            calls: watch::Sender::new(0),
        }
    }

    /// Adds a pod with one container; returns its log paths (current,
    /// previous) and the token that ends the current attempt.
    pub(crate) fn add(
        &mut self,
        namespace: &str,
        pod: &str,
        container: &str,
        with_previous: bool,
    ) -> (PathBuf, PathBuf, CancellationToken) {
        self.pods.push(Pod {
            metadata: ObjectMeta { name: Some(pod.into()), namespace: Some(namespace.into()), ..ObjectMeta::default() },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: container.into(),
                    image: Some("registry.example/app:1".into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            ..Pod::default()
        });
        let dir = self.dir.path().join(format!("{namespace}_{pod}/{container}"));
        let (current, previous) = (dir.join("1.log"), dir.join("0.log"));
        let finished = CancellationToken::new();
        let attempts = Attempts {
            current: current.clone(),
            previous: with_previous.then(|| previous.clone()),
            finished: finished.clone(),
            waiting: None,
        };
        let key = (namespace.into(), pod.into(), container.into());
        self.containers.insert(key, attempts);
        (current, previous, finished)
    }

    pub(crate) fn set_waiting(&mut self, namespace: &str, pod: &str, container: &str, reason: &str) {
        let key = (namespace.into(), pod.into(), container.into());
        if let Some(a) = self.containers.get_mut(&key) {
            a.waiting = Some(reason.into());
        }
    }
}

impl Provider for Fake {
    fn pods(&self) -> Vec<Pod> {
        self.pods.clone()
    }

    fn container_log(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<LogSource, LookupError> {
        self.calls.send_modify(|n| *n += 1);
        let known_pod = self
            .pods
            .iter()
            .any(|p| p.metadata.namespace.as_deref() == Some(namespace) && p.metadata.name.as_deref() == Some(pod));
        if !known_pod {
            return Err(LookupError::PodNotFound);
        }
        let key = (namespace.to_owned(), pod.to_owned(), container.to_owned());
        let attempts = self.containers.get(&key).ok_or(LookupError::ContainerNotFound)?;
        if let Some(reason) = &attempts.waiting {
            return Err(LookupError::NotStarted { reason: reason.clone() });
        }
        if previous {
            let path = attempts.previous.clone().ok_or(LookupError::NoPreviousAttempt)?;
            return Ok(LogSource { path, finished: futures::future::ready(()).boxed() });
        }
        Ok(LogSource { path: attempts.current.clone(), finished: attempts.finished.clone().cancelled_owned().boxed() })
    }
}

/// Writes `text` to stdout of a fresh log file at `path`.
pub(crate) async fn write_log(path: &std::path::Path, text: &str) -> LogFile {
    use tokio::io::AsyncWriteExt;
    let file = LogFile::create(path, LogLimits::default()).await.unwrap();
    let mut out = file.writer(wasmlet_logs::Stream::Stdout);
    out.write_all(text.as_bytes()).await.unwrap();
    out.flush().await.unwrap();
    file.flush().await;
    file
}

pub(crate) fn app(fake: Fake) -> (Router, Arc<Fake>) {
    let fake = Arc::new(fake);
    (wasmlet_api::router(fake.clone()), fake)
}

/// Sends a request; returns the status, the content type and the body.
pub(crate) async fn send(app: &Router, method: &str, uri: &str) -> (StatusCode, String, String) {
    let request = Request::builder().method(method).uri(uri).body(Body::empty()).unwrap();
    let response = tokio::time::timeout(WAIT, app.clone().oneshot(request)).await.expect("a response").unwrap();
    let status = response.status();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = tokio::time::timeout(WAIT, axum::body::to_bytes(response.into_body(), usize::MAX))
        .await
        .expect("the body ends")
        .unwrap();
    (status, content_type, String::from_utf8(body.to_vec()).unwrap())
}

pub(crate) async fn get(app: &Router, uri: &str) -> (StatusCode, String) {
    let (status, _, body) = send(app, "GET", uri).await;
    (status, body)
}
