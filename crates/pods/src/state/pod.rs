//! One pod's lifecycle on this node.
//!
//! ```text
//!  Admitting ──► Starting ──► Running ──► Terminating ──► Finished ──► Deleting ──► Cleanup
//!     │                         │  └──────────────────────►  ▲  │                      ▲
//!     ├──► Rejected ────────────┼────────────────────────────┘  └──────────────────────┘ (object gone)
//!     └──► Finished (already terminal: never run again)          Running ──► ShuttingDown (agent stops)
//! ```

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Preconditions};

use super::{Seal, State, Terminal, Transition, edges, states};
use crate::admission::{self, Rejection, Requests};
use crate::events::reason;
use crate::record::{ContainerState, PodVerdict};
use crate::status;
use crate::worker::PodWorker;
use crate::worker::Role;
use crate::{recovery, spawn};

type Step<'a> = BoxFuture<'a, Transition<PodWorker>>;

/// Extra time, past the grace period, for containers to report back.
const STOP_SLACK: Duration = Duration::from_secs(5);
/// How often a pod's status is recomputed even without news (retries failed patches).
const RESYNC: Duration = Duration::from_secs(10);
/// Retry delays for a pod's address and volumes.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Deciding whether the pod may run here (or already ran).
pub struct Admitting(Seal);
/// Not admitted: reported Failed with the reason.
pub struct Rejected {
    rejection: Rejection,
}
/// Preparing the pod's environment and starting its containers.
pub struct Starting(Seal);
/// Init containers run one after the other; sidecars start and stay.
pub struct Initializing(Seal);
/// Containers run (and restart) under the restart policy.
pub struct Running(Seal);
/// Stopping every container (deletion, active deadline, object gone).
pub struct Terminating {
    grace: Duration,
    verdict: Option<PodVerdict>,
}
/// Nothing runs; the status is final. Waits for the pod's deletion.
pub struct Finished(Seal);
/// Removing the pod object (grace 0, UID precondition).
pub struct Deleting(Seal);
/// Removing the pod's local state.
pub struct Cleanup(Seal);
/// The agent stops: containers stop, the record is kept for the restart.
pub struct ShuttingDown(Seal);

states!(Admitting, Rejected, Starting, Initializing, Running, Terminating, Finished, Deleting, Cleanup, ShuttingDown);
edges!(
    Admitting => Rejected, Starting, Finished, Terminating, ShuttingDown;
    Rejected => Finished;
    Starting => Initializing, Terminating, ShuttingDown;
    Initializing => Running, Terminating, ShuttingDown;
    Running => Terminating, Finished, ShuttingDown;
    Terminating => Finished;
    Finished => Deleting, Cleanup;
    Deleting => Cleanup;
);
impl Terminal for Cleanup {}

/// Where a pod's machine starts.
pub(crate) fn start() -> Box<dyn State<PodWorker>> {
    Box::new(Admitting(Seal))
}
impl Terminal for ShuttingDown {}
impl Terminal for Finished {}

impl State<PodWorker> for Admitting {
    fn name(&self) -> &'static str {
        "Admitting"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut PodWorker) -> Step<'a> {
        Box::pin(async move {
            if w.cancel.is_cancelled() {
                return Transition::next(self, ShuttingDown(Seal));
            }
            let saved = crate::checkpoint::load_off_worker(w.dir.clone(), w.uid.clone()).await;
            match recovery::recover(w, saved) {
                recovery::Recovered::Finished => return Transition::next(self, Finished(Seal)),
                recovery::Recovered::Resume => {
                    // It ran here before the agent restarted: it was admitted then.
                    register(w);
                    return Transition::next(self, Starting(Seal));
                }
                recovery::Recovered::New => {}
            }
            if w.pod.metadata.deletion_timestamp.is_some() || w.gone() {
                return Transition::next(self, Terminating { grace: Duration::ZERO, verdict: None });
            }
            let Some(spec) = w.pod.spec.as_ref() else {
                return Transition::next(self, Finished(Seal));
            };
            let requests = Requests::of(spec);
            // As upstream's admit handlers: pressure, node shutdown, then devices, then resources.
            let early = admission::under_pressure(w.shared.pressure.get(), &w.pod)
                .and_then(|()| crate::node_shutdown::admit(w.shared.node_shutdown.get()));
            let early = match early {
                Ok(()) => w.shared.resources().admit(&w.pod).await,
                Err(rejection) => Err(rejection),
            };
            let verdict = {
                let mut admitted = w.shared.admitted.lock().unwrap_or_else(|p| p.into_inner());
                let others: Vec<Requests> =
                    admitted.iter().filter(|(uid, _)| **uid != w.uid).map(|(_, r)| *r).collect();
                let cfg = &w.shared.config;
                let verdict = early.and_then(|()| admission::admit(&w.pod, &others, &cfg.allocatable, &cfg.wasm));
                if verdict.is_ok() {
                    admitted.insert(w.uid.clone(), requests);
                }
                verdict
            };
            match verdict {
                Ok(()) => Transition::next(self, Starting(Seal)),
                Err(rejection) => Transition::next(self, Rejected { rejection }),
            }
        })
    }
}

