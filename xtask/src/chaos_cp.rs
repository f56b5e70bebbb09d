//! `cargo xtask chaos apiserver-down | etcd-restart | kill9 | soak`: the
//! control-plane and agent fault scenarios of `docs/reliability.md`, each
//! end to end on a test bed of its own (its own directory and ports, torn
//! down afterwards unless `--keep`), with one wasmlet node (release build by
//! default) whose pods use the bed's own registry.
//!
//! Each prints what held and the measured recovery times, and writes the
//! same as JSON (`--out`, default `target/chaos/<scenario>-<unix time>.json`).
//! A scenario whose checks fail exits non-zero after printing.

mod node;
mod soak;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;
use wasmlet_testbed::Testbed;
use wasmlet_testbed::faults::Fault;

use crate::bench_pods::Profile;
use crate::testbed::{Location, up_with};
pub(crate) use node::Node;

/// The default first port: clear of the CI bed (26540, +30, +100), the
/// shared bed (26440) and the benchmark's (26840).
const DEFAULT_PORT_BASE: u16 = 26940;
/// Its pod network (a /19 per node: room for 8,190 pods).
const CLUSTER_CIDR: &str = "10.252.0.0/16";
const NODE_CIDR_MASK_SIZE: u8 = 19;
/// The target of issue 12 for the lease and statuses after an outage.
const OUTAGE_TARGET: Duration = Duration::from_secs(10);
/// The target of issue 12 for running pods after `kill -9`.
const KILL9_TARGET: Duration = Duration::from_secs(5);
/// How long anything a scenario waits for may take before it fails.
const WAIT_LIMIT: Duration = Duration::from_secs(600);

/// Where and how a scenario runs.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Common {
    /// State directory of the scenario's own test bed.
    #[arg(long, default_value_os_t = std::env::temp_dir().join("wasmlet-testbed-chaos"))]
    testbed_dir: PathBuf,
    /// First port of the scenario's own test bed.
    #[arg(long, default_value_t = DEFAULT_PORT_BASE)]
    testbed_port_base: u16,
    /// Which build of wasmlet runs.
    #[arg(long, value_enum, default_value = "release")]
    profile: Profile,
    /// Run this wasmlet binary instead of building one.
    #[arg(long)]
    wasmlet_bin: Option<PathBuf>,
    /// Leave the test bed running afterwards.
    #[arg(long)]
    keep: bool,
    /// Where the JSON report goes.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `apiserver-down` and `etcd-restart`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct OutageArgs {
    /// How long the component stays down.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// Idle pods running beside the HTTP pod and the finished one.
    #[arg(long, default_value_t = 20)]
    pods: usize,
    #[command(flatten)]
    common: Common,
}

/// `kill9`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Kill9Args {
    /// Running pods.
    #[arg(long, default_value_t = 500)]
    pods: usize,
    /// Finished pods (restartPolicy Never, exited 0) and pods in CrashLoopBackOff, each.
    #[arg(long, default_value_t = 10)]
    others: usize,
    #[command(flatten)]
    common: Common,
}

/// The running bed, torn down on drop unless kept.
pub(crate) struct Bed {
    pub(crate) tb: Testbed,
    keep: bool,
}

impl Drop for Bed {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("test bed kept in {}", self.tb.dir().display());
        } else if let Err(e) = Testbed::down(self.tb.dir()) {
            eprintln!("stopping the chaos test bed: {e}");
        }
    }
}

pub(crate) async fn bed(common: &Common) -> anyhow::Result<Bed> {
    let location = Location { dir: Some(common.testbed_dir.clone()), port_base: Some(common.testbed_port_base) };
    let tb = up_with(&location, |c| {
        c.cluster_cidr = CLUSTER_CIDR.to_owned();
        c.node_cidr_mask_size = NODE_CIDR_MASK_SIZE;
    })
    .await?;
    Ok(Bed { tb, keep: common.keep })
}

/// What one check found.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct Checks(Vec<(String, bool, String)>);

