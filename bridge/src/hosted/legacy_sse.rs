//! A server on the deprecated HTTP+SSE transport (2024-11-05): the bridge holds its GET event
//! stream, waits for the `endpoint` event that names the URL to POST messages to, and reads
//! every answer and server message from the stream (correlated by id in [`super::slot`]).

use super::Transport;
use super::error::HostedError;
use super::link::{Link, Proc, Sink};
use futures::StreamExt;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use switchboard_protocol::sse;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

/// How long the server may take to announce its message endpoint.
const ENDPOINT_WAIT: Duration = Duration::from_secs(30);

pub(super) async fn connect(
    transport: &Transport,
    passed: &[(String, String)],
    link: Link,
) -> Result<Arc<Proc>, HostedError> {
    let Transport::LegacySse {
        url,
        headers,
        read_timeout,
    } = transport
    else {
        return Err(HostedError::WrongTransport("legacy SSE server"));
    };
    // Configured headers win over pass-through ones of the same name, as on Envoy's routes.
    let headers: Vec<(String, String)> = passed
        .iter()
        .filter(|(k, _)| !headers.iter().any(|(h, _)| h.eq_ignore_ascii_case(k)))
        .chain(headers)
        .cloned()
        .collect();
    let headers = &headers;
    // Its configured headers are for this server alone: never carried along a redirect.
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(HostedError::Client)?;
    let mut req = http.get(url).header("accept", "text/event-stream");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let response = req.send().await.map_err(HostedError::Open)?;
    if !response.status().is_success() {
        return Err(HostedError::OpenStatus(response.status().as_u16()));
    }
    let mut body = response.bytes_stream();
    let mut decoder = sse::Decoder::default();
    let mut early: Vec<sse::Event> = Vec::new();
    // The first event names where to post.
    let endpoint = tokio::time::timeout(ENDPOINT_WAIT, async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(HostedError::Stream)?;
            for event in decoder.push(&chunk) {
                if event.event.as_deref() == Some("endpoint") {
                    return Ok(event.data);
                }
                early.push(event);
            }
        }
        Err(HostedError::EndedBeforeEndpoint)
    })
    .await
    .map_err(|_| HostedError::NoEndpoint)??;
    let base = reqwest::Url::parse(url).map_err(HostedError::Url)?;
    let post_url = base
        .join(endpoint.trim())
        .map_err(|source| HostedError::Endpoint {
            endpoint: endpoint.clone(),
            source,
        })?;
    // The message endpoint gets the configured (secret) headers: only the server's own
    // origin may have them, wherever its event says to post.
    if post_url.origin() != base.origin() {
        warn!(
            upstream = %link.name,
            announced = %post_url.origin().ascii_serialization(),
            "refused a legacy SSE server's message endpoint on another origin"
        );
        return Err(HostedError::OtherOrigin(
            post_url.origin().ascii_serialization(),
        ));
    }
    debug!(upstream = %link.name, endpoint = %post_url, "legacy SSE message endpoint");
    let (kill_tx, mut kill_rx) = oneshot::channel::<()>();
    let proc = Proc::new(
        Sink::Post {
            http,
            url: post_url.to_string(),
            headers: headers.clone(),
        },
        kill_tx,
        None,
    );
    let reader = proc.clone();
    let read_timeout = *read_timeout;
    tokio::spawn(async move {
        let deliver = |event: sse::Event| {
            if event.event.as_deref().is_none_or(|e| e == "message")
                && let Ok(message) = serde_json::from_str::<Value>(&event.data)
            {
                link.deliver(&reader, message);
            }
        };
        early.into_iter().for_each(deliver);
        loop {
            let next = tokio::select! {
                _ = &mut kill_rx => break,
                n = tokio::time::timeout(read_timeout, body.next()) => n,
            };
            match next {
                Ok(Some(Ok(chunk))) => decoder.push(&chunk).into_iter().for_each(deliver),
                Ok(Some(Err(e))) => {
                    info!(upstream = %link.name, "legacy SSE stream failed: {e}");
                    break;
                }
                Ok(None) => {
                    info!(upstream = %link.name, "legacy SSE stream ended");
                    break;
                }
                Err(_) => {
                    info!(upstream = %link.name, "legacy SSE stream silent for {read_timeout:?} (sse_read_timeout); reconnecting");
                    break;
                }
            }
        }
        link.ended(&reader, "sse");
    });
    Ok(proc)
}
