//! Wiring: node registration, heartbeats, the kubelet API, the plugin
//! watcher with CSI, device plugins and DRA, pod sync and the eviction
//! manager, and a two-phase shutdown.
//!
//! On SIGTERM or SIGINT: (1) pod sync stops — every pod's containers stop
//! within their grace period (capped by [`SHUTDOWN_GRACE`]) and the record of
//! each pod is kept for the next start; (2) the kubelet API and the heartbeat
//! stop; the process exits 0. The Node stays registered. A second signal
//! during phase 1 exits at once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wasmlet_node::{Heartbeat, NodeConfig, NodeHealth};
use wasmlet_oci::{ClientOptions, Clients, Store};
use wasmlet_pods::{Allocatable, BackoffConfig, Images, Pods, WasmPolicy, quantity};

use crate::config::Settings;
use crate::{api, counted, identity};

/// The longest a pod's containers get to stop when the agent shuts down.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// The wasmtime release wasmlet embeds (`containerRuntimeVersion`); keep in
/// step with the workspace's wasmtime dependency.
const WASMTIME_VERSION: &str = "48.0.8";
/// The RuntimeClass of `deploy/runtimeclass.yaml`.
const RUNTIME_CLASS: &str = "wasmlet";

pub(crate) async fn run(settings: Settings) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let shutdown = CancellationToken::new();
    // Phase-two token: the API server and the heartbeat outlive pod shutdown.
    let late = CancellationToken::new();
    let tracker = TaskTracker::new();
    tracker.spawn(signals(shutdown.clone(), late.clone()));
    for notice in &settings.notices {
        tracing::warn!("{notice}");
    }
    if let Some(addr) = settings.upstream.healthz {
        tracker.spawn(wasmlet_api::serve_healthz(addr, late.clone()));
    }

    let Some(identity) = identity::load(&settings, &shutdown).await? else {
        late.cancel();
        return Ok(());
    };
    identity.rotate(&settings, &tracker, late.clone());
    let metrics = Arc::new(wasmlet_metrics::Metrics::new());
    metrics.set_node_name(&settings.node_name);
    metrics.set_client_certificate_source(identity.client_certificate_expiry_source(&settings).await);
    let client = counted::counted(identity.client.clone(), metrics.clone(), counted::api_host(&settings.kubeconfig));

    let limits = wasmlet_oci::PullLimits {
        progress_deadline: settings.image_pull_progress_deadline,
        ..wasmlet_oci::PullLimits::default()
    };
    let store = Store::open(settings.root_dir.join(wasmlet_oci::NODE_STORE_DIR))
        .context("opening the image store")?
        .with_limits(limits);
    let clients = Clients::new(ClientOptions {
        insecure_registries: settings.insecure_registries.clone(),
        extra_root_pem: settings.registry_ca.clone().into_iter().collect(),
        ..Default::default()
    })
    .context("configuring registry clients")?;

    let node_config = node_config(&settings);
    tracing::info!(node = %settings.node_name, "registering the node");
    let node = tokio::select! {
        n = wasmlet_node::register(&client, &node_config, &shutdown) => n.context("registering the node")?,
        () = shutdown.cancelled() => {
            late.cancel();
            return Ok(());
        }
    };
    let node_uid = node.metadata.uid.clone().context("the registered Node has no UID")?;
    let allocatable = allocatable(&node);
    tracing::info!(?allocatable, "node registered");
    // After registration: the node-wide guard needs the Node's capacity.
    let runtime = wasmlet_runtime::Runtime::new(wasmlet_runtime::Config {
        cache_dir: Some(settings.root_dir.join("cache").join("wasmtime")),
        node_memory_bytes: pods_memory(&node, &node_config.reserved),
        node_policy: settings.guest_network.clone(),
        ..Default::default()
    })
    .context("starting the wasm runtime")?;

    let network =
        wasmlet_network::PodNetwork::start(settings.pod_network.clone(), settings.node_ip, &tracker, late.clone())
            .await;
    // One watch of this Node for everything that follows it.
    let (node_tx, node_rx) = watch::channel(None);
    tracker.spawn(own_node(client.clone(), settings.node_name.clone(), node_tx, late.clone()));
    tracker.spawn(pod_cidr(node_rx.clone(), network.clone(), late.clone()));
    let (health_tx, health_rx) = watch::channel(NodeHealth {
        ready: false,
        message: "wasmlet is starting: pod sync has not listed pods yet".into(),
        ..NodeHealth::default()
    });
    tracker.spawn(Heartbeat::new(client.clone(), node_config, node_uid.clone()).run(health_rx, late.clone()));
    tracker.spawn(ready_overwritten(node_rx.clone(), health_tx.clone(), late.clone()));

    let csi = wasmlet_csi::Csi::new(
        client.clone(),
        wasmlet_csi::Config {
            stats_period: settings.volume_stats_period,
            ..wasmlet_csi::Config::new(&settings.node_name, settings.root_dir.clone())
        },
    );
    csi.spawn(&tracker, node_rx, late.clone());
    let plugged = start_plugins(&settings, &client, &csi, &tracker, late.clone());
    let extended = plugged.devices.capacity();

    let sources = wasmlet_volumes::Sources::new(client.clone(), Default::default(), late.clone());
    let volumes = wasmlet_volumes::Volumes::new(
        sources.clone(),
        wasmlet_volumes::Config {
            allocatable: allocatable.quantities(),
            token_refresh_fraction: settings.token_refresh_fraction,
            protected_host_paths: settings.protected_host_paths(),
            ..Default::default()
        },
    )
    .with_external(Arc::new(csi.volumes()));
    let compile_stats = runtime.clone();
    metrics.set_compile_source(move || {
        let s = compile_stats.compile_stats();
        wasmlet_metrics::CompileCounts { compiles: s.compiles, cache_hits: s.hits, failures: s.failures }
    });
    let pods = Arc::new(Pods::new(
        client.clone(),
        wasmlet_pods::Config {
            node_name: settings.node_name.clone(),
            node_ip: settings.node_ip,
            root_dir: settings.root_dir.clone(),
            allocatable,
            wasm: WasmPolicy { runtime_classes: vec![RUNTIME_CLASS.into()], arch: wasmlet_node::ARCHITECTURE.into() },
            crash_backoff: BackoffConfig::CRASH_LOOP,
            image_backoff: BackoffConfig::IMAGE_PULL,
            shutdown_grace: SHUTDOWN_GRACE,
            gc_interval: settings.upstream.image_gc_period,
            image_gc: settings.upstream.image_gc,
        },
        Arc::new(runtime),
        Images::new(store, clients),
        network.clone(),
        volumes,
        metrics.clone(),
    ));
    pods.set_resources(plugged);
    let target = crate::eviction::Node::new(
        client.clone(),
        pods.clone(),
        metrics.clone(),
        settings.root_dir.clone(),
        &settings.node_name,
        &node_uid,
    );
    let evictions = wasmlet_eviction::Manager::new(settings.eviction.clone(), Arc::new(target));
    pods.set_pressure_admission(evictions.admission());
    let pressure = evictions.conditions();
    tracker.spawn(evictions.run(shutdown.clone()));
    // Graceful node shutdown (KEP-2000): refuses pods and stops them by
    // priority when logind announces a shutdown.
    let (shutting_down_tx, shutting_down) = watch::channel(false);
    pods.set_node_shutdown(shutting_down.clone());
    let shutdown_config = wasmlet_shutdown::Config::new(settings.shutdown.periods());
    let shutdown_pods = Arc::new(crate::node_shutdown::ShutdownPods(pods.clone()));
    tracker.spawn(wasmlet_shutdown::run(shutdown_config, shutdown_pods, shutting_down_tx, shutdown.clone()));

    let volume_source = pods.stats_source();
    metrics.set_volume_source(move || claim_volumes(&volume_source.pods()));
    let routes = api::Routes {
        provider: pods.provider(Default::default()),
        telemetry: wasmlet_api::Telemetry::new()
            .stats(pods.stats_source(), wasmlet_metrics::Stats::new(Default::default()))
            .metrics(metrics.clone()),
    };
    api::start(&settings, &identity, routes, metrics.clone(), &tracker, late.clone()).await?;

    let synced = Arc::new(Notify::new());
    if let Some(dir) = settings.upstream.static_pods.clone() {
        let config = wasmlet_static_pods::Config {
            dir,
            node_name: settings.node_name.clone(),
            resync: wasmlet_static_pods::DEFAULT_RESYNC,
        };
        tracker.spawn(wasmlet_static_pods::run(client.clone(), config, shutdown.clone()));
    }
    tracker.spawn(node_images(health_tx.clone(), pods.images().store().clone(), late.clone()));
    tracker.spawn(node_health(health_tx, synced.clone(), network.status(), pressure, extended, shutting_down));

    pods.run(shutdown.clone(), synced).await;
    tracing::info!("pods stopped; stopping the kubelet API and heartbeat");
    late.cancel();
    tracker.close();
    tracker.wait().await;
    sources.wait().await;
    tracing::info!("wasmlet stopped");
    Ok(())
}

