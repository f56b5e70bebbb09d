//! One container's lifecycle: pull, start, run, exit, restart with back-off.
//!
//! ```text
//!  Pulling ──► Starting ──► Running ──► Exited ──► Completed
//!    ▲ │ ▲        │ │                   │ │ │
//!    │ ▼ │        │ └──────► Exited     │ │ └──► Stopped
//!   Retry ◄───────┘  (start error)      │ └──► CrashBackOff ──► Pulling
//!                                       └──► Pulling (first restart: immediate)
//! ```
//! Any waiting state also ends in `Stopped` when the pod stops the container.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use tokio_util::sync::CancellationToken;
use wasmlet_runtime::{Exit, ExitReason, HttpSpec, StartError, World};

use super::{Seal, State, Terminal, Transition, edges, states};
use crate::backoff::Backoff;
use crate::events::reason;
use crate::images::{ImageError, Pulled};
use crate::oom_events::RequestOoms;
use crate::prober::{self, Prober};
use crate::record::{ContainerRecord, ContainerState, Terminated};
use crate::worker::{ContainerWorker, Role};
use crate::{guest, pull_secrets};

type Step<'a> = BoxFuture<'a, Transition<ContainerWorker>>;

/// A guest's run (a module or command, or a `wasi:http` server).
type GuestRun<'a> = BoxFuture<'a, Result<Exit, StartError>>;

/// Stops a running guest: a module or command stops at once, a server stops
/// accepting and drains what is in flight; whatever is still running after
/// `grace` is dropped, as the kubelet's kill at the end of the grace period.
async fn stop(run: &mut GuestRun<'_>, guest_stop: &CancellationToken, grace: Duration) -> Result<Exit, StartError> {
    guest_stop.cancel();
    match tokio::time::timeout(grace, &mut *run).await {
        Ok(outcome) => outcome,
        Err(_) => Ok(Exit {
            code: wasmlet_runtime::exit::OOM_EXIT_CODE,
            reason: ExitReason::Stopped,
            message: format!("killed: still running at the end of the grace period of {}s", grace.as_secs()),
            wall: Duration::ZERO,
            cpu: Duration::ZERO,
        }),
    }
}

/// The next count of a server's requests stopped at the memory limit;
/// never, for a guest that is not a server.
async fn request_ooms(ooms: &mut Option<RequestOoms>) -> u64 {
    match ooms {
        Some(ooms) => ooms.next().await,
        None => std::future::pending().await,
    }
}

/// The pod's own grace period (`terminationGracePeriodSeconds`, default 30 s).
fn spec_grace(pod: &k8s_openapi::api::core::v1::Pod) -> Duration {
    let seconds = pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds).unwrap_or(30);
    Duration::from_secs(seconds.max(0) as u64)
}

/// How long `ErrImagePull` shows before `ImagePullBackOff` replaces it.
const ERR_IMAGE_PULL_HOLD: Duration = Duration::from_secs(2);

/// Making the image available.
pub struct Pulling(Seal);
/// Waiting before trying again (image pull back-off, configuration errors).
pub struct Retry {
    reason: &'static str,
    message: String,
    delay: Duration,
}
/// Building the guest: environment, compiled code.
pub struct Starting {
    image: Pulled,
}
/// The guest runs.
pub struct Running {
    guest: std::sync::Arc<guest::Prepared>,
}
/// The guest ended; decide whether it runs again.
pub struct Exited {
    ran: Duration,
    /// The agent ended the run (shut down or died), not the guest.
    by_agent: bool,
}
/// Waiting out the crash-loop back-off.
pub struct CrashBackOff {
    delay: Duration,
}
/// Stopped by the pod (deletion, deadline, agent shutdown).
pub struct Stopped(Seal);
/// Ended and will not run again.
pub struct Completed(Seal);

states!(Pulling, Retry, Starting, Running, Exited, CrashBackOff, Stopped, Completed);
edges!(
    Pulling => Starting, Retry, Stopped;
    Retry => Pulling, Stopped;
    Starting => Running, Exited, Retry, Stopped;
    Running => Exited;
    Exited => Pulling, CrashBackOff, Completed, Stopped;
    CrashBackOff => Pulling, Stopped;
);
impl Terminal for Stopped {}
impl Terminal for Completed {}

