//! The scenarios and the run: every scenario against every target, rounds alternating
//! between targets so that drift on a shared machine hits all of them alike.

use crate::client::{Mcp, check};
use crate::load::{self, Op, Round};
use crate::procfs;
use crate::report::{self, Idle, Measured, Scenario as Reported};
use crate::targets::{Binaries, Plane, StaticEnvoy, Switchboard, Upstreams};
use anyhow::Context;
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Seconds per round per target.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Rounds per scenario (targets alternate within each round).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Sessions held for the idle-session scenario.
    #[arg(long, default_value_t = 10_000)]
    idle_sessions: usize,
    /// Only scenarios whose name contains one of these (comma-separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Envoy's worker threads, for every Envoy in the run.
    #[arg(long, default_value_t = 2)]
    concurrency: u16,
    #[arg(long, env = "ENVOY_BIN")]
    envoy: Option<PathBuf>,
    #[arg(long, env = "SWITCHBOARD_BIN")]
    switchboard: Option<PathBuf>,
    #[arg(long, env = "SWITCHBOARD_WASM")]
    wasm: Option<PathBuf>,
    /// The native module (default: this checkout's release build).
    #[arg(long)]
    native_module: Option<PathBuf>,
    /// The markdown report (also printed).
    #[arg(long, default_value = "bench/results/latest.md")]
    markdown: PathBuf,
    #[arg(long, default_value = "bench/results/latest.json")]
    json: PathBuf,
}

/// Upstreams per aggregation, as the issue asks: 1, 4 and 16 upstreams of 50 tools.
const TOOLS: usize = 50;
/// The proxy-wasm shell over the same core, measured beside the native one ("switchboard").
const WASM_TARGET: &str = "switchboard (wasm)";
const FAST: usize = 16;
/// `tools/list` delays of the fan-out scenario's upstreams; the slowest is the bound.
const SLOW_MS: [u64; 4] = [10, 20, 30, 40];

#[derive(Debug, Clone, Copy)]
enum Kind {
    /// `sse`: the upstream answers with an SSE stream (one event with an id), as most MCP
    /// servers do, rather than JSON.
    Call {
        size: usize,
        sse: bool,
        /// Also a Switchboard target called by a client of the stateless revision.
        stateless: bool,
    },
    List,
    Initialize,
}

struct Spec {
    name: String,
    kind: Kind,
    concurrency: usize,
    /// Fast upstreams aggregated (native and Switchboard); 0 = the slow ones.
    upstreams: usize,
    /// Add a Switchboard target with the list cache on.
    with_cache: bool,
}

/// The scenario whose Switchboard target is also called by a 2026-07-28 (stateless) client,
/// next to the 2025 session's.
const STATELESS_SCENARIO: &str = "tools/call 64 B, 2025 session and 2026-07-28 client, c=16";

/// The target name of the stateless client's calls.
const STATELESS_TARGET: &str = "switchboard, 2026-07-28 client";

fn specs() -> Vec<Spec> {
    let call = |name: &str, size, concurrency| Spec {
        name: name.into(),
        kind: Kind::Call {
            size,
            sse: false,
            stateless: false,
        },
        concurrency,
        upstreams: 1,
        with_cache: false,
    };
    let call_sse = |name: &str, size, concurrency| Spec {
        name: name.into(),
        kind: Kind::Call {
            size,
            sse: true,
            stateless: false,
        },
        concurrency,
        upstreams: 1,
        with_cache: false,
    };
    let list = |n: usize| Spec {
        name: format!("tools/list over {n} upstream(s) x {TOOLS} tools, c=16"),
        kind: Kind::List,
        concurrency: 16,
        upstreams: n,
        with_cache: true,
    };
    vec![
        call("tools/call 64 B, c=1", 64, 1),
        call("tools/call 64 B, c=16", 64, 16),
        call("tools/call 64 B, c=64", 64, 64),
        call("tools/call 100 KB, c=8", 100 * 1024, 8),
        call("tools/call 5 MB, c=2", 5 * 1024 * 1024, 2),
        call_sse("tools/call 64 B as SSE, c=16", 64, 16),
        call_sse("tools/call 100 KB as SSE, c=8", 100 * 1024, 8),
        Spec {
            name: STATELESS_SCENARIO.into(),
            kind: Kind::Call {
                size: 64,
                sse: false,
                stateless: true,
            },
            concurrency: 16,
            upstreams: 1,
            with_cache: false,
        },
        list(1),
        list(4),
        list(16),
        Spec {
            name: format!("fan-out: tools/list over 4 upstreams answering in {SLOW_MS:?} ms, c=4"),
            kind: Kind::List,
            concurrency: 4,
            upstreams: 0,
            with_cache: false,
        },
        Spec {
            name: "initialize, c=16".into(),
            kind: Kind::Initialize,
            concurrency: 16,
            upstreams: 1,
            with_cache: false,
        },
    ]
}