/// Feeds the heartbeat: Ready once pods are listed (NotReady with the reason
/// when the pod network is broken, as upstream does for a runtime whose
/// network plugin is not ready; NotReady while the node shuts down, as
/// upstream's shutdown manager makes it), and the eviction manager's
/// pressure conditions and the device plugins' extended resources as they
/// change. Returns when the heartbeat is gone.
async fn node_health(
    health: watch::Sender<NodeHealth>,
    listed: Arc<Notify>,
    network: wasmlet_network::Status,
    mut pressure: watch::Receiver<wasmlet_eviction::Conditions>,
    mut extended: watch::Receiver<wasmlet_devices::Capacity>,
    mut shutting_down: watch::Receiver<bool>,
) {
    let mut listed = std::pin::pin!(listed.notified());
    let (mut waiting, mut pressure_open, mut extended_open, mut shutdown_open) = (true, true, true, true);
    // Ready and its message once pods are listed, before any shutdown.
    let mut listed_health: Option<(bool, String)> = None;
    // Resources known from the checkpoint count 0 until their plugin is back.
    extended.mark_changed();
    loop {
        tokio::select! {
            changed = extended.changed(), if extended_open => {
                if changed.is_err() {
                    extended_open = false;
                    continue;
                }
                let now = crate::plugins::extended(&extended.borrow_and_update());
                health.send_if_modified(|h| std::mem::replace(&mut h.extended, now.clone()) != now);
            }
            () = &mut listed, if waiting => {
                waiting = false;
                let message = if network.ready {
                    String::new()
                } else {
                    format!("pod network is not ready: {}", network.message)
                };
                listed_health = Some((network.ready, message));
                if !*shutting_down.borrow() {
                    set_ready(&health, listed_health.clone());
                }
                tracing::info!(ready = network.ready, "pods listed; node status set");
            }
            changed = shutting_down.changed(), if shutdown_open => {
                if changed.is_err() {
                    shutdown_open = false;
                    continue;
                }
                if *shutting_down.borrow_and_update() {
                    set_ready(&health, Some((false, wasmlet_shutdown::NOT_READY_MESSAGE.into())));
                    tracing::warn!("the node is shutting down: NotReady");
                } else if listed_health.is_some() {
                    set_ready(&health, listed_health.clone());
                    tracing::info!("node shutdown cancelled: node status set back");
                }
            }
            changed = pressure.changed(), if pressure_open => {
                if changed.is_err() {
                    pressure_open = false;
                    continue;
                }
                let now = *pressure.borrow_and_update();
                health.send_if_modified(|h| std::mem::replace(&mut h.pressure, now) != now);
                tracing::info!(?now, "node pressure conditions changed");
            }
            () = health.closed() => return,
        }
    }
}

