//! The node's identity and the kubelet API's access control: TLS
//! bootstrapping, certificate rotation, authentication and authorization
//! settings (upstream's flags of the same names).

use std::path::{Path, PathBuf};

use super::{Args, Invalid, check_pem, invalid};

/// How kubelet API requests are authorized (`--authorization-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthorizationMode {
    /// SubjectAccessReview for every request (the default).
    Webhook,
    /// Every authenticated caller may do anything.
    AlwaysAllow,
}

/// The validated security settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Security {
    /// `--bootstrap-kubeconfig`.
    pub(crate) bootstrap_kubeconfig: Option<PathBuf>,
    /// `--cert-dir` (default `<root-dir>/pki`).
    pub(crate) cert_dir: PathBuf,
    /// `--rotate-certificates`: the client certificate.
    pub(crate) rotate_certificates: bool,
    /// `--rotate-server-certificates`: request the serving certificate
    /// from the cluster (`kubernetes.io/kubelet-serving`) and renew it.
    pub(crate) rotate_server_certificates: bool,
    /// `--anonymous-auth` (default false).
    pub(crate) anonymous_auth: bool,
    /// `--client-ca-file`; `None`: the cluster CA of the node kubeconfig.
    pub(crate) client_ca: Option<PathBuf>,
    /// `--authentication-token-webhook` (default true): bearer tokens via TokenReview.
    pub(crate) token_webhook: bool,
    /// `--authorization-mode` (default Webhook).
    pub(crate) authorization: AuthorizationMode,
}

impl Security {
    /// Whether the node identity goes through `wasmlet_certs` (a CSR or rotation).
    pub(crate) fn manages_client_certificate(&self) -> bool {
        self.bootstrap_kubeconfig.is_some() || self.rotate_certificates
    }
}

/// The node kubeconfig: `--kubeconfig`, else `$KUBECONFIG`; with a bootstrap
/// kubeconfig and neither, `<root-dir>/kubelet.kubeconfig` (written after
/// bootstrapping). It must parse if it exists; it may be missing only with
/// a bootstrap kubeconfig.
fn kubeconfig(flag: Option<PathBuf>, bootstrap: Option<&Path>, root_dir: &Path) -> Result<PathBuf, Invalid> {
    let path = match (flag, bootstrap) {
        (Some(path), _) => path,
        (None, Some(_)) => root_dir.join("kubelet.kubeconfig"),
        (None, None) => std::env::var_os("KUBECONFIG")
            .map(PathBuf::from)
            .ok_or_else(|| invalid("--kubeconfig is required (or set KUBECONFIG, or give --bootstrap-kubeconfig)"))?,
    };
    if let Some(bootstrap) = bootstrap {
        parse_kubeconfig(bootstrap, "--bootstrap-kubeconfig")?;
        if !path.exists() {
            return Ok(path);
        }
    }
    parse_kubeconfig(&path, "--kubeconfig")?;
    Ok(path)
}

fn parse_kubeconfig(path: &Path, flag: &str) -> Result<(), Invalid> {
    let kc =
        kube::config::Kubeconfig::read_from(path).map_err(|e| invalid(format!("{flag} {}: {e}", path.display())))?;
    if kc.current_context.is_none() && kc.contexts.len() != 1 {
        return Err(invalid(format!("{flag} {}: no current context", path.display())));
    }
    Ok(())
}

/// The security flags, taken out of [`Args`] before it is consumed.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    kubeconfig: Option<PathBuf>,
    bootstrap_kubeconfig: Option<PathBuf>,
    cert_dir: Option<PathBuf>,
    rotate_certificates: Option<bool>,
    rotate_server_certificates: Option<bool>,
    anonymous_auth: Option<bool>,
    client_ca_file: Option<PathBuf>,
    authentication_token_webhook: Option<bool>,
    authorization_mode: Option<String>,
}

impl Flags {
    pub(crate) fn take(args: &mut Args) -> Flags {
        Flags {
            kubeconfig: args.kubeconfig.take(),
            bootstrap_kubeconfig: args.bootstrap_kubeconfig.take(),
            cert_dir: args.cert_dir.take(),
            rotate_certificates: args.rotate_certificates.take(),
            rotate_server_certificates: args.rotate_server_certificates.take(),
            anonymous_auth: args.anonymous_auth.take(),
            client_ca_file: args.client_ca_file.take(),
            authentication_token_webhook: args.authentication_token_webhook.take(),
            authorization_mode: args.authorization_mode.take(),
        }
    }

    /// The node kubeconfig and the validated settings.
    pub(crate) fn settings(self, root_dir: &Path, static_tls: bool) -> Result<(PathBuf, Security), Invalid> {
        let kubeconfig = kubeconfig(self.kubeconfig, self.bootstrap_kubeconfig.as_deref(), root_dir)?;
        let rotate_server_certificates = self.rotate_server_certificates.unwrap_or(false);
        if rotate_server_certificates && static_tls {
            return Err(invalid("--rotate-server-certificates and --tls-cert-file exclude each other"));
        }
        if let Some(path) = &self.client_ca_file {
            check_pem(path, "CERTIFICATE", "--client-ca-file")?;
        }
        let authorization = match self.authorization_mode.as_deref().unwrap_or("Webhook") {
            "Webhook" => AuthorizationMode::Webhook,
            "AlwaysAllow" => AuthorizationMode::AlwaysAllow,
            other => return Err(invalid(format!("--authorization-mode {other:?}: expected Webhook or AlwaysAllow"))),
        };
        let security = Security {
            bootstrap_kubeconfig: self.bootstrap_kubeconfig,
            cert_dir: self.cert_dir.unwrap_or_else(|| root_dir.join("pki")),
            rotate_certificates: self.rotate_certificates.unwrap_or(false),
            rotate_server_certificates,
            anonymous_auth: self.anonymous_auth.unwrap_or(false),
            client_ca: self.client_ca_file,
            token_webhook: self.authentication_token_webhook.unwrap_or(true),
            authorization,
        };
        Ok((kubeconfig, security))
    }
}
