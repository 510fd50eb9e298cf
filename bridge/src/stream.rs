//! `GET /mcp`: one event stream that merges every session upstream's own stream.
//!
//! Each upstream's stream is read through the gateway's per-upstream endpoint on Envoy, so
//! Envoy still applies that upstream's TLS, connection pool and configured headers. A stream
//! that ends is opened again with its last event id; the merged event ids carry every
//! upstream's position, so a client that reconnects with `Last-Event-ID` resumes them all.

use crate::gateway_address::{GATEWAY_HEADER, gateway_url};
use crate::merge;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Map, Value};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use switchboard_protocol::access::{BRIDGE_KEY_HEADER, IDENTITY_HEADER};
use switchboard_protocol::exchange::LIST_CHANGED_MARKER;
use switchboard_protocol::filter_config::FilterConfig;
use switchboard_protocol::jsonrpc::{self, code};
use switchboard_protocol::session::{self, SessionKey};
use switchboard_protocol::sse;
use switchboard_protocol::wire::{
    LAST_EVENT_ID_HEADER, SESSION_HEADER, SESSION_NOT_FOUND, VERSION_HEADER,
};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// What the bridge needs of the configuration in force.
pub struct BridgeConfig {
    pub filter: FilterConfig,
    pub(crate) key: SessionKey,
    /// Base path of the per-upstream endpoints (`/upstreams`).
    pub upstream_path: String,
}

impl BridgeConfig {
    /// The identity key of the client the filter sealed into an [`IDENTITY_HEADER`] value
    /// (`None` without one, when the gateway has no clients to tell apart); `Err` when the
    /// value is there but is not the filter's.
    pub(crate) fn relayed(&self, header: Option<&str>) -> Result<Option<String>, ()> {
        let Some(h) = header else { return Ok(None) };
        switchboard_protocol::access::open_relayed(
            &self.key,
            h,
            now_s(),
            self.filter.session_max_age_s,
        )
        .map(|who| Some(who.key()))
        .ok_or(())
    }
}

pub(crate) fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The header in which Envoy proves to the bridge that a request is Envoy's: a secret of
/// this control plane's that Envoy adds (its `credential_injector` on the bridge's clusters,
/// the value by SDS) and no client can know. Nothing else reaches the bridge.
pub const INGRESS_HEADER: &str = "x-switchboard-bridge-auth";

/// Shared by the handler and the control plane, which updates it on every reload.
#[derive(Default)]
pub struct BridgeState {
    config: RwLock<Option<Arc<BridgeConfig>>>,
    /// Envoy's MCP listener (`http://127.0.0.1:8080`), when no [`GATEWAY_HEADER`] says it.
    gateway: RwLock<Option<String>>,
    /// The stdio and legacy-SSE upstreams this bridge serves.
    pub hosted: crate::hosted::HostedUpstreams,
    /// Old clients on the legacy `/sse` endpoint.
    pub legacy: crate::legacy_endpoint::LegacySessions,
    /// Calls of 2025 upstreams waiting for a stateless client's answer.
    pub held: crate::interactive::Held,
    /// The key the gateway's filter knows the bridge by.
    key: RwLock<Option<String>>,
    /// What Envoy shows in [`INGRESS_HEADER`].
    ingress: RwLock<Option<String>>,
}

impl BridgeState {
    pub fn set_config(&self, filter: FilterConfig, upstream_path: String) {
        let key = filter.session_keys();
        if let Ok(mut c) = self.config.write() {
            *c = Some(Arc::new(BridgeConfig {
                filter,
                key,
                upstream_path,
            }));
        }
    }

    pub fn set_key(&self, key: String) {
        if let Ok(mut k) = self.key.write() {
            *k = Some(key);
        }
    }

    /// The secret Envoy's requests carry in [`INGRESS_HEADER`].
    pub fn set_ingress_secret(&self, secret: String) {
        if let Ok(mut k) = self.ingress.write() {
            *k = Some(secret);
        }
    }

    /// Whether `presented` is the ingress secret (compared in constant time).
    fn admits(&self, presented: Option<&[u8]>) -> bool {
        let Some(secret) = self.ingress.read().ok().and_then(|k| k.clone()) else {
            return false;
        };
        let Some(presented) = presented else {
            return false;
        };
        let secret = secret.as_bytes();
        presented.len() == secret.len()
            && presented
                .iter()
                .zip(secret)
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0
    }

