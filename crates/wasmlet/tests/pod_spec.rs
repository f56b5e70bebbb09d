//! The fuller pod spec: init containers, native sidecars, private registries
//! with pull secrets, admission against allocatable, memory limits.

use base64::Engine;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::Api;
use kube::api::PostParams;
use wasmlet_testkit::node::node_ready;
use wasmlet_testkit::pods::{self, POD_TIMEOUT, phase};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, testbed};

fn init_status<'a>(p: &'a Pod, name: &str) -> Option<&'a k8s_openapi::api::core::v1::ContainerStatus> {
    p.status.as_ref()?.init_container_statuses.as_ref()?.iter().find(|c| c.name == name)
}

fn condition(p: &Pod, ty: &str) -> Option<(String, Option<String>)> {
    let c = p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == ty)?;
    Some((c.status.clone(), c.reason.clone()))
}

#[tokio::test]
async fn init_containers_run_in_order_then_the_app() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "init").await;
    let ns = Namespace::create(&admin_client().await, "init").await;
    let api = ns.api::<Pod>();
    let mut pod = pods::bare("ordered", &node.name, &fixture_image("args-env").await, &["app"], "Never");
    pod["spec"]["initContainers"] = serde_json::json!([
        { "name": "first", "image": fixture_image("exit-code").await, "args": ["0"] },
        { "name": "second", "image": fixture_image("args-env").await, "args": ["second"] }
    ]);
    pods::create(&ns, pod).await;
    let done = pods::wait_for(&api, "ordered", POD_TIMEOUT, || node.log_tail(60), |p| phase(p) == "Succeeded").await;
    let ended = |name: &str| init_status(&done, name).unwrap().state.clone().unwrap().terminated.unwrap();
    let (first, second) = (ended("first"), ended("second"));
    assert_eq!((first.exit_code, second.exit_code), (0, 0));
    let app = pods::terminated(&done, "main").unwrap();
    assert!(first.finished_at.as_ref().unwrap().0 <= second.started_at.as_ref().unwrap().0, "first before second");
    assert!(second.finished_at.as_ref().unwrap().0 <= app.started_at.as_ref().unwrap().0, "inits before the app");
    assert_eq!(condition(&done, "Initialized").unwrap().0, "True");
    let params = kube::api::LogParams { container: Some("second".into()), ..Default::default() };
    assert!(api.logs("ordered", &params).await.unwrap().contains("argv[1]=second"));

    // A failing init container with Never: the pod fails, the app never starts.
    let mut pod = pods::bare("blocked", &node.name, &fixture_image("args-env").await, &[], "Never");
    pod["spec"]["initContainers"] =
        serde_json::json!([{ "name": "gate", "image": fixture_image("exit-code").await, "args": ["4"] }]);
    pods::create(&ns, pod).await;
    let failed = pods::wait_for(&api, "blocked", POD_TIMEOUT, || node.log_tail(60), |p| phase(p) == "Failed").await;
    assert_eq!(init_status(&failed, "gate").unwrap().state.clone().unwrap().terminated.unwrap().exit_code, 4);
    assert!(pods::terminated(&failed, "main").is_none() && !pods::running(&failed, "main"), "the app never ran");
    assert_eq!(condition(&failed, "Initialized").unwrap(), ("False".into(), Some("ContainersNotInitialized".into())));

    // With OnFailure it retries with back-off while the app waits.
    let mut pod = pods::bare("retrying", &node.name, &fixture_image("args-env").await, &[], "OnFailure");
    pod["spec"]["initContainers"] =
        serde_json::json!([{ "name": "gate", "image": fixture_image("exit-code").await, "args": ["4"] }]);
    pods::create(&ns, pod).await;
    let retrying = pods::wait_for(
        &api,
        "retrying",
        POD_TIMEOUT,
        || node.log_tail(60),
        |p| init_status(p, "gate").is_some_and(|c| c.restart_count >= 2),
    )
    .await;
    assert_eq!(phase(&retrying), "Pending");
    assert_eq!(pods::waiting_reason(&retrying, "main"), Some("PodInitializing"));
}

