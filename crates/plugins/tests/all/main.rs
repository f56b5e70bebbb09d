//! The plugin watcher against real tonic servers on Unix sockets in a temp
//! directory: good, slow, silent and garbage-speaking plugins side by side.

mod servers;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wasmlet_plugins::{BoxError, Config, Handler, Handlers, Plugin, Timeouts, Watcher};
use wasmlet_retry::Backoff;

use servers::{Behaviour, Server};

/// How long a test waits for something the watcher should do quickly.
const WAIT: Duration = Duration::from_secs(10);
const KIND: &str = "TestPlugin";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    Register(String),
    Deregister(String),
}

/// Records calls; refuses plugins whose name starts with "refuse".
struct Recorder {
    tx: mpsc::UnboundedSender<Call>,
}

#[async_trait::async_trait]
impl Handler for Recorder {
    fn validate(&self, plugin: &Plugin) -> Result<(), BoxError> {
        if plugin.name.starts_with("refuse") { Err("refused by the test handler".into()) } else { Ok(()) }
    }
    async fn register(&self, plugin: &Plugin) -> Result<(), BoxError> {
        let _ = self.tx.send(Call::Register(plugin.name.clone()));
        Ok(())
    }
    async fn deregister(&self, plugin: &Plugin) {
        let _ = self.tx.send(Call::Deregister(plugin.name.clone()));
    }
}

struct Bed {
    dir: tempfile::TempDir,
    calls: mpsc::UnboundedReceiver<Call>,
    cancel: CancellationToken,
    watcher: tokio::task::JoinHandle<()>,
}

impl Bed {
    fn registry(&self) -> std::path::PathBuf {
        self.dir.path().join("plugins_registry")
    }

    async fn next_call(&mut self) -> Call {
        tokio::time::timeout(WAIT, self.calls.recv()).await.expect("a handler call in time").expect("watcher alive")
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(WAIT, self.watcher).await.expect("watcher stops").expect("watcher task");
    }
}

fn config(root: &Path) -> Config {
    let mut c = Config::new(root);
    c.timeouts = Timeouts {
        dial: Duration::from_millis(500),
        get_info: Duration::from_millis(300),
        notify: Duration::from_millis(300),
    };
    c.retry = Backoff { min: Duration::from_millis(100), max: Duration::from_millis(400) };
    c
}

fn start(dir: tempfile::TempDir) -> Bed {
    let (tx, calls) = mpsc::unbounded_channel();
    let handlers = Handlers::new().with(KIND, Arc::new(Recorder { tx }));
    let cancel = CancellationToken::new();
    let watcher = Watcher::new(config(dir.path()), handlers);
    let run = watcher.run(cancel.clone());
    let watcher = tokio::spawn(async move { run.await.expect("watcher runs") });
    Bed { dir, calls, cancel, watcher }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let ok = tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(ok.is_ok(), "timed out waiting for {what}");
}

#[tokio::test]
async fn good_plugin_registers_although_others_misbehave() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("plugins_registry");
    std::fs::create_dir_all(&reg).unwrap();
    // Misbehaving plugins first, already there when the watcher starts.
    let slow = Server::start(&reg.join("slow.sock"), Behaviour::Slow(Duration::from_secs(60)), KIND, "slow");
    let silent = servers::silent(&reg.join("silent.sock"));
    let garbage = servers::garbage(&reg.join("garbage.sock"));
    let good = Server::start(&reg.join("good.sock"), Behaviour::Answer, KIND, "good");
    let mut bed = start(dir);

    assert_eq!(bed.next_call().await, Call::Register("good".into()));
    wait_for("the good plugin to hear it registered", || good.statuses() == vec![(true, String::new())]).await;
    // The slow one was asked, and keeps being retried, never registered.
    wait_for("the slow plugin to be asked twice", || slow.info_calls() >= 2).await;
    assert!(bed.calls.try_recv().is_err(), "only the good plugin registers");
    assert!(slow.statuses().is_empty(), "a plugin whose GetInfo timed out is not notified");
    assert!(garbage.accepted() >= 1 && silent.accepted() >= 1, "every socket was dialled");

    // Removing the good plugin's socket deregisters it.
    std::fs::remove_file(good.socket()).unwrap();
    assert_eq!(bed.next_call().await, Call::Deregister("good".into()));
    bed.stop().await;
}