    /// Headers for the bridge's requests to the gateway on behalf of the client the filter
    /// identified (its [`IDENTITY_HEADER`] value), which only the bridge's key makes count.
    pub(crate) fn on_behalf(&self, identity: Option<&str>) -> reqwest::header::HeaderMap {
        use reqwest::header::HeaderValue;
        let mut out = reqwest::header::HeaderMap::new();
        let key = self.key.read().ok().and_then(|k| k.clone());
        if let Some(key) = key.and_then(|k| HeaderValue::from_str(&k).ok()) {
            out.insert(BRIDGE_KEY_HEADER, key);
            if let Some(id) = identity.and_then(|i| HeaderValue::from_str(i).ok()) {
                out.insert(IDENTITY_HEADER, id);
            }
        }
        out
    }

    /// The identity key sealed in an [`IDENTITY_HEADER`] value: `Some(None)` without one,
    /// `None` when the value is not the filter's (or the bridge has no configuration yet).
    pub(crate) fn relayed(&self, header: Option<&str>) -> Option<Option<String>> {
        let config = self.config.read().ok()?.clone()?;
        config.relayed(header).ok()
    }

    pub fn set_gateway(&self, base_url: Option<String>) {
        if let Ok(mut g) = self.gateway.write() {
            *g = base_url;
        }
    }

    /// The configuration in force and the gateway listener to reach upstreams through (the
    /// Envoy the request came through, as Envoy stamped it); `None` while there is none yet
    /// ([`starting`] is the answer then). Every handler starts here.
    pub(crate) fn serving(&self, headers: &HeaderMap) -> Option<(Arc<BridgeConfig>, String)> {
        // Only an address (never a URL a client could have chosen) is taken from the header.
        let stamped = header(headers, GATEWAY_HEADER).and_then(|v| gateway_url(&v));
        self.current().and_then(|(c, g)| Some((c, stamped.or(g)?)))
    }

    pub(crate) fn current(&self) -> Option<(Arc<BridgeConfig>, Option<String>)> {
        let config = self.config.read().ok()?.clone()?;
        let gateway = self.gateway.read().ok()?.clone();
        Some((config, gateway))
    }
}

#[derive(Clone)]
pub struct Bridge {
    pub state: Arc<BridgeState>,
    pub(crate) http: reqwest::Client,
}

impl Bridge {
    pub fn new(state: Arc<BridgeState>) -> Bridge {
        // The gateway's own listener, at the address Envoy stamped: its certificate names the
        // public host, not this address, so it is not verified on this one hop. Redirects
        // are never followed: the bridge's key goes to the gateway and nowhere else.
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .tls_danger_accept_invalid_certs(true)
            .build()
            .unwrap_or_default();
        Bridge { state, http }
    }

    /// The bridge's HTTP routes: stdio upstreams at `/hosted/<name>/mcp`; the merged stream
    /// on any other path (Envoy sends it `GET <mcp_path>`). Also starts reaping idle stdio
    /// sessions.
    pub fn router(self) -> axum::Router {
        let state = Arc::downgrade(&self.state);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                match state.upgrade() {
                    Some(s) => {
                        s.hosted.reap_idle();
                        s.held.reap_expired();
                    }
                    None => return,
                }
            }
        });
        let state = self.state.clone();
        crate::hosted::router()
            .merge(crate::legacy_endpoint::router())
            .fallback(axum::routing::get(merged_stream).post(crate::interactive::post))
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let state = state.clone();
                    async move {
                        // Every request must be Envoy's: whoever else can reach this port
                        // (a local process, say) gets nothing, not even a hint.
                        let presented = req.headers().get(INGRESS_HEADER).map(|v| v.as_bytes());
                        if state.admits(presented) {
                            next.run(req).await
                        } else {
                            warn!(path = %req.uri().path(), "refused a request that did not come from Envoy");
                            error(
                                StatusCode::UNAUTHORIZED,
                                code::INVALID_REQUEST,
                                "Unauthorized: the bridge serves only the gateway's Envoy",
                            )
                        }
                    }
                },
            ))
            .with_state(self)
    }
}

pub(crate) fn error(status: StatusCode, code: i64, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        jsonrpc::error_body(None, code, message),
    )
        .into_response()
}