#[tokio::test]
async fn a_native_sidecar_runs_beside_the_app_and_stops_after_it() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "sidecar").await;
    let ns = Namespace::create(&admin_client().await, "sidecar").await;
    let api = ns.api::<Pod>();
    let sidecar = serde_json::json!([{
        "name": "helper", "image": fixture_image("forever").await, "restartPolicy": "Always",
        "env": [{ "name": "TICK_MS", "value": "100" }]
    }]);

    let mut long = pods::bare("long", &node.name, &fixture_image("forever").await, &[], "Always");
    long["spec"]["initContainers"] = sidecar.clone();
    pods::create(&ns, long).await;
    let both = pods::wait_for(
        &api,
        "long",
        POD_TIMEOUT,
        || node.log_tail(60),
        |p| pods::running(p, "main") && init_status(p, "helper").is_some_and(|c| c.started == Some(true)),
    )
    .await;
    assert_eq!(phase(&both), "Running");
    assert!(init_status(&both, "helper").unwrap().state.as_ref().unwrap().running.is_some());
    assert_eq!(condition(&both, "Ready").unwrap().0, "True");

    // A job-like pod: when the app completes, the sidecar is stopped and the pod succeeds.
    let mut short = pods::bare("short", &node.name, &fixture_image("exit-code").await, &["0"], "Never");
    short["spec"]["initContainers"] = sidecar;
    pods::create(&ns, short).await;
    let done = pods::wait_for(&api, "short", POD_TIMEOUT, || node.log_tail(60), |p| phase(p) == "Succeeded").await;
    let helper = init_status(&done, "helper").unwrap().state.clone().unwrap().terminated.unwrap();
    let app = pods::terminated(&done, "main").unwrap();
    assert!(helper.started_at.as_ref().unwrap().0 <= app.started_at.as_ref().unwrap().0, "sidecar first");
    assert!(helper.finished_at.as_ref().unwrap().0 >= app.finished_at.as_ref().unwrap().0, "sidecar stops after");
}

#[tokio::test]
async fn private_registry_needs_the_pull_secret() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "private").await;
    let ns = Namespace::create(&admin_client().await, "private").await;
    let api = ns.api::<Pod>();
    let tb = testbed().await;
    let image = wasmlet_testbed::fixtures::private_reference(tb);

    pods::create(&ns, pods::bare("without", &node.name, &image, &[], "Never")).await;
    let refused = pods::wait_for(
        &api,
        "without",
        POD_TIMEOUT,
        || node.log_tail(60),
        |p| pods::waiting_reason(p, "main") == Some("ErrImagePull"),
    )
    .await;
    let message = pods::container(&refused, "main").unwrap().state.clone().unwrap().waiting.unwrap().message;
    let message = message.unwrap_or_default();
    assert!(message.contains("pull access denied") && message.contains(&image), "clear refusal: {message}");

    let private = tb.private_registry();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", private.username, private.password));
    let config = serde_json::json!({ "auths": { private.addr.clone(): { "auth": auth } } });
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "registry" },
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": { ".dockerconfigjson": config.to_string() }
    }))
    .unwrap();
    ns.api::<Secret>().create(&PostParams::default(), &secret).await.unwrap();
    let mut with = pods::bare("with", &node.name, &image, &["private"], "Never");
    with["spec"]["imagePullSecrets"] = serde_json::json!([{ "name": "registry" }]);
    pods::create(&ns, with).await;
    pods::wait_for(&api, "with", POD_TIMEOUT, || node.log_tail(60), |p| phase(p) == "Succeeded").await;
    let logs = api.logs("with", &Default::default()).await.unwrap();
    assert!(logs.contains("argv[1]=private"), "{logs}");
}

#[tokio::test]
async fn oversized_pods_are_rejected_and_memory_bombs_are_oom_killed() {
    let node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "limits").await;
    let client = admin_client().await;
    let ns = Namespace::create(&client, "limits").await;
    let api = ns.api::<Pod>();
    let log = || node.log_tail(60);

    let mut neighbour = pods::bare("neighbour", &node.name, &fixture_image("forever").await, &[], "Always");
    neighbour["spec"]["containers"][0]["env"] = serde_json::json!([{ "name": "TICK_MS", "value": "100" }]);
    pods::create(&ns, neighbour).await;
    pods::wait_for(&api, "neighbour", POD_TIMEOUT, log, |p| pods::running(p, "main")).await;

    let mut huge = pods::bare("huge", &node.name, &fixture_image("forever").await, &[], "Always");
    huge["spec"]["containers"][0]["resources"] = serde_json::json!({ "requests": { "memory": "100Ti" } });
    pods::create(&ns, huge).await;
    let rejected = pods::wait_for(&api, "huge", POD_TIMEOUT, log, |p| phase(p) == "Failed").await;
    let status = rejected.status.unwrap();
    assert_eq!(status.reason.as_deref(), Some("OutOfmemory"));
    assert!(
        status.message.unwrap_or_default().starts_with("Pod was rejected: Node didn't have enough resource: memory")
    );

    let mut bomb = pods::bare("bomb", &node.name, &fixture_image("memhog").await, &[], "Never");
    bomb["spec"]["containers"][0]["resources"] = serde_json::json!({ "limits": { "memory": "32Mi" } });
    pods::create(&ns, bomb).await;
    let killed = pods::wait_for(&api, "bomb", POD_TIMEOUT, log, |p| phase(p) == "Failed").await;
    let t = pods::terminated(&killed, "main").unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (137, Some("OOMKilled")));

    let nodes: Api<Node> = Api::all(client);
    assert_eq!(node_ready(nodes.get(&node.name).await.ok().as_ref()), Some("True"));
    let after = api.get("neighbour").await.unwrap();
    assert!(pods::running(&after, "main"));
    assert_eq!(pods::container(&after, "main").unwrap().restart_count, 0);
}