/// How often the images on the node are listed for `status.images`.
const IMAGE_LIST_PERIOD: Duration = Duration::from_secs(10);

/// Keeps `status.images` current: every image in the store, by content,
/// with its references' names (`repo@digest` and the tag pulled) and size.
async fn node_images(health: watch::Sender<NodeHealth>, store: Store, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(IMAGE_LIST_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = cancel.cancelled() => return,
        }
        let listed = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.images()).await
        };
        let images = match listed {
            Ok(Ok(images)) => node_status_images(&images),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "listing images for the node status");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "listing images for the node status");
                continue;
            }
        };
        health.send_if_modified(|h| std::mem::replace(&mut h.images, images.clone()) != images);
    }
}

/// The store's images as `status.images` entries: one per content digest,
/// named `registry/repository@manifest-digest` and by the reference pulled.
fn node_status_images(images: &[wasmlet_oci::Image]) -> Vec<k8s_openapi::api::core::v1::ContainerImage> {
    let mut by_content: std::collections::BTreeMap<String, (Vec<String>, u64)> = Default::default();
    for image in images {
        let entry = by_content.entry(image.wasm_digest.to_string()).or_insert_with(|| (Vec::new(), image.size));
        let repository = image.reference.split('@').next().unwrap_or(&image.reference);
        let repository = match repository.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo,
            _ => repository,
        };
        for name in [format!("{repository}@{}", image.manifest_digest), image.reference.clone()] {
            if !entry.0.contains(&name) {
                entry.0.push(name);
            }
        }
    }
    by_content
        .into_values()
        .map(|(mut names, size)| {
            names.sort();
            k8s_openapi::api::core::v1::ContainerImage { names: Some(names), size_bytes: i64::try_from(size).ok() }
        })
        .collect()
}

