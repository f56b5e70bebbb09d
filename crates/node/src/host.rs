//! Measuring the host: what the node has ([`measure`] → [`HostSample`]:
//! CPUs, memory, the filesystem of the root directory, and how much of each is
//! free) and what it is ([`system_info`] → [`SystemInfo`]: machine and boot
//! IDs, kernel, OS image).
//!
//! Linux only. The reads are a handful of small procfs/sysfs files and one
//! `statvfs`, cheap enough to do inline on an async task. The parsers live in
//! `host/parse.rs` and are tested with sample file contents.

mod parse;

use std::fs;
use std::path::{Path, PathBuf};

/// Why the host could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file that must exist could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `/proc/meminfo` has no parsable `MemTotal`.
    #[error("{} has no parsable MemTotal", path.display())]
    Meminfo {
        /// The file.
        path: PathBuf,
    },
    /// `statvfs` of the root directory failed.
    #[error("statvfs of {}", path.display())]
    Statvfs {
        /// The directory.
        path: PathBuf,
        /// The system error.
        #[source]
        source: nix::Error,
    },
}

/// One measurement of the host's resources. Byte counts are bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSample {
    /// Logical CPUs this process may use (scheduler affinity and cgroup CPU
    /// quota respected, as `std::thread::available_parallelism` does).
    pub cpus: u32,
    /// `MemTotal`, lowered to the tightest cgroup memory limit of this process.
    pub memory_capacity: u64,
    /// `MemAvailable`, lowered to the headroom under that cgroup limit.
    pub memory_available: u64,
    /// Size of the filesystem holding the root directory.
    pub storage_capacity: u64,
    /// Bytes available to unprivileged users on that filesystem.
    pub storage_available: u64,
}

/// Identity of the machine, for `status.nodeInfo`. Empty strings where the
/// host does not say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemInfo {
    /// `/etc/machine-id`, else `/var/lib/dbus/machine-id`.
    pub machine_id: String,
    /// `/sys/class/dmi/id/product_uuid` when readable, else the machine ID.
    pub system_uuid: String,
    /// `/proc/sys/kernel/random/boot_id`.
    pub boot_id: String,
    /// The kernel release (`uname -r`).
    pub kernel_version: String,
    /// `PRETTY_NAME` of `/etc/os-release` (or `/usr/lib/os-release`).
    pub os_image: String,
}

const MEMINFO: &str = "/proc/meminfo";
const SELF_CGROUP: &str = "/proc/self/cgroup";

/// Measures CPUs, memory and the filesystem holding `root_dir`.
///
/// # Errors
///
/// When `/proc/meminfo` cannot be read or parsed, or `statvfs(root_dir)` fails
/// (for example because `root_dir` does not exist).
pub fn measure(root_dir: &Path) -> Result<HostSample, Error> {
    let cpus = match std::thread::available_parallelism() {
        Ok(n) => u32::try_from(n.get()).unwrap_or(u32::MAX),
        Err(e) => {
            tracing::debug!(error = %e, "available_parallelism failed; assuming 1 CPU");
            1
        }
    };
    let text = fs::read_to_string(MEMINFO).map_err(|source| Error::Read { path: MEMINFO.into(), source })?;
    let mem = parse::meminfo(&text).ok_or_else(|| Error::Meminfo { path: MEMINFO.into() })?;
    let cgroup = cgroup_memory();
    let memory_capacity = cgroup.limit.map_or(mem.total, |l| l.min(mem.total));
    let available = mem.available.unwrap_or(memory_capacity);
    let memory_available = cgroup.headroom.map_or(available, |h| h.min(available)).min(memory_capacity);
    let fs =
        nix::sys::statvfs::statvfs(root_dir).map_err(|source| Error::Statvfs { path: root_dir.to_owned(), source })?;
    #[allow(clippy::useless_conversion, reason = "the statvfs field types are narrower than u64 on some targets")]
    let (frag, blocks, blocks_available) =
        (u64::from(fs.fragment_size()), u64::from(fs.blocks()), u64::from(fs.blocks_available()));
    Ok(HostSample {
        cpus,
        memory_capacity,
        memory_available,
        storage_capacity: blocks.saturating_mul(frag),
        storage_available: blocks_available.saturating_mul(frag),
    })
}

