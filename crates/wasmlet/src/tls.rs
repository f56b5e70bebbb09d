//! The kubelet API's serving certificate: the configured one, or — as the
//! upstream kubelet does without `--tls-cert-file` — a self-signed one kept
//! under the root directory.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

/// The certificate and key files to serve with.
pub(crate) fn serving_files(
    configured: Option<(PathBuf, PathBuf)>,
    root_dir: &Path,
    node_name: &str,
    node_ip: IpAddr,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    if let Some(files) = configured {
        return Ok(files);
    }
    let dir = root_dir.join("pki");
    let (cert, key) = (dir.join("kubelet.crt"), dir.join("kubelet.key"));
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let key_pair = KeyPair::generate().context("generating the serving key")?;
    let mut params = CertificateParams::new(vec![node_name.to_owned(), "localhost".to_owned()])
        .context("serving certificate parameters")?;
    params.subject_alt_names.push(SanType::IpAddress(node_ip));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{node_name}@wasmlet"));
    params.distinguished_name = dn;
    let certificate = params.self_signed(&key_pair).context("self-signing the serving certificate")?;
    write_private(&key, &key_pair.serialize_pem())?;
    std::fs::write(&cert, certificate.pem()).with_context(|| format!("writing {}", cert.display()))?;
    tracing::info!(cert = %cert.display(), "generated a self-signed serving certificate");
    Ok((cert, key))
}

fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(pem.as_bytes()).with_context(|| format!("writing {}", path.display()))
}
