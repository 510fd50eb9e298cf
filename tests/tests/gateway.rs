//! The foundation end to end: `switchboard run` drives a real Envoy that loads the wasm
//! filter, and real MCP clients reach real MCP servers through it.

use serde_json::json;
use std::time::Duration;
use switchboard_e2e::peers::{Everything, RmcpServer};
use switchboard_e2e::{Gateway, call_text, connect, eventually, raw};

fn config(upstreams: &[(&str, String)]) -> String {
    let mut y = String::from("server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n");
    for (name, url) in upstreams {
        y.push_str(&format!(
            "  - name: {name}\n    url: {url}\n    timeout: 10s\n"
        ));
    }
    y
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_calls_an_rmcp_upstream_through_envoy() -> anyhow::Result<()> {
    let upstream = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&config(&[("alpha", upstream.url())])).await?;
    let client = connect(&gw.endpoint)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}", gw.logs()))?;
    let mut names: Vec<String> = client
        .list_all_tools()
        .await?
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["alpha__add", "alpha__slow", "alpha__whoami"]);
    assert_eq!(
        call_text(&client, "alpha__add", json!({"a": 40, "b": 2})).await?,
        "42"
    );
    assert_eq!(
        call_text(&client, "alpha__whoami", json!({})).await?,
        "alpha"
    );
    client.cancel().await?;
    // The calls really went through Envoy's cluster for that upstream.
    let sent = gw
        .stat("cluster.upstream-alpha.upstream_rq_completed")
        .await
        .unwrap_or(0);
    assert!(
        sent >= 2,
        "expected the routed calls on the cluster, saw {sent}\n{}",
        gw.logs()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rmcp_client_calls_server_everything_through_envoy() -> anyhow::Result<()> {
    let everything = Everything::start().await?;
    let gw = Gateway::start(&config(&[("everything", everything.url())])).await?;
    let client = connect(&gw.endpoint)
        .await
        .map_err(|e| anyhow::anyhow!("{e:#}\n{}\n{}", gw.logs(), everything.log.text()))?;
    let info = client
        .peer_info()
        .and_then(|i| i.server_info.clone())
        .map(|s| s.name)
        .unwrap_or_default();
    assert_eq!(info, "switchboard");
    let tools = client.list_all_tools().await?;
    assert!(
        tools.iter().any(|t| t.name == "everything__echo"),
        "tools: {:?}",
        tools.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    let text = call_text(
        &client,
        "everything__echo",
        json!({"message": "through envoy"}),
    )
    .await?;
    assert!(text.contains("through envoy"), "{text}");
    client.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_answered_by_the_filter_without_contacting_the_upstream()
-> anyhow::Result<()> {
    let upstream = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&config(&[("alpha", upstream.url())])).await?;
    let http = reqwest::Client::new();
    let before = upstream.request_count();
    for (body, code) in [
        ("{\"jsonrpc\":\"2.0\",", -32700),
        ("not json at all", -32700),
        ("[]", -32600),
        (
            "{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"ping\"}",
            -32600,
        ),
    ] {
        let resp = http
            .post(&gw.endpoint)
            .header("content-type", "application/json")
            .header("accept", raw::ACCEPT)
            .body(body)
            .send()
            .await?;
        assert_eq!(resp.status(), 400, "{body}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let v: serde_json::Value = resp.json().await?;
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
        assert!(v["id"].is_null());
    }
    assert_eq!(
        upstream.request_count(),
        before,
        "a malformed body reached the upstream"
    );
    assert_eq!(
        gw.stat("cluster.upstream-alpha.upstream_rq_total")
            .await
            .unwrap_or(0),
        0,
        "{}",
        gw.logs()
    );

    // A body over server.max_request_bytes (default 4 MiB) is refused before it is buffered whole.
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"params\":{{\"pad\":\"{}\"}}}}",
        "x".repeat(5 << 20)
    );
    let resp = http
        .post(&gw.endpoint)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await?;
    assert_eq!(resp.status(), 413);
    let v: serde_json::Value = resp.json().await?;
    assert_eq!(v["error"]["code"], -32600);
    assert_eq!(upstream.request_count(), before);
    // Paths other than the endpoint get a JSON answer that names the endpoint.
    let resp = http.get(format!("{}/nope", gw.base())).send().await?;
    assert_eq!(resp.status(), 404);
    let v: serde_json::Value = resp.json().await?;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("/mcp"),
        "{v}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_choose_the_route_by_sending_the_selector_header() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let beta = RmcpServer::start("beta").await?;
    let gw = Gateway::start(&config(&[("alpha", alpha.url()), ("beta", beta.url())])).await?;
    let session = raw::initialize(&gw.endpoint).await?;
    let beta_before = beta.request_count();
    let a = raw::post_with(
        &gw.endpoint,
        Some(&session),
        &raw::call(json!(1), "alpha__whoami", json!({})),
        &[("x-switchboard-upstream", "beta")],
    )
    .await?;
    assert_eq!(
        a.response()["result"]["content"][0]["text"],
        "alpha",
        "{a:?}"
    );
    assert_eq!(
        beta.request_count(),
        beta_before,
        "the client's selector header was obeyed"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_adds_an_upstream_without_restarting_envoy_and_refuses_a_broken_edit()
-> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let beta = RmcpServer::start("beta").await?;
    let gw = Gateway::start(&config(&[("alpha", alpha.url())])).await?;
    let base = gw.base();
    let alpha_client = connect(&gw.endpoint).await?;
    let names: Vec<String> = alpha_client
        .list_all_tools()
        .await?
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("alpha__")),
        "{names:?}"
    );
    assert_eq!(
        call_text(&alpha_client, "alpha__whoami", json!({})).await?,
        "alpha"
    );
    let uptime_before = eventually(Duration::from_secs(10), "envoy uptime of 2s", || {
        let gw = &gw;
        async move { gw.uptime().await.filter(|u| *u >= 2) }
    })
    .await?;

    gw.write_config(&config(&[("alpha", alpha.url()), ("beta", beta.url())]))?;
    // A new session sees beta's tools once the reload is in force.
    let endpoint = gw.endpoint.clone();
    let beta_client = eventually(
        Duration::from_secs(30),
        "beta's tools in a new session",
        || {
            let url = endpoint.clone();
            async move {
                let c = connect(&url).await.ok()?;
                let tools = c.list_all_tools().await.ok()?;
                tools.iter().any(|t| t.name == "beta__whoami").then_some(c)
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert_eq!(
        call_text(&beta_client, "beta__whoami", json!({})).await?,
        "beta"
    );
    assert_eq!(
        call_text(&beta_client, "alpha__whoami", json!({})).await?,
        "alpha"
    );
    // Its own endpoint serves it unprefixed.
    let direct = connect(&format!("{base}/upstreams/beta/mcp")).await?;
    assert_eq!(call_text(&direct, "whoami", json!({})).await?, "beta");
    // The session opened before the reload still works: Envoy was not restarted.
    assert_eq!(
        call_text(&alpha_client, "alpha__add", json!({"a": 1, "b": 2})).await?,
        "3"
    );
    let uptime_after = gw.uptime().await.unwrap_or(0);
    assert!(
        uptime_after >= uptime_before,
        "uptime went from {uptime_before}s to {uptime_after}s: Envoy restarted\n{}",
        gw.logs()
    );
    assert_eq!(
        gw.stderr.text().matches("envoy started").count(),
        1,
        "{}",
        gw.logs()
    );

    // A broken edit is refused with its position, and traffic continues on the last good config.
    gw.write_config("server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: alpha\n    url: http://127.0.0.1:1/mcp\n    colour: blue\n")?;
    let err = gw.stderr.clone();
    eventually(
        Duration::from_secs(20),
        "the broken edit to be refused",
        || {
            let refused = err.contains("configuration refused")
                && err.contains("gateway.yaml:7:5: upstreams[0].colour");
            async move { refused.then_some(()) }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert_eq!(
        call_text(&alpha_client, "alpha__whoami", json!({})).await?,
        "alpha"
    );
    assert_eq!(
        call_text(&beta_client, "beta__whoami", json!({})).await?,
        "beta"
    );
    let mut mcp = connect(&gw.endpoint).await?;
    assert_eq!(call_text(&mcp, "beta__whoami", json!({})).await?, "beta");
    mcp.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_stops_envoy() -> anyhow::Result<()> {
    let upstream = RmcpServer::start("alpha").await?;
    let mut gw = Gateway::start(&config(&[("alpha", upstream.url())])).await?;
    let admin = gw.admin.clone();
    assert!(
        reqwest::get(format!("{admin}/ready"))
            .await?
            .status()
            .is_success()
    );
    let status = gw.terminate(Duration::from_secs(20))?;
    assert!(
        status.success(),
        "switchboard exited with {status}\n{}",
        gw.logs()
    );
    assert!(gw.stderr.contains("draining envoy"), "{}", gw.logs());
    assert!(
        reqwest::get(format!("{admin}/ready")).await.is_err(),
        "Envoy still answers after switchboard exited"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_that_dies_under_run_is_started_again() -> anyhow::Result<()> {
    let upstream = RmcpServer::start("alpha").await?;
    // Fixed ports, so the endpoint stays the same across the restart.
    let free = || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr());
    let (listen, admin) = (free()?, free()?);
    let gw = Gateway::start(&format!(
        "server:\n  listen: {listen}\n  admin: {admin}\nupstreams:\n  - name: alpha\n    url: {}\n",
        upstream.url()
    ))
    .await?;
    let envoy_pid =
        child_envoy(gw.pid()).ok_or_else(|| anyhow::anyhow!("no envoy child\n{}", gw.logs()))?;
    switchboard_e2e::signal(envoy_pid, nix::sys::signal::Signal::SIGKILL);

    let err = gw.stderr.clone();
    eventually(Duration::from_secs(30), "envoy to be started again", || {
        let restarted = err.text().matches("envoy started").count() >= 2;
        async move { restarted.then_some(()) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    let endpoint = gw.endpoint.clone();
    let client = eventually(
        Duration::from_secs(30),
        "the gateway to serve again",
        || {
            let url = endpoint.clone();
            async move { connect(&url).await.ok() }
        },
    )
    .await?;
    assert_eq!(
        call_text(&client, "alpha__whoami", json!({})).await?,
        "alpha"
    );
    assert!(child_envoy(gw.pid()).is_some_and(|p| p != envoy_pid));
    Ok(())
}

/// The pid of the Envoy that switchboard runs.
fn child_envoy(parent: u32) -> Option<u32> {
    let out = std::process::Command::new("pgrep")
        .args(["-P", &parent.to_string()])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .find(|pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim().starts_with("envoy"))
        })
}

/// Issue 14, item 3: one edit, one reload. The watcher does not see its own reads (a JWKS
/// file and an audit log configured, which made it loop), an unchanged configuration pushes
/// nothing (the listener keeps its version), and a refused edit is logged once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_edit_is_one_reload_and_an_unchanged_configuration_pushes_nothing() -> anyhow::Result<()>
{
    use base64::Engine;
    let alpha = RmcpServer::start("alpha").await?;
    let dir = tempfile::tempdir()?;
    let jwks = dir.path().join("jwks.json");
    let k =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("a signing key of 32 bytes long!!");
    std::fs::write(
        &jwks,
        format!(r#"{{"keys":[{{"kty":"oct","alg":"HS256","kid":"k1","k":"{k}"}}]}}"#),
    )?;
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\naudit:\n  file: {}\nauth:\n  clients:\n    - name: people\n      jwt: {{issuer: i, audiences: [a], jwks: {{file: {}}}}}\n    - name: ci\n      api_key: {{keys: [\"a-key-of-sixteen-chars\"]}}\nupstreams:\n  - name: alpha\n    url: {}\n",
        dir.path().join("audit.log").display(),
        jwks.display(),
        alpha.url()
    );
    let mut gw = Gateway::start(&yaml).await?;
    let count = |gw: &Gateway, needle: &str| gw.stderr.text().matches(needle).count();
    let listener_version = |admin: String| async move {
        let v: serde_json::Value =
            reqwest::get(format!("{admin}/config_dump?resource=dynamic_listeners"))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
        v["configs"][0]["active_state"]["version_info"]
            .as_str()
            .map(str::to_string)
    };
    let before = listener_version(gw.admin.clone()).await;
    assert!(before.is_some(), "{}", gw.logs());
    // Quiet: nothing reloads by itself.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&gw, "file changed"), 0, "{}", gw.logs());

    // An edit that changes nothing: one reload, and nothing pushed.
    let mut file = std::fs::OpenOptions::new().append(true).open(&gw.config)?;
    std::io::Write::write_all(&mut file, b"# a comment\n")?;
    drop(file);
    eventually(Duration::from_secs(10), "the reload", || {
        let n = count(&gw, "configuration unchanged");
        async move { (n >= 1).then_some(()) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&gw, "configuration unchanged"), 1, "{}", gw.logs());
    assert_eq!(count(&gw, "file changed"), 1, "{}", gw.logs());
    assert_eq!(listener_version(gw.admin.clone()).await, before);

    // SIGHUP (log rotation): one reload more.
    switchboard_e2e::signal(gw.pid(), nix::sys::signal::Signal::SIGHUP);
    eventually(Duration::from_secs(10), "the reload on SIGHUP", || {
        let n = count(&gw, "configuration unchanged");
        async move { (n >= 2).then_some(()) }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&gw, "configuration unchanged"), 2, "{}", gw.logs());

    // A refused edit: its error once.
    gw.write_config(&yaml.replace("listen: 127.0.0.1:0", "listen: nowhere"))?;
    eventually(Duration::from_secs(10), "the refusal", || {
        let n = count(&gw, "configuration refused");
        async move { (n >= 1).then_some(()) }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&gw, "configuration refused"), 1, "{}", gw.logs());
    gw.terminate(Duration::from_secs(15))?;
    Ok(())
}

/// Issue 14, item 5: `run` on an address something else holds fails at once, naming the
/// address, the field and the reason, instead of running without ever serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_on_a_busy_listen_or_admin_address_fails_at_once() -> anyhow::Result<()> {
    let busy = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = busy.local_addr()?.port();
    for (field, yaml) in [
        (
            "server.listen",
            format!("server:\n  listen: 127.0.0.1:{port}\n  admin: 127.0.0.1:0\nupstreams: []\n"),
        ),
        (
            "server.admin",
            format!("server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:{port}\nupstreams: []\n"),
        ),
    ] {
        let started = std::time::Instant::now();
        let refused = Gateway::start(&yaml).await;
        let Err(e) = refused else {
            anyhow::bail!("run served on a busy {field}");
        };
        let text = e.to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{port}"))
                && text.contains(field)
                && text.contains("in use"),
            "{text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
    drop(busy);
    Ok(())
}

/// Issue 14, item 11: a session key is rotated without ending sessions. The new key seals
/// new sessions; the old one, listed in `previous_keys`, still opens the sessions it sealed;
/// once it is dropped from the list, so are they.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_key_rotates_without_ending_sessions() -> anyhow::Result<()> {
    let alpha = RmcpServer::start("alpha").await?;
    let yaml = |session: &str| {
        format!(
            "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nsession:\n{session}upstreams:\n  - name: alpha\n    url: {}\n",
            alpha.url()
        )
    };
    let old = "the-old-session-key-0123456789";
    let new = "the-new-session-key-0123456789";
    let gw = Gateway::start(&yaml(&format!("  key: {old}\n"))).await?;
    let ep = gw.endpoint.clone();
    let sid = raw::initialize(&ep).await?;
    let works = |sid: String| {
        let ep = ep.clone();
        async move {
            let a = raw::post(
                &ep,
                Some(&sid),
                &raw::call(json!(1), "alpha__whoami", json!({})),
            )
            .await
            .ok()?;
            Some(a.status)
        }
    };
    assert_eq!(works(sid.clone()).await, Some(200));
    gw.write_config(&yaml(&format!("  key: {new}\n  previous_keys: [{old}]\n")))?;
    // Wait until the new key seals: a session opened now must not open under the old key alone.
    let fresh = eventually(Duration::from_secs(20), "the new key to seal", || {
        let ep = ep.clone();
        let old_only = switchboard_e2e::sealed_with(old);
        async move {
            let sid = raw::initialize(&ep).await.ok()?;
            (!old_only(&sid)).then_some(sid)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert_eq!(
        works(sid.clone()).await,
        Some(200),
        "a session of the old key"
    );
    assert_eq!(works(fresh.clone()).await, Some(200));
    // The old key retired: its sessions end (404, initialize again); the new ones stay.
    gw.write_config(&yaml(&format!("  key: {new}\n")))?;
    eventually(Duration::from_secs(20), "the old key to be retired", || {
        let w = works(sid.clone());
        async move { (w.await == Some(404)).then_some(()) }
    })
    .await?;
    assert_eq!(works(fresh).await, Some(200));
    Ok(())
}
