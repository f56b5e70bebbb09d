//! Container probes (readiness, liveness, startup) with the upstream defaults
//! and semantics: `httpGet`, `tcpSocket` and `grpc` against the pod's address.
//!
//! - startup: until it succeeds, liveness and readiness are not run and the
//!   container is not `started`; `failureThreshold` failures kill it.
//! - liveness: `failureThreshold` consecutive failures kill the container (the
//!   restart policy then decides).
//! - readiness: the container is ready after `successThreshold` successes and
//!   unready after `failureThreshold` failures; it never restarts anything.
//!
//! `exec` probes are refused when the container starts, with the reason: a
//! wasm image has no shell or other programs to run as a probe command.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `startupProbe`.
    Startup,
    /// `livenessProbe`.
    Liveness,
    /// `readinessProbe`.
    Readiness,
}

impl Kind {
    /// As upstream names it in events (`Readiness probe failed: ...`) and
    /// in `prober_probe_total`'s `probe_type`.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Handler {
    /// GET `scheme://host:port/path` with headers; 200–399 succeeds.
    Http { https: bool, host: Option<String>, port: u16, path: String, headers: Vec<(String, String)> },
    /// A TCP connection opens.
    Tcp { host: Option<String>, port: u16 },
    /// The gRPC health service answers SERVING.
    Grpc { port: u16, service: String },
}

/// One configured probe, with the upstream defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) kind: Kind,
    pub(crate) handler: Handler,
    pub(crate) initial_delay: Duration,
    pub(crate) period: Duration,
    pub(crate) timeout: Duration,
    pub(crate) success_threshold: u32,
    pub(crate) failure_threshold: u32,
}

/// A probe that cannot be used as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Invalid(pub(crate) String);

/// The probes of `container`, in the order startup, liveness, readiness.
pub(crate) fn specs(container: &Container) -> Result<Vec<Spec>, Invalid> {
    [
        (Kind::Startup, &container.startup_probe),
        (Kind::Liveness, &container.liveness_probe),
        (Kind::Readiness, &container.readiness_probe),
    ]
    .into_iter()
    .filter_map(|(kind, probe)| probe.as_ref().map(|p| spec(kind, p, container)))
    .collect()
}

fn spec(kind: Kind, p: &Probe, container: &Container) -> Result<Spec, Invalid> {
    let secs = |v: Option<i32>, default: u64| Duration::from_secs(v.map_or(default, |s| s.max(0) as u64));
    let count = |v: Option<i32>, default: u32| v.map_or(default, |n| n.max(1) as u32);
    let handler = if let Some(h) = &p.http_get {
        Handler::Http {
            https: h.scheme.as_deref() == Some("HTTPS"),
            host: h.host.clone().filter(|h| !h.is_empty()),
            port: port(&h.port, container)?,
            path: h.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into()),
            headers: h.http_headers.iter().flatten().map(|x| (x.name.clone(), x.value.clone())).collect(),
        }
    } else if let Some(t) = &p.tcp_socket {
        Handler::Tcp { host: t.host.clone().filter(|h| !h.is_empty()), port: port(&t.port, container)? }
    } else if let Some(g) = &p.grpc {
        let port = u16::try_from(g.port).map_err(|_| Invalid(format!("invalid gRPC probe port {}", g.port)))?;
        Handler::Grpc { port, service: g.service.clone().unwrap_or_default() }
    } else if let Some(e) = &p.exec {
        return Err(Invalid(format!(
            "{} probe: exec probes ({:?}) are not supported on a wasm node (a wasm image has no programs to run); \
             use httpGet, tcpSocket or grpc",
            kind.title(),
            e.command.clone().unwrap_or_default()
        )));
    } else {
        return Err(Invalid(format!("{} probe has no handler", kind.title())));
    };
    Ok(Spec {
        kind,
        handler,
        initial_delay: secs(p.initial_delay_seconds, 0),
        period: secs(p.period_seconds, 10).max(Duration::from_secs(1)),
        timeout: secs(p.timeout_seconds, 1).max(Duration::from_secs(1)),
        // Liveness and startup must have a success threshold of 1.
        success_threshold: if kind == Kind::Readiness { count(p.success_threshold, 1) } else { 1 },
        failure_threshold: count(p.failure_threshold, 3),
    })
}

