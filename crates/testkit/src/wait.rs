//! Waiting for objects to reach a condition, with a timeout and a useful report.

use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

/// The default time a test waits for something the cluster does by itself.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until `condition` holds for the object `name` (`None` while it does not
/// exist), and returns the object seen last. Panics on timeout, printing the
/// last state seen and the tail of every test bed component's log.
pub async fn for_object<K, F>(api: &Api<K>, name: &str, timeout: Duration, condition: F) -> Option<K>
where
    K: kube::Resource + Clone + Debug + serde::de::DeserializeOwned + Send + 'static,
    F: Fn(Option<&K>) -> bool,
{
    match try_for_object(api, name, timeout, condition).await {
        Ok(obj) => obj,
        Err(last) => {
            let logs = crate::testbed().await.log_tails(20);
            panic!("timed out after {timeout:?} waiting for {name}; last seen: {last:#?}\n{logs}")
        }
    }
}

/// Like [`for_object`], but returns `Err(last seen)` on timeout instead of
/// panicking: for tests that check that something does *not* happen.
pub async fn try_for_object<K, F>(
    api: &Api<K>,
    name: &str,
    timeout: Duration,
    condition: F,
) -> Result<Option<K>, Option<K>>
where
    K: kube::Resource + Clone + Debug + serde::de::DeserializeOwned + Send + 'static,
    F: Fn(Option<&K>) -> bool,
{
    let mut last: Option<K> = None;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher::watcher(api.clone(), config).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut initialised = false;
    let result = tokio::time::timeout(timeout, async {
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => last = Some(obj),
                Ok(watcher::Event::Delete(_)) => last = None,
                Ok(watcher::Event::Init) => continue,
                Ok(watcher::Event::InitDone) => initialised = true,
                Err(e) => {
                    tracing::debug!(error = %e, "watch error (retrying)");
                    continue;
                }
            }
            if initialised && condition(last.as_ref()) {
                return true;
            }
        }
        false
    })
    .await;
    match result {
        Ok(true) => Ok(last),
        _ => Err(last),
    }
}

/// Waits until some object matched by `config` (labels, fields) satisfies
/// `condition`, and returns it; `None` on timeout.
pub async fn for_any<K, F>(api: &Api<K>, config: watcher::Config, timeout: Duration, condition: F) -> Option<K>
where
    K: kube::Resource + Clone + Debug + serde::de::DeserializeOwned + Send + 'static,
    F: Fn(&K) -> bool,
{
    let stream = watcher::watcher(api.clone(), config).default_backoff().applied_objects();
    let mut stream = std::pin::pin!(stream);
    tokio::time::timeout(timeout, async {
        while let Some(event) = stream.next().await {
            match event {
                Ok(obj) if condition(&obj) => return Some(obj),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "watch error (retrying)"),
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}