fn register(w: &PodWorker) {
    if let Some(spec) = w.pod.spec.as_ref() {
        let mut admitted = w.shared.admitted.lock().unwrap_or_else(|p| p.into_inner());
        admitted.insert(w.uid.clone(), Requests::of(spec));
    }
}

impl State<PodWorker> for Rejected {
    fn name(&self) -> &'static str {
        "Rejected"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut PodWorker) -> Step<'a> {
        Box::pin(async move {
            let Rejection { reason, message } = self.rejection.clone();
            tracing::info!(%reason, %message, "pod rejected");
            let pod = w.pod.clone();
            w.shared.events.warning(&pod, None, &reason, message.clone()).await;
            let now = Timestamp::now();
            w.update(|r| {
                r.start_time.get_or_insert(now);
                r.verdict = Some(PodVerdict { phase: "Failed".into(), reason: Some(reason), message: Some(message) });
            });
            Transition::next(self, Finished(Seal))
        })
    }
}

impl State<PodWorker> for Starting {
    fn name(&self) -> &'static str {
        "Starting"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut PodWorker) -> Step<'a> {
        Box::pin(async move {
            let now = Timestamp::now();
            w.update(|r| {
                r.start_time.get_or_insert(now);
            });
            if let Err(e) = tokio::fs::create_dir_all(w.dir.join("logs")).await {
                tracing::warn!(error = %e, "creating the pod directory failed");
            }
            // The pod's address, then its volumes: each retried (the podCIDR may
            // come late, a ConfigMap may not exist yet) until it works or the pod
            // goes away.
            let mut delay = RETRY_MIN;
            loop {
                let preferred = w.snapshot().pod_ip.and_then(|ip| ip.parse().ok());
                match w.shared.network.attach(&w.uid, preferred).await {
                    Ok(ip) => {
                        w.update(|r| r.pod_ip = Some(ip.to_string()));
                        break;
                    }
                    Err(e) => {
                        let pod = w.pod.clone();
                        let note = format!("network is not ready: {e}");
                        w.shared.events.warning(&pod, None, reason::NETWORK_NOT_READY, note).await;
                        if let Err(stop) = retry_after(w, &mut delay).await {
                            return stop.transition(self);
                        }
                    }
                }
            }
            if w.sources.is_none() {
                match w.shared.volumes.sources().register_pod(&w.pod) {
                    Ok(sources) => w.sources = Some(sources),
                    Err(e) => tracing::warn!(error = %e, "watching the pod's ConfigMaps and Secrets failed"),
                }
            }
            let mut delay = RETRY_MIN;
            let volumes = loop {
                match w.shared.volumes.prepare(&w.pod, &w.dir).await {
                    Ok(volumes) => break volumes,
                    Err(e) => {
                        let pod = w.pod.clone();
                        w.shared.events.warning(&pod, None, e.reason(), e.to_string()).await;
                        if let Err(stop) = retry_after(w, &mut delay).await {
                            return stop.transition(self);
                        }
                    }
                }
            };
            for (volume, why) in volumes.memory_fallbacks() {
                let pod = w.pod.clone();
                let note = format!("emptyDir {volume:?} (medium: Memory) is a directory on disk: {why}");
                w.shared.events.warning(&pod, None, "MemoryVolumeOnDisk", note).await;
            }
            spawn_refresh(w, volumes.clone());
            w.volumes = Some(volumes);
            // Claims (DRA) are prepared once volumes are ready, before any container.
            let mut delay = RETRY_MIN;
            while let Err(e) = w.shared.resources().prepare(&w.pod).await {
                let pod = w.pod.clone();
                w.shared.events.warning(&pod, None, &e.reason, e.message).await;
                if let Err(stop) = retry_after(w, &mut delay).await {
                    return stop.transition(self);
                }
            }
            w.update(|r| r.sandbox_ready = true);
            w.sync_status().await;
            Transition::next(self, Initializing(Seal))
        })
    }
}

