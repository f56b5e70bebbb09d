//! A bare Pod, a Job and a Deployment run on the node; `kubectl logs`
//! (plain, `--tail`, `-f`) reaches the guests' output through the apiserver.

use std::time::Duration;

use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::{ListParams, LogParams, PostParams};
use wasmlet_testkit::pods::{self, POD_TIMEOUT, apply_runtime_class, kubectl_ok, phase};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, wait};

async fn node() -> WasmletNode {
    apply_runtime_class().await;
    WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "work").await
}

#[tokio::test]
async fn bare_pod_runs_to_completion_with_status_events_and_logs() {
    let node = node().await;
    let client = admin_client().await;
    let ns = Namespace::create(&client, "bare").await;
    let image = fixture_image("args-env").await;
    let mut spec = pods::bare("hello", &node.name, &image, &["one", "two words"], "Never");
    spec["spec"]["containers"][0]["env"] =
        serde_json::json!([{ "name": "GREETING", "value": "hi $(NAME)" }, { "name": "NAME", "value": "x" }]);
    pods::create(&ns, spec).await;
    let api = ns.api::<Pod>();
    let pod = pods::wait_for(&api, "hello", POD_TIMEOUT, || node.log_tail(80), |p| phase(p) == "Succeeded").await;

    let status = pod.status.clone().unwrap();
    assert_eq!(status.host_ip, Some(node.ip.to_string()));
    assert!(status.pod_ip.is_some() && status.start_time.is_some());
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    let cs = pods::container(&pod, "main").unwrap();
    let t = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    assert!(t.started_at.is_some() && t.finished_at.is_some());
    assert!(cs.image_id.contains("@sha256:"), "{}", cs.image_id);
    assert!(cs.container_id.as_deref().is_some_and(|id| id.starts_with("wasmlet://")));
    assert_eq!(cs.restart_count, 0);
    let ready = status.conditions.unwrap().into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_deref()), ("False", Some("PodCompleted")));

    // The output, through apiserver → kubelet API.
    let logs = api.logs("hello", &LogParams::default()).await.unwrap();
    assert!(logs.contains(&format!("argv[0]={image}")), "{logs}");
    assert!(logs.contains("argv[2]=two words"), "{logs}");
    // $(NAME) is defined after GREETING, so it is not expanded (Kubernetes rules).
    assert!(logs.contains("env GREETING=hi $(NAME)"), "{logs}");
    assert!(logs.trim_end().ends_with("done"), "{logs}");

    // kubectl describe reads like any node's.
    let events: Api<Event> = ns.api();
    let reasons: Vec<String> = events
        .list(&ListParams::default().fields("involvedObject.name=hello"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for want in ["Scheduled", "Pulling", "Pulled", "Created", "Started"] {
        if want == "Scheduled" {
            continue; // bound by nodeName: no scheduler event
        }
        assert!(reasons.iter().any(|r| r == want), "missing {want} in {reasons:?}");
    }
    let describe = kubectl_ok(&["describe", "pod", "hello", "-n", ns.name()]).await;
    assert!(describe.contains("Started container main"), "{describe}");

    // timestamps, limitBytes and sinceSeconds reach the kubelet too.
    let stamped = api.logs("hello", &LogParams { timestamps: true, ..Default::default() }).await.unwrap();
    let first = stamped.lines().next().unwrap_or_default();
    let (stamp, rest) = first.split_once(' ').unwrap_or_default();
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "RFC 3339 timestamp: {first}");
    assert!(rest.starts_with("argv[0]="), "{first}");
    let limited = api.logs("hello", &LogParams { limit_bytes: Some(10), ..Default::default() }).await.unwrap();
    assert_eq!(limited.len(), 10, "{limited:?}");
    let recent = api.logs("hello", &LogParams { since_seconds: Some(3600), ..Default::default() }).await.unwrap();
    assert_eq!(recent, logs);
}

#[tokio::test]
async fn all_three_image_layouts_run() {
    let node = node().await;
    let ns = Namespace::create(&admin_client().await, "layouts").await;
    let api = ns.api::<Pod>();
    let repo = format!("{}/fixtures/args-env", wasmlet_testkit::testbed().await.registry());
    for (name, tag) in [("cncf", "v1"), ("legacy", "wasm-to-oci"), ("image", "image")] {
        let image = format!("{repo}:{tag}");
        pods::create(&ns, pods::bare(name, &node.name, &image, &[name], "Never")).await;
        pods::wait_for(&api, name, POD_TIMEOUT, || node.log_tail(80), |p| phase(p) == "Succeeded").await;
        let logs = api.logs(name, &LogParams::default()).await.unwrap();
        assert!(logs.contains(&format!("argv[1]={name}")), "{tag}: {logs}");
    }
}

