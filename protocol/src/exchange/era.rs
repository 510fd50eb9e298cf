//! Which revision each upstream speaks, and how a request goes to it.
//!
//! Each client is served in the revision closest to its own, upstream by upstream:
//!
//! - a stateless (2026-07-28) client's request goes in that revision to every upstream that
//!   answers `server/discover` (no handshake, no session: the client's `_meta` and the
//!   routing headers on every request), and with `initialize` and a session to the others;
//! - a 2025 client's session uses `initialize` with every upstream that takes it (a dual-era
//!   upstream then keeps its streams and server requests), and the revision only with those
//!   that refuse the handshake.
//!
//! What was found is kept in the shared cache (every worker reads it), keyed by the
//! upstream's address, and logged: after that, the right question goes first. An opening
//! is one round — each upstream asked what it is thought to speak — and a second round
//! asking the other question of those whose first answer said no.

use super::*;
use crate::filter_config::UpstreamProtocol;
use crate::modern::{self, ClientMeta};

/// What is known of an upstream's revisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Era {
    /// Not a 2026-07-28 server: `initialize` and a session (2024-11-05 … 2025-11-25).
    Legacy,
    /// A 2026-07-28 server, with the [`caps`] bits of its last `server/discover` and when
    /// (ms); `only` when it refuses `initialize` too.
    Modern {
        capabilities: u8,
        at_ms: u64,
        only: bool,
    },
}

/// How long a modern upstream's capabilities are trusted without asking again, for
/// stateless requests (a 2025 client's `initialize` always asks).
const CAPABILITIES_FRESH_MS: u64 = 60_000;

impl Gateway {
    fn era_key(&self, index: usize) -> String {
        let u = &self.config.upstreams[index];
        let address = Sha256::digest(format!("{}|{}|{}", u.cluster, u.authority, u.path));
        let digest: String = address[..6].iter().map(|b| format!("{b:02x}")).collect();
        format!("era/{}/{digest}", u.name)
    }

    /// What is known of upstream `index`'s revisions: configured, else learned.
    pub(super) fn era(&self, index: usize) -> Option<Era> {
        match self.config.upstreams[index].protocol {
            UpstreamProtocol::Legacy => Some(Era::Legacy),
            UpstreamProtocol::Modern => Some(match self.learned_era(index) {
                Some(Era::Modern {
                    capabilities,
                    at_ms,
                    ..
                }) => Era::Modern {
                    capabilities,
                    at_ms,
                    only: true,
                },
                _ => Era::Modern {
                    capabilities: 0,
                    at_ms: 0,
                    only: true,
                },
            }),
            UpstreamProtocol::Auto => self.learned_era(index),
        }
    }

    fn learned_era(&self, index: usize) -> Option<Era> {
        let value = self.cache.get(&self.era_key(index))?;
        let text = std::str::from_utf8(&value).ok()?;
        let mut parts = text.split(':');
        match parts.next()? {
            "legacy" => Some(Era::Legacy),
            v if v == modern::VERSION => Some(Era::Modern {
                capabilities: parts.next()?.parse().ok()?,
                at_ms: parts.next()?.parse().ok()?,
                only: parts.next()? == "only",
            }),
            _ => None,
        }
    }

    /// Remembers upstream `index`'s revisions; `None` forgets them (found again next time).
    pub(super) fn learn_era(&self, index: usize, era: Option<Era>) {
        let value = match era {
            None => String::new(),
            Some(Era::Legacy) => "legacy".into(),
            Some(Era::Modern {
                capabilities,
                at_ms,
                only,
            }) => format!(
                "{}:{capabilities}:{at_ms}:{}",
                modern::VERSION,
                if only { "only" } else { "both" }
            ),
        };
        self.cache.put(&self.era_key(index), value.as_bytes());
    }
}

/// A question an opening asks an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ask {
    Initialize,
    Discover,
}

/// Upstreams being opened for a request, across the (at most) two rounds.
#[derive(Debug, Default)]
pub(super) struct Opening {
    /// Per call of the current round: what was asked, and whether a "no" is asked the
    /// other question next.
    pub(super) sent: Vec<(Ask, bool)>,
    /// The `initialize` request for 2025 upstreams.
    pub(super) initialize: Vec<u8>,
    /// Upstreams opened already: (index, answer, result as an `initialize` result).
    pub(super) carried: Vec<(usize, CalloutAnswer, Value)>,
    /// Upstreams to ask the other question in the next round.
    pub(super) again: Vec<(usize, Ask)>,
    /// Upstreams that refused `initialize`, and how: told if `server/discover` fails too.
    pub(super) refusals: Vec<(usize, String)>,
    /// Failures of the first round, told with the second's.
    pub(super) failures: Vec<String>,
    /// Upstreams whose kept session is used ([`super::kept`]), with its last use.
    pub(super) reused: Vec<(usize, u64)>,
}

