//! The load loop: `concurrency` virtual clients, each with its own session, sending one
//! operation back to back until the round's deadline or request cap; every answer verified.

use crate::client::{Expect, Mcp, check, initialize};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// What each request of a round does.
#[derive(Debug, Clone)]
pub enum Op {
    /// `tools/call` of `tool`, asking for `size` bytes back, as an SSE stream when `sse`.
    Call {
        tool: String,
        size: usize,
        sse: bool,
        /// As a client of the stateless revision (2026-07-28): no session, `_meta` and the
        /// routing headers on every request.
        stateless: bool,
    },
    /// `tools/list`, all pages, expecting this many tools.
    List { tools: usize },
    /// `initialize` alone (a new session per request).
    Initialize,
}

#[derive(Debug, Default, Clone)]
pub struct Round {
    pub ok: u64,
    pub errors: u64,
    pub latencies_us: Vec<u32>,
    pub elapsed: Duration,
    pub first_error: Option<String>,
}

impl Round {
    /// Adds another round (or one client's part of this one) to this one; elapsed times add
    /// up, as rounds run one after another ([`round`] sets its own from the clock).
    pub fn merge(&mut self, other: Round) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
        self.elapsed += other.elapsed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// Runs one round; `max_requests` bounds each client as well as the duration does.
pub async fn round(
    mcp: &Mcp,
    op: &Op,
    concurrency: usize,
    duration: Duration,
    max_requests: u64,
) -> Round {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let mcp = mcp.clone();
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            client(&mcp, &op, deadline, max_requests).await
        }));
    }
    let mut total = Round::default();
    for t in tasks {
        match t.await {
            Ok(r) => total.merge(r),
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert(e.to_string());
            }
        }
    }
    total.elapsed = started.elapsed();
    total
}

async fn client(mcp: &Mcp, op: &Op, deadline: Instant, max_requests: u64) -> Round {
    let mut r = Round::default();
    let session = match op {
        Op::Initialize
        | Op::Call {
            stateless: true, ..
        } => None,
        _ => match mcp.open().await {
            Ok(s) => Some(s),
            Err(e) => {
                r.errors += 1;
                r.first_error = Some(format!("opening a session: {e:#}"));
                return r;
            }
        },
    };
    let args = match op {
        Op::Call { size, sse, .. } => call_args(*size, *sse),
        _ => Value::Null,
    };
    while Instant::now() < deadline && r.ok + r.errors < max_requests {
        let t = Instant::now();
        let outcome = once(mcp, op, session.as_deref(), &args).await;
        let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
        match outcome {
            Ok(()) => {
                r.ok += 1;
                r.latencies_us.push(us);
            }
            Err(e) => {
                r.errors += 1;
                r.first_error.get_or_insert(format!("{e:#}"));
                // A refused connection fails at once: don't spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    r
}

/// The echo tool's arguments: `size` bytes back, in an SSE answer when `sse`.
pub fn call_args(size: usize, sse: bool) -> Value {
    if sse {
        json!({ "size": size, "sse": true })
    } else {
        json!({ "size": size })
    }
}

async fn once(mcp: &Mcp, op: &Op, session: Option<&str>, args: &Value) -> anyhow::Result<()> {
    match (op, session) {
        (
            Op::Call {
                tool,
                size,
                stateless: true,
                ..
            },
            _,
        ) => {
            let answer = mcp.call_stateless(tool, args).await?;
            check(&Expect::Text(*size), Some(&answer), None)
        }
        (Op::Call { tool, size, .. }, Some(s)) => {
            let answer = mcp.call(s, tool, args).await?;
            check(&Expect::Text(*size), Some(&answer), None)
        }
        (Op::List { tools }, Some(s)) => {
            let got = mcp.list_tools(s).await?.len();
            anyhow::ensure!(got == *tools, "{got} tools, expected {tools}");
            Ok(())
        }
        (Op::Initialize, _) => {
            let (answer, session) = mcp.send(None, &initialize()).await?;
            check(&Expect::Session, answer.as_ref(), session.as_deref())
        }
        (_, None) => anyhow::bail!("no session"),
    }
}

/// The value at quantile `q` (0..=1) of sorted samples, in milliseconds.
pub fn quantile_ms(sorted_us: &[u32], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() - 1) as f64 * q).round() as usize;
    f64::from(sorted_us[i.min(sorted_us.len() - 1)]) / 1000.0
}
