//! Images for containers: `imagePullPolicy` semantics over the node's OCI store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wasmlet_oci::{Clients, Digest, Reference, RegistryAuth, Store, WasmKind};

/// Why an image is not available (each maps to an upstream waiting reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    /// The reference does not parse: `InvalidImageName`.
    #[error("Failed to apply default image tag {image:?}: {reason}")]
    InvalidName {
        /// As written in the spec.
        image: String,
        /// Parser message.
        reason: String,
    },
    /// Policy `Never` and not present: `ErrImageNeverPull`.
    #[error("Container image {image:?} is not present with pull policy of Never")]
    NeverPull {
        /// As written in the spec.
        image: String,
    },
    /// The pull failed: `ErrImagePull`. The message carries the whole cause chain.
    #[error("Failed to pull image {image:?}: {message}")]
    Pull {
        /// As written in the spec.
        image: String,
        /// Cause chain.
        message: String,
    },
}

impl ImageError {
    /// The container waiting reason upstream uses.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidName { .. } => "InvalidImageName",
            Self::NeverPull { .. } => "ErrImageNeverPull",
            Self::Pull { .. } => "ErrImagePull",
        }
    }
}

/// An image ready to run.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// `repository@manifest-digest`, reported as the container's `imageID`.
    pub image_id: String,
    /// Digest of the wasm bytes (the compile-cache key).
    pub digest: Digest,
    /// Module or component.
    pub kind: WasmKind,
    /// `None` when it was already present; otherwise how long the pull took.
    pub pulled_in: Option<Duration>,
}

/// Pulls images for containers and remembers which digests are in use.
pub struct Images {
    store: Store,
    clients: Clients,
    /// Digests in use, with a reference count, for garbage collection.
    in_use: Mutex<HashMap<Digest, usize>>,
    /// When each digest was last resolved (a pull not yet held is kept too).
    recent: Mutex<HashMap<Digest, Instant>>,
}

impl std::fmt::Debug for Images {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Images").field("store", &self.store.root()).finish_non_exhaustive()
    }
}

impl Images {
    /// Images from `store`, pulled with `clients`.
    pub fn new(store: Store, clients: Clients) -> Self {
        Self { store, clients, in_use: Mutex::new(HashMap::new()), recent: Mutex::new(HashMap::new()) }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The registry host of `image`, if it parses.
    pub fn registry_of(image: &str) -> Option<String> {
        image.parse::<Reference>().ok().map(|r| r.resolve_registry().to_owned())
    }

    /// Makes `image` available according to `policy` (`Always`, `IfNotPresent`,
    /// `Never`; empty means the API default: `Always` for `:latest` or no tag).
    /// A pull tries each of `auths` (from pull secrets) and then anonymous
    /// access, moving on only when the registry refuses the credentials.
    pub async fn ensure(&self, image: &str, policy: &str, auths: &[RegistryAuth]) -> Result<Pulled, ImageError> {
        let reference: Reference = image.parse().map_err(|e: oci_reference_error::ParseError| {
            ImageError::InvalidName { image: image.to_owned(), reason: e.to_string() }
        })?;
        let policy = match policy {
            "" if reference.digest().is_none() && reference.tag().is_none_or(|t| t == "latest") => "Always",
            "" => "IfNotPresent",
            p => p,
        };
        if policy != "Always" {
            if let Ok(Some(found)) = self.store.lookup(&reference) {
                self.touch(&found.wasm_digest);
                return Ok(pulled(&reference, found, None));
            }
            if policy == "Never" {
                return Err(ImageError::NeverPull { image: image.to_owned() });
            }
        }
        let mut candidates: Vec<&RegistryAuth> = auths.iter().collect();
        candidates.push(&RegistryAuth::Anonymous);
        let started = Instant::now();
        let mut refused = None;
        for auth in candidates {
            match self.pull(&reference, auth).await {
                Ok(found) => {
                    self.touch(&found.wasm_digest);
                    return Ok(pulled(&reference, found, Some(started.elapsed())));
                }
                Err(PullFailure::Pull(e @ wasmlet_oci::pull::Error::Unauthorized { .. })) => refused = Some(e),
                Err(PullFailure::Pull(e)) => return Err(pull_error(image, &e)),
                Err(PullFailure::Client(e)) => return Err(pull_error(image, &e)),
            }
        }
        Err(match refused {
            Some(e) => pull_error(image, &e),
            None => ImageError::Pull { image: image.to_owned(), message: "no credentials to try".into() },
        })
    }

    /// One pull with `auth`. A loopback registry not named in
    /// `--insecure-registries` is tried over https first and, if that finds
    /// no https server there, over plain http — as Docker and containerd
    /// treat `localhost` registries.
    async fn pull(&self, reference: &Reference, auth: &RegistryAuth) -> Result<wasmlet_oci::Image, PullFailure> {
        let client = self.clients.get(auth).map_err(PullFailure::Client)?;
        let registry = reference.resolve_registry();
        let https = self.store.pull(&client, reference, auth).await;
        let no_https = matches!(&https, Err(e) if e.is_unreachable());
        if !no_https || self.clients.is_insecure(registry) || !wasmlet_oci::is_loopback_registry(registry) {
            return https.map_err(PullFailure::Pull);
        }
        tracing::debug!(%registry, "no https on a loopback registry: trying plain http");
        let plain = self.clients.get_plain(auth, registry).map_err(PullFailure::Client)?;
        match self.store.pull(&plain, reference, auth).await {
            Ok(image) => Ok(image),
            // Report what https said: the registry speaks neither.
            Err(_) => https.map_err(PullFailure::Pull),
        }
    }

    /// Marks `digest` as used by a container (kept by garbage collection).
    pub fn hold(&self, digest: &Digest) {
        let mut in_use = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        *in_use.entry(digest.clone()).or_default() += 1;
    }

    /// Releases a [`Images::hold`].
    pub fn release(&self, digest: &Digest) {
        let mut in_use = self.in_use.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = in_use.get_mut(digest) {
            *n -= 1;
            if *n == 0 {
                in_use.remove(digest);
            }
        }
    }

    /// Digests to keep: held by a container, or resolved within `recent`.
    pub fn keep(&self, recent: Duration) -> std::collections::HashSet<Digest> {
        let mut keep: std::collections::HashSet<Digest> =
            self.in_use.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        let mut times = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        times.retain(|_, at| at.elapsed() < recent);
        keep.extend(times.keys().cloned());
        keep
    }

    fn touch(&self, digest: &Digest) {
        self.recent.lock().unwrap_or_else(|p| p.into_inner()).insert(digest.clone(), Instant::now());
    }
}

/// Why one pull attempt failed.
enum PullFailure {
    Client(wasmlet_oci::client::Error),
    Pull(wasmlet_oci::pull::Error),
}

/// oci-client's reference parser error type.
mod oci_reference_error {
    pub(super) type ParseError = <wasmlet_oci::Reference as std::str::FromStr>::Err;
}

fn pulled(reference: &Reference, image: wasmlet_oci::Image, pulled_in: Option<Duration>) -> Pulled {
    Pulled {
        image_id: format!("{}/{}@{}", reference.resolve_registry(), reference.repository(), image.manifest_digest),
        digest: image.wasm_digest,
        kind: image.kind,
        pulled_in,
    }
}

fn pull_error(image: &str, e: &(dyn std::error::Error + 'static)) -> ImageError {
    ImageError::Pull { image: image.to_owned(), message: error_chain(e) }
}

/// `outer: inner: innermost`, skipping repeats.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}
