//! Upstream transport through real Envoy: TLS with a private CA, SNI, HTTP/2 by ALPN, pool
//! limits, mutual TLS, certificates by SDS and their rotation, and failures named for the
//! client. Certificates are made in the test (rcgen); the upstream is rmcp behind rustls.

use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use switchboard_e2e::tls::{Ca, TlsUpstream};
use switchboard_e2e::{Gateway, call_text, connect, eventually, raw};

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_ca_sni_http2_and_pool_limits_reach_envoy_and_the_upstream() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("switchboard test CA")?;
    let upstream = TlsUpstream::start("secure", &ca.server(&["mcp.internal"])?, None, true).await?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: secure\n    url: https://127.0.0.1:{}/mcp\n    tls:\n      ca_cert: {}\n      server_name: mcp.internal\n    transport: {{http2: true, max_idle_conns: 7, max_idle_conns_per_host: 3, idle_conn_timeout: 45s}}\n",
        upstream.addr.port(),
        path(&ca.write(dir.path(), "ca")?),
    ))
    .await?;
    let client = connect(&gw.endpoint).await?;
    assert_eq!(
        call_text(&client, "secure__whoami", json!({})).await?,
        "secure"
    );
    client.cancel().await?;

    let handshakes = upstream.handshakes();
    assert!(!handshakes.is_empty());
    for h in &handshakes {
        assert_eq!(h.sni.as_deref(), Some("mcp.internal"), "{h:?}");
        assert_eq!(h.alpn.as_deref(), Some("h2"), "negotiated by ALPN: {h:?}");
    }
    let h2 = gw
        .stat("cluster.upstream-secure.upstream_cx_http2_total")
        .await;
    assert!(h2.is_some_and(|n| n >= 1), "{h2:?}");

    // What Envoy received: pool limits and idle timeout on the calls' cluster, the CA by
    // SDS (no certificate inline).
    let cluster = gw
        .cluster_config("upstream-secure")
        .await
        .ok_or_else(|| anyhow::anyhow!("no cluster upstream-secure in config_dump"))?;
    let breakers = &cluster["circuit_breakers"];
    assert_eq!(breakers["thresholds"][0]["max_connections"], 7, "{cluster}");
    assert_eq!(
        breakers["per_host_thresholds"][0]["max_connections"], 3,
        "{cluster}"
    );
    let options = &cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert_eq!(
        options["common_http_protocol_options"]["idle_timeout"],
        "45s"
    );
    assert!(options["auto_config"].is_object(), "{options}");
    let text = cluster.to_string();
    assert!(
        text.contains("upstream-secure-ca"),
        "the CA is named by SDS: {text}"
    );
    assert!(
        !text.contains("BEGIN CERTIFICATE"),
        "nothing inline: {text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_or_a_missing_client_certificate_is_refused_with_the_upstream_named()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("switchboard test CA")?;
    let other = Ca::new("some other CA")?;
    let server = ca.server(&["mcp.internal"])?;
    let open = TlsUpstream::start("open", &server, None, true).await?;
    let mtls = TlsUpstream::start("mtls", &server, Some(&ca), true).await?;
    let client_cert = ca.client("gateway")?;
    let (cert, key) = client_cert.write(dir.path(), "client")?;
    let yaml = |open_ca: &str, mtls_client: &str| {
        format!(
            "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\naggregation:\n  fan_out: fail_closed\nupstreams:\n  - name: open\n    url: https://127.0.0.1:{}/mcp\n    tls: {{ca_cert: {open_ca}, server_name: mcp.internal}}\n  - name: mtls\n    url: https://127.0.0.1:{}/mcp\n    tls: {{ca_cert: {}, server_name: mcp.internal{mtls_client}}}\n",
            open.addr.port(),
            mtls.addr.port(),
            path(&ca.write(dir.path(), "ca").unwrap_or_default()),
        )
    };
    let wrong_ca = path(&other.write(dir.path(), "other")?);
    let gw = Gateway::start(&yaml(&wrong_ca, "")).await?;

    // Neither handshake succeeds: the wrong CA fails on our side, the missing client
    // certificate on the upstream's. The client hears which upstreams and why.
    let a = raw::post(&gw.endpoint, None, &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})).await?;
    let message = a.response()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("\"open\"") && message.contains("\"mtls\""),
        "{message}\n{}",
        gw.logs()
    );
    assert!(
        message.contains("\"open\" failed during initialize: unreachable (the connection or its TLS handshake failed)"),
        "{message}"
    );
    assert!(open.handshakes().is_empty() && mtls.handshakes().is_empty());
    let verify_failed = gw
        .stat("cluster.upstream-open.ssl.fail_verify_error")
        .await
        .unwrap_or(0);
    assert!(
        verify_failed >= 1,
        "Envoy's stats show the failure for that cluster"
    );
    let refused = gw
        .stat("cluster.upstream-mtls.ssl.connection_error")
        .await
        .unwrap_or(0);
    assert!(refused >= 1, "{}", gw.logs());

    // The right CA and a client certificate: both work, the upstream saw our certificate.
    let right_ca = path(&ca.write(dir.path(), "ca")?);
    gw.write_config(&yaml(
        &right_ca,
        &format!(", client_cert: {}, client_key: {}", path(&cert), path(&key)),
    ))?;
    let client = eventually(Duration::from_secs(20), "the fixed TLS settings", || {
        let ep = gw.endpoint.clone();
        async move {
            let c = connect(&ep).await.ok()?;
            let text = call_text(&c, "mtls__whoami", json!({})).await.ok()?;
            (text == "mtls").then_some(c)
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert_eq!(call_text(&client, "open__whoami", json!({})).await?, "open");
    let seen = mtls.handshakes();
    let ours = client_cert.der()?;
    assert!(
        !seen.is_empty()
            && seen
                .iter()
                .all(|h| h.client_cert.as_deref() == Some(ours.as_slice())),
        "{seen:?}"
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_rotated_on_disk_is_used_without_a_failed_call() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("switchboard test CA")?;
    // A new connection for every request, so every call shows the certificate in use.
    let upstream =
        TlsUpstream::start("mtls", &ca.server(&["mcp.internal"])?, Some(&ca), false).await?;
    let first = ca.client("first")?;
    let second = ca.client("second")?;
    let (cert, key) = first.write(dir.path(), "client")?;
    let gw = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: mtls\n    url: https://127.0.0.1:{}/mcp\n    tls: {{ca_cert: {}, server_name: mcp.internal, client_cert: {}, client_key: {}}}\n",
        upstream.addr.port(),
        path(&ca.write(dir.path(), "ca")?),
        path(&cert),
        path(&key),
    ))
    .await?;
    let client = Arc::new(connect(&gw.endpoint).await?);
    assert_eq!(call_text(&client, "mtls__whoami", json!({})).await?, "mtls");
    let uptime = gw.uptime().await;

    // Calls in a loop, bounded by count and time, while the certificate changes on disk.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let caller = {
        let (client, stop, ok, failed) = (client.clone(), stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let mut errors = Vec::new();
            for i in 0..5000 {
                if stop.load(Ordering::SeqCst) || tokio::time::Instant::now() > deadline {
                    break;
                }
                match call_text(&client, "mtls__add", json!({"a": i, "b": 1})).await {
                    Ok(t) if t == (i + 1).to_string() => ok.fetch_add(1, Ordering::SeqCst),
                    other => {
                        errors.push(format!("{other:?}"));
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
            errors
        })
    };
    eventually(Duration::from_secs(10), "calls under way", || {
        let ok = ok.clone();
        async move { (ok.load(Ordering::SeqCst) >= 10).then_some(()) }
    })
    .await?;
    // A half-written rotation (new certificate, old key) is refused and changes nothing.
    std::fs::write(&cert, &second.cert)?;
    eventually(
        Duration::from_secs(10),
        "the mismatched pair refused",
        || {
            let log = gw.logs();
            async move { log.contains("does not match the certificate").then_some(()) }
        },
    )
    .await?;
    let key_tmp = dir.path().join(".client.key.tmp");
    std::fs::write(&key_tmp, &second.key)?;
    std::fs::rename(&key_tmp, &key)?;
    let second_der = second.der()?;
    eventually(
        Duration::from_secs(20),
        "the upstream to see the new certificate",
        || {
            let seen = upstream.handshakes();
            let second_der = second_der.clone();
            async move {
                seen.iter()
                    .any(|h| h.client_cert.as_deref() == Some(second_der.as_slice()))
                    .then_some(())
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    let at_rotation = ok.load(Ordering::SeqCst);
    eventually(
        Duration::from_secs(20),
        "more calls after the rotation",
        || {
            let ok = ok.clone();
            async move { (ok.load(Ordering::SeqCst) >= at_rotation + 20).then_some(()) }
        },
    )
    .await?;
    stop.store(true, Ordering::SeqCst);
    let errors = caller.await?;
    assert_eq!(failed.load(Ordering::SeqCst), 0, "{errors:?}");
    // New connections use only the new certificate once it is in force.
    let seen = upstream.handshakes();
    let last = seen.last().and_then(|h| h.client_cert.clone());
    assert_eq!(last.as_deref(), Some(second_der.as_slice()));
    assert!(
        gw.uptime().await >= uptime,
        "Envoy was not restarted\n{}",
        gw.logs()
    );
    assert_eq!(
        gw.stderr.text().matches("envoy started").count(),
        1,
        "{}",
        gw.logs()
    );

    // A certificate the upstream does not trust: the next call fails, naming the upstream
    // and the TLS failure.
    let rogue = Ca::new("rogue CA")?.client("rogue")?;
    let (cert_tmp, key_tmp) = rogue.write(dir.path(), ".rogue")?;
    std::fs::rename(&key_tmp, &key)?;
    std::fs::rename(&cert_tmp, &cert)?;
    let error = eventually(
        Duration::from_secs(20),
        "a call refused by the upstream",
        || {
            let client = client.clone();
            async move {
                call_text(&client, "mtls__whoami", json!({}))
                    .await
                    .err()
                    .map(|e| e.to_string())
            }
        },
    )
    .await?;
    assert!(
        error.contains("Upstream \"mtls\" failed the TLS handshake (TLSV1 ALERT UNKNOWN CA)"),
        "{error}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_behind_a_socks5_proxy_keeps_tls_end_to_end_and_wrong_credentials_are_named()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("switchboard test CA")?;
    // A new connection for every request, so a change of credentials shows at once.
    let upstream = TlsUpstream::start("far", &ca.server(&["mcp.internal"])?, None, false).await?;
    let proxy = switchboard_e2e::peers::Socks5Proxy::start("alice", "s3cret").await?;
    let ca_file = path(&ca.write(dir.path(), "ca")?);
    let yaml = |password: &str| {
        format!(
            "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: far\n    url: https://127.0.0.1:{}/mcp\n    tls: {{ca_cert: {ca_file}, server_name: mcp.internal}}\n    proxy: {{url: socks5://{}, username: alice, password: {password}}}\n",
            upstream.addr.port(),
            proxy.addr,
        )
    };
    let gw = Gateway::start(&yaml("s3cret")).await?;
    let client = connect(&gw.endpoint).await?;
    assert_eq!(call_text(&client, "far__whoami", json!({})).await?, "far");
    // TLS went through the tunnel to the upstream, with the configured name.
    let seen = upstream.handshakes();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|h| h.sni.as_deref() == Some("mcp.internal")),
        "{seen:?}"
    );
    // Envoy's cluster points at the bridge's loopback tunnel, not at the upstream.
    let cluster = gw.cluster_config("upstream-far").await.unwrap_or_default();
    let port = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"]["port_value"]
        .as_u64();
    assert!(
        port.is_some_and(|p| p != u64::from(upstream.addr.port())),
        "{cluster}"
    );
    assert!(
        proxy.log.text().contains(&upstream.addr.port().to_string()),
        "{}",
        proxy.log.text()
    );

    // Wrong credentials: the call fails, naming the upstream and its proxy; the log says why.
    gw.write_config(&yaml("wrong"))?;
    let error = eventually(
        Duration::from_secs(20),
        "a call refused by the proxy",
        || {
            // The session made before: a new one would fail at initialize already.
            let client = &client;
            async move {
                call_text(client, "far__whoami", json!({}))
                    .await
                    .err()
                    .map(|e| e.to_string())
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert!(
        error.contains("Upstream \"far\"")
            && error.contains(&format!("SOCKS5 proxy {}", proxy.addr)),
        "{error}"
    );
    assert!(
        gw.logs()
            .contains("the proxy closed the connection during the SOCKS5 handshake (wrong username or password?)"),
        "{}",
        gw.logs()
    );
    client.cancel().await?;
    Ok(())
}

/// A client of the gateway's TLS port that trusts `ca`, optionally with a certificate.
fn https_client(
    ca: &Ca,
    identity: Option<&switchboard_e2e::tls::Issued>,
) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes())?);
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(
            format!("{}{}", id.cert, id.key).as_bytes(),
        )?);
    }
    Ok(b.build()?)
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: serde_json::Value,
) -> anyhow::Result<reqwest::Response> {
    let mut req = http
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    Ok(req.send().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_tls_and_requires_client_certificates_when_asked() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("switchboard test CA")?;
    let (cert, key) = ca.server(&["127.0.0.1"])?.write(dir.path(), "server")?;
    let ca_file = path(&ca.write(dir.path(), "ca")?);
    let notes = switchboard_e2e::peers::RmcpServer::start_full(
        rmcp::model::ProtocolVersion::KNOWN_VERSIONS,
    )
    .await?;
    let yaml = |client_ca: &str| {
        format!(
            "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n  tls: {{cert_file: {}, key_file: {}{client_ca}}}\nupstreams:\n  - name: notes\n    url: {}\n",
            path(&cert),
            path(&key),
            notes.url()
        )
    };
    let gw = Gateway::start(&yaml("")).await?;
    assert!(
        gw.endpoint.starts_with("https://127.0.0.1:"),
        "{}",
        gw.endpoint
    );
    let http = https_client(&ca, None)?;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let r = post(&http, &gw.endpoint, None, init.clone()).await?;
    assert_eq!(r.status(), 200);
    let session = r
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    post(
        &http,
        &gw.endpoint,
        Some(&session),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await?;
    let sub = json!({"jsonrpc": "2.0", "id": 2, "method": "resources/subscribe", "params": {"uri": "notes+note://1"}});
    assert_eq!(
        post(&http, &gw.endpoint, Some(&session), sub)
            .await?
            .status(),
        200
    );

    // The merged stream works behind TLS: the bridge reads the upstream's stream back
    // through this TLS listener.
    let stream = http
        .get(&gw.endpoint)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await?;
    assert_eq!(stream.status(), 200);
    let (_, mut events) = raw::follow(stream);
    let mut updated = None;
    for i in 0..15 {
        let call = raw::call(json!(10 + i), "notes__touch", json!({}));
        post(&http, &gw.endpoint, Some(&session), call).await?;
        let wait = raw::wait_for(&mut events, "update", |m| {
            m["method"] == "notifications/resources/updated"
        });
        if let Ok(Ok(u)) = tokio::time::timeout(Duration::from_secs(1), wait).await {
            updated = Some(u);
            break;
        }
    }
    let (_, updated) =
        updated.ok_or_else(|| anyhow::anyhow!("no update on the TLS stream\n{}", gw.logs()))?;
    assert_eq!(updated["params"]["uri"], "notes+note://1");

    // Client certificates required: none is refused at the handshake, ours gets in.
    gw.write_config(&yaml(&format!(", client_ca: {ca_file}")))?;
    eventually(
        Duration::from_secs(20),
        "a client without a certificate refused",
        || {
            let (ep, init) = (gw.endpoint.clone(), init.clone());
            // A new client each time: no connection made before the change is reused.
            let fresh = https_client(&ca, None);
            async move {
                post(&fresh.ok()?, &ep, None, init)
                    .await
                    .is_err()
                    .then_some(())
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    let with_cert = https_client(&ca, Some(&ca.client("trusted client")?))?;
    let r = post(&with_cert, &gw.endpoint, None, init).await?;
    assert_eq!(r.status(), 200);
    Ok(())
}

/// Issue 14, item 1: an `https://` upstream without a CA of its own (the README's GitHub
/// example) is checked against the system roots for real: the CA bundle the gateway takes
/// for "the system" (`tls.system_ca_file`, or `SSL_CERT_FILE`), pushed by SDS and pushed
/// again when the file changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_https_upstream_is_checked_against_the_system_bundle() -> anyhow::Result<()> {
    let public = Ca::new("a public CA")?;
    let other = Ca::new("another public CA")?;
    let up = TlsUpstream::start("public", &public.server(&["localhost"])?, None, true).await?;
    let dir = tempfile::tempdir()?;
    let bundle = dir.path().join("bundle.pem");
    // The "system" at first trusts another CA only.
    std::fs::write(&bundle, &other.pem)?;
    let yaml = |top: &str| {
        format!(
            "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n{top}upstreams:\n  - name: gh\n    url: https://localhost:{}/mcp\n",
            up.addr.port()
        )
    };
    let gw = Gateway::start(&yaml(&format!(
        "tls:\n  system_ca_file: {}\n",
        path(&bundle)
    )))
    .await?;
    let init = raw::post(
        &gw.endpoint,
        None,
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await?;
    let message = init.response()["error"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("gh") && message.to_ascii_lowercase().contains("tls"),
        "an upstream the system does not trust: {init:?}\n{}",
        gw.logs()
    );
    // The system learns the CA: the next session works, without a restart.
    std::fs::write(&bundle, format!("{}{}", other.pem, public.pem))?;
    let ep = gw.endpoint.clone();
    eventually(
        Duration::from_secs(30),
        "the new bundle to be trusted",
        || {
            let ep = ep.clone();
            async move {
                let client = connect(&ep).await.ok()?;
                let text = call_text(&client, "gh__whoami", json!({})).await.ok();
                let _ = client.cancel().await;
                (text.as_deref() == Some("public")).then_some(())
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?;
    assert_eq!(up.handshakes()[0].sni.as_deref(), Some("localhost"));
    drop(gw);

    // OpenSSL's SSL_CERT_FILE names the system's bundle too.
    let only_public = dir.path().join("system.pem");
    std::fs::write(&only_public, &public.pem)?;
    let gw = Gateway::start_with_env(&yaml(""), &[("SSL_CERT_FILE", &path(&only_public))]).await?;
    let client = connect(&gw.endpoint).await?;
    assert_eq!(
        call_text(&client, "gh__whoami", json!({}))
            .await
            .map_err(|e| anyhow::anyhow!("{e}\n{}", gw.logs()))?,
        "public"
    );
    Ok(())
}
