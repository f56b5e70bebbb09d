//! A container's `volumeMounts` as WASI preopens
//! ([`PodVolumes::mounts`]).
//!
//! - `readOnly` is honoured; configMap, secret, downwardAPI and projected
//!   volumes are always read-only (as upstream).
//! - One volume may be mounted at several paths.
//! - `subPath` / `subPathExpr` (expanded with the container's environment; an
//!   undefined or empty variable is an error, as upstream) select a part of
//!   the volume, resolved safely ([`subpath`]): absolute paths, `..` and
//!   symlinks leading out of the volume are refused with upstream's
//!   `subpath "…" not within volume path "…"`.
//!
//! # Files
//!
//! A WASI preopen is a directory. A mount whose source is a file (a file
//! `subPath`, a `File` hostPath) is staged into
//! `<pod_dir>/volume-subpaths/<container>/<n>/`, preopened at the mount
//! path's parent directory; several file mounts with the same parent share
//! one staging directory. The file is a hard link to the original (writes
//! and in-place updates are shared), or a copy when it comes from a
//! configMap, secret, downwardAPI or projected volume.
//!
//! # Caveats
//!
//! - A `subPath` of a configMap, secret, downwardAPI or projected volume
//!   (file or directory) is a copy taken at container start and is never
//!   refreshed — upstream does not refresh subPath mounts either.
//! - A staging directory hides what the parent mount path would otherwise
//!   show from a shorter mount (wasi-libc picks the longest matching
//!   preopen); a file mount whose parent is itself a mount path, or two file
//!   mounts in one directory with different `readOnly`, are refused.
//! - A writable file mount needs the staging directory on the file's file
//!   system (a hard link); across file systems (a tmpfs emptyDir, a hostPath
//!   elsewhere) it is refused, a read-only one is copied.
//! - `mountPropagation` and `recursiveReadOnly` have no meaning for a WASI
//!   guest (read-only preopens are recursive).

pub mod subpath;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, VolumeMount};
use wasmlet_runtime::Mount;

use crate::expand::expand_with;
use crate::volumes::pod::Prepared;
use crate::volumes::{PodVolumes, SUBPATHS_DIR};
use subpath::Kind;

