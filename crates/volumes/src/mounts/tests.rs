use std::os::unix::fs::{MetadataExt, symlink};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};

use super::*;
use crate::sources::{Kind, Object, Snapshot, Sources};
use crate::volumes::{Config, Volumes};

struct Fixture {
    _tmp: tempfile::TempDir,
    pod_dir: PathBuf,
    host: PathBuf,
    volumes: PodVolumes,
}

/// A pod with an emptyDir `data`, a hostPath dir `host`, a hostPath file
/// `hostfile` and a configMap `cfg`.
async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let pod_dir = tmp.path().join("pod");
    let host = tmp.path().join("host");
    fs::create_dir_all(&pod_dir).unwrap();
    fs::create_dir_all(host.join("sub")).unwrap();
    fs::write(host.join("sub/f.txt"), "host file").unwrap();
    fs::write(tmp.path().join("single.conf"), "single").unwrap();
    let sources = Sources::offline();
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "cfg", "resourceVersion": "1"},
        "data": {"app.yaml": "a: 1", "other": "o"}
    }))
    .unwrap();
    sources.publish(Kind::ConfigMap, "ns", "cfg", Snapshot::Present(Object::ConfigMap(Arc::new(cm))));
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
        "spec": {"containers": [], "volumes": [
            {"name": "data", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": host.to_str().unwrap(), "type": "Directory"}},
            {"name": "hostfile", "hostPath": {"path": tmp.path().join("single.conf").to_str().unwrap(), "type": "File"}},
            {"name": "cfg", "configMap": {"name": "cfg", "items": [
                {"key": "app.yaml", "path": "app.yaml"}, {"key": "other", "path": "dir/other"}
            ]}}
        ]}
    }))
    .unwrap();
    let volumes = Volumes::new(sources, Config::default()).prepare(&pod, &pod_dir).await.unwrap();
    Fixture { _tmp: tmp, pod_dir, host, volumes }
}

fn container(mounts: serde_json::Value) -> Container {
    serde_json::from_value(serde_json::json!({"name": "c", "volumeMounts": mounts})).unwrap()
}

fn mounts(f: &Fixture, v: serde_json::Value) -> Result<Vec<Mount>, MountError> {
    f.volumes.mounts(&container(v), &[("SUB".into(), "sub".into()), ("EMPTY".into(), String::new())])
}

fn find<'a>(mounts: &'a [Mount], guest: &str) -> &'a Mount {
    mounts.iter().find(|m| m.guest == guest).unwrap_or_else(|| panic!("no mount at {guest}: {mounts:?}"))
}

