//! `wasmlet-store-check`: verify every blob of a node's image store against
//! its digest.
//!
//! Run with `cargo run -p wasmlet-oci --bin wasmlet-store-check --
//! --root-dir /var/lib/wasmlet` (the node's `--root-dir`; the store is its
//! `images/` directory) or `--store DIR`. Prints one line per problem and a
//! summary; exits 0 when the store is clean, 1 when a blob is corrupt (or a
//! file or index entry is not what the store writes), 2 when the store
//! cannot be read. Only reads: run it on a stopped node, or on a running
//! one (a pull in progress is not disturbed).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wasmlet_oci::{NODE_STORE_DIR, Store};

/// Verify every blob of a wasmlet image store against its digest.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The node's root directory (its `--root-dir`); the store is `<DIR>/images`.
    #[arg(long, required_unless_present = "store", conflicts_with = "store")]
    root_dir: Option<PathBuf>,
    /// The store directory itself.
    #[arg(long)]
    store: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let dir = match (args.store, args.root_dir) {
        (Some(store), _) => store,
        (None, Some(root)) => root.join(NODE_STORE_DIR),
        (None, None) => unreachable!("clap requires one of --root-dir and --store"),
    };
    if !dir.join("blobs").is_dir() {
        eprintln!("wasmlet-store-check: {} is not an image store (no blobs/ directory)", dir.display());
        return ExitCode::from(2);
    }
    let report = match Store::open(&dir) {
        Ok(store) => store.check().await,
        Err(e) => Err(e),
    };
    match report {
        Ok(report) => {
            println!("{}: {report}", dir.display());
            if report.is_clean() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            eprintln!(
                "wasmlet-store-check: {}: {e}: {}",
                dir.display(),
                std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default()
            );
            ExitCode::from(2)
        }
    }
}
