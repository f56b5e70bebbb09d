//! [`Writer`]: one pod's checkpoints, written off the async workers.
//!
//! The pod worker submits a checkpoint on every status sync; the writer's
//! task writes the newest one on the blocking pool ([`super::save`]:
//! synced file, rename, synced directory). Checkpoints submitted while a
//! write runs are coalesced: only the newest is written next, so a slow
//! disk costs at most one pending checkpoint per pod, never a queue. At
//! most [`MAX_CONCURRENT_WRITES`] pods write at once (a shared
//! [`Semaphore`]), so a stalled disk holds a bounded number of blocking
//! threads.
//!
//! # Ordering and durability
//!
//! Writes of one pod happen in submission order and the newest always
//! wins. [`Writer::flush`] returns once everything submitted before it is
//! on disk (or failed and was logged): the pod worker flushes before the
//! agent exits (`ShuttingDown`) and before it deletes a finished pod, and
//! [`Writer::close`] (before the pod's directory is removed) waits for the
//! last write, so no write can recreate a removed directory. After
//! `kill -9` the file on disk is a complete checkpoint (at most the newest
//! submission is lost, as a write in flight would be), and recovery merges
//! it with the pod's status in the API.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::Checkpoint;

/// How many pods may write their checkpoint at the same time.
pub(crate) const MAX_CONCURRENT_WRITES: usize = 4;

/// The newest submission.
#[derive(Clone, Default)]
struct Pending {
    generation: u64,
    checkpoint: Option<Arc<Checkpoint>>,
}

/// Writes one pod's checkpoints; see the module docs.
pub(crate) struct Writer {
    pending: watch::Sender<Pending>,
    written: watch::Receiver<u64>,
    task: Option<JoinHandle<()>>,
}

impl Writer {
    /// A writer for the pod directory `dir`, sharing `permits` (of
    /// [`MAX_CONCURRENT_WRITES`]) with every other pod.
    pub(crate) fn new(dir: PathBuf, permits: Arc<Semaphore>) -> Writer {
        let (pending, rx) = watch::channel(Pending::default());
        let (done, written) = watch::channel(0);
        let task = tokio::spawn(run(dir, rx, done, permits));
        Writer { pending, written, task: Some(task) }
    }

    /// Queues `checkpoint`, replacing one not yet written. Never blocks.
    pub(crate) fn submit(&self, checkpoint: Checkpoint) {
        self.pending.send_modify(|p| {
            p.generation += 1;
            p.checkpoint = Some(Arc::new(checkpoint));
        });
    }

    /// Waits until every checkpoint submitted so far has been written (or
    /// its write failed and was logged).
    pub(crate) async fn flush(&self) {
        let target = self.pending.borrow().generation;
        let mut written = self.written.clone();
        // An error means the task is gone: nothing more will be written.
        let _ = written.wait_for(|g| *g >= target).await;
    }

    /// Writes what is pending and stops the task; nothing is written after.
    pub(crate) async fn close(&mut self) {
        self.flush().await;
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn run(
    dir: PathBuf,
    mut pending: watch::Receiver<Pending>,
    written: watch::Sender<u64>,
    permits: Arc<Semaphore>,
) {
    while pending.changed().await.is_ok() {
        let Pending { generation, checkpoint } = pending.borrow_and_update().clone();
        let Some(checkpoint) = checkpoint else { continue };
        let Ok(_permit) = permits.acquire().await else { return };
        let target = dir.clone();
        match tokio::task::spawn_blocking(move || super::save(&target, &checkpoint)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, dir = %dir.display(), "writing checkpoint failed"),
            Err(e) => tracing::error!(error = %e, dir = %dir.display(), "the checkpoint write failed; this is a bug"),
        }
        written.send_replace(generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::PodRecord;

    fn checkpoint(n: i32) -> Checkpoint {
        let mut record = PodRecord::default();
        record.containers.push(crate::record::ContainerRecord::new("c", "img"));
        record.containers[0].restart_count = n;
        Checkpoint { uid: "u".into(), record, finished: false, clean_shutdown: false }
    }

    #[tokio::test]
    async fn the_newest_submission_is_on_disk_after_flush() {
        let dir = tempfile_dir("flush");
        let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_WRITES));
        let mut writer = Writer::new(dir.clone(), permits.clone());
        for n in 0..50 {
            writer.submit(checkpoint(n));
        }
        writer.flush().await;
        let saved = super::super::load(&dir, "u").expect("a checkpoint");
        assert_eq!(saved.record.containers[0].restart_count, 49);

        // After close nothing is written, even if submitted.
        writer.close().await;
        std::fs::remove_dir_all(&dir).unwrap();
        writer.submit(checkpoint(99));
        writer.flush().await;
        assert!(!dir.exists(), "a closed writer must not recreate the directory");
        assert_eq!(permits.available_permits(), MAX_CONCURRENT_WRITES);
    }

    #[tokio::test]
    async fn a_failed_write_is_logged_and_does_not_hang_flush() {
        let file = tempfile_dir("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let writer = Writer::new(file.join("pod"), Arc::new(Semaphore::new(1)));
        writer.submit(checkpoint(1));
        tokio::time::timeout(std::time::Duration::from_secs(10), writer.flush()).await.expect("flush returns");
        std::fs::remove_file(&file).unwrap();
    }

    fn tempfile_dir(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "wasmlet-writer-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ))
    }
}
