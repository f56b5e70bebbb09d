//! density: idle pods on one node at each level (a fresh node per level):
//! time until all are Ready, the peer's memory and CPU at steady state,
//! the longest gap between Lease renewals, apiserver requests per pod by
//! client. A level that does not get every pod Ready ends the peer's run:
//! where it failed is recorded, and higher levels are not tried.

use std::time::{Duration, Instant, SystemTime};

use super::{ended, guard, one_node, span, with_nodes};
use crate::bench_pods::bed::client_of;
use crate::bench_pods::peers::Built;
use crate::bench_pods::pods::{BenchNs, Pacing, Placement, Workload, pod};
use crate::bench_pods::probe::{ApiCounts, Role, sample};
use crate::bench_pods::report::{DensityLevel, DensityResult, Measured, Outcome};
use crate::bench_pods::watch_nodes::LeaseRecorder;
use crate::bench_pods::{Ctx, PeerKind};

/// How long the idle agent is sampled before the pods come.
const IDLE_SAMPLE: Duration = Duration::from_secs(10);
/// Pause between the last pod Ready and the steady-state sample.
const SETTLE: Duration = Duration::from_secs(10);

pub(crate) async fn run(ctx: &Ctx, peer: &Built) -> anyhow::Result<Outcome> {
    let mut result = DensityResult::default();
    for &level in &ctx.cfg.density {
        eprintln!("   level {level}");
        let l = level_run(ctx, peer, level).await.unwrap_or_else(|e| DensityLevel {
            pods: level,
            stopped: Some(format!("{e:#}")),
            ..Default::default()
        });
        let failed = l.ready < level;
        eprintln!(
            "   level {level}: {}/{level} Ready in {:?} s, {:?} KiB/pod{}",
            l.ready,
            l.to_ready_secs,
            l.rss_per_pod_kib,
            l.stopped.as_ref().map(|s| format!(", stopped: {s}")).unwrap_or_default()
        );
        result.levels.push(l);
        if failed {
            break;
        }
    }
    Ok(Outcome::Done(Box::new(Measured::Density(result))))
}

async fn level_run(ctx: &Ctx, peer: &Built, level: usize) -> anyhow::Result<DensityLevel> {
    let nodes = one_node(peer, level + 20, &format!("density-{}", peer.kind().short()));
    let node = nodes[0].name.clone();
    with_nodes(ctx, peer, &nodes, true, async |agent, _| {
        let guard = guard(ctx, agent);
        let mut l = DensityLevel { pods: level, ..Default::default() };
        l.idle = sample(|| agent.processes(), IDLE_SAMPLE).await;
        let leases = LeaseRecorder::start(ctx.admin.clone(), std::slice::from_ref(&node));
        let before = ApiCounts::scrape(&ctx.admin).await?;
        let wall0 = SystemTime::now();
        let ns = BenchNs::create(&ctx.client, &format!("bench-density-{}", peer.kind().short())).await?;
        let container = peer.container(ctx, Workload::Idle);
        let pods = (0..level)
            .map(|i| pod(&ns.name, &format!("d{i:05}"), &container, Workload::Idle, &Placement::Node(node.clone())))
            .collect();
        let t0 = Instant::now();
        let (created, mut stopped) = ns.create_pods(pods, Pacing::InFlight(ctx.cfg.in_flight), &guard).await;
        let end = ns.wait(|c| c.ready + c.failed >= created, ctx.cfg.timeout(), ctx.cfg.stall(), &guard).await;
        stopped = stopped.or(ended(end, ctx, &ns));
        let counts = ns.recorder.counts();
        (l.created, l.ready, l.failed) = (created, counts.ready, counts.failed);
        if counts.failed > 0 {
            let first = ns.recorder.snapshot().into_values().find_map(|t| t.failure).unwrap_or_default();
            stopped = stopped.or(Some(format!("{} pods Failed, e.g. {first}", counts.failed)));
        }
        if counts.ready == level {
            l.to_ready_secs = span(t0, ns.recorder.snapshot().values().map(|t| t.ready));
        }
        if stopped.is_none() {
            tokio::time::sleep(SETTLE).await;
            let steady = sample(|| agent.processes(), Duration::from_secs(ctx.cfg.steady_secs)).await;
            let per_pod = |a: f64, b: f64| (a - b) * 1024.0 / level as f64;
            l.rss_per_pod_kib = Some(per_pod(steady.total_rss(), l.idle.total_rss()));
            l.agent_rss_per_pod_kib = Some(per_pod(steady.rss(Role::Agent), l.idle.rss(Role::Agent)));
            l.steady = Some(steady);
        }
        let after = ApiCounts::scrape(&ctx.admin).await?;
        l.lease_gap = leases.max_gap(wall0, SystemTime::now());
        l.requests = after.since(&before);
        for (schema, count) in &l.requests.by_flow_schema {
            *l.requests_per_pod.entry(client_of(schema).to_owned()).or_default() += count / created.max(1) as f64;
        }
        l.stopped = stopped;
        ns.teardown(&guard).await;
        Ok(l)
    })
    .await
}

/// The client whose requests are the agent's own.
pub(crate) fn agent_client(peer: PeerKind) -> &'static str {
    if peer == PeerKind::Kwok { "kwok" } else { "nodes" }
}
