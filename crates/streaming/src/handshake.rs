//! The HTTP side of a streaming request, before the upgrade: the SPDY
//! upgrade headers, the sub-protocol negotiation (`X-Stream-Protocol-Version`)
//! and the exec/attach query, each refused as upstream refuses it
//! ([`Rejection`]).

use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// The header carrying the sub-protocols the client offers, and the one
/// the server chose.
pub const PROTOCOL_HEADER: &str = "x-stream-protocol-version";
/// The header listing what the server accepts, on a failed negotiation.
pub const ACCEPTED_PROTOCOLS_HEADER: &str = "x-accepted-stream-protocol-versions";
/// The only port-forward protocol.
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
/// The exec/attach protocols, best first.
pub const EXEC_PROTOCOLS: [&str; 4] = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];
/// The upgrade token.
pub const SPDY_31: &str = "SPDY/3.1";

/// A request refused before the upgrade: the status and a plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body (upstream's message).
    pub message: String,
    /// On a failed negotiation (403), the protocols this server accepts,
    /// for [`ACCEPTED_PROTOCOLS_HEADER`].
    pub accepted_protocols: Vec<&'static str>,
}

impl Rejection {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Rejection {
        Rejection { status, message: message.into(), accepted_protocols: Vec::new() }
    }

    /// The extra response headers.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for protocol in &self.accepted_protocols {
            headers.append(ACCEPTED_PROTOCOLS_HEADER, HeaderValue::from_static(protocol));
        }
        headers
    }
}

impl From<crate::StreamError> for Rejection {
    fn from(error: crate::StreamError) -> Self {
        Rejection::new(error.status(), error.to_string())
    }
}

/// Checks that the request asks for a SPDY/3.1 upgrade.
pub(crate) fn check_upgrade(headers: &HeaderMap) -> Result<(), Rejection> {
    let has = |name: HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|part| part.trim().eq_ignore_ascii_case(token)))
    };
    if has(UPGRADE, "websocket") {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: this node serves streaming over SPDY/3.1 only \
             (it does not declare ExtendWebSocketsToKubelet)",
        ));
    }
    if !has(CONNECTION, "upgrade") || !has(UPGRADE, SPDY_31) {
        return Err(Rejection::new(StatusCode::BAD_REQUEST, "unable to upgrade: missing upgrade headers in request"));
    }
    Ok(())
}

/// Picks the best of `supported` (ordered best first) that the client
/// offers.
pub(crate) fn negotiate(headers: &HeaderMap, supported: &[&'static str]) -> Result<&'static str, Rejection> {
    let offered: Vec<&str> = headers
        .get_all(PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if offered.is_empty() {
        return Err(Rejection::new(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required",
        ));
    }
    if let Some(chosen) = supported.iter().find(|s| offered.contains(s)) {
        return Ok(chosen);
    }
    let mut rejection = Rejection::new(
        StatusCode::FORBIDDEN,
        format!(
            "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
            offered.join(" "),
            supported.join(" ")
        ),
    );
    rejection.accepted_protocols = supported.to_vec();
    Err(rejection)
}

/// The headers of the `101 Switching Protocols` answer.
pub(crate) fn response_headers(protocol: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static(SPDY_31));
    headers.insert(PROTOCOL_HEADER, HeaderValue::from_static(protocol));
    headers
}

/// The stdio an exec or attach asks for (the apiserver sends `input`,
/// `output`, `error` and `tty` as `1`; `true` is accepted too).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecOptions {
    /// `command`, repeated: the argv.
    pub command: Vec<String>,
    /// `input`.
    pub stdin: bool,
    /// `output`.
    pub stdout: bool,
    /// `error` (never with `tty`).
    pub stderr: bool,
    /// `tty`.
    pub tty: bool,
}

impl ExecOptions {
    /// Decodes the query pairs; `exec` requires a command.
    pub(crate) fn parse(pairs: &[(String, String)], exec: bool) -> Result<ExecOptions, Rejection> {
        let flag = |names: &[&str]| {
            pairs.iter().any(|(k, v)| names.contains(&k.as_str()) && (v == "1" || v.eq_ignore_ascii_case("true")))
        };
        let mut options = ExecOptions {
            command: pairs.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect(),
            stdin: flag(&["input", "stdin"]),
            stdout: flag(&["output", "stdout"]),
            stderr: flag(&["error", "stderr"]),
            tty: flag(&["tty"]),
        };
        // Upstream drops stderr with a terminal: it is merged into stdout.
        options.stderr &= !options.tty;
        if !options.stdin && !options.stdout && !options.stderr {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                "you must specify at least 1 of stdin, stdout, stderr",
            ));
        }
        if exec && options.command.is_empty() {
            return Err(Rejection::new(
                StatusCode::BAD_REQUEST,
                "you must specify at least one command for the container",
            ));
        }
        if !exec {
            options.command.clear();
        }
        Ok(options)
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
