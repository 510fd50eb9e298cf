use super::*;

/// Why an upstream's part of a request failed, as the client's error and the operator's log
/// line say it (after the upstream's name).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The callout ended without an answer.
    #[error("no answer")]
    NoAnswer,
    /// Envoy reported the callout failed (no connection, TLS, timeout).
    #[error(
        "no answer: unreachable, TLS handshake failed or timed out (the upstream's cluster stats in Envoy say which)"
    )]
    Unreachable,
    /// The host refused to start the callout.
    #[error("could not be called ({0})")]
    NotCalled(String),
    #[error("answered a list of {size} bytes, more than its max_list_bytes of {limit}")]
    TooBig { size: usize, limit: u64 },
    #[error("answered a page of {items} items, more than its max_list_items of {limit}")]
    TooManyItems { items: usize, limit: u64 },
    /// An HTTP answer that is no MCP answer ([`http_failure`]).
    #[error("{0}")]
    Http(String),
    #[error(transparent)]
    Read(#[from] mcp::ReadError),
    #[error(transparent)]
    Page(#[from] aggregate::PageError),
    /// The upstream answered with a JSON-RPC error.
    #[error("answered with error {code}: {message}")]
    Error { code: Value, message: String },
    #[error("negotiated protocol version {0:?}, which the gateway does not support")]
    Version(String),
    /// No token of its own could be got for it (token exchange).
    #[error("could not be given a token: {0}")]
    Token(String),
}

impl Failure {
    /// An upstream's JSON-RPC error object.
    pub(super) fn error(err: &Value) -> Failure {
        Failure::Error {
            code: err["code"].clone(),
            message: err["message"].as_str().unwrap_or_default().to_string(),
        }
    }
}

/// Says that a failure may be the proxy's: Envoy only sees the tunnel close.
pub(super) fn via_note(via: &str) -> String {
    if via.is_empty() {
        String::new()
    } else {
        format!(" (reached through its {via}; the gateway's log has the proxy's answer)")
    }
}

/// Why a callout's HTTP answer is a failure, in words that name no address.
pub(super) fn http_failure(status: u16, body: &[u8], timeout_ms: u64) -> Failure {
    // Envoy's own answer names the transport failure: `… transport failure reason:
    // TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end`.
    let original = String::from_utf8_lossy(&body[..body.len().min(1000)]);
    let text = original.to_ascii_lowercase();
    let why = match status {
        503 if text.contains("tls_error") => format!(
            "TLS handshake failed ({})",
            tls_failure(&original).unwrap_or_default()
        ),
        503 if text.contains("refused") => "refused the connection".into(),
        // Envoy does not always say more; its `ssl.*` and `upstream_cx_*` stats of the
        // upstream's cluster do.
        503 if text.contains("connect") || text.contains("no healthy") => {
            "unreachable (the connection or its TLS handshake failed)".into()
        }
        504 => format!("timed out after {timeout_ms} ms"),
        300..=399 => {
            format!("answered with a redirect (HTTP {status}), which the gateway does not follow")
        }
        _ => format!("answered HTTP {status}"),
    };
    Failure::Http(why)
}

/// JSON-RPC code and message for a routed request that failed at the HTTP level.
pub(super) fn describe_failure(
    upstream: &str,
    status: u16,
    envoy_details: Option<&str>,
    timeout_ms: u64,
) -> (i64, String) {
    let Some(details) = envoy_details else {
        return (
            UPSTREAM_ERROR,
            format!("Upstream {upstream:?} answered HTTP {status} without a JSON-RPC response"),
        );
    };
    let why = if details.contains("timeout") {
        return (
            UPSTREAM_TIMEOUT,
            format!("Upstream {upstream:?} did not answer within {timeout_ms} ms"),
        );
    } else if let Some(reason) = tls_failure(details) {
        return (
            UPSTREAM_ERROR,
            format!("Upstream {upstream:?} failed the TLS handshake ({reason})"),
        );
    } else if details.contains("refused") {
        "refused the connection"
    } else if details.contains("connection_failure") || details.contains("connect") {
        "is unreachable (connection failed)"
    } else if details.contains("no_healthy_upstream") {
        "has no healthy host"
    } else if details.contains("overflow") {
        "is overloaded (connection or request limit reached)"
    } else if details.contains("reset") {
        "closed the connection before answering"
    } else {
        "could not be reached"
    };
    (UPSTREAM_ERROR, format!("Upstream {upstream:?} {why}"))
}

/// The reason in Envoy's details of a failed TLS handshake, e.g.
/// `…{remote_connection_failure|TLS_error:|268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end}`.
pub(super) fn tls_failure(details: &str) -> Option<String> {
    let at = details.find("TLS_error")?;
    let rest = &details[at..];
    let rest = rest.split("TLS_error_end").next().unwrap_or(rest);
    let reason = rest
        .split([':', '|', '}'])
        .map(str::trim)
        .rfind(|p| !p.is_empty() && *p != "TLS_error" && p.chars().any(char::is_alphabetic))
        .unwrap_or("TLS error");
    Some(reason.replace('_', " "))
}

impl Exchange {
    /// The HTTP answer to a request at an upstream the client may not use.
    pub(super) fn upstream_denied(&mut self, gw: &Gateway, name: &str) -> Step {
        let challenge = self.step_up(gw, Some(name), Kind::Upstream, name);
        let message = self.upstream_refusal(name);
        with_challenge(error_reply(403, None, ACCESS_DENIED, &message), challenge)
    }

    /// Ends the exchange refused for upstream `name`, logged: the message to answer with.
    pub(super) fn upstream_refusal(&mut self, name: &str) -> String {
        self.state = State::Done;
        let who = self
            .identity
            .as_ref()
            .map_or("this client", |i| i.client.as_str());
        let message = format!("Access denied: {who} may not use upstream {name:?}");
        self.log.push(message.clone());
        message
    }

    /// The answer to a use of `name` (of `upstream`) the client may not make: a JSON-RPC
    /// error, or, when only its token's scopes are lacking, 403 with the scope challenge
    /// that tells it to step up.
    pub(super) fn denied(
        &mut self,
        gw: &Gateway,
        id: &RawValue,
        upstream: &str,
        kind: Kind,
        name: &str,
    ) -> Step {
        if let Some(challenge) = self.step_up(gw, Some(upstream), kind, name) {
            self.state = State::Done;
            let message = format!(
                "Insufficient scope: the access token does not allow the {} {name:?}",
                kind.noun()
            );
            self.log.push(message.clone());
            return with_challenge(
                error_reply(403, Some(id), ACCESS_DENIED, &message),
                Some(challenge),
            );
        }
        let what = kind.noun();
        self.state = State::Done;
        let who = self
            .identity
            .as_ref()
            .map_or("this client", |i| i.client.as_str());
        self.log
            .push(format!("access denied: {who} may not use {what} {name:?}"));
        error_reply(
            200,
            Some(id),
            ACCESS_DENIED,
            &format!("Access denied: {who} may not use {what} {name:?}"),
        )
    }
}

/// `step` (an answer) with a `WWW-Authenticate` challenge, if there is one.
pub(super) fn with_challenge(step: Step, challenge: Option<String>) -> Step {
    match (step, challenge) {
        (Step::Respond(mut reply), Some(c)) => {
            reply.headers.push(("www-authenticate".into(), c));
            Step::Respond(reply)
        }
        (step, _) => step,
    }
}

/// The client's error for a call `upstream` did not answer (`why`), naming it.
pub(super) fn upstream_failed(upstream: &Upstream, id: &Value, why: &Failure) -> Step {
    let message = format!(
        "Upstream {:?} {why}{}",
        upstream.name,
        via_note(&upstream.via)
    );
    Step::Respond(json_reply(
        200,
        error_body_value(Some(id), UPSTREAM_ERROR, &message),
    ))
}
