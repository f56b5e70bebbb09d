//! [`Edits`]: what resolved CDI devices change in a container, sorted into
//! what a WASI guest can get (environment, mounts) and what it cannot
//! (device nodes and the rest), so that the caller can report the latter.

use std::path::PathBuf;

use crate::spec::ContainerEdits;

/// A mount of a CDI device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The source on the host.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// `ro` among the options.
    pub read_only: bool,
}

/// The combined edits of some CDI devices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    /// Environment variables; a later edit of the same name replaces the
    /// value (as runtimes apply CDI env).
    pub env: Vec<(String, String)>,
    /// Mounts, in order.
    pub mounts: Vec<Mount>,
    /// Device node paths (no meaning to a WASI guest), with the device that
    /// asked for each.
    pub device_nodes: Vec<(String, String)>,
    /// Other edits a WASI guest cannot have (`hook createContainer /bin/x`,
    /// `netDevices`, `intelRdt`, `additionalGids`), with the device.
    pub unsupported: Vec<(String, String)>,
}

impl Edits {
    /// Appends `e`, which came from device `device`.
    pub fn apply(&mut self, e: &ContainerEdits, device: &str) {
        for entry in &e.env {
            if let Some((k, v)) = entry.split_once('=') {
                set_env(&mut self.env, k, v);
            }
        }
        for m in &e.mounts {
            self.mounts.push(Mount {
                host: PathBuf::from(&m.host_path),
                guest: m.container_path.clone(),
                read_only: m.options.iter().any(|o| o == "ro"),
            });
        }
        for d in &e.device_nodes {
            self.device_nodes.push((d.path.clone(), device.to_owned()));
        }
        for h in &e.hooks {
            self.unsupported.push((format!("hook {} {}", h.hook_name, h.path), device.to_owned()));
        }
        if !e.net_devices.is_empty() {
            self.unsupported.push(("netDevices".into(), device.to_owned()));
        }
        if e.intel_rdt.is_some() {
            self.unsupported.push(("intelRdt".into(), device.to_owned()));
        }
        if !e.additional_gids.is_empty() {
            self.unsupported.push(("additionalGids".into(), device.to_owned()));
        }
    }
}

/// Sets `key` in `env`: replaces its value in place, or appends it.
pub fn set_env(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value.to_owned(),
        None => env.push((key.to_owned(), value.to_owned())),
    }
}
