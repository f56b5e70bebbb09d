//! Guest confinement and secret hygiene on a real node (issue 6).
//!
//! Guests see only their preopened volumes: host files (`/etc/passwd`,
//! `/proc`), `..` out of a volume, and symlinks inside a hostPath volume
//! that point outside it are all refused. One pod's environment and files
//! are not visible to another. (subPath escapes are covered by
//! `config_volumes`.) The node runs with `WASMLET_LOG=trace`, and its log is
//! then scanned for every secret value, token and private key the test
//! used: none may appear.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod, Secret};
use kube::Api;
use kube::api::PostParams;
use wasmlet_testkit::agent::{Agent, assert_no_secrets};
use wasmlet_testkit::kubelet_api::KubeletApi;
use wasmlet_testkit::node::node_ready;
use wasmlet_testkit::pods::{self, POD_TIMEOUT, kubectl_ok, phase};
use wasmlet_testkit::{Namespace, admin_client, fixture_image, testbed, wait};

/// `prefix` and 32 random hex digits.
fn random(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        h.finish()
    };
    format!("{prefix}{:016x}{:016x}", word(), word())
}

/// Runs `pod` to completion; returns its log.
async fn run(ns: &Namespace, agent: &Agent, pod: serde_json::Value) -> String {
    let name = pod["metadata"]["name"].as_str().unwrap().to_owned();
    pods::create(ns, pod).await;
    let api: Api<Pod> = ns.api();
    let done = |p: &Pod| ["Succeeded", "Failed"].contains(&phase(p));
    pods::wait_for(&api, &name, POD_TIMEOUT, || agent.log_tail(40), done).await;
    api.logs(&name, &Default::default()).await.unwrap_or_default()
}

