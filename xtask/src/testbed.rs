//! `cargo xtask testbed up|down|node-kubeconfig NAME|bootstrap-kubeconfig PATH|csi --node NAME --root-dir DIR|devices --node NAME --root-dir DIR|metrics-server`.

use std::path::PathBuf;

use anyhow::Context;
use wasmlet_testbed::devices::DevicesBed;
use wasmlet_testbed::{Config, Testbed};

use crate::steps;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    location: Location,
}

/// Which test bed: its directory and ports.
#[derive(clap::Args, Clone)]
pub(crate) struct Location {
    /// State directory of the test bed.
    #[arg(long, global = true, env = "WASMLET_TESTBED_DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// First of the consecutive ports the test bed uses.
    #[arg(long, global = true, env = "WASMLET_TESTBED_PORT_BASE")]
    pub(crate) port_base: Option<u16>,
}

impl Location {
    pub(crate) fn dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(Config::default_dir)
    }
}

#[derive(clap::Subcommand)]
enum Command {
    /// Build what is missing, start the cluster and registries, push the
    /// fixtures, and print `export` lines for a shell to `eval`.
    Up,
    /// Stop everything the test bed started and remove its directory.
    Down,
    /// Print the paths of a kubeconfig for node NAME (first line), its kubelet
    /// serving certificate (second) and key (third).
    NodeKubeconfig {
        /// The node name.
        name: String,
    },
    /// Create a bootstrap token (valid for --hours) and write a bootstrap
    /// kubeconfig holding it to PATH (mode 0600), for
    /// `wasmlet --bootstrap-kubeconfig PATH` (TLS bootstrapping).
    BootstrapKubeconfig {
        /// Where to write it.
        path: PathBuf,
        /// How long the token stays valid.
        #[arg(long, default_value_t = 24)]
        hours: u64,
    },
    /// Start CSI storage for the wasmlet node NAME whose `--root-dir` is
    /// DIR: upstream's mock CSI driver twice (one needing no attach, one
    /// requiring it), csi-provisioner and csi-attacher, their CSIDriver
    /// objects and StorageClasses; print `export` lines
    /// (WASMLET_STORAGE_CLASS, WASMLET_STORAGE_CLASS_WFFC,
    /// WASMLET_STORAGE_CLASS_ATTACH). `testbed down` stops them.
    Csi {
        /// The wasmlet node's name.
        #[arg(long)]
        node: String,
        /// The wasmlet node's `--root-dir`.
        #[arg(long)]
        root_dir: PathBuf,
    },
    /// Start device plugins for the wasmlet node NAME whose `--root-dir` is
    /// DIR: the generic device plugin (4 devices of wasmlet.test/null) and
    /// upstream's DRA test driver, with its DeviceClass; print `export`
    /// lines (WASMLET_DEVICE_RESOURCE, WASMLET_DEVICE_CLASS). `testbed down`
    /// stops them.
    Devices {
        /// The wasmlet node's name.
        #[arg(long)]
        node: String,
        /// The wasmlet node's `--root-dir`.
        #[arg(long)]
        root_dir: PathBuf,
    },
    /// Start metrics-server (built from Go modules, cached) behind the
    /// apiserver's aggregation layer, so that `kubectl top node` and
    /// `kubectl top pod` work; `testbed down` stops it.
    MetricsServer,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Up => {
            let tb = up(&args.location).await?;
            print_exports(&tb);
            Ok(())
        }
        Command::Down => {
            let dir = args.location.dir();
            Testbed::down(&dir).with_context(|| format!("stopping the test bed in {}", dir.display()))?;
            eprintln!("test bed in {} stopped", dir.display());
            Ok(())
        }
        Command::NodeKubeconfig { name } => {
            let tb = Testbed::open(&args.location.dir())?;
            // The serving certificate must name an address the apiserver can
            // reach the node on: it refuses loopback for `nodes/NAME/proxy`.
            let ip = wasmlet_testbed::host_ip();
            let creds = tb.node_credentials(&name, &[ip])?;
            println!("{}", creds.kubeconfig.display());
            println!("{}", creds.serving.cert.display());
            println!("{}", creds.serving.key.display());
            eprintln!("start node {name} with --node-ip={ip}: its serving certificate names {ip} and 127.0.0.1");
            Ok(())
        }
        Command::BootstrapKubeconfig { path, hours } => {
            let tb = Testbed::open(&args.location.dir())?;
            let token = tb.create_bootstrap_token(std::time::Duration::from_secs(hours * 3600)).await?;
            tb.write_bootstrap_kubeconfig(&path, &token)?;
            eprintln!("bootstrap token {} (user {}) written to {}", token.id, token.user(), path.display());
            Ok(())
        }
        Command::Csi { node, root_dir } => {
            let tb = Testbed::open(&args.location.dir())?;
            let bin = steps::csi_tools()?;
            let root_dir = std::path::absolute(&root_dir).context("resolving --root-dir")?;
            let bed = wasmlet_testbed::csi::CsiBed::new(tb.dir(), &bin, &node, &root_dir);
            bed.start(&tb, &bin).await.context("starting CSI storage")?;
            eprintln!("CSI storage for node {node}: drivers {} and {}", bed.plain.name, bed.attach.name);
            print!("{}", bed.exports());
            Ok(())
        }
        Command::Devices { node, root_dir } => {
            let tb = Testbed::open(&args.location.dir())?;
            let bin = steps::devices_tools()?;
            let root_dir = std::path::absolute(&root_dir).context("resolving --root-dir")?;
            let bed = DevicesBed::new(tb.dir(), &bin, &node, &root_dir, &tb.admin_kubeconfig());
            bed.start(&tb).await.context("starting the device plugins")?;
            eprintln!(
                "device plugins for node {node}: {} ({} devices), DRA driver {} (log {})",
                wasmlet_testbed::devices::RESOURCE,
                wasmlet_testbed::devices::DEVICES,
                wasmlet_testbed::devices::DRA_DRIVER,
                bed.dra_log().display()
            );
            print!("{}", bed.exports());
            Ok(())
        }
        Command::MetricsServer => {
            let tb = Testbed::open(&args.location.dir())?;
            let bin = steps::tool_bin_dir("tools/metrics-server/build.sh", &[])?;
            tb.ensure_metrics_server(&bin).await.context("starting metrics-server")?;
            eprintln!(
                "metrics-server serves metrics.k8s.io on {}:{}; try `kubectl top node`",
                wasmlet_testbed::host_ip(),
                tb.ports().metrics_server
            );
            Ok(())
        }
    }
}

