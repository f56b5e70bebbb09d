//! `cargo xtask`: the project's commands.
//!
//! - `cargo xtask demo` brings up the test bed and shows the examples running.
//! - `cargo xtask test` runs the whole suite (what `.ci/run` calls).
//! - `cargo xtask testbed up|down|node-kubeconfig NAME` manages the test bed.
//! - `cargo xtask chaos <scenario>` breaks a dependency of a node on purpose
//!   (`docs/reliability.md`), e.g. `chaos registry --mode reset`.
//! - `cargo xtask bench http` compares wasmlet's wasi:http serving with
//!   `wasmtime serve` (see `docs/benchmarks.md`).
//! - `cargo xtask package deb` builds the Debian package (`deploy/deb`).
//! - `cargo xtask bench pods` compares pod start, churn, density, footprint
//!   and many nodes against kwok, a hollow kubelet and the kubelet on containerd.
//! - `cargo xtask chaos <scenario>` runs a fault scenario on a test bed of its own.

mod bench;
mod bench_http;
mod bench_pod;
mod bench_pods;
mod chaos;
mod chaos_cp;
mod chaos_registry;
mod demo;
mod package;
mod steps;
mod test;
mod test_run;
mod testbed;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "wasmlet project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the test bed: a real control plane, OCI registries and fixtures.
    Testbed(testbed::Args),
    /// Bring up the test bed and show the examples running.
    Demo,
    /// Run the whole test suite against a fresh test bed.
    Test(test::Args),
    /// Build the wasm fixtures into target/fixtures.
    Fixtures,
    /// Benchmarks (commands, not tests); results go to stdout.
    Bench(Box<bench::Args>),
    /// Build packages (`package deb`).
    #[command(subcommand)]
    Package(package::Package),
    /// Break a dependency on purpose on the running test bed (docs/reliability.md).
    Chaos(chaos::Args),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("XTASK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,wasmlet_oci=warn,kube_client=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Testbed(args) => rt.block_on(testbed::run(args)),
        Command::Demo => rt.block_on(demo::run()),
        Command::Test(args) => rt.block_on(test::run(args)),
        Command::Fixtures => steps::build_fixtures().map(|_| ()),
        Command::Bench(args) => rt.block_on(bench::run(*args)),
        Command::Package(package) => package::run(package),
        Command::Chaos(args) => rt.block_on(chaos::run(args)),
    }
}
