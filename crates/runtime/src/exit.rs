//! [`Exit`]: how a guest ended, in the terms a container status uses.
//!
//! Exit codes follow what a Linux container runtime reports, so `kubectl`
//! users read them as they would for a process: `exit(n)` is `n`, a trap is
//! an abort (128 + SIGABRT = 134), a stop is SIGTERM's default action
//! (128 + 15 = 143; a wasm guest has no signal handlers, so immediate
//! termination is the faithful mapping) and an exceeded memory limit is an OOM
//! kill (128 + SIGKILL = 137).
//!
//! A `wasi:http` server handles the stop itself, as a server handling
//! SIGTERM would: it stops accepting and drains; it exits 0 when every
//! request finished within the drain period, and 137 (the kill that ends a
//! grace period) when some had to be dropped.

use std::fmt;
use std::time::Duration;

use wasmtime::WasmBacktrace;
use wasmtime_wasi::I32Exit;

/// Exit code of a guest that trapped (128 + SIGABRT).
pub const TRAP_EXIT_CODE: i32 = 134;
/// Exit code of a guest stopped through its token (128 + SIGTERM).
pub const STOPPED_EXIT_CODE: i32 = 143;
/// Exit code of a guest that exceeded its memory limit (128 + SIGKILL).
pub const OOM_EXIT_CODE: i32 = 137;
/// Exit code of a `wasi:http` server stopped with requests still running at
/// the end of its drain period (128 + SIGKILL: what the kubelet's kill after
/// the grace period reports). A server that drained in time exits 0.
pub const DRAIN_EXPIRED_EXIT_CODE: i32 = 137;
/// Exit code of a component whose `wasi:cli/run` returned `err`.
pub const RUN_ERR_EXIT_CODE: i32 = 1;

/// The longest [`Exit::message`], in bytes (a container status message should
/// stay small; Kubernetes caps termination messages at 4 KiB).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Why a guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// The guest returned from its entry point or called `exit(n)`.
    Exited,
    /// The guest trapped (or a host call failed fatally).
    Trapped,
    /// The stop token was cancelled and the guest was dropped.
    Stopped,
    /// The guest tried to grow its memory past its limit, or past what the
    /// node has left for pods.
    OutOfMemory,
}

impl ExitReason {
    /// A low-cardinality label for metrics and container status reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exited => "Exited",
            Self::Trapped => "Trapped",
            Self::Stopped => "Stopped",
            Self::OutOfMemory => "OOMKilled",
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a guest that started ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The container exit code.
    pub code: i32,
    /// Why it ended.
    pub reason: ExitReason,
    /// Detail for humans: the trap with its wasm backtrace, the memory limit,
    /// … Empty for a plain exit.
    pub message: String,
    /// Wall-clock time from the start of instantiation to the end.
    pub wall: Duration,
    /// CPU time spent executing the guest in this run: the thread CPU time
    /// of the polls of its future (wasm code and synchronous host calls; time
    /// spent waiting on I/O, timers or a CPU limit is not counted). See
    /// [`GuestStats`](crate::GuestStats) for the live figure.
    pub cpu: Duration,
}

impl Exit {
    /// A guest that was stopped through its token.
    pub(crate) fn stopped() -> Self {
        Self::new(STOPPED_EXIT_CODE, ExitReason::Stopped, "stopped")
    }

    /// A server that stopped after every request in flight finished.
    pub(crate) fn drained() -> Self {
        Self::new(0, ExitReason::Stopped, String::new())
    }

    /// A server whose drain period of `drain` ended with `in_flight`
    /// requests still running, which were dropped.
    pub(crate) fn drain_expired(drain: Duration, in_flight: u64) -> Self {
        let message = format!("stopped: {in_flight} request(s) still running after the drain period of {drain:?}");
        Self::new(DRAIN_EXPIRED_EXIT_CODE, ExitReason::Stopped, message)
    }

