//! [`Watcher`]: the sockets in `plugins_registry`, each with its own task.
//!
//! The directory is watched with `notify` (inotify), but events only wake
//! the watcher: it then lists the directory tree and compares with what it
//! knows, so a missed, merged or reordered event changes nothing. A socket
//! is known by its path, inode and change time (a new socket often gets the
//! inode number of the one just removed): a plugin that restarts and binds its
//! socket again is deregistered, then registered anew.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::handler::{Handlers, Plugin};
use crate::{Config, register};

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The directory could not be created.
    #[error("cannot create the plugin directory {}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// inotify could not watch it.
    #[error("cannot watch the plugin directory {}", path.display())]
    Watch {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: notify::Error,
    },
}

/// A socket file's identity: inode number and change time (seconds,
/// nanoseconds).
type Identity = (u64, i64, i64);

/// A socket as listed: path and identity.
type SocketId = (PathBuf, Identity);

/// The task of one socket.
struct Entry {
    inode: Identity,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// Watches a `plugins_registry` directory and registers the plugins whose
/// sockets appear there with the handler of their type.
pub struct Watcher {
    config: Config,
    handlers: Handlers,
    scans: Arc<AtomicU64>,
}

impl Watcher {
    /// A watcher of `config.dir` using `handlers`.
    pub fn new(config: Config, handlers: Handlers) -> Self {
        Self { config, handlers, scans: Arc::default() }
    }

    /// How many times the directory has been listed so far (one per wake-up
    /// or rescan), shared with the running watcher.
    pub fn scans(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.scans)
    }

    /// Creates the directory and starts watching it; then runs until
    /// `cancel`, registering and deregistering plugins as their sockets come
    /// and go. On return every plugin task has ended (registered plugins are
    /// left registered: the agent is stopping, not the plugins).
    ///
    /// # Errors
    ///
    /// The directory cannot be created or watched.
    pub async fn run(self, cancel: CancellationToken) -> Result<(), WatchError> {
        let dir = self.config.dir.clone();
        fs::create_dir_all(&dir).map_err(|source| WatchError::CreateDir { path: dir.clone(), source })?;
        let wake = Arc::new(Notify::new());
        let waker = wake.clone();
        let mut inotify = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if event.as_ref().map_or(true, |e| wakes(&e.kind)) {
                waker.notify_one();
            }
        })
        .map_err(|source| WatchError::Watch { path: dir.clone(), source })?;
        inotify
            .watch(&dir, RecursiveMode::Recursive)
            .map_err(|source| WatchError::Watch { path: dir.clone(), source })?;
        tracing::info!(dir = %dir.display(), kinds = ?self.handlers, "plugin watcher started");

        let tracker = TaskTracker::new();
        let mut entries: HashMap<PathBuf, Entry> = HashMap::new();
        let mut retiring: HashMap<PathBuf, JoinHandle<()>> = HashMap::new();
        loop {
            self.sync(&mut entries, &mut retiring, &tracker, &cancel);
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(self.config.rescan) => {}
                () = cancel.cancelled() => break,
            }
        }
        drop(inotify);
        tracker.close();
        tracker.wait().await;
        Ok(())
    }

    /// Starts tasks for new sockets and stops those of vanished ones.
    fn sync(
        &self,
        entries: &mut HashMap<PathBuf, Entry>,
        retiring: &mut HashMap<PathBuf, JoinHandle<()>>,
        tracker: &TaskTracker,
        cancel: &CancellationToken,
    ) {
        self.scans.fetch_add(1, Ordering::Relaxed);
        let listed: HashMap<PathBuf, Identity> = list_sockets(&self.config.dir).into_iter().collect();
        let gone: Vec<PathBuf> =
            entries.iter().filter(|(path, e)| listed.get(*path) != Some(&e.inode)).map(|(p, _)| p.clone()).collect();
        // Tasks of removed sockets deregister on their own; a new socket at
        // the same path (seen in this scan or a later one) waits for that.
        let previous = retiring;
        previous.retain(|_, task| !task.is_finished());
        for path in gone {
            if let Some(entry) = entries.remove(&path) {
                tracing::info!(plugin.socket = %path.display(), "plugin socket removed or replaced");
                entry.cancel.cancel();
                previous.insert(path, entry.task);
            }
        }
        for (path, inode) in listed {
            if entries.contains_key(&path) {
                continue;
            }
            let token = cancel.child_token();
            let before = previous.remove(&path);
            let span = tracing::info_span!("plugin", plugin.socket = %path.display());
            let run = socket_task(
                path.clone(),
                before,
                self.handlers.clone(),
                self.config.clone(),
                token.clone(),
                cancel.clone(),
            );
            let task = tracker.spawn(run.instrument(span));
            entries.insert(path, Entry { inode, cancel: token, task });
        }
    }
}

/// One socket's life: wait for its predecessor at the same path, register
/// (retrying with back-off while the socket exists), then on cancellation
/// deregister — unless the whole watcher is `stopping`.
async fn socket_task(
    socket: PathBuf,
    before: Option<JoinHandle<()>>,
    handlers: Handlers,
    config: Config,
    cancel: CancellationToken,
    stopping: CancellationToken,
) {
    if let Some(task) = before {
        let _ = task.await;
    }
    let mut delays = config.retry.delays();
    let plugin: Plugin = loop {
        // Not raced with `cancel`: an attempt dropped after the handler
        // registered the plugin would leave it registered for ever. Each step
        // of an attempt is bounded by its timeout; a plugin registered just
        // as its socket went is deregistered below.
        let attempt = register::register(&socket, &handlers, &config.timeouts).await;
        match attempt {
            Ok(plugin) => break plugin,
            Err(_) if cancel.is_cancelled() => return,
            Err(e) => {
                let delay = delays.next().unwrap_or(config.retry.max);
                tracing::warn!(error = %wasmlet_retry::Chain(&e), retry_in = ?delay, "plugin registration failed");
                if !wasmlet_retry::sleep(delay, &cancel).await {
                    return;
                }
            }
        }
    };
    tracing::info!(plugin.kind = %plugin.kind, plugin.name = %plugin.name, endpoint = %plugin.endpoint.display(), "plugin registered");
    cancel.cancelled().await;
    // The watcher itself stopping is not the plugin going away.
    if stopping.is_cancelled() {
        return;
    }
    if let Some(handler) = handlers.get(&plugin.kind) {
        handler.deregister(&plugin).await;
    }
    tracing::info!(plugin.kind = %plugin.kind, plugin.name = %plugin.name, "plugin deregistered");
}

/// Whether an inotify event may mean a socket came or went. Access events
/// (open, read, close) do not: listing the directory makes them, so waking
/// on them would list it again at once, for ever (a busy agent with no
/// plugin at all).
pub(crate) fn wakes(kind: &notify::EventKind) -> bool {
    !matches!(kind, notify::EventKind::Access(_))
}

/// Every socket under `dir` (recursively), skipping names that start with
/// `.`, with its identity.
pub(crate) fn list_sockets(dir: &Path) -> Vec<SocketId> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        let Ok(read) = fs::read_dir(&d) else { continue };
        for entry in read.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(entry.path()) else { continue };
            if meta.is_dir() {
                dirs.push(entry.path());
            } else if meta.file_type().is_socket() {
                out.push((entry.path(), (meta.ino(), meta.ctime(), meta.ctime_nsec())));
            }
        }
    }
    out
}
