//! Detached component processes: spawn with a log file and a pid file, probe, stop.
//!
//! Test-bed components outlive the command that started them (`cargo xtask
//! testbed up` returns while the cluster keeps running), so each one runs in its
//! own process group and is found again later through its pid file.

use std::fs::{self, File, OpenOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::{Error, Result};

/// How long a component gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A component process started by the test bed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Component {
    /// Short name used for the log and pid files (`etcd`, `kube-apiserver`, ...).
    pub name: String,
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

impl Component {
    /// Starts the component in its own process group, appending its stdout and
    /// stderr to `logs/<name>.log` and writing `pids/<name>.pid` under `dir`.
    pub fn spawn(&self, dir: &Path) -> Result<u32> {
        if !self.program.is_file() {
            return Err(Error::MissingBinary { path: self.program.clone() });
        }
        let log_path = log_path(dir, &self.name);
        let log = open_append(&log_path)?;
        let log2 = log.try_clone().map_err(|source| Error::Io { path: log_path.clone(), source })?;
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn { component: self.name.clone(), source })?;
        let pid = child.id();
        // The child is tracked through its pid file, not through `Child`: dropping
        // the handle neither kills nor waits for it.
        drop(child);
        record_pid(dir, &self.name, pid)?;
        // The command line, so that a fault harness restarts it exactly so.
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Io { path: command_path(dir, &self.name), source: std::io::Error::other(e) })?;
        write_file(&command_path(dir, &self.name), &json)?;
        Ok(pid)
    }

    /// The command line recorded when the component named `name` was last
    /// spawned under `dir`, if any.
    pub fn recorded(dir: &Path, name: &str) -> Option<Self> {
        let text = fs::read(command_path(dir, name)).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

fn command_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("commands").join(format!("{name}.json"))
}

/// Where a component's log goes.
pub fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("logs").join(format!("{name}.log"))
}

fn pid_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("pids").join(format!("{name}.pid"))
}

/// The pid recorded for a component, if its pid file exists.
pub fn recorded_pid(dir: &Path, name: &str) -> Option<u32> {
    fs::read_to_string(pid_path(dir, name)).ok()?.trim().parse().ok()
}

/// Names of every process with a pid file under `dir`.
pub fn recorded_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir.join("pids")) else {
        return Vec::new();
    };
    entries.flatten().filter_map(|e| e.file_name().to_str()?.strip_suffix(".pid").map(str::to_owned)).collect()
}

/// Records `pid` as process `name` of the test bed, so that `down` stops it.
pub fn record_pid(dir: &Path, name: &str, pid: u32) -> Result<()> {
    write_file(&pid_path(dir, name), pid.to_string().as_bytes())
}

/// Whether `pid` is a live process (a zombie counts as dead).
pub fn is_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    // Reap it if it is our own child that already exited.
    let _ = waitpid(Pid::from_raw(raw), Some(WaitPidFlag::WNOHANG));
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Stops the component recorded under `name`: SIGTERM to its process group,
/// SIGKILL after [`STOP_GRACE`], then removes the pid file. Missing or dead
/// processes are fine.
pub fn stop(dir: &Path, name: &str) -> Result<()> {
    let path = pid_path(dir, name);
    if let Some(pid) = recorded_pid(dir, name) {
        stop_pid(pid);
    }
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Io { path, source }),
    }
}

/// Sends `signal` to the process group of the component recorded under
/// `name` (to the process alone if it leads no group); returns its pid.
pub fn signal(dir: &Path, name: &str, signal: Signal) -> Result<u32> {
    let pid = recorded_pid(dir, name)
        .filter(|p| is_alive(*p))
        .ok_or_else(|| Error::NotAlive { component: name.to_owned() })?;
    let raw = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
    killpg(raw, signal).or_else(|_| kill(raw, signal)).map_err(|source| Error::Signal {
        component: name.to_owned(),
        signal: signal.as_str(),
        source,
    })?;
    Ok(pid)
}

/// Waits up to `timeout` for `pid` to exit; whether it did.
pub fn wait_exit(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while is_alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn stop_pid(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let pid = Pid::from_raw(raw);
    if !is_alive(raw as u32) {
        return;
    }
    // The component leads its own group, so this also reaches anything it forked.
    let _ = killpg(pid, Signal::SIGTERM).or_else(|_| kill(pid, Signal::SIGTERM));
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if !is_alive(raw as u32) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::warn!(pid = raw, "component ignored SIGTERM, killing it");
    let _ = killpg(pid, Signal::SIGKILL).or_else(|_| kill(pid, Signal::SIGKILL));
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline && is_alive(raw as u32) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `lines` lines of a component's log (empty if it has none).
pub fn log_tail(dir: &Path, name: &str, lines: usize) -> String {
    let text = fs::read_to_string(log_path(dir, name)).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn open_append(path: &Path) -> Result<File> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| Error::Io { path: parent.to_owned(), source })?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| Error::Io { path: path.to_owned(), source })
}

/// Writes a file, creating its parent directory.
pub(crate) fn write_file(path: &Path, contents: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| Error::Io { path: parent.to_owned(), source })?;
    }
    fs::write(path, contents).map_err(|source| Error::Io { path: path.to_owned(), source })
}

/// Ports on which something listens (IPv4 and IPv6 TCP), from `/proc/net`.
pub fn listening_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is "ADDR:PORT" in hex; state 0A is LISTEN.
            if fields.len() > 3
                && fields[3] == "0A"
                && let Some(port) = fields[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports
}
