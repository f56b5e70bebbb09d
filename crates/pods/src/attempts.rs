//! Which run ("attempt") of each container is live, so that a followed log
//! ends when its run ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use tokio::sync::watch;

/// Live attempts of one pod's containers; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Attempts(Arc<Mutex<HashMap<String, watch::Sender<Option<i32>>>>>);

impl std::fmt::Debug for Attempts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Attempts")
    }
}

impl Attempts {
    fn sender(&self, container: &str) -> watch::Sender<Option<i32>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(container.to_owned()).or_insert_with(|| watch::channel(None).0).clone()
    }

    /// Attempt `n` of `container` runs.
    pub(crate) fn started(&self, container: &str, n: i32) {
        self.sender(container).send_replace(Some(n));
    }

    /// The live attempt of `container` ended.
    pub(crate) fn ended(&self, container: &str) {
        self.sender(container).send_replace(None);
    }

    /// Resolves once attempt `n` of `container` is not running (at once if it is not).
    pub(crate) fn finished(&self, container: &str, n: i32) -> BoxFuture<'static, ()> {
        let mut rx = self.sender(container).subscribe();
        Box::pin(async move {
            // An error means the pod's worker is gone: nothing runs any more.
            let _ = rx.wait_for(|live| *live != Some(n)).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finished_resolves_when_the_attempt_ends() {
        let attempts = Attempts::default();
        attempts.started("c", 2);
        let mut done = attempts.finished("c", 2);
        assert!(futures::poll!(&mut done).is_pending());
        attempts.finished("c", 1).await; // an older attempt: already over
        attempts.ended("c");
        done.await;
    }
}
