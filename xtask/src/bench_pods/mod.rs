//! `cargo xtask bench pods`: pod start, churn, density, footprint and
//! multi-node runs, side by side, against kwok, a hollow kubelet, the
//! upstream kubelet on containerd, and wasmlet, on one control plane in
//! one run (see `docs/benchmarks.md`, "Pods at scale").
//!
//! Scenario-major: each scenario runs against each peer in turn, so the
//! peers of a scenario see the machine in the same state. Every peer gets
//! the same pod spec except its container's image, command and env.
//! Results go to stdout (tables with wasmlet's ratio to each peer), to
//! `report.json` and to two SVG plots in the output directory.

mod bed;
mod peers;
mod plot;
mod pods;
mod probe;
mod report;
mod scenarios;
mod watch;
mod watch_nodes;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use wasmlet_testbed::Testbed;

pub(crate) use peers::PeerKind;
use report::Report;
pub(crate) use scenarios::Scenario;

use crate::testbed::{Location, up_with};

/// Fake pod IPs kwok hands out (never configured anywhere; blackholed).
pub(crate) const KWOK_CIDR: &str = "10.143.0.0/16";

/// Which build of wasmlet runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Profile {
    Release,
    Debug,
}

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Scenarios to run.
    #[arg(long, value_delimiter = ',', default_value = "start,churn,density,footprint,nodes")]
    scenarios: Vec<Scenario>,
    /// Peers to run them against (wasmlet's ratios are to each of the others).
    #[arg(long, value_delimiter = ',', default_value = "kwok,hollow,kubelet,wasmlet")]
    peers: Vec<PeerKind>,
    #[command(flatten)]
    sizes: Config,
    /// Where report.json and the plots go (default target/bench-pods/<time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// State directory of the benchmark's own test bed.
    #[arg(long, default_value_os_t = bed::default_dir())]
    testbed_dir: PathBuf,
    /// First port of the benchmark's own test bed.
    #[arg(long, default_value_t = bed::DEFAULT_PORT_BASE)]
    testbed_port_base: u16,
    /// Stop the benchmark's test bed afterwards.
    #[arg(long)]
    down: bool,
    /// Fail unless every pod reached its phase and every figure was read
    /// (what the small run in `cargo xtask test` asserts).
    #[arg(long)]
    check: bool,
    /// Run nothing: print the tables of these report.json files (merged,
    /// later ones adding their scenarios) and draw their plots into --out.
    #[arg(long, value_delimiter = ',')]
    render: Vec<PathBuf>,
}

/// Sizes and limits of a run (the defaults are what `docs/benchmarks.md` records).
#[derive(clap::Args, Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Config {
    /// start: pods created at a steady rate ...
    #[arg(long, default_value_t = 200)]
    pub(crate) start_steady: usize,
    /// ... of this many per second ...
    #[arg(long, default_value_t = 20.0)]
    pub(crate) start_rate: f64,
    /// ... then this many in one burst.
    #[arg(long, default_value_t = 200)]
    pub(crate) start_burst: usize,
    /// Create requests in flight during a burst or a bulk creation.
    #[arg(long, default_value_t = 50)]
    pub(crate) in_flight: usize,
    /// churn: run-to-completion pods.
    #[arg(long, default_value_t = 1000)]
    pub(crate) churn_pods: usize,
    /// density: idle pods on one node, one fresh run per level.
    #[arg(long, value_delimiter = ',', default_value = "110,1000,5000")]
    pub(crate) density: Vec<usize>,
    /// density: seconds of steady state sampled (RSS, CPU) once all are Ready.
    #[arg(long, default_value_t = 30)]
    pub(crate) steady_secs: u64,
    /// footprint: seconds an idle agent with no pods is sampled.
    #[arg(long, default_value_t = 60)]
    pub(crate) footprint_secs: u64,
    /// nodes: how many nodes ...
    #[arg(long, default_value_t = 20)]
    pub(crate) nodes: usize,
    /// ... with this many pods each.
    #[arg(long, default_value_t = 50)]
    pub(crate) pods_per_node: usize,
    /// How long pods of one step may take to reach their phase.
    #[arg(long, default_value_t = 1800)]
    pub(crate) timeout_secs: u64,
    /// A wait ends when no pod changed state for this long (s).
    #[arg(long, default_value_t = 300)]
    pub(crate) stall_secs: u64,
    /// Stop a step when the machine's MemAvailable falls below this (MiB).
    #[arg(long, default_value_t = 3072)]
    pub(crate) min_available_mib: u64,
    /// Log filter for the wasmlet nodes (their WASMLET_LOG, e.g. `debug`,
    /// for profiling; default: wasmlet's own, info).
    #[arg(long)]
    pub(crate) wasmlet_log: Option<String>,
    /// wasmlet build to run.
    #[arg(long, value_enum, default_value_t = Profile::Release)]
    pub(crate) wasmlet_profile: Profile,
}

impl Config {
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub(crate) fn stall(&self) -> Duration {
        Duration::from_secs(self.stall_secs)
    }
}