#[tokio::test]
async fn refused_plugins_are_told_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut bed = start(dir);
    let reg = bed.registry();
    wait_for("the registry directory", || reg.is_dir()).await;
    let unknown = Server::start(&reg.join("other.sock"), Behaviour::Answer, "NoSuchType", "other");
    let refused = Server::start(&reg.join("refused.sock"), Behaviour::Answer, KIND, "refuse-me");
    let nameless = Server::start(&reg.join("nameless.sock"), Behaviour::Answer, KIND, "");
    let relative = Server::start(&reg.join("rel.sock"), Behaviour::Endpoint("relative.sock".into()), KIND, "rel");

    wait_for("every refusal", || [&unknown, &refused, &nameless, &relative].iter().all(|s| !s.statuses().is_empty()))
        .await;
    let first = |s: &Server| s.statuses()[0].clone();
    assert_eq!(
        first(&unknown),
        (
            false,
            format!(
                "RegisterPlugin error -- no handler registered for plugin type: NoSuchType at socket {}",
                reg.join("other.sock").display()
            )
        )
    );
    assert_eq!(
        first(&refused),
        (false, "RegisterPlugin error -- plugin validation failed with err: refused by the test handler".into())
    );
    assert!(first(&nameless).1.contains("empty name"), "{:?}", first(&nameless));
    assert!(first(&relative).1.contains("not an absolute path"), "{:?}", first(&relative));
    // Refused plugins are retried with back-off while their socket exists.
    wait_for("a second refusal", || refused.statuses().len() >= 2).await;
    assert!(bed.calls.try_recv().is_err(), "nothing registered");
    bed.stop().await;
}

#[tokio::test]
async fn dot_names_are_ignored_and_subdirectories_watched() {
    let dir = tempfile::tempdir().unwrap();
    let mut bed = start(dir);
    let reg = bed.registry();
    wait_for("the registry directory", || reg.is_dir()).await;
    let hidden = Server::start(&reg.join(".hidden.sock"), Behaviour::Answer, KIND, "hidden");
    std::fs::create_dir(reg.join("sub")).unwrap();
    let nested = Server::start(&reg.join("sub/nested.sock"), Behaviour::Answer, KIND, "nested");
    assert_eq!(bed.next_call().await, Call::Register("nested".into()));
    assert_eq!(hidden.info_calls(), 0, "a socket whose name starts with '.' is never dialled");
    drop(nested);
    bed.stop().await;
}

#[tokio::test]
async fn a_replaced_socket_is_deregistered_then_registered_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut bed = start(dir);
    let reg = bed.registry();
    wait_for("the registry directory", || reg.is_dir()).await;
    let first = Server::start(&reg.join("p.sock"), Behaviour::Answer, KIND, "p");
    assert_eq!(bed.next_call().await, Call::Register("p".into()));
    // A restarted plugin removes its stale socket and binds a new one.
    let second = Server::start(&reg.join("p.sock"), Behaviour::Answer, KIND, "p");
    assert_eq!(bed.next_call().await, Call::Deregister("p".into()));
    assert_eq!(bed.next_call().await, Call::Register("p".into()));
    drop(first);
    wait_for("the new plugin to hear it registered", || second.statuses() == vec![(true, String::new())]).await;
    // Stopping the watcher leaves plugins registered.
    bed.cancel.cancel();
    tokio::time::timeout(WAIT, &mut bed.watcher).await.unwrap().unwrap();
    assert!(bed.calls.try_recv().is_err(), "stopping the watcher deregisters nothing");
}

/// Keeps servers' bookkeeping shared with the test.
pub(crate) type Shared<T> = Arc<Mutex<T>>;

/// With no plugin, the watcher lists the directory once at start and then
/// only on its rescan period: its own listing (inotify open/close events)
/// must not wake it again, which once kept an idle agent at ~70 % of a CPU.
#[tokio::test]
async fn an_idle_watcher_does_not_wake_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.rescan = Duration::from_secs(3600);
    let watcher = Watcher::new(c, Handlers::new().with(KIND, Arc::new(Recorder { tx: mpsc::unbounded_channel().0 })));
    let scans = watcher.scans();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(watcher.run(cancel.clone()));
    wait_for("the first scan", || scans.load(std::sync::atomic::Ordering::Relaxed) >= 1).await;
    // Real time: inotify events are real. A wake-up loop scans thousands of times.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = scans.load(std::sync::atomic::Ordering::Relaxed);
    assert!(idle <= 2, "{idle} scans in a second with nothing in the directory");
    // A new entry still wakes it.
    std::fs::create_dir(dir.path().join("plugins_registry").join("sub")).unwrap();
    wait_for("a scan after a change", || scans.load(std::sync::atomic::Ordering::Relaxed) > idle).await;
    cancel.cancel();
    task.await.unwrap().unwrap();
}
