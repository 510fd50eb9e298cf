//! Upstream tokens (RFC 8693): an upstream with `token_exchange` gets, on every call the
//! gateway makes or routes to it, a token of its own for the user instead of the client's.
//! The token comes from the cache shared by Envoy's workers (per user and upstream, until
//! shortly before it expires) or from the authorization server: then what was about to go
//! out (a routed request, the filter's calls) is held until the exchanges have answered.

use super::*;
use crate::token_exchange::{self, ExchangeError, Issued};

/// Call indexes from here on are token exchanges; below, the exchange's own calls.
pub(super) const TOKEN_CALL_BASE: usize = 1 << 24;

/// What waits for tokens.
#[derive(Debug)]
pub(super) struct TokenStage {
    held: Step,
    /// Per exchange call: the upstream it is for, and its answer.
    asked: Vec<(usize, Option<Result<Issued, ExchangeError>>)>,
}

impl Exchange {
    /// The upstreams `step` sends something to that need a token of their own.
    fn exchanging_upstreams(gw: &Gateway, step: &Step) -> Vec<usize> {
        let targets: Vec<Option<(usize, &Upstream)>> = match step {
            Step::AwaitCallouts(calls) => calls.iter().map(|c| gw.by_cluster(&c.cluster)).collect(),
            Step::Route(r) => vec![gw.by_name(&r.upstream)],
            _ => Vec::new(),
        };
        let mut out: Vec<usize> = Vec::new();
        for (i, u) in targets.into_iter().flatten() {
            if u.token_exchange.is_some() && !out.contains(&i) {
                out.push(i);
            }
        }
        out
    }

    /// Whether upstream `u`'s token is known: got earlier in this request, or found in the
    /// cache (then kept for the rest of the request).
    fn knows_token(&mut self, gw: &Gateway, u: usize, now_ms: u64) -> bool {
        let name = &gw.config.upstreams[u].name;
        if self.upstream_tokens.iter().any(|(n, _)| n == name) {
            return true;
        }
        let cached = self.identity_key().and_then(|user| {
            gw.cache
                .get(&token_exchange::cache_key(name, &user))
                .and_then(|v| token_exchange::cached(&v, now_ms))
        });
        match cached {
            Some(token) => {
                self.upstream_tokens.push((name.clone(), token));
                true
            }
            None => false,
        }
    }

    /// `step` with the upstreams' tokens, or the exchanges that get them first (`step` is
    /// held until they answer).
    pub(super) fn with_upstream_tokens(&mut self, gw: &Gateway, step: Step, clock: &Clock) -> Step {
        if !gw.exchanges_tokens {
            return step;
        }
        let needed = Self::exchanging_upstreams(gw, &step);
        if needed.is_empty() {
            return step;
        }
        let mut calls = Vec::new();
        let mut asked = Vec::new();
        for u in needed {
            if self.knows_token(gw, u, clock.now_ms) {
                continue;
            }
            let Some(te) = gw.config.upstreams[u].token_exchange.as_ref() else {
                continue;
            };
            let request = match &self.subject_token {
                Some(subject) => te.request(subject, clock.now_s, &[&clock.seed[..], &u.to_be_bytes()].concat()),
                // A request the bridge makes for the client carries no token of the
                // client's: only a cached exchange serves it.
                None => Err(ExchangeError::Failed(
                    "there is no client token to exchange (none was presented, or the request came through the bridge and none is cached)".into(),
                )),
            };
            match request {
                Ok((headers, body)) => {
                    calls.push(Callout {
                        call: TOKEN_CALL_BASE + asked.len(),
                        cluster: te.cluster.clone(),
                        headers,
                        body,
                        timeout_ms: te.timeout_ms,
                    });
                    asked.push((u, None));
                }
                Err(e) => asked.push((u, Some(Err(e)))),
            }
        }
        if asked.is_empty() {
            return self.apply_tokens(gw, step);
        }
        self.tokens = Some(Box::new(TokenStage { held: step, asked }));
        if calls.is_empty() {
            // Nothing to ask: every missing token failed already.
            return self
                .release(gw, clock)
                .unwrap_or(Step::AwaitCallouts(Vec::new()));
        }
        Step::AwaitCallouts(calls)
    }

