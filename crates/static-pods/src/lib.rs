//! Static pods: the pod manifests in `--pod-manifest-path` (upstream's
//! `staticPodPath`), followed as files are added, changed and removed.
//!
//! Each manifest becomes a **mirror pod** in the apiserver, named
//! `<name>-<node>`, bound to this node, owned by its Node and annotated as
//! upstream does (`kubernetes.io/config.source: file`,
//! `kubernetes.io/config.hash`, `kubernetes.io/config.mirror`); the node's
//! pod manager then runs it like any pod bound to the node. A changed file
//! (a new hash) replaces the mirror: the old pod is deleted (and stopped
//! within its grace period), then the new one created. A removed file
//! deletes its mirror, and a mirror deleted by someone else is created
//! again, as upstream does.
//!
//! Differences from upstream: the pod runs from its mirror, so a static pod
//! starts only while the apiserver is reachable (upstream runs it from the
//! file alone); wasmlet has no standalone mode yet.
//!
//! The directory is watched with `notify`, and read again every
//! [`Config::resync`] (upstream's `fileCheckFrequency`, 20 s) in case an
//! event was missed. Bad manifests are reported once each and skipped.

pub mod manifest;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};
use notify::Watcher as _;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wasmlet_retry::{Backoff, Chain};

pub use manifest::{CONFIG_HASH, CONFIG_MIRROR, CONFIG_SOURCE, StaticPod};

/// Upstream's `fileCheckFrequency`.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(20);
/// How soon to look again while a replaced mirror is still going away.
const PENDING_RESYNC: Duration = Duration::from_secs(1);
/// Retry delays of a failed round (the Node not readable yet, API errors).
const RETRY: Backoff = Backoff { min: Duration::from_millis(500), max: Duration::from_secs(20) };

/// Where the manifests are and whose they are.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--pod-manifest-path`.
    pub dir: PathBuf,
    /// This node.
    pub node_name: String,
    /// How often the directory is read again without an event.
    pub resync: Duration,
}

/// Runs until `cancel`: keeps a mirror pod for every manifest.
pub async fn run(client: kube::Client, config: Config, cancel: CancellationToken) {
    let changed = Arc::new(Notify::new());
    let _watcher = watch(&config.dir, changed.clone());
    let mut delays = RETRY.delays();
    let mut reported = HashSet::new();
    loop {
        let wait = match round(&client, &config, &mut reported).await {
            Ok(pending) => {
                delays = RETRY.delays();
                if pending { PENDING_RESYNC } else { config.resync }
            }
            Err(e) => {
                let delay = delays.next().unwrap_or(RETRY.max);
                tracing::warn!(error = %Chain(&e), retry_in = ?delay, "static pods: syncing mirror pods failed");
                delay
            }
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            () = changed.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// A `notify` watcher on `dir` that wakes `changed`; `None` (polling only)
/// if the directory cannot be watched (e.g. it does not exist yet).
fn watch(dir: &std::path::Path, changed: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|e| !e.kind.is_access()) {
            changed.notify_one();
        }
    };
    let mut watcher = notify::recommended_watcher(handler).ok()?;
    match watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
        Ok(()) => Some(watcher),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "static pods: cannot watch the directory; reading it every resync");
            None
        }
    }
}

/// One pass; whether something is still going away (look again soon).
async fn round(client: &kube::Client, config: &Config, reported: &mut HashSet<String>) -> Result<bool, kube::Error> {
    let node: Node = Api::all(client.clone()).get(&config.node_name).await?;
    let owner = OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: config.node_name.clone(),
        uid: node.metadata.uid.unwrap_or_default(),
        controller: Some(true),
        ..OwnerReference::default()
    };
    let desired = read_dir(config, &owner, reported).await;
    let params = ListParams::default().fields(&format!("spec.nodeName={}", config.node_name));
    let existing: Vec<Pod> = Api::<Pod>::all(client.clone()).list(&params).await?.items;
    let mirrors: HashMap<(String, String), &Pod> = existing
        .iter()
        .filter(|p| p.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(CONFIG_MIRROR)))
        .map(|p| ((p.metadata.namespace.clone().unwrap_or_default(), p.metadata.name.clone().unwrap_or_default()), p))
        .collect();
    let mut pending = false;
    for pod in desired.values() {
        let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
        match mirrors.get(&(pod.namespace.clone(), pod.name.clone())) {
            Some(m) if m.metadata.deletion_timestamp.is_some() => pending = true,
            Some(m) if mirror_hash(m) == Some(pod.hash.as_str()) => {}
            Some(_) => {
                tracing::info!(pod = %pod.name, path = %pod.path.display(), "static pod changed: replacing its mirror pod");
                delete(&api, &pod.name).await?;
                pending = true;
            }
            None => match api.create(&PostParams::default(), &pod.mirror).await {
                Ok(_) => tracing::info!(pod = %pod.name, path = %pod.path.display(), "static pod: mirror pod created"),
                Err(kube::Error::Api(e)) if e.code == 409 => pending = true,
                Err(e) => {
                    tracing::warn!(pod = %pod.name, error = %Chain(&e), "static pod: creating its mirror pod failed")
                }
            },
        }
    }
    for ((namespace, name), m) in &mirrors {
        let ours = m.metadata.annotations.as_ref().is_some_and(|a| a.get(CONFIG_SOURCE).is_some_and(|s| s == "file"));
        if ours
            && m.metadata.deletion_timestamp.is_none()
            && !desired.values().any(|d| &d.name == name && &d.namespace == namespace)
        {
            tracing::info!(pod = %name, "static pod removed: deleting its mirror pod");
            delete(&Api::namespaced(client.clone(), namespace), name).await?;
        }
    }
    Ok(pending)
}

fn mirror_hash(pod: &Pod) -> Option<&str> {
    pod.metadata.annotations.as_ref()?.get(CONFIG_MIRROR).map(String::as_str)
}

async fn delete(api: &Api<Pod>, name: &str) -> Result<(), kube::Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The manifests, by mirror name; bad ones reported once (per content).
async fn read_dir(
    config: &Config,
    owner: &OwnerReference,
    reported: &mut HashSet<String>,
) -> HashMap<String, StaticPod> {
    let (dir, node, owner) = (config.dir.clone(), config.node_name.clone(), owner.clone());
    let read = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => return vec![Err(format!("static pods: cannot read {}: {e}", dir.display()))],
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.is_file() && manifest::is_manifest(p)) {
            found.push(manifest::read(&path, &node, &owner).map_err(|e| e.to_string()));
        }
        found
    })
    .await
    .unwrap_or_default();
    let mut desired = HashMap::new();
    for result in read {
        match result {
            Ok(pod) => {
                if let Some(other) = desired.get(&pod.name) {
                    let other: &StaticPod = other;
                    let message = format!(
                        "static pods: {} and {} both define pod {}; keeping the first",
                        other.path.display(),
                        pod.path.display(),
                        pod.name
                    );
                    if reported.insert(message.clone()) {
                        tracing::warn!("{message}");
                    }
                    continue;
                }
                desired.insert(pod.name.clone(), pod);
            }
            Err(message) => {
                if reported.insert(message.clone()) {
                    tracing::warn!("{message}");
                }
            }
        }
    }
    desired
}
