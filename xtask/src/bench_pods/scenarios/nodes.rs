//! nodes: many nodes of one peer joined to the control plane, idle pods
//! spread over them by the scheduler (a topology spread constraint per
//! hostname, maxSkew 1); all Ready, time to all Ready, and whether any node
//! was ever seen NotReady after it first turned Ready.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{ended, guard, span, with_nodes};
use crate::bench_pods::peers::{Built, NodeSpec};
use crate::bench_pods::pods::{BenchNs, Pacing, Placement, Workload, pod};
use crate::bench_pods::probe::sample;
use crate::bench_pods::report::{Measured, NodesResult, Outcome};
use crate::bench_pods::{Ctx, PeerKind};

/// How long all agents are sampled once every pod is Ready.
const SAMPLE: Duration = Duration::from_secs(10);

pub(crate) async fn run(ctx: &Ctx, peer: &Built) -> anyhow::Result<Outcome> {
    if peer.kind() == PeerKind::Kubelet {
        return Ok(Outcome::Skipped(
            "one real kubelet per machine: several would share (and fight over) the same cgroups".into(),
        ));
    }
    let (n_nodes, per_node) = (ctx.cfg.nodes, ctx.cfg.pods_per_node);
    let pool = format!("nodes-{}", peer.kind().short());
    let nodes: Vec<NodeSpec> = (0..n_nodes)
        .map(|i| NodeSpec {
            name: format!("bench-{}-{i:02}", peer.kind().short()),
            index: i,
            max_pods: u32::try_from(per_node + 110).unwrap_or(u32::MAX),
            pool: pool.clone(),
        })
        .collect();
    eprintln!("   starting {n_nodes} nodes");
    let result = with_nodes(ctx, peer, &nodes, true, async |agent, node_watch| {
        let guard = guard(ctx, agent);
        let total = n_nodes * per_node;
        let ns = BenchNs::create(&ctx.client, &format!("bench-nodes-{}", peer.kind().short())).await?;
        let container = peer.container(ctx, Workload::Idle);
        let pods = (0..total)
            .map(|i| pod(&ns.name, &format!("n{i:05}"), &container, Workload::Idle, &Placement::Pool(pool.clone())))
            .collect();
        eprintln!("   creating {total} pods for the scheduler to spread");
        let t0 = Instant::now();
        let (created, mut stopped) = ns.create_pods(pods, Pacing::InFlight(ctx.cfg.in_flight), &guard).await;
        let end = ns.wait(|c| c.ready + c.failed >= created, ctx.cfg.timeout(), ctx.cfg.stall(), &guard).await;
        stopped = stopped.or(ended(end, ctx, &ns));
        let counts = ns.recorder.counts();
        let times = ns.recorder.snapshot();
        let mut r = NodesResult {
            nodes: n_nodes,
            pods: total,
            created,
            ready: counts.ready,
            failed: counts.failed,
            ..Default::default()
        };
        if counts.ready == total {
            r.to_ready_secs = span(t0, times.values().map(|t| t.ready));
            r.usage = Some(sample(|| agent.processes(), SAMPLE).await);
        }
        let mut per_node: HashMap<String, usize> = nodes.iter().map(|n| (n.name.clone(), 0)).collect();
        for t in times.values().filter(|t| t.ready.is_some()) {
            if let Some(count) = t.node.as_ref().and_then(|n| per_node.get_mut(n)) {
                *count += 1;
            }
        }
        r.per_node_min = per_node.values().copied().min().unwrap_or(0);
        r.per_node_max = per_node.values().copied().max().unwrap_or(0);
        for (node, t) in node_watch.snapshot() {
            r.not_ready.extend(t.not_ready.iter().map(|why| format!("{node}: {why}")));
        }
        r.stopped = stopped;
        eprintln!(
            "   {}/{total} Ready in {:?} s, {}–{} per node, {} NotReady",
            r.ready,
            r.to_ready_secs,
            r.per_node_min,
            r.per_node_max,
            r.not_ready.len()
        );
        ns.teardown(&guard).await;
        Ok(r)
    })
    .await?;
    Ok(Outcome::Done(Box::new(Measured::Nodes(result))))
}