/// Why a retry loop ended without success.
enum Stop {
    Gone,
    Deleted,
    Shutdown,
}

impl Stop {
    fn transition(self, from: Box<Starting>) -> Transition<PodWorker> {
        match self {
            Stop::Gone | Stop::Deleted => Transition::next(from, Terminating { grace: Duration::ZERO, verdict: None }),
            Stop::Shutdown => Transition::next(from, ShuttingDown(Seal)),
        }
    }
}

/// Reports the status, waits `delay` (doubling it, capped), and says whether
/// the pod is still there to try again.
async fn retry_after(w: &mut PodWorker, delay: &mut Duration) -> Result<(), Stop> {
    w.sync_status().await;
    let cancel = w.cancel.clone();
    tokio::select! {
        () = tokio::time::sleep(*delay) => {}
        r = w.updates.changed() => if r.is_err() {
            return Err(Stop::Gone);
        },
        () = cancel.cancelled() => return Err(Stop::Shutdown),
    }
    if !w.refresh() {
        return Err(Stop::Gone);
    }
    if w.pod.metadata.deletion_timestamp.is_some() {
        return Err(Stop::Deleted);
    }
    *delay = (*delay * 2).min(RETRY_MAX);
    Ok(())
}

/// Keeps the pod's configMap, secret, downwardAPI and projected volumes (and
/// service-account tokens) current until the pod worker ends.
fn spawn_refresh(w: &mut PodWorker, volumes: wasmlet_volumes::PodVolumes) {
    let mut updates = w.updates.clone();
    let (tx, rx) = tokio::sync::watch::channel(w.pod.clone());
    let cancel = w.cancel.child_token();
    w.background.spawn(async move {
        let forward = async {
            while updates.changed().await.is_ok() {
                let update = updates.borrow_and_update().clone();
                if let crate::worker::PodUpdate::Present(pod) = update {
                    let _ = tx.send(pod);
                }
            }
        };
        tokio::select! {
            () = volumes.run(rx, cancel.clone()) => {}
            () = forward => {}
            () = cancel.cancelled() => {}
        }
    });
}

impl State<PodWorker> for Initializing {
    fn name(&self) -> &'static str {
        "Initializing"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut PodWorker) -> Step<'a> {
        Box::pin(async move {
            let specs = w.pod.spec.as_ref().and_then(|s| s.init_containers.clone()).unwrap_or_default();
            let already_done = w.snapshot().initialized();
            for spec in specs {
                let role = if recovery::is_sidecar(&spec) { Role::Sidecar } else { Role::Init };
                let name = spec.name.clone();
                let done = |w: &PodWorker| {
                    w.snapshot().container(&name).is_some_and(|c| match role {
                        Role::Sidecar => c.started,
                        _ => c.succeeded(),
                    })
                };
                // After an agent restart, init containers that succeeded stay done.
                if role == Role::Init && (already_done || done(w)) {
                    continue;
                }
                spawn::container(w, spec, role);
                if already_done {
                    continue; // restarted sidecars of an initialized pod: do not wait
                }
                loop {
                    if w.cancel.is_cancelled() {
                        return Transition::next(self, ShuttingDown(Seal));
                    }
                    if !w.refresh() {
                        return Transition::next(self, Terminating { grace: Duration::ZERO, verdict: None });
                    }
                    if w.pod.metadata.deletion_timestamp.is_some() {
                        return Transition::next(self, Terminating { grace: w.grace(), verdict: None });
                    }
                    if let Some(evicted) = evicted(w).await {
                        return Transition::next(self, evicted);
                    }
                    if done(w) {
                        break;
                    }
                    if status::init_phase(w.restart_policy(), &w.snapshot().init_containers, false) == "Failed" {
                        // An init container failed and the policy is Never: the pod fails.
                        return Transition::next(self, Terminating { grace: w.grace(), verdict: None });
                    }
                    let dirty = w.dirty.clone();
                    let cancel = w.cancel.clone();
                    tokio::select! {
                        () = dirty.notified() => w.sync_status().await,
                        r = w.updates.changed() => if r.is_err() {
                            return Transition::next(self, Terminating { grace: Duration::ZERO, verdict: None });
                        } else {
                            w.reconcile_status().await;
                        },
                        Ok(()) = w.evictions.changed() => {}
                        () = tokio::time::sleep(RESYNC) => w.sync_status().await,
                        () = cancel.cancelled() => {}
                    }
                }
            }
            w.update(|r| {
                r.init_done = true;
                for c in &mut r.containers {
                    if matches!(&c.state, ContainerState::Waiting { reason, .. } if reason == "PodInitializing") {
                        c.state = ContainerState::Waiting { reason: "ContainerCreating".into(), message: None };
                    }
                }
            });
            w.sync_status().await;
            spawn::containers(w);
            Transition::next(self, Running(Seal))
        })
    }
}

