//! Garbage collection: dropping what the node's pods no longer use.

use std::collections::HashSet;
use std::time::Duration;

use tracing::{debug, info};

use super::{Error, Inner, Result, Store, fsutil, index};
use crate::digest::Digest;

/// Temp files older than this are removed by [`Store::gc`].
pub const TMP_MAX_AGE: Duration = Duration::from_secs(3600);

/// What [`Store::gc`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted (callers may drop caches keyed by these digests).
    pub removed_blobs: Vec<Digest>,
    /// References whose index entries were deleted.
    pub removed_refs: Vec<String>,
    /// Bytes freed by deleting blobs.
    pub freed_bytes: u64,
}

impl Store {
    /// Deletes every blob whose digest is not in `keep`, every index entry
    /// whose wasm digest is not in `keep`, and temp files older than
    /// [`TMP_MAX_AGE`].
    ///
    /// # Caveats
    ///
    /// An image pulled but not yet in `keep` is removed: pass the digests
    /// of in-flight pulls too.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a directory cannot be listed or a file removed.
    pub async fn gc(&self, keep: &HashSet<Digest>) -> Result<GcReport> {
        self.sweep(keep, collect, "store garbage collected").await
    }

    /// Deletes the images whose wasm digest is in `remove` — their index
    /// entries and blobs — and nothing else (an image pulled meanwhile stays,
    /// unlike with [`Store::gc`]).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a directory cannot be listed or a file removed.
    pub async fn remove_images(&self, remove: &HashSet<Digest>) -> Result<GcReport> {
        self.sweep(remove, remove_listed, "images removed").await
    }

    /// Runs `work` over `digests` on the blocking pool with the store locked
    /// for writing, and logs what it removed as `what`.
    async fn sweep(
        &self,
        digests: &HashSet<Digest>,
        work: fn(&Inner, &HashSet<Digest>) -> Result<GcReport>,
        what: &'static str,
    ) -> Result<GcReport> {
        let guard = self.inner.lock.clone().write_owned().await;
        let inner = self.inner.clone();
        let digests = digests.clone();
        let report = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            work(&inner, &digests)
        })
        .await
        .map_err(Error::Task)??;
        info!(
            blobs = report.removed_blobs.len(),
            refs = report.removed_refs.len(),
            freed_bytes = report.freed_bytes,
            "{what}"
        );
        Ok(report)
    }
}

fn remove_listed(inner: &Inner, remove: &HashSet<Digest>) -> Result<GcReport> {
    let mut report = GcReport::default();
    for (path, image) in index::list(&inner.refs)? {
        if let Some(image) = image.filter(|i| remove.contains(&i.wasm_digest)) {
            fsutil::remove(&path)?;
            report.removed_refs.push(image.reference);
        }
    }
    for digest in remove {
        let path = inner.blob_path(digest);
        if let Ok(meta) = std::fs::metadata(&path) {
            fsutil::remove(&path)?;
            report.freed_bytes += meta.len();
            report.removed_blobs.push(digest.clone());
        }
    }
    Ok(report)
}

fn collect(inner: &Inner, keep: &HashSet<Digest>) -> Result<GcReport> {
    let mut report = GcReport::default();
    for (path, image) in index::list(&inner.refs)? {
        let stale = image.as_ref().is_none_or(|i| !keep.contains(&i.wasm_digest));
        if stale {
            fsutil::remove(&path)?;
            let name = image.map_or_else(|| path.display().to_string(), |i| i.reference);
            report.removed_refs.push(name);
        }
    }
    for (path, meta) in fsutil::list(&inner.blobs)? {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
            debug!(path = %path.display(), "ignoring unknown file in blob dir");
            continue;
        };
        if !keep.contains(&digest) {
            fsutil::remove(&path)?;
            report.freed_bytes += meta.len();
            report.removed_blobs.push(digest);
        }
    }
    for (path, meta) in fsutil::list(&inner.tmp)? {
        let age = meta.modified().ok().and_then(|m| m.elapsed().ok());
        if age.is_some_and(|age| age > TMP_MAX_AGE) {
            fsutil::remove(&path)?;
        }
    }
    Ok(report)
}