#[tokio::test]
async fn whole_volumes_read_only_and_repeated() {
    let f = fixture().await;
    let m = mounts(
        &f,
        serde_json::json!([
            {"name": "data", "mountPath": "/data"},
            {"name": "data", "mountPath": "/also/data/", "readOnly": true},
            {"name": "host", "mountPath": "/host"},
            {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": false}
        ]),
    )
    .unwrap();
    assert_eq!(m.len(), 4);
    let data = f.pod_dir.join("volumes/data");
    assert_eq!(find(&m, "/data"), &Mount { host: data.clone(), guest: "/data".into(), read_only: false });
    assert_eq!(find(&m, "/also/data"), &Mount { host: data, guest: "/also/data".into(), read_only: true });
    assert_eq!(find(&m, "/host").host, f.host);
    assert!(find(&m, "/etc/cfg").read_only, "configMap volumes are always read-only");
    assert_eq!(fs::read_to_string(find(&m, "/etc/cfg").host.join("app.yaml")).unwrap(), "a: 1");
}

#[tokio::test]
async fn sub_paths_resolve_inside_the_volume() {
    let f = fixture().await;
    let m = mounts(
        &f,
        serde_json::json!([
            {"name": "host", "mountPath": "/a", "subPath": "sub"},
            {"name": "host", "mountPath": "/b", "subPathExpr": "$(SUB)"},
            {"name": "data", "mountPath": "/c", "subPath": "new/dir"}
        ]),
    )
    .unwrap();
    let real = |g| fs::canonicalize(&find(&m, g).host).unwrap();
    assert!(find(&m, "/a").host.starts_with("/proc/self/fd/"), "mounted by handle");
    assert_eq!(real("/a"), fs::canonicalize(f.host.join("sub")).unwrap());
    assert_eq!(real("/b"), fs::canonicalize(f.host.join("sub")).unwrap());
    assert!(f.pod_dir.join("volumes/data/new/dir").is_dir(), "a missing subPath is created");
    assert_eq!(real("/c"), fs::canonicalize(f.pod_dir.join("volumes/data/new/dir")).unwrap());
}

#[tokio::test]
async fn sub_path_escapes_are_refused() {
    let f = fixture().await;
    let data = f.pod_dir.join("volumes/data");
    symlink("/", data.join("root")).unwrap();
    symlink("../../..", data.join("up")).unwrap();
    symlink(data.join("inside"), data.join("absolute-inside")).unwrap();
    fs::create_dir(data.join("inside")).unwrap();
    symlink("inside", data.join("relative-inside")).unwrap();
    fs::create_dir(data.join("d")).unwrap();
    symlink("../../../..", data.join("d/deep-up")).unwrap();
    let one = |sub: &str| mounts(&f, serde_json::json!([{"name": "data", "mountPath": "/x", "subPath": sub}]));
    for sub in ["root", "root/etc", "up", "up/pod", "absolute-inside", "d/deep-up", "d/deep-up/x"] {
        match one(sub) {
            Err(MountError::Escape { .. }) => {}
            other => panic!("{sub}: {other:?}"),
        }
    }
    let msg = one("root").unwrap_err().to_string();
    assert_eq!(
        msg,
        format!(
            "subpath {:?} not within volume path {:?}",
            data.join("root").display().to_string(),
            data.display().to_string()
        )
    );
    assert!(matches!(one("../x"), Err(MountError::Backsteps(_))));
    assert!(matches!(one("a/../../x"), Err(MountError::Backsteps(_))));
    assert_eq!(one("/etc").unwrap_err().to_string(), "error SubPath `/etc` must not be an absolute path");
    assert!(one("relative-inside").is_ok(), "symlinks that stay inside are followed");
    assert!(!Path::new("/etc/new").exists());
    let expr = mounts(&f, serde_json::json!([{"name": "data", "mountPath": "/x", "subPathExpr": "$(NOPE)/$(EMPTY)"}]));
    assert_eq!(expr.unwrap_err().to_string(), "missing value for EMPTY, NOPE");
}

#[tokio::test]
async fn file_sub_paths_are_staged_per_parent() {
    let f = fixture().await;
    let m = mounts(
        &f,
        serde_json::json!([
            {"name": "host", "mountPath": "/etc/app/f.txt", "subPath": "sub/f.txt"},
            {"name": "hostfile", "mountPath": "/etc/app/single.conf", "readOnly": true}
        ]),
    );
    let err = m.unwrap_err().to_string();
    assert!(err.contains("readOnly"), "mixed readOnly in /etc/app is refused: {err}");
    let m = mounts(
        &f,
        serde_json::json!([
            {"name": "host", "mountPath": "/etc/app/f.txt", "subPath": "sub/f.txt"},
            {"name": "hostfile", "mountPath": "/etc/app/single.conf", "readOnly": false},
            {"name": "cfg", "mountPath": "/etc/other/app.yaml", "subPath": "app.yaml"},
            {"name": "cfg", "mountPath": "/etc/dir", "subPath": "dir"}
        ]),
    )
    .unwrap();
    assert_eq!(m.len(), 3, "{m:?}");
    let app = find(&m, "/etc/app");
    assert!(!app.read_only);
    assert_eq!(fs::read_to_string(app.host.join("f.txt")).unwrap(), "host file");
    assert_eq!(fs::read_to_string(app.host.join("single.conf")).unwrap(), "single");
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    assert_eq!(ino(&app.host.join("f.txt")), ino(&f.host.join("sub/f.txt")), "a hard link");
    let other = find(&m, "/etc/other");
    assert!(other.read_only);
    assert_eq!(fs::read_to_string(other.host.join("app.yaml")).unwrap(), "a: 1");
    assert!(!fs::symlink_metadata(other.host.join("app.yaml")).unwrap().file_type().is_symlink(), "a copy");
    let dir = find(&m, "/etc/dir");
    assert_eq!(fs::read_to_string(dir.host.join("other")).unwrap(), "o");
    // Staging is redone at each start.
    let again = mounts(&f, serde_json::json!([{"name": "data", "mountPath": "/d"}])).unwrap();
    assert_eq!(again.len(), 1);
    assert!(!app.host.exists(), "the previous staging is gone");
}

#[tokio::test]
async fn conflicts_and_unmountable_files() {
    let f = fixture().await;
    let m = mounts(
        &f,
        serde_json::json!([
            {"name": "data", "mountPath": "/etc/app"},
            {"name": "host", "mountPath": "/etc/app/f.txt", "subPath": "sub/f.txt"}
        ]),
    );
    assert!(matches!(m, Err(MountError::Conflict { .. })), "{m:?}");
    let sock = f.host.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let m = mounts(&f, serde_json::json!([{"name": "host", "mountPath": "/run/s", "subPath": "sock"}]));
    assert!(matches!(m, Err(MountError::NotMountable { .. })), "{m:?}");
    let m = mounts(&f, serde_json::json!([{"name": "nope", "mountPath": "/x"}]));
    assert!(matches!(m, Err(MountError::UnknownVolume { .. })), "{m:?}");
    let m = mounts(&f, serde_json::json!([{"name": "data", "mountPath": "relative"}]));
    assert!(matches!(m, Err(MountError::MountPath(_))), "{m:?}");
}

#[test]
fn guest_paths() {
    assert_eq!(guest_path("/a/b/").unwrap(), "/a/b");
    assert_eq!(guest_path("/a/./b").unwrap(), "/a/b");
    assert!(guest_path("/a/../b").is_err());
    assert_eq!(split_guest("/etc/x.conf", "").unwrap(), ("/etc".into(), "x.conf".into()));
    assert_eq!(split_guest("/x", "").unwrap(), ("/".into(), "x".into()));
}
