//! `cargo xtask chaos <scenario>`: break a dependency of a wasmlet node on
//! purpose (see `docs/reliability.md`). `registry` works on the running test
//! bed; the control-plane and agent scenarios (`apiserver-down`,
//! `etcd-restart`, `kill9`, `soak`) each run end to end on a test bed of
//! their own.
//!
//! Each scenario lives in its own `chaos_<name>.rs`; this file only lists
//! them.

use crate::chaos_cp;
use crate::testbed::Location;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    scenario: Chaos,
    #[command(flatten)]
    location: Location,
}

#[derive(clap::Subcommand)]
enum Chaos {
    /// A fault-injecting proxy in front of the test bed's plain registry.
    Registry(crate::chaos_registry::Args),
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

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.scenario {
        Chaos::Registry(a) => crate::chaos_registry::run(a, &args.location).await,
        Chaos::ApiserverDown(a) => chaos_cp::outage("kube-apiserver", a).await,
        Chaos::EtcdRestart(a) => chaos_cp::outage("etcd", a).await,
        Chaos::Kill9(a) => chaos_cp::kill9(a).await,
        Chaos::Soak(a) => chaos_cp::soak(a).await,
    }
}
