//! Results as JSON and as the markdown of BENCHMARKS.md, with the targets checked.

use crate::targets::Binaries;
use serde::Serialize;
use std::fmt::Write;

#[derive(Serialize)]
pub struct Run {
    pub machine: Machine,
    pub command: String,
    pub seconds_per_round: f64,
    pub rounds: usize,
    pub wasm_bytes: u64,
    pub native_bytes: u64,
    pub scenarios: Vec<Scenario>,
    pub idle: Vec<Idle>,
}

#[derive(Serialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub envoy: String,
    pub commit: String,
    pub date: String,
}

#[derive(Serialize)]
pub struct Scenario {
    pub name: String,
    pub targets: Vec<Measured>,
}

#[derive(Serialize, Debug)]
pub struct Measured {
    pub target: String,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Envoy's utime + stime over the rounds, per completed request.
    pub envoy_cpu_us: Option<f64>,
    pub envoy_peak_mb: Option<f64>,
    pub switchboard_peak_mb: Option<f64>,
}

#[derive(Serialize)]
pub struct Idle {
    pub target: String,
    pub sessions: usize,
    pub opened_per_second: f64,
    pub verified: usize,
    pub envoy_before_mb: f64,
    pub envoy_after_mb: f64,
    pub envoy_delta_mb: f64,
    pub switchboard_delta_mb: Option<f64>,
}

fn run_text(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub fn machine(bin: &Binaries) -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = crate::procfs::kib_field(&meminfo, "MemTotal").unwrap_or(0) as f64;
    let envoy = run_text(&bin.envoy.to_string_lossy(), &["--version"]);
    Machine {
        cpu: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default(),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        memory_gib: kib / 1024.0 / 1024.0,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        // `<path>  version: <sha>/<version>/Clean/RELEASE/BoringSSL`
        envoy: envoy
            .split("version:")
            .nth(1)
            .unwrap_or(&envoy)
            .trim()
            .to_string(),
        commit: run_text("git", &["rev-parse", "--short", "HEAD"]),
        date: run_text("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
    }
}

fn find<'a>(s: &'a Scenario, target: &str) -> Option<&'a Measured> {
    s.targets.iter().find(|m| m.target == target)
}

fn pair<'a>(s: Option<&'a Scenario>, a: &str, b: &str) -> Option<(&'a Measured, &'a Measured)> {
    s.and_then(|s| Some((find(s, a)?, find(s, b)?)))
}

/// A verdict that counts only if the compared runs had no errors: a fast failure is no win.
fn clean(met: Option<bool>, compared: Option<(&Measured, &Measured)>) -> Option<bool> {
    match compared {
        Some((a, b)) if a.errors + b.errors > 0 => Some(false),
        _ => met,
    }
}