/// A numeric port, or the number of the container port with that name.
fn port(p: &IntOrString, container: &Container) -> Result<u16, Invalid> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| Invalid(format!("invalid probe port {n}"))),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|cp| cp.name.as_deref() == Some(name.as_str()))
            .and_then(|cp| u16::try_from(cp.container_port).ok())
            .ok_or_else(|| Invalid(format!("probe port {name:?} is not a named container port"))),
    }
}

/// How a probe attempt went: `Ok(None)` succeeded, `Ok(Some(warning))`
/// succeeded with a warning (a `ProbeWarning` event, as upstream), `Err`
/// failed with the message upstream would give.
pub(crate) type Outcome = Result<Option<String>, String>;

/// Runs the probe once against `pod_ip` (e.g. `Err("HTTP probe failed with
/// statuscode: 503")`).
pub(crate) async fn run(handler: &Handler, pod_ip: IpAddr, timeout: Duration) -> Outcome {
    let attempt = async {
        match handler {
            Handler::Http { https, host, port, path, headers } => {
                http(*https, host, pod_ip, *port, path, headers).await
            }
            Handler::Tcp { host, port } => {
                let host = host.clone().unwrap_or_else(|| pod_ip.to_string());
                tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map(|_| None)
                    .map_err(|e| format!("dial tcp {host}:{port}: {e}"))
            }
            Handler::Grpc { port, service } => crate::probe_grpc::check(pod_ip, *port, service).await.map(|()| None),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("probe timed out after {}s", timeout.as_secs())),
    }
}

/// Redirects an HTTP probe follows at most (upstream's, from Go's client).
pub(crate) const MAX_REDIRECTS: usize = 10;
/// How much of a response body a probe keeps for its message (upstream's
/// `maxRespBodyLength`).
pub(crate) const MAX_BODY_BYTES: usize = 10 * 1024;

