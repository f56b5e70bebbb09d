//! For tests: a private `dbus-daemon` ([`Bus`]) and a stand-in logind
//! ([`Logind`]) on it — `org.freedesktop.login1.Manager` with `Inhibit`
//! (a real fd: one end of a pipe, so the stand-in sees the lock released
//! when the other end closes), `InhibitDelayMaxUSec` and
//! `PrepareForShutdown`, plus systemd's `KillUnit`, which makes the stand-in
//! reread `InhibitDelayMaxSec` from the drop-ins of its configuration
//! directory, as logind does on SIGHUP.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use zbus::object_server::SignalEmitter;
use zbus::{OwnedFd, fdo, interface};

/// A private bus: `dbus-daemon` with a minimal configuration in a temporary
/// directory; stopped when dropped.
pub struct Bus {
    /// Its address, for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub address: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Bus {
    /// Starts `dbus-daemon` and waits until it listens (it prints its
    /// address once it does).
    pub fn start() -> std::io::Result<Bus> {
        let dir = tempfile::Builder::new().prefix("wasmlet-bus-").tempdir()?;
        let config = dir.path().join("bus.conf");
        let socket = dir.path().join("bus.sock");
        std::fs::write(&config, config_text(&socket))?;
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--nopidfile", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            std::io::BufReader::new(out).read_line(&mut line)?;
        }
        let address = line.trim().to_owned();
        if address.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::other("dbus-daemon printed no address"));
        }
        Ok(Bus { address, child, _dir: dir })
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_text(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

/// What the stand-in saw of inhibitor locks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locks {
    /// Locks taken so far (`who`, `mode`).
    pub taken: Vec<(String, String)>,
    /// Locks whose fd was closed so far.
    pub released: usize,
}

impl Locks {
    /// Locks held now.
    pub fn held(&self) -> usize {
        self.taken.len() - self.released
    }
}

struct Manager {
    delay: Arc<Mutex<Duration>>,
    locks: watch::Sender<Locks>,
}

#[interface(name = "org.freedesktop.login1.Manager")]
impl Manager {
    async fn inhibit(&self, what: &str, who: &str, _why: &str, mode: &str) -> fdo::Result<OwnedFd> {
        if what != "shutdown" || !matches!(mode, "delay" | "block") {
            return Err(fdo::Error::InvalidArgs(format!("stand-in: what={what} mode={mode}")));
        }
        let (mut reader, writer) = std::io::pipe().map_err(|e| fdo::Error::Failed(e.to_string()))?;
        self.locks.send_modify(|l| l.taken.push((who.to_owned(), mode.to_owned())));
        let locks = self.locks.clone();
        // EOF once every copy of the write end is closed: the lock is released.
        tokio::task::spawn_blocking(move || {
            let mut buf = [0u8; 64];
            while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
            locks.send_modify(|l| l.released += 1);
        });
        Ok(OwnedFd::from(std::os::fd::OwnedFd::from(writer)))
    }

    #[zbus(property, name = "InhibitDelayMaxUSec")]
    fn inhibit_delay_max_usec(&self) -> u64 {
        self.delay.lock().map(|d| d.as_micros() as u64).unwrap_or(0)
    }

    #[zbus(signal)]
    async fn prepare_for_shutdown(emitter: &SignalEmitter<'_>, start: bool) -> zbus::Result<()>;
}

struct Systemd {
    delay: Arc<Mutex<Duration>>,
    conf_dir: PathBuf,
}

#[interface(name = "org.freedesktop.systemd1.Manager")]
impl Systemd {
    fn kill_unit(&self, unit: &str, _who: &str, signal: i32) -> fdo::Result<()> {
        if unit != "systemd-logind.service" || signal != 1 {
            return Err(fdo::Error::NotSupported(format!("stand-in: {unit} signal {signal}")));
        }
        if let Some(secs) = read_delay(&self.conf_dir)
            && let Ok(mut d) = self.delay.lock()
        {
            *d = Duration::from_secs(secs);
        }
        Ok(())
    }
}

/// The last `InhibitDelayMaxSec=` of the drop-ins in `dir`, in name order.
fn read_delay(dir: &Path) -> Option<u64> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).collect();
    files.sort();
    let text: String = files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect::<Vec<_>>().join("\n");
    text.lines().rev().filter_map(|l| l.trim().strip_prefix("InhibitDelayMaxSec=")).find_map(|v| v.parse().ok())
}

/// A stand-in logind (and systemd's `KillUnit`) on a bus.
pub struct Logind {
    conn: zbus::Connection,
    locks: watch::Receiver<Locks>,
}

const PATH: &str = "/org/freedesktop/login1";

impl Logind {
    /// Serves logind at `address` with `InhibitDelayMaxUSec` = `delay`;
    /// `KillUnit` rereads it from the drop-ins in `conf_dir`.
    pub async fn start(address: &str, delay: Duration, conf_dir: &Path) -> zbus::Result<Logind> {
        let delay = Arc::new(Mutex::new(delay));
        let (tx, locks) = watch::channel(Locks::default());
        let conn = zbus::connection::Builder::address(address)
            .name("org.freedesktop.login1")
            .name("org.freedesktop.systemd1")
            .serve_at(PATH, Manager { delay: delay.clone(), locks: tx })
            .serve_at("/org/freedesktop/systemd1", Systemd { delay, conf_dir: conf_dir.to_owned() })
            .build()
            .await?;
        Ok(Logind { conn, locks })
    }

    /// Emits `PrepareForShutdown(start)`.
    pub async fn prepare_for_shutdown(&self, start: bool) -> zbus::Result<()> {
        let emitter = SignalEmitter::new(&self.conn, PATH)?;
        Manager::prepare_for_shutdown(&emitter, start).await
    }

    /// The locks as they change.
    pub fn locks(&self) -> watch::Receiver<Locks> {
        self.locks.clone()
    }

    /// Waits (at most `timeout`) until `f` holds for the locks; the last
    /// state either way.
    pub async fn wait_locks(&self, timeout: Duration, f: impl Fn(&Locks) -> bool) -> Result<Locks, Locks> {
        let mut rx = self.locks.clone();
        let found =
            tokio::time::timeout(timeout, rx.wait_for(|l| f(l))).await.ok().and_then(|r| r.ok()).map(|l| l.clone());
        found.ok_or_else(|| self.locks.borrow().clone())
    }
}
