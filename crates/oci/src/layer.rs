//! Tar layers: building the single-file layer of [`crate::Layout::Image`],
//! and finding the wasm file inside pulled image layers.
//!
//! Only regular files are extracted. Whiteouts (`.wh.<name>`) in an upper
//! layer hide the file in lower layers; links are rejected.

use std::io::{self, Read, Write};
use std::path::{Component, Path};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use tar::EntryType;

/// Errors while taking the wasm file out of a tar layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive is truncated, not a tar, or not gzip where it should be.
    #[error("cannot read the layer archive")]
    Read(#[source] io::Error),
    /// The extracted file could not be written to the store's temp dir.
    #[error("cannot write the extracted file")]
    Write(#[source] io::Error),
    /// No file is named by the image config and several `.wasm` files exist.
    #[error("the layer holds several .wasm files ({first}, {second}) and the image config names none")]
    Ambiguous {
        /// The first `.wasm` path.
        first: String,
        /// Another `.wasm` path.
        second: String,
    },
    /// The wanted path is a symlink or hard link.
    #[error("{path} is a link in the layer; only regular files are supported")]
    Link {
        /// The path of the link.
        path: String,
    },
}

/// Which file to take out of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wanted {
    /// This path (normalized, no leading `/`).
    Path(String),
    /// The only regular file whose name ends in `.wasm`.
    AnyWasm,
}

/// The outcome of searching one layer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// The file was written to `out`; its normalized path.
    File(String),
    /// The layer deletes the wanted path (an OCI whiteout): lower layers
    /// must not be searched.
    Deleted,
    /// The layer does not contain the file.
    Absent,
}

/// Normalizes a tar or config path: no leading `/` or `./`, no `.`
/// components. `None` if it escapes the root (`..`) or is empty.
pub(crate) fn normalize(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Searches a (possibly gzip-compressed) tar stream for `wanted` and copies
/// it to `out`.
pub(crate) fn extract(layer: impl Read, gzip: bool, wanted: &Wanted, out: &mut impl Write) -> Result<Found, Error> {
    if gzip {
        search(tar::Archive::new(GzDecoder::new(layer)), wanted, out)
    } else {
        search(tar::Archive::new(layer), wanted, out)
    }
}

fn search<R: Read>(mut archive: tar::Archive<R>, wanted: &Wanted, out: &mut impl Write) -> Result<Found, Error> {
    let mut found: Option<String> = None;
    for entry in archive.entries().map_err(Error::Read)? {
        let mut entry = entry.map_err(Error::Read)?;
        let raw_path = entry.path().map_err(Error::Read)?;
        let Some(path) = raw_path.to_str().and_then(normalize) else {
            continue;
        };
        let kind = entry.header().entry_type();
        match wanted {
            Wanted::Path(want) => {
                if is_whiteout_of(&path, want) {
                    return Ok(Found::Deleted);
                }
                if &path != want {
                    continue;
                }
                if matches!(kind, EntryType::Symlink | EntryType::Link) {
                    return Err(Error::Link { path });
                }
                if kind.is_file() {
                    copy(&mut entry, out)?;
                    return Ok(Found::File(path));
                }
            }
            Wanted::AnyWasm => {
                if !kind.is_file() || !path.ends_with(".wasm") {
                    continue;
                }
                if let Some(first) = found {
                    return Err(Error::Ambiguous { first, second: path });
                }
                copy(&mut entry, out)?;
                found = Some(path);
            }
        }
    }
    Ok(found.map_or(Found::Absent, Found::File))
}

fn is_whiteout_of(path: &str, want: &str) -> bool {
    let (dir, name) = want.rsplit_once('/').unwrap_or(("", want));
    let whiteout = if dir.is_empty() { format!(".wh.{name}") } else { format!("{dir}/.wh.{name}") };
    path == whiteout
}

fn copy(entry: &mut impl Read, out: &mut impl Write) -> Result<(), Error> {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => return out.flush().map_err(Error::Write),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Read(e)),
        };
        out.write_all(&buf[..n]).map_err(Error::Write)?;
    }
}