/// One upstream event on its way into the merged stream.
pub(crate) struct Incoming {
    pub(crate) upstream: String,
    pub(crate) id: Option<String>,
    pub(crate) data: String,
}

/// The answer while the bridge has no configuration yet.
pub(crate) fn starting() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        code::INTERNAL_ERROR,
        "The gateway is starting",
    )
}

/// A request header's value, when it is text.
pub(crate) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A POST of JSON-RPC to the gateway on the client's behalf (`on_behalf`), taking either
/// answer form.
pub(crate) fn post_json(
    http: &reqwest::Client,
    url: &str,
    on_behalf: &reqwest::header::HeaderMap,
) -> reqwest::RequestBuilder {
    http.post(url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .headers(on_behalf.clone())
}

async fn merged_stream(State(bridge): State<Bridge>, headers: HeaderMap) -> Response {
    let header = |name: &str| header(&headers, name);
    // Upstream streams are read through the Envoy the client came through.
    let Some((config, gateway)) = bridge.state.serving(&headers) else {
        return starting();
    };
    let Some(token) = header(SESSION_HEADER) else {
        return error(
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "Bad Request: the Mcp-Session-Id header is required",
        );
    };
    let session = match session::open(
        &config.key,
        &token,
        now_s(),
        config.filter.session_max_age_s,
    ) {
        Ok(s) => s,
        Err(e) => {
            return error(
                StatusCode::NOT_FOUND,
                SESSION_NOT_FOUND,
                &format!("Session not found: {e}; send initialize again"),
            );
        }
    };
    // The filter checked this already; the session is its opener's here too.
    let identity = header(IDENTITY_HEADER);
    if config.filter.access.is_some()
        && config.relayed(identity.as_deref()) != Ok(session.identity.clone())
    {
        return error(
            StatusCode::NOT_FOUND,
            SESSION_NOT_FOUND,
            "Session not found: send initialize again",
        );
    }
    let mut position: Map<String, Value> = header(LAST_EVENT_ID_HEADER)
        .map(|l| merge::decode_position(&l))
        .unwrap_or_default();

    let (tx, mut rx) = mpsc::channel::<Incoming>(64);
    for us in &session.upstreams {
        if !config.filter.upstreams.iter().any(|u| u.name == us.name) {
            continue;
        }
        let url = format!("{gateway}{}/{}/mcp", config.upstream_path, us.name);
        let last = position
            .get(&us.name)
            .and_then(Value::as_str)
            .map(str::to_string);
        // Each upstream's own endpoint serves its part of the client's session.
        let f = Follow {
            http: bridge.http.clone(),
            on_behalf: bridge.state.on_behalf(identity.as_deref()),
            url,
            upstream: us.name.clone(),
            token: token.clone(),
            version: session.protocol_version.clone(),
            last_id: last,
        };
        tokio::spawn(follow(f, tx.clone()));
    }
    drop(tx);

    let prefixes: Vec<(String, String)> = config
        .filter
        .upstreams
        .iter()
        .map(|u| (u.name.clone(), u.uri_prefix.clone()))
        .collect();
    let events = async_stream(move |emit| async move {
        loop {
            // A client that leaves releases the upstream streams at once, not at the next event.
            let msg = tokio::select! {
                m = rx.recv() => m,
                () = emit.closed() => return,
            };
            let Some(msg) = msg else {
                // No upstream offers a stream (any more): stay open, idle but kept alive, so
                // the client does not reconnect in a loop.
                emit.closed().await;
                return;
            };
            if let Some(id) = &msg.id {
                position.insert(msg.upstream.clone(), Value::String(id.clone()));
            }
            let prefix = prefixes
                .iter()
                .find(|(n, _)| *n == msg.upstream)
                .map(|(_, p)| p.as_str());
            let Some(data) = merge::rewrite(&msg.data, &msg.upstream, prefix) else {
                continue;
            };
            if merge::is_list_changed(&data) {
                // Tells the gateway's filter, which watches this stream, that this upstream's
                // cached lists are stale; clients ignore comments.
                let marker =
                    Event::default().comment(format!("{}{}", LIST_CHANGED_MARKER, msg.upstream));
                if emit.send(marker).await.is_err() {
                    return;
                }
            }
            let event = Event::default()
                .event("message")
                .id(merge::encode_position(&position))
                .data(data);
            if emit.send(event).await.is_err() {
                return;
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// A stream fed by an async producer (the merge loop), ending when the client goes away.
pub(crate) fn async_stream<F, Fut>(
    produce: F,
) -> impl futures::Stream<Item = Result<Event, std::convert::Infallible>>
where
    F: FnOnce(mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Event>(16);
    tokio::spawn(produce(tx));
    tokio_stream_from(rx)
}

fn tokio_stream_from(
    rx: mpsc::Receiver<Event>,
) -> impl futures::Stream<Item = Result<Event, std::convert::Infallible>> {
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

/// One upstream's stream as the merged stream reads it: through the gateway's endpoint of
/// that upstream, on the client's behalf, in the client's session.
pub(crate) struct Follow {
    pub(crate) http: reqwest::Client,
    pub(crate) on_behalf: reqwest::header::HeaderMap,
    /// `<gateway><upstream_path>/<name>/mcp`.
    pub(crate) url: String,
    pub(crate) upstream: String,
    /// The client's session token.
    pub(crate) token: String,
    pub(crate) version: String,
    /// Where to resume, from the client's `Last-Event-ID`.
    pub(crate) last_id: Option<String>,
}

/// Reads one upstream's stream through Envoy until the client leaves, opening it again
/// (from its last event id) when it ends. An upstream that refuses it for good (405 no
/// stream, 404 or 400 no such session, any 4xx but 408 and 429) is left out.
pub(crate) async fn follow(f: Follow, tx: mpsc::Sender<Incoming>) {
    let Follow {
        http,
        on_behalf,
        url,
        upstream,
        token,
        version,
        mut last_id,
    } = f;
    let mut backoff = Duration::from_millis(250);
    while !tx.is_closed() {
        let mut req = http
            .get(&url)
            .header("accept", "text/event-stream")
            .header(VERSION_HEADER, &version)
            .header(SESSION_HEADER, &token);
        if let Some(id) = &last_id {
            req = req.header(LAST_EVENT_ID_HEADER, id);
        }
        req = req.headers(on_behalf.clone());
        let resp = tokio::select! {
            r = req.send() => r,
            () = tx.closed() => return,
        };
        match resp {
            // A refusal that asking again would not change (no stream, no such session, a
            // request it cannot take): stop, rather than ask every few seconds forever.
            Ok(r)
                if r.status().is_client_error()
                    && r.status() != StatusCode::REQUEST_TIMEOUT
                    && r.status() != StatusCode::TOO_MANY_REQUESTS =>
            {
                debug!(upstream, status = %r.status(), "upstream offers no event stream for this session");
                return;
            }
            // An answer that is no event stream (the gateway's JSON error for an upstream it
            // could not reach) is a failure: wait longer each time.
            Ok(r)
                if r.status().is_success()
                    && !r
                        .headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|t| t.starts_with("text/event-stream")) =>
            {
                warn!(upstream, status = %r.status(), "upstream event stream refused: not an event stream");
            }
            Ok(r) if r.status().is_success() => {
                backoff = Duration::from_millis(250);
                let mut body = r.bytes_stream();
                let mut decoder = sse::Decoder::new();
                let mut received = 0usize;
                loop {
                    let chunk = tokio::select! {
                        c = body.next() => c,
                        () = tx.closed() => return,
                    };
                    let Some(Ok(chunk)) = chunk else { break };
                    for event in decoder.push(&chunk) {
                        received += 1;
                        if event.id.is_some() {
                            last_id.clone_from(&event.id);
                        }
                        let msg = Incoming {
                            upstream: upstream.clone(),
                            id: event.id,
                            data: event.data,
                        };
                        if tx.send(msg).await.is_err() {
                            return;
                        }
                    }
                }
                if received == 0 && last_id.is_some() {
                    // A server that cannot resume from that id ends the stream at once: start
                    // a fresh one rather than asking for the same replay forever.
                    debug!(upstream, "resuming gave nothing; opening a fresh stream");
                    last_id = None;
                }
                debug!(upstream, "upstream event stream ended; opening it again");
            }
            Ok(r) => warn!(upstream, status = %r.status(), "upstream event stream refused"),
            Err(e) => warn!(upstream, error = %e, "upstream event stream failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = tx.closed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}
