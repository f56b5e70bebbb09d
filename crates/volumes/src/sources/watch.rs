//! The watch tasks behind [`Sources`](super::Sources): one single-object
//! watch per cached ConfigMap or Secret, and the Services reflector.

use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::Api;
use kube::runtime::watcher::{self, ExponentialBackoff};
use kube::runtime::{WatchStreamExt, reflector};
use tokio::sync::watch::Sender;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{Config, Key, Kind, Object, Snapshot};

/// Consecutive failures logged at debug level before warnings.
const QUIET_FAILURES: u32 = 6;

/// The backoff of list/watch retries.
fn backoff(config: &Config) -> ExponentialBackoff {
    let (min, max) = config.retry;
    ExponentialBackoff::from(
        backon::ExponentialBuilder::default()
            .with_min_delay(min)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times(),
    )
}

/// Starts the single-object watch of `key`, publishing on `tx` until `stop`.
pub(super) fn object(
    client: &kube::Client,
    config: &Config,
    tracker: &TaskTracker,
    key: &Key,
    tx: Sender<Snapshot>,
    stop: CancellationToken,
) {
    let (kind, namespace, name) = key.clone();
    let span =
        tracing::debug_span!("object.watch", object.kind = %kind, object.namespace = %namespace, object.name = %name);
    let backoff = backoff(config);
    match kind {
        Kind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
            let wrap = |o| Object::ConfigMap(Arc::new(o));
            tracker.spawn(run(api, name, backoff, wrap, tx, stop).instrument(span));
        }
        Kind::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
            let wrap = |o| Object::Secret(Arc::new(o));
            tracker.spawn(run(api, name, backoff, wrap, tx, stop).instrument(span));
        }
    }
}

/// Watches the one object named `name` (`fieldSelector=metadata.name=<name>`):
/// publishes `Absent`/`Present` after each complete (re-)list and on every
/// event, and the last error while nothing was listed yet.
async fn run<K>(
    api: Api<K>,
    name: String,
    backoff: ExponentialBackoff,
    wrap: impl Fn(K) -> Object,
    tx: Sender<Snapshot>,
    stop: CancellationToken,
) where
    K: kube::Resource + Clone + Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher::watcher(api, config).backoff(backoff);
    let mut stream = std::pin::pin!(stream);
    let mut listed: Option<K> = None;
    let mut failures = 0u32;
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => break,
            event = stream.next() => event,
        };
        let Some(event) = event else { break };
        let next = match event {
            Ok(watcher::Event::Init) => {
                listed = None;
                continue;
            }
            Ok(watcher::Event::InitApply(o)) => {
                listed = Some(o);
                continue;
            }
            Ok(watcher::Event::InitDone) => {
                failures = 0;
                listed.take().map_or(Snapshot::Absent, |o| Snapshot::Present(wrap(o)))
            }
            Ok(watcher::Event::Apply(o)) => Snapshot::Present(wrap(o)),
            Ok(watcher::Event::Delete(_)) => Snapshot::Absent,
            Err(e) => {
                failures += 1;
                // A pod's objects are forbidden for a moment after the pod is
                // created (the Node authorizer's graph lags): warn only when
                // it lasts.
                if is_forbidden(&e) && failures > QUIET_FAILURES {
                    tracing::warn!(error = %e, failures, "not allowed to read the object (retrying)");
                } else {
                    tracing::debug!(error = %e, failures, "watch failed (retrying)");
                }
                let message: Arc<str> = Arc::from(e.to_string());
                tx.send_if_modified(|s| match s {
                    Snapshot::Pending(last) => {
                        *last = Some(message);
                        true
                    }
                    _ => false,
                });
                continue;
            }
        };
        tx.send_if_modified(|current| {
            let same = match (&*current, &next) {
                (Snapshot::Absent, Snapshot::Absent) => true,
                (Snapshot::Present(a), Snapshot::Present(b)) => {
                    a.resource_version().is_some() && a.resource_version() == b.resource_version()
                }
                _ => false,
            };
            if !same {
                tracing::debug!(resource_version = ?version(&next), "object changed");
                *current = next;
            }
            !same
        });
    }
    tracing::debug!("object watch stopped");
}

fn version(snapshot: &Snapshot) -> Option<&str> {
    match snapshot {
        Snapshot::Present(o) => o.resource_version(),
        _ => None,
    }
}

/// A 403 from the apiserver (the Node authorizer saying no).
fn is_forbidden(error: &watcher::Error) -> bool {
    let api = match error {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            e
        }
        watcher::Error::WatchError(status) => return status.code == 403,
        watcher::Error::NoResourceVersion => return false,
    };
    matches!(api, kube::Error::Api(status) if status.code == 403)
}

/// Starts the reflector of all Services with a cluster IP.
pub(super) fn services(
    client: &kube::Client,
    config: &Config,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) -> reflector::Store<Service> {
    let (store, writer) = reflector::store();
    let api: Api<Service> = Api::all(client.clone());
    let watch_config = watcher::Config::default().fields("spec.clusterIP!=None");
    let stream = reflector::reflector(writer, watcher::watcher(api, watch_config)).backoff(backoff(config));
    let task = async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                event = stream.next() => match event {
                    None => break,
                    Some(Ok(_)) => {}
                    Some(Err(e)) if is_forbidden(&e) => tracing::warn!(error = %e, "cannot list services (retrying)"),
                    Some(Err(e)) => tracing::debug!(error = %e, "services watch failed (retrying)"),
                },
            }
        }
        tracing::debug!("services reflector stopped");
    };
    tracker.spawn(task.instrument(tracing::debug_span!("services.reflector")));
    store
}
