//! The benchmark's pods: one spec for every peer (only the container's
//! image, command and env differ), a namespace per run, creation at a
//! steady rate or as fast as a bounded number of requests in flight allows,
//! waiting with a guard, and teardown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::json;

use super::watch::{Counts, PodRecorder};

/// The label every benchmark pod carries (value: the namespace).
pub(crate) const RUN_LABEL: &str = "wasmlet-bench/run";
/// The label of the nodes a multi-node run schedules onto.
pub(crate) const POOL_LABEL: &str = "wasmlet-bench/pool";
/// How long one create request may take (an overloaded apiserver answers
/// 504 after its 60 s request timeout; a lost answer would hang for the
/// client's 295 s read timeout).
const CREATE_TIMEOUT: Duration = Duration::from_secs(65);
/// How often a long wait says where it stands.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);
/// Retries of a create that failed for a reason other than a conflict.
const CREATE_RETRIES: u32 = 5;
/// How long teardown waits for the agent to let go of its pods.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(600);

/// What a pod's container does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Runs until deleted, doing nothing (restartPolicy Always).
    Idle,
    /// Exits 0 at once (restartPolicy Never): runs to completion.
    Complete,
}

/// Where a pod goes.
#[derive(Debug, Clone)]
pub(crate) enum Placement {
    /// Bound to this node (`spec.nodeName`), no scheduler.
    Node(String),
    /// Scheduled onto nodes labelled [`POOL_LABEL`]=pool, spread evenly.
    Pool(String),
}

/// A pod for `container` (the peer's image, command, env).
pub(crate) fn pod(ns: &str, name: &str, container: &serde_json::Value, workload: Workload, at: &Placement) -> Pod {
    let toleration =
        |effect: &str| json!({"key": "kubernetes.io/arch", "operator": "Equal", "value": "wasm32", "effect": effect});
    let mut c = container.clone();
    c["name"] = json!("main");
    let mut spec = json!({
        "restartPolicy": if workload == Workload::Idle { "Always" } else { "Never" },
        "terminationGracePeriodSeconds": 5,
        "tolerations": [toleration("NoSchedule"), toleration("NoExecute")],
        "containers": [c],
    });
    match at {
        Placement::Node(node) => spec["nodeName"] = json!(node),
        Placement::Pool(pool) => {
            spec["nodeSelector"] = json!({ POOL_LABEL: pool });
            spec["topologySpreadConstraints"] = json!([{
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": { RUN_LABEL: ns }},
            }]);
        }
    }
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": { RUN_LABEL: ns }},
        "spec": spec,
    });
    serde_json::from_value(pod).unwrap_or_default()
}

/// How pods are created.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pacing {
    /// One create every 1/rate seconds, whatever the previous ones are doing.
    Rate(f64),
    /// As fast as this many requests in flight allow.
    InFlight(usize),
}

/// Why creating or waiting stopped early.
pub(crate) type Guard = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// How a wait ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WaitEnd {
    Done,
    Timeout,
    /// No pod changed state for the stall time.
    Stalled,
    /// The guard stopped it (the agent died, the machine ran out of memory).
    Stopped(String),
}

/// A namespace of benchmark pods and the watch recording them.
pub(crate) struct BenchNs {
    pub(crate) name: String,
    pub(crate) api: Api<Pod>,
    pub(crate) recorder: PodRecorder,
    client: kube::Client,
}

