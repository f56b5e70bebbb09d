//! The upstream kubelet v1.36.3 on containerd 2.3 and runc: what users run
//! today. kubelet, containerd, its runc shim and ctr are built by
//! `tools/peers/build.sh` (runc and the CNI plugins come from Debian). The
//! pods run a small static native program ([`image`](super::image)), since
//! runwasi's wasm shim cannot be built from the package registries.
//!
//! Made to work on this machine (see `/work/shared/research/scale.md`):
//! cgroup v1 (`failCgroupV1: false`, `cgroupDriver: cgroupfs`),
//! `restrict_oom_score_adj` (no CAP_SYS_RESOURCE here), images imported
//! with `ctr` (no public registry), the pod network from the node's
//! podCIDR through containerd's CNI config template (bridge + host-local),
//! and every directory, socket and the bridge of its own, so that nothing
//! else on the machine is touched. One node only: two kubelets would fight
//! over the same cgroups.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::bail;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use wasmlet_testbed::host_ip;

use super::image::{self, ENTRYPOINT, IMAGE, PAUSE_IMAGE};
use super::{NodeSpec, Procs, free_port};
use crate::bench_pods::Ctx;
use crate::bench_pods::pods::{POOL_LABEL, Workload};
use crate::bench_pods::probe::{Proc, Role};
use crate::steps::tool_bin_dir;

/// The CNI bridge of the pods.
const BRIDGE: &str = "wlbenchbr0";
/// Where Debian's containernetworking-plugins live.
const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// How long containerd may take to open its socket.
const CONTAINERD_START: Duration = Duration::from_secs(30);

pub(crate) struct Built {
    bin_dir: PathBuf,
    image: PathBuf,
}

/// Builds kubelet and containerd (cached) and the native image.
pub(crate) fn build(ctx: &Ctx) -> anyhow::Result<Built> {
    let bin_dir = tool_bin_dir("tools/peers/build.sh", &["kubelet", "containerd"])?;
    for program in ["runc", "gcc"] {
        if Command::new("sh").arg("-c").arg(format!("command -v {program}")).output()?.stdout.is_empty() {
            bail!("{program} is not on PATH (Debian packages runc, gcc)");
        }
    }
    if !Path::new(CNI_BIN_DIR).join("bridge").is_file() {
        bail!("{CNI_BIN_DIR}/bridge is missing (Debian package containernetworking-plugins)");
    }
    let image = image::build(&ctx.work.join("native"))?;
    Ok(Built { bin_dir, image })
}

/// The pod's container: the native program.
pub(crate) fn container(workload: Workload) -> serde_json::Value {
    let mut c = json!({"image": IMAGE, "imagePullPolicy": "Never", "command": [ENTRYPOINT]});
    if workload == Workload::Complete {
        c["env"] = json!([{"name": "EXIT_CODE", "value": "0"}]);
    }
    c
}

/// A running kubelet and containerd.
pub(crate) struct Running {
    pub(crate) procs: Procs,
    base: PathBuf,
    socket: PathBuf,
}

impl Built {
    pub(crate) async fn start(&self, ctx: &Ctx, nodes: &[NodeSpec]) -> anyhow::Result<Running> {
        let [node] = nodes else { bail!("the kubelet+containerd peer runs one node per machine") };
        let base = ctx.work.join("kubelet-peer");
        cleanup(&base, None);
        let socket = base.join("containerd.sock");
        for dir in ["cni/net.d", "cni/ipam", "logs", "volume-plugins"] {
            std::fs::create_dir_all(base.join(dir))?;
        }
        std::fs::write(base.join("cni/template.json"), cni_template(&base))?;
        std::fs::write(base.join("containerd.toml"), containerd_config(&base, &socket))?;
        let mut procs = Procs::new(&ctx.tb, nodes);
        let path = format!("{}:{}", self.bin_dir.display(), std::env::var("PATH").unwrap_or_default());
        let mut containerd = Command::new(self.bin_dir.join("containerd"));
        containerd.env("PATH", &path).arg(format!("--config={}", base.join("containerd.toml").display()));
        procs.spawn("bench-containerd", Role::Runtime, &mut containerd)?;
        let running = Running { procs, base: base.clone(), socket: socket.clone() };
        let deadline = Instant::now() + CONTAINERD_START;
        while !socket.exists() {
            if let Some(why) = running.procs.dead() {
                bail!("containerd did not start: {why}");
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "containerd opened no socket in {}s",
                CONTAINERD_START.as_secs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let import = Command::new(self.bin_dir.join("ctr"))
            .arg(format!("--address={}", socket.display()))
            .args(["--namespace=k8s.io", "images", "import"])
            .arg(&self.image)
            .output()?;
        if !import.status.success() {
            bail!("importing the native image into containerd: {}", String::from_utf8_lossy(&import.stderr).trim());
        }
        let creds = ctx.tb.node_credentials(&node.name, &[host_ip()])?;
        let config = base.join("kubelet.yaml");
        std::fs::write(&config, kubelet_config(ctx, node, &socket, &creds.serving, free_port()?)?)?;
        let mut kubelet = Command::new(self.bin_dir.join("kubelet"));
        kubelet
            .env("PATH", &path)
            .arg(format!("--config={}", config.display()))
            .arg(format!("--kubeconfig={}", creds.kubeconfig.display()))
            .arg(format!("--root-dir={}", base.join("root").display()))
            .arg(format!("--hostname-override={}", node.name))
            .arg(format!("--node-ip={}", host_ip()))
            .arg(format!("--node-labels={POOL_LABEL}={}", node.pool));
        let mut running = running;
        running.procs.spawn(&format!("bench-{}", node.name), Role::Agent, &mut kubelet)?;
        Ok(running)
    }
}

impl Running {
    /// kubelet and containerd, the shims, and the containers' processes.
    pub(crate) fn processes(&self) -> Vec<Proc> {
        let mut procs = self.procs.processes();
        let shims = shims(&self.socket);
        procs.extend(shims.iter().map(|&pid| Proc { role: Role::Runtime, pid }));
        procs.extend(children(&shims).into_iter().map(|pid| Proc { role: Role::Pods, pid }));
        procs
    }

    pub(crate) async fn stop(self, ctx: &Ctx) {
        self.procs.stop(ctx).await;
        cleanup(&self.base, Some(&self.socket));
    }
}

/// Pids of the runc shims serving containerd at `socket`.
fn shims(socket: &Path) -> Vec<u32> {
    let want = socket.display().to_string();
    proc_pids()
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.windows(2).any(|w| w[0] == b"-address" && w[1] == want.as_bytes())
        })
        .collect()
}