/// Where a container's machine starts: fresh, or — after an agent restart —
/// from its recorded termination.
/// A run the agent ended (it shut down, or died) starts again at once and
/// does not count towards the back-off; a container that was waiting out
/// its crash-loop back-off waits out the rest of it.
pub(crate) fn start_state(w: &ContainerWorker) -> Box<dyn State<ContainerWorker>> {
    let Some(c) = w.snapshot() else { return Box::new(Pulling(Seal)) };
    match &c.state {
        ContainerState::Terminated(t) => {
            let ran = t.started_at.map_or(Duration::ZERO, |s| duration(s, t.finished_at));
            Box::new(Exited { ran, by_agent: crate::recovery::ended_by_agent(t) })
        }
        ContainerState::Waiting { reason, .. } if reason == CRASH_LOOP_BACK_OFF => {
            let Some(last) = &c.last_state else { return Box::new(Pulling(Seal)) };
            let (_, delay) = Backoff::resume(w.shared.config.crash_backoff, failures_seen(&c));
            let since = Duration::try_from(Timestamp::now().duration_since(last.finished_at)).unwrap_or_default();
            Box::new(CrashBackOff { delay: delay.saturating_sub(since) })
        }
        _ => Box::new(Pulling(Seal)),
    }
}

/// How many of the container's failures its back-off has seen: one per
/// restart, and the one it is waiting out the back-off of.
pub(crate) fn failures_seen(c: &ContainerRecord) -> u32 {
    let restarts = u32::try_from(c.restart_count).unwrap_or(0);
    let waiting = matches!(&c.state, ContainerState::Waiting { reason, .. } if reason == CRASH_LOOP_BACK_OFF);
    restarts.saturating_add(u32::from(waiting))
}

/// The waiting reason of a container between crash-loop restarts.
pub(crate) const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";

/// Records that the agent's task for this container panicked with `text`:
/// the container ends as a failed run (`Error`), so that its machine,
/// started again from the record ([`start_state`]), applies the restart
/// policy. Runs after the panicking future (and the guest's run in it) was
/// dropped; must not panic itself.
pub(crate) fn panicked(w: &mut ContainerWorker, text: &str) {
    let name = w.name().to_owned();
    w.attempts.ended(&name);
    let now = Timestamp::now();
    let message = format!("the agent's task for this container panicked: {text}");
    w.update(|c| {
        let started_at = match &c.state {
            ContainerState::Running { started_at } => Some(*started_at),
            _ => None,
        };
        c.state = ContainerState::Terminated(Terminated {
            exit_code: PANIC_EXIT_CODE,
            reason: "Error".into(),
            message: Some(message),
            started_at,
            finished_at: now,
            container_id: c.container_id.clone(),
        });
        c.ready = false;
        c.started = false;
    });
}

/// The exit code of a container whose agent task panicked (no guest exit
/// code exists; any non-zero code makes `OnFailure` restart it).
pub(crate) const PANIC_EXIT_CODE: i32 = 255;

impl State<ContainerWorker> for Pulling {
    fn name(&self) -> &'static str {
        "Pulling"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut ContainerWorker) -> Step<'a> {
        Box::pin(async move {
            if w.stop_requested().is_some() {
                return Transition::next(self, Stopped(Seal));
            }
            let image = w.image().to_owned();
            let policy = w.spec.image_pull_policy.clone().unwrap_or_default();
            let pod = w.pod.clone();
            let shared = w.shared.clone();
            let auths = pull_credentials(w, &image).await;
            let pull_started = Instant::now();
            let result = tokio::select! {
                r = shared.images.ensure(&image, &policy, &auths) => r,
                _ = w.stopped() => return Transition::next(self, Stopped(Seal)),
            };
            if result.as_ref().map_or(true, |p| p.pulled_in.is_some()) {
                shared.metrics.image_pull(pull_started.elapsed(), result.is_ok());
                shared.startup.pulled(w.pod.metadata.uid.as_deref().unwrap_or_default(), pull_started, Instant::now());
            }
            match result {
                Ok(pulled) => {
                    let note = match pulled.pulled_in {
                        None => format!("Container image {image:?} already present on machine"),
                        Some(d) => {
                            format!("Successfully pulled image {image:?} in {}ms", d.as_millis())
                        }
                    };
                    if pulled.pulled_in.is_some() {
                        w.shared
                            .events
                            .normal(&pod, Some(w.name()), reason::PULLING, format!("Pulling image {image:?}"))
                            .await;
                    }
                    w.shared.events.normal(&pod, Some(w.name()), reason::PULLED, note).await;
                    w.pull_backoff.reset();
                    let image_id = pulled.image_id.clone();
                    w.update(|c| c.image_id = Some(image_id));
                    Transition::next(self, Starting { image: pulled })
                }
                Err(e) => {
                    let message = e.to_string();
                    w.shared.events.warning(&pod, Some(w.name()), reason::FAILED, message.clone()).await;
                    w.shared
                        .events
                        .warning(&pod, Some(w.name()), reason::FAILED, format!("Error: {}", e.reason()))
                        .await;
                    let waiting = e.reason().to_owned();
                    w.update(|c| c.state = ContainerState::Waiting { reason: waiting, message: Some(message) });
                    let delay = w.pull_backoff.failure(Duration::ZERO);
                    let (reason, message) = match e {
                        // As upstream (1.30+): the back-off message carries the
                        // failed pull's reason and message.
                        ImageError::Pull { .. } => {
                            ("ImagePullBackOff", format!("Back-off pulling image {image:?}: {}: {e}", e.reason()))
                        }
                        other => (other.reason(), other.to_string()),
                    };
                    Transition::next(self, Retry { reason, message, delay })
                }
            }
        })
    }
}

