//! [`Agent`]: a wasmlet process started with exactly the arguments and
//! environment a test gives (for TLS bootstrapping, trace logging, a second
//! test bed), recorded in a test bed so that `testbed down` stops it, and
//! killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running wasmlet process.
pub struct Agent {
    /// Its log (stdout and stderr).
    pub log: PathBuf,
    child: Option<Child>,
    testbed_dir: PathBuf,
    pid_name: String,
}

impl Agent {
    /// Starts `bin` with `args` and `env`, logging to `log`, recorded as
    /// `pid_name` in the test bed at `testbed_dir`.
    pub fn spawn(
        bin: &Path,
        args: &[String],
        env: &[(&str, &str)],
        log: PathBuf,
        testbed_dir: &Path,
        pid_name: &str,
    ) -> anyhow::Result<Agent> {
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let err = out.try_clone()?;
        let mut command = Command::new(bin);
        command.args(args).env_remove("WASMLET_LOG").env_remove("RUST_LOG");
        // As for WasmletNode: the build machine's disk is no test's subject.
        let eviction =
            std::env::var("WASMLET_EVICTION_HARD").unwrap_or_else(|_| crate::node::TEST_EVICTION_HARD.into());
        command.env("WASMLET_EVICTION_HARD", eviction);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.stdin(Stdio::null()).stdout(out).stderr(err).spawn()?;
        let _ = wasmlet_testbed::process::record_pid(testbed_dir, pid_name, child.id());
        Ok(Agent { log, child: Some(child), testbed_dir: testbed_dir.to_owned(), pid_name: pid_name.to_owned() })
    }

    /// The whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The process ID, while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        let child = self.child.as_mut()?;
        matches!(child.try_wait(), Ok(None)).then(|| child.id())
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
        let _ = wasmlet_testbed::process::stop(&self.testbed_dir, &self.pid_name);
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = wasmlet_testbed::process::stop(&self.testbed_dir, &self.pid_name);
    }
}

/// CPU time (user + system, every thread) process `pid` has used so far,
/// from `/proc/PID/stat` (in clock ticks of `USER_HZ`, 100 on Linux).
pub fn cpu_time(pid: u32) -> Option<std::time::Duration> {
    const USER_HZ: f64 = 100.0;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // utime and stime: the 12th and 13th fields after the parenthesised name.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(std::time::Duration::from_secs_f64(ticks as f64 / USER_HZ))
}

/// Fails if any of `secrets` occurs in `log` (each checked whole, and, for
/// PEM keys, line by line of the base64 body); returns how many bytes were
/// scanned.
pub fn assert_no_secrets(log: &str, secrets: &[(&str, String)]) -> usize {
    for (what, secret) in secrets {
        assert!(!secret.is_empty(), "empty secret {what}");
        let needles =
            std::iter::once(secret.as_str()).chain(secret.lines().filter(|l| l.len() >= 24 && !l.starts_with("-----")));
        for needle in needles {
            if let Some(at) = log.find(needle) {
                let start = log[..at].rfind('\n').map_or(0, |i| i + 1);
                let end = log[at..].find('\n').map_or(log.len(), |i| at + i);
                let line: String = log[start..end].replace(needle, "<REDACTED>").chars().take(600).collect();
                panic!("the log contains {what} (redacted here): {line}");
            }
        }
    }
    log.len()
}
