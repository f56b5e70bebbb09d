//! Settings of device plugins, DRA and CDI.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Invalid, invalid, split_list};

/// The validated device settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Devices {
    /// How long a vanished device plugin's resource keeps its capacity.
    pub(crate) stop_grace: Duration,
    /// CDI spec directories, lowest priority first.
    pub(crate) cdi_dirs: Vec<PathBuf>,
}

/// `--device-plugin-stop-grace-period` (default upstream's 5m) and
/// `--cdi-spec-dirs` (default `/etc/cdi`, `/var/run/cdi` — containerd's —
/// and `<root-dir>/cdi`, which needs no privileges).
pub(crate) fn settings(
    stop_grace: Option<&str>,
    cdi_spec_dirs: Option<&str>,
    root_dir: &Path,
) -> Result<Devices, Invalid> {
    let stop_grace = match stop_grace {
        Some(v) => wasmlet_eviction::duration::parse(v)
            .map_err(|e| invalid(format!("--device-plugin-stop-grace-period: {e}")))?,
        None => wasmlet_devices::DEFAULT_STOP_GRACE,
    };
    let cdi_dirs: Vec<PathBuf> = match cdi_spec_dirs {
        Some(list) => split_list(list).into_iter().map(PathBuf::from).collect(),
        None => vec![PathBuf::from("/etc/cdi"), PathBuf::from("/var/run/cdi"), root_dir.join("cdi")],
    };
    if let Some(bad) = cdi_dirs.iter().find(|d| !d.is_absolute()) {
        return Err(invalid(format!("--cdi-spec-dirs: {} is not an absolute path", bad.display())));
    }
    Ok(Devices { stop_grace, cdi_dirs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let root = Path::new("/var/lib/wasmlet");
        let d = settings(None, None, root).unwrap();
        assert_eq!(d.stop_grace, Duration::from_secs(300));
        assert_eq!(d.cdi_dirs, [PathBuf::from("/etc/cdi"), "/var/run/cdi".into(), "/var/lib/wasmlet/cdi".into()]);
        let d = settings(Some("2s"), Some("/a, /b"), root).unwrap();
        assert_eq!((d.stop_grace, d.cdi_dirs), (Duration::from_secs(2), vec![PathBuf::from("/a"), "/b".into()]));
        assert!(settings(None, Some("relative"), root).unwrap_err().to_string().contains("not an absolute path"));
        assert!(
            settings(Some("soon"), None, root).unwrap_err().to_string().contains("--device-plugin-stop-grace-period")
        );
    }
}
