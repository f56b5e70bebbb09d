//! What a request asks for, in SubjectAccessReview terms: upstream's
//! `nodeAuthorizerAttributesGetter` (`k/k pkg/kubelet/server/auth.go`) with
//! `KubeletFineGrainedAuthz` (GA in 1.36).
//!
//! | path | subresources checked, in order (any one allowed suffices) |
//! |---|---|
//! | `/stats`, `/stats/…` | `stats` |
//! | `/metrics`, `/metrics/…` | `metrics` |
//! | `/logs`, `/logs/…` | `log` |
//! | `/checkpoint/…` | `checkpoint` |
//! | `/pods`, `/runningpods/` | `pods`, then `proxy` |
//! | `/healthz…` | `healthz`, then `proxy` |
//! | `/configz` | `configz`, then `proxy` |
//! | everything else (`/containerLogs`, `/exec`, `/attach`, `/portForward`, `/run`, `/spec`, …) | `proxy` |
//!
//! The resource is always `nodes` (API group `""`), the name the node's.
//! The verb comes from the method: GET/HEAD → `get`, POST → `create`,
//! PUT → `update`, PATCH → `patch`, DELETE → `delete`. A streaming upgrade
//! (a request with an `Upgrade` header: WebSocket or SPDY, for exec,
//! attach and port-forward) is checked as `create` whatever its method, as
//! the API server checks `pods/exec` WebSocket upgrades since 1.35.

use axum::http::{HeaderMap, Method, header};

/// The attributes of one request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// `get`, `create`, `update`, `patch`, `delete` (or the method, lower-cased, for others).
    pub verb: String,
    /// Subresources of `nodes` to ask about, in order.
    pub subresources: Vec<&'static str>,
}

impl Attributes {
    /// The attributes of a request for `path` with `method` and `headers`.
    pub fn of(method: &Method, path: &str, headers: &HeaderMap) -> Attributes {
        let upgrade = headers.contains_key(header::UPGRADE);
        let verb = if upgrade { "create".to_owned() } else { verb(method) };
        Attributes { verb, subresources: subresources(path) }
    }
}

fn verb(method: &Method) -> String {
    match *method {
        Method::GET | Method::HEAD => "get".to_owned(),
        Method::POST => "create".to_owned(),
        Method::PUT => "update".to_owned(),
        Method::PATCH => "patch".to_owned(),
        Method::DELETE => "delete".to_owned(),
        ref other => other.as_str().to_ascii_lowercase(),
    }
}

/// Whether `path` is `root` or below it (upstream `isSubpath`).
fn is_subpath(path: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    path == root || path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'))
}

fn subresources(path: &str) -> Vec<&'static str> {
    let mut out = Vec::with_capacity(2);
    if is_subpath(path, "/pods") || is_subpath(path, "/runningpods") {
        out.push("pods");
    } else if is_subpath(path, "/healthz") {
        out.push("healthz");
    } else if is_subpath(path, "/configz") {
        out.push("configz");
    }
    out.push(if is_subpath(path, "/stats") {
        "stats"
    } else if is_subpath(path, "/metrics") {
        "metrics"
    } else if is_subpath(path, "/logs") {
        "log"
    } else if is_subpath(path, "/checkpoint") {
        "checkpoint"
    } else {
        "proxy"
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(path: &str) -> Vec<&'static str> {
        Attributes::of(&Method::GET, path, &HeaderMap::new()).subresources
    }

    #[test]
    fn paths_map_to_upstream_subresources() {
        assert_eq!(subs("/stats/summary"), ["stats"]);
        assert_eq!(subs("/stats"), ["stats"]);
        assert_eq!(subs("/metrics"), ["metrics"]);
        assert_eq!(subs("/metrics/resource"), ["metrics"]);
        assert_eq!(subs("/metrics/cadvisor"), ["metrics"]);
        assert_eq!(subs("/logs/"), ["log"]);
        assert_eq!(subs("/logs/../etc"), ["log"]);
        assert_eq!(subs("/pods"), ["pods", "proxy"]);
        assert_eq!(subs("/runningpods/"), ["pods", "proxy"]);
        assert_eq!(subs("/healthz"), ["healthz", "proxy"]);
        assert_eq!(subs("/configz"), ["configz", "proxy"]);
        for path in ["/containerLogs/ns/p/c", "/exec/ns/p/c", "/attach/ns/p/c", "/portForward/ns/p", "/run/ns/p/c"] {
            assert_eq!(subs(path), ["proxy"], "{path}");
        }
        // Prefixes only match whole segments.
        assert_eq!(subs("/statsx"), ["proxy"]);
        assert_eq!(subs("/podsfoo"), ["proxy"]);
        assert_eq!(subs("/spec/"), ["proxy"]);
    }

    #[test]
    fn verbs_follow_the_method_and_upgrades_create() {
        let none = HeaderMap::new();
        let verb = |m: Method| Attributes::of(&m, "/exec/a/b/c", &none).verb;
        assert_eq!(verb(Method::GET), "get");
        assert_eq!(verb(Method::HEAD), "get");
        assert_eq!(verb(Method::POST), "create");
        assert_eq!(verb(Method::PUT), "update");
        assert_eq!(verb(Method::PATCH), "patch");
        assert_eq!(verb(Method::DELETE), "delete");
        let mut upgrade = HeaderMap::new();
        upgrade.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert_eq!(Attributes::of(&Method::GET, "/exec/a/b/c", &upgrade).verb, "create");
    }
}
