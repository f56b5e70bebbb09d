//! Garbage collection of images and compiled code no container uses.
//!
//! The periodic pass follows upstream's image GC policy
//! ([`crate::image_gc`]); disk-pressure reclaim ([`collect`]) drops every
//! unused image at once, as upstream's eviction manager does.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use wasmlet_oci::Digest;

use crate::image_gc::{DiskUsage, ImageRecords};
use crate::worker::Shared;

/// Every `gc_interval` until cancelled: a pass under the image GC policy.
pub(crate) async fn run(shared: &Arc<Shared>, cancel: CancellationToken) {
    let records = ImageRecords::default();
    let mut tick = tokio::time::interval(shared.config.gc_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate: nothing to collect at start
    loop {
        tokio::select! {
            _ = tick.tick() => by_policy(shared, &records).await,
            () = cancel.cancelled() => return,
        }
    }
}

/// One periodic pass: the images the policy selects go, with compiled code
/// and blobs nothing refers to.
async fn by_policy(shared: &Shared, records: &ImageRecords) {
    let used = shared.images.keep(shared.config.gc_interval);
    let store = shared.images.store().clone();
    let listed = tokio::task::spawn_blocking(move || {
        let usage = wasmlet_metrics::host::fs(store.root(), std::time::SystemTime::now())
            .ok()
            .and_then(|fs| Some(DiskUsage { capacity: fs.capacity_bytes?, available: fs.available_bytes? }));
        store.images().map(|images| (images, usage))
    })
    .await;
    let (images, usage) = match listed {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return tracing::warn!(error = %e, "listing images for garbage collection failed"),
        Err(e) => return tracing::warn!(error = %e, "listing images for garbage collection failed"),
    };
    let mut present: Vec<(Digest, u64)> = Vec::new();
    for image in &images {
        if !present.iter().any(|(d, _)| *d == image.wasm_digest) {
            present.push((image.wasm_digest.clone(), image.size));
        }
    }
    let present_count = present.len();
    let selected = records.select(&present, &used, usage, &shared.config.image_gc, Instant::now());
    // What a container took up since the listing stays.
    let used = shared.images.keep(shared.config.gc_interval);
    let delete: HashSet<Digest> = selected.into_iter().filter(|d| !used.contains(d)).collect();
    let keep: HashSet<Digest> =
        present.into_iter().map(|(d, _)| d).filter(|d| !delete.contains(d)).chain(used).collect();
    shared.network.reconcile().await;
    shared.runtime.retain(&keep);
    tracing::debug!(images = present_count, selected = delete.len(), ?usage, "image GC pass");
    if delete.is_empty() {
        return;
    }
    match shared.images.store().remove_images(&delete).await {
        Ok(report) => tracing::info!(
            images = report.removed_refs.len(),
            freed_bytes = report.freed_bytes,
            ?usage,
            "image garbage collection by policy"
        ),
        Err(e) => tracing::warn!(error = %e, "image garbage collection failed"),
    }
}

/// Disk-pressure reclaim: every image no container holds goes (recent
/// pulls are kept, see [`crate::Images::keep`]).
pub(crate) async fn collect(shared: &Shared) {
    let keep = shared.images.keep(shared.config.gc_interval);
    sweep(shared, &keep).await;
}

async fn sweep(shared: &Shared, keep: &HashSet<Digest>) {
    shared.network.reconcile().await;
    shared.runtime.retain(keep);
    match shared.images.store().gc(keep).await {
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
