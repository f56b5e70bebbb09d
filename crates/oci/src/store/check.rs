//! Verifying the store: every blob against its name, every index entry
//! against the blobs (`wasmlet-store-check`, and the fault tests).

use std::path::PathBuf;

use super::{Error, Inner, Inspected, Result, Store, fsutil, index};
use crate::digest::Digest;

/// What [`Store::check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Blobs whose content hashes to their name.
    pub good: Vec<Digest>,
    /// Blobs whose content does not match their name (left in place).
    pub corrupt: Vec<CorruptBlob>,
    /// Files in the blob directory that are not named by a digest.
    pub unnamed: Vec<PathBuf>,
    /// Index entries that cannot be parsed.
    pub malformed_refs: Vec<PathBuf>,
    /// References whose blob is missing (the image counts as absent and is
    /// pulled again; not corruption).
    pub dangling_refs: Vec<String>,
    /// Files being written (or left by a crash) in `tmp/`.
    pub temp_files: usize,
}

/// A blob whose content does not match its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptBlob {
    /// Its name.
    pub digest: Digest,
    /// The digest of its content.
    pub actual: Digest,
    /// Its size on disk.
    pub size: u64,
}

impl CheckReport {
    /// No corrupt blob, unnamed file or malformed index entry.
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.unnamed.is_empty() && self.malformed_refs.is_empty()
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.corrupt {
            writeln!(f, "corrupt blob {} ({} bytes): content hashes to {}", c.digest, c.size, c.actual)?;
        }
        for p in &self.unnamed {
            writeln!(f, "unexpected file in the blob directory: {}", p.display())?;
        }
        for p in &self.malformed_refs {
            writeln!(f, "malformed index entry: {}", p.display())?;
        }
        for r in &self.dangling_refs {
            writeln!(f, "note: {r} is indexed but its blob is missing (it will be pulled again)")?;
        }
        write!(
            f,
            "{} blobs good, {} corrupt, {} unexpected files, {} malformed index entries, {} temp files",
            self.good.len(),
            self.corrupt.len(),
            self.unnamed.len(),
            self.malformed_refs.len(),
            self.temp_files
        )
    }
}

impl Store {
    /// Hashes every blob and compares it with its name; checks that every
    /// index entry parses and names a present blob. Reads only; a pull may
    /// run meanwhile (blobs appear atomically), garbage collection waits.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a directory or a blob cannot be read.
    pub async fn check(&self) -> Result<CheckReport> {
        let guard = self.inner.lock.clone().read_owned().await;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _guard = guard;
            check(&inner)
        })
        .await
        .map_err(Error::Task)?
    }
}

fn check(inner: &Inner) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut blobs = fsutil::list(&inner.blobs)?;
    blobs.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, _) in blobs {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
            report.unnamed.push(path);
            continue;
        };
        let inspected = match Inspected::file(&path) {
            Ok(i) => i,
            // Removed (by a corrupt read) since the listing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("reading", &path)(e)),
        };
        if inspected.digest == digest {
            report.good.push(digest);
        } else {
            report.corrupt.push(CorruptBlob { digest, actual: inspected.digest, size: inspected.size });
        }
    }
    for (path, image) in index::list(&inner.refs)? {
        match image {
            None => report.malformed_refs.push(path),
            Some(image) if !inner.blob_path(&image.wasm_digest).is_file() => report.dangling_refs.push(image.reference),
            Some(_) => {}
        }
    }
    report.temp_files = fsutil::list(&inner.tmp)?.len();
    Ok(report)
}