/// One target of one scenario.
struct Target {
    name: &'static str,
    mcp: Mcp,
    envoy_pid: Option<u32>,
    switchboard_pid: Option<u32>,
    op: Op,
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let root = crate::repo_root();
    let bin = Binaries {
        envoy: opts
            .envoy
            .clone()
            .unwrap_or_else(|| root.join(".tools/envoy")),
        switchboard: opts
            .switchboard
            .clone()
            .unwrap_or_else(|| root.join("target/release/switchboard")),
        wasm: opts.wasm.clone().unwrap_or_else(|| {
            root.join("target/wasm/wasm32-unknown-unknown/wasm/switchboard_filter.wasm")
        }),
        native: opts
            .native_module
            .clone()
            .unwrap_or_else(|| root.join("target/release/libswitchboard_native.so")),
        concurrency: opts.concurrency,
    };
    for p in [&bin.envoy, &bin.switchboard, &bin.wasm, &bin.native] {
        anyhow::ensure!(
            p.exists(),
            "{} is missing (`make bench` builds it)",
            p.display()
        );
    }
    let ticks = procfs::ticks_per_second();
    let upstreams = Upstreams::start(FAST, TOOLS, &SLOW_MS)?;
    let envoy = StaticEnvoy::start(&bin, &crate::targets::static_bootstrap(&upstreams)).await?;
    let envoy_pid = envoy.process.pid();
    let duration = Duration::from_secs_f64(opts.seconds);
    let wanted = |name: &str| opts.only.is_empty() || opts.only.iter().any(|o| name.contains(o));

