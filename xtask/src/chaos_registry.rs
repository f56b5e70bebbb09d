//! `cargo xtask chaos registry --mode MODE` starts a fault-injecting proxy
//! ([`wasmlet_testbed::registry_proxy`]) in front of the test bed's plain
//! registry, prints where it listens and an `export` line, and runs until
//! Ctrl-C. `cargo xtask chaos registry --set-mode MODE` switches the mode of
//! the running proxy (through its `PUT /chaos/mode` endpoint, found through
//! `<test bed dir>/chaos/registry-proxy.addr`, or `--proxy ADDR`). SIGTERM
//! stops it like Ctrl-C.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wasmlet_testbed::Testbed;
use wasmlet_testbed::registry_proxy::{CONTROL_PATH, Control, MODE_NAMES, Mode, RegistryProxy};

use crate::testbed::Location;

#[derive(clap::Args)]
#[command(after_help = format!("Modes: {MODE_NAMES}"))]
pub(crate) struct Args {
    /// Start a proxy in this mode (default: pass).
    #[arg(long, conflicts_with = "set_mode")]
    mode: Option<Mode>,
    /// Switch the running proxy to this mode and exit.
    #[arg(long)]
    set_mode: Option<Mode>,
    /// Where a new proxy listens (default: 127.0.0.1 and a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The running proxy --set-mode talks to (default: the one this test
    /// bed's `chaos registry` started).
    #[arg(long)]
    proxy: Option<SocketAddr>,
}

/// Where a running proxy records its address.
fn addr_file(dir: &Path) -> PathBuf {
    dir.join("chaos").join("registry-proxy.addr")
}

pub(crate) async fn run(args: Args, location: &Location) -> anyhow::Result<()> {
    let dir = location.dir();
    if let Some(mode) = args.set_mode {
        let proxy = match args.proxy {
            Some(p) => p,
            None => {
                let file = addr_file(&dir);
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("no running proxy recorded in {} (use --proxy)", file.display()))?;
                text.trim().parse().with_context(|| format!("{}: not an address", file.display()))?
            }
        };
        let answer = set_mode(proxy, mode).await.with_context(|| format!("switching the proxy on {proxy}"))?;
        eprintln!("registry proxy on {proxy}: {}", answer.trim());
        return Ok(());
    }
    let tb = Testbed::open(&dir)?;
    let upstream: SocketAddr = tb.registry().parse().context("the test bed's registry address")?;
    let mode = args.mode.unwrap_or(Mode::Pass);
    let proxy = RegistryProxy::start_on(args.listen, upstream, mode, Control::Http)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = proxy.addr();
    let file = addr_file(&dir);
    std::fs::create_dir_all(file.parent().unwrap_or(&dir))?;
    std::fs::write(&file, format!("{addr}\n")).with_context(|| format!("writing {}", file.display()))?;
    println!("export WASMLET_CHAOS_REGISTRY={addr}");
    eprintln!("registry proxy on {addr} in front of {upstream}, mode {mode}");
    eprintln!("  images:  {addr}/fixtures/<name>:v1 (a node needs --insecure-registries={addr})");
    eprintln!("  switch:  cargo xtask chaos registry --set-mode <mode>   ({MODE_NAMES})");
    eprintln!("  or:      curl -X PUT --data <mode> http://{addr}{CONTROL_PATH}");
    eprintln!("  stop:    Ctrl-C");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    eprintln!("stopping: {} answers altered, {} passed", proxy.faults(), proxy.passed());
    let _ = std::fs::remove_file(&file);
    proxy.stop().await;
    Ok(())
}

/// `PUT /chaos/mode` on the proxy; returns its answer's body.
async fn set_mode(proxy: SocketAddr, mode: Mode) -> anyhow::Result<String> {
    let mut conn = tokio::net::TcpStream::connect(proxy).await?;
    let body = mode.to_string();
    let request = format!(
        "PUT {CONTROL_PATH} HTTP/1.1\r\nHost: {proxy}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(request.as_bytes()).await?;
    let mut raw = String::new();
    conn.read_to_string(&mut raw).await?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw.as_str(), ""));
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "the proxy answered {head:?}: {body}");
    Ok(body.to_owned())
}