/// Why a container's mounts cannot be made (the caller reports it as
/// `CreateContainerConfigError` / `CreateContainerError`).
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount names no volume of the pod.
    #[error("volumeMount {mount:?}: no volume named {volume:?} in the pod")]
    UnknownVolume {
        /// The volume name.
        volume: String,
        /// The mount path.
        mount: String,
    },
    /// A mount path that is not absolute.
    #[error("mountPath {0:?} must be an absolute path without '..'")]
    MountPath(String),
    /// An absolute subPath (upstream's wording).
    #[error("error SubPath `{0}` must not be an absolute path")]
    AbsoluteSubPath(String),
    /// A subPath with a `..` component (upstream's wording).
    #[error("unable to provision SubPath `{0}`: must not contain '..'")]
    Backsteps(String),
    /// `subPathExpr` uses undefined or empty variables (upstream's wording).
    #[error("missing value for {0}")]
    MissingValue(String),
    /// The subPath resolves outside its volume (upstream's wording).
    #[error("subpath {:?} not within volume path {:?}", subpath.display().to_string(), volume.display().to_string())]
    Escape {
        /// The subPath joined to the volume's path.
        subpath: PathBuf,
        /// The volume's path.
        volume: PathBuf,
    },
    /// Neither a directory nor a regular file.
    #[error("cannot mount {} at {mount}: WASI guests can only be given directories and regular files", path.display())]
    NotMountable {
        /// The host path.
        path: PathBuf,
        /// The mount path.
        mount: String,
    },
    /// A file mount that cannot be staged next to other mounts.
    #[error("cannot mount a file at {mount}: {reason}")]
    Conflict {
        /// The mount path.
        mount: String,
        /// Why.
        reason: &'static str,
    },
    /// A writable file mount across file systems.
    #[error("cannot stage writable file {}: it is on another file system", .0.display())]
    CrossDevice(PathBuf),
    /// A staged copy would exceed the configured limit.
    #[error("cannot stage {}: more than {max} bytes", path.display())]
    TooLarge {
        /// The destination.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// A file system operation failed.
    #[error("cannot {op} {}", path.display())]
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

/// A file to stage: where it comes from and under what name.
struct StagedFile {
    fd: std::os::fd::OwnedFd,
    name: String,
    copy: bool,
}

impl PodVolumes {
    /// The preopens for `container`, whose environment is `env` (for
    /// `subPathExpr`). Call it at every container start: subPaths are
    /// re-resolved and files re-staged each time.
    ///
    /// Handles of subPath directories stay open (inside this `PodVolumes`)
    /// until the container's next call or [`cleanup`](Self::cleanup), so the
    /// paths returned stay valid for the guest's start.
    ///
    /// # Caveats
    ///
    /// Call it only when the container's previous attempt has exited: its
    /// staging directory is replaced. Staging copies and links files
    /// synchronously on the caller's task (bounded by
    /// [`Config::max_copy_bytes`](crate::volumes::Config::max_copy_bytes)
    /// per subPath).
    ///
    /// # Errors
    ///
    /// See [`MountError`].
    pub fn mounts(&self, container: &Container, env: &[(String, String)]) -> Result<Vec<Mount>, MountError> {
        let vars: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let stage_root = self.inner.pod_dir.join(SUBPATHS_DIR).join(&container.name);
        if container.name.is_empty() || container.name.contains('/') || container.name.starts_with('.') {
            return Err(MountError::Conflict { mount: container.name.clone(), reason: "invalid container name" });
        }
        match fs::remove_dir_all(&stage_root) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("remove", &stage_root, e)),
            _ => {}
        }
        let mut mounts = Vec::new();
        let mut held = Vec::new();
        // Files to stage, by parent guest directory: (read-only, files).
        let mut files: Vec<(String, bool, Vec<StagedFile>)> = Vec::new();
        let max_copy = self.inner.volumes.config.max_copy_bytes;
        for (index, mount) in container.volume_mounts.iter().flatten().enumerate() {
            let guest = guest_path(&mount.mount_path)?;
            let prepared = self.inner.prepared.get(&mount.name).ok_or_else(|| MountError::UnknownVolume {
                volume: mount.name.clone(),
                mount: mount.mount_path.clone(),
            })?;
            let atomic = matches!(prepared, Prepared::Atomic(_));
            let external_ro = matches!(prepared, Prepared::External(m) if m.read_only);
            let read_only = mount.read_only.unwrap_or(false) || atomic || external_ro;
            let root = match prepared {
                Prepared::EmptyDir(e) => e.dir.clone(),
                Prepared::HostPath(p) | Prepared::Atomic(p) => p.clone(),
                Prepared::External(m) => m.path.clone(),
            };
            let sub = sub_path(mount, &vars)?;
            if sub.is_empty() && root.is_dir() {
                mounts.push(Mount { host: root, guest, read_only });
                continue;
            }
            let (fd, kind) = if sub.is_empty() {
                let fd = subpath::open_path(&root)?;
                let kind = subpath::kind(&fd, &root)?;
                (fd, kind)
            } else {
                subpath::validate(&sub)?;
                let root_fd = subpath::open_root(&root)?;
                let fd = match subpath::open_beneath(&root_fd, &root, &sub)? {
                    Some(fd) => fd,
                    None if atomic => {
                        // Upstream creates a missing subPath as a directory;
                        // a generated volume stays untouched: stage an empty one.
                        let dir = stage_root.join(format!("{index}"));
                        create_dirs(&dir)?;
                        mounts.push(Mount { host: dir, guest, read_only });
                        continue;
                    }
                    None => subpath::make_dirs_beneath(&root_fd, &root, &sub)?,
                };
                let kind = subpath::kind(&fd, &root)?;
                (fd, kind)
            };
            match kind {
                Kind::Dir if atomic => {
                    let dir = stage_root.join(format!("{index}"));
                    create_dirs(&stage_root)?;
                    subpath::copy_dir(&fd, &dir, max_copy)?;
                    mounts.push(Mount { host: dir, guest, read_only });
                }
                Kind::Dir => {
                    mounts.push(Mount { host: subpath::fd_path(&fd), guest, read_only });
                    held.push(fd);
                }
                Kind::File => {
                    let (parent, name) = split_guest(&guest, &mount.mount_path)?;
                    let file = StagedFile { fd, name, copy: atomic };
                    match files.iter_mut().find(|(p, _, _)| *p == parent) {
                        Some((_, ro, list)) if *ro == read_only => list.push(file),
                        Some(_) => {
                            return Err(MountError::Conflict {
                                mount: mount.mount_path.clone(),
                                reason: "file mounts in one directory must all be readOnly or all writable",
                            });
                        }
                        None => files.push((parent, read_only, vec![file])),
                    }
                }
                Kind::Other => {
                    return Err(MountError::NotMountable { path: root.join(&sub), mount: mount.mount_path.clone() });
                }
            }
        }
        for (n, (parent, read_only, list)) in files.into_iter().enumerate() {
            if mounts.iter().any(|m| m.guest == parent) {
                return Err(MountError::Conflict { mount: parent, reason: "its directory is also a mount path" });
            }
            let dir = stage_root.join(format!("files-{n}"));
            create_dirs(&dir)?;
            for file in list {
                subpath::stage_file(&file.fd, &dir.join(&file.name), file.copy, read_only, max_copy)?;
            }
            mounts.push(Mount { host: dir, guest: parent, read_only });
        }
        self.state().held.insert(container.name.clone(), held);
        Ok(mounts)
    }
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> MountError {
    MountError::Io { op, path: path.to_owned(), source }
}