/// Pids whose parent is one of `parents`, and their descendants.
fn children(parents: &[u32]) -> Vec<u32> {
    let mut tree: Vec<(u32, u32)> = Vec::new();
    for pid in proc_pids() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let ppid = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse().ok());
        if let Some(ppid) = ppid {
            tree.push((pid, ppid));
        }
    }
    let mut found: Vec<u32> = Vec::new();
    let mut frontier: Vec<u32> = parents.to_vec();
    while let Some(parent) = frontier.pop() {
        for (pid, _) in tree.iter().filter(|(_, pp)| *pp == parent) {
            found.push(*pid);
            frontier.push(*pid);
        }
    }
    found
}

fn proc_pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|e| e.file_name().to_str()?.parse().ok())
}

/// Leaves nothing behind: kills leftover shims and containers (by pid),
/// unmounts what is mounted under `base`, removes it and the bridge.
fn cleanup(base: &Path, socket: Option<&Path>) {
    let socket = socket.map_or_else(|| base.join("containerd.sock"), Path::to_path_buf);
    let shim_pids = shims(&socket);
    for pid in children(&shim_pids).into_iter().chain(shim_pids) {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let prefix = base.display().to_string();
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut points: Vec<&str> =
        mounts.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|p| p.starts_with(&prefix)).collect();
    // Deepest first.
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let _ = Command::new("umount").args(["-l", point]).output();
    }
    let _ = std::fs::remove_dir_all(base);
    let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
}

/// CNI config containerd writes once the kubelet hands it the podCIDR:
/// a bridge of our own, addresses from the podCIDR, no default route (the
/// pods talk to nobody).
fn cni_template(base: &Path) -> String {
    let ipam_dir = base.join("cni/ipam").display().to_string();
    let template = json!({
        "cniVersion": "1.0.0",
        "name": "wasmlet-bench",
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "ipMasq": false,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "{{.PodCIDR}}"}]], "dataDir": ipam_dir},
        }],
    });
    serde_json::to_string_pretty(&template).unwrap_or_default()
}

fn containerd_config(base: &Path, socket: &Path) -> String {
    let b = base.display();
    format!(
        r#"version = 3
root = "{b}/containerd/root"
state = "{b}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{PAUSE_IMAGE}"

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["{CNI_BIN_DIR}"]
    conf_dir = "{b}/cni/net.d"
    conf_template = "{b}/cni/template.json"
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{b}/runc"
"#,
        sock = socket.display(),
    )
}

fn kubelet_config(
    ctx: &Ctx,
    node: &NodeSpec,
    socket: &Path,
    serving: &wasmlet_testbed::pki::CertFiles,
    port: u16,
) -> anyhow::Result<String> {
    let config = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": false,
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": format!("unix://{}", socket.display()),
        "port": port,
        "readOnlyPort": 0,
        "healthzPort": 0,
        "tlsCertFile": serving.cert,
        "tlsPrivateKeyFile": serving.key,
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true},
            "x509": {"clientCAFile": ctx.tb.ca_cert()},
        },
        "authorization": {"mode": "Webhook"},
        "maxPods": node.max_pods,
        "failSwapOn": false,
        // As the wasmlet nodes: a nearly full build disk must not evict.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "podLogsDir": base_of(socket).join("logs"),
        "volumePluginDir": base_of(socket).join("volume-plugins"),
        "serializeImagePulls": false,
    });
    Ok(serde_json::to_string_pretty(&config)?)
}

fn base_of(socket: &Path) -> &Path {
    socket.parent().unwrap_or(socket)
}
