//! [`Config`]: the limits of the streaming endpoints.

use std::time::Duration;

use crate::spdy;

/// Default [`Config::max_sessions`].
pub const DEFAULT_MAX_SESSIONS: usize = 128;
/// Default [`Config::idle_timeout`]: upstream's `streamingConnectionIdleTimeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 60 * 60);
/// Default [`Config::stream_creation_timeout`]: upstream's
/// `DefaultStreamCreationTimeout`.
pub const DEFAULT_STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Config::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Config::output_drain_timeout`].
pub const DEFAULT_OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How the streaming endpoints behave.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sessions (exec, attach, port-forward connections) at once; more
    /// get 429.
    pub max_sessions: usize,
    /// A session without any frame either way for this long is closed.
    /// Clients ping every 5 s, so this catches dead peers, not quiet ones.
    pub idle_timeout: Duration,
    /// How long exec/attach wait for the client's streams, and
    /// port-forward for the second stream of a pair.
    pub stream_creation_timeout: Duration,
    /// How long connecting to a pod's port may take.
    pub connect_timeout: Duration,
    /// Streams open at once in one session.
    pub max_streams_per_session: usize,
    /// After the command ended, how long its stdout/stderr may take to
    /// reach their end.
    pub output_drain_timeout: Duration,
    /// After the server closed a session, how long to wait for the client
    /// to close the connection.
    pub close_linger: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_sessions: DEFAULT_MAX_SESSIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            stream_creation_timeout: DEFAULT_STREAM_CREATION_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_streams_per_session: spdy::DEFAULT_MAX_STREAMS,
            output_drain_timeout: DEFAULT_OUTPUT_DRAIN_TIMEOUT,
            close_linger: spdy::DEFAULT_CLOSE_LINGER,
        }
    }
}

impl Config {
    pub(crate) fn session(&self) -> spdy::Config {
        spdy::Config {
            idle_timeout: Some(self.idle_timeout),
            max_streams: self.max_streams_per_session,
            close_linger: self.close_linger,
        }
    }
}
