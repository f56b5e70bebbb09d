//! Attachable volumes: this node's `status.volumesInUse` (which the
//! attach/detach controller honours before detaching) and
//! `status.volumesAttached` (which it sets once the external attacher has
//! attached a VolumeAttachment).

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::VolumeAttachment;
use kube::Api;
use kube::api::{Patch, PatchParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Follows this Node's `status.volumesAttached` into `tx` until `cancel`,
/// from the agent's one watch of its Node (`nodes`).
pub(crate) async fn watch_attached(
    mut nodes: watch::Receiver<Option<Arc<Node>>>,
    tx: watch::Sender<BTreeSet<String>>,
    cancel: CancellationToken,
) {
    loop {
        let attached: Option<BTreeSet<String>> = nodes.borrow_and_update().as_ref().map(|n| {
            let status = n.status.as_ref().and_then(|s| s.volumes_attached.as_ref());
            status.into_iter().flatten().map(|v| v.name.clone()).collect()
        });
        if let Some(attached) = attached {
            tx.send_if_modified(|cur| {
                if *cur == attached {
                    false
                } else {
                    *cur = attached;
                    true
                }
            });
        }
        tokio::select! {
            changed = nodes.changed() => if changed.is_err() { return },
            () = cancel.cancelled() => return,
        }
    }
}

/// Writes `status.volumesInUse` whenever `rx` changes, retrying failures.
pub(crate) async fn report_in_use(
    client: kube::Client,
    node: String,
    mut rx: watch::Receiver<BTreeSet<String>>,
    cancel: CancellationToken,
) {
    let api: Api<Node> = Api::all(client);
    let backoff =
        wasmlet_retry::Backoff { min: std::time::Duration::from_millis(200), max: std::time::Duration::from_secs(10) };
    loop {
        let in_use: Vec<String> = rx.borrow_and_update().iter().cloned().collect();
        let patch = serde_json::json!({ "status": { "volumesInUse": in_use } });
        let mut delays = backoff.delays();
        loop {
            match api.patch_status(&node, &PatchParams::default(), &Patch::Strategic(&patch)).await {
                Ok(_) => break,
                Err(e) => {
                    let delay = delays.next().unwrap_or(backoff.max);
                    tracing::warn!(error = %e, retry_in = ?delay, "reporting volumesInUse failed");
                    if !wasmlet_retry::sleep(delay, &cancel).await {
                        return;
                    }
                    if rx.has_changed().unwrap_or(false) {
                        break;
                    }
                }
            }
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            () = cancel.cancelled() => return,
        }
    }
}

/// `status.attachmentMetadata` of the VolumeAttachment `name` (the
/// `publish_context` of stage and publish), if it is attached.
pub(crate) async fn publish_context(
    client: &kube::Client,
    name: &str,
) -> Result<std::collections::HashMap<String, String>, String> {
    let api: Api<VolumeAttachment> = Api::all(client.clone());
    let va = api.get(name).await.map_err(|e| format!("failed to fetch publishContext: {e}"))?;
    let status = va.status.unwrap_or_default();
    if !status.attached {
        return Err(format!("volume attachment {name} is not attached yet"));
    }
    Ok(status.attachment_metadata.unwrap_or_default().into_iter().collect())
}
