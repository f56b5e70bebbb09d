//! Mapping a [`GuestSpec`] onto a WASI context: arguments, environment,
//! stdio, mounts as preopened directories, and the working directory.
//!
//! # The working directory
//!
//! WASI has no current directory: a guest reaches files only through
//! preopened directories, and wasi-libc resolves a relative path against its
//! own notion of the cwd, which starts at `/`, then picks the preopen with the
//! longest matching prefix, a preopen named `.` matching everything. So when
//! `working_dir` lies inside a mount, the host directory that corresponds to
//! it is preopened once more as `.`: relative paths (`input.txt`,
//! `sub/x`) then open under the working directory, as in a container. In
//! addition `PWD=<working_dir>` is set (unless the spec sets `PWD` itself) and
//! components get it as `wasi:cli/environment.initial-cwd`.
//!
//! # Caveats
//!
//! - With that `.` preopen, an absolute path that matches no mount also
//!   resolves under the working directory (wasi-libc treats `.` as the
//!   fallback for everything), where a container would look in its root
//!   filesystem, which a wasm guest does not have anyway.
//! - A `working_dir` outside every mount only sets `PWD` (and initial-cwd).
//!
//! # Opening the directories
//!
//! Preopening opens each host directory (one `open` each), a blocking
//! filesystem call that a slow or hung disk can stall, so it never runs on
//! the async workers that drive guests: `Template::open` and `builder` run
//! it on tokio's blocking pool, once per run. A `wasi:http` server opens its
//! directories once when it starts and gives every request's context the
//! same handles (`Preopened`): a preopen is a directory handle
//! (`O_PATH`) with no position or other state, which wasmtime-wasi already
//! shares between the descriptors of one context, and every path is
//! resolved under it at the time of use, so a request sees the directory's
//! current content (files a volume updates included).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use wasmtime_wasi::cli::AsyncStdoutStream;
use wasmtime_wasi::filesystem::WasiFilesystemCtx;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use crate::run::StartError;
use crate::sockets::{Guard, NodeNetwork};
use crate::spec::{GuestSpec, Mount, Output};

/// The guest name of the preopen that stands for the working directory.
const CWD_PREOPEN: &str = ".";

/// Everything of a [`GuestSpec`] that goes into a WASI context except its
/// stdio: built once, then turned into one context per instance (a command
/// has one; a `wasi:http` server one per request).
#[derive(Debug, Clone)]
pub(crate) struct Template {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    /// Mounts, then the working directory's preopen as `.` if it has one.
    preopens: Vec<Preopen>,
    working_dir: Option<String>,
    sockets: Arc<Guard>,
}

#[derive(Debug, Clone)]
struct Preopen {
    host: PathBuf,
    guest: String,
    read_only: bool,
    /// Whether this is the working directory (for the error it gives).
    cwd: bool,
}

impl Template {
    /// The template of `spec` (its stdio, limits and stats are left out),
    /// its sockets confined by `node`.
    pub(crate) fn new(spec: &GuestSpec, node: &NodeNetwork) -> Result<Self, StartError> {
        let mut env = spec.env.clone();
        let mut preopens: Vec<Preopen> = spec
            .mounts
            .iter()
            .map(|m| Preopen { host: m.host.clone(), guest: m.guest.clone(), read_only: m.read_only, cwd: false })
            .collect();
        if let Some(dir) = &spec.working_dir {
            if !env.iter().any(|(name, _)| name == "PWD") {
                env.push(("PWD".to_owned(), dir.clone()));
            }
            if let Some((host, read_only)) = host_dir(&spec.mounts, dir)? {
                preopens.push(Preopen { host, guest: CWD_PREOPEN.to_owned(), read_only, cwd: true });
            }
        }
        Ok(Self {
            argv: spec.argv.clone(),
            env,
            preopens,
            working_dir: spec.working_dir.clone(),
            sockets: Arc::new(Guard { pod: spec.sockets.clone(), node: node.clone() }),
        })
    }

    /// The guest's socket check.
    pub(crate) fn sockets(&self) -> Arc<Guard> {
        Arc::clone(&self.sockets)
    }

    /// A WASI builder with arguments, environment, the working directory
    /// and the socket policy, but no preopens; stdio is the caller's to set.
    fn base(&self) -> WasiCtxBuilder {
        let mut wasi = WasiCtxBuilder::new();
        wasi.args(&self.argv).envs(&self.env);
        if let Some(dir) = &self.working_dir {
            wasi.initial_cwd(dir);
        }
        self.sockets.apply(&mut wasi);
        wasi
    }

