//! What a pod's running containers expose to the kubelet API: each one's
//! guest (to run `kubectl exec` commands as new instances of it) and live
//! resource figures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wasmlet_runtime::GuestStats;

use crate::guest::Prepared;

/// A running container's guest and its figures.
#[derive(Clone)]
pub(crate) struct Running {
    /// The prepared guest of the current run.
    pub(crate) guest: Arc<Prepared>,
    /// Its live CPU and memory.
    pub(crate) stats: GuestStats,
    /// Its memory limit, if any.
    pub(crate) memory_limit: Option<u64>,
}

/// Running containers of one pod by name; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Live(Arc<Mutex<HashMap<String, Running>>>);

impl Live {
    /// Container `name` runs `running`.
    pub(crate) fn started(&self, name: &str, running: Running) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), running);
    }

    /// The running container `name`, if it runs (or ran last).
    pub(crate) fn get(&self, name: &str) -> Option<Running> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// Every container that has run, with its last figures.
    pub(crate) fn all(&self) -> Vec<(String, Running)> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}
