//! Integration tests of wasmlet-oci against an in-process fake registry.
//! Tests against a real registry live with the project's test bed.

mod fake_registry;
mod limits;
mod pull;
mod store_check;
