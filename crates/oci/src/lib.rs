//! wasmlet's OCI store: push WebAssembly to a registry, pull it back into a
//! content-addressed store on the node.
//!
//! Where to start:
//!
//! - [`Store`] is the node-side cache. [`Store::pull`] resolves a reference
//!   against a registry and keeps the wasm bytes under their own sha256
//!   digest; [`Store::lookup`], [`Store::read`] and [`Store::gc`] work
//!   offline; [`Store::check`] verifies every blob (the
//!   `wasmlet-store-check` binary wraps it).
//! - [`push::push_wasm`] publishes a `.wasm` file in one of three
//!   [`Layout`]s (the CNCF wasm artifact, the older wasm-to-oci layout, or a
//!   plain OCI image holding `/app.wasm`). The `wasmlet-push` binary wraps it.
//! - [`client()`] builds a registry [`Client`] for plain-http registries
//!   and private certificate authorities.
//! - [`PullLimits`] bound what a pull reads and writes (manifest, config,
//!   layer sizes, free disk), as containerd does.
//! - [`media_type`] lists every media type this crate writes or accepts.
//!
//! Registry access goes through `oci-client`; its [`Reference`] and
//! [`RegistryAuth`] types are re-exported so callers need not depend on it
//! directly.

pub mod client;
pub mod clients;
pub mod digest;
pub mod layer;
pub mod limits;
pub mod media_type;
pub mod pull;
pub mod push;
mod registry;
mod select;
pub mod store;
pub mod wasm;

#[cfg(test)]
mod prop_tests;

pub use client::{Client, ClientOptions, client};
pub use clients::{Clients, is_loopback_registry};
pub use digest::Digest;
pub use limits::PullLimits;
pub use oci_client::Reference;
pub use oci_client::secrets::RegistryAuth;
pub use push::{Artifact, Layout, Pushed, push_wasm};
pub use store::{CheckReport, GcReport, Image, NODE_STORE_DIR, Store};
pub use wasm::WasmKind;