impl State<ContainerWorker> for Retry {
    fn name(&self) -> &'static str {
        "Retry"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut ContainerWorker) -> Step<'a> {
        Box::pin(async move {
            let mut delay = self.delay;
            if self.reason == "ImagePullBackOff" {
                // Like upstream, the failure (ErrImagePull) shows until the next
                // sync before the back-off reason replaces it.
                let hold = ERR_IMAGE_PULL_HOLD.min(delay);
                if w.sleep_or_stop(hold).await.is_some() {
                    return Transition::next(self, Stopped(Seal));
                }
                delay -= hold;
                let pod = w.pod.clone();
                w.shared.events.normal(&pod, Some(w.name()), reason::BACK_OFF, self.message.clone()).await;
            }
            let (reason, message) = (self.reason.to_owned(), self.message.clone());
            w.update(|c| c.state = ContainerState::Waiting { reason, message: Some(message) });
            match w.sleep_or_stop(delay).await {
                None => Transition::next(self, Pulling(Seal)),
                Some(_) => Transition::next(self, Stopped(Seal)),
            }
        })
    }
}

impl State<ContainerWorker> for Starting {
    fn name(&self) -> &'static str {
        "Starting"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut ContainerWorker) -> Step<'a> {
        Box::pin(async move {
            let pod = w.pod.clone();
            let (env, mounts) = match container_config(w).await {
                Ok(config) => config,
                Err(message) => {
                    w.shared.events.warning(&pod, Some(w.name()), reason::FAILED, format!("Error: {message}")).await;
                    let delay = w.crash_backoff.failure(Duration::ZERO).max(Duration::from_secs(1));
                    return Transition::next(self, Retry { reason: "CreateContainerConfigError", message, delay });
                }
            };
            hold(w, &self.image);
            match guest::prepare(w, &self.image, env, mounts).await {
                Ok(guest) => {
                    if w.stop_requested().is_some() {
                        return Transition::next(self, Stopped(Seal));
                    }
                    Transition::next(self, Running { guest: std::sync::Arc::new(guest) })
                }
                Err(failure) => {
                    let message = failure.to_string();
                    w.shared.events.warning(&pod, Some(w.name()), reason::FAILED, format!("Error: {message}")).await;
                    let now = Timestamp::now();
                    w.update(|c| {
                        c.state = ContainerState::Terminated(Terminated {
                            exit_code: 128,
                            reason: "StartError".into(),
                            message: Some(message),
                            started_at: None,
                            finished_at: now,
                            container_id: c.container_id.clone(),
                        });
                    });
                    Transition::next(self, Exited { ran: Duration::ZERO, by_agent: false })
                }
            }
        })
    }
}