/// The client every HTTP probe of the agent uses, configured as upstream's
/// prober (`pkg/probe/http`): certificates are not verified, no proxy, no
/// keep-alive, and redirects are followed only to the same host name (any
/// port); a redirect elsewhere ends the probe with that redirect response,
/// which counts as a success with a warning.
fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .no_proxy()
                .pool_max_idle_per_host(0)
                .redirect(reqwest::redirect::Policy::custom(same_host_redirects))
                .user_agent(concat!("kube-probe/1.36 wasmlet/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot build the HTTP probe client: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Upstream's `RedirectChecker(followNonLocalRedirects=false)`.
fn same_host_redirects(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let first = attempt.previous().first().and_then(|u| u.host_str().map(str::to_owned));
    if attempt.url().host_str().map(str::to_owned) != first {
        attempt.stop()
    } else if attempt.previous().len() >= MAX_REDIRECTS {
        attempt.error(format!("stopped after {MAX_REDIRECTS} redirects"))
    } else {
        attempt.follow()
    }
}

async fn http(
    https: bool,
    host: &Option<String>,
    pod_ip: IpAddr,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Outcome {
    let host = host.clone().unwrap_or_else(|| pod_ip.to_string());
    let url = format!("{}://{host}:{port}{path}", if https { "https" } else { "http" });
    let mut request = client()?.get(&url);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let mut response = request.send().await.map_err(|e| format!("Get {url:?}: {}", crate::images::error_chain(&e)))?;
    let code = response.status().as_u16();
    if !(200..400).contains(&code) {
        return Err(format!("HTTP probe failed with statuscode: {code}"));
    }
    if code < 300 {
        return Ok(None);
    }
    // A redirect to another host, not followed.
    let mut body = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    body.truncate(MAX_BODY_BYTES);
    Ok(Some(format!("Probe terminated redirects, Response body: {}", String::from_utf8_lossy(&body))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn defaults_and_named_ports() {
        let c = container(serde_json::json!({
            "name": "c",
            "ports": [{ "name": "http", "containerPort": 8080 }],
            "readinessProbe": { "httpGet": { "port": "http", "path": "/ready" }, "successThreshold": 2 },
            "livenessProbe": { "tcpSocket": { "port": 8080 }, "successThreshold": 5, "periodSeconds": 3 },
            "startupProbe": { "grpc": { "port": 9000 } }
        }));
        let specs = specs(&c).unwrap();
        assert_eq!(specs.iter().map(|s| s.kind).collect::<Vec<_>>(), [Kind::Startup, Kind::Liveness, Kind::Readiness]);
        let readiness = &specs[2];
        assert_eq!(
            readiness.handler,
            Handler::Http { https: false, host: None, port: 8080, path: "/ready".into(), headers: vec![] }
        );
        assert_eq!((readiness.period, readiness.timeout), (Duration::from_secs(10), Duration::from_secs(1)));
        assert_eq!((readiness.success_threshold, readiness.failure_threshold), (2, 3));
        assert_eq!(specs[1].success_threshold, 1, "liveness is always 1");
        assert_eq!(specs[1].period, Duration::from_secs(3));
        assert_eq!(specs[0].handler, Handler::Grpc { port: 9000, service: String::new() });
        let bad = container(serde_json::json!({"name": "c", "readinessProbe": { "httpGet": { "port": "nope" } }}));
        assert!(super::specs(&bad).unwrap_err().0.contains("nope"));
        let exec = container(serde_json::json!({"name": "c", "livenessProbe": { "exec": { "command": ["true"] } }}));
        assert!(super::specs(&exec).unwrap_err().0.contains("exec probes"));
    }

    #[tokio::test]
    async fn tcp_and_http_against_real_listeners() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(run(&Handler::Tcp { host: None, port }, ip, Duration::from_secs(1)).await, Ok(None));
        drop(listener);
        assert!(run(&Handler::Tcp { host: None, port }, ip, Duration::from_secs(1)).await.is_err());

        // A one-shot HTTP server answering 503, then 200.
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            for status in ["503 Service Unavailable", "200 OK"] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let reply = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        let h = Handler::Http { https: false, host: None, port, path: "/".into(), headers: vec![] };
        assert_eq!(run(&h, ip, Duration::from_secs(2)).await, Err("HTTP probe failed with statuscode: 503".into()));
        assert_eq!(run(&h, ip, Duration::from_secs(2)).await, Ok(None));
        server.await.unwrap();
    }

    /// An HTTP server on `ip` answering every request with `reply(path)`;
    /// returns its port and a counter of requests served.
    async fn serve(
        ip: &str,
        reply: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else { return };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 2048];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let _ = s.write_all(reply(&path).as_bytes()).await;
            }
        });
        (port, hits)
    }

    fn redirect(to: &str) -> String {
        format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 5\r\nconnection: close\r\n\r\nmoved")
    }

    fn status(code: &str) -> String {
        format!("HTTP/1.1 {code}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
    }

    #[tokio::test]
    async fn redirects_are_followed_to_the_same_host_only() {
        // 127.0.0.2 is another host name on loopback (all of 127/8 is local).
        let (elsewhere, elsewhere_hits) = serve("127.0.0.2", |_| status("200 OK")).await;
        let (same, same_hits) = serve("127.0.0.1", |_| status("503 Service Unavailable")).await;
        let (port, _) = serve("127.0.0.1", move |path| match path {
            "/same-host" => redirect(&format!("http://127.0.0.1:{same}/down")),
            "/other-host" => redirect(&format!("http://127.0.0.2:{elsewhere}/up")),
            _ => redirect("/loop"),
        })
        .await;
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let probe = |path: &str| Handler::Http { https: false, host: None, port, path: path.into(), headers: vec![] };
        let timeout = Duration::from_secs(5);

        // Same host (another port): followed, so the target's 503 fails the probe.
        let same_host = run(&probe("/same-host"), ip, timeout).await;
        assert_eq!(same_host, Err("HTTP probe failed with statuscode: 503".into()));
        assert_eq!(same_hits.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Another host: not followed; the redirect itself is a success with a warning.
        let other_host = run(&probe("/other-host"), ip, timeout).await;
        assert_eq!(other_host, Ok(Some("Probe terminated redirects, Response body: moved".into())));
        assert_eq!(elsewhere_hits.load(std::sync::atomic::Ordering::SeqCst), 0, "the other host was contacted");

        // A redirect loop on the same host stops after the limit.
        let looping = run(&probe("/loop"), ip, timeout).await.unwrap_err();
        assert!(looping.contains("stopped after 10 redirects"), "{looping}");
    }
}
