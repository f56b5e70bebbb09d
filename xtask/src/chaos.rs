//! `cargo xtask chaos <scenario>`: break a dependency of a wasmlet node on
//! purpose, on the running test bed (see `docs/reliability.md`).
//!
//! Each scenario lives in its own `chaos_<name>.rs`; this file only lists
//! them.

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
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.scenario {
        Chaos::Registry(a) => crate::chaos_registry::run(a, &args.location).await,
    }
}
