//! The agent's own record of each pod, kept under the pod's directory so that
//! a restarted agent (even after `kill -9`) knows which containers ran, how
//! often they restarted and which pods are finished — and never runs a
//! finished pod again.

use std::path::{Path, PathBuf};

use crate::record::PodRecord;

const FILE: &str = "checkpoint.json";

/// What is persisted for a pod.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The pod's UID (a directory holding another pod's file is ignored).
    pub uid: String,
    /// The record when last saved.
    pub record: PodRecord,
    /// Whether the pod reached a terminal phase.
    pub finished: bool,
    /// Whether the agent stopped the containers itself (SIGTERM) rather than
    /// dying with them running.
    pub clean_shutdown: bool,
}

/// Reads the checkpoint in `dir`, if there is a valid one for `uid`.
pub fn load(dir: &Path, uid: &str) -> Option<Checkpoint> {
    let text = std::fs::read(dir.join(FILE)).ok()?;
    match serde_json::from_slice::<Checkpoint>(&text) {
        Ok(c) if c.uid == uid => Some(c),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "ignoring unreadable checkpoint");
            None
        }
    }
}

/// Writes the checkpoint atomically (temporary file, then rename).
pub fn save(dir: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp: PathBuf = dir.join(format!(".{FILE}.tmp"));
    let json = serde_json::to_vec(checkpoint).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, dir.join(FILE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ContainerRecord;

    #[test]
    fn round_trips_and_checks_the_uid() {
        let dir = std::env::temp_dir().join(format!("wasmlet-checkpoint-{}", std::process::id()));
        let c = Checkpoint {
            uid: "u1".into(),
            record: PodRecord { containers: vec![ContainerRecord::new("a", "img")], ..Default::default() },
            finished: true,
            clean_shutdown: false,
        };
        save(&dir, &c).unwrap();
        assert_eq!(load(&dir, "u1"), Some(c));
        assert_eq!(load(&dir, "other"), None);
        std::fs::write(dir.join(FILE), b"{broken").unwrap();
        assert_eq!(load(&dir, "u1"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