    /// A guest that exceeded `limit` bytes of memory.
    pub(crate) fn out_of_memory(limit: u64) -> Self {
        let message = format!("memory limit of {limit} bytes exceeded");
        Self::new(OOM_EXIT_CODE, ExitReason::OutOfMemory, message)
    }

    /// A guest stopped because all guests of the node together reached
    /// `limit` bytes, the node's memory for pods
    /// ([`Config::node_memory_bytes`](crate::Config::node_memory_bytes)).
    pub(crate) fn node_out_of_memory(limit: u64) -> Self {
        let message = format!("the node's memory for pods is exhausted (all guests together may use {limit} bytes)");
        Self::new(OOM_EXIT_CODE, ExitReason::OutOfMemory, message)
    }

    /// A guest that exited with `code`.
    pub(crate) fn exited(code: i32) -> Self {
        Self::new(code, ExitReason::Exited, String::new())
    }

    /// Classifies the error a guest's entry point returned: `exit(n)` is a
    /// normal exit, anything else (a trap, a fatal host error) a trap.
    pub(crate) fn from_guest_error(error: &wasmtime::Error) -> Self {
        if let Some(I32Exit(code)) = error.downcast_ref::<I32Exit>() {
            return Self::exited(*code);
        }
        Self::new(TRAP_EXIT_CODE, ExitReason::Trapped, trap_message(error))
    }

    fn new(code: i32, reason: ExitReason, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), wall: Duration::ZERO, cpu: Duration::ZERO }
    }
}

/// The error's chain (`wasm trap: …`), then the wasm backtrace wasmtime
/// attached as context, truncated to [`MAX_MESSAGE_BYTES`].
fn trap_message(error: &wasmtime::Error) -> String {
    let backtrace = error.downcast_ref::<WasmBacktrace>().map(ToString::to_string);
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if backtrace.as_deref() == Some(cause.as_str()) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    if let Some(backtrace) = backtrace {
        text.push('\n');
        text.push_str(&backtrace);
    }
    truncate(text, MAX_MESSAGE_BYTES)
}

/// `text` cut to at most `max` bytes on a character boundary, marked with `…`.
fn truncate(mut text: String, max: usize) -> String {
    const MARK: &str = "…";
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(MARK);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i32_exit_is_a_normal_exit() {
        let exit = Exit::from_guest_error(&wasmtime::Error::new(I32Exit(7)));
        assert_eq!((exit.code, exit.reason), (7, ExitReason::Exited));
        assert_eq!(exit.message, "");
    }

    #[test]
    fn other_errors_are_traps_with_their_text() {
        let error = wasmtime::Error::new(wasmtime::Trap::UnreachableCodeReached);
        let exit = Exit::from_guest_error(&error);
        assert_eq!((exit.code, exit.reason), (134, ExitReason::Trapped));
        assert!(exit.message.contains("unreachable"), "{}", exit.message);
    }

    #[test]
    fn long_messages_are_truncated_on_a_char_boundary() {
        let text = "é".repeat(MAX_MESSAGE_BYTES);
        let cut = truncate(text, MAX_MESSAGE_BYTES);
        assert!(cut.len() <= MAX_MESSAGE_BYTES);
        assert!(cut.ends_with('…'));
        assert_eq!(truncate("short".to_owned(), 10), "short");
    }

    #[test]
    fn oom_message_names_the_limit() {
        let exit = Exit::out_of_memory(16 << 20);
        assert_eq!((exit.code, exit.reason), (137, ExitReason::OutOfMemory));
        assert_eq!(exit.message, "memory limit of 16777216 bytes exceeded");
        let node = Exit::node_out_of_memory(1 << 30);
        assert_eq!((node.code, node.reason), (137, ExitReason::OutOfMemory));
        assert_eq!(
            node.message,
            "the node's memory for pods is exhausted (all guests together may use 1073741824 bytes)"
        );
    }
}
