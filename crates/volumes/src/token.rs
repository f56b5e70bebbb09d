//! Service-account tokens for `projected` volumes: the TokenRequest API
//! ([`ApiTokens`]) behind the [`TokenIssuer`] seam, and when a token must be
//! renewed ([`Token::refresh_at`], upstream `token_manager.requiresRefresh`).
//!
//! A token is requested with `POST
//! /api/v1/namespaces/<ns>/serviceaccounts/<sa>/token`, the projection's
//! `audience` and `expirationSeconds`, and bound to the pod
//! (`boundObjectRef {apiVersion: v1, kind: Pod, name, uid}`), so it dies with
//! the pod. The apiserver may issue a longer-lived token than asked (the
//! admission-injected 3607 s becomes a year); refresh follows what the
//! response says: once the token is older than [`MAX_TOKEN_AGE`] or within
//! 20 % of its TTL of expiring, minus a jitter of up to [`MAX_JITTER`].

use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::PostParams;

/// A token is renewed once it is this old, whatever its TTL.
pub const MAX_TOKEN_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// The largest random advance of a renewal.
pub const MAX_JITTER: Duration = Duration::from_secs(10);

/// What a projected `serviceAccountToken` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenSpec {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's service account.
    pub service_account: String,
    /// The audiences (empty: the apiserver's).
    pub audiences: Vec<String>,
    /// The requested lifetime (`None`: the apiserver's default).
    pub expiration_seconds: Option<i64>,
    /// The pod the token is bound to.
    pub pod_name: String,
    /// Its UID.
    pub pod_uid: String,
}

/// The share of a token's lifetime after which it is renewed (upstream 80 %).
pub const DEFAULT_REFRESH_FRACTION: f64 = 0.8;

/// An issued token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The JWT.
    pub token: String,
    /// When it expires, as the apiserver reported it.
    pub expiration: SystemTime,
    /// Its lifetime, as the apiserver reported it (`spec.expirationSeconds`).
    pub ttl: Duration,
}

impl Token {
    /// When the token should be renewed: the earlier of "issued + 24 h" and
    /// "20 % of the TTL before expiry", `jitter` earlier.
    pub fn refresh_at(&self, jitter: Duration) -> SystemTime {
        self.refresh_at_fraction(jitter, DEFAULT_REFRESH_FRACTION)
    }

    /// Like [`refresh_at`](Self::refresh_at), renewing at `fraction` of the
    /// TTL (upstream: 0.8) instead; clamped to 0.01..=1.
    pub fn refresh_at_fraction(&self, jitter: Duration, fraction: f64) -> SystemTime {
        let issued = self.expiration.checked_sub(self.ttl).unwrap_or(SystemTime::UNIX_EPOCH);
        let by_age = issued + MAX_TOKEN_AGE;
        let by_ttl = issued + self.ttl.mul_f64(fraction.clamp(0.01, 1.0));
        let at = by_age.min(by_ttl);
        at.checked_sub(jitter).unwrap_or(at)
    }

    /// How long from `now` until [`refresh_at_fraction`](Self::refresh_at_fraction) (zero if due).
    pub fn refresh_in(&self, now: SystemTime, jitter: Duration, fraction: f64) -> Duration {
        self.refresh_at_fraction(jitter, fraction).duration_since(now).unwrap_or(Duration::ZERO)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("expiration", &self.expiration).field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// A random jitter in `[0, MAX_JITTER)`, whole seconds as upstream.
pub(crate) fn jitter() -> Duration {
    Duration::from_secs(rand::random_range(0..MAX_JITTER.as_secs()))
}

/// Why a token could not be issued (upstream's wording).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The TokenRequest failed.
    #[error("failed to fetch token: {reason}")]
    Request {
        /// The apiserver's message.
        reason: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
    /// The response carried no usable expiry.
    #[error("failed to fetch token: the TokenRequest response has no expiration")]
    NoExpiration,
}

/// Issues tokens; [`ApiTokens`] in production, a fake in tests.
pub trait TokenIssuer: Send + Sync + 'static {
    /// Requests a token for `spec`.
    fn issue<'a>(&'a self, spec: &'a TokenSpec) -> BoxFuture<'a, Result<Token, TokenError>>;
}

/// Tokens from the TokenRequest API, with the node's credentials (the Node
/// authorizer allows it for service accounts of pods bound to the node, and
/// only for audiences that the pod's volumes name).
#[derive(Clone)]
pub struct ApiTokens {
    client: kube::Client,
}

impl ApiTokens {
    /// Issues with `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

impl TokenIssuer for ApiTokens {
    fn issue<'a>(&'a self, spec: &'a TokenSpec) -> BoxFuture<'a, Result<Token, TokenError>> {
        Box::pin(async move {
            let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &spec.namespace);
            let request = TokenRequest {
                spec: Some(TokenRequestSpec {
                    audiences: Some(spec.audiences.clone()).filter(|a| !a.is_empty()),
                    expiration_seconds: spec.expiration_seconds,
                    bound_object_ref: Some(BoundObjectReference {
                        api_version: Some("v1".into()),
                        kind: Some("Pod".into()),
                        name: Some(spec.pod_name.clone()),
                        uid: Some(spec.pod_uid.clone()),
                    }),
                }),
                ..Default::default()
            };
            let response = api
                .create_token_request(&spec.service_account, &PostParams::default(), &request)
                .await
                .map_err(|source| TokenError::Request { reason: api_message(&source), source })?;
            let status = response.status.ok_or(TokenError::NoExpiration)?;
            let ttl = response.spec.and_then(|s| s.expiration_seconds).ok_or(TokenError::NoExpiration)?;
            let ttl = Duration::from_secs(u64::try_from(ttl).map_err(|_| TokenError::NoExpiration)?);
            let expiration = status.expiration_timestamp.ok_or(TokenError::NoExpiration)?;
            let token = status.token.ok_or(TokenError::NoExpiration)?;
            Ok(Token { token, expiration: SystemTime::from(expiration.0), ttl })
        })
    }
}

/// The apiserver's message of an API error, else the error's text.
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

impl std::fmt::Debug for ApiTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiTokens")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(issued: SystemTime, ttl_secs: u64) -> Token {
        let ttl = Duration::from_secs(ttl_secs);
        Token { token: "t".into(), expiration: issued + ttl, ttl }
    }

    #[test]
    fn refresh_at_80_percent_of_the_ttl() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let t = token(t0, 3600);
        assert_eq!(t.refresh_at(Duration::ZERO), t0 + Duration::from_secs(2880));
        assert_eq!(t.refresh_at(Duration::from_secs(7)), t0 + Duration::from_secs(2873));
        assert_eq!(t.refresh_in(t0, Duration::ZERO, DEFAULT_REFRESH_FRACTION), Duration::from_secs(2880));
        assert_eq!(t.refresh_in(t0, Duration::ZERO, 0.01), Duration::from_secs(36));
        assert_eq!(
            t.refresh_in(t0 + Duration::from_secs(4000), Duration::ZERO, DEFAULT_REFRESH_FRACTION),
            Duration::ZERO
        );
        let short = token(t0, 600);
        assert_eq!(short.refresh_at(Duration::ZERO), t0 + Duration::from_secs(480));
    }

    #[test]
    fn long_lived_tokens_are_renewed_after_a_day() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let year = token(t0, 365 * 24 * 3600);
        assert_eq!(year.refresh_at(Duration::ZERO), t0 + MAX_TOKEN_AGE);
    }

    #[test]
    fn jitter_is_bounded() {
        for _ in 0..100 {
            assert!(jitter() < MAX_JITTER);
        }
    }
}
