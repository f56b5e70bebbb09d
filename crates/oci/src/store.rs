//! The node's content-addressed wasm store.
//!
//! Layout under the root directory:
//!
//! ```text
//! blobs/sha256/<hex>   wasm bytes, named by their own sha256
//! refs/<hex>.json      one index entry per image reference; <hex> is the
//!                      sha256 of the normalized reference string
//! tmp/                 files being written; renamed into place when complete
//! ```
//!
//! # Guarantees
//!
//! - Blobs and index entries appear atomically (temp file + rename in the
//!   same directory tree); a crash or a failed pull leaves at most a file in
//!   `tmp/`, removed by [`Store::gc`] once it is an hour old.
//! - [`Store::read`] recomputes the digest; a corrupted blob is deleted and
//!   reported as [`Error::CorruptBlob`], so the next pull fetches it again.
//! - A pull verifies the digest while streaming into `tmp/` and only then
//!   renames the blob into place; [`Store::check`] verifies every blob.
//!
//! # Concurrency
//!
//! Writes are atomic and idempotent rather than deduplicated: two
//! concurrent pulls of the same reference both download, both rename the
//! same content into place and both succeed. Within one process an
//! internal lock keeps [`Store::gc`] from running while a pull is
//! committing. A root directory belongs to one process.
//!
//! # Caveats
//!
//! Fsync is not used: after a power loss a blob may be truncated, which
//! [`Store::read`] detects.

mod check;
mod fsutil;
mod gc;
mod index;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_client::Reference;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use tracing::{debug, warn};

use crate::digest::Digest;
use crate::wasm::WasmKind;

pub use check::{CheckReport, CorruptBlob};
pub(crate) use fsutil::Inspected;
pub use gc::{GcReport, TMP_MAX_AGE};

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors from the local store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done (`creating`, `reading`, …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The blob is not in the store.
    #[error("blob {digest} is not in the store")]
    BlobNotFound {
        /// The requested digest.
        digest: Digest,
    },
    /// The blob's content does not match its name; it has been deleted.
    #[error("blob {digest} is corrupted (content hashes to {actual}); it was removed")]
    CorruptBlob {
        /// The blob's name.
        digest: Digest,
        /// The digest of what was on disk.
        actual: Digest,
    },
    /// A background task failed to complete.
    #[error("store task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        let path = path.to_owned();
        move |source| Self::Io { op, path, source }
    }
}

/// A wasm image present in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// The normalized reference it was pulled as, e.g.
    /// `docker.io/library/hello:latest` or `127.0.0.1:5000/app@sha256:…`.
    pub reference: String,
    /// The digest the reference resolved to at pull time (for an image
    /// index, the index's digest): `repository@manifest_digest` names
    /// exactly what was pulled.
    pub manifest_digest: Digest,
    /// Digest of the wasm bytes; the key for [`Store::read`].
    pub wasm_digest: Digest,
    /// Size of the wasm bytes.
    pub size: u64,
    /// Module or component.
    pub kind: WasmKind,
}

/// Where a node keeps its store, under its `--root-dir`.
pub const NODE_STORE_DIR: &str = "images";

/// The on-disk store. Cheap to clone; clones share the same root and lock.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
    /// What [`Store::pull`] accepts.
    pub(crate) limits: crate::PullLimits,
}

#[derive(Debug)]
pub(crate) struct Inner {
    root: PathBuf,
    blobs: PathBuf,
    refs: PathBuf,
    tmp: PathBuf,
    /// Pulls commit under the read side; gc and corruption removal take
    /// the write side. Guards are owned so that they live as long as the
    /// blocking work, even if the calling future is dropped.
    pub(crate) lock: Arc<RwLock<()>>,
}

