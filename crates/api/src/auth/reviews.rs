//! The two questions the API server answers for the kubelet API —
//! [`TokenReviewer`] (who holds this bearer token?) and [`AccessReviewer`]
//! (may this user do this?) — and [`KubeReviews`], which asks them with
//! `authentication.k8s.io/v1` TokenReview and `authorization.k8s.io/v1`
//! SubjectAccessReview through the node's client.

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use kube::Api;
use kube::api::PostParams;

use super::User;

/// A review could not be made (the API server is unreachable, refused, ...).
#[derive(Debug, thiserror::Error)]
#[error("{what} failed")]
pub struct ReviewError {
    what: &'static str,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl ReviewError {
    /// A failed review of kind `what`.
    pub fn new(what: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ReviewError {
        ReviewError { what, source: source.into() }
    }
}

/// Checks bearer tokens.
pub trait TokenReviewer: Send + Sync + 'static {
    /// The user holding `token`; `None` if the token is not valid.
    fn review_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<User>, ReviewError>>;
}

/// One access question: may `user` do `verb` on `nodes/<subresource>` named `node`?
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    /// Who.
    pub user: &'a User,
    /// The verb.
    pub verb: &'a str,
    /// The subresource of `nodes`.
    pub subresource: &'a str,
    /// The node's name.
    pub node: &'a str,
}

/// Decides access.
pub trait AccessReviewer: Send + Sync + 'static {
    /// Whether the access is allowed.
    fn review_access<'a>(&'a self, access: Access<'a>) -> BoxFuture<'a, Result<bool, ReviewError>>;
}

/// Reviews through the API server, with the node's own client (the Node
/// authorizer lets nodes create both kinds of review).
#[derive(Clone)]
pub struct KubeReviews {
    client: kube::Client,
}

impl std::fmt::Debug for KubeReviews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeReviews").finish_non_exhaustive()
    }
}

impl KubeReviews {
    /// Reviews made with `client`.
    pub fn new(client: kube::Client) -> KubeReviews {
        KubeReviews { client }
    }
}

impl TokenReviewer for KubeReviews {
    fn review_token<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Option<User>, ReviewError>> {
        Box::pin(async move {
            let api: Api<TokenReview> = Api::all(self.client.clone());
            let review = TokenReview {
                spec: TokenReviewSpec { token: token.to_owned(), audiences: None },
                ..TokenReview::default()
            };
            let reviewed =
                api.create(&PostParams::default(), &review).await.map_err(|e| ReviewError::new("TokenReview", e))?;
            let Some(status) = reviewed.status.filter(|s| s.authenticated == Some(true)) else {
                return Ok(None);
            };
            let Some(info) = status.user.filter(|u| u.username.as_deref().is_some_and(|n| !n.is_empty())) else {
                return Ok(None);
            };
            Ok(Some(User {
                name: info.username.unwrap_or_default(),
                uid: info.uid.filter(|u| !u.is_empty()),
                groups: info.groups.unwrap_or_default(),
                extra: info.extra.unwrap_or_default().into_iter().collect(),
            }))
        })
    }
}

impl AccessReviewer for KubeReviews {
    fn review_access<'a>(&'a self, access: Access<'a>) -> BoxFuture<'a, Result<bool, ReviewError>> {
        Box::pin(async move {
            let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
            let user = access.user;
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user.name.clone()),
                    uid: user.uid.clone(),
                    groups: Some(user.groups.clone()),
                    extra: (!user.extra.is_empty()).then(|| user.extra.clone().into_iter().collect()),
                    resource_attributes: Some(ResourceAttributes {
                        group: Some(String::new()),
                        resource: Some("nodes".to_owned()),
                        subresource: Some(access.subresource.to_owned()),
                        name: Some(access.node.to_owned()),
                        verb: Some(access.verb.to_owned()),
                        ..ResourceAttributes::default()
                    }),
                    ..SubjectAccessReviewSpec::default()
                },
                ..SubjectAccessReview::default()
            };
            let reviewed = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| ReviewError::new("SubjectAccessReview", e))?;
            Ok(reviewed.status.is_some_and(|s| s.allowed && s.denied != Some(true)))
        })
    }
}
