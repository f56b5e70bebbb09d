//! A full disk (`docs/reliability.md`): the node's root directory is a
//! tmpfs of its own, filled to the last byte while a guest runs. The guest
//! keeps running; its log stops growing and resumes when space returns; a
//! pull fails clearly and succeeds once space is back; afterwards the image
//! store is clean, and after an agent restart (which reads the checkpoints)
//! the pods come back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Api;
use kube::api::ListParams;
use wasmlet_oci::{ClientOptions, Layout, NODE_STORE_DIR, RegistryAuth, Store};
use wasmlet_testkit::node::{Options, node_ready};
use wasmlet_testkit::pods::{self, POD_TIMEOUT};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image, fixtures_dir, testbed};

/// The tmpfs: the store keeps 512 MiB free before it writes a layer
/// (`PullLimits::min_free_disk_bytes`), so a pull needs a little more.
const TMPFS_SIZE: &str = "600m";
/// How long the log must stay the same to count as "stopped growing".
const QUIET: Duration = Duration::from_secs(2);

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("running mount");
        assert!(out.status.success(), "mount tmpfs: {}", String::from_utf8_lossy(&out.stderr));
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the filesystem is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5a; 1 << 20];
    let mut written = 0;
    loop {
        match file.write(&chunk) {
            Ok(0) => return written,
            Ok(n) => written += n as u64,
            Err(e) if e.raw_os_error() == Some(28) => return written, // ENOSPC
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}

/// Pod `uid`'s log file of container `main` (run 0).
fn log_file(root: &Path, uid: &str) -> Option<PathBuf> {
    let mut todo = vec![root.join("pods").join(uid)];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.ends_with("main/0.log") {
                return Some(path);
            }
        }
    }
    None
}

/// The highest `tick N` in a log file.
fn last_tick(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().filter_map(|l| l.rsplit_once("tick ")).filter_map(|(_, n)| n.trim().parse().ok()).max()
}

