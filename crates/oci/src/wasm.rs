//! Telling WebAssembly core modules from components.
//!
//! The decision reads only the 8-byte header (`\0asm` + version + layer),
//! the same test runwasi and wasmtime use, via
//! [`wasmparser::Parser::is_core_wasm`] / [`wasmparser::Parser::is_component`].

use std::fmt;

use serde::{Deserialize, Serialize};
use wasmparser::{Parser, Payload};

/// Length of the header [`WasmKind::detect`] needs.
pub const HEADER_LEN: usize = 8;

/// What a `.wasm` binary contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WasmKind {
    /// A core module (WASI preview 1 and plain wasm).
    Module,
    /// A component (WASI preview 2 and later).
    Component,
}

impl WasmKind {
    /// Classifies `bytes` by their header; `None` if they are not wasm.
    pub fn detect(bytes: &[u8]) -> Option<Self> {
        if Parser::is_core_wasm(bytes) {
            Some(Self::Module)
        } else if Parser::is_component(bytes) {
            Some(Self::Component)
        } else {
            None
        }
    }

    /// The OCI `os` value for this kind: `wasip1` or `wasip2`.
    pub fn oci_os(self) -> &'static str {
        match self {
            Self::Module => "wasip1",
            Self::Component => "wasip2",
        }
    }
}

impl fmt::Display for WasmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Module => "module",
            Self::Component => "component",
        })
    }
}

/// The names a component imports and exports at its top level, e.g.
/// `wasi:cli/environment@0.2.0`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentInterfaces {
    /// Top-level export names.
    pub exports: Vec<String>,
    /// Top-level import names.
    pub imports: Vec<String>,
}

impl ComponentInterfaces {
    /// Reads the top-level import and export sections of a component.
    /// Nested modules and components are skipped.
    ///
    /// # Errors
    ///
    /// The binary is malformed.
    pub fn read(component: &[u8]) -> Result<Self, wasmparser::BinaryReaderError> {
        let mut out = Self::default();
        // parse_all walks nested modules/components too: every nested
        // ModuleSection/ComponentSection is closed by its own End.
        let mut depth = 0usize;
        for payload in Parser::new(0).parse_all(component) {
            match payload? {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentImportSection(reader) if depth == 0 => {
                    for import in reader {
                        out.imports.push(import?.name.name.to_owned());
                    }
                }
                Payload::ComponentExportSection(reader) if depth == 0 => {
                    for export in reader {
                        out.exports.push(export?.name.name.to_owned());
                    }
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The smallest valid core module.
    pub(crate) const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    /// A component importing `wasi:cli/environment@0.2.0` and exporting that
    /// instance again as `wasi:cli/run@0.2.0`, with a nested core module that
    /// must not be counted. Hand-encoded; parsed, never validated.
    pub(crate) fn component() -> Vec<u8> {
        fn name(n: &str) -> Vec<u8> {
            let mut v = vec![0x00, n.len() as u8];
            v.extend_from_slice(n.as_bytes());
            v
        }
        fn section(id: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![id, body.len() as u8];
            v.extend_from_slice(body);
            v
        }
        let mut c = b"\0asm\x0d\0\x01\0".to_vec();
        // core module section holding an empty module
        c.extend(section(1, MODULE));
        // type section: one empty instance type
        c.extend(section(7, &[0x01, 0x42, 0x00]));
        // import section: instance of type 0
        let mut import = vec![0x01];
        import.extend(name("wasi:cli/environment@0.2.0"));
        import.extend([0x05, 0x00]);
        c.extend(section(10, &import));
        // export section: instance 0, no type ascription
        let mut export = vec![0x01];
        export.extend(name("wasi:cli/run@0.2.0"));
        export.extend([0x05, 0x00, 0x00]);
        c.extend(section(11, &export));
        c
    }

    #[test]
    fn detects_kind_from_header() {
        assert_eq!(WasmKind::detect(MODULE), Some(WasmKind::Module));
        assert_eq!(WasmKind::detect(&component()), Some(WasmKind::Component));
        assert_eq!(WasmKind::detect(b"\0asm"), None);
        assert_eq!(WasmKind::detect(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(WasmKind::Module.oci_os(), "wasip1");
        assert_eq!(WasmKind::Component.oci_os(), "wasip2");
    }

    #[test]
    fn reads_top_level_interfaces_only() {
        let i = ComponentInterfaces::read(&component()).unwrap();
        assert_eq!(i.imports, ["wasi:cli/environment@0.2.0"]);
        assert_eq!(i.exports, ["wasi:cli/run@0.2.0"]);
        assert!(ComponentInterfaces::read(b"\0asm\x0d\0\x01\0\x07\x05").is_err());
    }
}
