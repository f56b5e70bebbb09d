//! Least privilege (issue 6): what a node's own credentials — the only ones
//! wasmlet runs with — may and may not do under the Node authorizer and
//! NodeRestriction. It reads the Secrets and ConfigMaps of pods bound to it
//! and nothing else, may not touch another Node or another node's pods,
//! and may create the TokenReviews and SubjectAccessReviews its kubelet
//! API needs.
//!
//! Run with: `eval "$(cargo xtask testbed up)"` then
//! `cargo test -p wasmlet-e2e --test security_node_authz`.

use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use wasmlet_testkit::{Namespace, admin_client, testbed};

fn forbidden<T: std::fmt::Debug>(result: Result<T, kube::Error>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403, got {other:?}"),
    }
}

fn suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

#[tokio::test]
async fn node_credentials_reach_only_their_own_pods_objects() {
    let tb = testbed().await;
    let admin = admin_client().await;
    let (mine, other) = (format!("lp-mine-{}", suffix()), format!("lp-other-{}", suffix()));
    let creds = tb.node_credentials(&mine, &[]).unwrap();
    let node = wasmlet_testbed::client_from_kubeconfig(&creds.kubeconfig).await.unwrap();
    let nodes: Api<Node> = Api::all(admin.clone());
    for name in [&mine, &other] {
        let n: Node = serde_json::from_value(json!({ "metadata": { "name": name } })).unwrap();
        nodes.create(&PostParams::default(), &n).await.unwrap();
    }

    let ns = Namespace::create(&admin, "least-priv").await;
    for name in ["s-mine", "s-other", "s-unused"] {
        let s: Secret =
            serde_json::from_value(json!({ "metadata": { "name": name }, "stringData": { "k": "v" } })).unwrap();
        ns.api::<Secret>().create(&PostParams::default(), &s).await.unwrap();
    }
    for name in ["cm-mine", "cm-unused"] {
        let c: ConfigMap =
            serde_json::from_value(json!({ "metadata": { "name": name }, "data": { "k": "v" } })).unwrap();
        ns.api::<ConfigMap>().create(&PostParams::default(), &c).await.unwrap();
    }
    let pod = |name: &str, node: &str, secret: &str, cm: Option<&str>| -> Pod {
        let mut p = json!({
            "metadata": { "name": name },
            "spec": {
                "nodeName": node,
                "tolerations": [{ "operator": "Exists" }],
                "containers": [{ "name": "main", "image": "example.invalid/none:v1" }],
                "volumes": [{ "name": "s", "secret": { "secretName": secret } }]
            }
        });
        if let Some(cm) = cm {
            p["spec"]["containers"][0]["envFrom"] = json!([{ "configMapRef": { "name": cm } }]);
        }
        serde_json::from_value(p).unwrap()
    };
    let pods = ns.api::<Pod>();
    pods.create(&PostParams::default(), &pod("on-mine", &mine, "s-mine", Some("cm-mine"))).await.unwrap();
    pods.create(&PostParams::default(), &pod("on-other", &other, "s-other", None)).await.unwrap();

    // What its own pod references: allowed (the authorizer's graph may take a moment).
    let node_secrets: Api<Secret> = Api::namespaced(node.clone(), ns.name());
    let node_cms: Api<ConfigMap> = Api::namespaced(node.clone(), ns.name());
    let started = Instant::now();
    loop {
        match (node_secrets.get("s-mine").await, node_cms.get("cm-mine").await) {
            (Ok(_), Ok(_)) => break,
            (s, c) if started.elapsed() > Duration::from_secs(20) => panic!("own pod's objects: {s:?} {c:?}"),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    // Anything else: 403.
    forbidden(node_secrets.get("s-other").await, "a secret of a pod on another node");
    forbidden(node_secrets.get("s-unused").await, "a secret no pod uses");
    forbidden(node_secrets.list(&ListParams::default()).await, "listing secrets");
    forbidden(node_cms.get("cm-unused").await, "a configmap no pod uses");
    let node_nodes: Api<Node> = Api::all(node.clone());
    let label = json!({ "metadata": { "labels": { "owned-by": "intruder" } } });
    forbidden(node_nodes.patch(&other, &PatchParams::default(), &Patch::Merge(&label)).await, "patching another Node");
    let node_pods: Api<Pod> = Api::namespaced(node.clone(), ns.name());
    let status = json!({ "status": { "phase": "Failed" } });
    forbidden(
        node_pods.patch_status("on-other", &PatchParams::default(), &Patch::Merge(&status)).await,
        "the status of another node's pod",
    );
    forbidden(
        node_pods.create(&PostParams::default(), &pod("made-by-node", &mine, "s-mine", None)).await,
        "creating a pod",
    );
    forbidden(node_pods.delete("on-other", &DeleteParams::default()).await, "deleting another node's pod");

    // What it needs: its own pod's status, and delegated authn/authz reviews.
    assert!(
        node_pods
            .patch_status("on-mine", &PatchParams::default(), &Patch::Merge(&json!({ "status": {} })))
            .await
            .is_ok()
    );
    let sar = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some("someone".into()),
            resource_attributes: Some(ResourceAttributes {
                resource: Some("nodes".into()),
                subresource: Some("proxy".into()),
                verb: Some("get".into()),
                name: Some(mine.clone()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let reviewed = Api::<SubjectAccessReview>::all(node.clone()).create(&PostParams::default(), &sar).await.unwrap();
    assert!(!reviewed.status.unwrap().allowed, "someone has no rights");

    let zero = DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() };
    for name in ["on-mine", "on-other"] {
        let _ = pods.delete(name, &zero).await;
    }
    for name in [&mine, &other] {
        let _ = nodes.delete(name, &DeleteParams::default()).await;
    }
}