#[tokio::test]
async fn guests_are_confined_and_secrets_stay_out_of_the_log() {
    let tb = testbed().await;
    let admin = admin_client().await;
    let name = format!("guest-{}", &random("")[..6]);
    let ip = wasmlet_testbed::host_ip();
    let creds = tb.node_credentials(&name, &[ip]).unwrap();
    let work = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let args = vec![
        format!("--kubeconfig={}", creds.kubeconfig.display()),
        format!("--node-name={name}"),
        format!("--node-ip={ip}"),
        format!("--root-dir={}", work.path().join("root").display()),
        format!("--port={port}"),
        format!("--tls-cert-file={}", creds.serving.cert.display()),
        format!("--tls-private-key-file={}", creds.serving.key.display()),
        format!("--insecure-registries={}", tb.registry()),
    ];
    let bin = Path::new(env!("CARGO_BIN_EXE_wasmlet"));
    let log = work.path().join("wasmlet.log");
    let agent =
        Agent::spawn(bin, &args, &[("WASMLET_LOG", "trace")], log, tb.dir(), &format!("wasmlet-{name}")).unwrap();
    let nodes: Api<Node> = Api::all(admin.clone());
    let ready = wait::try_for_object(&nodes, &name, Duration::from_secs(90), |n| node_ready(n) == Some("True")).await;
    assert!(ready.is_ok(), "node not Ready:\n{}", agent.log_tail(60));

    let ns = Namespace::create(&admin, "guest").await;
    let (value_a, value_b) = (random("secret-a-"), random("secret-b-"));
    for (secret, value) in [("s-a", &value_a), ("s-b", &value_b)] {
        let s: Secret = serde_json::from_value(serde_json::json!({
            "metadata": { "name": secret }, "stringData": { "value": value }
        }))
        .unwrap();
        ns.api::<Secret>().create(&PostParams::default(), &s).await.unwrap();
    }
    let read_file = fixture_image("read-file").await;
    let args_env = fixture_image("args-env").await;
    let with_secret = |pod: &str, image: &str, args: &[&str], secret: &str| {
        let mut p = pods::bare(pod, &name, image, args, "Never");
        p["spec"]["containers"][0]["env"] = serde_json::json!([
            { "name": "MY_SECRET", "valueFrom": { "secretKeyRef": { "name": secret, "key": "value" } } }
        ]);
        p["spec"]["volumes"] = serde_json::json!([{ "name": "s", "secret": { "secretName": secret } }]);
        p["spec"]["containers"][0]["volumeMounts"] = serde_json::json!([{ "name": "s", "mountPath": "/etc/mine" }]);
        p
    };

    // Each pod sees its own environment and volume, and nothing of the other's.
    let a = run(&ns, &agent, with_secret("a", &args_env, &["a"], "s-a")).await;
    assert!(a.contains(&format!("env MY_SECRET={value_a}")), "{a}");
    let b = run(&ns, &agent, with_secret("b", &args_env, &["b"], "s-b")).await;
    assert!(b.contains(&format!("env MY_SECRET={value_b}")) && !b.contains(&value_a), "{b}");
    assert!(!a.contains(&value_b), "{a}");
    let own = run(&ns, &agent, with_secret("own", &read_file, &["/etc/mine/value"], "s-b")).await;
    assert!(own.contains(&value_b), "a guest reads its own secret volume: {own}");
    let pods_dir = work.path().join("root");
    let a_uid = ns.api::<Pod>().get("a").await.unwrap().metadata.uid.unwrap();
    for target in ["/etc/mine/../../../etc/passwd".to_owned(), format!("{}/pods/{a_uid}", pods_dir.display())] {
        let out = run(&ns, &agent, with_secret(&format!("peek-{}", target.len()), &read_file, &[&target], "s-b")).await;
        assert!(!out.contains(&value_a) && !out.contains("root:"), "{target}: {out}");
    }

    // Host files and escapes through `..` or symlinks in a volume.
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("inside.txt"), "inside the volume\n").unwrap();
    std::os::unix::fs::symlink("/etc", host.path().join("out")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", host.path().join("passwd")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc/passwd", host.path().join("relative")).unwrap();
    let attempts = [
        "/etc/passwd",
        "/proc/self/environ",
        "/x/../../../../etc/passwd",
        "/x/out/passwd",
        "/x/passwd",
        "/x/relative",
        "/../../../../etc/passwd",
    ];
    for (i, target) in attempts.iter().enumerate() {
        let mut p = pods::bare(&format!("escape-{i}"), &name, &read_file, &[target], "Never");
        p["spec"]["volumes"] =
            serde_json::json!([{ "name": "h", "hostPath": { "path": host.path(), "type": "Directory" } }]);
        p["spec"]["containers"][0]["volumeMounts"] = serde_json::json!([{ "name": "h", "mountPath": "/x" }]);
        let out = run(&ns, &agent, p).await;
        assert!(!out.contains("root:") && !out.contains("PATH="), "{target} escaped: {out}");
        let pod = ns.api::<Pod>().get(&format!("escape-{i}")).await.unwrap();
        assert_eq!(pods::terminated(&pod, "main").map(|t| t.exit_code), Some(2), "{target}: {out}");
    }
    // hostPath volumes that would expose the agent's own files (its root
    // directory with the pods' volumes, an ancestor of it, its serving key,
    // a symbolic link into the root) are refused with FailedMount; the pod
    // never starts and nothing is read.
    let link = host.path().join("to-root");
    std::os::unix::fs::symlink(&pods_dir, &link).unwrap();
    let protected = [
        pods_dir.clone(),
        work.path().to_owned(),
        creds.serving.key.clone(),
        link.clone(),
        std::path::PathBuf::from("/"),
    ];
    let events: Api<Event> = ns.api();
    for (i, target) in protected.iter().enumerate() {
        let pod_name = format!("agent-files-{i}");
        let mut p = pods::bare(&pod_name, &name, &read_file, &["/x"], "Never");
        p["spec"]["volumes"] = serde_json::json!([{ "name": "h", "hostPath": { "path": target } }]);
        p["spec"]["containers"][0]["volumeMounts"] = serde_json::json!([{ "name": "h", "mountPath": "/x" }]);
        pods::create(&ns, p).await;
        let refused = wait::for_any(&events, Default::default(), POD_TIMEOUT, |e: &Event| {
            e.reason.as_deref() == Some("FailedMount")
                && e.involved_object.name.as_deref() == Some(pod_name.as_str())
                && e.message.as_deref().is_some_and(|m| m.contains("refused on this node"))
        })
        .await;
        assert!(refused.is_some(), "{}: no FailedMount refusal\n{}", target.display(), agent.log_tail(40));
        let pod = ns.api::<Pod>().get(&pod_name).await.unwrap();
        assert_eq!(pods::waiting_reason(&pod, "main"), Some("ContainerCreating"), "{:?}", pod.status);
    }

    let mut inside = pods::bare("inside", &name, &read_file, &["/x/inside.txt"], "Never");
    inside["spec"]["volumes"] = serde_json::json!([{ "name": "h", "hostPath": { "path": host.path() } }]);
    inside["spec"]["containers"][0]["volumeMounts"] = serde_json::json!([{ "name": "h", "mountPath": "/x" }]);
    assert!(run(&ns, &agent, inside).await.contains("inside the volume"), "the volume itself is readable");

    // The service-account token a guest holds, and a bearer token used on
    // the kubelet API (TokenReview), are secrets too.
    let sa_token = run(&ns, &agent, {
        let path = "/var/run/secrets/kubernetes.io/serviceaccount/token";
        pods::bare("sa", &name, &read_file, &[path], "Never")
    })
    .await;
    assert!(sa_token.starts_with("ey"), "{sa_token}");
    kubectl_ok(&["create", "serviceaccount", "caller", "-n", ns.name()]).await;
    let bearer = kubectl_ok(&["create", "token", "caller", "-n", ns.name(), "--duration=10m"]).await.trim().to_owned();
    let api = KubeletApi::new(ip, port, &tb.ca_cert()).unwrap();
    assert_eq!(api.get("/pods", None, Some(&bearer)).await.unwrap().status, 403);
    kubectl_ok(&["logs", "-n", ns.name(), "a"]).await;

    drop(agent_stop(agent));
    let log = std::fs::read_to_string(work.path().join("wasmlet.log")).unwrap();
    let key = |p: &Path| std::fs::read_to_string(p).unwrap();
    let secrets = [
        ("secret value a", value_a),
        ("secret value b", value_b),
        ("the guest's service-account token", sa_token.trim().to_owned()),
        ("a bearer token", bearer),
        ("the node's client key", key(&creds.client.key)),
        ("the node's serving key", key(&creds.serving.key)),
    ];
    let scanned = assert_no_secrets(&log, &secrets);
    assert!(log.contains(" TRACE "), "the agent logged at trace level");
    eprintln!("scanned {scanned} bytes of trace log");
}

fn agent_stop(mut agent: Agent) -> Agent {
    agent.stop();
    agent
}