    let mut reported = Vec::new();
    for spec in specs().into_iter().filter(|s| wanted(&s.name)) {
        eprintln!("== {}", spec.name);
        let (direct, native_listener, aggregated) = if spec.upstreams == 0 {
            let slowest = upstreams.slow.iter().max_by_key(|(_, ms)| *ms);
            let (addr, _) = slowest.context("no slow upstreams")?;
            (*addr, "native_slow".to_string(), upstreams.slow.len())
        } else {
            (
                upstreams.fast[0],
                format!("native{}", spec.upstreams),
                spec.upstreams,
            )
        };
        let urls: Vec<String> = if spec.upstreams == 0 {
            upstreams
                .slow
                .iter()
                .map(|(a, _)| format!("http://{a}/mcp"))
                .collect()
        } else {
            upstreams.fast[..spec.upstreams]
                .iter()
                .map(|a| format!("http://{a}/mcp"))
                .collect()
        };
        let gateway = Switchboard::start(&bin, &gateway_yaml(&urls, None), Plane::Native).await?;
        let wasm = Switchboard::start(&bin, &gateway_yaml(&urls, None), Plane::Wasm).await?;
        let cached = if spec.with_cache {
            Some(Switchboard::start(&bin, &gateway_yaml(&urls, Some("60s")), Plane::Native).await?)
        } else {
            None
        };
        let pool = spec.concurrency * 2;
        let mut raw = vec![
            ("direct", format!("http://{direct}/mcp"), None, None, 1),
            ("plain route", envoy.url("plain")?, Some(envoy_pid), None, 1),
            (
                "native mcp_router",
                envoy.url(&native_listener)?,
                Some(envoy_pid),
                None,
                aggregated,
            ),
            (
                "switchboard",
                gateway.endpoint.clone(),
                Some(gateway.envoy_pid),
                Some(gateway.process.pid()),
                aggregated,
            ),
            (
                WASM_TARGET,
                wasm.endpoint.clone(),
                Some(wasm.envoy_pid),
                Some(wasm.process.pid()),
                aggregated,
            ),
        ];
        if matches!(
            spec.kind,
            Kind::Call {
                stateless: true,
                ..
            }
        ) {
            // The same gateway, each request opening and closing its upstream session.
            raw.push((
                STATELESS_TARGET,
                gateway.endpoint.clone(),
                Some(gateway.envoy_pid),
                Some(gateway.process.pid()),
                aggregated,
            ));
        }
        if let Some(c) = &cached {
            raw.push((
                "switchboard + list cache",
                c.endpoint.clone(),
                Some(c.envoy_pid),
                Some(c.process.pid()),
                aggregated,
            ));
        }
        if spec.upstreams == 0 {
            // The fan-out bound is the slowest upstream, reached directly; a plain route to
            // it says nothing more.
            raw.retain(|t| t.0 != "plain route");
        }
        let mut targets = Vec::new();
        for (name, url, envoy_pid, sb_pid, n) in raw {
            let mcp = Mcp::new(&url, pool)?;
            let op = resolve(&mcp, spec.kind, n, name == STATELESS_TARGET)
                .await
                .with_context(|| format!("{name} at {url}"))?;
            targets.push(Target {
                name,
                mcp,
                envoy_pid,
                switchboard_pid: sb_pid,
                op,
            });
        }
        let measured = measure(&targets, &spec, duration, opts.rounds, ticks).await;
        for m in &measured {
            eprintln!(
                "   {:<26} {:>9.0} req/s  p50 {:>8.3} ms  p99 {:>8.3} ms  errors {}  cpu {}",
                m.target,
                m.rps,
                m.p50_ms,
                m.p99_ms,
                m.errors,
                m.envoy_cpu_us
                    .map(|c| format!("{c:.0} µs"))
                    .unwrap_or_default()
            );
            if let Some(e) = &m.first_error {
                eprintln!("     first error: {e}");
            }
        }
        reported.push(Reported {
            name: spec.name.clone(),
            targets: measured,
        });
    }

    let idle = if wanted("idle") {
        eprintln!("== {} idle sessions", opts.idle_sessions);
        let url = format!("http://{}/mcp", upstreams.fast[0]);
        let gateway = Switchboard::start(
            &bin,
            &gateway_yaml(std::slice::from_ref(&url), None),
            Plane::Native,
        )
        .await?;
        let mut idle = Vec::new();
        for (name, url, envoy_pid, sb_pid) in [
            ("native mcp_router", envoy.url("native1")?, envoy_pid, None),
            (
                "switchboard",
                gateway.endpoint.clone(),
                gateway.envoy_pid,
                Some(gateway.process.pid()),
            ),
        ] {
            let r = idle_sessions(name, &url, envoy_pid, sb_pid, opts.idle_sessions).await?;
            eprintln!(
                "   {name:<26} Envoy {:+.1} MB, switchboard {:+.1} MB, {} sessions, {} answered later",
                r.envoy_delta_mb,
                r.switchboard_delta_mb.unwrap_or(0.0),
                r.sessions,
                r.verified
            );
            idle.push(r);
        }
        idle
    } else {
        Vec::new()
    };

    let run = report::Run {
        machine: report::machine(&bin),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        seconds_per_round: opts.seconds,
        rounds: opts.rounds,
        wasm_bytes: std::fs::metadata(&bin.wasm).map(|m| m.len()).unwrap_or(0),
        native_bytes: std::fs::metadata(&bin.native).map(|m| m.len()).unwrap_or(0),
        scenarios: reported,
        idle,
    };
    let markdown = report::markdown(&run);
    println!("{markdown}");
    for p in [&opts.markdown, &opts.json] {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
    }
    std::fs::write(&opts.markdown, &markdown)?;
    std::fs::write(&opts.json, serde_json::to_string_pretty(&run)?)?;
    eprintln!(
        "wrote {} and {}",
        opts.markdown.display(),
        opts.json.display()
    );
    Ok(())
}

