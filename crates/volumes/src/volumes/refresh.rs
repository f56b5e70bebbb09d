//! [`PodVolumes::run`]: keeping a pod's generated volumes current.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::select_all;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pod::{Issued, PodVolumes, Prepared, lookup};
use crate::atomic;
use crate::payload::{self, Inputs};
use crate::sources::{Snapshot, Subscription};
use crate::token::{Token, TokenSpec};

impl PodVolumes {
    /// Keeps configMap, secret, downwardAPI and projected volumes current
    /// until `cancel`: rewrites them (atomically, only when their content
    /// changes) when a source object changes, when `pod_updates` brings new
    /// labels/annotations/resources, and when a service-account token is due
    /// for renewal.
    ///
    /// # Caveats
    ///
    /// A failed refresh (a mandatory object deleted, a token request denied)
    /// is logged and leaves the previous content in place, as upstream;
    /// failed token renewals are retried after
    /// [`Config::token_retry`](super::Config::token_retry).
    pub async fn run(&self, mut pod_updates: watch::Receiver<Arc<Pod>>, cancel: CancellationToken) {
        let mut changes: Vec<watch::Receiver<Snapshot>> =
            self.inner.subscriptions.iter().map(Subscription::changes).collect();
        for rx in &mut changes {
            rx.mark_unchanged();
        }
        // Catch up with what changed between `prepare` and now.
        self.refresh();
        let mut pod_open = true;
        loop {
            let next_token = self.state().tokens.values().map(|i| i.refresh_at).min();
            tokio::select! {
                () = cancel.cancelled() => break,
                changed = pod_updates.changed(), if pod_open => match changed {
                    Ok(()) => {
                        let pod = pod_updates.borrow_and_update().clone();
                        self.state().pod = pod;
                    }
                    Err(_) => pod_open = false,
                },
                () = any_changed(&mut changes) => {}
                () = sleep_until(next_token) => self.renew_tokens().await,
            }
            self.refresh();
        }
        tracing::debug!(pod.dir = %self.inner.pod_dir.display(), "volume refresh stopped");
    }

    /// Renews every token that is due.
    async fn renew_tokens(&self) {
        let now = Instant::now();
        let due: Vec<TokenSpec> =
            self.state().tokens.iter().filter(|(_, i)| i.refresh_at <= now).map(|(s, _)| s.clone()).collect();
        for spec in due {
            let result = self.inner.volumes.tokens.issue(&spec).await;
            let mut state = self.state();
            match result {
                Ok(token) => {
                    tracing::debug!(token.service_account = %spec.service_account, "service account token renewed");
                    state.tokens.insert(spec, Issued::new(token, self.inner.volumes.config.token_refresh_fraction));
                }
                Err(e) => {
                    tracing::warn!(token.service_account = %spec.service_account, error = %e, "cannot renew token");
                    if let Some(issued) = state.tokens.get_mut(&spec) {
                        issued.refresh_at = Instant::now() + self.inner.volumes.config.token_retry;
                    }
                }
            }
        }
    }

    /// Re-renders every atomic volume, writing those whose content changed.
    fn refresh(&self) {
        let mut state = self.state();
        let pod = state.pod.clone();
        let tokens: HashMap<TokenSpec, Token> =
            state.tokens.iter().map(|(k, v)| (k.clone(), v.token.clone())).collect();
        let objects = lookup(&self.inner.subscriptions);
        let config = &self.inner.volumes.config;
        let inputs = Inputs { pod: &pod, allocatable: &config.allocatable, objects: &objects, tokens: &tokens };
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let Some(Prepared::Atomic(dir)) = self.inner.prepared.get(&volume.name) else { continue };
            let Some(result) = payload::volume(volume, &inputs) else { continue };
            let payload = match result {
                Ok(payload) => payload,
                Err(e) => {
                    tracing::warn!(volume = %volume.name, error = %e, "cannot refresh volume; keeping its content");
                    continue;
                }
            };
            if state.rendered.get(&volume.name) == Some(&payload) {
                continue;
            }
            match atomic::write(dir, &payload) {
                Ok(_) => {
                    tracing::debug!(volume = %volume.name, "volume updated");
                    state.rendered.insert(volume.name.clone(), payload);
                }
                Err(e) => tracing::warn!(volume = %volume.name, error = %e, "cannot update volume"),
            }
        }
    }
}

/// Resolves when any receiver sees a change; receivers whose sender is gone
/// are dropped; never resolves when there are none.
async fn any_changed(receivers: &mut Vec<watch::Receiver<Snapshot>>) {
    loop {
        if receivers.is_empty() {
            return std::future::pending().await;
        }
        let (result, index) = {
            let (result, index, _rest) = select_all(receivers.iter_mut().map(|r| Box::pin(r.changed()))).await;
            (result, index)
        };
        match result {
            Ok(()) => return,
            Err(_) => {
                receivers.swap_remove(index);
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
