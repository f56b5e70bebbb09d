//! Control-plane faults and agent restarts (issue 12).
//!
//! - On a test bed of its own (the shared one must never lose its
//!   apiserver): the apiserver stopped for 20 s, then etcd stopped for
//!   10 s under a running apiserver. The agent neither exits nor spins,
//!   an HTTP pod answers throughout, nothing restarts, a finished pod is
//!   not run again, and once the component is back the Lease is renewed,
//!   the Node is Ready and every pod's status is right (within 10 s is
//!   issue 12's target, which `cargo xtask chaos` checks; CI allows 20 s); a pod
//!   created afterwards runs (the agent's watches came back, relisting
//!   after "resource version too old").
//! - On the shared test bed: `kill -9` of an agent with 24 running pods,
//!   3 finished ones and 3 in CrashLoopBackOff, then a SIGTERM restart:
//!   running pods run again (a restart each, with the cause in
//!   `lastState`), finished ones never run again, crash loops keep their
//!   restart count and back-off.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::ListParams;
use wasmlet_testbed::faults::Fault;
use wasmlet_testbed::{Config, Testbed};
use wasmlet_testkit::agent::{Agent, cpu_time};
use wasmlet_testkit::node::{READY_TIMEOUT, node_ready};
use wasmlet_testkit::pods::{self, POD_TIMEOUT, phase};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, http, testbed, wait};

/// The private test bed's ports start this far above the shared one's.
const PORT_OFFSET: u16 = 200;
/// Its pod network: clear of the shared bed's (nodes of both share `wasmlet0`).
const CLUSTER_CIDR: &str = "10.250.0.0/16";
/// What "recovered" (Lease, Node and every pod right) may take at most once
/// the apiserver serves again, all together: issue 12's target is 10 s
/// (what `cargo xtask chaos` checks); CI's debug build on a shared 2-core
/// machine gets twice that (measured here: 5.5–11.6 s).
const RECOVERY: Duration = Duration::from_secs(20);
/// The agent's CPU use during an outage must stay below this share of a core
/// (idle it uses well under 1 %; a retry loop without back-off uses 100 %).
const MAX_OUTAGE_CPU: f64 = 0.25;

/// Stops the private test bed, whatever happens to the test.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        if let Err(e) = Testbed::down(&self.0) {
            eprintln!("stopping the fault test bed: {e}");
        }
    }
}

/// A wasmlet node on the private test bed.
struct PrivateNode {
    name: String,
    agent: Agent,
    _work: tempfile::TempDir,
}

async fn start_node(tb: &Testbed, main: &Testbed) -> PrivateNode {
    let work = tempfile::tempdir().unwrap();
    let name = format!("faults-{}", std::process::id());
    let ip = wasmlet_testbed::host_ip();
    let creds = tb.node_credentials(&name, &[ip]).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let args = vec![
        format!("--kubeconfig={}", creds.kubeconfig.display()),
        format!("--tls-cert-file={}", creds.serving.cert.display()),
        format!("--tls-private-key-file={}", creds.serving.key.display()),
        format!("--node-name={name}"),
        format!("--node-ip={ip}"),
        format!("--root-dir={}", work.path().join("root").display()),
        format!("--port={port}"),
        // Images come from the shared bed's registry: registries are not this test's subject.
        format!("--insecure-registries={}", main.registry()),
    ];
    let log = work.path().join("wasmlet.log");
    let agent =
        Agent::spawn(Path::new(env!("CARGO_BIN_EXE_wasmlet")), &args, &[], log, tb.dir(), &format!("wasmlet-{name}"))
            .unwrap();
    let nodes: Api<Node> = Api::all(tb.admin_client().await.unwrap());
    let ready = wait::try_for_object(&nodes, &name, READY_TIMEOUT, |n| node_ready(n) == Some("True")).await;
    assert!(ready.is_ok(), "node {name} never got Ready:\n{}", agent.log_tail(60));
    PrivateNode { name, agent, _work: work }
}

fn pod_addr(pod: &Pod) -> SocketAddr {
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref()).expect("pod has an IP");
    SocketAddr::new(ip.parse().unwrap(), 8080)
}

fn ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.into_iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

fn restarts(pod: &Pod) -> i32 {
    pods::container(pod, "main").map_or(-1, |c| c.restart_count)
}

