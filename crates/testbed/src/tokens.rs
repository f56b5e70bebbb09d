//! Bootstrap tokens, as `kubeadm token create` makes them: a Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`
//! that authenticates as `system:bootstrap:<id>` in group
//! `system:bootstrappers`, and a bootstrap kubeconfig holding it.
//!
//! The RBAC bindings that let such a node ask for (and automatically get)
//! its client certificate are made when the test bed starts (`bootstrap.rs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use rand::Rng;

use crate::process::write_file;
use crate::{Error, Result, Testbed};

/// A bootstrap token `<id>.<secret>`.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    /// `[a-z0-9]{6}`: public, names the Secret.
    pub id: String,
    /// `[a-z0-9]{16}`: the secret part.
    pub secret: String,
}

impl std::fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BootstrapToken").field("id", &self.id).finish_non_exhaustive()
    }
}

impl BootstrapToken {
    /// A fresh random token.
    pub fn generate() -> BootstrapToken {
        BootstrapToken { id: random(6), secret: random(16) }
    }

    /// `<id>.<secret>`, what a client sends.
    pub fn token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// The user it authenticates as.
    pub fn user(&self) -> String {
        format!("system:bootstrap:{}", self.id)
    }
}

fn random(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len).map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())])).collect()
}

impl Testbed {
    /// Creates a bootstrap token valid for `ttl` (the controller manager's
    /// token cleaner deletes it afterwards).
    pub async fn create_bootstrap_token(&self, ttl: Duration) -> Result<BootstrapToken> {
        let token = BootstrapToken::generate();
        let expiration = chrono_like_rfc3339(SystemTime::now() + ttl);
        let data: BTreeMap<String, String> = [
            ("token-id", token.id.as_str()),
            ("token-secret", token.secret.as_str()),
            ("usage-bootstrap-authentication", "true"),
            ("usage-bootstrap-signing", "true"),
            ("description", "wasmlet test bed bootstrap token"),
            ("expiration", expiration.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let secret = Secret {
            metadata: ObjectMeta { name: Some(format!("bootstrap-token-{}", token.id)), ..ObjectMeta::default() },
            type_: Some("bootstrap.kubernetes.io/token".to_owned()),
            string_data: Some(data),
            ..Secret::default()
        };
        let api: Api<Secret> = Api::namespaced(self.admin_client().await?, "kube-system");
        api.create(&PostParams::default(), &secret).await.map_err(Error::Kube)?;
        Ok(token)
    }

    /// Writes a bootstrap kubeconfig for `token` to `path` (mode 0600).
    pub fn write_bootstrap_kubeconfig(&self, path: &Path, token: &BootstrapToken) -> Result<()> {
        let text = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: wasmlet-testbed
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: tls-bootstrap-token-user
  user:
    token: {token}
contexts:
- name: tls-bootstrap
  context:
    cluster: wasmlet-testbed
    user: tls-bootstrap-token-user
current-context: tls-bootstrap
",
            server = self.server(),
            ca = self.ca_cert().display(),
            token = token.token(),
        );
        write_file(path, text.as_bytes())?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|source| Error::Io { path: path.to_owned(), source })
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time after the epoch.
fn chrono_like_rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_bootstrap_format() {
        let t = BootstrapToken::generate();
        assert_eq!(t.id.len(), 6);
        assert_eq!(t.secret.len(), 16);
        assert!(t.token().chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.'));
        assert_eq!(t.user(), format!("system:bootstrap:{}", t.id));
        assert!(!format!("{t:?}").contains(&t.secret), "Debug hides the secret");
        assert_eq!(
            chrono_like_rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 + 61)),
            "1970-01-02T00:01:01Z"
        );
    }
}
