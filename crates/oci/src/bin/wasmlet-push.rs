//! `wasmlet-push`: publish a `.wasm` file to an OCI registry.
//!
//! Run with `cargo run -p wasmlet-oci --bin wasmlet-push -- app.wasm
//! 127.0.0.1:5000/app:v1 --insecure`. Prints the manifest digest on stdout;
//! logs go to stderr (filter with `RUST_LOG`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use tracing_subscriber::EnvFilter;
use wasmlet_oci::{Artifact, ClientOptions, Layout, Reference, RegistryAuth, client};

/// Push a WebAssembly module or component to an OCI registry.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The `.wasm` file to push.
    file: PathBuf,
    /// Target reference, e.g. `127.0.0.1:5000/hello:v1`.
    reference: String,
    /// How to package the wasm.
    #[arg(long, value_enum, default_value_t = LayoutArg::Cncf)]
    layout: LayoutArg,
    /// Talk plain http to the reference's registry.
    #[arg(long)]
    insecure: bool,
    /// Registry user name (HTTP basic or token auth).
    #[arg(long, requires = "password")]
    username: Option<String>,
    /// Registry password.
    #[arg(long, env = "WASMLET_PUSH_PASSWORD", hide_env_values = true, requires = "username")]
    password: Option<String>,
    /// Extra PEM root certificate(s) to trust.
    #[arg(long, value_name = "PEM")]
    ca_file: Vec<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    /// CNCF wasm artifact (application/wasm).
    Cncf,
    /// Legacy wasm-to-oci layout.
    WasmToOci,
    /// OCI image with /app.wasm in a tar+gzip layer.
    Image,
}

impl From<LayoutArg> for Layout {
    fn from(l: LayoutArg) -> Self {
        match l {
            LayoutArg::Cncf => Layout::Cncf,
            LayoutArg::WasmToOci => Layout::WasmToOci,
            LayoutArg::Image => Layout::Image,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // The TLS verifier logs every rejected certificate at ERROR; the
            // error is reported anyway.
            EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn,rustls_platform_verifier=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let reference: Reference =
        args.reference.parse().with_context(|| format!("invalid reference {:?}", args.reference))?;
    let wasm = tokio::fs::read(&args.file).await.with_context(|| format!("reading {}", args.file.display()))?;
    let mut extra_root_pem = Vec::new();
    for path in &args.ca_file {
        let pem = tokio::fs::read(path).await.with_context(|| format!("reading {}", path.display()))?;
        extra_root_pem.push(pem);
    }
    let insecure_registries = if args.insecure { vec![reference.resolve_registry().to_owned()] } else { Vec::new() };
    let client = client(ClientOptions { insecure_registries, extra_root_pem, ..ClientOptions::default() })?;
    let auth = match (args.username, args.password) {
        (Some(user), Some(password)) => RegistryAuth::Basic(user, password),
        _ => RegistryAuth::Anonymous,
    };
    let title = args.file.file_name().and_then(|n| n.to_str()).unwrap_or(wasmlet_oci::push::DEFAULT_TITLE);
    let artifact = Artifact::builder(wasm)
        .layout(args.layout.into())
        .title(title)
        .build()
        .with_context(|| format!("packaging {}", args.file.display()))?;
    let pushed = artifact.push(&client, &reference, &auth).await?;
    println!("{}", pushed.manifest_digest);
    Ok(())
}
