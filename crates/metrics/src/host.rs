//! Host readers for the node's figures: `/proc` and `statvfs`, Linux only.
//!
//! [`node_sample`] is what a [`StatsSource`](crate::StatsSource) returns from
//! `node()`. The kubelet reports its node's root cgroup, the whole machine,
//! so the node figures are host-wide:
//!
//! | figure | source |
//! |---|---|
//! | `startTime` | boot time (`btime` in `/proc/stat`) |
//! | `cpu` | busy time of all CPUs in `/proc/stat` (`user + nice + system + irq + softirq`; guest time is inside `user`; idle, iowait and steal are not busy) |
//! | `memory` | `/proc/meminfo`: available = `MemAvailable`, working set = `MemTotal − MemAvailable`, usage = `MemTotal − MemFree`; page faults from `/proc/vmstat` |
//! | `fs`, `runtime.imageFs` | `statvfs` of the agent's root directory |
//! | `systemContainers[kubelet]` | the agent process: CPU (`utime + stime`, which includes every guest, since guests run on the agent's threads), working set and RSS = `VmRSS`, faults, from `/proc/self/{stat,status}` |
//!
//! Summing the guests and the agent process would count the guests twice:
//! the agent's CPU time already includes them. `/proc` times are in
//! `USER_HZ` ticks, which Linux fixes at 100 per second for user space.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::sample::{CpuSample, FsSample, MemorySample, NodeSample, ProcessSample};

/// Clock ticks per second in `/proc` times (Linux's `USER_HZ`).
const USER_HZ: u64 = 100;
const NANOS_PER_TICK: u64 = 1_000_000_000 / USER_HZ;

/// Why a host figure could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `/proc` file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A `/proc` file did not have the expected field.
    #[error("{} has no usable {field}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The field.
        field: &'static str,
    },
    /// `statvfs` failed.
    #[error("cannot statvfs {}", path.display())]
    Statvfs {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: nix::Error,
    },
}

/// The node's sample: host-wide figures, the agent process as the `kubelet`
/// system container, and the filesystem of `root_dir`. A figure that cannot
/// be read is left out (and logged at debug).
pub fn node_sample(name: &str, root_dir: &Path) -> NodeSample {
    let now = SystemTime::now();
    let start_time = ok(read("/proc/stat").and_then(|text| boot_time(&text))).unwrap_or(UNIX_EPOCH);
    let fs = ok(fs(root_dir, now));
    NodeSample {
        name: name.to_owned(),
        start_time,
        cpu: ok(read("/proc/stat").and_then(|text| host_cpu_nanos(&text)))
            .map(|usage_core_nanos| CpuSample { time: now, usage_core_nanos }),
        memory: ok(host_memory(now)),
        fs,
        image_fs: fs,
        agent: ok(agent(start_time, now)),
    }
}

fn ok<T>(result: Result<T, Error>) -> Option<T> {
    result.map_err(|error| tracing::debug!(error = %error, "host figure unavailable")).ok()
}

fn read(path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.into(), source })
}

fn parse_error(path: &str, field: &'static str) -> Error {
    Error::Parse { path: path.into(), field }
}

/// Boot time from `/proc/stat`'s `btime` line.
pub(crate) fn boot_time(stat: &str) -> Result<SystemTime, Error> {
    let secs = stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| parse_error("/proc/stat", "btime"))?;
    Ok(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Busy nanoseconds of all CPUs from `/proc/stat`'s `cpu` line.
pub(crate) fn host_cpu_nanos(stat: &str) -> Result<u64, Error> {
    let fields: Vec<u64> = stat
        .lines()
        .find_map(|line| line.strip_prefix("cpu "))
        .map(|rest| rest.split_whitespace().filter_map(|f| f.parse().ok()).collect())
        .ok_or_else(|| parse_error("/proc/stat", "cpu"))?;
    let [user, nice, system, _idle, _iowait, irq, softirq, ..] = fields[..] else {
        return Err(parse_error("/proc/stat", "cpu"));
    };
    Ok((user + nice + system + irq + softirq).saturating_mul(NANOS_PER_TICK))
}

/// A `key: value kB` (or plain number) field of `/proc/meminfo`-like text, in bytes.
pub(crate) fn kb_field(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.split(':').next() == Some(key))?;
    let value: u64 = line.split(':').nth(1)?.split_whitespace().next()?.parse().ok()?;
    Some(if line.trim_end().ends_with("kB") { value * 1024 } else { value })
}

/// A `key value` field of `/proc/vmstat`.
fn vmstat_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

