//! [`Sources`]: how the node reads ConfigMaps, Secrets and Services.
//!
//! The Node authorizer lets a node read a ConfigMap or Secret only when a pod
//! bound to it references the object, and only by name: `get`, or a
//! `list`/`watch` with `fieldSelector=metadata.name=<name>` in the object's
//! namespace. Listing Secrets, in a namespace or across all of them, is
//! forbidden, and this crate never tries.
//!
//! # The cache
//!
//! One entry per (kind, namespace, name), shared by every pod on the node and
//! reference-counted by [`Subscription`]s: the first subscription starts a
//! single-object watch (upstream's `Watch` change-detection strategy: a
//! list+watch with the name field selector, re-listing after errors with
//! backoff), the last one dropped stops it. Each entry publishes its latest
//! [`Snapshot`] on a `watch` channel: subscribers read the current state and
//! wake on changes (latest value only — nothing queues up).
//!
//! Services come from one reflector over all namespaces
//! (`fieldSelector=spec.clusterIP!=None`, as upstream), for service-link
//! environment variables.
//!
//! # Tasks
//!
//! Every watch task lives in the `Sources`' `TaskTracker` and stops when the
//! [`CancellationToken`] given to [`Sources::new`] is cancelled, or (for an
//! object watch) when its last subscription is dropped. [`Sources::wait`]
//! waits for all of them after cancellation.

mod pod;
mod subscription;
mod watch;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::runtime::reflector;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use pod::{PodSources, references};
pub use subscription::Subscription;

/// Default for [`Config::sync_timeout`].
pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(10);
/// Default first delay of [`Config::retry`].
pub const DEFAULT_RETRY_MIN: Duration = Duration::from_millis(20);
/// Default for [`Config::max_objects`].
pub const DEFAULT_MAX_OBJECTS: usize = 10_000;

/// The limits of a [`Sources`].
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a reader waits for an object's first list (or the Services'
    /// first list) before failing with upstream's "failed to sync ... cache".
    pub sync_timeout: Duration,
    /// How many objects may be watched at once; more subscriptions fail
    /// with [`SourceError::TooManyObjects`].
    pub max_objects: usize,
    /// The first and the longest delay between retries of a failed list or
    /// watch (exponential with jitter between them). The first is short: a
    /// pod's objects are forbidden to the node for the few milliseconds the
    /// Node authorizer's graph lags behind the pod, and every pod of a new
    /// namespace waits for that first list (its `kube-root-ca.crt`).
    pub retry: (Duration, Duration),
}

impl Default for Config {
    fn default() -> Self {
        Self {
            sync_timeout: DEFAULT_SYNC_TIMEOUT,
            max_objects: DEFAULT_MAX_OBJECTS,
            retry: (DEFAULT_RETRY_MIN, Duration::from_secs(30)),
        }
    }
}

/// The kinds of objects a pod can take configuration from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A ConfigMap.
    ConfigMap,
    /// A Secret.
    Secret,
}

impl fmt::Display for Kind {
    /// Lower case, as upstream's kubelet names its caches in messages
    /// (`configmap "x" not found`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        })
    }
}

/// One watched object.
#[derive(Debug, Clone)]
pub enum Object {
    /// A ConfigMap.
    ConfigMap(Arc<ConfigMap>),
    /// A Secret.
    Secret(Arc<Secret>),
}

impl Object {
    /// The object's `resourceVersion`.
    pub fn resource_version(&self) -> Option<&str> {
        match self {
            Object::ConfigMap(o) => o.metadata.resource_version.as_deref(),
            Object::Secret(o) => o.metadata.resource_version.as_deref(),
        }
    }
}

/// What is known of an object.
#[derive(Debug, Clone)]
pub enum Snapshot {
    /// Not listed successfully yet; the last error, if any.
    Pending(Option<Arc<str>>),
    /// The object does not exist.
    Absent,
    /// The object as last seen.
    Present(Object),
}

/// Why an object could not be read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SourceError {
    /// The first list did not succeed within [`Config::sync_timeout`]
    /// (upstream's message; the last API error is in `last_error`).
    #[error("failed to sync {kind} cache: timed out waiting for the condition")]
    NotSynced {
        /// The kind.
        kind: Kind,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The last list/watch error, e.g. a 403 from the Node authorizer.
        last_error: Option<Arc<str>>,
    },
    /// The object does not exist (upstream: `configmap "x" not found`).
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// The kind.
        kind: Kind,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
    },
    /// [`Config::max_objects`] objects are watched already.
    #[error("cannot watch {kind} {namespace}/{name}: {max} objects are watched already")]
    TooManyObjects {
        /// The kind.
        kind: Kind,
        /// The namespace.
        namespace: String,
        /// The name.
        name: String,
        /// The limit.
        max: usize,
    },
    /// The Services were not listed within [`Config::sync_timeout`]
    /// (upstream's message).
    #[error("services have not yet been read at least once, cannot construct envvars")]
    ServicesNotSynced,
    /// The `Sources` were shut down.
    #[error("the configuration sources are shut down")]
    ShutDown,
}

/// Key of a cache entry.
pub(crate) type Key = (Kind, String, String);

/// How the node reads ConfigMaps, Secrets and Services: a cache shared by
/// all pods (see the [module docs](self)). Cheap to clone.
#[derive(Clone)]
pub struct Sources {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    client: kube::Client,
    config: Config,
    pub(crate) entries: Mutex<HashMap<Key, Entry>>,
    services: reflector::Store<Service>,
    tracker: TaskTracker,
    cancel: CancellationToken,
}

pub(crate) struct Entry {
    pub(crate) refs: usize,
    tx: tokio::sync::watch::Sender<Snapshot>,
    stop: CancellationToken,
}

