//! `cargo xtask chaos <scenario>`: fault scenarios (see `docs/reliability.md`),
//! each end to end on a test bed of its own.

use crate::chaos_cp;

#[derive(clap::Subcommand)]
pub(crate) enum Chaos {
    /// Stop kube-apiserver for a while (default 120 s), start it again, and
    /// check the node and its pods.
    ApiserverDown(chaos_cp::OutageArgs),
    /// Stop etcd under a running apiserver for a while, start it again, and
    /// check the node and its pods.
    EtcdRestart(chaos_cp::OutageArgs),
    /// `kill -9` the agent with many running pods (plus finished and
    /// crash-looping ones) and start it again.
    Kill9(chaos_cp::Kill9Args),
    /// Continuous pod churn; the agent's RSS and open fds over time.
    Soak(chaos_cp::SoakArgs),
}

pub(crate) async fn run(chaos: Chaos) -> anyhow::Result<()> {
    match chaos {
        Chaos::ApiserverDown(args) => chaos_cp::outage("kube-apiserver", args).await,
        Chaos::EtcdRestart(args) => chaos_cp::outage("etcd", args).await,
        Chaos::Kill9(args) => chaos_cp::kill9(args).await,
        Chaos::Soak(args) => chaos_cp::soak(args).await,
    }
}
