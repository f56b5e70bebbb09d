//! Garbage collection of images and compiled code no container uses.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::worker::Shared;

/// Every `gc_interval` until cancelled: drop blobs and compiled code that no
/// live container holds (recent pulls are kept too, see [`crate::Images::keep`]).
pub(crate) async fn run(shared: &Arc<Shared>, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(shared.config.gc_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate: nothing to collect at start
    loop {
        tokio::select! {
            _ = tick.tick() => collect(shared).await,
            () = cancel.cancelled() => return,
        }
    }
}

pub(crate) async fn collect(shared: &Shared) {
    shared.network.reconcile().await;
    let keep = shared.images.keep(shared.config.gc_interval);
    shared.runtime.retain(&keep);
    match shared.images.store().gc(&keep).await {
        Ok(report) if !report.removed_blobs.is_empty() || !report.removed_refs.is_empty() => {
            tracing::info!(
                blobs = report.removed_blobs.len(),
                references = report.removed_refs.len(),
                freed_bytes = report.freed_bytes,
                "image garbage collection"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "image garbage collection failed"),
    }
}
