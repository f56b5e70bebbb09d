//! The scenarios, and what they share: starting a peer's nodes, waiting
//! until they are Ready, warming their image caches, stopping them.

mod churn;
pub(crate) mod density;
mod footprint;
mod nodes;
mod start;

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::peers::{Agent, Built, NodeSpec};
use super::pods::{BenchNs, Guard, Placement, Workload, pod};
use super::probe::mem_available_mib;
use super::report::Outcome;
use super::watch_nodes::NodeRecorder;
use super::{Ctx, pods};

/// A scenario, as named on the command line.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scenario {
    Start,
    Churn,
    Density,
    Footprint,
    Nodes,
}

/// How long nodes may take to register and turn Ready.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long warm-up pods may take (an image pull and a compile).
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(300);

pub(crate) async fn run(scenario: Scenario, ctx: &Ctx, peer: &Built) -> Outcome {
    let result = match scenario {
        Scenario::Start => start::run(ctx, peer).await,
        Scenario::Churn => churn::run(ctx, peer).await,
        Scenario::Density => density::run(ctx, peer).await,
        Scenario::Footprint => footprint::run(ctx, peer).await,
        Scenario::Nodes => nodes::run(ctx, peer).await,
    };
    match result {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed(format!("{e:#}")),
    }
}

/// One node named after the peer.
pub(crate) fn one_node(peer: &Built, max_pods: usize, pool: &str) -> Vec<NodeSpec> {
    vec![NodeSpec {
        name: format!("bench-{}", peer.kind().short()),
        index: 0,
        max_pods: u32::try_from(max_pods).unwrap_or(u32::MAX),
        pool: pool.to_owned(),
    }]
}

/// Stops a step when an agent process died or the machine runs out of memory.
pub(crate) fn guard(ctx: &Ctx, agent: &Agent) -> Guard {
    let dead = agent.watchdog();
    let floor = ctx.cfg.min_available_mib;
    Arc::new(move || {
        if let Some(why) = dead() {
            return Some(why);
        }
        let available = mem_available_mib();
        (available < floor)
            .then(|| format!("the machine ran out of memory: MemAvailable {available} MiB < {floor} MiB"))
    })
}

/// Starts `nodes`, waits until every one is Ready, warms their image
/// caches when `warm` (one pod of each workload per node), runs `f`, and
/// stops the nodes whatever happened.
pub(crate) async fn with_nodes<T>(
    ctx: &Ctx,
    peer: &Built,
    nodes: &[NodeSpec],
    warm: bool,
    f: impl AsyncFnOnce(&Agent, &NodeRecorder) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let pool = nodes.first().map(|n| n.pool.clone()).unwrap_or_default();
    let recorder = NodeRecorder::start(ctx.admin.clone(), &format!("{}={pool}", pods::POOL_LABEL));
    let agent = peer.start(ctx, nodes).await?;
    let result = async {
        let names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
        recorder.wait_ready(&names, NODE_READY_TIMEOUT, &guard(ctx, &agent)).await?;
        if warm {
            warm_up(ctx, peer, &agent, nodes).await?;
        }
        f(&agent, &recorder).await
    }
    .await;
    agent.stop(ctx).await;
    result
}

/// Runs one pod of each workload the peer supports on every node until it
/// is Ready or Succeeded (images pulled, code compiled), then removes them.
async fn warm_up(ctx: &Ctx, peer: &Built, agent: &Agent, nodes: &[NodeSpec]) -> anyhow::Result<()> {
    let ns = BenchNs::create(&ctx.client, &format!("bench-warmup-{}", peer.kind().short())).await?;
    let guard = guard(ctx, agent);
    let mut pods = Vec::new();
    let workloads = [Workload::Idle, Workload::Complete].into_iter().filter(|w| peer.cannot_run(*w).is_none());
    for workload in workloads {
        let container = peer.container(ctx, workload);
        for node in nodes {
            let name = format!("warm-{}-{}", node.index, if workload == Workload::Idle { "idle" } else { "done" });
            pods.push(pod(&ns.name, &name, &container, workload, &Placement::Node(node.name.clone())));
        }
    }
    let n = pods.len();
    let (created, stopped) = ns.create_pods(pods, pods::Pacing::InFlight(ctx.cfg.in_flight), &guard).await;
    if let Some(why) = stopped {
        anyhow::bail!("warm-up: {why}");
    }
    let end = ns.wait(|c| c.ready + c.succeeded + c.failed >= created, WARM_UP_TIMEOUT, WARM_UP_TIMEOUT, &guard).await;
    let counts = ns.recorder.counts();
    let failures: Vec<String> =
        ns.recorder.snapshot().into_iter().filter_map(|(n, t)| Some(format!("{n}: {}", t.failure?))).collect();
    ns.teardown(&guard).await;
    anyhow::ensure!(
        end == pods::WaitEnd::Done && counts.failed == 0,
        "warm-up pods did not all come up ({n} pods: {counts:?}, {end:?}): {failures:?}"
    );
    Ok(())
}

/// Seconds from `from` to the latest of `times` (None if any is missing).
pub(crate) fn span(from: Instant, times: impl Iterator<Item = Option<Instant>>) -> Option<f64> {
    let mut last = from;
    for t in times {
        last = last.max(t?);
    }
    Some(last.duration_since(from).as_secs_f64())
}

/// Why a wait did not end in `Done`, with what the pods still wait for.
pub(crate) fn ended(end: pods::WaitEnd, ctx: &Ctx, ns: &BenchNs) -> Option<String> {
    let why = match end {
        pods::WaitEnd::Done => return None,
        pods::WaitEnd::Timeout => format!("timed out after {}s", ctx.cfg.timeout_secs),
        pods::WaitEnd::Stalled => format!("no pod changed state for {} s", ctx.cfg.stall_secs),
        pods::WaitEnd::Stopped(why) => why,
    };
    Some(match ns.recorder.stuck_summary() {
        Some(stuck) => format!("{why}; {stuck}"),
        None => why,
    })
}
