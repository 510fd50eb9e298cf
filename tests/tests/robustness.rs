//! A bad day, bounded and on loopback: an upstream that never answers, one that crashes in
//! the middle of a call, and a control plane killed and restarted under an Envoy that keeps
//! serving.

use serde_json::json;
use std::time::{Duration, Instant};
use switchboard_e2e::peers::{Everything, RmcpServer};
use switchboard_e2e::{
    Background, Envoy, Gateway, call_text, connect, eventually, module_args, raw,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_never_answers_is_left_out_at_its_timeout() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    // Accepts connections, reads, never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let silent_addr = silent.local_addr()?;
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((tcp, _)) = silent.accept().await {
            open.push(tcp);
        }
    });
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: alpha\n    url: {}\n  - name: silent\n    url: http://{silent_addr}/mcp\n    timeout: 1500ms\n",
        alpha.url()
    ))
    .await?;
    let started = Instant::now();
    let session = raw::initialize(&gw.endpoint).await?;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(3000),
        "initialize waited {took:?} for an upstream with a 1500 ms timeout"
    );
    let a = raw::post(
        &gw.endpoint,
        Some(&session),
        &raw::call(json!(1), "alpha__whoami", json!({})),
    )
    .await?;
    assert_eq!(a.response()["result"]["content"][0]["text"], "alpha");
    assert!(
        gw.logs()
            .contains("upstream \"silent\" failed during initialize: timed out after 1500 ms"),
        "{}",
        gw.logs()
    );
    held.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_killed_mid_call_fails_that_call_and_the_others_keep_working()
-> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let mut everything = Everything::start().await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: alpha\n    url: {}\n  - name: everything\n    url: {}\n    timeout: 20s\n",
        alpha.url(),
        everything.url()
    ))
    .await?;
    let session = raw::initialize(&gw.endpoint).await?;
    let (endpoint, s) = (gw.endpoint.clone(), session.clone());
    let started = Instant::now();
    let call = tokio::spawn(async move {
        let body = raw::call(
            json!(7),
            "everything__trigger-long-running-operation",
            json!({"duration": 30, "steps": 30}),
        );
        raw::post(&endpoint, Some(&s), &body).await
    });
    // The call is under way upstream (Envoy has it in flight); then the upstream crashes.
    eventually(
        Duration::from_secs(10),
        "the call to be in flight",
        || async {
            let active = gw
                .stat("cluster.upstream-everything.upstream_rq_active")
                .await
                .unwrap_or(0);
            (active >= 1).then_some(())
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    everything.kill();
    let outcome = tokio::time::timeout(Duration::from_secs(20), call).await??;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the failed call took {took:?}"
    );
    // The upstream had started its event stream, so Envoy had sent the answer's headers on:
    // a crash can only cut the stream (as with a plain route). Before that point the client
    // gets a JSON-RPC error naming the upstream.
    match &outcome {
        Ok(answer) => assert_eq!(answer.response()["error"]["code"], -32002, "{answer:?}"),
        // The answer had begun: its body ends early (not a refused or hung request).
        Err(e) => assert!(format!("{e:#}").contains("reading the answer"), "{e:#}"),
    }
    // The next call to it is answered at once with an error that names it.
    let started = Instant::now();
    let again = raw::post(
        &gw.endpoint,
        Some(&session),
        &raw::call(json!(9), "everything__echo", json!({"message": "hi"})),
    )
    .await?;
    assert!(started.elapsed() < Duration::from_secs(5));
    let response = again.response();
    assert_eq!(response["id"], 9, "{again:?}");
    assert_eq!(response["error"]["code"], -32002, "{again:?}");
    let message = response["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("\"everything\""), "{message}");
    // The other upstream, on the same session, is unaffected.
    let a = raw::post(
        &gw.endpoint,
        Some(&session),
        &raw::call(json!(8), "alpha__whoami", json!({})),
    )
    .await?;
    assert_eq!(a.response()["result"]["content"][0]["text"], "alpha");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_keeps_serving_without_its_control_plane_and_a_new_one_resyncs_it()
