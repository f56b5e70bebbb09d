//! The Container Device Interface (CDI) for WebAssembly guests.
//!
//! Device plugins (`Allocate`'s `cdi_devices`) and DRA drivers
//! (`NodePrepareResources`' `cdi_device_ids`) name devices as
//! `vendor.com/class=name`; a container runtime looks them up in CDI spec
//! files and applies their `containerEdits`. wasmlet does the same for a
//! WASI guest through a [`Registry`] of spec directories:
//!
//! - `env` becomes the guest's environment;
//! - `mounts` become preopens (`ro` → read-only);
//! - device nodes, hooks, network devices, Intel RDT and extra GIDs have no
//!   meaning to a WASI guest: [`Edits`] lists them so that the caller can
//!   tell the user.
//!
//! Start at [`Registry::resolve`]; the file format is in [`spec`].

mod edits;
pub mod name;
mod registry;
pub mod spec;

pub use edits::{Edits, Mount, set_env};
pub use name::{InvalidName, QualifiedName};
pub use registry::{MAX_SPECS_PER_DIR, Registry, ResolveError};
pub use spec::{Spec, SpecError};

#[cfg(test)]
mod tests;