impl BenchNs {
    /// A fresh namespace `name` (an old one of that name is deleted first).
    pub(crate) async fn create(client: &kube::Client, name: &str) -> anyhow::Result<Self> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let deadline = Instant::now() + TEARDOWN_TIMEOUT;
        while namespaces.get_opt(name).await?.is_some() {
            let _ = namespaces.delete(name, &DeleteParams::background()).await;
            force_delete_pods(&Api::namespaced(client.clone(), name)).await;
            anyhow::ensure!(Instant::now() < deadline, "namespace {name} from an earlier run does not go away");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        namespaces.create(&PostParams::default(), &ns).await.with_context(|| format!("creating namespace {name}"))?;
        // Pods can only be created once the service-account controller made `default`.
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
        let deadline = Instant::now() + Duration::from_secs(60);
        while sas.get_opt("default").await?.is_none() {
            anyhow::ensure!(Instant::now() < deadline, "namespace {name} got no default ServiceAccount in 60 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), name);
        let recorder = PodRecorder::start(api.clone(), &format!("{RUN_LABEL}={name}")).await?;
        Ok(Self { name: name.to_owned(), api, recorder, client: client.clone() })
    }

    /// Creates `pods` as `pacing` says; stops early (returning why) when the
    /// guard says so. Returns how many were created.
    pub(crate) async fn create_pods(&self, pods: Vec<Pod>, pacing: Pacing, guard: &Guard) -> (usize, Option<String>) {
        let create = |pod: Pod| {
            let (api, rec) = (self.api.clone(), self.recorder.clone());
            async move {
                let name = pod.metadata.name.clone().unwrap_or_default();
                rec.sent(&name);
                for attempt in 0..=CREATE_RETRIES {
                    let result = tokio::time::timeout(CREATE_TIMEOUT, api.create(&PostParams::default(), &pod)).await;
                    let error = match result {
                        Ok(Ok(_)) => {
                            rec.acked(&name);
                            return Ok(());
                        }
                        // An earlier attempt got through after all.
                        Ok(Err(kube::Error::Api(s))) if s.code == 409 => return Ok(()),
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => format!("no answer in {}s", CREATE_TIMEOUT.as_secs()),
                    };
                    if attempt == CREATE_RETRIES {
                        return Err(format!("creating pod {name}: {error}"));
                    }
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                }
                Ok(())
            }
        };
        let mut created = 0;
        let mut stopped = None;
        match pacing {
            Pacing::Rate(rate) => {
                let start = tokio::time::Instant::now();
                let mut tasks = futures::stream::FuturesUnordered::new();
                for (i, pod) in pods.into_iter().enumerate() {
                    tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
                    if let Some(why) = guard() {
                        stopped = Some(why);
                        break;
                    }
                    tasks.push(tokio::spawn(create(pod)));
                }
                while let Some(r) = tasks.next().await {
                    match r {
                        Ok(Ok(())) => created += 1,
                        Ok(Err(e)) => stopped = stopped.or(Some(e)),
                        Err(e) => stopped = stopped.or(Some(e.to_string())),
                    }
                }
            }
            Pacing::InFlight(n) => {
                let mut results = futures::stream::iter(pods).map(create).buffer_unordered(n.max(1));
                while let Some(r) = results.next().await {
                    match r {
                        Ok(()) => created += 1,
                        Err(e) => stopped = stopped.or(Some(e)),
                    }
                    if stopped.is_none()
                        && let Some(why) = guard()
                    {
                        stopped = Some(why);
                    }
                    if stopped.is_some() {
                        break;
                    }
                }
            }
        }
        (created, stopped)
    }

    /// Waits until `done(counts)`, the timeout, or the guard.
    pub(crate) async fn wait(
        &self,
        done: impl Fn(Counts) -> bool,
        timeout: Duration,
        stall: Duration,
        guard: &Guard,
    ) -> WaitEnd {
        let deadline = Instant::now() + timeout;
        let (mut last, mut since) = (self.recorder.counts(), Instant::now());
        let mut progress = Instant::now();
        loop {
            let counts = self.recorder.counts();
            if progress.elapsed() > PROGRESS_EVERY {
                progress = Instant::now();
                eprintln!(
                    "   {}: {} seen, {} Running, {} Ready, {} Succeeded, {} Failed, {} gone",
                    self.name,
                    counts.seen,
                    counts.running,
                    counts.ready,
                    counts.succeeded,
                    counts.failed,
                    counts.deleted
                );
            }
            if done(counts) {
                return WaitEnd::Done;
            }
            if counts != last {
                (last, since) = (counts, Instant::now());
            }
            if let Some(why) = guard() {
                return WaitEnd::Stopped(why);
            }
            if Instant::now() > deadline {
                return WaitEnd::Timeout;
            }
            if since.elapsed() > stall {
                return WaitEnd::Stalled;
            }
            self.recorder.changed().await;
        }
    }

    /// Deletes every pod of the namespace with one request.
    pub(crate) async fn delete_pods(&self) -> anyhow::Result<()> {
        let lp = ListParams::default().labels(&format!("{RUN_LABEL}={}", self.name));
        self.api.delete_collection(&DeleteParams::default(), &lp).await.context("deleting the pods")?;
        Ok(())
    }

    /// Deletes the pods, waits (bounded) until the agent let go of them,
    /// removes whatever is left by force, and deletes the namespace.
    pub(crate) async fn teardown(self, guard: &Guard) {
        if self.delete_pods().await.is_ok() {
            let _ = self.wait(|c| c.deleted >= c.seen, TEARDOWN_TIMEOUT, TEARDOWN_TIMEOUT, guard).await;
        }
        force_delete_pods(&self.api).await;
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        let _ = namespaces.delete(&self.name, &DeleteParams::background()).await;
    }
}

/// Removes pods without waiting for a node agent (grace period 0).
pub(crate) async fn force_delete_pods(api: &Api<Pod>) {
    let _ = api
        .delete_collection(
            &DeleteParams { grace_period_seconds: Some(0), ..Default::default() },
            &ListParams::default(),
        )
        .await;
}
