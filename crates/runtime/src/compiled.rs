//! [`Compiled`]: compiled code of one image, and telling modules from
//! components.

use std::fmt;
use std::sync::{Arc, OnceLock};

use wasmlet_oci::Digest;
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::http::HttpPre;
use crate::run::Linked;

/// The export that makes a component a `wasi:cli/command`.
const CLI_RUN: &str = "wasi:cli/run";
/// The export that makes a component a `wasi:http/proxy`.
const HTTP_HANDLER: &str = "wasi:http/incoming-handler";

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

/// How an image runs, by what it exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum World {
    /// A core module: a WASI preview 1 command, run with
    /// [`Runtime::run`](crate::Runtime::run).
    Module,
    /// A component exporting `wasi:cli/run`: run with
    /// [`Runtime::run`](crate::Runtime::run).
    Command,
    /// A component exporting `wasi:http/incoming-handler` (and not
    /// `wasi:cli/run`): served with
    /// [`Runtime::serve_http`](crate::Runtime::serve_http).
    HttpProxy,
    /// A component exporting neither: nothing to run.
    Other,
}

impl World {
    /// The world of a component with these export names (`wasi:cli/run`
    /// wins over `wasi:http/incoming-handler` when it exports both, as
    /// `wasmtime run` would run it).
    pub(crate) fn of_exports(exports: &[String]) -> Self {
        if exports.iter().any(|name| is_interface(name, CLI_RUN)) {
            Self::Command
        } else if exports.iter().any(|name| is_interface(name, HTTP_HANDLER)) {
            Self::HttpProxy
        } else {
            Self::Other
        }
    }

    /// `"module"`, `"command"`, `"http-proxy"` or `"other"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Module => "module",
            Self::Command => "command",
            Self::HttpProxy => "http-proxy",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `name` is `interface`, with or without a version.
pub(crate) fn is_interface(name: &str, interface: &str) -> bool {
    name.strip_prefix(interface).is_some_and(|rest| rest.is_empty() || rest.starts_with('@'))
}

/// Compiled code of one image; a cheap clone (an `Arc`).
///
/// Only usable with the [`Runtime`](crate::Runtime) that compiled it.
#[derive(Clone)]
pub struct Compiled(Arc<Inner>);

struct Inner {
    digest: Digest,
    code: Code,
    /// A component's export names (empty for a module).
    exports: Vec<String>,
    world: World,
    /// The code linked against the runtime's WASI linker, made on first run
    /// and reused by every later run (link checks happen once).
    linked: OnceLock<Linked>,
    /// A `wasi:http/proxy` component linked and pre-instantiated for
    /// serving, made on first use.
    http: OnceLock<HttpPre>,
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
        let (exports, world) = match &code {
            Code::Module(_) => (Vec::new(), World::Module),
            Code::Component(component) => {
                let ty = component.component_type();
                let exports: Vec<String> = ty.exports(component.engine()).map(|(name, _)| name.to_owned()).collect();
                let world = World::of_exports(&exports);
                (exports, world)
            }
        };
        Self(Arc::new(Inner { digest, code, exports, world, linked: OnceLock::new(), http: OnceLock::new() }))
    }

    /// How this image runs: [`Runtime::run`](crate::Runtime::run) for a
    /// module or command, [`Runtime::serve_http`](crate::Runtime::serve_http)
    /// for a `wasi:http/proxy` component.
    pub fn world(&self) -> World {
        self.0.world
    }

    /// The names a component exports (empty for a module).
    pub fn exports(&self) -> &[String] {
        &self.0.exports
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

    pub(crate) fn http(&self) -> &OnceLock<HttpPre> {
        &self.0.http
    }
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compiled")
            .field("digest", &self.0.digest)
            .field("kind", &self.kind())
            .field("world", &self.0.world)
            .finish_non_exhaustive()
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

    #[test]
    fn world_from_exports() {
        let names = |n: &[&str]| n.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(World::of_exports(&names(&["wasi:cli/run@0.2.3"])), World::Command);
        assert_eq!(World::of_exports(&names(&["wasi:http/incoming-handler@0.2.9"])), World::HttpProxy);
        assert_eq!(World::of_exports(&names(&["wasi:http/incoming-handler"])), World::HttpProxy);
        assert_eq!(
            World::of_exports(&names(&["wasi:http/incoming-handler@0.2.0", "wasi:cli/run@0.2.0"])),
            World::Command
        );
        assert_eq!(World::of_exports(&names(&["wasi:cli/runner@0.2.3", "wasi:http/incoming-handlers"])), World::Other);
        assert_eq!(World::of_exports(&[]), World::Other);
    }
}
