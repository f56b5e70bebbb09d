//! Atomic updates of a volume directory, exactly as the kubelet's
//! `AtomicWriter` does, so a guest never sees a half-written set of files.
//!
//! ```text
//! <volume>/..2026_11_26_06_30_00.1a2b3c4d/   the data, one directory per version
//! <volume>/..data -> ..2026_11_26_06_30_00.1a2b3c4d
//! <volume>/key    -> ..data/key               one symlink per top-level name
//! ```
//!
//! An update writes the new version into a fresh timestamped directory,
//! points a new `..data_tmp` symlink at it and renames that over `..data`
//! (one atomic `rename(2)`), adds the user-visible symlinks of new names,
//! removes those of names that are gone, then deletes the old directory.
//!
//! # Guarantees
//!
//! - A reader opening `key` gets a complete file of one version: files are
//!   written before the swap and never modified afterwards.
//! - A reader that resolves `..data` once and reads through that directory
//!   sees one consistent version of every file.
//! - Unchanged content (same files, bytes and modes) is not rewritten.
//!
//! # Caveats
//!
//! - As upstream, a reader that resolved `..data` just before a swap may find
//!   the old directory deleted (`ENOENT`) and must open again.
//! - WASI guests see the same layout: wasmtime-wasi (cap-std) follows
//!   symlinks that stay inside the preopened directory, and every link here
//!   is relative and stays inside (checked with a real guest in
//!   `tests/all/wasi.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The symlink to the current version.
pub const DATA_DIR: &str = "..data";
/// The symlink renamed over [`DATA_DIR`].
const DATA_DIR_TMP: &str = "..data_tmp";
/// Mode of the directories the writer creates.
pub const DIR_MODE: u32 = 0o750;
/// Longest path in a payload (upstream `maxPathLength`).
const MAX_PATH: usize = 4096;
/// Longest file name in a payload (upstream `maxFileNameLength`).
const MAX_NAME: usize = 255;

/// One file of a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    /// The content.
    pub data: Vec<u8>,
    /// The permission bits.
    pub mode: u32,
}

/// The files of a volume, by relative path.
pub type Payload = BTreeMap<String, FileProjection>;

/// Why a payload could not be written.
#[derive(Debug, thiserror::Error)]
pub enum AtomicError {
    /// A payload path is not acceptable (upstream's wording).
    #[error("invalid path: {reason}: {path}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file system operation failed. The OS error is in the message too:
    /// the `FailedMount` event shows only this text (as upstream's
    /// `write …: no space left on device`).
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> AtomicError + 'a {
    move |source| AtomicError::Io { op, path: path.to_owned(), source }
}

/// Checks a payload path and returns it cleaned (no `.` or empty components).
///
/// # Errors
///
/// [`AtomicError::InvalidPath`] with upstream's reason.
pub fn clean_path(path: &str) -> Result<String, AtomicError> {
    let invalid = |reason| AtomicError::InvalidPath { path: path.to_owned(), reason };
    if path.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if path.starts_with('/') {
        return Err(invalid("must be relative path"));
    }
    if path.len() > MAX_PATH {
        return Err(invalid("must be less than or equal to 4096 characters"));
    }
    let mut parts = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(c) => {
                let c = c.to_str().ok_or_else(|| invalid("must be UTF-8"))?;
                if c.len() > MAX_NAME {
                    return Err(invalid("filenames must be less than or equal to 255 characters"));
                }
                parts.push(c);
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid("must not contain '..'")),
            Component::RootDir | Component::Prefix(_) => return Err(invalid("must be relative path")),
        }
    }
    match parts.first() {
        None => Err(invalid("must not be empty")),
        Some(first) if first.starts_with("..") => Err(invalid("must not start with '..'")),
        Some(_) => Ok(parts.join("/")),
    }
}

/// Writes `payload` into `dir` (which must exist) atomically; returns whether
/// anything changed on disk. Payload paths must be [cleaned](clean_path).
///
/// # Errors
///
/// An invalid path or a failed file system operation; the previous version
/// stays in place when the failure happens before the swap.
pub fn write(dir: &Path, payload: &Payload) -> Result<bool, AtomicError> {
    for path in payload.keys() {
        if clean_path(path)? != *path {
            return Err(AtomicError::InvalidPath { path: path.clone(), reason: "must be clean" });
        }
    }
    let data_link = dir.join(DATA_DIR);
    let old = match fs::read_link(&data_link) {
        Ok(target) => Some(dir.join(target)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("read", &data_link)(e)),
    };
    let old_names = match &old {
        Some(old) => top_level_names(old)?,
        None => BTreeSet::new(),
    };
    if let Some(old) = &old
        && same_content(old, payload)?
    {
        ensure_visible(dir, payload)?;
        return Ok(false);
    }
    let version = new_version_dir(dir)?;
    write_files(&version, payload)?;
    let version_name = version.file_name().map(PathBuf::from).unwrap_or_default();
    let tmp = dir.join(DATA_DIR_TMP);
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("remove", &tmp)(e)),
        _ => {}
    }
    std::os::unix::fs::symlink(&version_name, &tmp).map_err(io_err("create symlink", &tmp))?;
    fs::rename(&tmp, &data_link).map_err(io_err("rename over", &data_link))?;
    ensure_visible(dir, payload)?;
    let new_names: BTreeSet<String> = payload.keys().map(|p| top_level(p).to_owned()).collect();
    for gone in old_names.difference(&new_names) {
        let link = dir.join(gone);
        if fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(&link).map_err(io_err("remove", &link))?;
        }
    }
    remove_old_versions(dir, &version_name)?;
    Ok(true)
}

