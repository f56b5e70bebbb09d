//! The node's identity: TLS bootstrapping, client and serving certificates
//! through `certificates.k8s.io/v1` CSRs, and their rotation, as upstream
//! kubelets of `kubeadm join` nodes do it.
//!
//! Where to start:
//!
//! - [`bootstrap`] turns `--kubeconfig` / `--bootstrap-kubeconfig` into
//!   [`NodeCredentials`]: a `kube::Client` authenticating as
//!   `system:node:<name>` (group `system:nodes`), reusing valid credentials
//!   on disk or getting a certificate through a CSR (auto-approved by the
//!   controller manager for bootstrap tokens).
//! - [`serving_certificate`] gets the kubelet API's certificate from the
//!   `kubernetes.io/kubelet-serving` signer (someone must approve it).
//! - [`Rotator`] renews either at a jittered 70–90 % of its lifetime:
//!   [`Rotator::client`] swaps the identity inside the existing
//!   `kube::Client` (see [`NodeClient`] for how connections are handled),
//!   [`Rotator::serving`] runs a hook that reloads the server's TLS.
//!
//! Files, as upstream lays them out: `<cert-dir>/kubelet-client-current.pem`
//! and `kubelet-server-current.pem` (symlinks to timestamped PEM files with
//! chain and key, mode 0600, see [`Store`]) and the node kubeconfig
//! (mode 0600) pointing at the former.
//!
//! ```no_run
//! # async fn example(tls: std::sync::Arc<dyn Fn(&std::path::Path) + Send + Sync>) -> wasmlet_certs::Result<()> {
//! use tokio_util::sync::CancellationToken;
//! use wasmlet_certs::{Config, Rotator, Template, bootstrap, serving_certificate};
//!
//! let cancel = CancellationToken::new();
//! let mut config = Config::new("wasm-1", "/var/lib/wasmlet".as_ref());
//! config.bootstrap_kubeconfig = Some("/etc/wasmlet/bootstrap.kubeconfig".into());
//! let credentials = bootstrap(&config, &cancel).await?;
//! let client = credentials.client.clone(); // hand this to everything
//! tokio::spawn(Rotator::client(&credentials, &config).run(cancel.clone()));
//!
//! let template = Template::serving("wasm-1", &["wasm-1".into()], &["10.0.0.5".parse().unwrap()]);
//! let serving = serving_certificate(&client, &config, &template, &cancel).await?;
//! let rotator = Rotator::serving(client, serving, template, &config).on_rotate(move |cert| {
//!     let tls = tls.clone();
//!     async move {
//!         tls(cert.path().unwrap_or("/dev/null".as_ref()));
//!         Ok(())
//!     }
//! });
//! tokio::spawn(rotator.run(cancel.clone()));
//! # Ok(())
//! # }
//! ```

mod api;
mod backoff;
mod bootstrap;
mod certificate;
mod client;
pub mod csr;
pub mod deadline;
mod error;
mod issue;
mod kubeconfig;
mod rotator;
mod serving;
mod store;

pub use bootstrap::{Config, DEFAULT_APPROVAL_TIMEOUT, NodeCredentials, bootstrap};
pub use certificate::Certificate;
pub use client::NodeClient;
pub use csr::{Signer, Template};
pub use error::{Error, Result};
pub use rotator::{HookError, Rotator};
pub use serving::serving_certificate;
pub use store::Store;

/// The client certificate of the kubeconfig at `path` (inline or a file).
///
/// # Errors
///
/// The kubeconfig cannot be read, or holds no usable client certificate.
pub async fn kubeconfig_certificate(path: &std::path::Path) -> Result<Certificate> {
    let config = kubeconfig::load(path).await?;
    kubeconfig::identity(&config, path).await
}
