//! Objects a fresh cluster needs before nodes can join, as kubeadm and
//! `local-up-cluster.sh` create them, and readiness probes.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::{Error, Result};

/// The user in the apiserver's kubelet client certificate.
pub(crate) const APISERVER_KUBELET_USER: &str = "kube-apiserver";

/// Field manager for objects the test bed writes.
const MANAGER: &str = "wasmlet-testbed";

/// ClusterRoleBindings: (name, ClusterRole, subject kind, subject name).
const BINDINGS: [(&str, &str, &str, &str); 4] = [
    // The apiserver may call every kubelet API (logs, exec, port-forward, stats).
    ("wasmlet-testbed:apiserver-kubelet-admin", "system:kubelet-api-admin", "User", APISERVER_KUBELET_USER),
    // Nodes holding a bootstrap token may create CSRs ...
    ("wasmlet-testbed:node-bootstrapper", "system:node-bootstrapper", "Group", "system:bootstrappers"),
    // ... whose first client certificate is approved automatically ...
    (
        "wasmlet-testbed:node-autoapprove-bootstrap",
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "Group",
        "system:bootstrappers",
    ),
    // ... and so are the renewals a node asks for itself.
    (
        "wasmlet-testbed:node-autoapprove-renewal",
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        "Group",
        "system:nodes",
    ),
];

/// Creates (or updates) the cluster-wide objects the test bed relies on.
pub(crate) async fn apply(client: &kube::Client) -> Result<()> {
    let api: Api<ClusterRoleBinding> = Api::all(client.clone());
    for (name, role, kind, subject) in BINDINGS {
        let binding = ClusterRoleBinding {
            metadata: kube::api::ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: role.into(),
            },
            subjects: Some(vec![Subject {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: kind.into(),
                name: subject.into(),
                namespace: None,
            }]),
        };
        api.patch(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&binding)).await.map_err(Error::Kube)?;
    }
    Ok(())
}

/// Whether the apiserver answers `/readyz` with `ok`.
pub(crate) async fn readyz(client: &kube::Client) -> bool {
    let Ok(req) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    matches!(client.request_text(req).await, Ok(body) if body.trim() == "ok")
}

/// Whether the `default` ServiceAccount of `namespace` exists yet.
pub(crate) async fn default_service_account_exists(client: &kube::Client, namespace: &str) -> bool {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    matches!(api.get_opt("default").await, Ok(Some(_)))
}