impl Sources {
    /// Starts the Services reflector; object watches start on demand.
    ///
    /// Must be called within a tokio runtime. Everything stops when `cancel`
    /// is cancelled.
    pub fn new(client: kube::Client, config: Config, cancel: CancellationToken) -> Self {
        let tracker = TaskTracker::new();
        let services = watch::services(&client, &config, &tracker, cancel.clone());
        Self { inner: Arc::new(Inner { client, config, entries: Mutex::default(), services, tracker, cancel }) }
    }

    /// Sources that never reach an API server, for unit tests: objects are
    /// published with [`publish`](Self::publish); Services never sync.
    #[cfg(test)]
    pub(crate) fn offline() -> Self {
        // Two rustls providers are linked into workspace test builds.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a valid URL"));
        let client = kube::Client::try_from(config).expect("a client");
        let (services, _writer) = reflector::store();
        let config = Config { sync_timeout: Duration::from_millis(200), ..Config::default() };
        let inner = Inner {
            client,
            config,
            entries: Mutex::default(),
            services,
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Sets the snapshot of an object (test support; the entry is kept
    /// forever).
    #[cfg(test)]
    pub(crate) fn publish(&self, kind: Kind, namespace: &str, name: &str, snapshot: Snapshot) {
        let key: Key = (kind, namespace.to_owned(), name.to_owned());
        let mut entries = self.inner.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.entry(key).or_insert_with(|| Entry {
            refs: 1,
            tx: tokio::sync::watch::channel(Snapshot::Pending(None)).0,
            stop: CancellationToken::new(),
        });
        entry.tx.send_replace(snapshot);
    }

    /// The client the node reads with (its own credentials).
    pub fn client(&self) -> &kube::Client {
        &self.inner.client
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Subscribes to an object, starting its watch if nobody watches it yet.
    ///
    /// # Errors
    ///
    /// [`SourceError::TooManyObjects`] over the limit, [`SourceError::ShutDown`]
    /// after cancellation.
    pub fn acquire(&self, kind: Kind, namespace: &str, name: &str) -> Result<Subscription, SourceError> {
        let inner = &self.inner;
        if inner.cancel.is_cancelled() {
            return Err(SourceError::ShutDown);
        }
        let key: Key = (kind, namespace.to_owned(), name.to_owned());
        let mut entries = inner.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(&key) {
            entry.refs += 1;
            return Ok(Subscription { rx: entry.tx.subscribe(), key, sources: self.clone() });
        }
        if entries.len() >= inner.config.max_objects {
            let max = inner.config.max_objects;
            return Err(SourceError::TooManyObjects { kind, namespace: key.1, name: key.2, max });
        }
        let (tx, rx) = tokio::sync::watch::channel(Snapshot::Pending(None));
        let stop = inner.cancel.child_token();
        watch::object(&inner.client, &inner.config, &inner.tracker, &key, tx.clone(), stop.clone());
        entries.insert(key.clone(), Entry { refs: 1, tx, stop });
        Ok(Subscription { rx, key, sources: self.clone() })
    }

    /// The Services the node knows of (all namespaces, those with a cluster
    /// IP), once they have been listed.
    ///
    /// # Errors
    ///
    /// [`SourceError::ServicesNotSynced`] if the first list does not succeed
    /// within [`Config::sync_timeout`].
    pub async fn services(&self) -> Result<Vec<Arc<Service>>, SourceError> {
        let store = &self.inner.services;
        tokio::time::timeout(self.inner.config.sync_timeout, store.wait_until_ready())
            .await
            .map_err(|_| SourceError::ServicesNotSynced)?
            .map_err(|_| SourceError::ServicesNotSynced)?;
        Ok(store.state())
    }

    /// How many objects are watched now.
    pub fn watched(&self) -> usize {
        self.inner.entries.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Waits until every task has ended; call after cancelling the token
    /// given to [`new`](Self::new).
    pub async fn wait(&self) {
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    pub(crate) fn release(&self, key: &Key) {
        let mut entries = self.inner.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(key) {
            entry.refs -= 1;
            if entry.refs == 0 {
                entry.stop.cancel();
                entries.remove(key);
            }
        }
    }
}

impl fmt::Debug for Sources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sources").field("config", &self.inner.config).field("watched", &self.watched()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_shared_counted_and_bounded() {
        let sources = Sources::offline();
        let limited = Sources {
            inner: Arc::new(Inner { config: Config { max_objects: 2, ..Config::default() }, ..take(&sources) }),
        };
        let a1 = limited.acquire(Kind::ConfigMap, "ns", "a").unwrap();
        let a2 = limited.acquire(Kind::ConfigMap, "ns", "a").unwrap();
        let a3 = a2.clone();
        let s = limited.acquire(Kind::Secret, "ns", "a").unwrap();
        assert_eq!(limited.watched(), 2, "one entry per (kind, namespace, name)");
        match limited.acquire(Kind::Secret, "other", "a") {
            Err(SourceError::TooManyObjects { max: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        drop((a1, a2));
        assert_eq!(limited.watched(), 2);
        drop(a3);
        assert_eq!(limited.watched(), 1, "released with its last subscription");
        drop(s);
        assert_eq!(limited.watched(), 0);
        limited.inner.cancel.cancel();
        assert!(matches!(limited.acquire(Kind::Secret, "ns", "b"), Err(SourceError::ShutDown)));
        limited.wait().await;
    }

    fn take(sources: &Sources) -> Inner {
        Inner {
            client: sources.inner.client.clone(),
            config: sources.inner.config.clone(),
            entries: Mutex::default(),
            services: sources.inner.services.clone(),
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
        }
    }
}
