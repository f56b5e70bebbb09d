//! The system bus side: logind's `Manager` (the delay inhibitor lock, its
//! `InhibitDelayMaxUSec`, `PrepareForShutdown`) and, to make logind reread
//! its configuration, systemd's `KillUnit` — the calls upstream's kubelet
//! makes (`pkg/kubelet/nodeshutdown/systemd`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use zbus::OwnedFd;

/// How long one call on the bus may take (sd-bus's default).
pub const METHOD_TIMEOUT: Duration = Duration::from_secs(25);
/// The drop-in upstream writes into logind's configuration directory.
pub const DROP_IN: &str = "99-kubelet.conf";

/// What failed on the bus.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The system bus (`DBUS_SYSTEM_BUS_ADDRESS`, or
    /// `/var/run/dbus/system_bus_socket`) cannot be reached.
    #[error("connecting to the system bus")]
    Connect(#[source] zbus::Error),
    /// logind did not answer a call.
    #[error("calling logind ({call})")]
    Logind {
        /// The call.
        call: &'static str,
        /// Why.
        #[source]
        source: zbus::Error,
    },
    /// The drop-in raising `InhibitDelayMaxSec` could not be written.
    #[error("writing the logind drop-in {}", path.display())]
    DropIn {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// systemd did not make logind reload its configuration.
    #[error("asking systemd to reload logind's configuration")]
    Reload(#[source] zbus::Error),
}

#[zbus::proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1"
)]
pub(crate) trait Login {
    /// Takes an inhibitor lock; it holds while the returned fd is open.
    fn inhibit(&self, what: &str, who: &str, why: &str, mode: &str) -> zbus::Result<OwnedFd>;

    /// The longest a delay lock may hold up a shutdown, in microseconds.
    #[zbus(property(emits_changed_signal = "false"), name = "InhibitDelayMaxUSec")]
    fn inhibit_delay_max_usec(&self) -> zbus::Result<u64>;

    /// `true`: the machine is about to shut down; `false`: that was cancelled.
    #[zbus(signal)]
    fn prepare_for_shutdown(&self, start: bool) -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
pub(crate) trait Systemd {
    /// Sends `signal` to the processes of `unit` (`who`: main, control or all).
    fn kill_unit(&self, unit: &str, who: &str, signal: i32) -> zbus::Result<()>;
}

/// A connection to logind on the system bus.
pub(crate) struct Logind {
    pub(crate) login: LoginProxy<'static>,
    conn: zbus::Connection,
}

impl Logind {
    /// Connects to the bus at `address`, by default the system bus
    /// (honouring `DBUS_SYSTEM_BUS_ADDRESS`).
    pub(crate) async fn connect(address: Option<&str>) -> Result<Self, Error> {
        let builder = match address {
            Some(a) => zbus::connection::Builder::address(a),
            None => zbus::connection::Builder::system(),
        };
        let conn = builder.method_timeout(METHOD_TIMEOUT).build().await.map_err(Error::Connect)?;
        let login = LoginProxy::new(&conn).await.map_err(|source| Error::Logind { call: "proxy", source })?;
        Ok(Self { login, conn })
    }

    /// logind's `InhibitDelayMaxUSec`.
    pub(crate) async fn inhibit_delay(&self) -> Result<Duration, Error> {
        let usec = self
            .login
            .inhibit_delay_max_usec()
            .await
            .map_err(|source| Error::Logind { call: "InhibitDelayMaxUSec", source })?;
        Ok(Duration::from_micros(usec))
    }

    /// A `delay` lock on `shutdown`, held while the fd is open.
    pub(crate) async fn inhibit(&self, who: &str) -> Result<OwnedFd, Error> {
        let why = "Pods need time to stop before the node shuts down";
        self.login
            .inhibit("shutdown", who, why, "delay")
            .await
            .map_err(|source| Error::Logind { call: "Inhibit", source })
    }

    /// Upstream's override: a drop-in in `dir` setting `InhibitDelayMaxSec`
    /// to `delay`, then SIGHUP to `systemd-logind.service` through systemd.
    pub(crate) async fn raise_inhibit_delay(&self, dir: &Path, delay: Duration) -> Result<(), Error> {
        let path = dir.join(DROP_IN);
        let text = format!("# wasmlet's logind override\n[Login]\nInhibitDelayMaxSec={}\n", delay.as_secs());
        let written = tokio::fs::create_dir_all(dir).await;
        let written = match written {
            Ok(()) => tokio::fs::write(&path, text).await,
            Err(e) => Err(e),
        };
        written.map_err(|source| Error::DropIn { path: path.clone(), source })?;
        let systemd = SystemdProxy::new(&self.conn).await.map_err(Error::Reload)?;
        systemd.kill_unit("systemd-logind.service", "all", 1).await.map_err(Error::Reload)
    }
}
