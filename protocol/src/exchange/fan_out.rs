use super::*;

#[derive(Debug)]
pub(super) struct FanOutState {
    pub(super) op: Op,
    pub(super) id: Option<Value>,
    /// Upstream index per call.
    pub(super) targets: Vec<usize>,
    pub(super) answers: Vec<Option<Result<CalloutAnswer, Failure>>>,
}

#[derive(Debug)]
pub(super) enum Op {
    Initialize {
        version: &'static str,
    },
    List(Box<ListFanOut>),
    /// Notifications and `logging/setLevel`: answer once every upstream has it.
    Broadcast {
        reply_result: bool,
    },
    Delete,
    /// A shortened name: list the upstream's names (page by page) to find the real one.
    Resolve(Box<Resolve>),
    /// The call with the real name, made by the filter itself; its answer is passed on.
    CallThrough,
    /// A stateless client's request: sessions opened at its upstreams ...
    Open,
    /// ... and told they are initialized (they are kept for the client's next requests).
    Opened,
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Initialize { .. } => "initialize",
            Op::List(list) => list.kind.method(),
            Op::Broadcast { .. } => "a notification",
            Op::Delete => "session termination",
            Op::Resolve(_) => "name resolution",
            Op::CallThrough => "a call",
            Op::Open => "initialize",
            Op::Opened => "a notification",
        }
    }
}

pub(super) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

impl Exchange {
    /// The largest body the answer to callout `call` may have: a list page beyond its
    /// upstream's `max_list_bytes` is a failure, which the shell reports without copying it.
    pub fn callout_limit(&self, gw: &Gateway, call: usize) -> u64 {
        if call >= upstream_tokens::TOKEN_CALL_BASE {
            return crate::token_exchange::MAX_ANSWER_BYTES;
        }
        match &self.state {
            State::FanOut(f) if matches!(f.op, Op::List(_) | Op::Resolve(_)) => f
                .targets
                .get(call)
                .and_then(|&u| gw.config.upstreams.get(u))
                .map_or(u64::MAX, |u| u.max_list_bytes),
            // A REST answer is read whole: no larger than the upstream's list limit.
            State::FanOut(f) if self.through.as_ref().is_some_and(|t| t.rest.is_some()) => f
                .targets
                .get(call)
                .and_then(|&u| gw.config.upstreams.get(u))
                .map_or(u64::MAX, |u| u.max_list_bytes),
            _ => u64::MAX,
        }
    }

    /// The answer to callout `call`, or why there is none. Returns the final step once every
    /// callout has answered.
    pub fn on_callout_response(
        &mut self,
        gw: &Gateway,
        call: usize,
        answer: Result<CalloutAnswer, Failure>,
        clock: &Clock,
    ) -> Option<Step> {
        if let Some(n) = call.checked_sub(upstream_tokens::TOKEN_CALL_BASE) {
            return self.on_token_answer(gw, n, answer, clock);
        }
        let step = self.callout_response(gw, call, answer, clock)?;
        Some(self.outgoing(gw, step, clock))
    }

    pub(super) fn callout_response(
        &mut self,
        gw: &Gateway,
        call: usize,
        answer: Result<CalloutAnswer, Failure>,
        clock: &Clock,
    ) -> Option<Step> {
        let State::FanOut(state) = &mut self.state else {
            return None;
        };
        let slot = state.answers.get_mut(call)?;
        *slot = Some(answer);
        if state.answers.iter().any(Option::is_none) {
            return None;
        }
        let State::FanOut(state) = std::mem::replace(&mut self.state, State::Done) else {
            return None;
        };
        Some(self.finish_fan_out(gw, state, clock))
    }