#[tokio::test]
async fn job_with_three_completions_succeeds() {
    let node = node().await;
    let client = admin_client().await;
    let ns = Namespace::create(&client, "job").await;
    let job: Job = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "three" },
        "spec": {
            "completions": 3,
            "parallelism": 2,
            "template": { "spec": {
                "runtimeClassName": "wasmlet",
                "nodeSelector": { "kubernetes.io/hostname": node.name },
                "restartPolicy": "Never",
                "containers": [{ "name": "work", "image": fixture_image("exit-code").await, "args": ["0"] }]
            }}
        }
    }))
    .unwrap();
    let jobs: Api<Job> = ns.api();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let done = wait::try_for_object(&jobs, "three", Duration::from_secs(120), |j| {
        j.and_then(|j| j.status.as_ref()?.succeeded).is_some_and(|n| n >= 3)
    })
    .await;
    if let Err(last) = done {
        panic!("job not complete: {:#?}\n{}", last.and_then(|j| j.status), node.log_tail(80));
    }
    let pods = ns.api::<Pod>().list(&ListParams::default().labels("job-name=three")).await.unwrap();
    let succeeded: Vec<&Pod> = pods.items.iter().filter(|p| phase(p) == "Succeeded").collect();
    assert!(succeeded.len() >= 3, "{:?}", pods.items.iter().map(phase).collect::<Vec<_>>());
    for p in succeeded {
        assert_eq!(p.spec.as_ref().unwrap().node_name.as_deref(), Some(node.name.as_str()));
    }
}

#[tokio::test]
async fn deployment_placed_by_runtime_class_keeps_running_and_logs_follow() {
    let node = node().await;
    let client = admin_client().await;
    let ns = Namespace::create(&client, "deploy").await;
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "ticker" },
        "spec": {
            "replicas": 3,
            "selector": { "matchLabels": { "app": "ticker" } },
            "template": {
                "metadata": { "labels": { "app": "ticker" } },
                "spec": {
                    "runtimeClassName": "wasmlet",
                    "nodeSelector": { "kubernetes.io/hostname": node.name },
                    "containers": [{
                        "name": "tick",
                        "image": fixture_image("forever").await,
                        "env": [{ "name": "TICK_MS", "value": "200" }]
                    }]
                }
            }
        }
    }))
    .unwrap();
    let deployments: Api<Deployment> = ns.api();
    deployments.create(&PostParams::default(), &deployment).await.unwrap();
    let ready = wait::try_for_object(&deployments, "ticker", Duration::from_secs(120), |d| {
        d.and_then(|d| d.status.as_ref()?.ready_replicas).is_some_and(|n| n == 3)
    })
    .await;
    if let Err(last) = ready {
        panic!("deployment not ready: {:#?}\n{}", last.and_then(|d| d.status), node.log_tail(80));
    }
    let api = ns.api::<Pod>();
    let list = api.list(&ListParams::default().labels("app=ticker")).await.unwrap();
    assert_eq!(list.items.len(), 3);
    for p in &list.items {
        assert_eq!(phase(p), "Running");
        assert!(pods::running(p, "tick"));
        let tolerations = p.spec.as_ref().unwrap().tolerations.clone().unwrap_or_default();
        assert!(tolerations.iter().any(|t| t.key.as_deref() == Some("kubernetes.io/arch")), "RuntimeClass tolerations");
    }
    let name = list.items[0].metadata.name.clone().unwrap();

    // --tail: exactly the last lines (once there are more than two).
    let mut poll = tokio::time::interval(Duration::from_millis(200));
    let enough = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            poll.tick().await;
            let all = api.logs(&name, &LogParams::default()).await.unwrap_or_default();
            if all.lines().count() >= 3 {
                break;
            }
        }
    })
    .await;
    assert!(enough.is_ok(), "the guest printed fewer than 3 lines\n{}", node.log_tail(80));
    let tail = kubectl_ok(&["logs", &name, "-n", ns.name(), "--tail=2"]).await;
    let lines: Vec<&str> = tail.lines().collect();
    assert_eq!(lines.len(), 2, "{tail}");
    assert!(lines.iter().all(|l| l.starts_with("tick ")), "{tail}");

    // -f: new lines keep arriving on an open stream.
    let params = LogParams { follow: true, tail_lines: Some(1), ..Default::default() };
    let stream = api.log_stream(&name, &params).await.unwrap();
    let mut lines = stream.lines();
    let mut ticks = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.try_next().await.unwrap() {
            ticks.push(line);
            if ticks.len() == 4 {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "follow delivered only {ticks:?}");
    let numbers: Vec<u64> = ticks.iter().map(|l| l.trim_start_matches("tick ").parse().unwrap()).collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{ticks:?}");
}
