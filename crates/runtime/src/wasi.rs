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
//! - Preopening opens the host directories synchronously (one `open` each)
//!   on the caller's thread.

use std::path::{Component, Path, PathBuf};

use wasmtime_wasi::cli::AsyncStdoutStream;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::run::StartError;
use crate::spec::{GuestSpec, Mount};

/// The guest name of the preopen that stands for the working directory.
const CWD_PREOPEN: &str = ".";

/// A WASI builder for `spec`, with stdio buffered by `stdio_buffer` bytes.
pub(crate) fn builder(spec: GuestSpec, stdio_buffer: usize) -> Result<WasiCtxBuilder, StartError> {
    let GuestSpec { argv, env, mounts, working_dir, stdout, stderr, limits: _, stats: _ } = spec;
    let mut wasi = WasiCtxBuilder::new();
    wasi.args(&argv).envs(&env);
    wasi.stdout(AsyncStdoutStream::new(stdio_buffer, stdout.into_inner()));
    wasi.stderr(AsyncStdoutStream::new(stdio_buffer, stderr.into_inner()));
    for mount in &mounts {
        wasi.preopened_dir(&mount.host, &mount.guest, perms(mount.read_only)).map_err(|source| StartError::Mount {
            guest: mount.guest.clone(),
            host: mount.host.clone(),
            reason: crate::run::flatten(&source),
            source,
        })?;
    }
    if let Some(dir) = working_dir {
        if !env.iter().any(|(name, _)| name == "PWD") {
            wasi.env("PWD", &dir);
        }
        wasi.initial_cwd(&dir);
        if let Some((host, read_only)) = host_dir(&mounts, &dir)? {
            wasi.preopened_dir(&host, CWD_PREOPEN, perms(read_only)).map_err(|source| StartError::WorkingDir {
                dir: dir.clone(),
                reason: crate::run::flatten(&source),
                source,
            })?;
        }
    }
    Ok(wasi)
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
