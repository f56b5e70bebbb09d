//! Pulling a wasm image into the [`Store`].
//!
//! [`Store::pull`] resolves the reference (following an image index to its
//! wasm entry), decides where the wasm is ([`crate::media_type`] lists the
//! accepted layouts), streams the layer to a temp file, verifies it, and
//! only then moves the wasm into the store and records the reference.

mod error;
mod manifest;
mod progress;

use std::fs::File;
use std::io::BufWriter;

use oci_client::Reference;
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest};
use oci_client::secrets::RegistryAuth;
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt;
use tracing::{Instrument, debug, info, info_span};

pub use error::{Error, Result};

use crate::client::Client;
use crate::digest::Digest;
use crate::layer::{self, Found, Wanted};
use crate::limits::{Capped, available_bytes};
use crate::select::{self, Plan, PlanError, TarLayer};
use crate::store::{self, Image, Inspected, Store};
use progress::Progress;

/// The wasm taken out of a manifest, not yet committed.
struct Fetched {
    /// `None` when the store already holds the blob.
    file: Option<NamedTempFile>,
    inspected: Inspected,
}

impl Store {
    /// Pulls `reference` from its registry into the store and records it
    /// in the index.
    ///
    /// Accepts the CNCF wasm artifact, the wasm-to-oci layout and plain OCI
    /// or Docker images whose tar layers hold the file named by the config's
    /// `Entrypoint` (or `Cmd`), or else the only `.wasm` file. An image index
    /// resolves to its first entry with os `wasip1`/`wasip2`/`wasi` or
    /// architecture `wasm`. A wasm layer already in the store is not
    /// downloaded again.
    ///
    /// # Guarantees
    ///
    /// On error nothing new is left in the store: no partial blob and no
    /// new index entry (an entry from an earlier pull stays).
    ///
    /// # Caveats
    ///
    /// `client` keeps the first credentials it saw for each registry; see
    /// [`mod@crate::client`].
    ///
    /// The whole pull is under the progress deadline
    /// ([`crate::PullLimits::progress_deadline`]; zero turns it off).
    ///
    /// # Errors
    ///
    /// See [`Error`]; every variant names the reference.
    pub async fn pull(&self, client: &Client, reference: &Reference, auth: &RegistryAuth) -> Result<Image> {
        let span = info_span!("pull", image.reference = %reference);
        let progress = Progress::default();
        let deadline = self.limits.progress_deadline;
        let work = self.pull_inner(client, reference, auth, &progress);
        if deadline.is_zero() {
            return work.instrument(span).await;
        }
        match progress::watch(deadline, &progress, work).instrument(span).await {
            Ok(pulled) => pulled,
            Err(received) => Err(Error::Stalled { reference: reference.whole(), deadline, received }),
        }
    }

    async fn pull_inner(
        &self,
        client: &Client,
        reference: &Reference,
        auth: &RegistryAuth,
        progress: &Progress,
    ) -> Result<Image> {
        let name = reference.whole();
        let (manifest, manifest_digest) =
            resolve(client, reference, auth, self.limits.max_manifest_bytes, progress).await?;
        let manifest_digest: Digest = manifest_digest
            .parse()
            .map_err(|_| Error::UnsupportedDigest { reference: name.clone(), digest: manifest_digest })?;
        let plan = select::plan(&manifest).map_err(|e| match e {
            PlanError::NoWasmLayer => Error::NoWasmLayer { reference: name.clone() },
            PlanError::AmbiguousLayers(count) => Error::AmbiguousLayers { reference: name.clone(), count },
            PlanError::UnsupportedMediaType(media_type) => {
                Error::UnsupportedMediaType { reference: name.clone(), media_type }
            }
        })?;
        let fetched = match plan {
            Plan::Wasm(layer) => self.fetch_wasm_layer(client, reference, &layer, progress).await?,
            Plan::Tar(layers) => {
                let wanted = if select::needs_config(&manifest) {
                    let limit = self.limits.max_config_bytes;
                    let too_large = |size| Error::TooLarge { reference: name.clone(), what: "config", size, limit };
                    let declared = u64::try_from(manifest.config.size).unwrap_or(0);
                    if declared > limit {
                        return Err(too_large(declared));
                    }
                    let mut config = Capped::new(progress.counting(Vec::new()), limit);
                    let pulled = client.pull_blob(reference, &manifest.config, &mut config).await;
                    if config.exceeded() {
                        return Err(too_large(limit + 1));
                    }
                    pulled.map_err(|e| Error::blob(&name, &manifest.config.digest, e))?;
                    let config = config.into_inner().into_inner();
                    select::wanted(&config).map_err(|source| Error::Config { reference: name.clone(), source })?
                } else {
                    Wanted::AnyWasm
                };
                self.fetch_from_tar(client, reference, &layers, wanted, progress).await?
            }
        };
        let Some(kind) = fetched.inspected.kind else {
            return Err(Error::NotWasm { reference: name });
        };
        let image = Image {
            reference: name.clone(),
            manifest_digest,
            wasm_digest: fetched.inspected.digest,
            size: fetched.inspected.size,
            kind,
        };
        let guard = self.inner.lock.clone().read_owned().await;
        let inner = self.inner.clone();
        let image = spawn_store(progress, &name, move || {
            let _guard = guard;
            inner.commit(fetched.file, &image).map(|()| image)
        })
        .await?;
        info!(
            image.digest = %image.wasm_digest,
            manifest.digest = %image.manifest_digest,
            size = image.size,
            kind = %image.kind,
            "pulled wasm"
        );
        Ok(image)
    }

