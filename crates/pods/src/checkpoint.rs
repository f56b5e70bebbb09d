//! The agent's own record of each pod, kept under the pod's directory so that
//! a restarted agent (even after `kill -9`) knows which containers ran, how
//! often they restarted and which pods are finished — and never runs a
//! finished pod again.

use std::path::{Path, PathBuf};

use crate::record::PodRecord;

mod writer;
pub(crate) use writer::{MAX_CONCURRENT_WRITES, Writer};

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

/// [`load`] on the blocking pool, so that a slow disk does not stall the
/// async workers that drive guests.
pub(crate) async fn load_off_worker(dir: PathBuf, uid: String) -> Option<Checkpoint> {
    tokio::task::spawn_blocking(move || load(&dir, &uid)).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "reading the checkpoint failed");
        None
    })
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

/// Writes the checkpoint durably: a temporary file, synced, renamed over
/// the old one, then the directory synced, so that after a crash (even
/// `kill -9` or a power cut) the file is either the old checkpoint or the
/// new one, never a torn or empty one.
///
/// This blocks on the disk: call it off the async workers (the pod worker
/// uses a [`Writer`]).
pub fn save(dir: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir)?;
    let tmp: PathBuf = dir.join(format!(".{FILE}.tmp"));
    let json = serde_json::to_vec(checkpoint).map_err(std::io::Error::other)?;
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&json)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()
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
        assert_eq!(load(&dir, "u1"), Some(c.clone()));
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [FILE], "no temporary file is left behind");
        assert_eq!(load(&dir, "other"), None);
        std::fs::write(dir.join(FILE), b"{broken").unwrap();
        assert_eq!(load(&dir, "u1"), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
