//! The query of `GET /containerLogs/…`, decoded like `v1.PodLogOptions`;
//! the parameters are listed in the [`router`](mod@crate::router) docs.
//!
//! A repeated parameter counts once (its first value), an empty value is
//! as if absent, and unknown parameters are ignored, as upstream.
//! Unlike upstream, `tailLines` may be combined with a single `stream`.

use std::time::{Duration, SystemTime};

use chrono::DateTime;
use wasmlet_logs::{ReadOptions, Streams};

/// A decoded log query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogQuery {
    pub(crate) previous: bool,
    pub(crate) options: ReadOptions,
}

/// Why a query is invalid; the message is for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueryError {
    #[error("invalid {name} {value:?}: must be true or false")]
    Bool { name: &'static str, value: String },
    #[error("invalid {name} {value:?}: must be an integer")]
    Int { name: &'static str, value: String },
    #[error("invalid {name} {value}: must be greater than or equal to {min}")]
    TooSmall { name: &'static str, value: i64, min: i64 },
    #[error("invalid sinceTime {0:?}: must be an RFC 3339 time")]
    Time(String),
    #[error("at most one of sinceTime or sinceSeconds may be specified")]
    BothSince,
    #[error("invalid stream {0:?}: must be one of All, Stdout, Stderr")]
    Stream(String),
}

impl LogQuery {
    /// Decodes the query's `(name, value)` pairs; `now` anchors
    /// `sinceSeconds`.
    pub(crate) fn parse(pairs: &[(String, String)], now: SystemTime) -> Result<Self, QueryError> {
        let get = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
        let tail_lines = match get("tail") {
            Some("all") => None,
            Some(tail) => Some(int("tailLines", tail, 0)?),
            None => get("tailLines").map(|v| int("tailLines", v, 0)).transpose()?,
        };
        let since_seconds = get("sinceSeconds").map(|v| int("sinceSeconds", v, 1)).transpose()?;
        let since_time = get("sinceTime").map(time).transpose()?;
        let since = match (since_seconds, since_time) {
            (Some(_), Some(_)) => return Err(QueryError::BothSince),
            (Some(secs), None) => Some(now.checked_sub(Duration::from_secs(secs)).unwrap_or(SystemTime::UNIX_EPOCH)),
            (None, time) => time,
        };
        let streams = match get("stream") {
            None | Some("All") => Streams::All,
            Some("Stdout") => Streams::Stdout,
            Some("Stderr") => Streams::Stderr,
            Some(other) => return Err(QueryError::Stream(other.to_owned())),
        };
        Ok(LogQuery {
            previous: get("previous").map(|v| bool("previous", v)).transpose()? == Some(true),
            options: ReadOptions {
                follow: get("follow").map(|v| bool("follow", v)).transpose()? == Some(true),
                timestamps: get("timestamps").map(|v| bool("timestamps", v)).transpose()? == Some(true),
                tail_lines,
                since,
                limit_bytes: get("limitBytes").map(|v| int("limitBytes", v, 1)).transpose()?,
                streams,
                ..ReadOptions::default()
            },
        })
    }
}

fn bool(name: &'static str, value: &str) -> Result<bool, QueryError> {
    match value {
        "1" => Ok(true),
        "0" => Ok(false),
        v if v.eq_ignore_ascii_case("true") => Ok(true),
        v if v.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(QueryError::Bool { name, value: value.to_owned() }),
    }
}

/// An `int64` of at least `min`, as `u64`.
fn int(name: &'static str, value: &str, min: i64) -> Result<u64, QueryError> {
    let parsed: i64 = value.parse().map_err(|_| QueryError::Int { name, value: value.to_owned() })?;
    if parsed < min {
        return Err(QueryError::TooSmall { name, value: parsed, min });
    }
    u64::try_from(parsed).map_err(|_| QueryError::TooSmall { name, value: parsed, min })
}

fn time(value: &str) -> Result<SystemTime, QueryError> {
    DateTime::parse_from_rfc3339(value).map(SystemTime::from).map_err(|_| QueryError::Time(value.to_owned()))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod prop_tests;