impl State<PodWorker> for Running {
    fn name(&self) -> &'static str {
        "Running"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut PodWorker) -> Step<'a> {
        Box::pin(async move {
            let deadline = active_deadline(&w.pod, w.snapshot().start_time);
            // One interval for the whole state, so busy pods still resync.
            let mut resync = tokio::time::interval(RESYNC);
            resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            resync.tick().await;
            loop {
                if w.cancel.is_cancelled() {
                    return Transition::next(self, ShuttingDown(Seal));
                }
                let alive = w.refresh();
                if !alive {
                    return Transition::next(self, Terminating { grace: Duration::ZERO, verdict: None });
                }
                if w.pod.metadata.deletion_timestamp.is_some() {
                    return Transition::next(self, Terminating { grace: w.grace(), verdict: None });
                }
                if let Some(evicted) = evicted(w).await {
                    return Transition::next(self, evicted);
                }
                if w.containers.is_empty() {
                    // Every regular container is done: sidecars stop now (KEP-753).
                    w.update(|r| r.terminating = true);
                    let grace = w.grace();
                    w.stop_all(grace, STOP_SLACK).await;
                    w.release_resources().await;
                    w.sync_status().await;
                    return Transition::next(self, Finished(Seal));
                }
                let dirty = w.dirty.clone();
                let cancel = w.cancel.clone();
                tokio::select! {
                    () = dirty.notified() => w.sync_status().await,
                    r = w.updates.changed() => if r.is_err() {
                        return Transition::next(self, Terminating { grace: Duration::ZERO, verdict: None });
                    } else {
                        w.reconcile_status().await;
                    },
                    Ok(()) = w.evictions.changed() => {}
                    Some(res) = w.containers.join_next() => {
                        if let Err(e) = res {
                            tracing::error!(error = %e, "container task failed; this is a bug");
                        }
                        w.sync_status().await;
                    }
                    () = sleep_until(deadline) => {
                        let verdict = PodVerdict {
                            phase: "Failed".into(),
                            reason: Some("DeadlineExceeded".into()),
                            message: Some("Pod was active on the node longer than the specified deadline".into()),
                        };
                        let pod = w.pod.clone();
                        w.shared.events.warning(&pod, None, reason::DEADLINE_EXCEEDED,
                            "Pod was active on the node longer than the specified deadline".into()).await;
                        return Transition::next(self, Terminating { grace: w.grace(), verdict: Some(verdict) });
                    }
                    _ = resync.tick() => {
                        w.sync_status().await;
                        if let Some(verdict) = over_size_limit(w).await {
                            let pod = w.pod.clone();
                            let note = verdict.message.clone().unwrap_or_default();
                            w.shared.events.warning(&pod, None, "Evicted", note).await;
                            return Transition::next(self, Terminating { grace: w.grace(), verdict: Some(verdict) });
                        }
                    }
                    () = cancel.cancelled() => {}
                }
            }
        })
    }
}

