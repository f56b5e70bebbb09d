//! [`Compiled`]: compiled code of one image, and telling modules from
//! components.

use std::fmt;
use std::sync::{Arc, OnceLock};

use wasmlet_oci::Digest;
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::run::Linked;

/// `\0asm`, version 1, layer 0: a core module.
const CORE_HEADER: &[u8] = b"\0asm\x01\0\0\0";
/// `\0asm`, version 0x0d, layer 1: a component.
const COMPONENT_HEADER: &[u8] = b"\0asm\x0d\0\x01\0";

/// What kind of WebAssembly binary an image holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A core module (run as a WASI preview 1 command).
    Module,
    /// A component (run as a `wasi:cli/command` if it exports `wasi:cli/run`).
    Component,
}

impl Kind {
    /// Detects the kind from the binary header (`\0asm` then version and
    /// layer: `01 00 00 00` for a core module, `0d 00 01 00` for a
    /// component). Anything else, WAT text included, is `None`.
    pub fn detect(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(CORE_HEADER) {
            Some(Self::Module)
        } else if bytes.starts_with(COMPONENT_HEADER) {
            Some(Self::Component)
        } else {
            None
        }
    }

    /// `"module"` or `"component"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Module => "module",
            Self::Component => "component",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compiled code of one image; a cheap clone (an `Arc`).
///
/// Only usable with the [`Runtime`](crate::Runtime) that compiled it.
#[derive(Clone)]
pub struct Compiled(Arc<Inner>);

struct Inner {
    digest: Digest,
    code: Code,
    /// The code linked against the runtime's WASI linker, made on first run
    /// and reused by every later run (link checks happen once).
    linked: OnceLock<Linked>,
}

/// The compiled code itself.
#[derive(Clone)]
pub(crate) enum Code {
    Module(Module),
    Component(Component),
}

impl Code {
    /// Compiles `bytes` of `kind` (binary only: WAT text is rejected).
    /// Synchronous and CPU-bound: call it on the blocking pool.
    pub(crate) fn compile(engine: &Engine, kind: Kind, bytes: &[u8]) -> wasmtime::Result<Self> {
        Ok(match kind {
            Kind::Module => Self::Module(Module::from_binary(engine, bytes)?),
            Kind::Component => Self::Component(Component::from_binary(engine, bytes)?),
        })
    }
}

impl Compiled {
    pub(crate) fn new(digest: Digest, code: Code) -> Self {
        Self(Arc::new(Inner { digest, code, linked: OnceLock::new() }))
    }

    /// The digest of the image this was compiled from.
    pub fn digest(&self) -> &Digest {
        &self.0.digest
    }

    /// Module or component.
    pub fn kind(&self) -> Kind {
        match self.0.code {
            Code::Module(_) => Kind::Module,
            Code::Component(_) => Kind::Component,
        }
    }

    /// The core module, if this is one.
    pub fn module(&self) -> Option<&Module> {
        match &self.0.code {
            Code::Module(module) => Some(module),
            Code::Component(_) => None,
        }
    }

    /// The component, if this is one (for serving it other than as a
    /// command, e.g. as `wasi:http/proxy`).
    pub fn component(&self) -> Option<&Component> {
        match &self.0.code {
            Code::Component(component) => Some(component),
            Code::Module(_) => None,
        }
    }

    pub(crate) fn code(&self) -> &Code {
        &self.0.code
    }

    pub(crate) fn engine(&self) -> &Engine {
        match &self.0.code {
            Code::Module(module) => module.engine(),
            Code::Component(component) => component.engine(),
        }
    }

    pub(crate) fn linked(&self) -> &OnceLock<Linked> {
        &self.0.linked
    }
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiled").field("digest", &self.0.digest).field("kind", &self.kind()).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_kind_from_header() {
        assert_eq!(Kind::detect(b"\0asm\x01\0\0\0"), Some(Kind::Module));
        assert_eq!(Kind::detect(b"\0asm\x0d\0\x01\0rest"), Some(Kind::Component));
        assert_eq!(Kind::detect(b"(module)"), None);
        assert_eq!(Kind::detect(b"\0asm"), None);
        assert_eq!(Kind::detect(b""), None);
    }
}