/// Builds what is missing and brings the test bed up, fixtures pushed.
pub(crate) async fn up(location: &Location) -> anyhow::Result<Testbed> {
    up_with(location, |_| {}).await
}

/// [`up`] with settings beyond the location (e.g. the node CIDR size).
pub(crate) async fn up_with(location: &Location, tweak: impl FnOnce(&mut Config)) -> anyhow::Result<Testbed> {
    steps::apt_deps()?;
    let bin_dir = steps::control_plane()?;
    let fixtures = steps::build_fixtures()?;
    let mut config = Config::new(location.dir(), bin_dir);
    if let Some(base) = location.port_base {
        config.port_base = base;
    }
    tweak(&mut config);
    let tb = Testbed::up(config).await.context("starting the test bed")?;
    let manifest = steps::repo_root().join("fixtures").join("fixtures.toml");
    let pushed = wasmlet_testbed::fixtures::push_all(&tb, &manifest, &fixtures).await.context("pushing fixtures")?;
    eprintln!("test bed ready in {}: {} fixture images in {}", tb.dir().display(), pushed.len(), tb.registry());
    Ok(tb)
}

/// The lines `eval "$(cargo xtask testbed up)"` applies.
pub(crate) fn print_exports(tb: &Testbed) {
    println!("export KUBECONFIG={}", tb.admin_kubeconfig().display());
    println!("export WASMLET_REGISTRY={}", tb.registry());
    println!("export WASMLET_TESTBED_DIR={}", tb.dir().display());
    println!("export PATH={}:$PATH", tb.bin_dir().display());
}