/// What every scenario works with.
pub(crate) struct Ctx {
    pub(crate) tb: Testbed,
    /// The benchmark's identity: creates and watches pods.
    pub(crate) client: kube::Client,
    /// cluster-admin: metrics, cleanup.
    pub(crate) admin: kube::Client,
    pub(crate) kwok_kubeconfig: PathBuf,
    /// Working directory (node roots, configs, the native image).
    pub(crate) work: PathBuf,
    pub(crate) cfg: Config,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    if !args.render.is_empty() {
        let report = Report::merge(&args.render)?;
        let out = args.out.clone().unwrap_or_else(|| args.render[0].parent().map(PathBuf::from).unwrap_or_default());
        std::fs::create_dir_all(&out)?;
        std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
        plot::all(&report, &out)?;
        println!("{}", report.tables());
        return Ok(());
    }
    let location = Location { dir: Some(args.testbed_dir.clone()), port_base: Some(args.testbed_port_base) };
    let tb = up_with(&location, |c| {
        c.cluster_cidr = bed::CLUSTER_CIDR.to_owned();
        c.service_cidr = bed::SERVICE_CIDR.to_owned();
        c.node_cidr_mask_size = bed::NODE_CIDR_MASK_SIZE;
    })
    .await?;
    anyhow::ensure!(
        tb.config().node_cidr_mask_size <= bed::NODE_CIDR_MASK_SIZE,
        "the test bed in {} runs with node CIDRs of /{}; stop it (cargo xtask testbed down --dir {0}) and run again",
        tb.dir().display(),
        tb.config().node_cidr_mask_size
    );
    let out = args.out.clone().unwrap_or_else(|| {
        crate::steps::cargo_target_dir().join("bench-pods").join(report::timestamp().replace(':', ""))
    });
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = run_with(&tb, &args.scenarios, &args.peers, args.sizes.clone(), &out, &command).await;
    if args.down {
        Testbed::down(tb.dir())?;
    }
    let report = report?;
    println!("{}", report.tables());
    eprintln!("report and plots in {}", out.display());
    if args.check {
        check(&report, &out)?;
    }
    Ok(())
}

/// Runs `scenarios` against `peers` on `tb`; writes report.json and the
/// plots into `out`.
pub(crate) async fn run_with(
    tb: &Testbed,
    scenarios: &[Scenario],
    peers: &[PeerKind],
    cfg: Config,
    out: &std::path::Path,
    command: &str,
) -> anyhow::Result<Report> {
    let cidrs = [tb.config().cluster_cidr.as_str(), tb.config().service_cidr.as_str(), KWOK_CIDR];
    let _routes = bed::Blackholes::add(&cidrs);
    let ids = bed::identities(tb).await?;
    let ctx = Ctx {
        tb: tb.clone(),
        client: ids.client,
        admin: ids.admin,
        kwok_kubeconfig: ids.kwok_kubeconfig,
        work: tb.dir().join("bench"),
        cfg,
    };
    let mut report = Report::new(&ctx.cfg, command);
    let mut built = Vec::new();
    for &kind in peers {
        eprintln!("== building {}", kind.label());
        let b = peers::build(kind, &ctx).await;
        report.built(kind, b.as_ref().err());
        built.push((kind, b));
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let save = |report: &Report| -> anyhow::Result<()> {
        std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(report)?).context("writing report.json")
    };
    for &scenario in scenarios {
        for (kind, b) in &built {
            eprintln!("== {scenario:?} on {} (load average {})", kind.label(), crate::bench::load_average());
            let outcome = match b {
                Ok(b) => scenarios::run(scenario, &ctx, b).await,
                Err(e) => report::Outcome::Failed(format!("build failed: {e:#}")),
            };
            report.record(scenario, *kind, outcome);
            // What is measured so far survives an interrupted run.
            save(&report)?;
        }
    }
    report.finish();
    save(&report)?;
    plot::all(&report, out)?;
    Ok(report)
}

/// The small run inside `cargo xtask test`: every scenario with a few
/// dozen pods, wasmlet (debug build) and kwok, on the CI test bed. Fails
/// when a pod did not reach its phase or a figure was not read; never on
/// a timing.
pub(crate) async fn smoke(tb: &Testbed) -> anyhow::Result<()> {
    let cfg = Config {
        start_steady: 10,
        start_rate: 10.0,
        start_burst: 10,
        in_flight: 10,
        churn_pods: 20,
        density: vec![20],
        steady_secs: 3,
        footprint_secs: 3,
        nodes: 2,
        pods_per_node: 5,
        timeout_secs: 300,
        stall_secs: 120,
        min_available_mib: 512,
        wasmlet_log: None,
        wasmlet_profile: Profile::Debug,
    };
    let scenarios = [Scenario::Start, Scenario::Churn, Scenario::Density, Scenario::Footprint, Scenario::Nodes];
    let out = crate::steps::cargo_target_dir().join("bench-pods-smoke");
    let report = run_with(tb, &scenarios, &[PeerKind::Kwok, PeerKind::Wasmlet], cfg, &out, "cargo xtask test").await?;
    eprintln!("{}", report.tables());
    check(&report, &out)
}

/// Every pod reached its phase, every figure was read, every file written.
fn check(report: &Report, out: &std::path::Path) -> anyhow::Result<()> {
    for file in ["report.json", "start-cdf.svg", "density.svg"] {
        let len = std::fs::metadata(out.join(file)).map(|m| m.len()).unwrap_or(0);
        anyhow::ensure!(len > 0, "the benchmark wrote no {file} in {}", out.display());
    }
    let problems = report.problems();
    anyhow::ensure!(problems.is_empty(), "the benchmark run is incomplete:\n  {}", problems.join("\n  "));
    Ok(())
}
