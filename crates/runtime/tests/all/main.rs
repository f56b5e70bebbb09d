//! Integration tests of wasmlet-runtime against the real wasm fixtures
//! (`make -C fixtures OUT=target/fixtures`; see `fixtures/fixtures.toml`).
//!
//! Guests run on real threads (the epoch ticker, the blocking pool, host
//! I/O), so waits here use real time: each one waits for a condition with a
//! generous timeout, never a fixed sleep.

mod compile;
mod component;
mod core;
mod cpu;
mod fs;
mod http;
mod memory;
mod stop;

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wasmlet_oci::Digest;
use wasmlet_runtime::{Compiled, Config, Exit, GuestSpec, Output, Runtime, StartError};

/// How long any single wait in these tests may take before it fails.
pub const WAIT: Duration = Duration::from_secs(60);

/// What callers rely on: handles shared across tasks, and a `run` future
/// that can be spawned. (Checked at compile time; never called.)
#[allow(dead_code, reason = "a compile-time assertion")]
fn api_is_send(runtime: &Runtime, compiled: &Compiled, spec: GuestSpec) {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    send_sync(runtime);
    send_sync(compiled);
    send(&spec);
    send(&runtime.run(compiled, spec, CancellationToken::new()));
    let digest = compiled.digest();
    send(&runtime.compile(digest, Vec::new()));
}

/// The fixtures directory: `$WASMLET_FIXTURES_DIR`, else
/// `<workspace>/target/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("WASMLET_FIXTURES_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fixtures"),
    }
}

/// The bytes of fixture `file`; a missing fixture fails the test.
pub fn fixture(file: &str) -> Vec<u8> {
    let path = fixtures_dir().join(file);
    match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => panic!(
            "fixture {} is missing ({e}): build the fixtures with \
             `make -C fixtures OUT=$PWD/target/fixtures` from the workspace root \
             (or set WASMLET_FIXTURES_DIR)",
            path.display()
        ),
    }
}

/// A runtime with the default configuration.
pub fn runtime() -> Runtime {
    Runtime::new(Config::default()).unwrap()
}

/// Compiles fixture `file` (digest computed from its bytes).
pub async fn compile(runtime: &Runtime, file: &str) -> Compiled {
    let bytes = fixture(file);
    runtime.compile(&Digest::of(&bytes), bytes).await.unwrap()
}

/// Runs `spec` to its end, failing the test if it takes longer than [`WAIT`].
pub async fn run(runtime: &Runtime, compiled: &Compiled, spec: GuestSpec) -> Result<Exit, StartError> {
    let run = runtime.run(compiled, spec, CancellationToken::new());
    tokio::time::timeout(WAIT, run).await.expect("the guest did not end in time")
}

/// Compiles `file` and runs it with `argv` and `env`, capturing its output.
pub async fn run_fixture(file: &str, argv: &[&str], env: &[(&str, &str)]) -> (Exit, Capture, Capture) {
    let runtime = runtime();
    let compiled = compile(&runtime, file).await;
    let (spec, stdout, stderr) = spec(argv, env);
    let exit = run(&runtime, &compiled, spec).await.unwrap();
    (exit, stdout, stderr)
}

/// A spec with `argv` and `env` whose stdout and stderr are captured.
pub fn spec(argv: &[&str], env: &[(&str, &str)]) -> (GuestSpec, Capture, Capture) {
    let (stdout, stderr) = (Capture::default(), Capture::default());
    let mut spec = GuestSpec::new(argv.iter().copied());
    spec.env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    spec.stdout = Output::new(stdout.clone());
    spec.stderr = Output::new(stderr.clone());
    (spec, stdout, stderr)
}

/// An in-memory output that tests can read and wait on.
#[derive(Clone, Default)]
pub struct Capture {
    bytes: Arc<Mutex<Vec<u8>>>,
    written: Arc<Notify>,
}

impl Capture {
    /// Everything written so far, lossily as text.
    pub fn text(&self) -> String {
        let bytes = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits until the output contains `needle`; fails the test after [`WAIT`].
    pub async fn wait_for(&self, needle: &str) {
        let wait = async {
            loop {
                let written = self.written.notified();
                let mut written = std::pin::pin!(written);
                written.as_mut().enable();
                if self.text().contains(needle) {
                    return;
                }
                written.await;
            }
        };
        if tokio::time::timeout(WAIT, wait).await.is_err() {
            panic!("output never contained {needle:?}; it is:\n{}", self.text());
        }
    }
}

impl AsyncWrite for Capture {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.bytes.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        self.written.notify_waiters();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