fn create_dirs(dir: &Path) -> Result<(), MountError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(crate::atomic::DIR_MODE)
        .create(dir)
        .map_err(|e| io_err("create", dir, e))
}

/// The mount path, normalized (absolute, no `..`, no trailing `/`).
fn guest_path(mount_path: &str) -> Result<String, MountError> {
    let path = Path::new(mount_path);
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(c) => parts.push(c.to_string_lossy().into_owned()),
            Component::ParentDir | Component::Prefix(_) => return Err(MountError::MountPath(mount_path.to_owned())),
        }
    }
    if !mount_path.starts_with('/') {
        return Err(MountError::MountPath(mount_path.to_owned()));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A file mount's parent directory and file name.
fn split_guest(guest: &str, mount_path: &str) -> Result<(String, String), MountError> {
    let (parent, name) = guest.rsplit_once('/').unwrap_or(("", guest));
    if name.is_empty() {
        return Err(MountError::Conflict { mount: mount_path.to_owned(), reason: "a file cannot be mounted at /" });
    }
    Ok((if parent.is_empty() { "/".to_owned() } else { parent.to_owned() }, name.to_owned()))
}

/// The mount's subPath: `subPath`, or `subPathExpr` expanded (an undefined
/// or empty variable is an error).
fn sub_path(mount: &VolumeMount, vars: &HashMap<&str, &str>) -> Result<String, MountError> {
    if let Some(expr) = mount.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
        let mut missing = std::collections::BTreeSet::new();
        let expanded = expand_with(expr, |name, out| match vars.get(name).filter(|v| !v.is_empty()) {
            Some(value) => out.push_str(value),
            None => {
                missing.insert(name.to_owned());
            }
        });
        if !missing.is_empty() {
            return Err(MountError::MissingValue(missing.into_iter().collect::<Vec<_>>().join(", ")));
        }
        return Ok(expanded);
    }
    Ok(mount.sub_path.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests;
