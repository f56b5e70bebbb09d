//! Authentication and authorization through `oneshot`: 401 without
//! credentials, bearer tokens through a (fake) TokenReview, client
//! certificates, SubjectAccessReview with upstream's attributes, caching,
//! and upstream's 403 message.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum_server::tls::TlsInfo;
use futures::future::BoxFuture;
use tower::ServiceExt;
use wasmlet_api::Auth;
use wasmlet_api::auth::{Access, AccessReviewer, ReviewError, TokenReviewer, User};

use crate::support::{Fake, WAIT, write_log};

/// One access review: user, groups, verb, subresource, node.
type Asked = (String, Vec<String>, String, String, String);

/// Tokens: `alice-token` is alice (group `devs`), `broken` fails the review.
#[derive(Default)]
struct Reviews {
    token_calls: Mutex<Vec<String>>,
    access_calls: Mutex<Vec<Asked>>,
}

impl TokenReviewer for Reviews {
    fn review_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<User>, ReviewError>> {
        self.token_calls.lock().unwrap().push(token.to_owned());
        let result = match token {
            "alice-token" => Ok(Some(User { name: "alice".into(), groups: vec!["devs".into()], ..User::default() })),
            "broken" => Err(ReviewError::new("TokenReview", "connection refused")),
            _ => Ok(None),
        };
        Box::pin(async move { result })
    }
}

impl AccessReviewer for Reviews {
    /// alice may read `nodes/pods` and `nodes/log`; bob anything but
    /// `nodes/metrics`; carol's reviews fail.
    fn review_access<'a>(&'a self, access: Access<'a>) -> BoxFuture<'a, Result<bool, ReviewError>> {
        let user = access.user;
        self.access_calls.lock().unwrap().push((
            user.name.clone(),
            user.groups.clone(),
            access.verb.to_owned(),
            access.subresource.to_owned(),
            access.node.to_owned(),
        ));
        let result = match user.name.as_str() {
            "alice" => Ok(access.verb == "get" && ["pods", "log"].contains(&access.subresource)),
            "bob" => Ok(access.subresource != "metrics"),
            "carol" => Err(ReviewError::new("SubjectAccessReview", "timeout")),
            _ => Ok(false),
        };
        Box::pin(async move { result })
    }
}

async fn app(anonymous: bool) -> (Router, Arc<Reviews>, tempfile::TempDir) {
    let mut fake = Fake::new();
    let (log, _, _) = fake.add("default", "web", "app", false);
    let file = write_log(&log, "hello\n").await;
    drop(file);
    let dir = tempfile::tempdir().unwrap();
    let reviews = Arc::new(Reviews::default());
    let auth = Auth::new("node-1").anonymous(anonymous).tokens(reviews.clone()).authorize_with(reviews.clone());
    let config = wasmlet_api::router::Config { auth: Some(Arc::new(auth)), ..Default::default() };
    (wasmlet_api::router::with_config(Arc::new(fake), config), reviews, dir)
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    cert: Option<Vec<u8>>,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let mut request = request.body(Body::empty()).unwrap();
    if let Some(der) = cert {
        let mut info = TlsInfo::default();
        info.peer_certificates = vec![der];
        request.extensions_mut().insert(Arc::new(info));
    }
    let response = tokio::time::timeout(WAIT, app.clone().oneshot(request)).await.unwrap().unwrap();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn client_cert(cn: &str, org: &str) -> Vec<u8> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.distinguished_name.push(rcgen::DnType::OrganizationName, org);
    params.self_signed(&key).unwrap().der().to_vec()
}

#[tokio::test]
async fn anonymous_requests_get_401_everywhere() {
    let (app, reviews, _dir) = app(false).await;
    for path in ["/healthz", "/pods", "/containerLogs/default/web/app", "/nope", "/containerLogs/../../etc/passwd"] {
        assert_eq!(call(&app, "GET", path, None, None).await, (StatusCode::UNAUTHORIZED, "Unauthorized\n".into()));
    }
    assert_eq!(call(&app, "GET", "/pods", Some("wrong"), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(call(&app, "GET", "/pods", Some("broken"), None).await.0, StatusCode::UNAUTHORIZED);
    let huge = "x".repeat(wasmlet_api::auth::MAX_TOKEN_LEN + 1);
    assert_eq!(call(&app, "GET", "/pods", Some(&huge), None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(reviews.token_calls.lock().unwrap().len(), 2, "oversized tokens are not reviewed");
    assert!(reviews.access_calls.lock().unwrap().is_empty(), "nothing is authorized for nobody");
}

#[tokio::test]
async fn anonymous_auth_makes_requests_system_anonymous() {
    let (app, reviews, _dir) = app(true).await;
    let (status, body) = call(&app, "GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "Forbidden (user=system:anonymous, verb=get, resource=nodes, subresource(s)=[healthz proxy])\n");
    let calls = reviews.access_calls.lock().unwrap().clone();
    assert_eq!(calls[0].1, ["system:unauthenticated"]);
}

#[tokio::test]
async fn tokens_are_reviewed_and_access_follows_upstream_attributes() {
    let (app, reviews, _dir) = app(false).await;
    let (status, body) = call(&app, "GET", "/pods", Some("alice-token"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&app, "GET", "/containerLogs/default/web/app", Some("alice-token"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[proxy])\n");
    let (status, body) = call(&app, "POST", "/exec/default/web/app?command=ls", Some("alice-token"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "Forbidden (user=alice, verb=create, resource=nodes, subresource(s)=[proxy])\n");
    let (status, _) = call(&app, "GET", "/stats/summary", Some("alice-token"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let calls = reviews.access_calls.lock().unwrap().clone();
    let asked: Vec<(&str, &str, &str)> = calls.iter().map(|c| (c.2.as_str(), c.3.as_str(), c.4.as_str())).collect();
    assert_eq!(
        asked,
        [
            ("get", "pods", "node-1"),
            ("get", "proxy", "node-1"),
            ("create", "proxy", "node-1"),
            ("get", "stats", "node-1")
        ]
    );
    assert_eq!(calls[0].0, "alice");
    assert_eq!(calls[0].1, ["devs"]);

    // Everything is cached now: the same requests ask nobody again.
    let tokens = reviews.token_calls.lock().unwrap().len();
    assert_eq!(tokens, 1, "one review per token");
    for _ in 0..3 {
        assert_eq!(call(&app, "GET", "/pods", Some("alice-token"), None).await.0, StatusCode::OK);
        assert_eq!(call(&app, "GET", "/stats/summary", Some("alice-token"), None).await.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(reviews.token_calls.lock().unwrap().len(), 1);
    assert_eq!(reviews.access_calls.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn client_certificates_name_the_user_and_groups() {
    let (app, reviews, _dir) = app(false).await;
    let bob = client_cert("bob", "ops");
    let (status, body) = call(&app, "GET", "/containerLogs/default/web/app", None, Some(bob.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "hello\n");
    // A certificate wins over a token, as upstream's union authenticator does first.
    let (status, body) = call(&app, "GET", "/metrics", Some("alice-token"), Some(bob)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, "Forbidden (user=bob, verb=get, resource=nodes, subresource(s)=[metrics])\n");
    let calls = reviews.access_calls.lock().unwrap().clone();
    assert_eq!(calls[0].1, ["ops", "system:authenticated"]);
    assert!(reviews.token_calls.lock().unwrap().is_empty());

    // A review that fails is a 500 that says nothing of why.
    let carol = client_cert("carol", "x");
    let (status, body) = call(&app, "GET", "/pods", None, Some(carol)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!body.contains("timeout"), "{body}");
}
