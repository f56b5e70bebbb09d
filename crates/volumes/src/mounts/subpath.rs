//! Resolving a `subPath` inside a volume without ever leaving it, and
//! staging files (which cannot be WASI preopens) into directories.
//!
//! A subPath is first checked as upstream does: not absolute, no `..`
//! component. It is then opened with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)` relative to the volume's directory: symlinks are
//! followed, but the kernel refuses (`EXDEV`) any resolution that would leave
//! the volume — through a symlink to `/`, an absolute symlink, or a rename
//! racing the lookup. What is mounted is that open handle (as
//! `/proc/self/fd/<n>`), so the directory checked is the directory the guest
//! gets, whatever happens to the path afterwards.

use std::fs;
use std::io::{self, Read as _};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{Mode, SFlag, fstat, mkdirat};
use nix::unistd::linkat;

use super::MountError;
use crate::atomic::DIR_MODE;

/// What a resolved subPath is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Other,
}

/// Checks a subPath as upstream (`makeMounts`) does.
pub(crate) fn validate(sub: &str) -> Result<(), MountError> {
    if sub.starts_with('/') {
        return Err(MountError::AbsoluteSubPath(sub.to_owned()));
    }
    if Path::new(sub).components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(MountError::Backsteps(sub.to_owned()));
    }
    Ok(())
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MountError + 'a {
    move |source| MountError::Io { op, path: path.to_owned(), source }
}

fn errno_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> MountError + 'a {
    move |e| MountError::Io { op, path: path.to_owned(), source: io::Error::from(e) }
}

/// Opens the directory of a volume (`O_PATH`).
pub(crate) fn open_root(root: &Path) -> Result<OwnedFd, MountError> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    openat(AT_FDCWD, root, flags, Mode::empty()).map_err(errno_err("open", root))
}

/// Opens `path` itself (`O_PATH`, symlinks followed as for a hostPath).
pub(crate) fn open_path(path: &Path) -> Result<OwnedFd, MountError> {
    openat(AT_FDCWD, path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map_err(errno_err("open", path))
}

/// Opens `sub` beneath `root` (an `O_PATH` handle); `Ok(None)` if it does
/// not exist.
///
/// # Errors
///
/// [`MountError::Escape`] when the resolution would leave the volume.
pub(crate) fn open_beneath(root_fd: &OwnedFd, root: &Path, sub: &str) -> Result<Option<OwnedFd>, MountError> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match openat2(root_fd.as_fd(), sub, how) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(Errno::EXDEV | Errno::ELOOP) => Err(escape(root, sub)),
        Err(e) => Err(errno_err("open subpath in", root)(e)),
    }
}

fn escape(root: &Path, sub: &str) -> MountError {
    MountError::Escape { subpath: root.join(sub), volume: root.to_owned() }
}

/// Creates the directories of `sub` under `root` one component at a time,
/// each opened without following symlinks (upstream `SafeMakeDir`), and
/// returns the last one.
pub(crate) fn make_dirs_beneath(root_fd: &OwnedFd, root: &Path, sub: &str) -> Result<OwnedFd, MountError> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut current = root_fd.try_clone().map_err(io_err("open", root))?;
    for component in Path::new(sub).components() {
        let Component::Normal(name) = component else { continue };
        match mkdirat(current.as_fd(), name, Mode::from_bits_truncate(DIR_MODE)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(errno_err("create subpath in", root)(e)),
        }
        current = match openat(current.as_fd(), name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ELOOP | Errno::ENOTDIR) => return Err(escape(root, sub)),
            Err(e) => return Err(errno_err("open subpath in", root)(e)),
        };
    }
    Ok(current)
}

/// What `fd` is.
pub(crate) fn kind(fd: &OwnedFd, root: &Path) -> Result<Kind, MountError> {
    let stat = fstat(fd.as_fd()).map_err(errno_err("inspect", root))?;
    let format = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    Ok(if format == SFlag::S_IFDIR {
        Kind::Dir
    } else if format == SFlag::S_IFREG {
        Kind::File
    } else {
        Kind::Other
    })
}

/// The path that reopens exactly `fd`.
pub(crate) fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Makes `dest` the file `fd` refers to: a hard link (the same file, writes
/// visible both ways), or a copy when `copy` is set or, for a read-only
/// mount, when the file is on another file system.
pub(crate) fn stage_file(fd: &OwnedFd, dest: &Path, copy: bool, read_only: bool, max: u64) -> Result<(), MountError> {
    let source = fd_path(fd);
    if !copy {
        match linkat(AT_FDCWD, &source, AT_FDCWD, dest, AtFlags::AT_SYMLINK_FOLLOW) {
            Ok(()) => return Ok(()),
            Err(Errno::EXDEV) if read_only => {}
            Err(Errno::EXDEV) => return Err(MountError::CrossDevice(dest.to_owned())),
            Err(e) => return Err(errno_err("link", dest)(e)),
        }
    }
    let mut budget = max;
    copy_file(&source, dest, &mut budget)
}

fn copy_file(source: &Path, dest: &Path, budget: &mut u64) -> Result<(), MountError> {
    let mut input = fs::File::open(source).map_err(io_err("open", source))?;
    let meta = input.metadata().map_err(io_err("inspect", source))?;
    if meta.len() > *budget {
        return Err(MountError::TooLarge { path: dest.to_owned(), max: *budget });
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    input.by_ref().take(*budget + 1).read_to_end(&mut data).map_err(io_err("read", source))?;
    if data.len() as u64 > *budget {
        return Err(MountError::TooLarge { path: dest.to_owned(), max: *budget });
    }
    *budget -= data.len() as u64;
    fs::write(dest, &data).map_err(io_err("write", dest))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(meta.permissions().mode() & 0o777))
        .map_err(io_err("chmod", dest))
}

/// Copies the directory `fd` refers to into the new directory `dest`:
/// files are copied, symlinks copied as symlinks, at most `max` bytes.
pub(crate) fn copy_dir(fd: &OwnedFd, dest: &Path, max: u64) -> Result<(), MountError> {
    let mut budget = max;
    copy_tree(&fd_path(fd), dest, &mut budget)
}

fn copy_tree(source: &Path, dest: &Path, budget: &mut u64) -> Result<(), MountError> {
    fs::DirBuilder::new().mode(DIR_MODE).create(dest).map_err(io_err("create", dest))?;
    for entry in fs::read_dir(source).map_err(io_err("list", source))? {
        let entry = entry.map_err(io_err("list", source))?;
        let (from, to) = (entry.path(), dest.join(entry.file_name()));
        let file_type = entry.file_type().map_err(io_err("inspect", &from))?;
        if file_type.is_dir() {
            copy_tree(&from, &to, budget)?;
        } else if file_type.is_symlink() {
            let target = fs::read_link(&from).map_err(io_err("read", &from))?;
            symlink(target, &to).map_err(io_err("create symlink", &to))?;
        } else if file_type.is_file() {
            copy_file(&from, &to, budget)?;
        } else if file_type.is_socket() || file_type.is_fifo() {
            continue;
        }
    }
    Ok(())
}