/// One target, one operation, numbers printed: for profiling a gateway by hand.
pub async fn load_one(
    url: &str,
    concurrency: usize,
    seconds: f64,
    size: usize,
    sse: bool,
    list: bool,
) -> anyhow::Result<()> {
    let mcp = Mcp::new(url, concurrency * 2)?;
    let session = mcp.open().await?;
    let tools = mcp.list_tools(&session).await?;
    let op = if list {
        Op::List { tools: tools.len() }
    } else {
        Op::Call {
            tool: echo_tool(&tools)?,
            size,
            sse,
            stateless: false,
        }
    };
    let mut r = load::round(
        &mcp,
        &op,
        concurrency,
        Duration::from_secs_f64(seconds),
        u64::MAX,
    )
    .await;
    r.latencies_us.sort_unstable();
    println!(
        "{} ok, {} errors, {:.0} req/s, p50 {:.3} ms, p99 {:.3} ms{}",
        r.ok,
        r.errors,
        r.ok as f64 / r.elapsed.as_secs_f64(),
        load::quantile_ms(&r.latencies_us, 0.5),
        load::quantile_ms(&r.latencies_us, 0.99),
        r.first_error
            .map(|e| format!(", first error: {e}"))
            .unwrap_or_default()
    );
    Ok(())
}

fn gateway_yaml(urls: &[String], cache: Option<&str>) -> String {
    let mut y = String::from(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  stateless_clients: true\nupstreams:\n",
    );
    for (i, url) in urls.iter().enumerate() {
        y.push_str(&format!("  - name: u{i}\n    url: {url}\n"));
        if let Some(c) = cache {
            y.push_str(&format!("    cache: {c}\n"));
        }
    }
    y
}

/// The upstream's echo tool as a target lists it: as is (native with one backend) or prefixed.
fn echo_tool(tools: &[serde_json::Value]) -> anyhow::Result<String> {
    tools
        .iter()
        .filter_map(|t| t["name"].as_str())
        .find(|n| *n == crate::upstream::ECHO || n.ends_with("__echo"))
        .map(str::to_string)
        .context("no echo tool")
}

/// Finds the echo tool's name as this target shows it (prefixed or not) and checks the list.
async fn resolve(mcp: &Mcp, kind: Kind, upstreams: usize, stateless: bool) -> anyhow::Result<Op> {
    let session = mcp.open().await?;
    let tools = mcp.list_tools(&session).await?;
    anyhow::ensure!(
        tools.len() == upstreams * TOOLS,
        "{} tools listed, expected {}",
        tools.len(),
        upstreams * TOOLS
    );
    Ok(match kind {
        Kind::Call { size, sse, .. } => {
            let tool = echo_tool(&tools)?;
            let args = load::call_args(size, sse);
            let answer = if stateless {
                mcp.call_stateless(&tool, &args).await?
            } else {
                mcp.call(&session, &tool, &args).await?
            };
            check(&crate::client::Expect::Text(size), Some(&answer), None)?;
            Op::Call {
                tool,
                size,
                sse,
                stateless,
            }
        }
        Kind::List => Op::List { tools: tools.len() },
        Kind::Initialize => Op::Initialize,
    })
}

