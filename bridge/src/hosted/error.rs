//! Why a hosted upstream (a stdio process, a legacy SSE server) could not serve a request.
//! The text follows the upstream's name in the client's JSON-RPC error and the log.

/// A hosted upstream's failure.
#[derive(Debug, thiserror::Error)]
pub enum HostedError {
    #[error("cannot write to it: {0}")]
    Write(#[source] std::io::Error),
    #[error("cannot post to its message endpoint: {0}")]
    Post(#[source] reqwest::Error),
    #[error("its message endpoint answered HTTP {0}")]
    PostStatus(u16),
    #[error("it did not initialize")]
    NotInitialized,
    #[error("no client has initialized it yet")]
    NoClientYet,
    #[error("did not initialize after {attempts} attempts: {last}")]
    GaveUp {
        attempts: u32,
        last: Box<HostedError>,
    },
    #[error("no answer to initialize within {0:?}")]
    InitializeTimeout(std::time::Duration),
    #[error("it exited before answering initialize")]
    ExitedBeforeInitialize,
    #[error("it refused initialize: {0}")]
    InitializeRefused(serde_json::Value),
    /// A configuration of another transport was handed to this one (a bug).
    #[error("not a {0}")]
    WrongTransport(&'static str),
    #[error("cannot start {command:?}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("its standard streams are not available")]
    NoStdio,
    #[error("cannot make an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot open its event stream: {0}")]
    Open(#[source] reqwest::Error),
    #[error("its event stream answered HTTP {0}")]
    OpenStatus(u16),
    #[error("its event stream failed: {0}")]
    Stream(#[source] reqwest::Error),
    #[error("its event stream ended before announcing the message endpoint")]
    EndedBeforeEndpoint,
    #[error("it did not announce its message endpoint")]
    NoEndpoint,
    #[error("its URL is unusable: {0}")]
    Url(#[source] url::ParseError),
    #[error("it announced an unusable endpoint {endpoint:?}: {source}")]
    Endpoint {
        endpoint: String,
        #[source]
        source: url::ParseError,
    },
    #[error("announced a message endpoint on another origin ({0}), which the gateway refuses")]
    OtherOrigin(String),
}
