//! Generates the gRPC code from the vendored `.proto` files (see
//! `proto/README.md`): `protox` parses them (pure Rust, so the build needs no
//! `protoc` and no network) and `tonic-prost-build` writes the messages,
//! clients and servers into `OUT_DIR`.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/pluginregistration/v1/api.proto",
    "proto/csi/v1/csi.proto",
    "proto/deviceplugin/v1beta1/api.proto",
    "proto/dra/v1/api.proto",
    "proto/dra/v1beta1/api.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure().build_client(true).build_server(true).out_dir(&out).compile_fds(descriptors)?;
    Ok(())
}