/// A single-file image layer: the uncompressed tar (whose digest is the
/// config's diff ID) and its gzip-compressed form (the pushed blob).
pub(crate) struct SingleFileLayer {
    pub(crate) tar: Vec<u8>,
    pub(crate) gzip: Vec<u8>,
}

/// Builds a layer holding `contents` at `path` (mode 0755, owned by root,
/// modification time `mtime` in Unix seconds).
pub(crate) fn single_file_layer(path: &str, contents: &[u8], mtime: u64) -> io::Result<SingleFileLayer> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(0o755);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_size(contents.len() as u64);
    let mut builder = tar::Builder::new(Vec::new());
    builder.append_data(&mut header, path, contents)?;
    let tar = builder.into_inner()?;

    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(&tar)?;
    let gzip = encoder.finish()?;
    Ok(SingleFileLayer { tar, gzip })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            // Raw name bytes: the builder refuses absolute paths, real
            // layers sometimes have them.
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            if *kind == EntryType::Symlink {
                h.set_link_name("target.wasm").unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("/app.wasm").as_deref(), Some("app.wasm"));
        assert_eq!(normalize("./bin/./app.wasm").as_deref(), Some("bin/app.wasm"));
        assert_eq!(normalize("../app.wasm"), None);
        assert_eq!(normalize("/"), None);
    }

    #[test]
    fn single_file_layer_round_trips() {
        let layer = single_file_layer("app.wasm", b"\0asm\x01\0\0\0", 0).unwrap();
        let mut out = Vec::new();
        let want = Wanted::Path("app.wasm".into());
        let found = extract(&layer.gzip[..], true, &want, &mut out).unwrap();
        assert_eq!(found, Found::File("app.wasm".into()));
        assert_eq!(out, b"\0asm\x01\0\0\0");
        let mut out = Vec::new();
        assert_eq!(extract(&layer.tar[..], false, &Wanted::AnyWasm, &mut out).unwrap(), Found::File("app.wasm".into()));
        // Deterministic for a fixed mtime.
        let again = single_file_layer("app.wasm", b"\0asm\x01\0\0\0", 0).unwrap();
        assert_eq!(again.tar, layer.tar);
    }

    #[test]
    fn finds_named_and_unique_wasm() {
        let tar = tar_of(&[
            ("etc/", EntryType::Directory, b""),
            ("./etc/motd", EntryType::Regular, b"hi"),
            ("/srv/main.wasm", EntryType::Regular, b"main"),
        ]);
        let mut out = Vec::new();
        let want = Wanted::Path("srv/main.wasm".into());
        assert_eq!(extract(&tar[..], false, &want, &mut out).unwrap(), Found::File("srv/main.wasm".into()));
        assert_eq!(out, b"main");
        let mut out = Vec::new();
        assert_eq!(extract(&tar[..], false, &Wanted::AnyWasm, &mut out).unwrap(), Found::File("srv/main.wasm".into()));
        let want = Wanted::Path("app.wasm".into());
        assert_eq!(extract(&tar[..], false, &want, &mut Vec::new()).unwrap(), Found::Absent);
    }

    #[test]
    fn reports_ambiguity_links_and_whiteouts() {
        let two = tar_of(&[("a.wasm", EntryType::Regular, b"a"), ("b.wasm", EntryType::Regular, b"b")]);
        let err = extract(&two[..], false, &Wanted::AnyWasm, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, Error::Ambiguous { .. }), "{err:?}");

        let link = tar_of(&[("app.wasm", EntryType::Symlink, b"")]);
        let want = Wanted::Path("app.wasm".into());
        let err = extract(&link[..], false, &want, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, Error::Link { .. }), "{err:?}");

        let wh = tar_of(&[("bin/.wh.app.wasm", EntryType::Regular, b"")]);
        let want = Wanted::Path("bin/app.wasm".into());
        assert_eq!(extract(&wh[..], false, &want, &mut Vec::new()).unwrap(), Found::Deleted);
    }

    #[test]
    fn corrupt_archive_is_an_error() {
        let layer = single_file_layer("app.wasm", b"x", 0).unwrap();
        let truncated = &layer.gzip[..layer.gzip.len() / 2];
        let err = extract(truncated, true, &Wanted::AnyWasm, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, Error::Read(_)), "{err:?}");
    }
}
