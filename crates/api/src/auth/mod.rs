//! Authentication and authorization of the kubelet API, as upstream's
//! kubelet does with `authentication.{x509,webhook,anonymous}` and
//! `authorization.mode: Webhook`.
//!
//! # Authentication, in order
//!
//! 1. A client certificate the TLS layer verified against the client CA
//!    ([`crate::ServerConfig::client_ca`]): CN the user, O the groups. A
//!    certificate from another CA, or expired, fails the handshake.
//! 2. `Authorization: Bearer <token>`, reviewed with TokenReview
//!    ([`TokenReviewer`]); results, valid or not, are cached for
//!    [`Auth::token_ttl`] (2 min) under the token's SHA-256.
//! 3. Otherwise the request is anonymous: with [`Auth::anonymous`] on it
//!    goes on as `system:anonymous` (group `system:unauthenticated`); off
//!    (the default) it gets **401** `Unauthorized`.
//!
//! # Authorization
//!
//! [`Attributes`] maps the request to a verb and `nodes` subresources;
//! each is asked in order with SubjectAccessReview ([`AccessReviewer`])
//! until one is allowed. Answers are cached: allowed 5 min, denied 30 s.
//! Denied: **403** with only `Forbidden (user=…, verb=…, resource=nodes,
//! subresource(s)=[…])`; a review that fails: **500** without detail.
//!
//! Tokens are never logged or stored (only their hash, as a cache key).

mod attributes;
mod cache;
mod reviews;
mod user;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::tls::TlsInfo;
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

pub use attributes::Attributes;
pub use cache::DEFAULT_MAX_ENTRIES;
use cache::TtlCache;
pub use reviews::{Access, AccessReviewer, KubeReviews, ReviewError, TokenReviewer};
pub use user::{ANONYMOUS_USER, AUTHENTICATED_GROUP, UNAUTHENTICATED_GROUP, User};

/// Upstream `authentication.webhook.cacheTTL`.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(120);
/// Upstream `authorization.webhook.cacheAuthorizedTTL`.
pub const DEFAULT_ALLOWED_TTL: Duration = Duration::from_secs(300);
/// Upstream `authorization.webhook.cacheUnauthorizedTTL`.
pub const DEFAULT_DENIED_TTL: Duration = Duration::from_secs(30);
/// Longest bearer token looked at; longer ones are refused unreviewed.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