/// The eviction manager's (or the shutdown manager's) request, if there is
/// one: the event of its reason (`Evicted`, `Terminated`), the
/// `DisruptionTarget` condition, then termination with its grace period and
/// a `Failed` verdict of its reason.
async fn evicted(w: &mut PodWorker) -> Option<Terminating> {
    let eviction = w.evictions.borrow_and_update().clone()?;
    tracing::warn!(message = %eviction.message, grace = ?eviction.grace, "evicting the pod");
    let pod = w.pod.clone();
    w.shared.events.warning(&pod, None, &eviction.reason, eviction.message.clone()).await;
    w.update(|r| r.disruption = Some(eviction.message.clone()));
    w.sync_status().await;
    let verdict = PodVerdict { phase: "Failed".into(), reason: Some(eviction.reason), message: Some(eviction.message) };
    Some(Terminating { grace: eviction.grace, verdict: Some(verdict) })
}

/// An emptyDir over its `sizeLimit` evicts the pod, as upstream's eviction
/// manager does (a memory-backed one cannot grow past it: its tmpfs is that big).
/// The walk runs on the blocking pool.
async fn over_size_limit(w: &PodWorker) -> Option<PodVerdict> {
    let volumes = w.volumes.as_ref()?;
    let over = volumes.usage_off_worker().await.into_iter().find(|u| u.limit.is_some_and(|l| u.bytes > l))?;
    let limit = wasmlet_quantity::bytes(over.limit.unwrap_or_default()).0;
    Some(PodVerdict {
        phase: "Failed".into(),
        reason: Some("Evicted".into()),
        message: Some(format!("Usage of EmptyDir volume {:?} exceeds the limit {limit:?}.", over.volume)),
    })
}

impl State<PodWorker> for Terminating {
    fn name(&self) -> &'static str {
        "Terminating"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut PodWorker) -> Step<'a> {
        Box::pin(async move {
            w.update(|r| r.terminating = true);
            let began = std::time::Instant::now();
            let pod = w.pod.clone();
            for c in w.snapshot().containers.iter().filter(|c| c.is_running()) {
                w.shared
                    .events
                    .normal(&pod, Some(&c.name), reason::KILLING, format!("Stopping container {}", c.name))
                    .await;
            }
            w.stop_all(self.grace, STOP_SLACK).await;
            // Upstream unprepares claims after the containers stop and
            // before the final status, which lets the claim be deallocated.
            w.release_resources().await;
            if let Some(verdict) = self.verdict.clone() {
                w.update(|r| r.verdict = Some(verdict));
            }
            w.shared.metrics.pod_worker("kill", began.elapsed());
            Transition::next(self, Finished(Seal))
        })
    }
}

impl State<PodWorker> for Finished {
    fn name(&self) -> &'static str {
        "Finished"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut PodWorker) -> Step<'a> {
        Box::pin(async move {
            w.shared.admitted.lock().unwrap_or_else(|p| p.into_inner()).remove(&w.uid);
            // Rejected and recovered pods never passed Terminating.
            w.release_resources().await;
            // Nothing runs any more: the address goes back to the pool (the
            // status keeps reporting it, as upstream does).
            w.shared.network.detach(&w.uid).await;
            // Volumes other components provide (CSI) are released once nothing
            // runs, and before the final delete, as upstream.
            let mut released = false;
            loop {
                let alive = w.refresh();
                w.sync_status().await;
                if !released {
                    released = release_volumes(w).await;
                }
                if !alive {
                    return Transition::next(self, Cleanup(Seal));
                }
                if released && w.pod.metadata.deletion_timestamp.is_some() {
                    // The final record is on disk before the object goes.
                    w.flush_checkpoint().await;
                    return Transition::next(self, Deleting(Seal));
                }
                let cancel = w.cancel.clone();
                tokio::select! {
                    r = w.updates.changed() => if r.is_err() {
                        return Transition::next(self, Cleanup(Seal));
                    },
                    () = tokio::time::sleep(RESYNC) => {}
                    () = cancel.cancelled() => return Transition::done(self),
                }
            }
        })
    }
}