async fn measure(
    targets: &[Target],
    spec: &Spec,
    duration: Duration,
    rounds: usize,
    ticks: u64,
) -> Vec<Measured> {
    // Big answers: fewer requests per client, the duration still bounds the round.
    let cap = match spec.kind {
        Kind::Call { size, .. } if size > 1024 * 1024 => 2_000,
        _ => 1_000_000,
    };
    let mut totals: Vec<(Round, u64)> = vec![(Round::default(), 0); targets.len()];
    for t in targets {
        for pid in t.envoy_pid.iter().chain(&t.switchboard_pid) {
            procfs::reset_peak(*pid);
        }
    }
    // A short warm-up per target (connections, caches, JIT of the wasm module).
    for t in targets {
        let _ = load::round(
            &t.mcp,
            &t.op,
            spec.concurrency,
            Duration::from_millis(500),
            cap,
        )
        .await;
    }
    for round in 0..rounds {
        // Rotate the order each round so no target always runs first or last.
        for k in 0..targets.len() {
            let i = (k + round) % targets.len();
            let t = &targets[i];
            let before = t.envoy_pid.and_then(procfs::cpu_ticks);
            let r = load::round(&t.mcp, &t.op, spec.concurrency, duration, cap).await;
            let after = t.envoy_pid.and_then(procfs::cpu_ticks);
            if let (Some(b), Some(a)) = (before, after) {
                totals[i].1 += a.saturating_sub(b);
            }
            totals[i].0.merge(r);
        }
    }
    let peak_mb = |pid: Option<u32>| {
        pid.and_then(|p| procfs::status_kib(p, "VmHWM"))
            .map(|k| k as f64 / 1024.0)
    };
    targets
        .iter()
        .zip(totals)
        .map(|(t, (mut r, cpu_ticks))| {
            r.latencies_us.sort_unstable();
            let secs = r.elapsed.as_secs_f64().max(1e-9);
            Measured {
                target: t.name.to_string(),
                requests: r.ok,
                errors: r.errors,
                first_error: r.first_error,
                rps: r.ok as f64 / secs,
                p50_ms: load::quantile_ms(&r.latencies_us, 0.50),
                p99_ms: load::quantile_ms(&r.latencies_us, 0.99),
                envoy_cpu_us: t
                    .envoy_pid
                    .filter(|_| r.ok > 0)
                    .map(|_| cpu_ticks as f64 * 1e6 / ticks as f64 / r.ok as f64),
                envoy_peak_mb: peak_mb(t.envoy_pid),
                switchboard_peak_mb: peak_mb(t.switchboard_pid),
            }
        })
        .collect()
}

/// Memory for `n` live sessions against memory for none: a warm-up of initializes first
/// (so allocator growth from traffic alone is already in the baseline), then `n` sessions
/// opened and kept, then a sample of them used to prove they still work.
async fn idle_sessions(
    name: &str,
    url: &str,
    envoy_pid: u32,
    switchboard_pid: Option<u32>,
    n: usize,
) -> anyhow::Result<Idle> {
    let mcp = Mcp::new(url, 32)?;
    let open_many = |count: usize| {
        let mcp = mcp.clone();
        async move {
            let mut tasks = Vec::new();
            for k in 0..32 {
                let mcp = mcp.clone();
                let share = count / 32 + usize::from(k < count % 32);
                tasks.push(tokio::spawn(async move {
                    let mut sessions = Vec::with_capacity(share);
                    for _ in 0..share {
                        sessions.push(mcp.open().await?);
                    }
                    anyhow::Ok(sessions)
                }));
            }
            let mut all = Vec::with_capacity(count);
            for t in tasks {
                all.extend(t.await??);
            }
            anyhow::Ok(all)
        }
    };
    open_many(n.min(2_000)).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let envoy_before = procfs::status_kib(envoy_pid, "VmRSS").unwrap_or(0);
    let sb_before = switchboard_pid.and_then(|p| procfs::status_kib(p, "VmRSS"));
    let started = Instant::now();
    let sessions = open_many(n).await?;
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let envoy_after = procfs::status_kib(envoy_pid, "VmRSS").unwrap_or(0);
    let sb_after = switchboard_pid.and_then(|p| procfs::status_kib(p, "VmRSS"));
    // Every 100th session, still good for a call.
    let tool = echo_tool(&mcp.list_tools(&sessions[0]).await?)?;
    let mut verified = 0;
    for s in sessions.iter().step_by(100) {
        let answer = mcp.call(s, &tool, &json!({"size": 8})).await?;
        check(&crate::client::Expect::Text(8), Some(&answer), None)?;
        verified += 1;
    }
    let mb = |kib: u64| kib as f64 / 1024.0;
    Ok(Idle {
        target: name.to_string(),
        sessions: sessions.len(),
        opened_per_second: sessions.len() as f64 / took.as_secs_f64().max(1e-9),
        verified,
        envoy_before_mb: mb(envoy_before),
        envoy_after_mb: mb(envoy_after),
        envoy_delta_mb: mb(envoy_after) - mb(envoy_before),
        switchboard_delta_mb: sb_before.zip(sb_after).map(|(b, a)| mb(a) - mb(b)),
    })
}
