//! The reference index: one JSON file per normalized reference.

use std::io;
use std::path::{Path, PathBuf};

use tracing::warn;

use super::{Error, Image, Result, fsutil};
use crate::digest::Digest;

/// `refs/<sha256 of the reference>.json`: safe for any reference string.
fn path(refs: &Path, reference: &str) -> PathBuf {
    refs.join(format!("{}.json", Digest::of(reference.as_bytes()).hex()))
}

fn parse(path: &Path, bytes: &[u8]) -> Option<Image> {
    match serde_json::from_slice(bytes) {
        Ok(image) => Some(image),
        Err(error) => {
            warn!(path = %path.display(), %error, "ignoring malformed index entry");
            None
        }
    }
}

/// The entry for `reference`; `None` if absent or malformed.
pub(super) fn read(refs: &Path, reference: &str) -> Result<Option<Image>> {
    let path = path(refs, reference);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(parse(&path, &bytes).filter(|i| i.reference == reference)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", &path)(e)),
    }
}

/// Records `image` under its reference, replacing any previous entry.
pub(super) fn write(refs: &Path, tmp: &Path, image: &Image) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(image).map_err(|e| Error::Io {
        op: "encoding the index entry for",
        path: path(refs, &image.reference),
        source: e.into(),
    })?;
    fsutil::write_atomic(tmp, &path(refs, &image.reference), &bytes)
}

/// Every entry file, with its parsed content (`None` if malformed).
pub(super) fn list(refs: &Path) -> Result<Vec<(PathBuf, Option<Image>)>> {
    let mut out = Vec::new();
    for (path, _) in fsutil::list(refs)? {
        match std::fs::read(&path) {
            Ok(bytes) => {
                let image = parse(&path, &bytes);
                out.push((path, image));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("reading", &path)(e)),
        }
    }
    Ok(out)
}
