//! Projected service-account tokens from the TokenRequest API with a node's
//! credentials: the injected `kube-api-access-*` volume and a custom audience,
//! checked with a TokenReview by the admin.
//!
//! Renewal timing is covered in virtual time by the crate's unit tests (the
//! API's minimum lifetime is 600 s); here the token is checked to be fresh,
//! valid, bound to the pod and for the right audience.
//!
//! Run with: `eval "$(cargo xtask testbed up)"` then
//! `cargo test -p wasmlet-e2e --test volumes_token`.

mod volumes_common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::PostParams;
use volumes_common::TestNode;

const AUDIENCE: &str = "wasmlet-e2e";

async fn review(node: &TestNode, token: &str, audiences: Option<Vec<String>>) -> TokenReviewStatus {
    let review = TokenReview { spec: TokenReviewSpec { token: token.to_owned(), audiences }, ..Default::default() };
    let api: Api<TokenReview> = Api::all(node.admin.clone());
    api.create(&PostParams::default(), &review).await.unwrap().status.unwrap()
}

fn fresh(path: &Path) {
    let age = SystemTime::now().duration_since(std::fs::metadata(path).unwrap().modified().unwrap()).unwrap();
    assert!(age < Duration::from_secs(120), "{} is {age:?} old", path.display());
    assert_eq!(std::fs::metadata(path).unwrap().permissions().mode() & 0o777, 0o640);
}

#[tokio::test]
async fn projected_tokens_are_bound_to_the_pod() {
    let node = TestNode::new("vol-token").await;
    let pod = node
        .pod(
            "p",
            serde_json::json!({"volumes": [{"name": "vault-token", "projected": {"sources": [
                {"serviceAccountToken": {"path": "token", "audience": AUDIENCE, "expirationSeconds": 600}}
            ]}}]}),
        )
        .await;
    let injected =
        pod.spec.as_ref().unwrap().volumes.as_ref().unwrap().iter().find(|v| v.name.starts_with("kube-api-access-"));
    let injected = injected.expect("ServiceAccount admission injects kube-api-access-*").name.clone();
    let volumes = node.volumes();
    let prepared = node.prepare(&volumes, &pod, &node.pod_dir(&pod)).await;
    let uid = pod.metadata.uid.clone().unwrap();
    let ns = node.ns.name().to_owned();

    let api_access = prepared.host_path(&injected).unwrap();
    fresh(&api_access.join("token"));
    let root_ca: ConfigMap = node.ns.api::<ConfigMap>().get("kube-root-ca.crt").await.unwrap();
    let ca = std::fs::read_to_string(api_access.join("ca.crt")).unwrap();
    assert_eq!(Some(&ca), root_ca.data.as_ref().unwrap().get("ca.crt"));
    assert_eq!(std::fs::read_to_string(api_access.join("namespace")).unwrap(), ns);
    let token = std::fs::read_to_string(api_access.join("token")).unwrap();
    let status = review(&node, &token, None).await;
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    let user = status.user.unwrap();
    assert_eq!(user.username.as_deref(), Some(format!("system:serviceaccount:{ns}:default").as_str()));
    let extra = user.extra.unwrap_or_default();
    assert_eq!(extra.get("authentication.kubernetes.io/pod-name"), Some(&vec!["p".to_owned()]));
    assert_eq!(extra.get("authentication.kubernetes.io/pod-uid"), Some(&vec![uid.clone()]));

    let custom = prepared.host_path("vault-token").unwrap().join("token");
    fresh(&custom);
    let token = std::fs::read_to_string(&custom).unwrap();
    let status = review(&node, &token, Some(vec![AUDIENCE.to_owned()])).await;
    assert_eq!(status.authenticated, Some(true), "{status:?}");
    assert_eq!(status.audiences, Some(vec![AUDIENCE.to_owned()]));
    let pod_uid = status.user.unwrap().extra.unwrap_or_default().remove("authentication.kubernetes.io/pod-uid");
    assert_eq!(pod_uid, Some(vec![uid]));
    let status = review(&node, &token, None).await;
    assert_ne!(status.authenticated, Some(true), "not valid for the apiserver's own audience");
    prepared.cleanup().unwrap();
    node.stop().await;
}
