//! [`Subscription`]: one reference to a watched object.

use std::fmt;
use std::sync::PoisonError;
use std::time::Duration;

use super::{Key, Kind, Object, Snapshot, SourceError, Sources};

/// A reference to one watched object; the watch stops when the last
/// subscription to it is dropped.
pub struct Subscription {
    pub(super) rx: tokio::sync::watch::Receiver<Snapshot>,
    pub(super) key: Key,
    pub(super) sources: Sources,
}

impl Subscription {
    /// The object's kind.
    pub fn kind(&self) -> Kind {
        self.key.0
    }

    /// The object's namespace.
    pub fn namespace(&self) -> &str {
        &self.key.1
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.key.2
    }

    /// The latest snapshot, without waiting.
    pub fn snapshot(&self) -> Snapshot {
        self.rx.borrow().clone()
    }

    /// A receiver that wakes whenever the snapshot changes.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<Snapshot> {
        self.rx.clone()
    }

    /// The object once it has been listed: `Some` if it exists, `None` if not.
    ///
    /// # Errors
    ///
    /// [`SourceError::NotSynced`] if the first list does not succeed within
    /// `timeout`.
    pub async fn get(&self, timeout: Duration) -> Result<Option<Object>, SourceError> {
        let mut rx = self.rx.clone();
        let ready = tokio::time::timeout(timeout, rx.wait_for(|s| !matches!(s, Snapshot::Pending(_)))).await;
        let snapshot = match ready {
            Ok(Ok(s)) => s.clone(),
            Ok(Err(_)) => return Err(SourceError::ShutDown),
            Err(_) => Snapshot::Pending(None),
        };
        match snapshot {
            Snapshot::Present(object) => Ok(Some(object)),
            Snapshot::Absent => Ok(None),
            Snapshot::Pending(_) => {
                let last_error = match &*self.rx.borrow() {
                    Snapshot::Pending(e) => e.clone(),
                    _ => None,
                };
                let (kind, namespace, name) = self.key.clone();
                Err(SourceError::NotSynced { kind, namespace, name, last_error })
            }
        }
    }

    /// Like [`get`](Self::get), but a missing object is
    /// [`SourceError::NotFound`].
    ///
    /// # Errors
    ///
    /// See [`get`](Self::get); and `NotFound`.
    pub async fn require(&self, timeout: Duration) -> Result<Object, SourceError> {
        self.get(timeout).await?.ok_or_else(|| {
            let (kind, namespace, name) = self.key.clone();
            SourceError::NotFound { kind, namespace, name }
        })
    }
}

impl Clone for Subscription {
    fn clone(&self) -> Self {
        let mut entries = self.sources.inner.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries.get_mut(&self.key) {
            entry.refs += 1;
        }
        drop(entries);
        Self { rx: self.rx.clone(), key: self.key.clone(), sources: self.sources.clone() }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.sources.release(&self.key);
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Subscription({} {}/{})", self.key.0, self.key.1, self.key.2)
    }
}