/// Reads the machine's identity. Missing files leave fields empty (logged at
/// debug); this never fails.
pub fn system_info() -> SystemInfo {
    let machine_id = read_id(&["/etc/machine-id", "/var/lib/dbus/machine-id"]);
    let system_uuid = match read_id(&["/sys/class/dmi/id/product_uuid"]) {
        s if s.is_empty() => machine_id.clone(),
        s => s,
    };
    let kernel_version = match nix::sys::utsname::uname() {
        Ok(u) => u.release().to_string_lossy().into_owned(),
        Err(e) => {
            tracing::debug!(error = %e, "uname failed");
            String::new()
        }
    };
    let os_image = ["/etc/os-release", "/usr/lib/os-release"]
        .into_iter()
        .find_map(|p| parse::os_release_pretty_name(&fs::read_to_string(p).ok()?))
        .unwrap_or_else(|| "Linux".to_owned());
    SystemInfo {
        machine_id,
        system_uuid,
        boot_id: read_id(&["/proc/sys/kernel/random/boot_id"]),
        kernel_version,
        os_image,
    }
}

fn read_id(paths: &[&str]) -> String {
    for path in paths {
        match fs::read_to_string(path) {
            Ok(s) => {
                if let Some(id) = parse::id(&s) {
                    return id;
                }
            }
            Err(e) => tracing::debug!(path, error = %e, "cannot read identifier file"),
        }
    }
    String::new()
}

#[derive(Debug, Default)]
struct CgroupMemory {
    limit: Option<u64>,
    headroom: Option<u64>,
}

/// The tightest memory limit over this process's cgroup and its ancestors, and
/// the headroom below it; cgroup v2 (`memory.max`) and v1
/// (`memory.limit_in_bytes`) are both looked at.
fn cgroup_memory() -> CgroupMemory {
    let mut out = CgroupMemory::default();
    let Ok(content) = fs::read_to_string(SELF_CGROUP) else {
        return out;
    };
    let hierarchies = [
        (true, "/sys/fs/cgroup", "memory.max", "memory.current"),
        (false, "/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes"),
    ];
    for (v2, mount, max_file, usage_file) in hierarchies {
        let Some(path) = parse::cgroup_path(&content, v2) else {
            continue;
        };
        for dir in parse::cgroup_ancestry(path) {
            let dir = Path::new(mount).join(dir);
            let read = |f: &str| parse::limit(&fs::read_to_string(dir.join(f)).ok()?);
            let Some(max) = read(max_file) else {
                continue;
            };
            out.limit = Some(out.limit.map_or(max, |l| l.min(max)));
            if let Some(used) = read(usage_file) {
                let room = max.saturating_sub(used);
                out.headroom = Some(out.headroom.map_or(room, |h| h.min(room)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_this_host() {
        let dir = tempfile::tempdir().unwrap();
        let s = measure(dir.path()).unwrap();
        assert_eq!(s.cpus as usize, std::thread::available_parallelism().unwrap().get());
        assert!(s.memory_capacity > 0 && s.memory_available <= s.memory_capacity);
        assert!(s.storage_capacity > 0 && s.storage_available <= s.storage_capacity);
    }

    #[test]
    fn missing_root_dir_is_an_error() {
        let err = measure(Path::new("/no/such/dir/for/wasmlet")).unwrap_err();
        assert!(matches!(err, Error::Statvfs { .. }), "{err}");
    }

    #[test]
    fn system_info_has_a_kernel_and_boot_id() {
        let info = system_info();
        assert!(!info.kernel_version.is_empty());
        assert!(!info.boot_id.is_empty());
        assert!(!info.os_image.is_empty());
    }
}
