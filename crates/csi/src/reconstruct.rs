//! Finding staged and published volumes again from disk after a restart
//! (upstream's volume reconstruction), from the `vol_data.json` files.

use std::fs;
use std::path::Path;

use crate::manager::{Published, Staged, State};
use crate::paths::{self, key};

/// The volumes on disk under `root`.
pub(crate) fn state(root: &Path) -> State {
    let mut state = State::default();
    // <root>/plugins/kubernetes.io/csi/<driver>/<sha>/{vol_data.json,globalmount}
    for driver_dir in dirs(&paths::staging_root(root)) {
        for volume_dir in dirs(&driver_dir) {
            let Ok(data) = paths::load_vol_data(&volume_dir) else { continue };
            let (Some(driver), Some(handle)) = (data.get(key::DRIVER_NAME), data.get(key::VOLUME_HANDLE)) else {
                continue;
            };
            let staging = volume_dir.join(paths::GLOBAL_MOUNT);
            tracing::info!(%driver, %handle, staging = %staging.display(), "found a staged CSI volume");
            state.staged.insert((driver.clone(), handle.clone()), Staged { staging, in_use: None });
        }
    }
    // <root>/pods/<uid>/volumes/kubernetes.io~csi/<spec>/{vol_data.json,mount}
    for pod_dir in dirs(&root.join("pods")) {
        let Some(uid) = pod_dir.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        for volume_dir in dirs(&paths::pod_dir(root, &uid)) {
            let Ok(data) = paths::load_vol_data(&volume_dir) else { continue };
            let (Some(spec_name), Some(driver), Some(handle)) =
                (data.get(key::SPEC_VOL_ID), data.get(key::DRIVER_NAME), data.get(key::VOLUME_HANDLE))
            else {
                continue;
            };
            let target = volume_dir.join(paths::MOUNT);
            tracing::info!(pod.uid = %uid, %driver, target = %target.display(), "found a published CSI volume");
            state.published.entry(uid.clone()).or_default().push(Published {
                spec_name: spec_name.clone(),
                volume: None,
                driver: driver.clone(),
                handle: handle.clone(),
                target,
                pvc: None,
            });
        }
    }
    state
}

fn dirs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(read) = fs::read_dir(dir) else { return Vec::new() };
    read.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn finds_what_upstream_layout_records() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let staging = paths::staging(root, "d.example", "vol-1");
        fs::create_dir_all(&staging).unwrap();
        let data =
            BTreeMap::from([(key::DRIVER_NAME, "d.example".to_owned()), (key::VOLUME_HANDLE, "vol-1".to_owned())]);
        paths::save_vol_data(staging.parent().unwrap(), &data).unwrap();
        let target = paths::target(root, "uid-1", "pv-1");
        fs::create_dir_all(&target).unwrap();
        let data = BTreeMap::from([
            (key::SPEC_VOL_ID, "pv-1".to_owned()),
            (key::DRIVER_NAME, "d.example".to_owned()),
            (key::VOLUME_HANDLE, "vol-1".to_owned()),
        ]);
        paths::save_vol_data(target.parent().unwrap(), &data).unwrap();
        // Without vol_data.json nothing is claimed.
        fs::create_dir_all(paths::target(root, "uid-2", "pv-2")).unwrap();

        let state = state(root);
        assert_eq!(state.staged[&("d.example".to_owned(), "vol-1".to_owned())].staging, staging);
        let published = &state.published["uid-1"];
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].target, target);
        assert_eq!(published[0].handle, "vol-1");
        assert!(!state.published.contains_key("uid-2"));
    }
}
