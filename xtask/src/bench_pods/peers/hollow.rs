//! The hollow kubelet: `kubemark --morph=kubelet` from
//! `k8s.io/kubernetes@v1.36.3` (built by `tools/peers/build.sh kubemark`),
//! one process per node. It is upstream's `RunKubelet` with an in-process
//! fake CRI (containers start at once and never exit), fake cAdvisor and
//! mounter, so it costs what the kubelet's own code costs.
//!
//! Client rate limits are set to the real kubelet's defaults
//! (`--kube-api-qps` 50, `--kube-api-burst` 100) instead of kubemark's own
//! (10 and 20), so that it stands for the kubelet.

use std::path::PathBuf;
use std::process::Command;

use super::{NodeSpec, Procs, free_port};
use crate::bench_pods::Ctx;
use crate::bench_pods::pods::POOL_LABEL;
use crate::bench_pods::probe::Role;
use crate::steps::tool_bin_dir;

/// Why churn cannot be measured on it.
pub(crate) const NO_EXIT: &str =
    "the hollow kubelet's fake runtime never ends a container, so a run-to-completion pod never completes";

pub(crate) struct Built {
    bin: PathBuf,
}

/// Builds kubemark (cached by `tools/peers/build.sh`).
pub(crate) fn build() -> anyhow::Result<Built> {
    let bin_dir = tool_bin_dir("tools/peers/build.sh", &["kubemark"])?;
    Ok(Built { bin: bin_dir.join("kubemark") })
}

/// Running hollow kubelets.
pub(crate) struct Nodes {
    pub(crate) procs: Procs,
}

impl Built {
    pub(crate) fn start(&self, ctx: &Ctx, nodes: &[NodeSpec]) -> anyhow::Result<Nodes> {
        let mut procs = Procs::new(&ctx.tb, nodes);
        for node in nodes {
            let creds = ctx.tb.node_credentials(&node.name, &[])?;
            // Its root directory is a fresh temporary directory under $TMPDIR.
            let tmp = ctx.work.join("nodes").join(&node.name);
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp)?;
            let mut cmd = Command::new(&self.bin);
            cmd.env("TMPDIR", &tmp)
                .arg("--morph=kubelet")
                .arg(format!("--name={}", node.name))
                .arg(format!("--kubeconfig={}", creds.kubeconfig.display()))
                .arg(format!("--kubelet-port={}", free_port()?))
                .arg("--kubelet-read-only-port=0")
                .arg("--use-host-image-service=false")
                .arg(format!("--max-pods={}", node.max_pods))
                .arg("--kube-api-qps=50")
                .arg("--kube-api-burst=100")
                .arg(format!("--node-labels={POOL_LABEL}={}", node.pool));
            procs.spawn(&format!("bench-{}", node.name), Role::Agent, &mut cmd)?;
        }
        Ok(Nodes { procs })
    }
}
