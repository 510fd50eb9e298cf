//! Admission: everything decided from a request's headers before the exchange reads MCP —
//! the CORS preflight, the Origin/Host check against DNS rebinding, who the client is, which
//! of its headers upstreams may take by pass-through, and which headers never go further.
//! The shell reads the headers, carries out the [`Arrival`] and records the outcome.

use super::*;
use crate::access::{Credentials, IDENTITY_HEADER, Identity};
use crate::filter_config::ROUTE_HEADER;
use crate::wire::LAST_EVENT_ID_HEADER;
use std::net::IpAddr;

/// A request's headers as the host gave them (any case).
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a>(pub &'a [(String, String)]);

impl Headers<'_> {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// What the shell does with a request's headers: edit them, then carry out `step`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// Request headers to remove: a route selector the client sent (only the gateway picks
    /// routes), and the client's credentials (they never reach an upstream unasked).
    pub remove: Vec<String>,
    /// Request headers to set: the client's sealed identity on what goes to the bridge.
    pub set: Vec<(String, String)>,
    pub step: Step,
}

impl Exchange {
    /// The headers phase of a request. `source` is the peer's address (a host lookup, made
    /// only when clients are told apart by it).
    pub fn on_arrival(
        &mut self,
        gw: &Gateway,
        headers: Headers<'_>,
        source: impl FnOnce() -> Option<IpAddr>,
        clock: &Clock,
    ) -> Arrival {
        self.arrived_ms = clock.now_ms;
        let mut remove: Vec<String> = Vec::new();
        if headers.has(ROUTE_HEADER) {
            remove.push(ROUTE_HEADER.into());
        }
        let answer = |step| Arrival {
            remove: remove.clone(),
            set: Vec::new(),
            step,
        };
        let config = &gw.config;
        // A host route's server is the client's to talk to: CORS and Host checks are its own.
        if let Some(hosts) = &config.host_routes {
            use crate::filter_config::HostMatch;
            match hosts.find(headers.get(":authority").unwrap_or_default()) {
                HostMatch::Route(route) => {
                    return self.admit_host_routed(gw, headers, source, clock, &route.name, remove);
                }
                HostMatch::Unknown => {
                    self.state = State::Done;
                    return answer(error_reply(
                        404,
                        None,
                        code::INVALID_REQUEST,
                        "No MCP server is routed at this hostname",
                    ));
                }
                HostMatch::Gateway => {}
            }
        }
        let path = headers.get(":path").unwrap_or_default();
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        // The Protected Resource Metadata is public (RFC 9728): it is how a client without a
        // token learns where to get one, from any page.
        if config.oauth().is_some()
            && path
                .strip_prefix(crate::oauth::METADATA_PATH)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        {
            self.state = State::Done;
            return answer(Step::PassThrough);
        }
        if path == config.mcp_path || gw.own_endpoint(path).is_some() {
            self.endpoint = Some(path.to_string());
        }
        let origin = headers.get("origin");
        // A CORS preflight carries no credentials: answered before anything else.
        if let Some(o) = origin
            && headers.get(":method") == Some("OPTIONS")
            && headers.has("access-control-request-method")
            && let Some(grants) = config.preflight_headers(o)
        {
            self.state = State::Done;
            return answer(Step::Respond(Reply {
                status: 204,
                headers: grants,
                body: Vec::new(),
            }));
        }
        self.cors = origin.map(|o| config.cors_headers(o)).unwrap_or_default();
        // DNS rebinding: a page on another origin, or a name that resolves to us, gets 403.
        if let Some(why) = config.refuses_origin(origin, headers.get(":authority")) {
            self.state = State::Done;
            return answer(error_reply(403, None, code::INVALID_REQUEST, &why));
        }
        let identity = match self.authenticate(gw, headers, source, clock.now_s) {
            Ok(identity) => identity,
            Err(step) => return answer(step),
        };
        let pass_through = pass_through(gw, headers);
        // The client's own token, read before its credentials are removed: exchanged for
        // upstream tokens, never sent on.
        if gw.exchanges_tokens && identity.as_ref().is_some_and(|i| i.claims.is_some()) {
            self.subject_token = headers
                .get("authorization")
                .and_then(crate::oauth::bearer_token)
                .map(str::to_string);
        }
        remove.extend(
            config
                .credential_headers
                .iter()
                .filter(|n| headers.has(n))
                .cloned(),
        );
        self.client.identity = identity.as_ref().map(Identity::key).unwrap_or_default();
        self.client.via_bridge = identity.as_ref().is_some_and(|i| i.via_bridge);
        if config.audit {
            self.client.session = headers
                .get(SESSION_HEADER)
                .map(crate::audit::session_digest)
                .unwrap_or_default();
        }
        let owned = |name: &str| headers.get(name).map(str::to_string);
        let head = RequestHead {
            method: owned(":method").unwrap_or_default(),
            path: owned(":path").unwrap_or_default(),
            session_id: owned(SESSION_HEADER),
            protocol_version: owned(VERSION_HEADER),
            last_event_id: owned(LAST_EVENT_ID_HEADER),
            identity,
            pass_through,
            trace_context: ["traceparent", "tracestate"]
                .into_iter()
                .filter_map(|name| Some((name.to_string(), owned(name)?)))
                .collect(),
            mcp_method: owned(crate::wire::METHOD_HEADER),
            mcp_name: owned(crate::wire::NAME_HEADER),
            mcp_params: headers
                .0
                .iter()
                .filter(|(k, _)| crate::modern::is_param_header(k))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
        };
        let step = self.on_request_headers(gw, &head, clock.now_s);
        let step = self.with_upstream_tokens(gw, step, clock);
        // What passes on untouched goes to the bridge (the merged stream, `/sse`), which
        // serves it through the gateway again on the client's behalf: it gets the identity
        // found here, sealed, so only an identity established here ever counts.
        let set = match (&step, &head.identity) {
            (Step::PassThrough, Some(who)) => {
                vec![(IDENTITY_HEADER.to_string(), gw.relay(who, clock))]
            }
            _ => Vec::new(),
        };
        Arrival { remove, set, step }
    }

