//! `hostPath` volumes: the `type` check, exactly as upstream's
//! `checkTypeInternal` (`pkg/volume/hostpath`).
//!
//! | type | check |
//! |---|---|
//! | `""` (unset) | none; a missing path is created as a directory (0755) at setup, as container runtimes do for a missing bind-mount source |
//! | `DirectoryOrCreate` | created with mode 0755 (and parents) if missing, then a directory |
//! | `Directory` | a directory |
//! | `FileOrCreate` | created empty with mode 0644 if missing (the parent must exist), then a file |
//! | `File` | a regular file |
//! | `Socket`, `CharDevice`, `BlockDevice` | that kind of file |
//!
//! Symlinks are followed, as upstream's `os.Stat`. A WASI guest can be given
//! a directory or a regular file (see [`mounts`](crate::mounts)); the other
//! types pass the check but cannot be mounted.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why a hostPath volume failed its check (upstream's wording).
#[derive(Debug, thiserror::Error)]
pub enum HostPathError {
    /// The path is not of the declared type.
    #[error("hostPath type check failed: {} is not a {what}", path.display())]
    Type {
        /// The path.
        path: PathBuf,
        /// What it should have been.
        what: &'static str,
    },
    /// The `type` is not a known one.
    #[error("{0} is an invalid volume type")]
    InvalidType(String),
    /// The path is, holds or lies inside what the node agent keeps to itself
    /// (its root directory, credentials): a guest with it could act as the node.
    #[error(
        "hostPath {} is refused on this node: it would expose the node agent's own files ({})",
        path.display(),
        protected.display()
    )]
    Protected {
        /// The path asked for.
        path: PathBuf,
        /// The protected path it overlaps.
        protected: PathBuf,
    },
    /// `DirectoryOrCreate` / `FileOrCreate` could not create the path.
    #[error("cannot create {}", path.display())]
    Create {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Refuses `path` when it overlaps one of `protected`: the same, inside it,
/// or an ancestor of it (a preopen of `/` holds the agent's keys too).
/// Both sides are compared resolved (symbolic links followed), and also as
/// given, so neither a link nor a missing path gets around the check.
pub(crate) fn refuse_protected(path: &Path, protected: &[PathBuf]) -> Result<(), HostPathError> {
    let forms = |p: &Path| {
        let given = std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        let resolved = resolve(&given);
        [normalize(&given), resolved]
    };
    let asked = forms(path);
    for guarded in protected {
        for g in forms(guarded) {
            if asked.iter().any(|a| a.starts_with(&g) || g.starts_with(a)) {
                return Err(HostPathError::Protected { path: path.to_owned(), protected: guarded.clone() });
            }
        }
    }
    Ok(())
}

/// `path` with its longest existing ancestor resolved (symbolic links
/// followed) and the rest appended, `..` applied lexically.
fn resolve(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut existing = path;
    loop {
        if let Ok(real) = fs::canonicalize(existing) {
            let mut out = real;
            out.extend(rest.iter().rev());
            return normalize(&out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return normalize(path),
        }
    }
}

/// `path` with `.` dropped and `..` applied lexically.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Checks (and for the `*OrCreate` types, creates) `path` per `type_`.
pub(crate) fn check(path: &Path, type_: Option<&str>) -> Result<(), HostPathError> {
    let meta = fs::metadata(path).ok();
    let kind = meta.as_ref().map(fs::Metadata::file_type);
    let fail = |what| Err(HostPathError::Type { path: path.to_owned(), what });
    let create = |source| HostPathError::Create { path: path.to_owned(), source };
    match type_.unwrap_or_default() {
        "" if kind.is_none() => fs::DirBuilder::new().recursive(true).mode(0o755).create(path).map_err(create),
        "" => Ok(()),
        t @ ("Directory" | "DirectoryOrCreate") => {
            if kind.is_none() && t == "DirectoryOrCreate" {
                return fs::DirBuilder::new().recursive(true).mode(0o755).create(path).map_err(create);
            }
            if kind.is_some_and(|k| k.is_dir()) { Ok(()) } else { fail("directory") }
        }
        t @ ("File" | "FileOrCreate") => {
            if kind.is_none() && t == "FileOrCreate" {
                let file = fs::OpenOptions::new().write(true).create(true).truncate(false).mode(0o644).open(path);
                return file.map(drop).map_err(create);
            }
            if kind.is_some_and(|k| k.is_file()) { Ok(()) } else { fail("file") }
        }
        "Socket" => {
            if kind.is_some_and(|k| k.is_socket()) {
                Ok(())
            } else {
                fail("socket file")
            }
        }
        "CharDevice" => {
            if kind.is_some_and(|k| k.is_char_device()) {
                Ok(())
            } else {
                fail("character device")
            }
        }
        "BlockDevice" => {
            if kind.is_some_and(|k| k.is_block_device()) {
                Ok(())
            } else {
                fail("block device")
            }
        }
        other => Err(HostPathError::InvalidType(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn types_are_checked_like_upstream() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dir");
        let file = tmp.path().join("file");
        let missing = tmp.path().join("missing");
        fs::create_dir(&dir).unwrap();
        fs::write(&file, "x").unwrap();
        let sock = tmp.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let msg = |p: &Path, t| check(p, Some(t)).unwrap_err().to_string();

        for p in [&dir, &file] {
            check(p, None).unwrap();
            check(p, Some("")).unwrap();
        }
        check(&dir, Some("Directory")).unwrap();
        check(&file, Some("File")).unwrap();
        check(&sock, Some("Socket")).unwrap();
        check(Path::new("/dev/null"), Some("CharDevice")).unwrap();
        assert_eq!(
            msg(&file, "Directory"),
            format!("hostPath type check failed: {} is not a directory", file.display())
        );
        assert_eq!(
            msg(&missing, "Directory"),
            format!("hostPath type check failed: {} is not a directory", missing.display())
        );
        assert_eq!(msg(&dir, "File"), format!("hostPath type check failed: {} is not a file", dir.display()));
        assert_eq!(
            msg(&file, "Socket"),
            format!("hostPath type check failed: {} is not a socket file", file.display())
        );
        assert_eq!(
            msg(&file, "CharDevice"),
            format!("hostPath type check failed: {} is not a character device", file.display())
        );
        assert_eq!(
            msg(&dir, "BlockDevice"),
            format!("hostPath type check failed: {} is not a block device", dir.display())
        );
        assert_eq!(msg(&dir, "Bogus"), "Bogus is an invalid volume type");
        assert!(msg(&dir, "FileOrCreate").contains("is not a file"));
        assert!(msg(&file, "DirectoryOrCreate").contains("is not a directory"));
    }

    #[test]
    fn protected_paths_their_insides_ancestors_and_links_to_them_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("var/lib/wasmlet");
        let key = tmp.path().join("etc/pki/serving.key");
        fs::create_dir_all(root.join("pods")).unwrap();
        fs::create_dir_all(key.parent().unwrap()).unwrap();
        fs::write(&key, "secret").unwrap();
        let link = tmp.path().join("innocent");
        std::os::unix::fs::symlink(root.join("pods"), &link).unwrap();
        let protected = [root.clone(), key.clone()];
        let refused = |p: &Path| matches!(refuse_protected(p, &protected), Err(HostPathError::Protected { .. }));
        for p in [
            root.clone(),
            root.join("pods"),
            root.join("not/yet/there"),
            root.join("pods/../pods"),
            tmp.path().join("var"),
            tmp.path().to_owned(),
            PathBuf::from("/"),
            key.clone(),
            key.parent().unwrap().to_owned(),
            link.clone(),
            link.join("x"),
        ] {
            assert!(refused(&p), "{} must be refused", p.display());
        }
        for p in [tmp.path().join("var/lib/other"), tmp.path().join("etc/other"), tmp.path().join("var/lib/wasmlet2")] {
            refuse_protected(&p, &protected).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
        let msg = refuse_protected(&root.join("pods"), &protected).unwrap_err().to_string();
        assert!(msg.contains("refused on this node") && msg.contains(&root.display().to_string()), "{msg}");
    }

    #[test]
    fn or_create_types_create() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/c");
        check(&dir, Some("DirectoryOrCreate")).unwrap();
        assert!(dir.is_dir());
        assert_eq!(fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o755 & !umask());
        let file = tmp.path().join("new.txt");
        check(&file, Some("FileOrCreate")).unwrap();
        assert!(file.is_file());
        check(&file, Some("FileOrCreate")).unwrap();
        let unset = tmp.path().join("unset/dir");
        check(&unset, None).unwrap();
        assert!(unset.is_dir(), "an unset type creates a missing path as a directory");
        let orphan = tmp.path().join("no/parent.txt");
        assert!(matches!(check(&orphan, Some("FileOrCreate")), Err(HostPathError::Create { .. })));
    }

    fn umask() -> u32 {
        let probe = tempfile::tempdir().unwrap();
        let p = probe.path().join("d");
        fs::DirBuilder::new().mode(0o777).create(&p).unwrap();
        0o777 & !(fs::metadata(&p).unwrap().permissions().mode() & 0o777)
    }
}
