//! The benchmark's own test bed and what it adds to a cluster: identities
//! for the benchmark client and kwok (so the apiserver's flow-control
//! counters tell them apart from the node agents and the control plane),
//! and blackhole routes for the cluster's address ranges.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context as _;
use k8s_openapi::api::flowcontrol::v1::FlowSchema;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use wasmlet_testbed::{Testbed, client_from_kubeconfig};

/// The benchmark's own test bed: its own directory and ports, so it never
/// disturbs a shared one.
pub(crate) const DEFAULT_PORT_BASE: u16 = 26840;
/// Its pod network: room for 128 nodes of a /19 (8,190 pods) each.
pub(crate) const CLUSTER_CIDR: &str = "10.128.0.0/12";
/// The node CIDR size: 5,000 pods on one node need a /19 or larger.
pub(crate) const NODE_CIDR_MASK_SIZE: u8 = 19;
/// Its service network.
pub(crate) const SERVICE_CIDR: &str = "10.127.0.0/24";

/// Group of the benchmark's own identities (bound to cluster-admin).
const GROUP: &str = "wasmlet-bench:peers";
/// The identity that creates and watches the pods.
pub(crate) const CLIENT_USER: &str = "wasmlet-bench:client";
/// kwok's identity.
pub(crate) const KWOK_USER: &str = "wasmlet-bench:kwok";
/// Field manager of what the benchmark applies.
const MANAGER: &str = "wasmlet-bench";

/// The default directory of the benchmark's test bed.
pub(crate) fn default_dir() -> PathBuf {
    std::env::temp_dir().join("wasmlet-testbed-bench")
}

/// Clients and kubeconfigs of the benchmark's identities.
pub(crate) struct Identities {
    pub(crate) client: kube::Client,
    pub(crate) admin: kube::Client,
    pub(crate) kwok_kubeconfig: PathBuf,
}

/// Mints the identities and applies their RBAC binding and FlowSchemas.
///
/// The FlowSchemas send the two identities to the `exempt` priority level,
/// where an admin (`system:masters`) client would go too, so flow control
/// treats them as usual; they exist to name them in
/// `apiserver_flowcontrol_dispatched_requests_total{flow_schema}`.
pub(crate) async fn identities(tb: &Testbed) -> anyhow::Result<Identities> {
    let admin = tb.admin_client().await?;
    let pp = PatchParams::apply(MANAGER).force();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": "wasmlet-bench:peers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": GROUP}],
    }))?;
    Api::<ClusterRoleBinding>::all(admin.clone())
        .patch("wasmlet-bench:peers", &pp, &Patch::Apply(&binding))
        .await
        .context("binding the benchmark's identities")?;
    let schemas: Api<FlowSchema> = Api::all(admin.clone());
    for (name, user) in [("wasmlet-bench-client", CLIENT_USER), ("wasmlet-bench-kwok", KWOK_USER)] {
        let schema: FlowSchema = serde_json::from_value(json!({
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": name},
            "spec": {
                "matchingPrecedence": 50,
                "priorityLevelConfiguration": {"name": "exempt"},
                "rules": [{
                    "subjects": [{"kind": "User", "user": {"name": user}}],
                    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "clusterScope": true, "namespaces": ["*"]}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }],
            },
        }))?;
        schemas
            .patch(name, &pp, &Patch::Apply(&schema))
            .await
            .with_context(|| format!("applying FlowSchema {name}"))?;
    }
    let client_kc = tb.user_kubeconfig(CLIENT_USER, &[GROUP])?;
    let client = client_from_kubeconfig(&client_kc).await?;
    let kwok_kubeconfig = tb.user_kubeconfig(KWOK_USER, &[GROUP])?;
    Ok(Identities { client, admin, kwok_kubeconfig })
}

/// Who sent requests, from the flow schema that classified them.
pub(crate) fn client_of(flow_schema: &str) -> &'static str {
    match flow_schema {
        "system-node-high" | "system-nodes" => "nodes",
        "wasmlet-bench-kwok" => "kwok",
        "wasmlet-bench-client" => "bench client",
        "kube-scheduler" => "scheduler",
        "kube-controller-manager"
        | "kube-system-service-accounts"
        | "endpoint-controller"
        | "workload-leader-election"
        | "system-leader-election" => "controllers",
        _ => "other",
    }
}

/// Blackhole routes for address ranges that must never leave the machine
/// (the pod and service networks): addresses on local interfaces (pod IPs)
/// and more specific routes (a CNI bridge) still win. Removed on drop.
pub(crate) struct Blackholes {
    added: Vec<String>,
}

impl Blackholes {
    pub(crate) fn add(cidrs: &[&str]) -> Self {
        let mut added = Vec::new();
        for cidr in cidrs {
            let present = Command::new("ip")
                .args(["route", "show", "type", "blackhole", cidr])
                .output()
                .is_ok_and(|o| !o.stdout.is_empty());
            if present {
                continue;
            }
            match Command::new("ip").args(["route", "add", "blackhole", cidr]).output() {
                Ok(o) if o.status.success() => added.push((*cidr).to_owned()),
                Ok(o) => {
                    tracing::warn!(cidr, error = %String::from_utf8_lossy(&o.stderr).trim(), "adding a blackhole route")
                }
                Err(e) => tracing::warn!(cidr, error = %e, "adding a blackhole route"),
            }
        }
        Self { added }
    }
}

impl Drop for Blackholes {
    fn drop(&mut self) {
        for cidr in &self.added {
            let _ = Command::new("ip").args(["route", "del", "blackhole", cidr]).output();
        }
    }
}