fn top_level(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// The names directly inside a version directory.
fn top_level_names(version: &Path) -> Result<BTreeSet<String>, AtomicError> {
    let entries = match fs::read_dir(version) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(io_err("list", version)(e)),
    };
    Ok(entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
}

/// Whether the files under `version` are exactly `payload`.
fn same_content(version: &Path, payload: &Payload) -> Result<bool, AtomicError> {
    let mut on_disk = Vec::new();
    if list_files(version, version, &mut on_disk).is_err() {
        return Ok(false);
    }
    if on_disk.len() != payload.len() || on_disk.iter().any(|p| !payload.contains_key(p)) {
        return Ok(false);
    }
    for (path, file) in payload {
        let full = version.join(path);
        let Ok(meta) = fs::symlink_metadata(&full) else { return Ok(false) };
        if meta.permissions().mode() & 0o7777 != file.mode || meta.len() != file.data.len() as u64 {
            return Ok(false);
        }
        if fs::read(&full).map_err(io_err("read", &full))? != file.data {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Relative paths of every non-directory under `dir`.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            list_files(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

/// Creates `..<UTC timestamp>.<random>` in `dir`.
fn new_version_dir(dir: &Path) -> Result<PathBuf, AtomicError> {
    let stamp = k8s_openapi::jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S").to_string();
    loop {
        let path = dir.join(format!("..{stamp}.{:08x}", rand::random::<u32>()));
        match fs::DirBuilder::new().mode(DIR_MODE).create(&path) {
            Ok(()) => {
                fs::set_permissions(&path, fs::Permissions::from_mode(DIR_MODE)).map_err(io_err("chmod", &path))?;
                return Ok(path);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("create", &path)(e)),
        }
    }
}

/// Writes every file of `payload` under `version`, modes exactly as given.
fn write_files(version: &Path, payload: &Payload) -> Result<(), AtomicError> {
    for (path, file) in payload {
        let full = version.join(path);
        let mut parent = version.to_owned();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len() - 1] {
            parent.push(part);
            match fs::DirBuilder::new().mode(DIR_MODE).create(&parent) {
                Ok(()) => fs::set_permissions(&parent, fs::Permissions::from_mode(DIR_MODE))
                    .map_err(io_err("chmod", &parent))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && parent.is_dir() => {}
                Err(e) => return Err(io_err("create", &parent)(e)),
            }
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&full)
            .map_err(io_err("create", &full))?;
        f.write_all(&file.data).map_err(io_err("write", &full))?;
        f.set_permissions(fs::Permissions::from_mode(file.mode)).map_err(io_err("chmod", &full))?;
    }
    Ok(())
}

/// Makes `name -> ..data/name` exist for every top-level name of `payload`.
fn ensure_visible(dir: &Path, payload: &Payload) -> Result<(), AtomicError> {
    let names: BTreeSet<&str> = payload.keys().map(|p| top_level(p)).collect();
    for name in names {
        let link = dir.join(name);
        let target = Path::new(DATA_DIR).join(name);
        match fs::read_link(&link) {
            Ok(current) if current == target => continue,
            Ok(_) => fs::remove_file(&link).map_err(io_err("remove", &link))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => {
                // Not a symlink (left over from something else): replace it.
                remove_any(&link)?;
            }
        }
        std::os::unix::fs::symlink(&target, &link).map_err(io_err("create symlink", &link))?;
    }
    Ok(())
}

/// Removes every `..<version>` directory but `keep`.
fn remove_old_versions(dir: &Path, keep: &Path) -> Result<(), AtomicError> {
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(name_str) = name.to_str() else { continue };
        if !name_str.starts_with("..") || name_str == DATA_DIR || name_str == DATA_DIR_TMP || Path::new(&name) == keep {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
        }
    }
    Ok(())
}

fn remove_any(path: &Path) -> Result<(), AtomicError> {
    let meta = fs::symlink_metadata(path).map_err(io_err("inspect", path))?;
    if meta.is_dir() {
        fs::remove_dir_all(path).map_err(io_err("remove", path))
    } else {
        fs::remove_file(path).map_err(io_err("remove", path))
    }
}

#[cfg(test)]
mod tests;
