//! `wasmlet`: a Kubernetes node agent that runs WebAssembly pods.
//!
//! This file only parses the configuration (exit 64 when it is invalid),
//! sets up logging and hands over to [`app::run`].

mod api;
mod app;
mod config;
mod counted;
mod eviction;
mod identity;
mod node_shutdown;
mod plugins;
mod resources;
mod tls;

use std::process::ExitCode;

use clap::Parser;

/// EX_USAGE: the configuration is invalid.
const EXIT_USAGE: u8 = 64;

fn main() -> ExitCode {
    let args = match config::Args::try_parse() {
        Ok(args) => args,
        // --help and --version print and exit 0; anything else is a usage error.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let validate_only = args.validate_only;
    let settings = match args.merge_file().and_then(config::Args::settings) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wasmlet: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if validate_only {
        println!("{settings:#?}");
        return ExitCode::SUCCESS;
    }
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("wasmlet: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "wasmlet failed");
            eprintln!("wasmlet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Dependencies that log payloads at DEBUG or TRACE — guest stdout and
/// stderr (`wasmtime_wasi`'s stream workers), HTTP headers and bodies (the
/// HTTP stacks) — where secrets a guest prints or a request carries would
/// end up. They are capped at INFO whatever the filter asks, so wasmlet's
/// own log never holds them, even at trace level.
const PAYLOAD_TARGETS: [&str; 6] = ["wasmtime_wasi", "wasmtime_wasi_http", "hyper", "hyper_util", "h2", "tungstenite"];

/// Logs go to stderr, filtered by `WASMLET_LOG` (else `RUST_LOG`, else `info`),
/// with [`PAYLOAD_TARGETS`] capped at INFO; `WASMLET_LOG_FORMAT=json`
/// switches to JSON lines.
fn init_tracing() {
    let filter =
        std::env::var("WASMLET_LOG").or_else(|_| std::env::var("RUST_LOG")).unwrap_or_else(|_| "info".to_owned());
    let mut filter =
        tracing_subscriber::EnvFilter::try_new(&filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for target in PAYLOAD_TARGETS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    if std::env::var("WASMLET_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
