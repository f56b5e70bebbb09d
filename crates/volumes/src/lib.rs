//! Configuration and volumes that come from the API server, materialized for
//! WASI guests.
//!
//! Start here:
//!
//! 1. [`Sources::new`] once per node: the shared, reference-counted cache of
//!    the ConfigMaps and Secrets pods reference (single-object watches, as
//!    the Node authorizer allows) and the Services reflector.
//!    [`Sources::register_pod`] when a pod is admitted keeps its objects
//!    watched for its lifetime.
//! 2. [`resolve_env`] per container start: the environment with Kubernetes
//!    semantics (service links, `envFrom`, `env` with `$(VAR)` expansion and
//!    `valueFrom`).
//! 3. [`Volumes::prepare`] per pod: every volume under
//!    `<pod_dir>/volumes/<name>/`, giving a [`PodVolumes`]; run
//!    [`PodVolumes::run`] on a task to keep configMap, secret, downwardAPI
//!    and projected content (and service-account tokens) current; ask
//!    [`PodVolumes::mounts`] for each container's preopens; finally
//!    [`PodVolumes::cleanup`] (or [`Volumes::cleanup`] after a restart).
//!
//! Module map: [`sources`] (the cache), [`env`](mod@env) and [`services`] (the
//! environment), [`fieldpath`] (downward API values), [`expand`] (`$(VAR)`),
//! [`atomic`] (the kubelet's atomic writer), [`payload`] (what a volume
//! contains, file modes), [`token`] (TokenRequest and renewal),
//! [`volumes`] (kinds of volumes), [`mounts`] (volumeMounts, subPath),
//! [`quantity`].

pub mod atomic;
pub mod env;
pub mod expand;
pub mod fieldpath;
pub mod mounts;
pub mod payload;
pub use wasmlet_quantity as quantity;
pub mod services;
pub mod sources;
pub mod token;
pub mod volumes;

pub use env::{EnvContext, EnvError, resolve_env};
pub use mounts::MountError;
pub use sources::{Kind, Object, PodSources, Snapshot, SourceError, Sources, Subscription};
pub use token::{ApiTokens, Token, TokenError, TokenIssuer, TokenSpec};
pub use volumes::{
    Config, ExternalError, ExternalMount, ExternalStats, ExternalVolumes, PodVolumes, SetUpError, Usage, VolumeError,
    Volumes,
};
