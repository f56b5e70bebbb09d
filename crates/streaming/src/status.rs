//! What exec and attach write on the error stream when the command ends.
//!
//! Protocol v4 (`v4.channel.k8s.io`) writes a `metav1.Status` as JSON,
//! success included; client-go reads a non-zero exit code from
//! `details.causes[{reason: "ExitCode", message: "<n>"}]` (the Go field is
//! `Type`, serialized as `reason`) and parses it as a `u8`. Earlier
//! protocols write only failures, as the status message in plain text.
//! Fields are in Go's order, so the bytes match what a kubelet writes.

use serde::Serialize;

/// The exit code client-go can read: 1..=255; others become 255.
fn wire_exit_code(code: i32) -> u8 {
    u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(255)
}

/// How an exec or attach ended, as reported on the error stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecStatus {
    /// Exit code 0 (or an attach that ended).
    Success,
    /// A non-zero exit code.
    ExitCode {
        /// The code.
        code: i32,
        /// The command, for the message.
        command: Vec<String>,
    },
    /// The command could not be run.
    Internal {
        /// What failed.
        message: String,
    },
}

#[derive(Serialize)]
struct Status<'a> {
    metadata: Empty,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct Details<'a> {
    causes: [Cause<'a>; 1],
}

#[derive(Serialize)]
struct Cause<'a> {
    #[serde(rename = "reason", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    message: &'a str,
}

impl ExecStatus {
    /// The status message (what v1-v3 write, and kubectl may print).
    pub fn message(&self) -> Option<String> {
        match self {
            ExecStatus::Success => None,
            ExecStatus::ExitCode { code, command } => Some(format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                command.join(" ")
            )),
            ExecStatus::Internal { message } => {
                Some(format!("Internal error occurred: error executing command in container: {message}"))
            }
        }
    }

    /// The v4 payload: a `metav1.Status` in JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let message = self.message();
        let code_text;
        let cause_text;
        let status = match self {
            ExecStatus::Success => {
                Status { metadata: Empty {}, status: "Success", message: None, reason: None, details: None, code: None }
            }
            ExecStatus::ExitCode { code, .. } => {
                code_text = wire_exit_code(*code).to_string();
                Status {
                    metadata: Empty {},
                    status: "Failure",
                    message: message.as_deref(),
                    reason: Some("NonZeroExitCode"),
                    details: Some(Details { causes: [Cause { kind: Some("ExitCode"), message: &code_text }] }),
                    code: None,
                }
            }
            ExecStatus::Internal { message: detail } => {
                cause_text = format!("error executing command in container: {detail}");
                Status {
                    metadata: Empty {},
                    status: "Failure",
                    message: message.as_deref(),
                    reason: Some("InternalError"),
                    details: Some(Details { causes: [Cause { kind: None, message: &cause_text }] }),
                    code: Some(500),
                }
            }
        };
        // Serializing these plain structs cannot fail.
        serde_json::to_vec(&status).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(status: &ExecStatus) -> String {
        String::from_utf8(status.to_json()).unwrap()
    }

    #[test]
    fn success_is_what_a_kubelet_writes() {
        assert_eq!(json(&ExecStatus::Success), r#"{"metadata":{},"status":"Success"}"#);
        assert_eq!(ExecStatus::Success.message(), None);
    }

    #[test]
    fn a_non_zero_exit_code_is_in_the_causes() {
        let status = ExecStatus::ExitCode { code: 3, command: vec!["sh".into(), "-c".into(), "exit 3".into()] };
        assert_eq!(
            json(&status),
            concat!(
                r#"{"metadata":{},"status":"Failure","#,
                r#""message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","#,
                r#""reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
            )
        );
    }

    #[test]
    fn exit_codes_outside_a_byte_are_reported_as_255() {
        for (code, wire) in [(1, "1"), (255, "255"), (256, "255"), (-1, "255"), (137, "137")] {
            let status = ExecStatus::ExitCode { code, command: vec!["x".into()] };
            assert!(json(&status).contains(&format!(r#"{{"reason":"ExitCode","message":"{wire}"}}"#)), "{code}");
        }
    }

    #[test]
    fn an_internal_error_is_upstream_shaped() {
        let status = ExecStatus::Internal { message: "no such module".into() };
        assert_eq!(
            json(&status),
            concat!(
                r#"{"metadata":{},"status":"Failure","#,
                r#""message":"Internal error occurred: error executing command in container: no such module","#,
                r#""reason":"InternalError","details":{"causes":[{"message":"error executing command in container: no such module"}]},"code":500}"#
            )
        );
    }
}