/// Asks `addr` for `/` every 200 ms until `stop` is set; (answered, failures).
async fn probe_until(addr: SocketAddr, stop: Arc<AtomicBool>) -> (u32, Vec<String>) {
    let (mut ok, mut failed) = (0, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        match http::get(addr, "/").await {
            Ok(r) if r.status == 200 => ok += 1,
            Ok(r) => failed.push(format!("status {}", r.status)),
            Err(e) => failed.push(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (ok, failed)
}

/// Takes `component` down for `outage` (stopped, then started with the
/// same command line) and checks what must hold during and after.
async fn outage(tb: &Testbed, node: &mut PrivateNode, ns: &Namespace, component: &str, outage: Duration) {
    let api = ns.api::<Pod>();
    let web = api.get("web").await.unwrap();
    let pid = node.agent.pid().expect("the agent runs");
    let cpu_before = cpu_time(pid).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let prober = tokio::spawn(probe_until(pod_addr(&web), stop.clone()));

    let down_at = Instant::now();
    tb.inject(component, Fault::Stop).unwrap();
    tokio::time::sleep(outage).await;
    let serving = tb.start_component(component).await.unwrap_or_else(|e| panic!("{component} did not come back: {e}"));
    // The agent's dependency is the apiserver: it is back once that serves again.
    let api_wait = Instant::now();
    tb.wait_serving("kube-apiserver").await.unwrap_or_else(|e| panic!("the apiserver did not come back: {e}"));
    let api_after = api_wait.elapsed();
    let down_for = down_at.elapsed();
    let back = Instant::now();
    let cpu = (cpu_time(pid).unwrap() - cpu_before).as_secs_f64() / down_for.as_secs_f64();
    eprintln!(
        "{component} down {:.1}s (serving {:.1}s after its start, the apiserver {:.1}s); agent CPU {:.2} % of a core",
        down_for.as_secs_f64(),
        serving.as_secs_f64(),
        (serving + api_after).as_secs_f64(),
        cpu * 100.0
    );
    assert_eq!(node.agent.pid(), Some(pid), "the agent exited:\n{}", node.agent.log_tail(60));
    assert!(cpu < MAX_OUTAGE_CPU, "the agent used {:.0} % of a core while {component} was down", cpu * 100.0);

    // Back within RECOVERY of the apiserver's return, all together: the Lease renewed, the Node
    // Ready, every pod's status right.
    let client = tb.admin_client().await.unwrap();
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let restarted = k8s_openapi::jiff::Timestamp::now();
    let deadline = back + RECOVERY;
    let left = || deadline.saturating_duration_since(Instant::now());
    let renewed = wait::try_for_object(&leases, &node.name, left(), |l| {
        l.and_then(|l| l.spec.as_ref()?.renew_time.as_ref()).is_some_and(|t| t.0 > restarted)
    })
    .await;
    assert!(
        renewed.is_ok(),
        "no Lease renewal within {RECOVERY:?} of {component}'s return:\n{}",
        node.agent.log_tail(60)
    );
    let nodes: Api<Node> = Api::all(client);
    let node_ok = wait::try_for_object(&nodes, &node.name, left(), |n| node_ready(n) == Some("True")).await;
    assert!(node_ok.is_ok(), "Node not Ready within {RECOVERY:?}: {:?}", node_ok.err());
    for name in ["web", "runner"] {
        let ok = wait::try_for_object(&api, name, left(), |p| {
            p.is_some_and(|p| pods::running(p, "main") && ready(p) && restarts(p) == 0)
        })
        .await;
        assert!(
            ok.is_ok(),
            "pod {name} not right within {RECOVERY:?}: {:#?}",
            ok.err().flatten().and_then(|p| p.status)
        );
    }
    let done = api.get("done").await.unwrap();
    assert_eq!((phase(&done), restarts(&done)), ("Succeeded", 0));
    eprintln!(
        "{component}: Lease, Node and pods right {:.1}s after the apiserver served",
        back.elapsed().as_secs_f64()
    );

    stop.store(true, Ordering::Relaxed);
    let (answered, failed) = prober.await.unwrap();
    assert!(answered > 0 && failed.is_empty(), "web answered {answered} times, failed {failed:?}");
    let logs = api.logs("done", &Default::default()).await.unwrap();
    assert_eq!(logs.matches("exiting with 0").count(), 1, "ran once: {logs}");
}

#[tokio::test]
async fn apiserver_down_and_etcd_restart_lose_nothing() {
    let main = testbed().await;
    let port_base = main.config().port_base + PORT_OFFSET;
    let dir = std::env::temp_dir().join(format!("wasmlet-testbed-faults-{port_base}"));
    Testbed::down(&dir).unwrap();
    let _down = Down(dir.clone());
    let mut config = Config::new(dir, main.bin_dir().to_owned());
    config.port_base = port_base;
    config.cluster_cidr = CLUSTER_CIDR.to_owned();
    let started = Instant::now();
    let tb = Testbed::up(config).await.unwrap_or_else(|e| panic!("fault test bed: {e}"));
    eprintln!("fault test bed up in {:.1}s", started.elapsed().as_secs_f64());
    let mut node = start_node(&tb, main).await;
    let ns = Namespace::create(&tb.admin_client().await.unwrap(), "faults").await;
    let api = ns.api::<Pod>();

    let mut web = pods::bare("web", &node.name, &fixture_image("http-hello").await, &[], "Always");
    web["spec"]["containers"][0]["ports"] = serde_json::json!([{ "containerPort": 8080 }]);
    pods::create(&ns, web).await;
    pods::create(&ns, pods::bare("runner", &node.name, &fixture_image("forever").await, &[], "Always")).await;
    pods::create(&ns, pods::bare("done", &node.name, &fixture_image("exit-code").await, &["0"], "Never")).await;
    let log = || node.agent.log_tail(60);
    pods::wait_for(&api, "web", POD_TIMEOUT, log, |p| pods::running(p, "main") && ready(p)).await;
    pods::wait_for(&api, "runner", POD_TIMEOUT, log, |p| pods::running(p, "main")).await;
    pods::wait_for(&api, "done", POD_TIMEOUT, log, |p| phase(p) == "Succeeded").await;

    outage(&tb, &mut node, &ns, "kube-apiserver", Duration::from_secs(20)).await;
    // The agent's pod watch works again: a new pod runs, a deletion is seen.
    pods::create(&ns, pods::bare("after-apiserver", &node.name, &fixture_image("forever").await, &[], "Always")).await;
    let log = || node.agent.log_tail(60);
    pods::wait_for(&api, "after-apiserver", POD_TIMEOUT, log, |p| pods::running(p, "main")).await;

    outage(&tb, &mut node, &ns, "etcd", Duration::from_secs(10)).await;
    api.delete("after-apiserver", &Default::default()).await.unwrap();
    let gone = wait::try_for_object(&api, "after-apiserver", POD_TIMEOUT, |p| p.is_none()).await;
    assert!(gone.is_ok(), "the agent never finished deleting a pod after etcd's return:\n{}", node.agent.log_tail(60));
    pods::create(&ns, pods::bare("after-etcd", &node.name, &fixture_image("forever").await, &[], "Always")).await;
    let log = || node.agent.log_tail(60);
    pods::wait_for(&api, "after-etcd", POD_TIMEOUT, log, |p| pods::running(p, "main")).await;
    drop(ns);
    node.agent.stop();
}

/// Running pods created by the kill -9 test.
const RUNNERS: usize = 24;

/// Polls the namespace's pods until `cond` holds for all of them (by name
/// prefix); how long it took. Panics with the stragglers after `timeout`.
async fn all_pods(
    api: &Api<Pod>,
    prefix: &str,
    timeout: Duration,
    log: impl Fn() -> String,
    cond: impl Fn(&Pod) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let list = api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        let ours: Vec<&Pod> =
            list.iter().filter(|p| p.metadata.name.as_deref().is_some_and(|n| n.starts_with(prefix))).collect();
        let behind: Vec<&str> = ours.iter().filter(|p| !cond(p)).filter_map(|p| p.metadata.name.as_deref()).collect();
        if !ours.is_empty() && behind.is_empty() {
            return started.elapsed();
        }
        assert!(started.elapsed() < timeout, "pods {behind:?} not right after {timeout:?}\n{}", log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn crash_looping(p: &Pod, min_restarts: i32) -> bool {
    pods::waiting_reason(p, "main") == Some("CrashLoopBackOff") && restarts(p) >= min_restarts
}

#[tokio::test]
async fn kill9_and_sigterm_restarts_resume_pods_and_keep_crash_loops() {
    let mut node = WasmletNode::start(env!("CARGO_BIN_EXE_wasmlet"), "kill9").await;
    let ns = Namespace::create(&admin_client().await, "kill9").await;
    let api = ns.api::<Pod>();
    let (forever, exit) = (fixture_image("forever").await, fixture_image("exit-code").await);
    for i in 0..RUNNERS {
        pods::create(&ns, pods::bare(&format!("run-{i:02}"), &node.name, &forever, &[], "Always")).await;
    }
    for i in 0..3 {
        pods::create(&ns, pods::bare(&format!("done-{i}"), &node.name, &exit, &["0"], "Never")).await;
        pods::create(&ns, pods::bare(&format!("crash-{i}"), &node.name, &exit, &["1"], "Always")).await;
    }
    let wait_long = Duration::from_secs(90);
    all_pods(&api, "run-", wait_long, || node.log_tail(60), |p| pods::running(p, "main")).await;
    all_pods(&api, "done-", wait_long, || node.log_tail(60), |p| phase(p) == "Succeeded").await;
    // Restarted three times: the back-off now holds each for 40 s.
    all_pods(&api, "crash-", wait_long, || node.log_tail(60), |p| crash_looping(p, 3)).await;
    let crash_before: Vec<Pod> =
        api.list(&ListParams::default()).await.unwrap().items.into_iter().filter(|p| restarts(p) >= 3).collect();
    let done_before: Vec<Pod> =
        api.list(&ListParams::default()).await.unwrap().items.into_iter().filter(|p| phase(p) == "Succeeded").collect();
    assert_eq!((crash_before.len(), done_before.len()), (3, 3));

    // kill -9, then start again.
    node.kill();
    let started = Instant::now();
    node.restart().await;
    all_pods(&api, "run-", wait_long, || node.log_tail(60), |p| pods::running(p, "main") && restarts(p) == 1).await;
    eprintln!("kill -9: {RUNNERS} pods running again {:.1}s after the agent's start", started.elapsed().as_secs_f64());
    let run = api.get("run-00").await.unwrap();
    let last = pods::container(&run, "main").unwrap().last_state.clone().unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (255, Some("Unknown")));
    // Crash loops kept their count and wait out the rest of their back-off
    // (40 s when the agent died): same restart count, same last run.
    for before in &crash_before {
        let name = before.metadata.name.as_deref().unwrap();
        let now = api.get(name).await.unwrap();
        let finished =
            |p: &Pod| pods::container(p, "main")?.last_state.as_ref()?.terminated.as_ref()?.finished_at.clone();
        assert!(
            crash_looping(&now, restarts(before))
                && restarts(&now) == restarts(before)
                && finished(&now) == finished(before),
            "{name} lost its back-off: before {:#?}\nnow {:#?}",
            before.status,
            now.status
        );
    }
    for before in &done_before {
        let name = before.metadata.name.as_deref().unwrap();
        let now = api.get(name).await.unwrap();
        assert_eq!(phase(&now), "Succeeded");
        assert_eq!(
            pods::terminated(&now, "main").unwrap().started_at,
            pods::terminated(before, "main").unwrap().started_at
        );
        let logs = api.logs(name, &Default::default()).await.unwrap();
        assert_eq!(logs.matches("exiting with 0").count(), 1, "{name} ran once: {logs}");
    }

    // SIGTERM (an upgrade): the agent stops its guests and says so after
    // its restart — one more restart each, with the cause in lastState.
    let exit = node.stop();
    assert!(exit.success(), "{exit}\n{}", node.log_tail(40));
    node.restart().await;
    all_pods(&api, "run-", wait_long, || node.log_tail(60), |p| pods::running(p, "main") && restarts(p) == 2).await;
    let run = api.get("run-00").await.unwrap();
    let last = pods::container(&run, "main").unwrap().last_state.clone().unwrap().terminated.unwrap();
    assert_eq!(last.exit_code, 143);
    assert_eq!(last.reason.as_deref(), Some("Error"));
    assert!(last.message.as_deref().is_some_and(|m| m.contains("wasmlet shut down")), "{last:?}");
    for before in &done_before {
        let name = before.metadata.name.as_deref().unwrap();
        assert_eq!(phase(&api.get(name).await.unwrap()), "Succeeded");
    }
}