impl Checks {
    pub(crate) fn check(&mut self, what: &str, ok: bool, detail: impl Into<String>) {
        let detail = detail.into();
        println!("  [{}] {what}: {detail}", if ok { " ok " } else { "FAIL" });
        self.0.push((what.to_owned(), ok, detail));
    }

    pub(crate) fn passed(&self) -> bool {
        self.0.iter().all(|(_, ok, _)| *ok)
    }
}

/// Writes the report and fails if a check failed.
pub(crate) fn finish(
    common: &Common,
    scenario: &str,
    checks: &Checks,
    figures: serde_json::Value,
) -> anyhow::Result<()> {
    let out = common.out.clone().unwrap_or_else(|| {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        crate::steps::repo_root().join("target").join("chaos").join(format!("{scenario}-{secs}.json"))
    });
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let report = json!({ "scenario": scenario, "passed": checks.passed(), "checks": checks, "figures": figures });
    std::fs::write(&out, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing {}", out.display()))?;
    println!("report: {}", out.display());
    if !checks.passed() {
        bail!("{scenario}: some checks failed");
    }
    Ok(())
}

pub(crate) fn restarts(p: &Pod) -> i32 {
    container(p).map_or(-1, |c| c.restart_count)
}

pub(crate) fn container(p: &Pod) -> Option<&k8s_openapi::api::core::v1::ContainerStatus> {
    p.status.as_ref()?.container_statuses.as_ref()?.first()
}

pub(crate) fn running(p: &Pod) -> bool {
    container(p).and_then(|c| c.state.as_ref()?.running.as_ref()).is_some()
}

pub(crate) fn phase(p: &Pod) -> &str {
    p.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("")
}

fn ready(p: &Pod) -> bool {
    let conditions = p.status.as_ref().and_then(|s| s.conditions.as_ref());
    conditions.into_iter().flatten().any(|c| c.type_ == "Ready" && c.status == "True")
}

fn crash_looping(p: &Pod) -> bool {
    container(p).and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref()) == Some("CrashLoopBackOff")
}

fn name(p: &Pod) -> &str {
    p.metadata.name.as_deref().unwrap_or("")
}

