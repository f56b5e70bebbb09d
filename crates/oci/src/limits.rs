//! [`PullLimits`]: how big the parts of an image may be, and how much disk
//! a pull must leave free. A registry (or whoever pushed the image) decides
//! what it sends; these bound what the node reads into memory and writes
//! to disk, and a pull past a limit fails with a message naming it.
//!
//! The manifest limit is containerd's: `MaxManifestSize` in
//! `core/remotes/docker/resolver.go` is `4 * 1048 * 1048` bytes (sic:
//! 4,393,216, "a much larger upper bound" than the 32 KiB a 128-layer
//! image manifest needs). containerd applies it to what it resolves
//! (manifests and indexes); wasmlet applies it to the image config as well,
//! which it also reads into memory. containerd has no per-layer limit (the
//! disk is the limit); a wasm layer is one module or component, so wasmlet
//! caps it ([`MAX_LAYER_BYTES`]), counts what is written against the
//! layer's declared size, and checks the free space before writing.

use std::path::Path;

/// containerd's `MaxManifestSize`: manifests and indexes, in bytes.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1048 * 1048;
/// The image config (JSON, read into memory), in bytes.
pub const MAX_CONFIG_BYTES: u64 = MAX_MANIFEST_BYTES;
/// One layer as downloaded, and the wasm file taken out of a tar layer, in
/// bytes (1 GiB; wasm modules are rarely over 100 MiB).
pub const MAX_LAYER_BYTES: u64 = 1 << 30;
/// Free space that must remain on the store's filesystem after a layer is
/// written, in bytes (512 MiB), so a pull never fills the node's disk.
pub const MIN_FREE_DISK_BYTES: u64 = 512 << 20;

/// Default of [`PullLimits::progress_deadline`]: one minute, the default of
/// the upstream kubelet's `--image-pull-progress-deadline` (containerd's
/// `image_pull_progress_timeout` is 5 minutes).
pub const DEFAULT_PROGRESS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);
/// Fewer bytes than this within a progress deadline count as no progress
/// (1 KiB): a registry trickling a byte a second is stalled, not slow.
pub const MIN_PROGRESS_BYTES: u64 = 1024;

/// Limits of a pull; see the module docs. [`Default`] uses the constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullLimits {
    /// Largest manifest or index accepted.
    pub max_manifest_bytes: u64,
    /// Largest image config accepted.
    pub max_config_bytes: u64,
    /// Largest layer (and extracted wasm file) accepted.
    pub max_layer_bytes: u64,
    /// Free space to leave on the store's filesystem.
    pub min_free_disk_bytes: u64,
    /// A pull fails when fewer than [`MIN_PROGRESS_BYTES`] arrive from the
    /// registry within this time (local work, such as hashing or
    /// extracting a layer, counts as progress).
    pub progress_deadline: std::time::Duration,
}

impl Default for PullLimits {
    fn default() -> Self {
        PullLimits {
            max_manifest_bytes: MAX_MANIFEST_BYTES,
            max_config_bytes: MAX_CONFIG_BYTES,
            max_layer_bytes: MAX_LAYER_BYTES,
            min_free_disk_bytes: MIN_FREE_DISK_BYTES,
            progress_deadline: DEFAULT_PROGRESS_DEADLINE,
        }
    }
}

/// Bytes available to unprivileged users on the filesystem of `path`.
pub(crate) fn available_bytes(path: &Path) -> std::io::Result<u64> {
    let stat = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// An [`std::io::Write`] that fails once more than `limit` bytes were
/// written to it (nothing past the limit reaches `inner`).
pub(crate) struct Capped<W> {
    inner: W,
    limit: u64,
    written: u64,
    exceeded: bool,
}

impl<W> Capped<W> {
    pub(crate) fn new(inner: W, limit: u64) -> Self {
        Capped { inner, limit, written: 0, exceeded: false }
    }

    /// The wrapped writer.
    pub(crate) fn into_inner(self) -> W {
        self.inner
    }

    /// Whether a write went past the limit.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// How many bytes went through.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    fn admit(&mut self, len: usize) -> std::io::Result<()> {
        if self.written.saturating_add(len as u64) > self.limit {
            self.exceeded = true;
            return Err(std::io::Error::other(format!("more than {} bytes", self.limit)));
        }
        self.written += len as u64;
        Ok(())
    }
}

impl<W: std::io::Write> std::io::Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.admit(buf.len())?;
        self.inner.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Capped<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let room = self.limit - self.written;
        if buf.len() as u64 > room {
            self.exceeded = true;
            return std::task::Poll::Ready(Err(std::io::Error::other(format!("more than {} bytes", self.limit))));
        }
        let this = &mut *self;
        let n = std::task::ready!(std::pin::Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.written += n as u64;
        std::task::Poll::Ready(Ok(n))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn capped_writes_stop_at_the_limit() {
        let mut out = Capped::new(Vec::new(), 5);
        out.write_all(b"abc").unwrap();
        out.write_all(b"de").unwrap();
        assert!(!out.exceeded());
        assert!(out.write_all(b"f").is_err());
        assert!(out.exceeded());
        assert_eq!(out.inner, b"abcde");
    }

    #[test]
    fn free_space_is_measured() {
        assert!(available_bytes(&std::env::temp_dir()).unwrap() > 0);
        assert!(available_bytes(Path::new("/nonexistent/wasmlet")).is_err());
    }
}
