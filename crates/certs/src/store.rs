//! [`Store`]: certificates on disk, as the upstream kubelet keeps them in
//! its `--cert-dir`.
//!
//! Each issued pair is one PEM file holding the chain and the key,
//! `<prefix>-<UTC time>.pem` (mode 0600), and `<prefix>-current.pem` is a
//! symlink to the one in use, switched atomically (a new symlink renamed
//! over the old). Prefixes are `kubelet-client` and `kubelet-server`. The
//! previous pair is kept (for a look after a bad rotation), older ones are
//! removed. A bootstrap key waiting for its certificate is kept as
//! `<prefix>.key.tmp`, so a restart reuses it (and finds its CSR again).

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::{debug, warn};

use crate::{Certificate, Error, Result};

/// One kind of certificate in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    dir: PathBuf,
    prefix: &'static str,
}

impl Store {
    /// The node's client certificates in `dir` (`kubelet-client-*`).
    pub fn client(dir: &Path) -> Store {
        Store { dir: dir.to_owned(), prefix: "kubelet-client" }
    }

    /// The node's serving certificates in `dir` (`kubelet-server-*`).
    pub fn serving(dir: &Path) -> Store {
        Store { dir: dir.to_owned(), prefix: "kubelet-server" }
    }

    /// `<dir>/<prefix>-current.pem`: what kubeconfigs and `--tls-cert-file`
    /// point at.
    pub fn current_path(&self) -> PathBuf {
        self.dir.join(format!("{}-current.pem", self.prefix))
    }

    /// The pair in use, if there is one.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] for I/O errors other than "not found", and
    /// [`Error::InvalidCertificate`] for a file that does not hold a pair.
    pub async fn current(&self) -> Result<Option<Certificate>> {
        let path = self.current_path();
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Read { path, source }),
        };
        let cert = Certificate::from_combined_pem(&text, &path.display().to_string())?;
        Ok(Some(cert.at(path)))
    }

    /// Writes a new pair and makes it current; returns it (with the
    /// `-current.pem` path).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCertificate`] if `cert_pem` and `key_pem` do not
    /// parse (nothing is written then), [`Error::Write`].
    pub async fn update(&self, cert_pem: &str, key_pem: &str) -> Result<Certificate> {
        let cert = Certificate::from_pem(cert_pem, key_pem, "new certificate")?;
        let store = self.clone();
        let combined = cert.combined_pem();
        let path = blocking(move || store.write_current(&combined)).await?;
        Ok(cert.at(path))
    }

    /// The key of a bootstrap request still waiting for its certificate.
    pub(crate) async fn pending_key(&self) -> Option<String> {
        tokio::fs::read_to_string(self.pending_key_path()).await.ok()
    }

    /// Keeps `key_pem` until [`Store::update`] succeeds.
    pub(crate) async fn set_pending_key(&self, key_pem: &str) -> Result<()> {
        let (path, pem) = (self.pending_key_path(), key_pem.to_owned());
        let dir = self.dir.clone();
        blocking(move || {
            create_dir(&dir)?;
            write_private(&path, pem.as_bytes())
        })
        .await
    }

    pub(crate) async fn clear_pending_key(&self) {
        let path = self.pending_key_path();
        if let Err(e) = tokio::fs::remove_file(&path).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            warn!(path = %path.display(), error = %e, "cannot remove the pending key");
        }
    }

    fn pending_key_path(&self) -> PathBuf {
        self.dir.join(format!("{}.key.tmp", self.prefix))
    }

    fn write_current(&self, combined: &str) -> Result<PathBuf> {
        create_dir(&self.dir)?;
        let stamp = timestamp();
        let mut file_name = format!("{}-{stamp}.pem", self.prefix);
        for n in 1.. {
            if !self.dir.join(&file_name).exists() {
                break;
            }
            file_name = format!("{}-{stamp}-{n}.pem", self.prefix);
        }
        write_private(&self.dir.join(&file_name), combined.as_bytes())?;
        let current = self.current_path();
        let link_tmp = self.dir.join(format!(".{}-current.pem.tmp", self.prefix));
        let write_error = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Write { path, source }
        };
        let _ = std::fs::remove_file(&link_tmp);
        std::os::unix::fs::symlink(&file_name, &link_tmp).map_err(write_error(&link_tmp))?;
        std::fs::rename(&link_tmp, &current).map_err(write_error(&current))?;
        self.prune(&file_name);
        Ok(current)
    }

    /// Removes every pair but the current one and the one before it.
    fn prune(&self, current: &str) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        let stem = format!("{}-", self.prefix);
        let mut pairs: Vec<(std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(&stem) && name.ends_with(".pem") && !name.ends_with("-current.pem") && name != current
            })
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        pairs.sort();
        pairs.pop(); // the previous pair stays
        for (_, path) in pairs {
            debug!(path = %path.display(), "removing an old certificate");
            if let Err(error) = std::fs::remove_file(&path) {
                warn!(path = %path.display(), %error, "cannot remove an old certificate");
            }
        }
    }
}

/// Writes `data` to `path` with mode 0600, atomically (a temporary file
/// renamed over it).
pub(crate) fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    let write_error = |source| Error::Write { path: path.to_owned(), source };
    let tmp = path.with_extension("tmp-write");
    let _ = std::fs::remove_file(&tmp);
    let mut file =
        std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(write_error)?;
    file.write_all(data).and_then(|()| file.sync_all()).map_err(write_error)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(write_error)?;
    std::fs::rename(&tmp, path).map_err(write_error)
}

/// Creates `dir` (mode 0700 when new).
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Write { path: dir.to_owned(), source })
}

/// Runs file work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(Error::Write { path: PathBuf::from("<blocking task>"), source: std::io::Error::other(e.to_string()) })
    })
}

/// `YYYY-MM-DD-HH-MM-SS` in UTC, as upstream names the files.
fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}-{:02}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(cn: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, cn);
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[tokio::test]
    async fn update_switches_current_keeps_one_previous_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::client(&dir.path().join("pki"));
        assert!(store.current().await.unwrap().is_none());
        let mut serials = Vec::new();
        for n in 0..4 {
            let (cert, key) = pair(&format!("n{n}"));
            let stored = store.update(&cert, &key).await.unwrap();
            assert_eq!(stored.path(), Some(store.current_path().as_path()));
            let current = store.current().await.unwrap().unwrap();
            assert_eq!(current.serial(), stored.serial());
            serials.push(stored.serial().to_owned());
        }
        let target = std::fs::read_link(store.current_path()).unwrap();
        assert!(target.is_relative(), "{target:?}");
        let files: Vec<_> = std::fs::read_dir(dir.path().join("pki"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let pairs = files.iter().filter(|f| !f.ends_with("-current.pem")).count();
        assert_eq!(pairs, 2, "current and previous only: {files:?}");
        let mode = std::fs::metadata(store.current_path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(dir.path().join("pki")).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
    }

    #[tokio::test]
    async fn garbage_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::serving(dir.path());
        assert!(store.update("nope", "nope").await.is_err());
        assert!(store.current().await.unwrap().is_none());
        store.set_pending_key("KEY").await.unwrap();
        assert_eq!(store.pending_key().await.as_deref(), Some("KEY"));
        store.clear_pending_key().await;
        assert!(store.pending_key().await.is_none());
    }
}