-> anyhow::Result<()> {
    let upstream = RmcpServer::start("steady").await?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("gateway.yaml");
    // A fixed session key: a new control plane then produces the very same resources.
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: 127.0.0.1:0\nsession:\n  key: a-fixed-key-for-this-test-0123456789\nupstreams:\n  - name: steady\n    url: {}\n",
            upstream.url()
        ),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let xds = format!("127.0.0.1:{port}");
    let mut args = vec![
        "serve".to_string(),
        "-c".into(),
        config.display().to_string(),
        "--xds".into(),
        xds.clone(),
    ];
    args.extend(module_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let serve = Background::spawn(&args)?;
    serve.line("xDS: ").await?;
    let (envoy, listener) = Envoy::from_bootstrap(&xds, "steady-1").await?;
    let client = connect(&format!("http://{listener}/mcp")).await?;
    assert_eq!(
        call_text(&client, "steady__whoami", json!({})).await?,
        "steady"
    );

    // The control plane dies: Envoy notices and goes on serving its last configuration.
    switchboard_e2e::signal(serve.pid(), nix::sys::signal::Signal::SIGKILL);
    eventually(Duration::from_secs(20), "Envoy to see the control plane gone", || {
        let envoy = &envoy;
        async move { (envoy.stat("control_plane.connected_state").await == Some(0)).then_some(()) }
    })
    .await?;
    assert_eq!(
        call_text(&client, "steady__whoami", json!({})).await?,
        "steady"
    );
    let modified = envoy.stat("listener_manager.listener_modified").await;
    let removed = envoy.stat("listener_manager.listener_removed").await;

    // A new control plane on the same address: Envoy reconnects and finds nothing to change,
    // so no listener is drained and the client's connection lives on.
    let serve = Background::spawn(&args)?;
    serve.line("xDS: ").await?;
    eventually(Duration::from_secs(30), "Envoy to reconnect", || {
        let envoy = &envoy;
        async move { (envoy.stat("control_plane.connected_state").await == Some(1)).then_some(()) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}\n{}", serve.stderr.text(), envoy.log.text()))?;
    // Connected comes before Envoy has acknowledged what it was sent: wait for the ACK.
    let stderr = serve.stderr.clone();
    eventually(
        Duration::from_secs(20),
        "Envoy to accept the new control plane's configuration",
        || {
            let accepted = stderr.contains("envoy accepted");
            async move { accepted.then_some(()) }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", serve.stderr.text()))?;
    assert_eq!(
        call_text(&client, "steady__whoami", json!({})).await?,
        "steady"
    );
    assert_eq!(
        envoy.stat("listener_manager.listener_modified").await,
        modified
    );
    assert_eq!(
        envoy.stat("listener_manager.listener_removed").await,
        removed
    );
    client.cancel().await?;
    Ok(())
}

/// Envoy's heap in use, from its admin `/memory`.
async fn envoy_allocated(gw: &Gateway) -> Option<u64> {
    let v: serde_json::Value = reqwest::get(format!("{}/memory", gw.admin))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    v["allocated"].as_str()?.parse().ok()
}

fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_has_no_errors_and_flat_memory() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let beta = RmcpServer::start("beta").await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: alpha\n    url: {}\n  - name: beta\n    url: {}\n",
        alpha.url(),
        beta.url()
    ))
    .await?;
    // Moderate load, bounded by time and count: 4 clients, each a new session every 50 calls.
    let run = |secs: u64| {
        let ep = gw.endpoint.clone();
        async move {
            let mut tasks = Vec::new();
            for c in 0..4 {
                let ep = ep.clone();
                tasks.push(tokio::spawn(async move {
                    let deadline = Instant::now() + Duration::from_secs(secs);
                    let (mut ok, mut failed) = (0u64, Vec::new());
                    'sessions: for _ in 0..1000 {
                        let client = match connect(&ep).await {
                            Ok(c) => c,
                            Err(e) => {
                                failed.push(format!("connect: {e}"));
                                continue;
                            }
                        };
                        for i in 0..50i64 {
                            if Instant::now() > deadline {
                                let _ = client.cancel().await;
                                break 'sessions;
                            }
                            let tool = if i % 2 == 0 {
                                "alpha__add"
                            } else {
                                "beta__add"
                            };
                            match call_text(&client, tool, json!({"a": i, "b": c})).await {
                                Ok(t) if t == (i + c).to_string() => ok += 1,
                                other => failed.push(format!("{tool}: {other:?}")),
                            }
                        }
                        let _ = client.cancel().await;
                    }
                    (ok, failed)
                }));
            }
            let mut total = 0;
            let mut failures = Vec::new();
            for t in tasks {
                match t.await {
                    Ok((ok, failed)) => {
                        total += ok;
                        failures.extend(failed);
                    }
                    Err(e) => failures.push(format!("a client task failed: {e}")),
                }
            }
            (total, failures)
        }
    };
    // Warm up, then measure memory across a longer stretch of the same load.
    let (warm, failures) = run(10).await;
    assert!(failures.is_empty(), "{failures:?}");
    let envoy_before = envoy_allocated(&gw).await.unwrap_or(0);
    let switchboard_before = rss_kib(gw.pid()).unwrap_or(0);
    let (calls, failures) = run(40).await;
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(warm + calls > 500, "only {} calls in 50 s", warm + calls);
    let envoy_after = envoy_allocated(&gw).await.unwrap_or(u64::MAX);
    let switchboard_after = rss_kib(gw.pid()).unwrap_or(u64::MAX);
    eprintln!(
        "soak: {calls} calls; Envoy heap {envoy_before} -> {envoy_after} bytes; switchboard RSS {switchboard_before} -> {switchboard_after} KiB"
    );
    // Flat: sessions are sealed tokens, not state. Allow allocator noise.
    assert!(
        envoy_after <= envoy_before + envoy_before / 5 + (4 << 20),
        "Envoy's heap grew from {envoy_before} to {envoy_after} bytes"
    );
    assert!(
        switchboard_after <= switchboard_before + switchboard_before / 5 + 4096,
        "switchboard grew from {switchboard_before} to {switchboard_after} KiB"
    );
    Ok(())
}

/// Issue 14, item 7: a client whose headers or body trickle in is timed out (408 and the
/// connection closed) after the configured time, not held without end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_timed_out() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  request_headers_timeout: 1s\n  request_timeout: 2s\nupstreams:\n  - name: alpha\n    url: {}\n",
        alpha.url()
    ))
    .await?;
    let addr = gw.base().trim_start_matches("http://").to_string();
    for (what, sent) in [
        ("headers", "POST /mcp HTTP/1.1\r\nhost: localhost\r\ncontent-type: appl".to_string()),
        (
            "body",
            "POST /mcp HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"jsonrpc\":".to_string(),
        ),
    ] {
        let started = std::time::Instant::now();
        let mut tcp = tokio::net::TcpStream::connect(&addr).await?;
        tcp.write_all(sent.as_bytes()).await?;
        let mut answer = Vec::new();
        // Bounded: a gateway that never times out fails here, it does not hang the suite.
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
        assert!(read.is_ok(), "slow {what}: still open after 10 s");
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 408"), "slow {what}: {text}");
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "slow {what}: {:?}",
            started.elapsed()
        );
    }
    Ok(())
}