impl State<ContainerWorker> for Running {
    fn name(&self) -> &'static str {
        "Running"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut ContainerWorker) -> Step<'a> {
        Box::pin(async move {
            let pod = w.pod.clone();
            let attempt = guest::begin_attempt(w).await;
            let name = w.name().to_owned();
            w.shared.events.normal(&pod, Some(&name), reason::CREATED, format!("Created container: {name}")).await;
            w.shared.events.normal(&pod, Some(&name), reason::STARTED, format!("Started container {name}")).await;
            let started = Instant::now();
            let started_at = Timestamp::now();
            let pod_ip = w.record.lock().unwrap_or_else(|p| p.into_inner()).pod_ip.clone();
            let pod_ip = pod_ip.and_then(|ip| ip.parse().ok()).unwrap_or(w.shared.config.node_ip);
            let guest_stop = CancellationToken::new();
            let runtime = w.shared.runtime.clone();
            let stats = wasmlet_runtime::GuestStats::new();
            let live = crate::live::Running {
                guest: self.guest.clone(),
                stats: stats.clone(),
                memory_limit: self.guest.memory_limit(),
            };
            w.live.started(&name, live);
            if let Some(created) = w.created.take() {
                w.shared.metrics.container_started(created.elapsed());
            }
            w.update(|c| {
                c.state = ContainerState::Running { started_at };
                (c.started, c.ready) = (false, false);
            });
            let spec = self.guest.spec(&attempt, stats, pod_ip);
            let mut ooms = None;
            let (run, bound): (GuestRun<'_>, _) = if self.guest.compiled.world() == World::HttpProxy {
                // A server: probes start once every port is bound.
                let (tx, rx) = tokio::sync::oneshot::channel();
                let mut http = HttpSpec::new(spec, crate::sockets::http_listen(&w.spec, pod_ip));
                http.drain = spec_grace(&w.pod);
                http.ready = Some(tx);
                let http_stats = wasmlet_runtime::HttpStats::new();
                http.stats = Some(http_stats.clone());
                ooms = Some(RequestOoms::new(move || http_stats.out_of_memory()));
                (Box::pin(runtime.serve_http(&self.guest.compiled, http, guest_stop.clone())), Some(rx))
            } else {
                (Box::pin(runtime.run(&self.guest.compiled, spec, guest_stop.clone())), None)
            };
            #[cfg(debug_assertions)]
            let run = crate::fault::inject(run, &name, w.snapshot().map_or(0, |c| c.restart_count));
            let mut run = run;
            let outcome = 'run: {
                if let Some(bound) = bound {
                    tokio::select! {
                        outcome = &mut run => break 'run outcome,
                        _ = bound => {}
                        req = w.stopped() => break 'run stop(&mut run, &guest_stop, req.grace).await,
                    }
                }
                let mut prober = Prober::new(self.guest.probes.clone(), pod_ip, tokio::time::Instant::now())
                    .with_recorder(probe_recorder(w));
                let (probed_ready, probed_start) = (prober.has_readiness(), !prober.started());
                w.update(|c| {
                    c.started = !probed_start;
                    c.ready = c.started && !probed_ready;
                });
                loop {
                    tokio::select! {
                        outcome = &mut run => break outcome,
                        count = request_ooms(&mut ooms) => {
                            let note = crate::oom_events::note(&name, count, self.guest.memory_limit());
                            w.shared.events.warning(&pod, Some(&name), reason::OOM_KILLING, note).await;
                        }
                        event = prober.next() => {
                            if on_probe(w, &prober, event).await.is_some() {
                                // A failed liveness or startup probe: stop the guest now.
                                break stop(&mut run, &guest_stop, spec_grace(&w.pod)).await;
                            }
                        }
                        req = w.stopped() => {
                            // preStop hooks get the grace period; a wasm guest has no
                            // signal handler, so then it is stopped at once (a server
                            // drains what is in flight within the rest of the grace).
                            let started = Instant::now();
                            let hook = guest::pre_stop(&w.spec).map(|d| d.min(req.grace));
                            if let Some(d) = hook {
                                tokio::select! {
                                    outcome = &mut run => break outcome,
                                    () = tokio::time::sleep(d) => {}
                                }
                            }
                            break stop(&mut run, &guest_stop, req.grace.saturating_sub(started.elapsed())).await;
                        }
                    }
                }
            };
            drop(run);
            attempt.flush().await;
            w.attempts.ended(&name);
            let terminated = guest::terminated(outcome, started_at, attempt.container_id);
            w.update(|c| {
                c.state = ContainerState::Terminated(terminated);
                c.ready = false;
                c.started = false;
            });
            Transition::next(self, Exited { ran: started.elapsed(), by_agent: false })
        })
    }
}