    /// [`base`](Self::base) with the preopens, opened now on the calling
    /// thread (blocking: see the [module docs](self)).
    fn builder_blocking(&self) -> Result<WasiCtxBuilder, StartError> {
        let mut wasi = self.base();
        for open in &self.preopens {
            wasi.preopened_dir(&open.host, &open.guest, perms(open.read_only)).map_err(|source| {
                let reason = crate::run::flatten(&source);
                match (&self.working_dir, open.cwd) {
                    (Some(dir), true) => StartError::WorkingDir { dir: dir.clone(), reason, source },
                    _ => StartError::Mount { guest: open.guest.clone(), host: open.host.clone(), reason, source },
                }
            })?;
        }
        Ok(wasi)
    }

    /// Opens the preopens on the blocking pool, once, for contexts made with
    /// [`context`](Self::context).
    pub(crate) async fn open(&self) -> Result<Preopened, StartError> {
        let template = self.clone();
        let opened = off_the_workers(move || {
            let mut ctx = template.builder_blocking()?.build();
            Ok(Preopened(ctx.filesystem().clone()))
        });
        opened.await
    }

    /// A WASI context with the template's settings, `stdout`, `stderr` and
    /// the directories of `preopened`; no filesystem call.
    pub(crate) fn context(
        &self,
        preopened: &Preopened,
        stdout: impl wasmtime_wasi::cli::StdoutStream + 'static,
        stderr: impl wasmtime_wasi::cli::StdoutStream + 'static,
    ) -> WasiCtx {
        let mut wasi = self.base();
        wasi.stdout(stdout).stderr(stderr);
        let mut ctx = wasi.build();
        *ctx.filesystem() = preopened.0.clone();
        ctx
    }
}

/// The directories of a [`Template`], opened: handles that every context
/// made from them shares (see the [module docs](self)).
#[derive(Clone)]
pub(crate) struct Preopened(WasiFilesystemCtx);

impl std::fmt::Debug for Preopened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Preopened")
    }
}

/// A WASI builder for `spec` on `node`, with stdio buffered by
/// `stdio_buffer` bytes; its directories are opened on the blocking pool.
pub(crate) async fn builder(
    spec: GuestSpec,
    node: &NodeNetwork,
    stdio_buffer: usize,
) -> Result<WasiCtxBuilder, StartError> {
    let template = Template::new(&spec, node)?;
    let mut wasi = off_the_workers(move || template.builder_blocking()).await?;
    wasi.stdout(stdio(spec.stdout, stdio_buffer));
    wasi.stderr(stdio(spec.stderr, stdio_buffer));
    Ok(wasi)
}

/// Runs `open` on tokio's blocking pool (directory opens may block on a
/// slow disk); outside a tokio runtime, or if the pool is gone, on the
/// calling thread.
async fn off_the_workers<T: Send + 'static>(
    open: impl FnOnce() -> Result<T, StartError> + Send + 'static,
) -> Result<T, StartError> {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return open();
    };
    match handle.spawn_blocking(open).await {
        Ok(result) => result,
        Err(error) => Err(StartError::Preopen { reason: error.to_string() }),
    }
}

/// A guest output stream in front of `output`, buffering `buffer` bytes.
pub(crate) fn stdio(output: Output, buffer: usize) -> AsyncStdoutStream {
    AsyncStdoutStream::new(buffer, output.into_inner())
}

fn perms(read_only: bool) -> FsPerms {
    if read_only { FsPerms::ReadOnly } else { FsPerms::ReadWrite }
}

/// The host directory of guest path `dir` and whether it is read-only, found
/// through the mount with the longest guest path containing `dir`; `None`
/// when no mount contains it.
fn host_dir(mounts: &[Mount], dir: &str) -> Result<Option<(PathBuf, bool)>, StartError> {
    let dir_path = Path::new(dir);
    if dir_path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(StartError::InvalidWorkingDir { dir: dir.to_owned(), reason: "it must not contain `..`" });
    }
    let best = mounts
        .iter()
        .filter_map(|mount| {
            let rest = dir_path.strip_prefix(&mount.guest).ok()?;
            Some((mount, rest))
        })
        .max_by_key(|(mount, _)| Path::new(&mount.guest).components().count());
    Ok(best.map(|(mount, rest)| (mount.host.join(rest), mount.read_only)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(host: &str, guest: &str, read_only: bool) -> Mount {
        Mount { host: host.into(), guest: guest.into(), read_only }
    }

    #[test]
    fn working_dir_maps_through_the_longest_mount() {
        let mounts = [mount("/h/data", "/data", false), mount("/h/cfg", "/data/cfg", true)];
        let found = |dir| host_dir(&mounts, dir).unwrap();
        assert_eq!(found("/data"), Some(("/h/data".into(), false)));
        assert_eq!(found("/data/sub/x"), Some(("/h/data/sub/x".into(), false)));
        assert_eq!(found("/data/cfg/a"), Some(("/h/cfg/a".into(), true)));
        assert_eq!(found("/datax"), None);
        assert_eq!(found("/other"), None);
    }

    #[test]
    fn working_dir_with_dotdot_is_refused() {
        let mounts = [mount("/h/data", "/data", false)];
        assert!(host_dir(&mounts, "/data/../etc").is_err());
    }
}