    async fn fetch_wasm_layer(
        &self,
        client: &Client,
        reference: &Reference,
        layer: &OciDescriptor,
        progress: &Progress,
    ) -> Result<Fetched> {
        let name = reference.whole();
        let digest: Digest = layer
            .digest
            .parse()
            .map_err(|_| Error::UnsupportedDigest { reference: name.clone(), digest: layer.digest.clone() })?;
        let path = self.blob_path(&digest);
        let busy = progress.busy();
        let present = tokio::task::spawn_blocking(move || Inspected::file(&path)).await;
        drop(busy);
        if let Ok(Ok(inspected)) = present
            && inspected.digest == digest
        {
            debug!(%digest, "wasm layer already in the store");
            return Ok(Fetched { file: None, inspected });
        }
        let file = self.download(client, reference, layer, progress).await?;
        let (file, inspected) = spawn_store(progress, &name, move || {
            let inspected = Inspected::file(file.path()).map_err(store::Error::io("reading", file.path()))?;
            Ok((file, inspected))
        })
        .await?;
        check_digest(&name, &layer.digest, &inspected.digest)?;
        Ok(Fetched { file: Some(file), inspected })
    }

    async fn fetch_from_tar(
        &self,
        client: &Client,
        reference: &Reference,
        layers: &[TarLayer],
        wanted: Wanted,
        progress: &Progress,
    ) -> Result<Fetched> {
        let name = reference.whole();
        for layer in layers {
            let descriptor = &layer.descriptor;
            let archive = self.download(client, reference, descriptor, progress).await?;
            let out = self.inner.temp_file().map_err(|e| Error::store(&name, e))?;
            let (gzip, want, max_file) = (layer.gzip, wanted.clone(), self.limits.max_layer_bytes);
            let (layer_digest, found, out, exceeded) = spawn_store(progress, &name, move || {
                let io = |op| store::Error::io(op, archive.path());
                let layer_digest = Inspected::file(archive.path()).map_err(io("reading"))?.digest;
                let file = File::open(archive.path()).map_err(io("opening"))?;
                let mut writer = Capped::new(BufWriter::new(out.as_file()), max_file);
                let found = layer::extract(file, gzip, &want, &mut writer);
                let exceeded = writer.exceeded();
                drop(writer);
                Ok((layer_digest, found, out, exceeded))
            })
            .await?;
            check_digest(&name, &descriptor.digest, &layer_digest)?;
            if exceeded {
                return Err(Error::TooLarge {
                    reference: name,
                    what: "wasm file",
                    size: max_file + 1,
                    limit: max_file,
                });
            }
            let found = found.map_err(|source| Error::Layer {
                reference: name.clone(),
                digest: descriptor.digest.clone(),
                source,
            })?;
            match found {
                Found::File(path) => {
                    debug!(layer = %descriptor.digest, path, "found wasm in layer");
                    let (out, inspected) = spawn_store(progress, &name, move || {
                        let inspected = Inspected::file(out.path()).map_err(store::Error::io("reading", out.path()))?;
                        Ok((out, inspected))
                    })
                    .await?;
                    return Ok(Fetched { file: Some(out), inspected });
                }
                Found::Deleted => break,
                Found::Absent => {}
            }
        }
        Err(match wanted {
            Wanted::Path(path) => Error::EntrypointNotFound { reference: name, path: format!("/{path}") },
            Wanted::AnyWasm => Error::NoWasmLayer { reference: name },
        })
    }