type AccessKey = (User, String, &'static str);

/// Who may call the kubelet API; see the module docs.
pub struct Auth {
    node_name: String,
    anonymous: bool,
    tokens: Option<Arc<dyn TokenReviewer>>,
    access: Option<Arc<dyn AccessReviewer>>,
    token_ttl: Duration,
    allowed_ttl: Duration,
    denied_ttl: Duration,
    token_cache: TtlCache<[u8; 32], Option<User>>,
    access_cache: TtlCache<AccessKey, bool>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("node_name", &self.node_name)
            .field("anonymous", &self.anonymous)
            .field("tokens", &self.tokens.is_some())
            .field("authorization", &if self.access.is_some() { "Webhook" } else { "AlwaysAllow" })
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// For node `node_name`: client certificates only, no anonymous
    /// access, and every authenticated user allowed (`AlwaysAllow`) until
    /// [`Auth::authorize_with`] is set.
    pub fn new(node_name: impl Into<String>) -> Auth {
        Auth {
            node_name: node_name.into(),
            anonymous: false,
            tokens: None,
            access: None,
            token_ttl: DEFAULT_TOKEN_TTL,
            allowed_ttl: DEFAULT_ALLOWED_TTL,
            denied_ttl: DEFAULT_DENIED_TTL,
            token_cache: TtlCache::new(DEFAULT_MAX_ENTRIES),
            access_cache: TtlCache::new(DEFAULT_MAX_ENTRIES),
        }
    }

    /// Lets unauthenticated requests through as `system:anonymous`
    /// (upstream `--anonymous-auth`; off by default).
    #[must_use]
    pub fn anonymous(mut self, enabled: bool) -> Auth {
        self.anonymous = enabled;
        self
    }

    /// Accepts bearer tokens, checked by `reviewer`.
    #[must_use]
    pub fn tokens(mut self, reviewer: Arc<dyn TokenReviewer>) -> Auth {
        self.tokens = Some(reviewer);
        self
    }

    /// Asks `reviewer` whether each request is allowed (`Webhook` mode).
    #[must_use]
    pub fn authorize_with(mut self, reviewer: Arc<dyn AccessReviewer>) -> Auth {
        self.access = Some(reviewer);
        self
    }

    /// How long token reviews are cached.
    #[must_use]
    pub fn token_ttl(mut self, ttl: Duration) -> Auth {
        self.token_ttl = ttl;
        self
    }

    /// How long allowed and denied access reviews are cached.
    #[must_use]
    pub fn access_ttl(mut self, allowed: Duration, denied: Duration) -> Auth {
        self.allowed_ttl = allowed;
        self.denied_ttl = denied;
        self
    }

    /// The user presenting `credentials`; `None` means 401.
    async fn authenticate(&self, credentials: Credentials) -> Result<Option<User>, ReviewError> {
        if let Some(info) = credentials.tls
            && let Some(leaf) = info.peer_certificates.first()
        {
            // The TLS layer verified the chain; a certificate without a CN names nobody.
            return Ok(User::from_certificate(leaf));
        }
        if let Some(token) = credentials.token.as_deref()
            && let Some(reviewer) = &self.tokens
        {
            if token.len() > MAX_TOKEN_LEN {
                return Ok(None);
            }
            let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if let Some(cached) = self.token_cache.get(&key) {
                return Ok(cached);
            }
            let user = reviewer.review_token(token).await?;
            self.token_cache.insert(key, user.clone(), self.token_ttl);
            return Ok(user);
        }
        Ok(self.anonymous.then(User::anonymous))
    }

    /// Whether `user` may make a request with `attributes`.
    async fn authorize(&self, user: &User, attributes: &Attributes) -> Result<bool, ReviewError> {
        let Some(reviewer) = &self.access else {
            return Ok(true);
        };
        for subresource in &attributes.subresources {
            let key = (user.clone(), attributes.verb.clone(), *subresource);
            let allowed = match self.access_cache.get(&key) {
                Some(allowed) => allowed,
                None => {
                    let access = Access { user, verb: &attributes.verb, subresource, node: &self.node_name };
                    let allowed = reviewer.review_access(access).await?;
                    let ttl = if allowed { self.allowed_ttl } else { self.denied_ttl };
                    self.access_cache.insert(key, allowed, ttl);
                    allowed
                }
            };
            if allowed {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// What a request presents: its connection's TLS details (client
/// certificates) and a bearer token.
struct Credentials {
    tls: Option<Arc<TlsInfo>>,
    token: Option<String>,
}

impl Credentials {
    fn of(request: &Request) -> Credentials {
        Credentials { tls: request.extensions().get::<Arc<TlsInfo>>().cloned(), token: bearer(request) }
    }
}

/// The token of an `Authorization: Bearer` header.
fn bearer(request: &Request) -> Option<String> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// The middleware: authenticates, authorizes, then runs the route.
pub(crate) async fn middleware(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let user = match auth.authenticate(Credentials::of(&request)).await {
        Ok(Some(user)) => user,
        Ok(None) => {
            debug!("unauthenticated request refused");
            return text(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        Err(error) => {
            warn!(error = %crate::error::Chain(&error), "authenticating a request failed");
            return text(StatusCode::UNAUTHORIZED, "Unauthorized");
        }
    };
    let attributes = Attributes::of(request.method(), request.uri().path(), request.headers());
    let describe = || {
        format!(
            "(user={}, verb={}, resource=nodes, subresource(s)=[{}])",
            user.name,
            attributes.verb,
            attributes.subresources.join(" ")
        )
    };
    match auth.authorize(&user, &attributes).await {
        Ok(true) => {
            tracing::Span::current().record("user", user.name.as_str());
            next.run(request).await
        }
        Ok(false) => {
            debug!(user = %user.name, verb = %attributes.verb, subresources = ?attributes.subresources, "forbidden");
            text(StatusCode::FORBIDDEN, &format!("Forbidden {}", describe()))
        }
        Err(error) => {
            warn!(error = %crate::error::Chain(&error), user = %user.name, "authorizing a request failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, &format!("Authorization error {}", describe()))
        }
    }
}

fn text(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
}
