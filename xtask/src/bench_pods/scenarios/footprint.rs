//! footprint: a peer's node with no pods (and nothing run on it before),
//! sampled once a second: resident memory and CPU.

use std::time::Duration;

use super::{one_node, with_nodes};
use crate::bench_pods::Ctx;
use crate::bench_pods::peers::Built;
use crate::bench_pods::probe::sample;
use crate::bench_pods::report::{FootprintResult, Measured, Outcome};

/// Pause between the node turning Ready and the sample.
const SETTLE: Duration = Duration::from_secs(10);

pub(crate) async fn run(ctx: &Ctx, peer: &Built) -> anyhow::Result<Outcome> {
    let nodes = one_node(peer, 110, &format!("footprint-{}", peer.kind().short()));
    let usage = with_nodes(ctx, peer, &nodes, false, async |agent, _| {
        tokio::time::sleep(SETTLE).await;
        Ok(sample(|| agent.processes(), Duration::from_secs(ctx.cfg.footprint_secs)).await)
    })
    .await?;
    eprintln!("   RSS {:.1} MiB, CPU {:.2} %", usage.total_rss(), usage.total_cpu());
    Ok(Outcome::Done(Box::new(Measured::Footprint(FootprintResult { usage }))))
}
