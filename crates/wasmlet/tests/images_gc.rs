//! Images on the node: `status.images` lists what the store holds, and
//! image garbage collection follows upstream's policy — past the high
//! threshold, unused images go least recently used first, only until usage
//! is back under the low threshold, and an image in use never goes.
//!
//! The node's image store is a 600 MiB tmpfs of its own (a pull leaves 512
//! MiB free); a filler file takes it just past the high threshold once the
//! images are there. The images used once are made here: the `exit-code`
//! fixture with a 5 MiB custom section, different in each.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use wasmlet_testkit::node::Options;
use wasmlet_testkit::pods::{self, POD_TIMEOUT};
use wasmlet_testkit::{Namespace, WasmletNode, admin_client, fixture_image};

/// Size of the image store's filesystem.
const STORE_BYTES: u64 = 600 << 20;
/// Padding of each image used once.
const PAD_BYTES: usize = 5 << 20;

/// `wasm` with a custom section named `pad` of `len` bytes of `fill`.
fn padded(mut wasm: Vec<u8>, len: usize, fill: u8) -> Vec<u8> {
    let name = b"pad";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.resize(section.len() + len, fill);
    wasm.push(0); // custom section
    let mut size = section.len();
    loop {
        let byte = (size & 0x7f) as u8;
        size >>= 7;
        wasm.push(if size == 0 { byte } else { byte | 0x80 });
        if size == 0 {
            break;
        }
    }
    wasm.extend_from_slice(&section);
    wasm
}

/// Pushes `wasm` as `fixtures/gc-<tag>` to the test bed's registry.
async fn push(wasm: Vec<u8>, tag: &str) -> String {
    let tb = wasmlet_testkit::testbed().await;
    let reference = format!("{}/fixtures/gc:{tag}", tb.registry());
    let clients = wasmlet_testbed::fixtures::oci_clients(tb).unwrap();
    let auth = wasmlet_oci::RegistryAuth::Anonymous;
    let artifact = wasmlet_oci::Artifact::builder(wasm).layout(wasmlet_oci::Layout::Cncf).build().unwrap();
    artifact.push(&clients.get(&auth).unwrap(), &reference.parse().unwrap(), &auth).await.unwrap();
    reference
}

/// A tmpfs mounted at a path, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let size = format!("size={bytes}");
        let ok = Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(path).status().unwrap();
        assert!(ok.success(), "mounting a tmpfs at {} (needs root)", path.display());
        Tmpfs(path.to_owned())
    }

    /// (capacity, available) bytes.
    fn usage(&self) -> (u64, u64) {
        let out = Command::new("df").args(["-B1", "--output=size,avail"]).arg(&self.0).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let nums: Vec<u64> = text.lines().nth(1).unwrap().split_whitespace().map(|n| n.parse().unwrap()).collect();
        (nums[0], nums[1])
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Image GC passes so far, from the node's (debug) log.
fn passes(node: &WasmletNode) -> usize {
    node.log().matches("image GC pass").count()
}

/// Waits for two more passes: one that may have begun before, one after.
async fn two_passes(node: &WasmletNode) {
    let start = passes(node);
    let seen = tokio::time::timeout(Duration::from_secs(30), async {
        while passes(node) < start + 2 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(seen.is_ok(), "no image GC passes:\n{}", node.log_tail(30));
}

/// The node's log without the (many) GC pass lines.
fn log(node: &WasmletNode) -> String {
    let log = node.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains("image GC pass")).collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The image names in the Node's `status.images`.
async fn node_images(name: &str) -> Vec<String> {
    let node = Api::<Node>::all(admin_client().await).get(name).await.unwrap();
    let images = node.status.and_then(|s| s.images).unwrap_or_default();
    images.into_iter().flat_map(|i| i.names.unwrap_or_default()).collect()
}

#[tokio::test]
async fn status_lists_images_and_gc_takes_the_least_recently_used_down_to_the_low_threshold() {
    let root = tempfile::tempdir().unwrap();
    let store = Tmpfs::mount(&root.path().join("root/images"), STORE_BYTES);
    let args = [
        "--image-gc-high-threshold=50",
        "--image-gc-low-threshold=49",
        "--image-minimum-gc-age=0s",
        "--image-gc-period=1s",
    ];
    let options = Options {
        args: args.iter().map(|s| s.to_string()).collect(),
        root_dir: Some(root.path().join("root")),
        env: vec![("WASMLET_LOG".into(), "info,wasmlet_pods::gc=debug".into())],
        ..Options::default()
    };
    let node = WasmletNode::start_with_options(env!("CARGO_BIN_EXE_wasmlet"), "imagegc", options).await;
    let ns = Namespace::create(&admin_client().await, "imagegc").await;
    let api = ns.api::<Pod>();

    // An image in use throughout.
    let in_use = fixture_image("forever").await;
    pods::create(&ns, pods::bare("keep", &node.name, &in_use, &[], "Always")).await;
    pods::wait_for(&api, "keep", POD_TIMEOUT, || log(&node), |p| pods::running(p, "main")).await;
    // Four images used once each, oldest first, with GC passes in between so
    // that each was last used after the one before.
    let exit_code = std::fs::read(wasmlet_testkit::fixtures_dir().join("exit-code.wasm")).unwrap();
    let mut images = Vec::new();
    for i in 0..4u8 {
        let image = push(padded(exit_code.clone(), PAD_BYTES, i), &format!("{}-{i}", node.name)).await;
        let name = format!("once-{i}");
        pods::create(&ns, pods::bare(&name, &node.name, &image, &[], "Never")).await;
        pods::wait_for(&api, &name, POD_TIMEOUT, || log(&node), |p| pods::terminated(p, "main").is_some()).await;
        two_passes(&node).await;
        images.push(image);
    }

    // status.images names every image the store holds.
    let listed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let names = node_images(&node.name).await;
            if images.iter().chain([&in_use]).all(|i| names.contains(i)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    assert!(listed.is_ok(), "status.images: {:?}", node_images(&node.name).await);

    // Just past 50 % used: getting back to 49 % asks for 1 % (6 MiB) + 1 MiB,
    // which the two least recently used images (5 MiB each) cover and one
    // does not.
    let (capacity, available) = store.usage();
    let target_available = capacity / 2 - (1 << 20);
    let filler = available.saturating_sub(target_available);
    std::fs::write(root.path().join("root/images/filler"), vec![0u8; usize::try_from(filler).unwrap()]).unwrap();
    // The next pass collects; status.images follows within its period.
    let kept = |names: &[String]| images.iter().map(|i| names.contains(i)).collect::<Vec<bool>>();
    let settled = tokio::time::timeout(Duration::from_secs(45), async {
        loop {
            let names = node_images(&node.name).await;
            if kept(&names)[..2] == [false, false] {
                return names;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    let names = settled.unwrap_or_else(|_| panic!("nothing collected; node log:\n{}", log(&node)));
    assert_eq!(kept(&names), [false, false, true, true], "the two least recently used go, the rest stay: {names:?}");
    assert!(names.contains(&in_use), "the image in use stayed: {names:?}");
    let (capacity, available) = store.usage();
    assert!(available * 100 > capacity * 51, "usage back under the low threshold: {available} of {capacity} free");
}