    /// A request to a host route: authenticated and checked against the rules when the
    /// gateway has clients, stripped of the credentials the gateway consumed, audited and
    /// counted (its method from `Mcp-Method`, which 2026-07-28 clients send, else the HTTP
    /// method: the body is not read), and passed on untouched otherwise.
    fn admit_host_routed(
        &mut self,
        gw: &Gateway,
        headers: Headers<'_>,
        source: impl FnOnce() -> Option<IpAddr>,
        clock: &Clock,
        route: &str,
        mut remove: Vec<String>,
    ) -> Arrival {
        self.state = State::Done;
        self.host_route = Some(route.to_string());
        self.audit.upstream = format!("host:{route}");
        self.audit.method = headers
            .get(crate::wire::METHOD_HEADER)
            .or_else(|| headers.get(":method"))
            .unwrap_or_default()
            .to_string();
        self.audit.name = headers
            .get(crate::wire::NAME_HEADER)
            .unwrap_or_default()
            .to_string();
        let answer = |remove: Vec<String>, step| Arrival {
            remove,
            set: Vec::new(),
            step,
        };
        let identity = match self.authenticate(gw, headers, source, clock.now_s) {
            Ok(identity) => identity,
            Err(step) => return answer(remove, step),
        };
        self.client.identity = identity.as_ref().map(Identity::key).unwrap_or_default();
        if gw.config.audit {
            self.client.session = headers
                .get(SESSION_HEADER)
                .map(crate::audit::session_digest)
                .unwrap_or_default();
        }
        self.identity = identity;
        if !self.permits(gw, Kind::Host, route) {
            let who = self
                .identity
                .as_ref()
                .map_or("this client", |i| i.client.as_str());
            let message = format!("Access denied: {who} may not use host route {route:?}");
            self.log.push(message.clone());
            return answer(remove, error_reply(403, None, ACCESS_DENIED, &message));
        }
        if let Some(h) = &gw.config.host_routes {
            remove.extend(h.strip_headers.iter().filter(|n| headers.has(n)).cloned());
        }
        answer(remove, Step::PassThrough)
    }

    /// Who sent the request: `Ok(None)` when the gateway has no clients to tell apart; a
    /// refused request gets 401 with the challenge.
    fn authenticate(
        &mut self,
        gw: &Gateway,
        headers: Headers<'_>,
        source: impl FnOnce() -> Option<IpAddr>,
        now_s: u64,
    ) -> Result<Option<Identity>, Step> {
        if gw.config.access.is_none() {
            return Ok(None);
        }
        let header = |name: &str| headers.get(name).map(str::to_string);
        let credentials = Credentials {
            header: &header,
            source: source(),
        };
        gw.admit(&credentials, now_s).map_err(|refused| {
            self.state = State::Done;
            let oauth = gw.config.oauth();
            // With MCP authorization, the challenge says where to get a token; a token Envoy
            // did not verify (no payload forwarded) is called invalid, as RFC 6750 says.
            let (message, challenge) = match oauth {
                Some(o) => {
                    let presented = headers
                        .get("authorization")
                        .and_then(crate::oauth::bearer_token)
                        .is_some();
                    let endpoint = self.endpoint.as_deref();
                    if presented && !headers.has(crate::access::JWT_PAYLOAD_HEADER) {
                        (
                            "Unauthorized: the access token is expired, invalid or not for this resource".to_string(),
                            o.challenge(endpoint, crate::oauth::Challenge::InvalidToken),
                        )
                    } else {
                        (refused.message, o.challenge(endpoint, crate::oauth::Challenge::NoToken))
                    }
                }
                None => (refused.message, refused.challenge),
            };
            let mut reply = json_reply(
                401,
                jsonrpc::error_body(None, code::INVALID_REQUEST, &message),
            );
            reply.headers.push(("www-authenticate".into(), challenge));
            Step::Respond(reply)
        })
    }

    /// CORS headers for this request's answer (an allowed `Origin`).
    pub fn cors(&self) -> &[(String, String)] {
        &self.cors
    }
}

/// The client's headers that some upstream takes by pass-through, read before its
/// credentials are removed (lower-case names, each once).
fn pass_through(gw: &Gateway, headers: Headers<'_>) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    for p in gw.config.upstreams.iter().flat_map(|u| &u.pass_through) {
        if !found.iter().any(|(k, _)| k.eq_ignore_ascii_case(&p.source))
            && let Some(v) = headers.get(&p.source)
        {
            found.push((p.source.to_ascii_lowercase(), v.to_string()));
        }
    }
    found
}

/// The IP of Envoy's `source.address` (`1.2.3.4:5678`, `[::1]:5678`).
pub fn source_ip(address: &str) -> Option<IpAddr> {
    address
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .ok()
        .or_else(|| address.parse().ok())
}
