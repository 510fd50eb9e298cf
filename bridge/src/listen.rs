//! `subscriptions/listen` on the aggregated endpoint (2026-07-28): one stream that merges
//! what every upstream the client may use says about the lists and resources it asked for.
//!
//! Each upstream is asked through its own endpoint on the gateway (so its TLS, pool,
//! headers, rules and revision apply), on the client's behalf: first in the revision
//! (`subscriptions/listen` with its part of the filter); if it does not take that, in 2025
//! (a session, `resources/subscribe` for each of its URIs, its GET stream; the session is
//! ended when the client leaves). The client hears one acknowledgement — what the upstreams
//! together honour — then the notifications it asked for, prefixed and tagged with its
//! subscription id ([`switchboard_protocol::subscriptions`]).

use crate::merge;
use crate::stream::{
    Bridge, Follow, Incoming, async_stream, error, follow, header, now_s, post_json, starting,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;
use switchboard_protocol::access::{IDENTITY_HEADER, Kind};
use switchboard_protocol::exchange::LIST_CHANGED_MARKER;
use switchboard_protocol::filter_config::PrefixMode;
use switchboard_protocol::jsonrpc::code;
use switchboard_protocol::modern::{self, ClientMeta, VERSION as MODERN};
use switchboard_protocol::subscriptions::{self, ACKNOWLEDGED, Filter, LISTEN};
use switchboard_protocol::wire::{METHOD_HEADER, SESSION_HEADER, VERSION_HEADER};
use switchboard_protocol::{mcp, sse};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// How long the acknowledgement waits for slow upstreams; what answers later still counts.
const ACK_WAIT: Duration = Duration::from_secs(10);

/// The 2025 revision the bridge speaks to an upstream that does not take the listen.
const LEGACY: &str = "2025-11-25";

/// What one upstream's part of a subscription says.
enum Heard {
    /// What it will deliver (as the upstream knows it), or `None`: nothing.
    Ack(String, Option<Filter>),
    Message(Incoming),
}

pub(crate) async fn listen(
    State(bridge): State<Bridge>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((config, gateway)) = bridge.state.serving(&headers) else {
        return starting();
    };
    let identity = header(&headers, IDENTITY_HEADER);
    let who = identity.as_deref().and_then(|h| {
        switchboard_protocol::access::open_relayed(
            &config.key,
            h,
            now_s(),
            config.filter.session_max_age_s,
        )
    });
    // The filter identified the client; only an identity it sealed counts here.
    if config.filter.access.is_some() && who.is_none() {
        return error(
            StatusCode::UNAUTHORIZED,
            code::INVALID_REQUEST,
            "Unauthorized: no identity established by the gateway",
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            code::PARSE_ERROR,
            "Parse error: the body is not JSON",
        );
    };
    let id = request["id"].clone();
    let params = &request["params"];
    let mut asked = Filter::of(&params["notifications"]);
    let prefixed = !(config.filter.prefix_mode == PrefixMode::WhenNeeded
        && config.filter.upstreams.len() == 1);
    // Updates of a resource the client may not read are not its to hear.
    if let (Some(access), Some(w)) = (&config.filter.access, &who) {
        asked.uris.retain(|u| access.allows(w, Kind::Resource, u));
    }

    let (tx, mut rx) = mpsc::channel::<Heard>(64);
    let mut parts = Vec::new();
    for u in &config.filter.upstreams {
        let allowed = match (&config.filter.access, &who) {
            (Some(access), Some(w)) => access.allows(w, Kind::Upstream, &u.name),
            (Some(_), None) => false,
            (None, _) => true,
        };
        let Some(part) = asked
            .for_upstream(&u.uri_prefix, prefixed)
            .filter(|_| allowed)
        else {
            continue;
        };
        let sub = Subscribe {
            http: bridge.http.clone(),
            on_behalf: bridge.state.on_behalf(identity.as_deref()),
            url: format!("{gateway}{}/{}/mcp", config.upstream_path, u.name),
            upstream: u.name.clone(),
            part,
            meta: params["_meta"].clone(),
        };
        parts.push((u.name.clone(), prefixed.then(|| u.uri_prefix.clone())));
        tokio::spawn(subscribe(sub, tx.clone()));
    }
    drop(tx);

    let events = async_stream(move |emit| async move {
        let prefix_of = |upstream: &str| {
            parts
                .iter()
                .find(|(n, _)| n == upstream)
                .and_then(|(_, p)| p.clone())
        };
        // 1. One acknowledgement, once every upstream said what it honours (or the wait ended).
        let mut pending = parts.len();
        let mut honoured = Vec::new();
        let mut early = Vec::new();
        let deadline = tokio::time::sleep(ACK_WAIT);
        tokio::pin!(deadline);
        while pending > 0 {
            tokio::select! {
                heard = rx.recv() => match heard {
                    Some(Heard::Ack(upstream, part)) => {
                        pending -= 1;
                        if let Some(p) = part {
                            let prefix = prefix_of(&upstream);
                            honoured.push(p.from_upstream(prefix.as_deref().unwrap_or(""), prefix.is_some()));
                        }
                    }
                    Some(Heard::Message(m)) => early.push(m),
                    None => break,
                },
                () = &mut deadline => break,
                () = emit.closed() => return,
            }
        }
        // What arrives after the wait may widen what is delivered, never what was asked.
        let mut honoured = Filter::union(&honoured);
        let ack = subscriptions::acknowledged(&id, &honoured);
        if emit.send(message_event(&ack)).await.is_err() {
            return;
        }
        // 2. The notifications the client asked for.
        let mut queue = early.into_iter();
        loop {
            let heard = match queue.next() {
                Some(m) => Some(Heard::Message(m)),
                None => tokio::select! {
                    h = rx.recv() => h,
                    () = emit.closed() => return,
                },
            };
            let m = match heard {
                Some(Heard::Message(m)) => m,
                Some(Heard::Ack(upstream, Some(part))) => {
                    let prefix = prefix_of(&upstream);
                    let late =
                        part.from_upstream(prefix.as_deref().unwrap_or(""), prefix.is_some());
                    let within = Filter {
                        tools: late.tools && asked.tools,
                        prompts: late.prompts && asked.prompts,
                        resources: late.resources && asked.resources,
                        uris: late
                            .uris
                            .into_iter()
                            .filter(|u| asked.uris.contains(u))
                            .collect(),
                    };
                    honoured = Filter::union([&honoured, &within]);
                    continue;
                }
                Some(Heard::Ack(_, None)) => continue,
                // Every upstream's part ended: so does the subscription.
                None => return,
            };
            let Some(data) =
                merge::rewrite(&m.data, &m.upstream, prefix_of(&m.upstream).as_deref())
            else {
                continue;
            };
            let Ok(message) = serde_json::from_str::<Value>(&data) else {
                continue;
            };
            if !honoured.wants(&message) {
                continue;
            }
            if merge::is_list_changed(&data) {
                // The filter watching this stream marks that upstream's cached lists stale.
                let marker =
                    Event::default().comment(format!("{LIST_CHANGED_MARKER}{}", m.upstream));
                if emit.send(marker).await.is_err() {
                    return;
                }
            }
            if emit
                .send(message_event(&subscriptions::tagged(message, &id)))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn message_event(message: &Value) -> Event {
    Event::default().event("message").data(message.to_string())
}

/// One upstream's part of a client's subscription.
struct Subscribe {
    http: reqwest::Client,
    on_behalf: reqwest::header::HeaderMap,
    /// `<gateway><upstream_path>/<name>/mcp`.
    url: String,
    upstream: String,
    part: Filter,
    /// The client's `_meta` (its revision, capabilities and identity).
    meta: Value,
}

/// Asks the upstream in 2026-07-28, else in 2025, and relays what it says until the client
/// leaves (the sender closes).
async fn subscribe(s: Subscribe, tx: mpsc::Sender<Heard>) {
    // The client's capabilities and identity, in the envelope the revision requires (an
    // upstream refuses a request whose `_meta` lacks a key the client left out).
    let client = ClientMeta::new(
        &s.meta[modern::meta::CLIENT_CAPABILITIES],
        s.meta.get(modern::meta::CLIENT_INFO),
    );
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": LISTEN,
        "params": {"notifications": s.part.to_json()}});
    let body = modern::with_request_meta(body.to_string().as_bytes(), &client);
    let sent = post_json(&s.http, &s.url, &s.on_behalf)
        .header(VERSION_HEADER, MODERN)
        .header(METHOD_HEADER, LISTEN)
        .body(body)
        .send();
    let resp = tokio::select! {
        r = sent => r,
        () = tx.closed() => return,
    };
    match resp {
        Ok(r) if r.status().is_success() && is_event_stream(&r) => {
            relay_listen(&s, r, &tx).await;
        }
        Ok(r) => {
            let status = r.status();
            let said = r.text().await.unwrap_or_default();
            let said = said.chars().take(300).collect::<String>();
            debug!(upstream = s.upstream, %status, said, "no subscriptions/listen; subscribing in a 2025 session");
            subscribe_legacy(&s, &tx).await;
        }
        Err(e) => {
            warn!(upstream = s.upstream, error = %e, "subscription failed");
            let _ = tx.send(Heard::Ack(s.upstream.clone(), None)).await;
        }
    }
}

fn is_event_stream(r: &reqwest::Response) -> bool {
    r.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"))
}

/// An upstream's own subscription stream: its acknowledgement, then its notifications.
async fn relay_listen(s: &Subscribe, r: reqwest::Response, tx: &mpsc::Sender<Heard>) {
    let mut acked = false;
    let mut body = r.bytes_stream();
    let mut decoder = sse::Decoder::new();
    loop {
        let chunk = tokio::select! {
            c = body.next() => c,
            () = tx.closed() => return,
        };
        let Some(Ok(chunk)) = chunk else { break };
        for event in decoder.push(&chunk) {
            let message: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
            if message["method"] == ACKNOWLEDGED && !acked {
                acked = true;
                let part = Filter::of(&message["params"]["notifications"]);
                if tx
                    .send(Heard::Ack(s.upstream.clone(), Some(part)))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            if !acked {
                // A stream that starts without one honours what it was asked.
                acked = true;
                if tx
                    .send(Heard::Ack(s.upstream.clone(), Some(s.part.clone())))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let m = Incoming {
                upstream: s.upstream.clone(),
                id: None,
                data: event.data,
            };
            if tx.send(Heard::Message(m)).await.is_err() {
                return;
            }
        }
    }
    debug!(upstream = s.upstream, "subscription stream ended");
    if !acked {
        let _ = tx.send(Heard::Ack(s.upstream.clone(), None)).await;
    }
}

/// The 2025 way: a session at the upstream's endpoint, `resources/subscribe` for each of
/// its URIs, and its GET stream; the session ends with the client's subscription.
async fn subscribe_legacy(s: &Subscribe, tx: &mpsc::Sender<Heard>) {
    let Some(token) = open_session(s).await else {
        let _ = tx.send(Heard::Ack(s.upstream.clone(), None)).await;
        return;
    };
    let mut subscribed = Vec::new();
    for (n, uri) in s.part.uris.iter().enumerate() {
        let request = json!({"jsonrpc": "2.0", "id": n + 2, "method": "resources/subscribe",
            "params": {"uri": uri}});
        if post(s, Some(&token), &request)
            .await
            .is_some_and(|r| r.get("result").is_some())
        {
            subscribed.push(uri.clone());
        }
    }
    let part = Filter {
        uris: subscribed,
        ..s.part.clone()
    };
    if tx
        .send(Heard::Ack(s.upstream.clone(), Some(part)))
        .await
        .is_err()
    {
        end_session(s, &token).await;
        return;
    }
    let (inner_tx, mut inner_rx) = mpsc::channel::<Incoming>(64);
    tokio::spawn(follow(
        Follow {
            http: s.http.clone(),
            on_behalf: s.on_behalf.clone(),
            url: s.url.clone(),
            upstream: s.upstream.clone(),
            token: token.clone(),
            version: LEGACY.into(),
            last_id: None,
        },
        inner_tx,
    ));
    loop {
        let m = tokio::select! {
            m = inner_rx.recv() => m,
            () = tx.closed() => break,
        };
        let Some(m) = m else { break };
        if tx.send(Heard::Message(m)).await.is_err() {
            break;
        }
    }
    drop(inner_rx);
    end_session(s, &token).await;
}

/// `initialize` and `notifications/initialized` at the upstream's endpoint: the session
/// token, or `None` when it refused.
async fn open_session(s: &Subscribe) -> Option<String> {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": LEGACY, "capabilities": {},
        "clientInfo": {"name": "switchboard-bridge", "version": env!("CARGO_PKG_VERSION")}}});
    let resp = post_json(&s.http, &s.url, &s.on_behalf)
        .body(init.to_string())
        .send()
        .await
        .ok()?;
    let token = resp
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)?;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    post(s, Some(&token), &initialized).await;
    Some(token)
}

/// A request in the session: the response to it, when there is one.
async fn post(s: &Subscribe, token: Option<&str>, message: &Value) -> Option<Value> {
    let mut req = post_json(&s.http, &s.url, &s.on_behalf)
        .header(VERSION_HEADER, LEGACY)
        .body(message.to_string());
    if let Some(t) = token {
        req = req.header(SESSION_HEADER, t);
    }
    let resp = req.send().await.ok()?;
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = resp.bytes().await.ok()?;
    let id = message.get("id")?;
    mcp::find_response(&content_type, &body, id).ok()
}

async fn end_session(s: &Subscribe, token: &str) {
    let deleted = s
        .http
        .delete(&s.url)
        .header(SESSION_HEADER, token)
        .header(VERSION_HEADER, LEGACY)
        .headers(s.on_behalf.clone())
        .send()
        .await;
    if let Err(e) = deleted {
        debug!(upstream = s.upstream, error = %e, "could not end the subscription's session");
    }
}
