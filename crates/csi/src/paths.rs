//! Upstream's on-disk layout of CSI volumes (`pkg/volume/csi`), which a
//! restarted agent reads back:
//!
//! - staging (`NodeStageVolume`): `<root>/plugins/kubernetes.io/csi/<driver>/<sha256(handle)>/globalmount`,
//!   with `vol_data.json` (`driverName`, `volumeHandle`) beside `globalmount`;
//! - publishing (`NodePublishVolume`): `<root>/pods/<uid>/volumes/kubernetes.io~csi/<spec name>/mount`,
//!   with `vol_data.json` (`specVolID`, `volumeHandle`, `driverName`,
//!   `nodeName`, `attachmentID`, `volumeLifecycleMode`) beside `mount`.
//!   The spec name is the PV's name, or the pod's volume name for inline
//!   volumes.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The file of volume data beside a staging or target path.
pub const VOL_DATA: &str = "vol_data.json";
/// The staging directory's name.
pub const GLOBAL_MOUNT: &str = "globalmount";
/// The target directory's name.
pub const MOUNT: &str = "mount";
/// The directory of a pod's CSI volumes under `<pod>/volumes/`.
pub const POD_PLUGIN_DIR: &str = "kubernetes.io~csi";

/// `vol_data.json` keys (upstream `volDataKey`).
pub mod key {
    /// The spec name.
    pub const SPEC_VOL_ID: &str = "specVolID";
    /// The volume handle.
    pub const VOLUME_HANDLE: &str = "volumeHandle";
    /// The driver.
    pub const DRIVER_NAME: &str = "driverName";
    /// The node.
    pub const NODE_NAME: &str = "nodeName";
    /// The VolumeAttachment's name.
    pub const ATTACHMENT_ID: &str = "attachmentID";
    /// `Persistent` or `Ephemeral`.
    pub const LIFECYCLE_MODE: &str = "volumeLifecycleMode";
}

/// Hex SHA-256 of a string.
pub fn sha256(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// The staging path of volume `handle` of `driver`.
pub fn staging(root: &Path, driver: &str, handle: &str) -> PathBuf {
    root.join("plugins").join("kubernetes.io").join("csi").join(driver).join(sha256(handle)).join(GLOBAL_MOUNT)
}

/// The directory of every staging path.
pub fn staging_root(root: &Path) -> PathBuf {
    root.join("plugins").join("kubernetes.io").join("csi")
}

/// The directory of pod `uid`'s CSI volumes.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid).join("volumes").join(POD_PLUGIN_DIR)
}

/// The target path of spec `spec_name` for pod `uid`.
pub fn target(root: &Path, uid: &str, spec_name: &str) -> PathBuf {
    pod_dir(root, uid).join(escape_qualified_name(spec_name)).join(MOUNT)
}

/// Upstream's `EscapeQualifiedName`: `/` becomes `~`.
pub fn escape_qualified_name(name: &str) -> String {
    name.replace('/', "~")
}

/// The VolumeAttachment name for a volume on a node (upstream `getAttachmentName`).
pub fn attachment_name(handle: &str, driver: &str, node: &str) -> String {
    format!("csi-{}", sha256(&format!("{handle}{driver}{node}")))
}

/// The unique name of an attachable volume in `volumesInUse`/`volumesAttached`.
pub fn unique_name(driver: &str, handle: &str) -> String {
    format!("kubernetes.io/csi/{driver}^{handle}")
}

/// Writes `vol_data.json` into `dir` (created with its parents).
///
/// # Errors
///
/// The directory or file could not be written.
pub fn save_vol_data(dir: &Path, data: &BTreeMap<&str, String>) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let json = serde_json::to_vec(data).map_err(io::Error::other)?;
    let tmp = dir.join(format!(".{VOL_DATA}.tmp"));
    fs::write(&tmp, json)?;
    fs::rename(tmp, dir.join(VOL_DATA))
}

/// Reads `dir/vol_data.json`.
///
/// # Errors
///
/// Missing, unreadable or not a JSON object of strings.
pub fn load_vol_data(dir: &Path) -> io::Result<BTreeMap<String, String>> {
    let bytes = fs::read(dir.join(VOL_DATA))?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_names() {
        assert_eq!(sha256(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let root = Path::new("/var/lib/kubelet");
        assert_eq!(
            staging(root, "d.example", ""),
            Path::new(
                "/var/lib/kubelet/plugins/kubernetes.io/csi/d.example/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855/globalmount"
            )
        );
        assert_eq!(
            target(root, "u1", "pvc-1"),
            Path::new("/var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/pvc-1/mount")
        );
        assert_eq!(unique_name("d", "h"), "kubernetes.io/csi/d^h");
        assert_eq!(attachment_name("", "", ""), format!("csi-{}", sha256("")));
    }

    #[test]
    fn vol_data_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let data = BTreeMap::from([(key::DRIVER_NAME, "d".to_owned()), (key::VOLUME_HANDLE, "h".to_owned())]);
        save_vol_data(&dir.path().join("x"), &data).unwrap();
        let back = load_vol_data(&dir.path().join("x")).unwrap();
        assert_eq!(back["driverName"], "d");
        assert_eq!(back["volumeHandle"], "h");
    }
}
