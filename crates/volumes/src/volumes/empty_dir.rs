//! `emptyDir` volumes: a directory of the pod, or a tmpfs for
//! `medium: Memory`, and their disk usage for `sizeLimit` eviction.
//!
//! # Memory-backed volumes
//!
//! `medium: Memory` mounts a tmpfs (`nosuid,nodev,noexec,mode=0750`) sized
//! like upstream: the smallest of `sizeLimit`, the pod's memory limit (when
//! every container has one) and the node's allocatable memory. Mounting needs
//! `CAP_SYS_ADMIN`; when it fails (an unprivileged agent), the volume is a
//! plain directory on disk instead and [`PodVolumes::memory_fallbacks`]
//! names it, for the caller to report (an event). The tmpfs is unmounted on
//! cleanup, also after an agent restart (found in `/proc/self/mountinfo`).
//!
//! [`PodVolumes::memory_fallbacks`]: crate::PodVolumes::memory_fallbacks

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use nix::mount::{MntFlags, MsFlags};

use crate::quantity::{InvalidQuantity, Quantity};

/// Why an emptyDir could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EmptyDirError {
    /// A medium this node does not offer (e.g. `HugePages`).
    #[error("emptyDir medium {0:?} is not supported by wasmlet")]
    Medium(String),
    /// `sizeLimit` does not parse.
    #[error("invalid emptyDir sizeLimit")]
    SizeLimit(#[source] InvalidQuantity),
    /// The directory could not be created.
    #[error("cannot create {}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// A prepared emptyDir.
#[derive(Debug, Clone)]
pub(crate) struct EmptyDir {
    pub(crate) dir: PathBuf,
    /// A tmpfs is mounted on `dir`.
    pub(crate) tmpfs: bool,
    /// `sizeLimit` in bytes.
    pub(crate) size_limit: Option<u64>,
}

/// The result of [`setup`]: the volume and, when a tmpfs was wanted but
/// could not be mounted, why.
pub(crate) fn setup(
    dir: PathBuf,
    source: &EmptyDirVolumeSource,
    pod: &Pod,
    allocatable: &std::collections::BTreeMap<String, ApiQuantity>,
    try_tmpfs: bool,
) -> Result<(EmptyDir, Option<String>), EmptyDirError> {
    let size_limit = source
        .size_limit
        .as_ref()
        .map(|q| Quantity::parse(&q.0).map(|q| u64::try_from(q.value()).unwrap_or(0)))
        .transpose()
        .map_err(EmptyDirError::SizeLimit)?;
    let memory = match source.medium.as_deref().unwrap_or_default() {
        "" => false,
        "Memory" => true,
        other => return Err(EmptyDirError::Medium(other.to_owned())),
    };
    super::create_dir(&dir).map_err(|source| EmptyDirError::Create { path: dir.clone(), source })?;
    let mut volume = EmptyDir { dir, tmpfs: false, size_limit };
    if !memory {
        return Ok((volume, None));
    }
    if !try_tmpfs {
        return Ok((volume, Some("memory-backed volumes are disabled in the configuration".into())));
    }
    if mount_points_under(&volume.dir).iter().any(|m| m == &volume.dir) {
        volume.tmpfs = true;
        return Ok((volume, None));
    }
    let size = tmpfs_size(size_limit, pod, allocatable);
    let mut options = "mode=0750".to_owned();
    if let Some(size) = size {
        options.push_str(&format!(",size={size}"));
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    match nix::mount::mount(Some("tmpfs"), &volume.dir, Some("tmpfs"), flags, Some(options.as_str())) {
        Ok(()) => {
            tracing::debug!(dir = %volume.dir.display(), ?size, "mounted tmpfs");
            volume.tmpfs = true;
            Ok((volume, None))
        }
        Err(errno) => {
            tracing::warn!(dir = %volume.dir.display(), error = %errno, "cannot mount tmpfs; using a directory on disk");
            Ok((volume, Some(format!("cannot mount tmpfs: {}", errno.desc()))))
        }
    }
}

/// The tmpfs size: the smallest of the limits that are set.
fn tmpfs_size(
    size_limit: Option<u64>,
    pod: &Pod,
    allocatable: &std::collections::BTreeMap<String, ApiQuantity>,
) -> Option<u64> {
    let bytes = |q: &ApiQuantity| Quantity::parse(&q.0).ok().and_then(|q| u64::try_from(q.value()).ok());
    let containers = pod.spec.iter().flat_map(|s| s.containers.iter());
    let limits: Option<Vec<u64>> =
        containers.map(|c| c.resources.as_ref()?.limits.as_ref()?.get("memory").and_then(bytes)).collect();
    let pod_limit = limits.filter(|l| !l.is_empty()).map(|l| l.iter().sum());
    [size_limit, pod_limit, allocatable.get("memory").and_then(bytes)].into_iter().flatten().filter(|s| *s > 0).min()
}

/// Bytes used by the volume: blocks of everything under it (like `du`), or
/// the used blocks of its tmpfs.
pub(crate) fn usage(volume: &EmptyDir) -> u64 {
    if volume.tmpfs
        && let Ok(stat) = nix::sys::statvfs::statvfs(&volume.dir)
    {
        let used = stat.blocks().saturating_sub(stat.blocks_free());
        return used.saturating_mul(stat.fragment_size());
    }
    disk_usage(&volume.dir)
}

fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else { return 0 };
    let mut total = meta.blocks().saturating_mul(512);
    if meta.is_dir()
        && let Ok(entries) = fs::read_dir(path)
    {
        for entry in entries.flatten() {
            total = total.saturating_add(disk_usage(&entry.path()));
        }
    }
    total
}

/// Mount points at or under `dir`, deepest first (from /proc/self/mountinfo).
pub(crate) fn mount_points_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    points
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if bytes[i] == b'\\'
            && let Some(digits) = octal
        {
            let value = digits.iter().fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts everything mounted at or under `dir` (lazily, so a busy mount
/// does not block cleanup).
pub(crate) fn unmount_all(dir: &Path) -> Result<(), (PathBuf, nix::Error)> {
    for point in mount_points_under(dir) {
        match nix::mount::umount2(&point, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::Error::EINVAL | nix::Error::ENOENT) => {
                tracing::debug!(dir = %point.display(), "unmounted");
            }
            Err(e) => return Err((point, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(limits: &[Option<&str>]) -> Pod {
        let containers: Vec<serde_json::Value> = limits
            .iter()
            .enumerate()
            .map(|(i, l)| match l {
                Some(l) => serde_json::json!({"name": format!("c{i}"), "resources": {"limits": {"memory": l}}}),
                None => serde_json::json!({"name": format!("c{i}")}),
            })
            .collect();
        serde_json::from_value(serde_json::json!({"spec": {"containers": containers}})).unwrap()
    }

    #[test]
    fn tmpfs_size_is_the_smallest_limit() {
        let alloc = std::collections::BTreeMap::from([("memory".to_owned(), ApiQuantity("1Gi".into()))]);
        let none = std::collections::BTreeMap::new();
        assert_eq!(tmpfs_size(Some(1 << 20), &pod(&[Some("64Mi")]), &alloc), Some(1 << 20));
        assert_eq!(tmpfs_size(None, &pod(&[Some("64Mi"), Some("64Mi")]), &alloc), Some(128 << 20));
        assert_eq!(tmpfs_size(None, &pod(&[Some("64Mi"), None]), &alloc), Some(1 << 30));
        assert_eq!(tmpfs_size(Some(4 << 30), &pod(&[None]), &alloc), Some(1 << 30));
        assert_eq!(tmpfs_size(None, &pod(&[None]), &none), None);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/a\\040b/c"), "/a b/c");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/trailing\\"), "/trailing\\");
    }

    #[test]
    fn disk_usage_counts_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("f"), vec![1u8; 100_000]).unwrap();
        fs::create_dir(tmp.path().join("d")).unwrap();
        fs::write(tmp.path().join("d/g"), vec![1u8; 50_000]).unwrap();
        let volume = EmptyDir { dir: tmp.path().to_owned(), tmpfs: false, size_limit: None };
        assert!(usage(&volume) >= 150_000, "{}", usage(&volume));
    }
}
