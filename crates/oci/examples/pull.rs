//! Pull an image into a store directory and print what was stored.
//!
//! Run with `cargo run -p wasmlet-oci --example pull -- STORE_DIR REFERENCE
//! [--insecure] [--ca PEM] [--auth USER:PASSWORD] [--out FILE]`; `RUST_LOG=wasmlet_oci=debug` shows each step.

use std::path::PathBuf;

use anyhow::Context;
use wasmlet_oci::{ClientOptions, Reference, RegistryAuth, Store, client};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let usage = "usage: pull STORE_DIR REFERENCE [--insecure] [--ca PEM] [--auth USER:PASSWORD] [--out FILE]";
    let root = PathBuf::from(args.next().context(usage)?);
    let reference: Reference = args.next().context(usage)?.parse()?;
    let (mut insecure, mut out) = (false, None);
    let (mut extra_root_pem, mut auth) = (Vec::new(), RegistryAuth::Anonymous);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--insecure" => insecure = true,
            "--ca" => extra_root_pem.push(std::fs::read(args.next().context(usage)?)?),
            "--auth" => {
                let pair = args.next().context(usage)?;
                let (user, password) = pair.split_once(':').context(usage)?;
                auth = RegistryAuth::Basic(user.to_owned(), password.to_owned());
            }
            "--out" => out = Some(PathBuf::from(args.next().context(usage)?)),
            _ => anyhow::bail!(usage),
        }
    }
    let client = client(ClientOptions {
        insecure_registries: if insecure { vec![reference.resolve_registry().to_owned()] } else { Vec::new() },
        extra_root_pem,
        ..ClientOptions::default()
    })?;
    let store = Store::open(root)?;
    let image = store.pull(&client, &reference, &auth).await?;
    println!("{}", serde_json::to_string_pretty(&image)?);
    if let Some(out) = out {
        std::fs::write(&out, store.read(&image.wasm_digest).await?)?;
    }
    Ok(())
}