fn host_memory(now: SystemTime) -> Result<MemorySample, Error> {
    let meminfo = read("/proc/meminfo")?;
    let field = |key| kb_field(&meminfo, key).ok_or_else(|| parse_error("/proc/meminfo", key));
    let (total, free, available) = (field("MemTotal")?, field("MemFree")?, field("MemAvailable")?);
    let vmstat = read("/proc/vmstat").unwrap_or_default();
    Ok(MemorySample {
        available_bytes: Some(available),
        usage_bytes: Some(total.saturating_sub(free)),
        working_set_bytes: Some(total.saturating_sub(available)),
        page_faults: vmstat_field(&vmstat, "pgfault"),
        major_page_faults: vmstat_field(&vmstat, "pgmajfault"),
        ..MemorySample::at(now)
    })
}

/// Fields of `/proc/self/stat` after the command name: (minflt, majflt,
/// utime + stime in ticks, starttime in ticks after boot).
pub(crate) fn process_stat(stat: &str) -> Result<(u64, u64, u64, u64), Error> {
    let fail = || parse_error("/proc/self/stat", "fields");
    // The command name may hold spaces and parentheses: split after the last `)`.
    let rest = &stat[stat.rfind(')').ok_or_else(fail)? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); field n is at index n - 3.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).ok_or_else(fail);
    Ok((field(10)?, field(12)?, field(14)? + field(15)?, field(22)?))
}

fn agent(boot: SystemTime, now: SystemTime) -> Result<ProcessSample, Error> {
    let (minflt, majflt, ticks, started) = process_stat(&read("/proc/self/stat")?)?;
    let status = read("/proc/self/status")?;
    let rss = kb_field(&status, "VmRSS").ok_or_else(|| parse_error("/proc/self/status", "VmRSS"))?;
    Ok(ProcessSample {
        start_time: boot + Duration::from_nanos(started.saturating_mul(NANOS_PER_TICK)),
        cpu: CpuSample { time: now, usage_core_nanos: ticks.saturating_mul(NANOS_PER_TICK) },
        memory: MemorySample {
            usage_bytes: Some(rss),
            working_set_bytes: Some(rss),
            rss_bytes: Some(rss),
            page_faults: Some(minflt + majflt),
            major_page_faults: Some(majflt),
            ..MemorySample::at(now)
        },
    })
}

/// The agent process's figures for Prometheus's `process_*` series.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcessFigures {
    pub(crate) cpu_seconds: f64,
    pub(crate) resident_bytes: u64,
    pub(crate) virtual_bytes: u64,
    pub(crate) open_fds: u64,
    pub(crate) max_fds: Option<u64>,
    pub(crate) start_time: SystemTime,
}

/// Reads [`ProcessFigures`] from `/proc/self`; `None` if `/proc` is not there.
pub(crate) fn process_figures() -> Option<ProcessFigures> {
    let (_, _, ticks, started) = process_stat(&read("/proc/self/stat").ok()?).ok()?;
    let status = read("/proc/self/status").ok()?;
    let boot = boot_time(&read("/proc/stat").ok()?).ok()?;
    let max_fds = read("/proc/self/limits").ok().and_then(|limits| {
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse().ok()
    });
    Some(ProcessFigures {
        cpu_seconds: Duration::from_nanos(ticks.saturating_mul(NANOS_PER_TICK)).as_secs_f64(),
        resident_bytes: kb_field(&status, "VmRSS")?,
        virtual_bytes: kb_field(&status, "VmSize")?,
        open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as u64,
        max_fds,
        start_time: boot + Duration::from_nanos(started.saturating_mul(NANOS_PER_TICK)),
    })
}

/// The filesystem holding `path`.
///
/// # Errors
///
/// [`Error::Statvfs`] when `statvfs` fails (e.g. `path` does not exist).
#[allow(clippy::useless_conversion, reason = "the statvfs counts are 32-bit on some targets")]
pub fn fs(path: &Path, now: SystemTime) -> Result<FsSample, Error> {
    let vfs = nix::sys::statvfs::statvfs(path).map_err(|source| Error::Statvfs { path: path.to_owned(), source })?;
    let frag = u64::from(vfs.fragment_size());
    let (blocks, free, avail) =
        (u64::from(vfs.blocks()), u64::from(vfs.blocks_free()), u64::from(vfs.blocks_available()));
    let (files, files_free) = (u64::from(vfs.files()), u64::from(vfs.files_free()));
    Ok(FsSample {
        time: now,
        available_bytes: Some(avail.saturating_mul(frag)),
        capacity_bytes: Some(blocks.saturating_mul(frag)),
        used_bytes: Some(blocks.saturating_sub(free).saturating_mul(frag)),
        inodes_free: Some(files_free),
        inodes: Some(files),
        inodes_used: Some(files.saturating_sub(files_free)),
    })
}

#[cfg(test)]
mod tests;
