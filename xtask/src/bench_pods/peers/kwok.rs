//! kwok v0.8.0, built by `tools/kwok/build.sh`: one process fakes every
//! node of a run. The benchmark creates the Node objects (annotated for
//! kwok) and kwok writes their status, their Lease and the pods' status, as
//! its module's own "fast" stages say. One stage is added: kwok's
//! `pod-complete` only completes pods owned by a Job, so a bare
//! `restartPolicy: Never` pod would run forever; `pod-complete-never`
//! completes those too, as a Job's pod would be.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Node;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use wasmlet_testbed::host_ip;

use super::{NodeSpec, Procs, free_port};
use crate::bench_pods::pods::POOL_LABEL;
use crate::bench_pods::probe::Role;
use crate::bench_pods::{Ctx, KWOK_CIDR};
use crate::steps::tool_bin_dir;

/// The annotation kwok is told to manage nodes by.
const ANNOTATION: &str = "kwok.x-k8s.io/node";

/// Completes bare run-to-completion pods (see the module docs).
const EXTRA_STAGE: &str = r#"---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-complete-never
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.spec.restartPolicy'
      operator: 'In'
      values:
      - 'Never'
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "False"
        reason: PodCompleted
        type: Ready
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: 0
            finishedAt: {{ $now | Quote }}
            reason: Completed
            startedAt: {{ $now | Quote }}
      {{ end }}
      phase: Succeeded
"#;

pub(crate) struct Built {
    bin: PathBuf,
    stages: PathBuf,
}

/// Builds kwok (cached) and writes the stages file.
pub(crate) fn build(ctx: &Ctx) -> anyhow::Result<Built> {
    let bin_dir = tool_bin_dir("tools/kwok/build.sh", &[])?;
    let upstream = std::fs::read_to_string(bin_dir.join("stages.yaml")).context("reading kwok's stages.yaml")?;
    let stages = ctx.work.join("kwok-stages.yaml");
    std::fs::create_dir_all(&ctx.work)?;
    std::fs::write(&stages, format!("{upstream}{EXTRA_STAGE}"))?;
    Ok(Built { bin: bin_dir.join("kwok"), stages })
}

/// kwok and the nodes it fakes.
pub(crate) struct Running {
    pub(crate) procs: Procs,
}

impl Built {
    pub(crate) async fn start(&self, ctx: &Ctx, nodes: &[NodeSpec]) -> anyhow::Result<Running> {
        let mut procs = Procs::new(&ctx.tb, nodes);
        let mut cmd = Command::new(&self.bin);
        cmd.arg(format!("--kubeconfig={}", ctx.kwok_kubeconfig.display()))
            .arg("--manage-all-nodes=false")
            .arg(format!("--manage-nodes-with-annotation-selector={ANNOTATION}=fake"))
            .arg(format!("--cidr={KWOK_CIDR}"))
            .arg(format!("--node-ip={}", host_ip()))
            .arg("--node-lease-duration-seconds=40")
            .arg(format!("--server-address=127.0.0.1:{}", free_port()?))
            .arg(format!("--config={}", self.stages.display()));
        procs.spawn("bench-kwok", Role::Agent, &mut cmd)?;
        let api: Api<Node> = Api::all(ctx.client.clone());
        for node in nodes {
            let obj: Node = serde_json::from_value(json!({
                "metadata": {
                    "name": node.name,
                    "annotations": { ANNOTATION: "fake" },
                    "labels": {
                        "kubernetes.io/hostname": node.name,
                        "type": "kwok",
                        POOL_LABEL: node.pool,
                    },
                },
            }))?;
            api.create(&PostParams::default(), &obj).await.with_context(|| format!("creating node {}", node.name))?;
        }
        Ok(Running { procs })
    }
}
