//! Small file helpers: temp files, tolerant removal, listing, hashing.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{Error, Result};
use crate::digest::{Digest, Hasher};
use crate::wasm::{HEADER_LEN, WasmKind};

/// A new temp file in `dir`, deleted on drop unless persisted.
pub(super) fn temp_file(dir: &Path) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new().prefix(".part-").tempfile_in(dir).map_err(Error::io("creating a temp file in", dir))
}

/// Writes `bytes` to `dest` atomically via a temp file in `tmp`.
pub(super) fn write_atomic(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = temp_file(tmp)?;
    file.write_all(bytes).map_err(Error::io("writing", file.path()))?;
    file.persist(dest).map_err(|e| Error::io("renaming into", dest)(e.error))?;
    Ok(())
}

/// Removes a file; a file that is already gone is not an error.
pub(super) fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io("removing", path)(e)),
        _ => Ok(()),
    }
}

/// The regular files directly in `dir`.
pub(super) fn list(dir: &Path) -> Result<Vec<(PathBuf, Metadata)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(Error::io("listing", dir))? {
        let entry = entry.map_err(Error::io("listing", dir))?;
        let path = entry.path();
        match entry.metadata() {
            Ok(meta) if meta.is_file() => out.push((path, meta)),
            Ok(_) => {}
            // Removed between listing and stat.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("reading metadata of", &path)(e)),
        }
    }
    Ok(out)
}

/// Digest, size and wasm kind of a file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inspected {
    pub(crate) digest: Digest,
    pub(crate) size: u64,
    pub(crate) kind: Option<WasmKind>,
}

impl Inspected {
    /// Reads `path` to the end.
    pub(crate) fn file(path: &Path) -> io::Result<Self> {
        Self::reader(File::open(path)?)
    }

    /// Reads `reader` to the end.
    pub(crate) fn reader(mut reader: impl Read) -> io::Result<Self> {
        let mut hasher = Hasher::default();
        let mut header = Vec::with_capacity(HEADER_LEN);
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let missing = HEADER_LEN.saturating_sub(header.len()).min(n);
            header.extend_from_slice(&buf[..missing]);
            hasher.update(&buf[..n]);
        }
        let (digest, size) = hasher.finish();
        Ok(Self { digest, size, kind: WasmKind::detect(&header) })
    }
}
