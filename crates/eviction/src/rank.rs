//! The order pods are evicted in, as upstream's `rankMemoryPressure` and
//! `rankDiskPressureFunc`: pods whose usage exceeds their request first,
//! then lower priority first, then the larger usage above the request first.

use std::cmp::Reverse;

use crate::observe::{Disk, PodStats};
use crate::pod;
use crate::signal::{Resource, Signal};

/// Sorts `pods` so the first is the one to evict for `signal`.
/// `dedicated_image_fs`: the image store has a filesystem of its own, so
/// `imagefs` pressure is not the pods' logs and volumes (upstream then ranks
/// by the writable layers, which wasm guests do not have: priority decides).
pub fn rank(pods: &mut [PodStats], signal: Signal, dedicated_image_fs: bool) {
    let resource = signal.resource();
    let measure = |p: &PodStats| -> (i64, i64) {
        let disk = |f: fn(Disk) -> u64| {
            let image_only =
                dedicated_image_fs && matches!(signal, Signal::ImageFsAvailable | Signal::ImageFsInodesFree);
            if image_only { 0 } else { to_i64(f(p.disk())) }
        };
        match resource {
            Resource::Memory => (to_i64(p.memory()), pod::request(&p.pod, "memory")),
            Resource::EphemeralStorage => (disk(|d| d.bytes), pod::request(&p.pod, "ephemeral-storage")),
            Resource::Inodes => (disk(|d| d.inodes), 0),
            Resource::Pids => (0, 0),
        }
    };
    pods.sort_by_cached_key(|p| {
        let (usage, request) = measure(p);
        (Reverse(usage > request), pod::priority(&p.pod), Reverse(usage.saturating_sub(request)))
    });
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
#[path = "rank_tests.rs"]
mod tests;
