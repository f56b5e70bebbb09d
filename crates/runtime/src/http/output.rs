//! [`SharedOutput`]: one guest output stream (stdout or stderr) shared by
//! every instance of a server, as a process's threads share its stdout.

use std::sync::Arc;

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{AsyncStdoutStream, IsTerminal, StdoutStream};
use wasmtime_wasi::p2::OutputStream;

/// A cheap clone of one buffered output stream; each instance writes to it
/// through its own handle. Writes of concurrent instances interleave at
/// write granularity (a guest's `println!` is one write).
#[derive(Clone)]
pub(crate) struct SharedOutput(Arc<AsyncStdoutStream>);

impl SharedOutput {
    pub(crate) fn new(stream: AsyncStdoutStream) -> Self {
        Self(Arc::new(stream))
    }
}

impl IsTerminal for SharedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for SharedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        self.0.p2_stream()
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        self.0.async_stream()
    }
}
