//! wasmlet: the binary of this repository (release build by default), one
//! process per node, each with its own root directory, kubelet API port and
//! pod interface; pods run the `forever` fixture (idle) and `exit-code`
//! (run to completion) from the test bed's registry.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;
use wasmlet_testbed::host_ip;

use super::{NodeSpec, Procs, free_port};
use crate::bench_pods::pods::{POOL_LABEL, Workload};
use crate::bench_pods::probe::Role;
use crate::bench_pods::{Ctx, Profile};
use crate::steps::{cargo_target_dir, exec, repo_root};

/// Prefix of the nodes' pod interfaces (at most 13 characters in all:
/// wasmlet adds a suffix for the veth peer).
const INTERFACE_PREFIX: &str = "wlbench";

pub(crate) struct Built {
    bin: PathBuf,
}

/// Builds the wasmlet binary in the profile asked for.
pub(crate) fn build(ctx: &Ctx) -> anyhow::Result<Built> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "wasmlet"]).current_dir(repo_root());
    let dir = match ctx.cfg.wasmlet_profile {
        Profile::Release => {
            cmd.arg("--release");
            "release"
        }
        Profile::Debug => "debug",
    };
    exec(&mut cmd, "building wasmlet")?;
    Ok(Built { bin: cargo_target_dir().join(dir).join("wasmlet") })
}

/// The pod's container: a wasm fixture from the test bed's registry.
pub(crate) fn container(ctx: &Ctx, workload: Workload) -> serde_json::Value {
    let registry = ctx.tb.registry();
    match workload {
        // A tick an hour: idle, but alive.
        Workload::Idle => json!({
            "image": format!("{registry}/fixtures/forever:v1"),
            "imagePullPolicy": "IfNotPresent",
            "env": [{"name": "TICK_MS", "value": "3600000"}],
        }),
        Workload::Complete => json!({
            "image": format!("{registry}/fixtures/exit-code:v1"),
            "imagePullPolicy": "IfNotPresent",
            "env": [{"name": "EXIT_CODE", "value": "0"}],
        }),
    }
}

/// The pod interface of node `index`.
fn interface(index: usize) -> String {
    format!("{INTERFACE_PREFIX}{index}")
}

/// Running wasmlet nodes.
pub(crate) struct Nodes {
    pub(crate) procs: Procs,
    interfaces: Vec<String>,
}

impl Built {
    pub(crate) fn start(&self, ctx: &Ctx, nodes: &[NodeSpec]) -> anyhow::Result<Nodes> {
        let tb = &ctx.tb;
        let ip = host_ip();
        let mut procs = Procs::new(tb, nodes);
        let mut interfaces = Vec::new();
        for node in nodes {
            let creds = tb.node_credentials(&node.name, &[ip])?;
            let root = ctx.work.join("nodes").join(&node.name);
            // A fresh root: no pods recovered from an earlier run.
            let _ = std::fs::remove_dir_all(&root);
            let iface = interface(node.index);
            let mut cmd = Command::new(&self.bin);
            cmd.arg(format!("--kubeconfig={}", creds.kubeconfig.display()))
                .arg(format!("--node-name={}", node.name))
                .arg(format!("--node-ip={ip}"))
                .arg(format!("--root-dir={}", root.display()))
                .arg(format!("--port={}", free_port()?))
                // Many nodes share this host: no plain healthz on 10248.
                .arg("--healthz-port=0")
                .arg(format!("--tls-cert-file={}", creds.serving.cert.display()))
                .arg(format!("--tls-private-key-file={}", creds.serving.key.display()))
                .arg(format!("--insecure-registries={}", tb.registry()))
                .arg(format!("--registry-ca-file={}", tb.ca_cert().display()))
                .arg(format!("--pod-interface={iface}"))
                .arg(format!("--max-pods={}", node.max_pods))
                .arg(format!("--node-labels={POOL_LABEL}={}", node.pool))
                // As the test nodes: a nearly full build disk must not taint the node.
                .arg("--eviction-hard=memory.available<100Mi,nodefs.available<1%");
            if let Some(filter) = &ctx.cfg.wasmlet_log {
                cmd.env("WASMLET_LOG", filter);
            }
            procs.spawn(&format!("bench-{}", node.name), Role::Agent, &mut cmd)?;
            interfaces.push(iface);
        }
        Ok(Nodes { procs, interfaces })
    }
}

impl Nodes {
    pub(crate) async fn stop(self, ctx: &Ctx) {
        self.procs.stop(ctx).await;
        for iface in &self.interfaces {
            // wasmlet leaves its veth pair in place for the next start.
            let _ = Command::new("ip").args(["link", "del", iface]).output();
        }
    }
}