/// Upstream's `kubelet_volume_stats_*`: the measured `persistentVolumeClaim` volumes.
fn claim_volumes(pods: &[wasmlet_metrics::PodSample]) -> Vec<wasmlet_metrics::ClaimVolume> {
    let volumes = pods.iter().flat_map(|p| &p.volumes);
    volumes
        .filter_map(|v| {
            let (namespace, claim) = v.pvc.clone()?;
            let fs = &v.fs;
            Some(wasmlet_metrics::ClaimVolume {
                namespace,
                claim,
                capacity_bytes: fs.capacity_bytes?,
                available_bytes: fs.available_bytes?,
                used_bytes: fs.used_bytes?,
                inodes: fs.inodes.unwrap_or(0),
                inodes_free: fs.inodes_free.unwrap_or(0),
                inodes_used: fs.inodes_used.unwrap_or(0),
            })
        })
        .collect()
}

fn set_ready(health: &watch::Sender<NodeHealth>, state: Option<(bool, String)>) {
    if let Some((ready, message)) = state {
        health.send_modify(|h| {
            h.ready = ready;
            h.message = message;
        });
    }
}

fn node_config(s: &Settings) -> NodeConfig {
    let mut c = NodeConfig::new(s.node_name.clone(), s.node_ip, s.node_name.clone());
    c.kubelet_port = s.port;
    c.labels = s.node_labels.clone();
    c.taints = s.taints.clone();
    c.max_pods = s.max_pods;
    c.status_update_frequency = s.upstream.node_status_update_frequency;
    c.root_dir = s.root_dir.clone();
    c.eviction = s.eviction.thresholds.clone();
    c.reserved = s.reserved;
    c.runtime_version = format!("wasmtime://{WASMTIME_VERSION}");
    c
}

