//! churn: run-to-completion pods bound to one node, created as fast as the
//! requests in flight allow; time until every one is Succeeded, then (one
//! delete-collection request) until every one is gone.

use std::time::Instant;

use super::{ended, guard, one_node, span, with_nodes};
use crate::bench_pods::Ctx;
use crate::bench_pods::peers::Built;
use crate::bench_pods::pods::{BenchNs, Pacing, Placement, Workload, pod};
use crate::bench_pods::report::{ChurnResult, Measured, Outcome};

pub(crate) async fn run(ctx: &Ctx, peer: &Built) -> anyhow::Result<Outcome> {
    if let Some(why) = peer.cannot_run(Workload::Complete) {
        return Ok(Outcome::Skipped(why.to_owned()));
    }
    let n = ctx.cfg.churn_pods;
    let nodes = one_node(peer, n + 110, &format!("churn-{}", peer.kind().short()));
    let node = nodes[0].name.clone();
    let result = with_nodes(ctx, peer, &nodes, true, async |agent, _| {
        let guard = guard(ctx, agent);
        let ns = BenchNs::create(&ctx.client, &format!("bench-churn-{}", peer.kind().short())).await?;
        let container = peer.container(ctx, Workload::Complete);
        let pods = (0..n)
            .map(|i| pod(&ns.name, &format!("c{i:05}"), &container, Workload::Complete, &Placement::Node(node.clone())))
            .collect();
        eprintln!("   creating {n} run-to-completion pods");
        let t0 = Instant::now();
        let (created, mut stopped) = ns.create_pods(pods, Pacing::InFlight(ctx.cfg.in_flight), &guard).await;
        let end = ns.wait(|c| c.succeeded + c.failed >= created, ctx.cfg.timeout(), ctx.cfg.stall(), &guard).await;
        stopped = stopped.or(ended(end, ctx, &ns));
        let counts = ns.recorder.counts();
        let times = ns.recorder.snapshot();
        let mut r =
            ChurnResult { pods: n, created, succeeded: counts.succeeded, failed: counts.failed, ..Default::default() };
        if counts.succeeded == n {
            r.to_succeeded_secs = span(t0, times.values().map(|t| t.succeeded));
            r.succeeded_per_sec = r.to_succeeded_secs.map(|s| n as f64 / s);
        }
        if counts.failed > 0 {
            let first = times.values().find_map(|t| t.failure.clone()).unwrap_or_default();
            stopped = stopped.or(Some(format!("{} pods Failed, e.g. {first}", counts.failed)));
        }
        eprintln!("   {}/{n} Succeeded in {:?} s; deleting", counts.succeeded, r.to_succeeded_secs);
        let t1 = Instant::now();
        ns.delete_pods().await?;
        let end = ns.wait(|c| c.deleted >= c.seen, ctx.cfg.timeout(), ctx.cfg.stall(), &guard).await;
        stopped = stopped.or(ended(end, ctx, &ns));
        let counts = ns.recorder.counts();
        r.deleted = counts.deleted;
        if counts.deleted == counts.seen && counts.seen == n {
            let times = ns.recorder.snapshot();
            r.to_deleted_secs = span(t1, times.values().map(|t| t.deleted));
            r.deleted_per_sec = r.to_deleted_secs.map(|s| n as f64 / s);
        }
        r.stopped = stopped;
        ns.teardown(&guard).await;
        Ok(r)
    })
    .await?;
    Ok(Outcome::Done(Box::new(Measured::Churn(result))))
}
