//! stdio MCP servers through the bridge and real Envoy: a server written with the official
//! Python SDK and `server-everything` in stdio mode, per-session isolation, a shared child
//! under concurrent clients, a child killed mid-call, and one that never initializes.

use serde_json::json;
use std::time::Duration;
use switchboard_e2e::{Gateway, call_text, connect, eventually, raw, repo_root};

fn python() -> String {
    repo_root()
        .join(".tools/venv/bin/python")
        .display()
        .to_string()
}

fn python_server() -> String {
    repo_root()
        .join("tests/servers/python_stdio_server.py")
        .display()
        .to_string()
}

/// A Python stdio upstream; `extra` are more YAML lines (4-space indented).
fn py(name: &str, extra: &str) -> String {
    format!(
        "  - name: {name}\n    type: stdio\n    command: {}\n    args: [\"{}\"]\n{extra}",
        python(),
        python_server()
    )
}

fn gateway_yaml(upstreams: &[String], top: &str) -> String {
    format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n{top}upstreams:\n{}",
        upstreams.concat()
    )
}

/// Whether a process is gone (exited and reaped: not even a zombie).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.split_whitespace().nth(2) == Some("X"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_sdk_server_and_server_everything_over_stdio_work_through_the_gateway()
-> anyhow::Result<()> {
    let everything = repo_root()
        .join(".tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    let gw = Gateway::start(&gateway_yaml(
        &[
            py("py", "    env: {GATEWAY_GIVEN: \"yes\"}\n"),
            format!(
                "  - name: ev\n    type: stdio\n    command: node\n    args: [\"{}\", stdio]\n    session_mode: shared\n",
                everything.display()
            ),
        ],
        "",
    ))
    .await?;
    let client = connect(&gw.endpoint).await?;
    let tools = client.list_all_tools().await?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(
        names.contains(&"py__echo") && names.contains(&"ev__echo"),
        "{names:?}\n{}",
        gw.logs()
    );
    assert_eq!(
        call_text(&client, "py__echo", json!({"text": "hi"})).await?,
        "hi"
    );
    let ev = call_text(&client, "ev__echo", json!({"message": "from node"})).await?;
    assert!(ev.contains("from node"), "{ev}");
    // The child gets its configured environment and a minimal safe set, not the gateway's.
    assert_eq!(
        call_text(&client, "py__env", json!({"name": "GATEWAY_GIVEN"})).await?,
        "yes"
    );
    assert_ne!(
        call_text(&client, "py__env", json!({"name": "PATH"})).await?,
        "<unset>"
    );
    assert_eq!(
        call_text(&client, "py__env", json!({"name": "SWITCHBOARD_LOG"})).await?,
        "<unset>",
        "the gateway's own environment does not leak into the child"
    );
    // Its stderr is in the gateway's log, tagged with the upstream.
    let logs = gw.logs();
    assert!(
        logs.lines().any(
            |l| l.contains("stderr: python stdio server starting") && l.contains("upstream=py")
        ),
        "{logs}"
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_session_children_are_isolated_and_a_shared_childs_answers_never_cross()
-> anyhow::Result<()> {
    let gw = Gateway::start(&gateway_yaml(
        &[
            py("iso", "    capability_discovery_delay: 0s\n"),
            py(
                "one",
                "    session_mode: shared\n    capability_discovery_delay: 0s\n",
            ),
        ],
        "",
    ))
    .await?;
    let a = connect(&gw.endpoint).await?;
    let b = connect(&gw.endpoint).await?;

    // per_session: each client has its own process and state.
    call_text(&a, "iso__remember", json!({"value": "a-secret"})).await?;
    assert_eq!(call_text(&b, "iso__recall", json!({})).await?, "");
    assert_eq!(call_text(&a, "iso__recall", json!({})).await?, "a-secret");
    let pid_a: u32 = call_text(&a, "iso__pid", json!({})).await?.parse()?;
    let pid_b: u32 = call_text(&b, "iso__pid", json!({})).await?.parse()?;
    assert_ne!(pid_a, pid_b);

    // shared: one process, and concurrent clients each get their own answers.
    assert_eq!(
        call_text(&a, "one__pid", json!({})).await?,
        call_text(&b, "one__pid", json!({})).await?
    );
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let mut tasks = Vec::new();
    for (who, client) in [("a", a.clone()), ("b", b.clone())] {
        tasks.push(tokio::spawn(async move {
            let mut crossed = Vec::new();
            for i in 0..40 {
                let text = format!("{who}-{i}");
                match call_text(&client, "one__echo", json!({"text": text})).await {
                    Ok(t) if t == text => {}
                    other => crossed.push(format!("{text}: {other:?}")),
                }
            }
            crossed
        }));
    }
    for t in tasks {
        let crossed = t.await?;
        assert!(crossed.is_empty(), "{crossed:?}");
    }

    // Ending a session (DELETE) stops its process and reaps it.
    std::sync::Arc::try_unwrap(a)
        .map_err(|_| anyhow::anyhow!("client still shared"))?
        .cancel()
        .await?;
    eventually(
        Duration::from_secs(10),
        "the session's process to end",
        || async move { gone(pid_a).then_some(()) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert!(!gone(pid_b), "the other session's process runs on");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_mid_call_fails_that_call_and_the_next_call_works() -> anyhow::Result<()> {
    let gw = Gateway::start(&gateway_yaml(
        &[py(
            "py",
            "    timeout: 20s\n    capability_discovery_delay: 0s\n",
        )],
        "",
    ))
    .await?;
    let client = std::sync::Arc::new(connect(&gw.endpoint).await?);
    let pid: u32 = call_text(&client, "py__pid", json!({})).await?.parse()?;
    let slow = {
        let client = client.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let r = call_text(&client, "py__slow", json!({"ms": 15000})).await;
            (r, started.elapsed())
        })
    };
    // The call is with the bridge (Envoy has it in flight to the child's cluster).
    eventually(
        Duration::from_secs(10),
        "the slow call to be in flight",
        || async {
            let active = gw
                .stat("cluster.upstream-py.upstream_rq_active")
                .await
                .unwrap_or(0);
            (active >= 1).then_some(())
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid)?),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let (result, took) = slow.await?;
    let error = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        error.contains("Upstream \"py\" (stdio) exited before answering"),
        "{error}\n{}",
        gw.logs()
    );
    assert!(
        took < Duration::from_secs(10),
        "no waiting out the timeout: {took:?}"
    );
    eventually(
        Duration::from_secs(5),
        "the killed child to be reaped",
        || async move { gone(pid).then_some(()) },
    )
    .await?;
    // Restarted (and initialized again) for the next call.
    assert_eq!(
        call_text(&client, "py__echo", json!({"text": "again"})).await?,
        "again"
    );
    let new_pid: u32 = call_text(&client, "py__pid", json!({})).await?.parse()?;
    assert_ne!(new_pid, pid);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_never_initializes_is_retried_then_named() -> anyhow::Result<()> {
    let gw = Gateway::start(&gateway_yaml(
        &[
            py("py", ""),
            "  - name: mute\n    type: stdio\n    command: sleep\n    args: [\"600\"]\n    startup_timeout: 300ms\n    initialization_retries: 2\n    retry_delay: 50ms\n".to_string(),
        ],
        "aggregation:\n  fan_out: fail_closed\n",
    ))
    .await?;
    let a = raw::post(&gw.endpoint, None, &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})).await?;
    let message = a.response()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("\"mute\"") && message.contains("did not initialize after 3 attempts"),
        "{message}\n{}",
        gw.logs()
    );
    assert_eq!(
        gw.logs().matches("stdio server did not initialize").count(),
        3,
        "{}",
        gw.logs()
    );
    // Every attempt's process was stopped and reaped.
    let pid = gw.pid();
    eventually(
        Duration::from_secs(5),
        "no sleep child left",
        || async move {
            let children = std::fs::read_dir("/proc")
                .ok()?
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("stat")).ok())
                .filter(|stat| {
                    let fields: Vec<&str> = stat.split_whitespace().collect();
                    fields.get(1) == Some(&"(sleep)")
                        && fields.get(3) == Some(&pid.to_string().as_str())
                })
                .count();
            (children == 0).then_some(())
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_sse_server_is_an_upstream_like_any_other() -> anyhow::Result<()> {
    let everything = switchboard_e2e::peers::Everything::start_sse().await?;
    let gw = Gateway::start(&gateway_yaml(
        &[
            format!(
                "  - name: old\n    type: sse\n    url: {}\n    headers: {{X-Test: yes}}\n    capability_discovery_delay: 0s\n",
                everything.sse_url()
            ),
            py("py", "    capability_discovery_delay: 0s\n"),
        ],
        "",
    ))
    .await?;
    let client = connect(&gw.endpoint).await?;
    let tools = client.list_all_tools().await?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"old__echo"), "{names:?}\n{}", gw.logs());
    let text = call_text(&client, "old__echo", json!({"message": "over sse"})).await?;
    assert!(text.contains("over sse"), "{text}");
    let sum = call_text(&client, "old__get-sum", json!({"a": 40, "b": 2})).await?;
    assert!(sum.contains("42"), "{sum}");
    assert_eq!(
        call_text(&client, "py__echo", json!({"text": "and stdio"})).await?,
        "and stdio"
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_reaped_and_children_die_with_switchboard() -> anyhow::Result<()> {
    let mut gw = Gateway::start(&gateway_yaml(
        &[
            py(
                "idle",
                "    idle_timeout: 1s\n    capability_discovery_delay: 0s\n",
            ),
            py("busy", "    capability_discovery_delay: 0s\n"),
        ],
        "",
    ))
    .await?;
    let client = connect(&gw.endpoint).await?;
    let idle: u32 = call_text(&client, "idle__pid", json!({})).await?.parse()?;
    let busy: u32 = call_text(&client, "busy__pid", json!({})).await?.parse()?;
    eventually(
        Duration::from_secs(10),
        "the idle process to be stopped",
        || async move { gone(idle).then_some(()) },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert!(gw.logs().contains("idle session ended"), "{}", gw.logs());
    assert!(!gone(busy));
    // switchboard killed outright: the kernel kills its children (PR_SET_PDEATHSIG).
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(gw.pid())?),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let _ = gw.terminate(Duration::from_secs(5));
    eventually(
        Duration::from_secs(10),
        "the child to die with switchboard",
        || async move { gone(busy).then_some(()) },
    )
    .await?;
    Ok(())
}