    /// Streams a blob into a new temp file. The registry client checks the
    /// digest while streaming; callers check it again on disk.
    async fn download(
        &self,
        client: &Client,
        reference: &Reference,
        descriptor: &OciDescriptor,
        progress: &Progress,
    ) -> Result<NamedTempFile> {
        let name = reference.whole();
        let limits = self.limits;
        let declared = u64::try_from(descriptor.size).unwrap_or(0);
        let too_large =
            |size| Error::TooLarge { reference: name.clone(), what: "layer", size, limit: limits.max_layer_bytes };
        if declared > limits.max_layer_bytes {
            return Err(too_large(declared));
        }
        let root = self.root().to_owned();
        let available =
            spawn_store(progress, &name, move || available_bytes(&root).map_err(store::Error::io("measuring", &root)))
                .await?;
        if available < declared.saturating_add(limits.min_free_disk_bytes) {
            return Err(Error::NoSpace {
                reference: name.clone(),
                digest: descriptor.digest.clone(),
                size: declared,
                available,
                reserve: limits.min_free_disk_bytes,
            });
        }
        let tmp = self.inner.temp_file().map_err(|e| Error::store(&name, e))?;
        let file = tmp.reopen().map_err(|e| Error::store(&name, store::Error::io("opening", tmp.path())(e)))?;
        // Never more than the layer says it holds (nor than the limit).
        let cap = if declared > 0 { declared } else { limits.max_layer_bytes };
        let file = progress.counting(tokio::io::BufWriter::new(tokio::fs::File::from_std(file)));
        let mut out = Capped::new(file, cap);
        debug!(digest = %descriptor.digest, size = descriptor.size, "downloading blob");
        let pulled = client.pull_blob(reference, descriptor, &mut out).await;
        if out.exceeded() {
            return Err(if declared > 0 {
                Error::LayerSize { reference: name, digest: descriptor.digest.clone(), declared }
            } else {
                too_large(cap + 1)
            });
        }
        let got = out.written();
        let digest = &descriptor.digest;
        match pulled {
            Ok(()) => {}
            // A complete answer that is short: the digest cannot match.
            Err(OciDistributionError::DigestError(_)) if declared > 0 && got < declared => {
                return Err(Error::Truncated { reference: name, digest: digest.clone(), got, declared });
            }
            Err(source) => {
                return Err(match error::transfer_cause(&source) {
                    Some(cause) => Error::Interrupted {
                        reference: name,
                        digest: digest.clone(),
                        cause,
                        got,
                        declared,
                        source: Box::new(source),
                    },
                    None => Error::blob(&name, digest, source),
                });
            }
        }
        out.shutdown().await.map_err(|e| Error::store(&name, store::Error::io("writing", tmp.path())(e)))?;
        Ok(tmp)
    }
}

/// Fetches the image manifest for `reference`, following an image index to
/// its wasm entry. Returns the manifest and the digest `reference`
/// resolved to.
async fn resolve(
    client: &Client,
    reference: &Reference,
    auth: &RegistryAuth,
    limit: u64,
    progress: &Progress,
) -> Result<(OciImageManifest, String)> {
    let name = reference.whole();
    let (manifest, digest) = manifest::fetch(client, reference, auth, limit, progress).await?;
    let index = match manifest {
        OciManifest::Image(manifest) => return Ok((manifest, digest)),
        OciManifest::ImageIndex(index) => index,
    };
    let entry = select::index_entry(&index).ok_or_else(|| Error::NoWasmPlatform { reference: name.clone() })?;
    debug!(index = %digest, entry = %entry.digest, "selected wasm entry of image index");
    let entry_ref = reference.clone_with_digest(entry.digest.clone());
    match manifest::fetch(client, &entry_ref, auth, limit, progress).await? {
        (OciManifest::Image(manifest), _) => Ok((manifest, digest)),
        (OciManifest::ImageIndex(_), _) => {
            Err(Error::UnsupportedMediaType { reference: name, media_type: "nested image index".to_owned() })
        }
    }
}

fn check_digest(reference: &str, expected: &str, actual: &Digest) -> Result<()> {
    if expected == actual.as_str() {
        return Ok(());
    }
    Err(Error::DigestMismatch {
        reference: reference.to_owned(),
        expected: expected.to_owned(),
        actual: actual.to_string(),
    })
}

/// Runs blocking store work off the async threads (local work: progress
/// for the progress deadline).
async fn spawn_store<T: Send + 'static>(
    progress: &Progress,
    reference: &str,
    f: impl FnOnce() -> store::Result<T> + Send + 'static,
) -> Result<T> {
    let _busy = progress.busy();
    tokio::task::spawn_blocking(f)
        .await
        .map_err(store::Error::Task)
        .and_then(|r| r)
        .map_err(|e| Error::store(reference, e))
}