/// `measured`, with the errors of the compared runs when there were any.
fn with_errors(measured: String, compared: Option<(&Measured, &Measured)>) -> String {
    match compared {
        Some((a, b)) if a.errors + b.errors > 0 => {
            format!("{measured} ({} errors)", a.errors + b.errors)
        }
        _ => measured,
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn x(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}×")).unwrap_or_else(|| "–".into())
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

pub fn markdown(run: &Run) -> String {
    let m = &run.machine;
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "Machine: {} ({} cores, {:.0} GiB), Linux {}, Envoy {}, commit {}, {}. \
         Each Envoy runs with `--concurrency 2`; the load generator, the upstreams and every \
         Envoy share the same cores. {} rounds of {} s per target, targets alternating. \
         `switchboard` is the native shell (an Envoy dynamic module, {} KB), \
         `switchboard (wasm)` the proxy-wasm shell ({} KB of wasm) over the same core.\n",
        m.cpu,
        m.cores,
        m.memory_gib,
        m.kernel,
        m.envoy,
        m.commit,
        m.date,
        run.rounds,
        run.seconds_per_round,
        run.native_bytes / 1024,
        run.wasm_bytes / 1024
    );
    let _ = writeln!(out, "Command: `{}`\n", run.command);
    let _ = writeln!(
        out,
        "Envoy CPU is utime + stime of the Envoy process over the rounds divided by the \
         completed requests; it is the steadiest figure on a shared machine. Ratios compare \
         with the plain route (the cost of Envoy itself) and with Envoy's native \
         `mcp` + `mcp_router` from the same binary. Every answer is checked (text length, tool \
         count, session), errors are counted.\n"
    );
    for s in &run.scenarios {
        let plain = find(s, "plain route");
        let native = find(s, "native mcp_router");
        let _ = writeln!(out, "## {}\n", s.name);
        let _ = writeln!(
            out,
            "| target | req/s | req/s × native | p50 ms | p99 ms | errors | Envoy CPU µs/req | CPU × plain | CPU × native | Envoy peak MB | switchboard peak MB |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for t in &s.targets {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {:.3} | {:.3} | {} | {} | {} | {} | {} | {} |",
                t.target,
                t.rps,
                x(ratio(Some(t.rps), native.map(|n| n.rps))),
                t.p50_ms,
                t.p99_ms,
                t.errors,
                opt(t.envoy_cpu_us, 0),
                x(ratio(t.envoy_cpu_us, plain.and_then(|p| p.envoy_cpu_us))),
                x(ratio(t.envoy_cpu_us, native.and_then(|n| n.envoy_cpu_us))),
                opt(t.envoy_peak_mb, 1),
                opt(t.switchboard_peak_mb, 1),
            );
        }
        if let Some(e) = s
            .targets
            .iter()
            .find_map(|t| t.first_error.as_ref().map(|e| format!("{}: {e}", t.target)))
        {
            let _ = writeln!(out, "\nFirst error: {e}");
        }
        let _ = writeln!(out);
    }
    if !run.idle.is_empty() {
        let _ = writeln!(out, "## Idle sessions\n");
        let _ = writeln!(
            out,
            "Resident memory after a warm-up of initializes, then after opening and keeping these \
             sessions; every 100th session is used for a call afterwards.\n"
        );
        let _ = writeln!(
            out,
            "| target | sessions | opened/s | answered later | Envoy RSS before MB | after MB | Envoy Δ MB | switchboard Δ MB |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for i in &run.idle {
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} | {} | {:.1} | {:.1} | {:+.1} | {} |",
                i.target,
                i.sessions,
                i.opened_per_second,
                i.verified,
                i.envoy_before_mb,
                i.envoy_after_mb,
                i.envoy_delta_mb,
                i.switchboard_delta_mb
                    .map(|d| format!("{d:+.1}"))
                    .unwrap_or_else(|| "–".into())
            );
        }
        let _ = writeln!(out);
    }
    out.push_str(&targets(run));
    out
}

