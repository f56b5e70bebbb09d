//! `cargo xtask demo`: the README's first command.
//!
//! Brings up the test bed (building what is missing), then shows the cluster
//! healthy and the fixtures in the registry.

use std::process::Command;

use wasmlet_testbed::Testbed;

use crate::steps::exec;
use crate::testbed::{Location, print_exports, up};

pub(crate) async fn run() -> anyhow::Result<()> {
    let location = Location {
        dir: None,
        port_base: None,
    };
    let tb = up(&location).await?;
    banner("cluster health");
    kubectl(&tb, &["get", "--raw", "/readyz"])?;
    println!();
    kubectl(&tb, &["get", "namespaces"])?;
    banner("nodes");
    kubectl(&tb, &["get", "nodes", "-o", "wide"])?;
    banner("fixtures in the registry");
    for image in wasmlet_testbed::fixtures::list(&tb).await? {
        println!("{:<48} {}", image.reference, image.digest);
    }
    banner("use this test bed from your shell");
    print_exports(&tb);
    println!("# stop it with: cargo xtask testbed down");
    Ok(())
}

fn banner(title: &str) {
    println!("\n==== {title} ====");
}

fn kubectl(tb: &Testbed, args: &[&str]) -> anyhow::Result<()> {
    let mut cmd = Command::new(tb.bin_dir().join("kubectl"));
    cmd.arg("--kubeconfig")
        .arg(tb.admin_kubeconfig())
        .args(args);
    exec(&mut cmd, "kubectl")
}