/// Polls `f` every 500 ms until it returns `Some`, or panics after 30 s.
async fn until_async<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    loop {
        poll.tick().await;
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or panics after `timeout`.
async fn until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        poll.tick().await;
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

#[tokio::test]
async fn a_full_disk_loses_nothing_and_recovers() {
    let tb = testbed().await;
    let work = tempfile::Builder::new().prefix("wasmlet-fulldisk-").tempdir().unwrap();
    let root = work.path().join("root");
    let _tmpfs = Tmpfs::mount(&root);

    // An image of its own for the pull made while the disk is full.
    let forever = std::fs::read(fixtures_dir().join("forever.wasm")).unwrap();
    let late_wasm = [forever.as_slice(), &[0, 16, 9], b"full-disk", b"late!!"].concat();
    let push =
        wasmlet_oci::client(ClientOptions { insecure_registries: vec![tb.registry()], ..Default::default() }).unwrap();
    let late_image = format!("{}/faults-disk/forever-late:v1", tb.registry());
    wasmlet_oci::push_wasm(&push, &late_image.parse().unwrap(), late_wasm, Layout::Cncf, &RegistryAuth::Anonymous)
        .await
        .unwrap();

    // No disk eviction threshold: the test is about what survives a full
    // disk, not about evicting pods to avoid it.
    let options = Options {
        root_dir: Some(root.clone()),
        env: vec![("WASMLET_EVICTION_HARD".into(), "memory.available<100Mi".into())],
        ..Options::default()
    };
    let mut node = WasmletNode::start_with_options(env!("CARGO_BIN_EXE_wasmlet"), "fulldisk", options).await;
    let client = admin_client().await;
    let ns = Namespace::create(&client, "faults-disk").await;
    let api = ns.api::<Pod>();
    let log = || node.log_tail(80);

    let mut ticker = pods::bare("ticker", &node.name, &fixture_image("forever").await, &[], "Always");
    ticker["spec"]["containers"][0]["env"] = serde_json::json!([{ "name": "TICK_MS", "value": "100" }]);
    pods::create(&ns, ticker).await;
    let running = pods::wait_for(&api, "ticker", POD_TIMEOUT, log, |p| pods::running(p, "main")).await;
    let uid = running.metadata.uid.clone().unwrap();
    let log_path = until("the ticker's log", Duration::from_secs(10), || log_file(&root, &uid)).await;
    until("ticks in the log", Duration::from_secs(10), || last_tick(&log_path)).await;

    // Fill the disk.
    let filler = root.join("filler");
    let filled = fill(&filler);
    eprintln!("filled the root dir with {} MiB", filled >> 20);

    // The log stops growing (output is dropped, not queued without bound).
    let mut last = (last_tick(&log_path), Instant::now());
    let stopped_at = until("the log to stop growing", Duration::from_secs(20), || {
        let now = last_tick(&log_path);
        if now != last.0 {
            last = (now, Instant::now());
            return None;
        }
        (last.1.elapsed() >= QUIET).then_some(now)
    })
    .await;

    // A pull fails clearly. (`late` has no volume, so it gets as far as the
    // pull; `mounted` has its service-account token, whose files cannot be
    // written: FailedMount, as upstream.)
    let mut late = pods::bare("late", &node.name, &late_image, &[], "Always");
    late["spec"]["automountServiceAccountToken"] = false.into();
    pods::create(&ns, late).await;
    pods::create(&ns, pods::bare("mounted", &node.name, &fixture_image("forever").await, &[], "Always")).await;
    let pulled =
        pods::wait_for(&api, "late", POD_TIMEOUT, log, |p| pods::waiting_reason(p, "main") == Some("ImagePullBackOff"))
            .await;
    let message = pods::container(&pulled, "main").unwrap().state.clone().unwrap().waiting.unwrap().message.unwrap();
    eprintln!("late: {message}");
    assert!(message.contains("not enough disk space for layer sha256:"), "{message}");
    let events: Api<Event> = ns.api();
    let mount_failed = until_async("a FailedMount event for mounted", || async {
        let list = events.list(&ListParams::default().fields("involvedObject.name=mounted")).await.ok()?;
        list.items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("FailedMount"))
            .filter_map(|e| e.message)
            .find(|m| m.contains("No space left on device"))
    })
    .await;
    eprintln!("mounted: {mount_failed}");

    // The guest ran on throughout.
    let p = api.get("ticker").await.unwrap();
    assert!(pods::running(&p, "main"), "{:?}", p.status);
    assert_eq!(pods::container(&p, "main").unwrap().restart_count, 0);

    // Space returns: the log resumes, the pull succeeds.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    until("the log to resume", Duration::from_secs(20), || {
        last_tick(&log_path).filter(|t| Some(*t) > stopped_at).map(|_| ())
    })
    .await;
    eprintln!("log resumed {:.1}s after space returned", freed.elapsed().as_secs_f64());
    for name in ["late", "mounted"] {
        pods::wait_for(&api, name, Duration::from_secs(45), log, |p| pods::running(p, "main")).await;
        eprintln!("{name} pod running {:.1}s after space returned", freed.elapsed().as_secs_f64());
    }

    // Nothing in the store is corrupt.
    let store = Store::open(root.join(NODE_STORE_DIR)).unwrap();
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.good.len(), 2, "{report}");

    // The checkpoints written around the full disk read back: after an agent
    // restart (SIGTERM) both pods run again, each showing the restart.
    node.stop();
    node.restart().await;
    for name in ["ticker", "late", "mounted"] {
        pods::wait_for(
            &api,
            name,
            POD_TIMEOUT,
            || node.log_tail(80),
            |p| pods::running(p, "main") && pods::container(p, "main").is_some_and(|c| c.restart_count == 1),
        )
        .await;
    }
    let report = store.check().await.unwrap();
    assert!(report.is_clean(), "{report}");

    let nodes: Api<Node> = Api::all(client.clone());
    assert_eq!(node_ready(nodes.get(&node.name).await.ok().as_ref()), Some("True"));
}