impl State<PodWorker> for Deleting {
    fn name(&self) -> &'static str {
        "Deleting"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut PodWorker) -> Step<'a> {
        Box::pin(async move {
            let (Some(ns), Some(name)) = (w.pod.metadata.namespace.clone(), w.pod.metadata.name.clone()) else {
                return Transition::next(self, Cleanup(Seal));
            };
            let api: Api<Pod> = Api::namespaced(w.shared.client.clone(), &ns);
            let params = DeleteParams {
                grace_period_seconds: Some(0),
                preconditions: Some(Preconditions { uid: Some(w.uid.clone()), resource_version: None }),
                ..Default::default()
            };
            let mut delay = Duration::from_millis(200);
            loop {
                match api.delete(&name, &params).await {
                    Ok(_) => break,
                    // Gone already, or a new pod with the same name: nothing left to delete.
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "final delete failed; retrying");
                        let cancel = w.cancel.clone();
                        tokio::select! {
                            () = tokio::time::sleep(delay) => {}
                            () = cancel.cancelled() => break,
                        }
                        delay = (delay * 2).min(Duration::from_secs(10));
                    }
                }
            }
            Transition::next(self, Cleanup(Seal))
        })
    }
}

impl State<PodWorker> for Cleanup {
    fn name(&self) -> &'static str {
        "Cleanup"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut PodWorker) -> Step<'a> {
        Box::pin(async move {
            w.shared.admitted.lock().unwrap_or_else(|p| p.into_inner()).remove(&w.uid);
            w.shared.network.detach(&w.uid).await;
            w.background.abort_all();
            // No checkpoint write may recreate the directory once it is removed.
            w.checkpoints.close().await;
            w.sources = None;
            if !release_volumes(w).await {
                // Kept for the next start's orphan pass, which retries.
                return Transition::done(self);
            }
            // Unmounting and removing walk the disk: on the blocking pool.
            let (volumes, dir, span) = (w.volumes.take(), w.dir.clone(), tracing::Span::current());
            let removed = tokio::task::spawn_blocking(move || {
                let _span = span.enter();
                let removed = match volumes {
                    Some(v) => v.cleanup(),
                    None => wasmlet_volumes::Volumes::cleanup(&dir),
                };
                if let Err(e) = removed {
                    // Never delete a directory that still holds a mount.
                    tracing::warn!(error = %e, "removing the pod's volumes failed; keeping its directory");
                    return;
                }
                if let Err(e) = std::fs::remove_dir_all(&dir)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::warn!(error = %e, dir = %dir.display(), "removing pod directory failed");
                }
            })
            .await;
            if let Err(e) = removed {
                tracing::error!(error = %e, "removing the pod's directory failed; this is a bug");
            }
            Transition::done(self)
        })
    }
}

impl State<PodWorker> for ShuttingDown {
    fn name(&self) -> &'static str {
        "ShuttingDown"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut PodWorker) -> Step<'a> {
        Box::pin(async move {
            let grace = w.grace().min(w.shared.config.shutdown_grace);
            let before = w.snapshot();
            let running: Vec<String> = before
                .init_containers
                .iter()
                .chain(before.containers.iter())
                .filter(|c| matches!(c.state, ContainerState::Running { .. }))
                .map(|c| c.name.clone())
                .collect();
            w.stop_all(grace, STOP_SLACK).await;
            // Runs the shutdown ended say so: they start again when the agent
            // is back, shown as a restart (not a crash, not a silent gap).
            w.update(|r| {
                for c in r.init_containers.iter_mut().chain(r.containers.iter_mut()) {
                    if let ContainerState::Terminated(t) = &mut c.state
                        && running.contains(&c.name)
                    {
                        t.message = Some(recovery::STOPPED_AT_SHUTDOWN.into());
                    }
                }
            });
            w.save_checkpoint(true);
            // Durable before the agent exits.
            w.flush_checkpoint().await;
            Transition::done(self)
        })
    }
}

/// Releases the pod's external (CSI) volumes; false, after a warning, if
/// that failed (the caller retries).
async fn release_volumes(w: &mut PodWorker) -> bool {
    match w.shared.volumes.release(&w.uid).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "releasing the pod's volumes failed; retrying");
            false
        }
    }
}

fn active_deadline(pod: &Pod, start: Option<Timestamp>) -> Option<tokio::time::Instant> {
    let secs = pod.spec.as_ref()?.active_deadline_seconds?;
    let start = start?;
    let elapsed = Timestamp::now().duration_since(start);
    let left = Duration::from_secs(secs.max(0) as u64).saturating_sub(Duration::try_from(elapsed).unwrap_or_default());
    Some(tokio::time::Instant::now() + left)
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