    /// Every callout has answered: read each answer as the operation needs it, then make
    /// the operation's one answer to the client.
    pub(super) fn finish_fan_out(
        &mut self,
        gw: &Gateway,
        state: FanOutState,
        clock: &Clock,
    ) -> Step {
        let FanOutState {
            mut op,
            id,
            targets,
            answers,
        } = state;
        match op {
            Op::Resolve(r) => {
                let answer = answers.into_iter().next().flatten();
                return self.finish_resolve(gw, *r, id.unwrap_or(Value::Null), answer);
            }
            Op::CallThrough => {
                let answer = answers.into_iter().next().flatten();
                return self.finish_call_through(gw, targets[0], id, answer, clock);
            }
            _ => {}
        }
        let mut done = Answered::default();
        let want = id.clone().unwrap_or(Value::Null);
        let opening = matches!(op, Op::Initialize { .. } | Op::Open);
        for (call, answer) in answers.into_iter().enumerate() {
            let upstream = &gw.config.upstreams[targets[call]];
            let answer = answer.unwrap_or(Err(Failure::NoAnswer));
            if answer.as_ref().is_ok_and(|a| a.status == 404) {
                self.forgotten(gw, targets[call]);
            }
            let of = Answer {
                call,
                upstream,
                want: &want,
            };
            let read = match opening
                .then(|| self.read_opening(gw, call, targets[call], &answer, &want, clock.now_ms))
                .flatten()
            {
                Some(Ok(Some(result))) => Ok(Read::Result(answer.unwrap_or_default(), result)),
                Some(Ok(None)) => Ok(Read::Nothing),
                Some(Err(why)) => Err(why),
                None => self.read_answer(gw, &mut op, of, answer, clock),
            };
            match read {
                Ok(Read::Page(page)) => done.lists.push((targets[call], page)),
                Ok(Read::Result(a, result)) => done.ok.push((targets[call], a, result)),
                Ok(Read::Nothing) => {}
                Err(why) => {
                    let line = format!(
                        "upstream {:?} failed during {}: {why}{}",
                        upstream.name,
                        op.name(),
                        via_note(&upstream.via)
                    );
                    self.log.push(line.clone());
                    done.failures.push(line);
                }
            }
        }
        if opening {
            let again = match op {
                Op::Initialize { version } => Op::Initialize { version },
                _ => Op::Open,
            };
            done = match self.after_round(gw, again, id.clone(), done) {
                Ok(done) => done,
                Err(next) => return next,
            };
        }
        let id = id.as_ref();
        if gw.config.fan_out == FanOut::FailClosed
            && !done.failures.is_empty()
            && !matches!(op, Op::Delete | Op::Open)
        {
            return Step::Respond(json_reply(
                200,
                error_body_value(id, UPSTREAM_ERROR, &capitalize(&done.failures.join("; "))),
            ));
        }
        match op {
            Op::Initialize { version } => self.finish_initialize(gw, version, id, done, clock),
            Op::Open => self.opened(gw, done, clock),
            Op::Opened => self.serve_stateless(gw, clock),
            Op::List(list) => self.finish_list(gw, *list, id, &done.lists, clock),
            Op::Broadcast { reply_result } => Step::Respond(broadcast_reply(id, reply_result)),
            Op::Delete => Step::Respond(Reply {
                status: 200,
                headers: vec![],
                body: vec![],
            }),
            // Answered before the loop above.
            Op::Resolve(_) | Op::CallThrough => internal_error(),
        }
    }

    /// One upstream's answer to a fan-out, as far as `op` needs it read.
    fn read_answer(
        &mut self,
        gw: &Gateway,
        op: &mut Op,
        of: Answer<'_>,
        answer: Result<CalloutAnswer, Failure>,
        clock: &Clock,
    ) -> Result<Read, Failure> {
        let ok = |a: CalloutAnswer| {
            if (200..300).contains(&a.status) {
                Ok(a)
            } else {
                Err(http_failure(a.status, &a.body, of.upstream.timeout_ms))
            }
        };
        let a = match op {
            Op::List(list) => {
                let page = answer
                    .and_then(ok)
                    .and_then(|a| self.read_page(gw, list, &of, &a, clock));
                // A failed upstream is left out of the following pages too.
                list.advance(of.call, page.as_ref().ok());
                return page.map(Read::Page);
            }
            _ => answer.and_then(ok)?,
        };
        if matches!(
            op,
            Op::Delete
                | Op::Opened
                | Op::Broadcast {
                    reply_result: false
                }
        ) {
            return Ok(Read::Nothing);
        }
        let response = mcp::find_response(&a.content_type, &a.body, of.want)?;
        if let Some(err) = response.get("error") {
            return Err(Failure::error(err));
        }
        let result = response["result"].clone();
        if matches!(op, Op::Initialize { .. } | Op::Open) {
            let v = result["protocolVersion"].as_str().unwrap_or_default();
            if !mcp::SUPPORTED_VERSIONS.contains(&v) {
                return Err(Failure::Version(v.to_string()));
            }
        }
        Ok(Read::Result(a, result))
    }
}

/// Which answer of a fan-out is read: the call, its upstream, and the id the answer has.
pub(super) struct Answer<'a> {
    pub(super) call: usize,
    pub(super) upstream: &'a Upstream,
    pub(super) want: &'a Value,
}

/// What a fan-out's answers gave, in call order.
#[derive(Default)]
pub(super) struct Answered {
    /// Upstream index, its answer and the `result` read from it.
    pub(super) ok: Vec<(usize, CalloutAnswer, Value)>,
    /// Upstream index and its page (list results stay text: only names are read).
    pub(super) lists: Vec<(usize, aggregate::Page)>,
    /// One line per upstream that failed, for the log and a fail-closed answer.
    pub(super) failures: Vec<String>,
    /// An opening's upstreams whose kept session is used, with its last use.
    pub(super) reused: Vec<(usize, u64)>,
}

/// What was read from one answer.
enum Read {
    Nothing,
    Result(CalloutAnswer, Value),
    Page(aggregate::Page),
}