/// A request to an upstream inside a session: in its own session and version, or — for
/// an upstream of the stateless revision — with the client's `_meta` and routing headers.
pub(super) fn upstream_callout(
    call: usize,
    upstream: &Upstream,
    session_id: Option<&str>,
    version: &str,
    client: Option<&ClientMeta>,
    body: &[u8],
) -> Callout {
    if version != modern::VERSION {
        return callout(call, upstream, "POST", session_id, Some(version), body);
    }
    let body = modern::with_request_meta(body, client.unwrap_or(&ClientMeta::default()));
    let mut c = callout(call, upstream, "POST", None, None, &body);
    c.headers.extend(modern::routing_headers(&body));
    c
}

/// An upstream answered the revision's `server/discover` with a result of it, or did not.
fn read_discover(answer: &Result<CalloutAnswer, Failure>) -> Option<Value> {
    let a = answer.as_ref().ok()?;
    if !(200..300).contains(&a.status) {
        return None;
    }
    let response = mcp::find_response(&a.content_type, &a.body, &json!(0)).ok()?;
    modern::discovered(response.get("result")?)
}

impl Exchange {
    /// The first round of opening `targets` (a fan-out of `op`: `Op::Initialize` for a 2025
    /// client, `Op::Open` for a stateless one). A modern upstream whose capabilities are
    /// fresh needs no call at all for a stateless request unless `need_results`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open_upstreams(
        &mut self,
        gw: &Gateway,
        op: Op,
        id: Option<Value>,
        targets: Vec<usize>,
        initialize: Vec<u8>,
        need_results: bool,
        clock: &Clock,
    ) -> Step {
        let stateless = matches!(op, Op::Open);
        let mut opening = Opening {
            initialize,
            ..Opening::default()
        };
        let mut calls = Vec::new();
        let mut called = Vec::new();
        for &u in &targets {
            if gw.config.upstreams[u].rest_tools.is_some() {
                // A REST API: no session, tools only, nothing to ask.
                opening
                    .carried
                    .push((u, CalloutAnswer::default(), rest_call::opened()));
                continue;
            }
            let era = gw.era(u);
            // A stateless client's earlier request left a session at this 2025 upstream (a
            // `server/discover` asks anew: it merges what `initialize` says).
            if stateless
                && !need_results
                && era == Some(Era::Legacy)
                && let Some((answer, result, used_ms)) = self.kept_session(gw, u, clock.now_ms)
            {
                opening.carried.push((u, answer, result));
                opening.reused.push((u, used_ms));
                continue;
            }
            let (ask, fallback) = match era {
                Some(Era::Legacy) => (Ask::Initialize, false),
                Some(Era::Modern {
                    capabilities,
                    at_ms,
                    ..
                }) if stateless
                    && !need_results
                    && clock.now_ms.saturating_sub(at_ms) < CAPABILITIES_FRESH_MS =>
                {
                    let known = known_result(modern::VERSION, capabilities);
                    opening.carried.push((u, CalloutAnswer::default(), known));
                    continue;
                }
                Some(Era::Modern { only: true, .. }) => (Ask::Discover, false),
                Some(Era::Modern { .. }) | None if stateless => (Ask::Discover, true),
                Some(Era::Modern { .. }) | None => (Ask::Initialize, true),
            };
            opening.sent.push((ask, fallback));
            calls.push(self.asking(gw, calls.len(), u, ask, &opening.initialize));
            called.push(u);
        }
        self.opening = Some(Box::new(opening));
        let state = FanOutState {
            op,
            id,
            answers: vec![None; called.len()],
            targets: called,
        };
        if calls.is_empty() {
            // Every upstream is open already: finish as a round that asked nobody.
            return self.finish_fan_out(gw, state, clock);
        }
        self.state = State::FanOut(state);
        Step::AwaitCallouts(calls)
    }

    fn asking(&self, gw: &Gateway, call: usize, u: usize, ask: Ask, initialize: &[u8]) -> Callout {
        let upstream = &gw.config.upstreams[u];
        match ask {
            Ask::Initialize => callout(call, upstream, "POST", None, None, initialize),
            Ask::Discover => {
                let client = self.client_meta.clone().unwrap_or_default();
                let body = modern::discover_request(&client);
                let mut c = callout(call, upstream, "POST", None, None, &body);
                c.headers.extend(modern::routing_headers(&body));
                c
            }
        }
    }

    /// Reads an opening's answer to a `server/discover`, or a refused `initialize` that
    /// gets the other question next: `Some(Ok(Some(result)))` for a modern upstream's
    /// result, `Some(Ok(None))` for "ask again", `Some(Err)` for a failure; `None` for an
    /// `initialize` answer read as any other.
    pub(super) fn read_opening(
        &mut self,
        gw: &Gateway,
        call: usize,
        target: usize,
        answer: &Result<CalloutAnswer, Failure>,
        want: &Value,
        now_ms: u64,
    ) -> Option<Result<Option<Value>, Failure>> {
        let opening = self.opening.as_mut()?;
        let (ask, fallback) = opening.sent.get(call).copied()?;
        let name = &gw.config.upstreams[target].name;
        // Not reached, timed out, failing or refusing this client: a failure, whichever
        // revision it speaks; only an answer that says "not this question" asks the other.
        let reached = answer.as_ref().ok()?;
        let refusal = (200..500).contains(&reached.status)
            && !matches!(reached.status, 401 | 403 | 407 | 429);
        match ask {
            Ask::Initialize => {
                let accepted = (200..300).contains(&reached.status)
                    && mcp::find_response(&reached.content_type, &reached.body, want)
                        .is_ok_and(|r| r.get("result").is_some());
                if accepted || !refusal {
                    return None;
                }
                if !fallback {
                    // Refused as a known 2025 upstream: it may have moved on; ask anew next time.
                    gw.learn_era(target, None);
                    return None;
                }
                let why = match http_failure(reached.status, &reached.body, 0) {
                    _ if (200..300).contains(&reached.status) => {
                        String::from_utf8_lossy(&reached.body[..reached.body.len().min(300)])
                            .into_owned()
                    }
                    failure => failure.to_string(),
                };
                opening.refusals.push((target, why));
                opening.again.push((target, Ask::Discover));
                Some(Ok(None))
            }
            Ask::Discover => match read_discover(answer) {
                Some(result) => {
                    let was = gw.era(target);
                    // Asked second, after initialize was refused: it speaks nothing else.
                    let only = matches!(was, Some(Era::Modern { only: true, .. }))
                        || opening.refusals.iter().any(|(u, _)| *u == target);
                    gw.learn_era(
                        target,
                        Some(Era::Modern {
                            capabilities: mcp::capability_bits(&result),
                            at_ms: now_ms,
                            only,
                        }),
                    );
                    let news = match was {
                        Some(Era::Modern { only: before, .. }) => only && !before,
                        _ => true,
                    };
                    if news {
                        self.log.push(format!(
                            "upstream {name:?} speaks MCP {}{}",
                            modern::VERSION,
                            if only {
                                " only (it refused initialize)"
                            } else {
                                ""
                            }
                        ));
                    }
                    Some(Ok(Some(result)))
                }
                None if !refusal => Some(Err(http_failure(
                    reached.status,
                    &reached.body,
                    gw.config.upstreams[target].timeout_ms,
                ))),
                None if !fallback => {
                    let refused = opening
                        .refusals
                        .iter()
                        .find(|(u, _)| *u == target)
                        .map(|(_, why)| format!(" and refused initialize: {why}"))
                        .unwrap_or_default();
                    Some(Err(Failure::Http(format!(
                        "did not answer server/discover as an MCP {} server{refused}",
                        modern::VERSION
                    ))))
                }
                None => {
                    if gw.era(target).is_none() {
                        self.log.push(format!(
                            "upstream {name:?} does not speak MCP {}: it gets initialize",
                            modern::VERSION
                        ));
                    }
                    gw.learn_era(target, Some(Era::Legacy));
                    opening.again.push((target, Ask::Initialize));
                    Some(Ok(None))
                }
            },
        }
    }

    /// After a round of an opening: the next round (the other question to those that said
    /// no), or `done` completed with what every round opened.
    pub(super) fn after_round(
        &mut self,
        gw: &Gateway,
        op: Op,
        id: Option<Value>,
        mut done: Answered,
    ) -> Result<Answered, Step> {
        let Some(mut opening) = self.opening.take() else {
            return Ok(done);
        };
        opening.carried.append(&mut done.ok);
        opening.failures.append(&mut done.failures);
        if !opening.again.is_empty() {
            let again = std::mem::take(&mut opening.again);
            // The last round: a second "no" is a failure.
            opening.sent = again.iter().map(|&(_, ask)| (ask, false)).collect();
            let calls = again
                .iter()
                .enumerate()
                .map(|(call, &(u, ask))| self.asking(gw, call, u, ask, &opening.initialize))
                .collect();
            let targets = again.iter().map(|&(u, _)| u).collect::<Vec<_>>();
            self.opening = Some(opening);
            self.state = State::FanOut(FanOutState {
                op,
                id,
                answers: vec![None; targets.len()],
                targets,
            });
            return Err(Step::AwaitCallouts(calls));
        }
        let mut opened = std::mem::take(&mut opening.carried);
        // Configuration order, as sessions list their upstreams.
        opened.sort_by_key(|(u, _, _)| *u);
        done.ok = opened;
        done.failures = std::mem::take(&mut opening.failures);
        done.reused = std::mem::take(&mut opening.reused);
        Ok(done)
    }
}

/// The `initialize`-shaped result of an upstream known by its version and capability bits.
pub(super) fn known_result(version: &str, bits: u8) -> Value {
    let mut capabilities = serde_json::Map::new();
    for (key, bit) in mcp::CAPABILITIES {
        if bits & bit != 0 {
            capabilities.insert(key.into(), json!({}));
        }
    }
    if bits & caps::RESOURCE_SUBSCRIBE != 0 {
        capabilities.insert("resources".into(), json!({"subscribe": true}));
    }
    json!({"protocolVersion": version, "capabilities": capabilities})
}
