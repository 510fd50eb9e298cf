//! `switchboard serve` + `switchboard bootstrap` for an Envoy that switchboard does not start,
//! and how Envoy's refusals (NACKs) are reported.

use serde_json::json;
use std::time::Duration;
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{
    Background, Envoy, Gateway, call_text, connect, data_plane, eventually, native_module_path,
    raw, wasm_path,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envoy_started_from_the_printed_bootstrap_serves_mcp() -> anyhow::Result<()> {
    let upstream = RmcpServer::start("fleet").await?;
    let notes = RmcpServer::start_full(rmcp::model::ProtocolVersion::KNOWN_VERSIONS).await?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: 127.0.0.1:0\nupstreams:\n  - name: fleet\n    url: {}\n  - name: notes\n    url: {}\n",
            upstream.url(),
            notes.url()
        ),
    )?;
    let wasm = wasm_path();
    let serve = Background::spawn(&[
        "serve",
        "-c",
        &config.to_string_lossy(),
        "--xds",
        "127.0.0.1:0",
        "--wasm",
        &wasm.to_string_lossy(),
        "--native-module",
        &native_module_path().to_string_lossy(),
        "--data-plane",
        &data_plane(),
        "--bridge",
        "127.0.0.1:0",
    ])?;
    let xds = serve.line("xDS: ").await?;
    serve.line("bridge: ").await?;

    let (envoy, listener) = Envoy::from_bootstrap(&xds, "edge-1").await?;

    let client = connect(&format!("http://{listener}/mcp")).await?;
    assert_eq!(
        call_text(&client, "fleet__whoami", serde_json::json!({})).await?,
        "fleet"
    );
    client.cancel().await?;

    // The merged GET stream, served by the bridge `serve` runs, reading the upstreams'
    // streams back through this Envoy.
    let ep = format!("http://{listener}/mcp");
    let session = raw::initialize(&ep).await?;
    let subscribe = json!({"jsonrpc": "2.0", "id": 1, "method": "resources/subscribe", "params": {"uri": "notes+note://1"}});
    let a = raw::post(&ep, Some(&session), &subscribe).await?;
    assert!(a.response()["result"].is_object(), "{a:?}");
    let stream = reqwest::Client::new()
        .get(&ep)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await?;
    assert_eq!(stream.status(), 200, "{}", serve.stderr.text());
    let (_, mut events) = raw::follow(stream);
    // The upstream's own stream may open after the first touch: touch until an update comes.
    let mut updated = None;
    for attempt in 0..15 {
        raw::post(
            &ep,
            Some(&session),
            &raw::call(json!(attempt), "notes__touch", json!({})),
        )
        .await?;
        let wait = raw::wait_for(&mut events, "update", |m| {
            m["method"] == "notifications/resources/updated"
        });
        if let Ok(Ok(u)) = tokio::time::timeout(Duration::from_secs(1), wait).await {
            updated = Some(u);
            break;
        }
    }
    let updated = updated.ok_or_else(|| {
        anyhow::anyhow!(
            "no resource update on the stream\n{}\n{}",
            serve.stderr.text(),
            envoy.log.text()
        )
    })?;
    assert_eq!(updated.1["params"]["uri"], "notes+note://1");
    assert!(
        serve.stderr.contains("node=edge-1") || serve.stderr.contains("node=\"edge-1\""),
        "{}",
        serve.stderr.text()
    );

    // The filter's secrets reach the fleet sealed with the key in serve's environment
    // (SWITCHBOARD_SECRETS_KEY): an Envoy without it refuses the filter's configuration and
    // says why, and serves no MCP.
    let keyless = Envoy::start_with_env(&Envoy::bootstrap(&xds, "edge-2")?, &[]).await?;
    let log = keyless.log.clone();
    eventually(
        Duration::from_secs(20),
        "the keyless Envoy's refusal",
        || {
            let said = log.contains("SWITCHBOARD_SECRETS_KEY is not in Envoy's environment");
            async move { said.then_some(()) }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", keyless.log.text()))?;
    eventually(Duration::from_secs(20), "serve to log the NACK", || {
        let nacked = serve.stderr.contains("envoy REJECTED");
        async move { nacked.then_some(()) }
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_envoy_refuses_is_logged_with_its_error_and_traffic_continues()
-> anyhow::Result<()> {
    let upstream = RmcpServer::start("alpha").await?;
    let base = |listen: &str| {
        format!(
            "server:\n  listen: {listen}\n  admin: 127.0.0.1:0\nupstreams:\n  - name: alpha\n    url: {}\n",
            upstream.url()
        )
    };
    let gw = Gateway::start(&base("127.0.0.1:0")).await?;
    let client = connect(&gw.endpoint).await?;

    // Valid YAML that Envoy cannot apply: a listener cannot move to another address in place.
    let busy = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = busy.local_addr()?.port();
    gw.write_config(&base(&format!("127.0.0.1:{port}")))?;
    let err = gw.stderr.clone();
    eventually(Duration::from_secs(20), "the NACK to be logged", || {
        let nacked = err.text().lines().any(|l| {
            l.contains("envoy REJECTED") && l.contains("Listener") && l.contains("error=")
        });
        async move { nacked.then_some(()) }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert_eq!(
        call_text(&client, "alpha__whoami", serde_json::json!({})).await?,
        "alpha"
    );
    Ok(())
}

/// Item 5 of issue 13: ADS over TLS with client certificates. An Envoy whose bootstrap
/// carries a certificate that names its node gets the configuration; one without TLS, with
/// another node's id, or with a certificate from another CA gets nothing; and `serve`
/// refuses a plaintext xDS port that is not on loopback unless told it is on purpose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item5_xds_is_served_over_tls_only_to_the_nodes_it_knows() -> anyhow::Result<()> {
    use switchboard_e2e::tls::Ca;
    let upstream = RmcpServer::start("fleet").await?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: 127.0.0.1:0\nsession:\n  key: a-session-key-of-the-fleet-0123\nupstreams:\n  - name: fleet\n    url: {}\n",
            upstream.url()
        ),
    )?;
    let ca = Ca::new("xds-ca")?;
    let ca_file = ca.write(dir.path(), "ca")?;
    let (server_cert, server_key) = ca.server(&["xds.test"])?.write(dir.path(), "server")?;
    let (edge1_cert, edge1_key) = ca.client("edge-1")?.write(dir.path(), "edge-1")?;
    let (edge2_cert, edge2_key) = ca.client("edge-2")?.write(dir.path(), "edge-2")?;
    let rogue = Ca::new("rogue-ca")?;
    let (rogue_cert, rogue_key) = rogue.client("edge-1")?.write(dir.path(), "rogue")?;
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();

    // Plaintext on a non-loopback address: refused unless asked for.
    let open = Background::spawn(&["serve", "-c", &path(&config), "--xds", "0.0.0.0:0"])?;
    let exited = eventually(Duration::from_secs(15), "serve to refuse", || {
        let err = open.stderr.text();
        async move { err.contains("--xds-insecure").then_some(()) }
    })
    .await;
    assert!(
        exited.is_ok() && open.stdout.text().is_empty(),
        "plaintext xDS on 0.0.0.0 was served: {}{}",
        open.stdout.text(),
        open.stderr.text()
    );
    drop(open);

    let wasm = wasm_path();
    let serve = Background::spawn(&[
        "serve",
        "-c",
        &path(&config),
        "--xds",
        "127.0.0.1:0",
        "--wasm",
        &wasm.to_string_lossy(),
        "--native-module",
        &native_module_path().to_string_lossy(),
        "--data-plane",
        &data_plane(),
        "--xds-cert",
        &path(&server_cert),
        "--xds-key",
        &path(&server_key),
        "--xds-client-ca",
        &path(&ca_file),
        "--xds-allow-node",
        "edge-1",
    ])?;
    let xds = serve.line("xDS: ").await?;
    let bootstrap = |node: &str, tls: Option<(&std::path::Path, &std::path::Path)>| {
        let mut args = vec![
            "bootstrap".to_string(),
            "--xds".into(),
            xds.clone(),
            "--node".into(),
            node.into(),
            "--admin".into(),
            "127.0.0.1:0".into(),
        ];
        if let Some((cert, key)) = tls {
            args.extend([
                "--xds-ca".into(),
                path(&ca_file),
                "--xds-cert".into(),
                path(cert),
                "--xds-key".into(),
                path(key),
                "--xds-server-name".into(),
                "xds.test".into(),
            ]);
        }
        let out = std::process::Command::new(switchboard_e2e::switchboard_bin())
            .args(&args)
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "bootstrap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok::<_, anyhow::Error>(String::from_utf8_lossy(&out.stdout).into_owned())
    };

    let good = Envoy::start(&bootstrap("edge-1", Some((&edge1_cert, &edge1_key)))?).await?;
    let listener = eventually(Duration::from_secs(30), "edge-1's listener", || {
        let good = &good;
        async move { good.listener("switchboard-mcp").await }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}\n{}", serve.stderr.text(), good.log.text()))?;
    let client = connect(&format!("http://{listener}/mcp")).await?;
    assert_eq!(
        call_text(&client, "fleet__whoami", json!({})).await?,
        "fleet"
    );
    client.cancel().await?;

    let attempts = [
        ("plaintext", bootstrap("edge-1", None)?),
        (
            "a node that is not allowed",
            bootstrap("edge-2", Some((&edge2_cert, &edge2_key)))?,
        ),
        (
            "another node's id",
            bootstrap("edge-1", Some((&edge2_cert, &edge2_key)))?,
        ),
        (
            "a certificate from another CA",
            bootstrap("edge-1", Some((&rogue_cert, &rogue_key)))?,
        ),
    ];
    // An Envoy without its configuration is ready only once its initial fetch times out
    // (15 s): start them side by side. The good one had its listener a moment after it
    // connected, so by then these would have theirs.
    let started = futures::future::join_all(
        attempts
            .iter()
            .map(|(what, yaml)| async move { (*what, Envoy::start(yaml).await) }),
    )
    .await;
    let mut refused = Vec::new();
    for (what, envoy) in started {
        refused.push((what, envoy?));
    }
    for (what, envoy) in &refused {
        assert!(
            envoy.listener("switchboard-mcp").await.is_none(),
            "{what} got the configuration\n{}",
            serve.stderr.text()
        );
    }
    let log = serve.stderr.text();
    assert!(log.contains("edge-2"), "refusals are logged:\n{log}");
    Ok(())
}

/// Issue 14, item 4: `serve` exits promptly on SIGTERM while an Envoy holds its ADS stream
/// (it used to wait 40 s and more, which hangs rolling restarts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_exits_promptly_on_sigterm_with_an_envoy_connected() -> anyhow::Result<()> {
    let upstream = RmcpServer::start("fleet").await?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n  listen: 127.0.0.1:0\nupstreams:\n  - name: fleet\n    url: {}\n",
            upstream.url()
        ),
    )?;
    let wasm = wasm_path();
    let mut serve = Background::spawn(&[
        "serve",
        "-c",
        &config.to_string_lossy(),
        "--xds",
        "127.0.0.1:0",
        "--wasm",
        &wasm.to_string_lossy(),
        "--native-module",
        &native_module_path().to_string_lossy(),
        "--data-plane",
        &data_plane(),
    ])?;
    let xds = serve.line("xDS: ").await?;
    let (_envoy, _listener) = Envoy::from_bootstrap(&xds, "edge-1").await?;
    let started = std::time::Instant::now();
    switchboard_e2e::signal(serve.pid(), nix::sys::signal::Signal::SIGTERM);
    assert!(
        serve.exits_within(Duration::from_secs(5)).await,
        "serve still runs {:?} after SIGTERM\n{}",
        started.elapsed(),
        serve.stderr.text()
    );
    Ok(())
}
