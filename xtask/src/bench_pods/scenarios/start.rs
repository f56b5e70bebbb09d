//! start: idle pods bound to one node, first at a steady rate, then in one
//! burst; for each pod, creation → Running and → Ready as seen by a watch
//! (upstream's pod-startup SLI, image already present).

use super::{guard, one_node, with_nodes};
use crate::bench_pods::Ctx;
use crate::bench_pods::peers::Built;
use crate::bench_pods::pods::{BenchNs, Guard, Pacing, Placement, Workload, pod};
use crate::bench_pods::report::{Measured, Outcome, Pcts, StartPhase, StartResult};

pub(crate) async fn run(ctx: &Ctx, peer: &Built) -> anyhow::Result<Outcome> {
    let cfg = &ctx.cfg;
    let max_pods = cfg.start_steady.max(cfg.start_burst) + 110;
    let nodes = one_node(peer, max_pods, &format!("start-{}", peer.kind().short()));
    let node = nodes[0].name.clone();
    let result = with_nodes(ctx, peer, &nodes, true, async |agent, _| {
        let guard = guard(ctx, agent);
        let steady = phase(ctx, peer, &node, "steady", cfg.start_steady, Pacing::Rate(cfg.start_rate), &guard).await?;
        let burst = phase(ctx, peer, &node, "burst", cfg.start_burst, Pacing::InFlight(cfg.in_flight), &guard).await?;
        Ok(StartResult { steady, burst })
    })
    .await?;
    Ok(Outcome::Done(Box::new(Measured::Start(result))))
}

async fn phase(
    ctx: &Ctx,
    peer: &Built,
    node: &str,
    what: &str,
    n: usize,
    pacing: Pacing,
    guard: &Guard,
) -> anyhow::Result<StartPhase> {
    let ns = BenchNs::create(&ctx.client, &format!("bench-start-{}-{what}", peer.kind().short())).await?;
    let container = peer.container(ctx, super::Workload::Idle);
    let pods = (0..n)
        .map(|i| pod(&ns.name, &format!("p{i:05}"), &container, Workload::Idle, &Placement::Node(node.to_owned())))
        .collect();
    eprintln!("   {what}: creating {n} pods ({pacing:?})");
    let (created, mut stopped) = ns.create_pods(pods, pacing, guard).await;
    let end = ns.wait(|c| c.ready + c.failed >= created, ctx.cfg.timeout(), ctx.cfg.stall(), guard).await;
    stopped = stopped.or(super::ended(end, ctx, &ns));
    let counts = ns.recorder.counts();
    let times = ns.recorder.snapshot();
    let to_running: Vec<f64> = times.values().filter_map(|t| t.since_created(t.running)).collect();
    let mut ready: Vec<f64> = times.values().filter_map(|t| t.since_created(t.ready)).collect();
    ready.sort_by(f64::total_cmp);
    if counts.failed > 0 {
        let first = times.values().find_map(|t| t.failure.clone()).unwrap_or_default();
        stopped = stopped.or(Some(format!("{} pods Failed, e.g. {first}", counts.failed)));
    }
    ns.teardown(guard).await;
    let phase = StartPhase {
        pods: n,
        created,
        running: counts.running,
        ready: counts.ready,
        failed: counts.failed,
        to_running: Pcts::of(&to_running),
        to_ready: Pcts::of(&ready),
        ready_samples: ready,
        stopped,
    };
    eprintln!(
        "   {what}: {}/{} Ready, p50 {:.3}s p99 {:.3}s",
        phase.ready,
        n,
        phase.to_ready.map_or(f64::NAN, |p| p.p50),
        phase.to_ready.map_or(f64::NAN, |p| p.p99)
    );
    Ok(phase)
}