impl State<ContainerWorker> for Exited {
    fn name(&self) -> &'static str {
        "Exited"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut ContainerWorker) -> Step<'a> {
        Box::pin(async move {
            if w.stop_requested().is_some() {
                return Transition::next(self, Stopped(Seal));
            }
            let Some(ContainerState::Terminated(t)) = w.snapshot().map(|c| c.state) else {
                return Transition::next(self, Completed(Seal));
            };
            let policy = w.pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()).unwrap_or("Always");
            let restart = match (w.role, policy) {
                (Role::Sidecar, _) => true,
                (_, "Never") => false,
                // The guest did not choose to end: it runs again whatever its exit code.
                _ if self.by_agent => true,
                (Role::Init, _) | (_, "OnFailure") => t.exit_code != 0,
                _ => true,
            };
            if !restart {
                release(w);
                return Transition::next(self, Completed(Seal));
            }
            let delay = if self.by_agent { Duration::ZERO } else { w.crash_backoff.failure(self.ran) };
            let waiting = if delay.is_zero() {
                ContainerState::Waiting { reason: "ContainerCreating".into(), message: None }
            } else {
                ContainerState::Waiting {
                    reason: CRASH_LOOP_BACK_OFF.into(),
                    message: Some(format!(
                        "back-off {} restarting failed container={} pod={}",
                        human(delay),
                        w.name(),
                        w.pod_ref()
                    )),
                }
            };
            w.update(|c| {
                c.last_state = Some(t);
                c.state = waiting;
            });
            w.shared.metrics.container_restarted();
            if delay.is_zero() {
                Transition::next(self, Pulling(Seal))
            } else {
                Transition::next(self, CrashBackOff { delay })
            }
        })
    }
}

impl State<ContainerWorker> for CrashBackOff {
    fn name(&self) -> &'static str {
        "CrashBackOff"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut ContainerWorker) -> Step<'a> {
        Box::pin(async move {
            let pod = w.pod.clone();
            let note = format!("Back-off restarting failed container {} in pod {}", w.name(), w.pod_ref());
            w.shared.events.warning(&pod, Some(w.name()), reason::BACK_OFF, note).await;
            match w.sleep_or_stop(self.delay).await {
                None => Transition::next(self, Pulling(Seal)),
                Some(_) => Transition::next(self, Stopped(Seal)),
            }
        })
    }
}

impl State<ContainerWorker> for Stopped {
    fn name(&self) -> &'static str {
        "Stopped"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut ContainerWorker) -> Step<'a> {
        Box::pin(async move {
            release(w);
            // A container waiting to restart reports its last run as final.
            w.update(|c| {
                if matches!(c.state, ContainerState::Waiting { .. })
                    && let Some(last) = c.last_state.clone()
                {
                    c.state = ContainerState::Terminated(last);
                }
            });
            Transition::done(self)
        })
    }
}

impl State<ContainerWorker> for Completed {
    fn name(&self) -> &'static str {
        "Completed"
    }

    fn next<'a>(self: Box<Self>, w: &'a mut ContainerWorker) -> Step<'a> {
        Box::pin(async move {
            release(w);
            Transition::done(self)
        })
    }
}

/// The container's environment (with ConfigMap, Secret, downward API and
/// service-link values), its volume mounts, and what node plugins give it
/// (devices, claims: [`crate::resources`]); an error is a
/// `CreateContainerConfigError` message.
async fn container_config(w: &ContainerWorker) -> Result<(Vec<(String, String)>, Vec<wasmlet_runtime::Mount>), String> {
    let (env, mut mounts) = own_config(w).await?;
    let extra = w.shared.resources().container(&w.pod, &w.spec).await?;
    if w.created.is_some() {
        for note in &extra.notes {
            w.shared.events.warning(&w.pod, Some(w.name()), &note.reason, note.message.clone()).await;
        }
    }
    let mut all = extra.env_defaults;
    for (k, v) in env.into_iter().chain(extra.env_overrides) {
        match all.iter_mut().find(|(name, _)| *name == k) {
            Some(slot) => slot.1 = v,
            None => all.push((k, v)),
        }
    }
    for m in extra.mounts {
        if mounts.iter().any(|have| have.guest == m.guest) {
            tracing::warn!(path = %m.guest, "a device mount is at a path a volume already uses; keeping the volume");
        } else {
            mounts.push(m);
        }
    }
    Ok((all, mounts))
}