/// Lists the scenario's pods until `cond` holds for every pod whose name
/// starts with `prefix`; how long that took. Errors on [`WAIT_LIMIT`].
pub(crate) async fn wait_all(api: &Api<Pod>, prefix: &str, cond: impl Fn(&Pod) -> bool) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let list = api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default();
        let ours: Vec<&Pod> = list.iter().filter(|p| name(p).starts_with(prefix)).collect();
        let behind = ours.iter().filter(|p| !cond(p)).count();
        if !ours.is_empty() && behind == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > WAIT_LIMIT {
            bail!("{behind} of {} pods {prefix}* not there after {WAIT_LIMIT:?}", ours.len());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The pods of the scenario by name prefix.
async fn pods_named(api: &Api<Pod>, prefix: &str) -> anyhow::Result<Vec<Pod>> {
    let list = api.list(&ListParams::default()).await?.items;
    Ok(list.into_iter().filter(|p| name(p).starts_with(prefix)).collect())
}

/// `apiserver-down` (`kube-apiserver`) and `etcd-restart` (`etcd`).
pub(crate) async fn outage(component: &str, args: OutageArgs) -> anyhow::Result<()> {
    let scenario = if component == "etcd" { "etcd-restart" } else { "apiserver-down" };
    let bed = bed(&args.common).await?;
    let tb = &bed.tb;
    let mut node = Node::start(tb, &args.common, args.pods + 10).await?;
    let api: Api<Pod> = node.pods(tb).await?;
    node.create(&api, "web", node::Workload::Http, "Always").await?;
    node.create(&api, "done", node::Workload::Exit(0), "Never").await?;
    for i in 0..args.pods {
        node.create(&api, &format!("idle-{i:04}"), node::Workload::Idle, "Always").await?;
    }
    wait_all(&api, "web", |p| running(p) && ready(p)).await?;
    wait_all(&api, "done", |p| phase(p) == "Succeeded").await?;
    wait_all(&api, "idle-", running).await?;
    let done_started = pods_named(&api, "done").await?.first().and_then(terminated_started);
    println!(
        "{scenario}: {} pods running on {}; taking {component} down for {} s",
        args.pods + 1,
        node.name,
        args.seconds
    );

    let web = api.get("web").await?;
    let ip = web.status.as_ref().and_then(|s| s.pod_ip.clone()).context("web has no IP")?;
    let prober = node::Prober::start(std::net::SocketAddr::new(ip.parse()?, 8080));
    let cpu_before = crate::bench::process_cpu(node.pid())?;
    let down_at = Instant::now();
    tb.inject(component, Fault::Stop)?;
    let mut peak_cpu = 0.0_f64;
    let mut last = (Instant::now(), cpu_before);
    while down_at.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_secs(5).min(Duration::from_secs(args.seconds))).await;
        let now = (Instant::now(), crate::bench::process_cpu(node.pid())?);
        peak_cpu = peak_cpu.max((now.1 - last.1).as_secs_f64() / (now.0 - last.0).as_secs_f64());
        last = now;
    }
    let serving = tb.start_component(component).await?;
    // The agent's dependency is the apiserver: it is back once that serves again.
    let api_wait = Instant::now();
    tb.wait_serving("kube-apiserver").await?;
    let serving = serving + api_wait.elapsed();
    let down_for = down_at.elapsed();
    let cpu = (crate::bench::process_cpu(node.pid())? - cpu_before).as_secs_f64() / down_for.as_secs_f64();
    let back = Instant::now();
    let restarted = k8s_openapi::jiff::Timestamp::now();

    let client = tb.admin_client().await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease_after = loop {
        let renewed =
            leases.get(&node.name).await.ok().and_then(|l| l.spec?.renew_time).is_some_and(|t| t.0 > restarted);
        if renewed || back.elapsed() > WAIT_LIMIT {
            break back.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let right = |p: &Pod| match name(p) {
        "done" => phase(p) == "Succeeded" && restarts(p) == 0,
        _ => running(p) && ready(p) && restarts(p) == 0,
    };
    let pods_after = wait_all(&api, "", right).await?;
    node.wait_ready(tb).await?;
    let node_after = back.elapsed();
    // The node lifecycle controller may mark the pods not Ready once its
    // own watches are back (after the agent's): watch for that, and for how
    // long each such overwrite lasted.
    let (episodes, right_from) = observe(&api, back, right).await?;
    let right_from = right_from.unwrap_or(pods_after);
    let (answered, failed) = prober.stop().await;
    let done = api.get("done").await?;
    let alive = node.alive();

    let mut checks = Checks::default();
    println!(
        "{scenario}: {component} down {:.1} s; the apiserver served {:.1} s after {component}'s start",
        down_for.as_secs_f64(),
        serving.as_secs_f64()
    );
    checks.check("agent kept running", alive, format!("pid {}", node.pid()));
    checks.check(
        "agent did not spin",
        cpu < 0.05,
        format!("{:.2} % of a core on average, {:.2} % at most over 5 s", cpu * 100.0, peak_cpu * 100.0),
    );
    checks.check(
        "HTTP pod answered throughout",
        failed.is_empty() && answered > 0,
        format!("{answered} answers, {} failures {:?}", failed.len(), failed.iter().take(3).collect::<Vec<_>>()),
    );
    checks.check(
        "Lease renewed",
        lease_after <= OUTAGE_TARGET,
        format!("{:.1} s after the apiserver served", lease_after.as_secs_f64()),
    );
    checks.check(
        "every pod's status right, nothing restarted",
        pods_after <= OUTAGE_TARGET,
        format!("{:.1} s after the apiserver served (target {} s)", pods_after.as_secs_f64(), OUTAGE_TARGET.as_secs()),
    );
    let longest = episodes.iter().map(|(from, to)| *to - *from).max().unwrap_or_default();
    checks.check(
        "statuses others overwrote were corrected",
        longest <= OUTAGE_TARGET,
        format!(
            "{} overwrite(s) {:?}, the longest right again after {:.1} s; all right from {:.1} s after the apiserver served",
            episodes.len(),
            episodes.iter().map(|(f, t)| format!("{:.1}-{:.1} s", f.as_secs_f64(), t.as_secs_f64())).collect::<Vec<_>>(),
            longest.as_secs_f64(),
            right_from.as_secs_f64()
        ),
    );
    checks.check(
        "Node Ready",
        node_after <= OUTAGE_TARGET,
        format!("{:.1} s after the apiserver served (target {} s)", node_after.as_secs_f64(), OUTAGE_TARGET.as_secs()),
    );
    checks.check(
        "finished pod not run again",
        phase(&done) == "Succeeded" && terminated_started(&done) == done_started && restarts(&done) == 0,
        phase(&done).to_owned(),
    );
    // The watches relisted: a new pod runs and a deletion completes.
    node.create(&api, "after", node::Workload::Idle, "Always").await?;
    let new_pod = wait_all(&api, "after", running).await?;
    checks.check("a pod created afterwards runs", true, format!("in {:.1} s", new_pod.as_secs_f64()));
    let relists = node.log_count("too old resource version");
    println!("  (agent watches that came back with 410 \"too old resource version\" and relisted: {relists})");
    let figures = json!({
        "component": component, "down_s": down_for.as_secs_f64(), "apiserver_serving_after_start_s": serving.as_secs_f64(),
        "agent_cpu_avg": cpu, "agent_cpu_peak_5s": peak_cpu, "http_answers": answered, "http_failures": failed.len(),
        "lease_renewed_s": lease_after.as_secs_f64(), "pods_right_s": pods_after.as_secs_f64(),
        "node_ready_s": node_after.as_secs_f64(), "overwrites": episodes.len(),
        "longest_overwrite_s": longest.as_secs_f64(), "all_right_from_s": right_from.as_secs_f64(), "pods": args.pods + 2, "watches_expired": relists, "profile": format!("{:?}", args.common.profile),
    });
    node.stop();
    finish(&args.common, scenario, &checks, figures)
}

/// How long [`observe`] watches the statuses after an outage.
const OBSERVE: Duration = Duration::from_secs(30);

/// Lists the pods every 200 ms until [`OBSERVE`] after `back`: the spans
/// (since `back`) in which some pod was not `right`, and since when all
/// were (`None`: all were throughout).
async fn observe(
    api: &Api<Pod>,
    back: Instant,
    right: impl Fn(&Pod) -> bool,
) -> anyhow::Result<(Vec<(Duration, Duration)>, Option<Duration>)> {
    let (mut episodes, mut open): (Vec<(Duration, Duration)>, Option<Duration>) = (Vec::new(), None);
    let mut right_from = None;
    while back.elapsed() < OBSERVE {
        let all = api.list(&ListParams::default()).await?.items.iter().all(&right);
        let now = back.elapsed();
        match (all, open) {
            (false, None) => open = Some(now),
            (true, Some(from)) => {
                episodes.push((from, now));
                open = None;
                right_from = Some(now);
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(from) = open {
        // Still wrong at the end: counts as never corrected.
        episodes.push((from, Duration::from_secs(3600)));
        right_from = Some(Duration::from_secs(3600));
    }
    Ok((episodes, right_from))
}

fn terminated_started(p: &Pod) -> Option<String> {
    let t = container(p)?.state.as_ref()?.terminated.as_ref()?;
    t.started_at.as_ref().map(|t| t.0.to_string())
}

/// `kill9`: `kill -9` of the agent with many running pods, some finished,
/// some in CrashLoopBackOff; then the restart.
pub(crate) async fn kill9(args: Kill9Args) -> anyhow::Result<()> {
    let bed = bed(&args.common).await?;
    let tb = &bed.tb;
    let total = args.pods + 2 * args.others;
    let mut node = Node::start(tb, &args.common, total + 10).await?;
    let api: Api<Pod> = node.pods(tb).await?;
    for i in 0..args.others {
        node.create(&api, &format!("done-{i:03}"), node::Workload::Exit(0), "Never").await?;
        node.create(&api, &format!("crash-{i:03}"), node::Workload::Exit(1), "Always").await?;
    }
    for i in 0..args.pods {
        node.create(&api, &format!("run-{i:04}"), node::Workload::Idle, "Always").await?;
    }
    let start = wait_all(&api, "run-", running).await?;
    wait_all(&api, "done-", |p| phase(p) == "Succeeded").await?;
    // Three restarts: a 40 s back-off, longer than the restart takes.
    wait_all(&api, "crash-", |p| crash_looping(p) && restarts(p) >= 3).await?;
    let crash_before = pods_named(&api, "crash-").await?;
    let done_before = pods_named(&api, "done-").await?;
    println!(
        "kill9: {} running pods (all running {:.1} s after creation), {} finished, {} crash-looping",
        args.pods,
        start.as_secs_f64(),
        args.others,
        args.others
    );

    node.kill9();
    let spawned = Instant::now();
    node.respawn(tb)?;
    let ready = node.wait_ready(tb).await?;
    wait_all(&api, "run-", |p| running(p) && restarts(p) == 1).await?;
    let all_running = spawned.elapsed();
    let mut checks = Checks::default();
    println!(
        "kill9: every running pod running again {:.1} s after the agent's start (the Node, still Ready \
         from before the kill, was seen Ready {:.1} s after it)",
        all_running.as_secs_f64(),
        ready.as_secs_f64()
    );
    checks.check(
        "every running pod running again",
        all_running <= KILL9_TARGET,
        format!("{:.1} s after the agent's start (target {} s)", all_running.as_secs_f64(), KILL9_TARGET.as_secs()),
    );
    let runs = pods_named(&api, "run-").await?;
    let wrong_last = runs.iter().filter(|p| {
        let last = container(p).and_then(|c| c.last_state.as_ref()?.terminated.clone());
        last.is_none_or(|t| t.exit_code != 255 || t.reason.as_deref() != Some("Unknown"))
    });
    checks.check(
        "each shows the restart (lastState 255 Unknown)",
        wrong_last.count() == 0,
        format!("{} pods", runs.len()),
    );
    let mut rerun = 0;
    for before in &done_before {
        let now = api.get(name(before)).await?;
        if phase(&now) != "Succeeded" || terminated_started(&now) != terminated_started(before) || restarts(&now) != 0 {
            rerun += 1;
        }
    }
    checks.check("no finished pod ran again", rerun == 0, format!("{rerun} of {} changed", done_before.len()));
    let mut lost = 0;
    for before in &crash_before {
        let now = api.get(name(before)).await?;
        let finished =
            |p: &Pod| container(p).and_then(|c| c.last_state.as_ref()?.terminated.as_ref()?.finished_at.clone());
        if !crash_looping(&now) || restarts(&now) != restarts(before) || finished(&now) != finished(before) {
            lost += 1;
        }
    }
    checks.check(
        "crash loops kept restart count and back-off",
        lost == 0,
        format!("{lost} of {} reset", crash_before.len()),
    );
    checks.check("no pod lost", pods_named(&api, "").await?.len() == total, format!("{total} pods"));
    let figures = json!({
        "pods_running": args.pods, "finished": args.others, "crash_looping": args.others,
        "initial_start_s": start.as_secs_f64(), "node_ready_s": ready.as_secs_f64(),
        "all_running_after_start_s": all_running.as_secs_f64(), "profile": format!("{:?}", args.common.profile),
    });
    node.stop();
    finish(&args.common, "kill9", &checks, figures)
}

pub(crate) use soak::{SoakArgs, soak};