    /// `Authorization: Bearer <its token>` on what goes to each upstream that has one.
    fn apply_tokens(&self, gw: &Gateway, step: Step) -> Step {
        let token_of = |name: &str| {
            self.upstream_tokens
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| format!("Bearer {t}"))
        };
        match step {
            Step::AwaitCallouts(mut calls) => {
                for c in &mut calls {
                    if let Some((_, u)) = gw.by_cluster(&c.cluster)
                        && let Some(value) = token_of(&u.name)
                    {
                        c.headers
                            .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
                        c.headers.push(("authorization".into(), value));
                    }
                }
                Step::AwaitCallouts(calls)
            }
            Step::Route(mut r) => {
                if let Some(value) = token_of(&r.upstream) {
                    r.headers
                        .retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
                    r.headers.push(("authorization".into(), Some(value)));
                }
                Step::Route(r)
            }
            other => other,
        }
    }

    /// The authorization server's answer to exchange call `n`.
    pub(super) fn on_token_answer(
        &mut self,
        gw: &Gateway,
        n: usize,
        answer: Result<CalloutAnswer, Failure>,
        clock: &Clock,
    ) -> Option<Step> {
        let user = self.identity_key();
        let stage = self.tokens.as_mut()?;
        let (u, slot) = stage.asked.get_mut(n)?;
        let upstream = &gw.config.upstreams[*u];
        let read = match answer {
            Ok(a) => token_exchange::read_answer(a.status, &a.body, clock.now_ms),
            Err(f) => Err(ExchangeError::Failed(format!(
                "the authorization server did not answer ({f})"
            ))),
        };
        match &read {
            Ok(issued) => {
                if let (Some(user), Some(value)) = (user, token_exchange::cache_value(issued)) {
                    gw.cache
                        .put(&token_exchange::cache_key(&upstream.name, &user), &value);
                }
            }
            Err(e) => self.log.push(format!(
                "token exchange for upstream {:?}: {e}",
                upstream.name
            )),
        }
        *slot = Some(read);
        if stage.asked.iter().any(|(_, a)| a.is_none()) {
            return None;
        }
        self.release(gw, clock)
    }

    /// Every exchange answered: the held step goes out with the tokens; what was for an
    /// upstream without one fails as that upstream's part.
    fn release(&mut self, gw: &Gateway, clock: &Clock) -> Option<Step> {
        let stage = self.tokens.take()?;
        let mut failed: Vec<(usize, ExchangeError)> = Vec::new();
        for (u, answer) in stage.asked {
            match answer {
                Some(Ok(issued)) => {
                    let name = gw.config.upstreams[u].name.clone();
                    self.upstream_tokens.push((name, issued.token));
                }
                Some(Err(e)) => failed.push((u, e)),
                None => {}
            }
        }
        let step = match stage.held {
            Step::Route(r) => {
                if let Some((u, e)) = failed.into_iter().next() {
                    return Some(self.token_refusal(gw, u, &e));
                }
                Step::Route(r)
            }
            Step::AwaitCallouts(calls) => {
                // Why a call's upstream got no token, if it did not.
                let failure_of = |c: &Callout| {
                    let (i, _) = gw.by_cluster(&c.cluster)?;
                    failed
                        .iter()
                        .find(|(u, _)| *u == i)
                        .map(|(_, e)| e.to_string())
                };
                let (lost, kept): (Vec<Callout>, Vec<Callout>) =
                    calls.into_iter().partition(|c| failure_of(c).is_some());
                // One upstream's refusal of the client's token is the client's to hear.
                if let Some((u, e)) = failed
                    .iter()
                    .find(|(_, e)| matches!(e, ExchangeError::SubjectRefused(_)))
                {
                    return Some(self.token_refusal(gw, *u, e));
                }
                for c in lost {
                    let why = failure_of(&c).unwrap_or_default();
                    if let Some(done) =
                        self.callout_response(gw, c.call, Err(Failure::Token(why)), clock)
                    {
                        // That was the last answer the operation waited for.
                        return Some(self.outgoing(gw, done, clock));
                    }
                }
                Step::AwaitCallouts(kept)
            }
            other => other,
        };
        Some(self.apply_tokens(gw, step))
    }

    /// The answer to a request routed to upstream `u`, which could not get a token: 401 when
    /// the authorization server refused the client's token, 403 (`-32004`) when it denied
    /// the user a token for the upstream, else a JSON-RPC error naming the upstream.
    fn token_refusal(&mut self, gw: &Gateway, u: usize, e: &ExchangeError) -> Step {
        let upstream = &gw.config.upstreams[u];
        let id: Option<Value> = match &self.state {
            State::Routed(r) => {
                r.id.as_ref()
                    .and_then(|i| serde_json::from_str(i.get()).ok())
            }
            State::FanOut(f) => f.id.clone(),
            _ => None,
        };
        self.state = State::Done;
        let message = format!(
            "Upstream {:?} could not be given a token: {e}",
            upstream.name
        );
        if let ExchangeError::Denied(_) = e {
            return Step::Respond(json_reply(
                403,
                error_body_value(id.as_ref(), ACCESS_DENIED, &message),
            ));
        }
        if let ExchangeError::SubjectRefused(_) = e {
            let mut reply = json_reply(
                401,
                error_body_value(id.as_ref(), code::INVALID_REQUEST, &message),
            );
            if let Some(o) = gw.config.oauth() {
                reply.headers.push((
                    "www-authenticate".into(),
                    o.challenge(
                        self.endpoint.as_deref(),
                        crate::oauth::Challenge::InvalidToken,
                    ),
                ));
            }
            return Step::Respond(reply);
        }
        Step::Respond(json_reply(
            200,
            error_body_value(id.as_ref(), UPSTREAM_ERROR, &message),
        ))
    }
}