/// Device plugins and DRA drivers: their managers, and the plugin watcher
/// on `<root-dir>/plugins_registry` with them and CSI, all stopping with
/// `cancel`.
fn start_plugins(
    settings: &Settings,
    client: &kube::Client,
    csi: &wasmlet_csi::Csi,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> Arc<crate::resources::NodeResources> {
    let mut devices_config = wasmlet_devices::Config::new(&settings.root_dir);
    devices_config.stop_grace = settings.devices.stop_grace;
    let devices = wasmlet_devices::DeviceManager::new(devices_config);
    let dra_config = wasmlet_dra::Config::new(&settings.node_name, &settings.root_dir);
    let dra = wasmlet_dra::DraManager::new(Arc::new(wasmlet_dra::KubeApi(client.clone())), dra_config);
    let handlers = wasmlet_plugins::Handlers::new()
        .with(wasmlet_plugins::CSI_PLUGIN, csi.handler())
        .with(wasmlet_plugins::DEVICE_PLUGIN, devices.handler())
        .with(wasmlet_plugins::DRA_PLUGIN, dra.handler());
    crate::plugins::spawn(settings, &devices, &dra, handlers, tracker, cancel.clone());
    Arc::new(crate::resources::NodeResources {
        devices,
        dra,
        cdi: wasmlet_cdi::Registry::new(settings.devices.cdi_dirs.clone()),
        tasks: tracker.clone(),
        cancel,
    })
}

/// Watches this Node and publishes the latest object to `tx` (the pod
/// network's podCIDR and the CSI attach state follow it).
async fn own_node(client: kube::Client, node: String, tx: watch::Sender<Option<Arc<Node>>>, cancel: CancellationToken) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let api: kube::Api<Node> = kube::Api::all(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={node}"));
    let stream = watcher::watcher(api, config).backoff(wasmlet_pods::watch_backoff()).applied_objects();
    let mut stream = std::pin::pin!(stream);
    loop {
        tokio::select! {
            item = stream.next() => match item {
                Some(Ok(n)) => {
                    tx.send_replace(Some(Arc::new(n)));
                }
                Some(Err(e)) => tracing::debug!(error = %e, "node watch failed; retrying"),
                None => return,
            },
            () = cancel.cancelled() => return,
        }
    }
}

/// Reports the node's status again at once when its `Ready` condition in the
/// API is not `True` while the agent is ready: the node lifecycle controller
/// marks a node that went silent (an apiserver or etcd outage) `Unknown`, and
/// waiting for the next periodic update (10 s) would leave it so that long.
async fn ready_overwritten(
    mut nodes: watch::Receiver<Option<Arc<Node>>>,
    health: watch::Sender<NodeHealth>,
    cancel: CancellationToken,
) {
    loop {
        let seen = nodes.borrow_and_update().as_ref().and_then(|n| {
            let conditions = n.status.as_ref()?.conditions.as_ref()?;
            conditions.iter().find(|c| c.type_ == "Ready").map(|c| c.status.clone())
        });
        if health.borrow().ready && seen.is_some_and(|s| s != "True") {
            tracing::info!("the Node's Ready condition was changed by someone else; reporting the status again");
            // Wakes the status loop (an unchanged value still counts as news).
            health.send_modify(|_| {});
        }
        tokio::select! {
            changed = nodes.changed() => if changed.is_err() { return },
            () = cancel.cancelled() => return,
        }
    }
}

/// Hands this node's `spec.podCIDR` (the controller manager sets it after
/// registration) to the pod network.
async fn pod_cidr(
    mut nodes: watch::Receiver<Option<Arc<Node>>>,
    network: wasmlet_network::PodNetwork,
    cancel: CancellationToken,
) {
    loop {
        let cidr = nodes.borrow_and_update().as_ref().and_then(|n| n.spec.as_ref()?.pod_cidr.clone());
        if let Some(cidr) = cidr {
            network.set_pod_cidr(&cidr);
        }
        tokio::select! {
            changed = nodes.changed() => if changed.is_err() { return },
            () = cancel.cancelled() => return,
        }
    }
}

/// What pods may use, from the Node's reported allocatable.
fn allocatable(node: &Node) -> Allocatable {
    let get = |name: &str, parse: fn(&str) -> Result<i64, quantity::InvalidQuantity>| {
        node.status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .and_then(|a| a.get(name))
            .and_then(|q| parse(&q.0).ok())
            .unwrap_or(0)
    };
    Allocatable {
        cpu_milli: get("cpu", quantity::milli),
        memory_bytes: get("memory", quantity::units),
        pods: get("pods", quantity::units),
    }
}

/// The memory all guests together may use: the Node's memory capacity
/// minus the reserved memory (kube- and system-reserved). This is the limit
/// upstream puts on the `kubepods` cgroup (with the default
/// `--enforce-node-allocatable=pods`): allocatable without the hard
/// eviction threshold, so eviction acts before the guard does. `None` when
/// the Node reports no memory capacity.
fn pods_memory(node: &Node, reserved: &wasmlet_node::Reserved) -> Option<u64> {
    let capacity = node.status.as_ref()?.capacity.as_ref()?.get("memory")?;
    let bytes = u64::try_from(quantity::units(&capacity.0).ok()?).ok()?;
    Some(bytes.saturating_sub(reserved.memory_bytes)).filter(|&b| b > 0)
}

/// First SIGTERM/SIGINT: graceful shutdown. Second (before `done`): exit at once.
async fn signals(shutdown: CancellationToken, done: CancellationToken) {
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop wasmlet with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        () = shutdown.cancelled() => return,
    }
    shutdown.cancel();
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        () = done.cancelled() => return,
    }
    tracing::warn!("second signal: exiting without waiting");
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    fn node(memory: Option<&str>) -> Node {
        let mut node = Node::default();
        let capacity = memory.map(|m| [("memory".to_owned(), Quantity(m.to_owned()))].into());
        node.status = Some(k8s_openapi::api::core::v1::NodeStatus { capacity, ..Default::default() });
        node
    }

    #[test]
    fn pods_memory_is_capacity_minus_reserved() {
        let reserved = wasmlet_node::Reserved { memory_bytes: 1 << 30, ..Default::default() };
        assert_eq!(pods_memory(&node(Some("8Gi")), &reserved), Some(7 << 30));
        assert_eq!(pods_memory(&node(Some("8Gi")), &Default::default()), Some(8 << 30));
        assert_eq!(pods_memory(&node(Some("512Mi")), &reserved), None, "nothing left: no cap rather than zero");
        assert_eq!(pods_memory(&node(None), &reserved), None);
    }
}