/// The container's own environment and volume mounts.
async fn own_config(w: &ContainerWorker) -> Result<(Vec<(String, String)>, Vec<wasmlet_runtime::Mount>), String> {
    let addrs = w.shared.addresses(&w.record.lock().unwrap_or_else(|p| p.into_inner()));
    let ctx = wasmlet_volumes::EnvContext {
        pod_ips: vec![addrs.pod_ip],
        host_ips: vec![addrs.host_ip],
        node_name: w.shared.config.node_name.clone(),
        allocatable: w.shared.config.allocatable.quantities(),
    };
    let env = wasmlet_volumes::resolve_env(w.shared.volumes.sources(), &w.pod, &w.spec, &ctx)
        .await
        .map_err(|e| e.to_string())?;
    let mounts = match &w.volumes {
        Some(v) => v.mounts(&w.spec, &env).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    Ok((env, mounts))
}

/// Credentials from the pod's `imagePullSecrets` for the image's registry;
/// secrets that cannot be read are reported as upstream does, and the pull
/// goes on without them.
async fn pull_credentials(w: &ContainerWorker, image: &str) -> Vec<wasmlet_oci::RegistryAuth> {
    let Some(registry) = crate::Images::registry_of(image) else { return Vec::new() };
    let (auths, missing) = pull_secrets::credentials(&w.shared.client, &w.pod, &registry).await;
    if !missing.is_empty() {
        let note = format!(
            "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
            missing.join(", ")
        );
        w.shared.events.warning(&w.pod, None, "FailedToRetrieveImagePullSecret", note).await;
    }
    auths
}

/// Applies a probe event to the container; returns `Some` when the container
/// must be killed (liveness or startup failure), after recording the events.
/// Counts each probe attempt in `prober_probe_total`, as upstream labels it.
fn probe_recorder(w: &ContainerWorker) -> prober::Recorder {
    let metrics = w.shared.metrics.clone();
    let meta = &w.pod.metadata;
    let (namespace, pod) = (meta.namespace.clone().unwrap_or_default(), meta.name.clone().unwrap_or_default());
    let (uid, container) = (meta.uid.clone().unwrap_or_default(), w.name().to_owned());
    Box::new(move |kind, ok| {
        metrics.probe(wasmlet_metrics::probes::ProbeRun {
            namespace: &namespace,
            pod: &pod,
            pod_uid: &uid,
            container: &container,
            probe_type: kind.title(),
            result: if ok { "successful" } else { "failed" },
        });
    })
}

async fn on_probe(w: &ContainerWorker, prober: &Prober, event: prober::Event) -> Option<()> {
    let pod = w.pod.clone();
    let name = w.name().to_owned();
    match event {
        prober::Event::Started => {
            let ready = !prober.has_readiness();
            w.update(|c| {
                c.started = true;
                c.ready = ready;
            });
            None
        }
        prober::Event::Ready(ready) => {
            let started = prober.started();
            w.update(|c| c.ready = ready && started);
            None
        }
        prober::Event::Failed { kind, message } => {
            let note = format!("{} probe failed: {message}", kind.title());
            w.shared.events.warning(&pod, Some(&name), reason::UNHEALTHY, note).await;
            None
        }
        prober::Event::Warning { kind, message } => {
            let note = format!("{} probe warning: {message}", kind.title());
            w.shared.events.warning(&pod, Some(&name), reason::PROBE_WARNING, note).await;
            None
        }
        prober::Event::Kill { kind, .. } => {
            let note = format!("Container {name} failed {} probe, will be restarted", kind.title().to_lowercase());
            w.shared.events.normal(&pod, Some(&name), reason::KILLING, note).await;
            Some(())
        }
    }
}

fn hold(w: &mut ContainerWorker, image: &Pulled) {
    if w.held.as_ref().map(|h| &h.digest) != Some(&image.digest) {
        release(w);
        w.shared.images.hold(&image.digest);
        w.held = Some(image.clone());
    }
}

fn release(w: &mut ContainerWorker) {
    if let Some(held) = w.held.take() {
        w.shared.images.release(&held.digest);
    }
}

fn duration(from: Timestamp, to: Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or_default()
}

/// `1m20s`, `10s` — how upstream prints back-off delays.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 { format!("{}m{}s", s / 60, s % 60) } else { format!("{s}s") }
}
