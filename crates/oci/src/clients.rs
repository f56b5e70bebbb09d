//! One registry client per set of credentials.
//!
//! `oci-client` remembers the first credentials it sees for a registry host
//! (see [`crate::client`]'s caveats), so a node that pulls a public image
//! anonymously and then a private one with a pull secret from the same host
//! needs two clients. [`Clients`] keeps them, keyed by a digest of the
//! credentials (never the credentials themselves), each with its own token
//! cache — so registry tokens are cached per credentials, registry,
//! repository and operation, with the expiry the registry gave them.

use std::sync::Mutex;

use oci_client::secrets::RegistryAuth;
use sha2::{Digest as _, Sha256};

use crate::client::{Client, ClientOptions, Error, client};

/// How many credential sets keep a client; the least recently used goes first.
pub const MAX_CLIENTS: usize = 64;

/// A bounded pool of registry clients, one per set of credentials.
pub struct Clients {
    options: ClientOptions,
    /// Most recently used last.
    pool: Mutex<Vec<(String, Client)>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Clients {
    /// A pool whose clients are built with `options`.
    ///
    /// # Errors
    ///
    /// The options are invalid (checked by building the anonymous client now).
    pub fn new(options: ClientOptions) -> Result<Self, Error> {
        let anonymous = client(options.clone())?;
        Ok(Self { options, pool: Mutex::new(vec![(key(&RegistryAuth::Anonymous), anonymous)]) })
    }

    /// The client to use with `auth`.
    ///
    /// # Errors
    ///
    /// Building a new client failed (cannot happen once [`Clients::new`] succeeded
    /// with the same options, but is reported rather than assumed).
    pub fn get(&self, auth: &RegistryAuth) -> Result<Client, Error> {
        self.pooled(key(auth), || self.options.clone())
    }

    /// The client to use with `auth` that reaches `registry` over plain
    /// http (for a loopback registry that does not speak https, as Docker
    /// and containerd allow without configuration).
    ///
    /// # Errors
    ///
    /// Building a new client failed.
    pub fn get_plain(&self, auth: &RegistryAuth, registry: &str) -> Result<Client, Error> {
        self.pooled(format!("{}\0plain\0{registry}", key(auth)), || {
            let mut options = self.options.clone();
            options.insecure_registries.push(registry.to_owned());
            options
        })
    }

    /// The pooled client under `key`, built with `options()` if missing;
    /// most recently used last, the least recently used dropped past
    /// [`MAX_CLIENTS`].
    fn pooled(&self, key: String, options: impl FnOnce() -> ClientOptions) -> Result<Client, Error> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pos) = pool.iter().position(|(k, _)| *k == key) {
            let entry = pool.remove(pos);
            let client = entry.1.clone();
            pool.push(entry);
            return Ok(client);
        }
        let client = client(options())?;
        if pool.len() >= MAX_CLIENTS {
            pool.remove(0);
        }
        pool.push((key, client.clone()));
        Ok(client)
    }

    /// Whether `registry` is reached over plain http anyway
    /// ([`ClientOptions::insecure_registries`]).
    pub fn is_insecure(&self, registry: &str) -> bool {
        self.options.insecure_registries.iter().any(|r| r == registry)
    }
}

/// Whether `registry` (`host[:port]`) is on this machine's loopback:
/// `localhost`, `127.0.0.0/8` or `[::1]`.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn key(auth: &RegistryAuth) -> String {
    let material = match auth {
        RegistryAuth::Anonymous => "anonymous".to_owned(),
        RegistryAuth::Basic(user, password) => format!("basic\0{user}\0{password}"),
        RegistryAuth::Bearer(token) => format!("bearer\0{token}"),
    };
    hex::encode(Sha256::digest(material.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_recognised() {
        for r in ["localhost:5000", "127.0.0.1:5000", "127.1.2.3", "[::1]:5000", "localhost"] {
            assert!(is_loopback_registry(r), "{r}");
        }
        for r in ["docker.io", "10.0.0.1:5000", "[2001:db8::1]:5000", "localhost.example.com:5000", "127.0.0.1.nip.io"]
        {
            assert!(!is_loopback_registry(r), "{r}");
        }
    }

    #[test]
    fn one_client_per_credentials_and_bounded() {
        let clients = Clients::new(ClientOptions::default()).unwrap();
        for i in 0..(MAX_CLIENTS + 10) {
            clients.get(&RegistryAuth::Basic(format!("u{i}"), "p".into())).unwrap();
        }
        assert_eq!(clients.pool.lock().unwrap().len(), MAX_CLIENTS);
        // Keys never hold the secret itself.
        let k = key(&RegistryAuth::Basic("user".into(), "hunter2".into()));
        assert!(!k.contains("hunter2"));
        assert_ne!(k, key(&RegistryAuth::Basic("user".into(), "other".into())));
        assert_eq!(key(&RegistryAuth::Anonymous), key(&RegistryAuth::Anonymous));
    }
}