impl Store {
    /// Opens (creating if needed) the store rooted at `root`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directories cannot be created.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let inner = Inner {
            blobs: root.join("blobs").join("sha256"),
            refs: root.join("refs"),
            tmp: root.join("tmp"),
            root,
            lock: Arc::new(RwLock::new(())),
        };
        for dir in [&inner.blobs, &inner.refs, &inner.tmp] {
            std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        }
        debug!(root = %inner.root.display(), "opened OCI store");
        Ok(Self { inner: Arc::new(inner), limits: crate::PullLimits::default() })
    }

    /// The same store, pulling with `limits` instead of the defaults.
    #[must_use]
    pub fn with_limits(mut self, limits: crate::PullLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits [`Store::pull`] applies.
    pub fn limits(&self) -> crate::PullLimits {
        self.limits
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where the blob `digest` lives (whether or not it exists). The bytes
    /// there are not verified; prefer [`Store::read`].
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.inner.blob_path(digest)
    }

    /// The image recorded for `reference`, if its index entry and blob are
    /// present. No network access and no hashing: use it for
    /// `imagePullPolicy: IfNotPresent` / `Never`. The match is on the
    /// normalized reference string, so `app` and `docker.io/library/app:latest`
    /// are the same, but a tag and a digest of the same manifest are not.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the index cannot be read. A malformed index entry
    /// is treated as absent.
    pub fn lookup(&self, reference: &Reference) -> Result<Option<Image>> {
        let Some(image) = index::read(&self.inner.refs, &reference.whole())? else {
            return Ok(None);
        };
        let present = self.blob_path(&image.wasm_digest).is_file();
        if !present {
            debug!(%reference, digest = %image.wasm_digest, "indexed blob is missing");
        }
        Ok(present.then_some(image))
    }

    /// Every image in the index whose blob is present.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the index directory cannot be listed.
    pub fn images(&self) -> Result<Vec<Image>> {
        let mut images = index::list(&self.inner.refs)?
            .into_iter()
            .filter_map(|(_, image)| image)
            .filter(|image| self.blob_path(&image.wasm_digest).is_file())
            .collect::<Vec<_>>();
        images.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(images)
    }

    /// Reads a blob and checks its digest.
    ///
    /// # Errors
    ///
    /// [`Error::BlobNotFound`]; [`Error::CorruptBlob`] (the blob has been
    /// deleted); [`Error::Io`].
    pub async fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        if let Ok(bytes) = self.read_verified(digest).await? {
            return Ok(bytes);
        }
        // Check again under the write lock, then delete. If a concurrent
        // pull replaced the bad copy with a good one, read that.
        self.remove_if_corrupt(digest.clone()).await?;
        self.read_verified(digest).await?.map_err(|actual| Error::CorruptBlob { digest: digest.clone(), actual })
    }

    /// The blob's bytes, or the digest they actually have.
    async fn read_verified(&self, digest: &Digest) -> Result<Result<Vec<u8>, Digest>> {
        let path = self.blob_path(digest);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::BlobNotFound { digest: digest.clone() });
            }
            Err(e) => return Err(Error::io("reading", &path)(e)),
        };
        let digest = digest.clone();
        tokio::task::spawn_blocking(move || {
            let actual = Digest::of(&bytes);
            if actual == digest { Ok(bytes) } else { Err(actual) }
        })
        .await
        .map_err(Error::Task)
    }

    /// Deletes blob `digest` if its content does not match, checked again
    /// under the write lock. `Ok(())` if the blob is (now) good.
    ///
    /// # Errors
    ///
    /// [`Error::CorruptBlob`] after deleting it.
    async fn remove_if_corrupt(&self, digest: Digest) -> Result<()> {
        let guard = self.inner.lock.clone().write_owned().await;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            let path = inner.blob_path(&digest);
            let actual = match Inspected::file(&path) {
                Ok(inspected) => inspected.digest,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::BlobNotFound { digest });
                }
                Err(e) => return Err(Error::io("reading", &path)(e)),
            };
            if actual == digest {
                return Ok(());
            }
            warn!(%digest, %actual, "removing corrupted blob");
            fsutil::remove(&path)?;
            Err(Error::CorruptBlob { digest, actual })
        })
        .await
        .map_err(Error::Task)?
    }
}

impl Inner {
    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    pub(crate) fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        fsutil::temp_file(&self.tmp)
    }

    /// Moves a verified temp file into place as blob `digest` and records
    /// `image` in the index. Call with a read guard of `lock` held.
    pub(crate) fn commit(&self, blob: Option<tempfile::NamedTempFile>, image: &Image) -> Result<()> {
        if let Some(blob) = blob {
            let path = self.blob_path(&image.wasm_digest);
            blob.persist(&path).map_err(|e| Error::io("renaming into", &path)(e.error))?;
        }
        index::write(&self.refs, &self.tmp, image)
    }
}

#[cfg(test)]
mod tests;
