//! Static pods: a manifest dropped into `--pod-manifest-path` runs, with a
//! mirror pod in the apiserver as upstream creates it; a changed file
//! replaces the pod; a removed file deletes it; a bad file is reported and
//! changes nothing else.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use wasmlet_testkit::node::Options;
use wasmlet_testkit::pods::{self, POD_TIMEOUT};
use wasmlet_testkit::{WasmletNode, admin_client, fixture_image, wait};

fn manifest(image: &str, tick_ms: u32) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ticker\n  namespace: default\nspec:\n  \
         tolerations:\n  - key: kubernetes.io/arch\n    operator: Exists\n  containers:\n  - name: main\n    \
         image: {image}\n    env:\n    - name: TICK_MS\n      value: \"{tick_ms}\"\n"
    )
}

fn hash(p: &Pod) -> Option<String> {
    p.metadata.annotations.as_ref()?.get("kubernetes.io/config.mirror").cloned()
}

#[tokio::test]
async fn a_manifest_runs_with_a_mirror_pod_follows_changes_and_goes_with_its_file() {
    let manifests = tempfile::tempdir().unwrap();
    let args = vec![format!("--pod-manifest-path={}", manifests.path().display())];
    let node = WasmletNode::start_with_options(
        env!("CARGO_BIN_EXE_wasmlet"),
        "static",
        Options { args, ..Options::default() },
    )
    .await;
    let image = fixture_image("forever").await;
    let pods_api: Api<Pod> = Api::namespaced(admin_client().await, "default");
    let name = format!("ticker-{}", node.name);

    // Added: the mirror pod appears, owned by the Node, and runs.
    std::fs::write(manifests.path().join("ticker.yaml"), manifest(&image, 1000)).unwrap();
    let first = pods::wait_for(&pods_api, &name, POD_TIMEOUT, || node.log_tail(40), |p| pods::running(p, "main")).await;
    let owner = &first.metadata.owner_references.as_ref().expect("an owner")[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("Node", node.name.as_str()));
    let annotations = first.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(annotations.get("kubernetes.io/config.source").map(String::as_str), Some("file"));
    let first_hash = hash(&first).expect("kubernetes.io/config.mirror");

    // A bad file next to it is reported and changes nothing.
    std::fs::write(manifests.path().join("broken.yaml"), "kind: Service\n").unwrap();

    // Changed: a new pod (new UID and hash) replaces the old one.
    std::fs::write(manifests.path().join("ticker.yaml"), manifest(&image, 500)).unwrap();
    let first_uid = first.metadata.uid.clone();
    let second = pods::wait_for(
        &pods_api,
        &name,
        Duration::from_secs(90),
        || node.log_tail(40),
        |p| p.metadata.uid != first_uid && pods::running(p, "main"),
    )
    .await;
    assert_ne!(hash(&second).as_deref(), Some(first_hash.as_str()));
    let env = &second.spec.as_ref().unwrap().containers[0].env.as_ref().unwrap()[0];
    assert_eq!(env.value.as_deref(), Some("500"));
    assert!(node.log().contains("broken.yaml: not a Pod manifest"), "{}", node.log_tail(40));

    // Removed: the pod goes.
    std::fs::remove_file(manifests.path().join("ticker.yaml")).unwrap();
    let gone = wait::try_for_object(&pods_api, &name, Duration::from_secs(90), |p| p.is_none()).await;
    assert!(gone.is_ok(), "the mirror pod stayed:\n{}", node.log_tail(40));
}