/// The targets, each with the figure it was judged on.
fn targets(run: &Run) -> String {
    let mut out = String::from("## Targets\n\n| target | measured | met |\n|---|---|---|\n");
    let mut row = |what: &str, measured: String, met: Option<bool>| {
        let verdict = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {what} | {measured} | {verdict} |");
    };
    let scenario = |prefix: &str| run.scenarios.iter().find(|s| s.name.starts_with(prefix));
    let c16 = scenario("tools/call 64 B, c=16");
    // Judged on the native shell ("switchboard"); the wasm shell's rows are beside it.
    let plain = pair(c16, "switchboard", "plain route");
    let cpu = plain.and_then(|(s, p)| ratio(s.envoy_cpu_us, p.envoy_cpu_us));
    row(
        "tools/call c=16: Envoy CPU/request ≤ 1.15× plain route",
        with_errors(x(cpu), plain),
        clean(cpu.map(|r| r <= 1.15), plain),
    );
    let native = pair(c16, "switchboard", "native mcp_router");
    let rps = native.map(|(s, n)| s.rps / n.rps);
    row(
        "tools/call c=16: throughput ≥ 1.2× native mcp_router",
        with_errors(x(rps), native),
        clean(rps.map(|r| r >= 1.2), native),
    );
    row(
        "tools/call c=16: p99 ≤ native mcp_router",
        with_errors(
            native
                .map(|(s, n)| format!("{:.3} ms vs {:.3} ms", s.p99_ms, n.p99_ms))
                .unwrap_or_else(|| "–".into()),
            native,
        ),
        clean(native.map(|(s, n)| s.p99_ms <= n.p99_ms), native),
    );
    let list4 = scenario("tools/list over 4 ");
    for (target, bound) in [("switchboard", 0.4), ("switchboard + list cache", 0.1)] {
        let compared = pair(list4, target, "native mcp_router");
        let r = compared.and_then(|(a, b)| ratio(a.envoy_cpu_us, b.envoy_cpu_us));
        row(
            &format!(
                "tools/list over 4×50: {target} Envoy CPU/request ≤ {bound}× native mcp_router"
            ),
            with_errors(x(r), compared),
            clean(r.map(|r| r <= bound), compared),
        );
    }
    let init = pair(scenario("initialize"), "switchboard", "native mcp_router");
    let r = init.and_then(|(a, b)| ratio(a.envoy_cpu_us, b.envoy_cpu_us));
    row(
        "initialize: Envoy CPU/request ≤ 1.0× native mcp_router",
        with_errors(x(r), init),
        clean(r.map(|r| r <= 1.0), init),
    );
    let fan = pair(scenario("fan-out"), "switchboard", "direct");
    row(
        "fan-out p50 ≤ slowest upstream (direct) + 20%",
        with_errors(
            fan.map(|(s, d)| format!("{:.1} ms vs {:.1} ms", s.p50_ms, d.p50_ms))
                .unwrap_or_else(|| "–".into()),
            fan,
        ),
        clean(fan.map(|(s, d)| s.p50_ms <= d.p50_ms * 1.2), fan),
    );
    let idle = run.idle.iter().find(|i| i.target == "switchboard");
    row(
        "10,000 idle sessions within 5 MB of none (Envoy and switchboard)",
        idle.map(|i| match i.switchboard_delta_mb {
            Some(s) => format!("Envoy {:+.1} MB, switchboard {s:+.1} MB", i.envoy_delta_mb),
            None => format!("Envoy {:+.1} MB, switchboard unreadable", i.envoy_delta_mb),
        })
        .unwrap_or_else(|| "–".into()),
        // A memory that could not be read is not measured, never met.
        idle.and_then(|i| Some(i.envoy_delta_mb <= 5.0 && i.switchboard_delta_mb? <= 5.0)),
    );
    out.push_str(
        "\nWhere the time goes, what limits the targets that are missed, and the profiles behind \
         that: [docs/performance.md](docs/performance.md).\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(target: &str, rps: f64, errors: u64) -> Measured {
        Measured {
            target: target.into(),
            requests: 1000,
            errors,
            first_error: None,
            rps,
            p50_ms: 1.0,
            p99_ms: 2.0,
            envoy_cpu_us: Some(100.0),
            envoy_peak_mb: None,
            switchboard_peak_mb: None,
        }
    }

    fn run(errors: u64, switchboard_delta_mb: Option<f64>) -> Run {
        Run {
            machine: Machine {
                cpu: String::new(),
                cores: 2,
                memory_gib: 1.0,
                kernel: String::new(),
                envoy: String::new(),
                commit: String::new(),
                date: String::new(),
            },
            command: String::new(),
            seconds_per_round: 1.0,
            rounds: 1,
            wasm_bytes: 0,
            native_bytes: 0,
            scenarios: vec![Scenario {
                name: "tools/call 64 B, c=16".into(),
                targets: vec![
                    measured("plain route", 100.0, 0),
                    measured("native mcp_router", 100.0, 0),
                    measured("switchboard", 500.0, errors),
                ],
            }],
            idle: vec![Idle {
                target: "switchboard".into(),
                sessions: 10,
                opened_per_second: 1.0,
                verified: 10,
                envoy_before_mb: 1.0,
                envoy_after_mb: 1.0,
                envoy_delta_mb: 0.0,
                switchboard_delta_mb,
            }],
        }
    }

    fn verdict(table: &str, target: &str) -> String {
        table
            .lines()
            .find(|l| l.contains(target))
            .and_then(|l| l.trim_end_matches('|').rsplit('|').next())
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn a_run_with_errors_meets_no_target() {
        let clean = targets(&run(0, Some(0.0)));
        assert_eq!(verdict(&clean, "throughput ≥ 1.2× native"), "yes");
        let failing = targets(&run(3, Some(0.0)));
        assert_eq!(verdict(&failing, "throughput ≥ 1.2× native"), "**no**");
        assert!(failing.contains("(3 errors)"), "{failing}");
    }

    #[test]
    fn memory_that_could_not_be_read_is_not_measured() {
        let t = targets(&run(0, None));
        assert_eq!(verdict(&t, "10,000 idle sessions"), "not measured");
        assert_eq!(
            verdict(&targets(&run(0, Some(9.0))), "10,000 idle sessions"),
            "**no**"
        );
    }
}
