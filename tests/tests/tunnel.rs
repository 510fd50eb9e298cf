//! Host-routed proxy mode: the tunnel proxy's own file, as it is, run by `switchboard run`
//! through a real Envoy. TLS with a certificate from `switchboard certs init`, clients that
//! reach the listener by name (`resolve`, SNI), real MCP servers behind two routes, a real
//! DNS server on loopback whose answers the SSRF test changes.

use anyhow::Context;
use rmcp::ServiceExt;
use rmcp::model::ClientConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{Gateway, call_text, eventually, repo_root, switchboard_bin};

const DOMAIN: &str = "tunnel.test";

/// `switchboard certs init` for the tunnel domain, into `dir/certs`.
fn certs(dir: &Path) -> PathBuf {
    let out = dir.join("certs");
    let status = Command::new(switchboard_bin())
        .args(["certs", "init", "--domain", DOMAIN, "--output"])
        .arg(format!("dir:{}", out.display()))
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(status.success(), "certs init failed");
    out
}

/// The seed's file: a bare subdomain and a full hostname, each to its own server.
fn seed_file(certs: &Path, routes: &[(&str, String)], allowed: &str) -> String {
    let mut yaml = format!(
        "listen_addr: 127.0.0.1:0\nlog_level: info\nshutdown_timeout: 5s\ntunnel_domain: {DOMAIN}\ntls:\n  cert_file: {}\n  key_file: {}\nroutes:\n",
        certs.join("tls.crt").display(),
        certs.join("tls.key").display()
    );
    for (key, url) in routes {
        yaml.push_str(&format!("  {key}: {url}\n"));
    }
    yaml.push_str(&format!("upstream:\n  allowed_ips: [{allowed}]\n"));
    yaml
}

/// A client that reaches the gateway's listener under each of `names` (as DNS would send
/// it there) and trusts the tunnel CA only.
fn client_for(gw: &Gateway, certs: &Path, names: &[&str]) -> anyhow::Result<reqwest::Client> {
    let listener: SocketAddr = gw
        .base()
        .trim_start_matches("https://")
        .parse()
        .context("the listener's address")?;
    let ca = std::fs::read(certs.join("ca.crt"))?;
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca)?])
        .tls_info(true);
    for n in names {
        b = b.resolve(n, listener);
    }
    Ok(b.build()?)
}

fn url(gw: &Gateway, host: &str, path: &str) -> String {
    let port = gw.base().rsplit(':').next().unwrap_or_default().to_string();
    format!("https://{host}:{port}{path}")
}

async fn mcp_client(http: reqwest::Client, url: String) -> anyhow::Result<switchboard_e2e::Client> {
    let transport = StreamableHttpClientTransport::with_client(
        http,
        StreamableHttpClientTransportConfig::with_uri(url),
    );
    Ok(ClientConfig::default().serve(transport).await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_file_routes_hostnames_to_their_servers_over_tls() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = certs(dir.path());
    let wiki = RmcpServer::start("wiki").await?;
    let docs = RmcpServer::start("docs").await?;
    let yaml = seed_file(
        &certs,
        &[
            ("wiki", format!("http://{}", wiki.addr)),
            (DOMAIN, format!("http://{}", docs.addr)),
        ],
        "127.0.0.1/32",
    );
    let gw = Gateway::start(&yaml).await?;
    let wiki_host = format!("wiki.{DOMAIN}");
    let http = client_for(&gw, &certs, &[&wiki_host, DOMAIN, "nope.tunnel.test"])?;

    // A real MCP client on each name reaches that name's server, unprefixed: the gateway
    // passes the session through, it does not aggregate.
    for (host, label) in [(wiki_host.as_str(), "wiki"), (DOMAIN, "docs")] {
        let client = mcp_client(http.clone(), url(&gw, host, "/mcp")).await?;
        let tools = client.list_all_tools().await?;
        assert!(
            tools.iter().any(|t| t.name == "whoami"),
            "{host}: {tools:?}"
        );
        assert_eq!(
            call_text(&client, "whoami", json!({})).await?,
            label,
            "{host}"
        );
        assert_eq!(
            call_text(&client, "add", json!({"a": 2, "b": 3})).await?,
            "5"
        );
        client.cancel().await?;
    }
    let wiki_hosts: Vec<String> = wiki
        .headers
        .lock()
        .unwrap()
        .iter()
        .filter_map(|h| h.get("host")?.to_str().ok().map(str::to_string))
        .collect();
    assert!(
        wiki_hosts.iter().all(|h| *h == wiki.addr.to_string()),
        "the upstream gets its own Host: {wiki_hosts:?}"
    );
    let forwarded = wiki
        .headers
        .lock()
        .unwrap()
        .iter()
        .filter_map(|h| h.get("x-forwarded-host")?.to_str().ok().map(str::to_string))
        .next();
    assert!(
        forwarded.is_some_and(|f| f.starts_with(&wiki_host)),
        "the client's Host goes in x-forwarded-host"
    );

    // An unknown name under the domain: Envoy's 404, as JSON-RPC.
    let r = http
        .post(url(&gw, "nope.tunnel.test", "/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await?;
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await?;
    assert_eq!(body["error"]["code"], -32600, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("No MCP server is routed at this hostname")),
        "{body}"
    );
    // A name outside the domain (the certificate still matches the SNI): refused the same.
    let r = http
        .get(url(&gw, "nope.tunnel.test", "/mcp"))
        .header("host", "elsewhere.example")
        .send()
        .await?;
    assert_eq!(r.status(), 404);

    // The audit log names the route; Envoy's stats count the route's cluster.
    eventually(Duration::from_secs(10), "audit lines for host:wiki", || {
        let found = gw.logs().contains("\"upstream\":\"host:wiki\"");
        async move { found.then_some(()) }
    })
    .await
    .with_context(|| gw.logs())?;
    assert!(
        gw.stat("cluster.host-wiki.upstream_rq_completed")
            .await
            .unwrap_or(0)
            > 0
    );
    Ok(())
}

/// A plain HTTP server that answers every request with what it received (method, raw path
/// and query, `Host`, body), and streams `/events` one event at a time: the second only
/// after the test has seen the first.
struct Echo {
    addr: SocketAddr,
    release: Arc<tokio::sync::Notify>,
}

async fn echo_server() -> anyhow::Result<Echo> {
    use axum::body::Bytes;
    use axum::extract::OriginalUri;
    use axum::http::{HeaderMap, Method};
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let app = axum::Router::new()
        .route(
            "/events",
            axum::routing::get(move || {
                let gate = gate.clone();
                async move {
                    let stream = async_stream(gate);
                    axum::response::Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(axum::body::Body::from_stream(stream))
                        .unwrap_or_default()
                }
            }),
        )
        .fallback(
            |method: Method, uri: OriginalUri, headers: HeaderMap, body: Bytes| async move {
                axum::Json(json!({
                    "method": method.as_str(),
                    "uri": uri.0.to_string(),
                    "host": headers.get("host").and_then(|h| h.to_str().ok()),
                    "body": String::from_utf8_lossy(&body),
                }))
            },
        );
    let addr = switchboard_e2e::peers::serve_app(app).await?;
    Ok(Echo { addr, release })
}

fn async_stream(
    gate: Arc<tokio::sync::Notify>,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> {
    futures::stream::unfold(0u8, move |n| {
        let gate = gate.clone();
        async move {
            match n {
                0 => Some((Ok("id: 1\ndata: first\n\n".to_string()), 1)),
                1 => {
                    // Bounded: a gateway that buffered would never let the test release it.
                    let _ = tokio::time::timeout(Duration::from_secs(20), gate.notified()).await;
                    Some((Ok("id: 2\ndata: second\n\n".to_string()), 2))
                }
                _ => None,
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_upstream_byte_for_byte_and_streams_flow() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = certs(dir.path());
    let echo = echo_server().await?;
    let yaml = seed_file(
        &certs,
        &[("raw", format!("http://{}", echo.addr))],
        "127.0.0.1",
    );
    let gw = Gateway::start(&yaml).await?;
    let host = format!("raw.{DOMAIN}");
    let http = client_for(&gw, &certs, &[&host])?;

    // Path and query exactly as sent: encoded slashes, a double slash, an empty value.
    let raw = "/a%2Fb//c/?q=%20x&empty=&k=v%26w";
    let body =
        "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}  ";
    let r = http
        .post(url(&gw, &host, raw))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let seen: Value = r.json().await?;
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["uri"], raw, "{seen}");
    assert_eq!(seen["body"], body, "{seen}");
    assert_eq!(seen["host"], echo.addr.to_string(), "{seen}");

    // An event stream arrives event by event: the first before the server sends the second.
    let mut stream = http
        .get(url(&gw, &host, "/events"))
        .header("accept", "text/event-stream")
        .send()
        .await?;
    assert_eq!(stream.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
        .await
        .context("the first event did not arrive before the second was sent")??
        .unwrap_or_default();
    assert_eq!(String::from_utf8_lossy(&first), "id: 1\ndata: first\n\n");
    echo.release.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), stream.chunk()).await?? {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(String::from_utf8_lossy(&rest), "id: 2\ndata: second\n\n");
    Ok(())
}

fn validate(yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    switchboard_e2e::validate_in(dir.path(), "tunnel.yaml", yaml)
}

#[test]
fn a_path_upstream_or_a_forbidden_address_is_refused_at_load() {
    let head = "listen_addr: 127.0.0.1:8443\ntls:\n  cert_file: c.pem\n  key_file: k.pem\nroutes:\n  ok: http://10.0.0.1:80\n";
    let (ok, out) = validate(&format!("{head}  wiki: http://10.0.0.2:8080/mcp\n"));
    assert!(!ok, "{out}");
    assert!(
        out.contains("tunnel.yaml:7:")
            && out.contains("invalid upstream (must be scheme://host:port)"),
        "{out}"
    );
    let (ok, out) = validate(&format!("{head}  meta: http://169.254.169.254:80\n"));
    assert!(!ok, "{out}");
    assert!(
        out.contains("tunnel.yaml:7:") && out.contains("outside upstream.allowed_ips"),
        "{out}"
    );
    let (ok, out) = validate(&format!("{head}  secure: https://10.0.0.3:443\n"));
    assert!(!ok, "{out}");
    assert!(out.contains("upstream.tls.ca_file"), "{out}");
    let (ok, out) = validate(&format!(
        "{head}upstream:\n  allowed_ips: [10.0.0.0/8]\n  disable_ip_validation: true\n"
    ));
    assert!(!ok, "{out}");
    assert!(out.contains("not both"), "{out}");
}

/// The DNS server of `tests/servers/dns_server.py`, answering from `answers`.
struct Dns {
    child: std::process::Child,
    port: u16,
    answers: PathBuf,
}

impl Dns {
    fn start(dir: &Path) -> anyhow::Result<Dns> {
        use std::io::BufRead;
        let answers = dir.join("answers.json");
        std::fs::write(&answers, "{}")?;
        let mut child = Command::new(repo_root().join(".tools/venv/bin/python"))
            .arg(repo_root().join("tests/servers/dns_server.py"))
            .arg(&answers)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("the DNS server (scripts/setup.sh installs dnslib)")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("the DNS server said {line:?}"))?;
        Ok(Dns {
            child,
            port,
            answers,
        })
    }

    fn answer(&self, name: &str, ip: &str) -> anyhow::Result<()> {
        let tmp = self.answers.with_extension("tmp");
        std::fs::write(&tmp, json!({ format!("{name}."): [ip] }).to_string())?;
        std::fs::rename(&tmp, &self.answers)?;
        Ok(())
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Counts the connections made to an address where nothing may connect.
async fn trap(addr: SocketAddr) -> anyhow::Result<Arc<AtomicUsize>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((_socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    Ok(count)
}

async fn whoami(http: &reqwest::Client, url: String) -> anyhow::Result<String> {
    let client = mcp_client(http.clone(), url).await?;
    let out = call_text(&client, "whoami", json!({})).await;
    client.cancel().await?;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_resolves_outside_the_allowed_ips_is_never_connected_to() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let certs = certs(dir.path());
    let dns = Dns::start(dir.path())?;
    let name = "svc.internal.test";
    let inside = RmcpServer::start_named("inside", name).await?;
    let port = inside.addr.port();
    // The same port on another loopback address, outside the allowed list.
    let connections = trap(SocketAddr::from(([127, 0, 0, 2], port))).await?;
    dns.answer(name, "127.0.0.1")?;
    let yaml = seed_file(
        &certs,
        &[("svc", format!("http://{name}:{port}"))],
        "127.0.0.1/32",
    );
    let gw = Gateway::start_with_env(
        &yaml,
        &[(
            "SWITCHBOARD_DNS_SERVERS",
            &format!("127.0.0.1:{}", dns.port),
        )],
    )
    .await?;
    let host = format!("svc.{DOMAIN}");
    let http = client_for(&gw, &certs, &[&host])?;
    let endpoint = url(&gw, &host, "/mcp");
    assert_eq!(
        whoami(&http, endpoint.clone())
            .await
            .with_context(|| gw.logs())?,
        "inside"
    );

    // DNS now sends the name outside the list: the gateway stops connecting anywhere.
    dns.answer(name, "127.0.0.2")?;
    eventually(Duration::from_secs(20), "the refusal in the log", || {
        let seen = gw.logs().contains(&format!(
            "{name} resolves to 127.0.0.2, outside upstream.allowed_ips"
        ));
        async move { seen.then_some(()) }
    })
    .await
    .with_context(|| gw.logs())?;
    let refused = eventually(
        Duration::from_secs(20),
        "a refusal naming the route",
        || {
            let http = http.clone();
            let endpoint = endpoint.clone();
            async move {
                let r = http
                    .post(&endpoint)
                    .header("accept", "application/json, text/event-stream")
                    .json(
                        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "t", "version": "1"}}}),
                    )
                    .send()
                    .await
                    .ok()?;
                let status = r.status().as_u16();
                let body: Value = r.json().await.ok()?;
                (status == 502).then_some(body)
            }
        },
    )
    .await
    .with_context(|| gw.logs())?;
    assert_eq!(refused["error"]["code"], -32002, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("Host route \"svc\"") && message.contains("allowed_ips"),
        "{refused}"
    );
    // More attempts, new connections: none reaches the forbidden address.
    for _ in 0..3 {
        assert!(whoami(&http, endpoint.clone()).await.is_err());
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the gateway connected to an address outside allowed_ips"
    );

    // Back inside: served again, without a restart.
    dns.answer(name, "127.0.0.1")?;
    let back = eventually(Duration::from_secs(20), "the route to serve again", || {
        let http = http.clone();
        let endpoint = endpoint.clone();
        async move { whoami(&http, endpoint).await.ok() }
    })
    .await
    .with_context(|| gw.logs())?;
    assert_eq!(back, "inside");
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    Ok(())
}

/// The server certificate Envoy presents to a new connection.
async fn presented_certificate(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let r = http.get(url).send().await?;
    let info = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .context("no TLS info")?;
    info.peer_certificate()
        .map(<[u8]>::to_vec)
        .context("no peer certificate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_failed_call() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = certs(dir.path());
    let wiki = RmcpServer::start("wiki").await?;
    let yaml = seed_file(
        &certs,
        &[("wiki", format!("http://{}", wiki.addr))],
        "127.0.0.1",
    );
    let gw = Gateway::start(&yaml).await?;
    let host = format!("wiki.{DOMAIN}");
    let endpoint = url(&gw, &host, "/mcp");
    // A new client per call: a new TLS handshake each time.
    let fresh = || client_for(&gw, &certs, &[&host]);
    let before = presented_certificate(&fresh()?, &endpoint).await?;

    // Calls before, during and after the renewal: the loop ends 10 calls after Envoy
    // presents the new certificate, or after 200 calls (then the test fails).
    let mut failures = Vec::new();
    let mut renewed = false;
    let mut rotated_at = None;
    let mut calls = 0;
    while calls < 200 && rotated_at.is_none_or(|at| calls < at + 10) {
        if calls == 10 {
            // Forced: more than --renew-before remains otherwise.
            let out = Command::new(switchboard_bin())
                .args([
                    "certs",
                    "renew-cert",
                    "--renew-before",
                    "100000h",
                    "--output",
                ])
                .arg(format!("dir:{}", certs.display()))
                .output()?;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            renewed = true;
        }
        match whoami(&fresh()?, endpoint.clone()).await {
            Ok(label) if label == "wiki" => {}
            Ok(other) => failures.push(format!("call {calls}: {other}")),
            Err(e) => failures.push(format!("call {calls}: {e:#}")),
        }
        if renewed
            && rotated_at.is_none()
            && presented_certificate(&fresh()?, &endpoint).await? != before
        {
            rotated_at = Some(calls);
        }
        calls += 1;
    }
    assert!(failures.is_empty(), "{failures:#?}\n{}", gw.logs());
    assert!(
        rotated_at.is_some(),
        "Envoy still serves the old certificate after {calls} calls\n{}",
        gw.logs()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_routes_beside_the_aggregated_endpoint_check_clients_and_keep_their_keys()
-> anyhow::Result<()> {
    let wiki = RmcpServer::start("wiki").await?;
    let docs = RmcpServer::start("docs").await?;
    let agg = RmcpServer::start("agg").await?;
    let key = "host-route-test-api-key";
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\naudit: {{stdout: true}}\nauth:\n  clients:\n    - name: ci\n      api_key: {{header: x-api-key, keys: [\"{key}\"]}}\n  rules:\n    - clients: [ci]\n      allow: {{upstreams: [agg], hosts: [wiki]}}\nhosts:\n  tunnel_domain: {DOMAIN}\n  routes:\n    wiki: http://127.0.0.1:{}\n    docs: http://127.0.0.1:{}\n  upstream:\n    allowed_ips: [127.0.0.0/8]\nupstreams:\n  - name: agg\n    url: http://{}/mcp\n",
        wiki.addr.port(),
        docs.addr.port(),
        agg.addr
    );
    let gw = Gateway::start(&yaml).await?;
    let listener: SocketAddr = gw.base().trim_start_matches("http://").parse()?;
    let port = listener.port();
    let http = reqwest::Client::builder()
        .no_proxy()
        .resolve(&format!("wiki.{DOMAIN}"), listener)
        .resolve(&format!("docs.{DOMAIN}"), listener)
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::HeaderName::from_static("x-api-key"),
            reqwest::header::HeaderValue::from_static("host-route-test-api-key"),
        )]))
        .build()?;
    let wiki_url = format!("http://wiki.{DOMAIN}:{port}/mcp");

    // The client's rule allows the route: served, and the key the gateway took stays here.
    assert_eq!(whoami(&http, wiki_url.clone()).await?, "wiki");
    let keys_upstream = wiki
        .headers
        .lock()
        .unwrap()
        .iter()
        .filter(|h| h.contains_key("x-api-key"))
        .count();
    assert_eq!(
        keys_upstream, 0,
        "the gateway's API key reached the host route"
    );
    // The same client on another route its rule does not list: 403, never connected.
    let r = http
        .post(format!("http://docs.{DOMAIN}:{port}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await?;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("host route \"docs\"")),
        "{body}"
    );
    assert_eq!(docs.requests.load(Ordering::SeqCst), 0);
    // Without the key: 401 on the route too.
    let anonymous = reqwest::Client::builder()
        .no_proxy()
        .resolve(&format!("wiki.{DOMAIN}"), listener)
        .build()?;
    let r = anonymous
        .post(&wiki_url)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await?;
    assert_eq!(r.status(), 401);

    // The aggregated endpoint still serves on the gateway's own name, prefixed.
    let agg_client = mcp_client(http.clone(), gw.endpoint.clone()).await?;
    assert_eq!(
        call_text(&agg_client, "agg__whoami", json!({})).await?,
        "agg"
    );
    agg_client.cancel().await?;

    // Per-route counters: the calls of the route, the refusal on the other as a client error
    // (labels on the native shell, one stat per series on wasm).
    let calls =
        switchboard_e2e::filter_stat("switchboard.upstream_requests_total.upstream.host_wiki");
    let refused = switchboard_e2e::filter_stat(
        "switchboard.upstream_errors_total.upstream.host_docs.class.client",
    );
    assert!(gw.stat(&calls).await.unwrap_or(0) >= 2, "{calls}");
    assert_eq!(gw.stat(&refused).await, Some(1), "{refused}");

    // Audit lines name the route and the client.
    eventually(
        Duration::from_secs(10),
        "an audit line for host:wiki",
        || {
            let found = gw.logs().lines().any(|l| {
                l.contains("\"upstream\":\"host:wiki\"") && l.contains("\"identity\":\"ci\"")
            });
            async move { found.then_some(()) }
        },
    )
    .await
    .with_context(|| gw.logs())?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_and_shutdown_timeout_drive_the_logs_and_the_drain() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = certs(dir.path());
    let file = dir.path().join("tunnel.yaml");
    let yaml = seed_file(
        &certs,
        &[("wiki", "http://10.0.0.5:8080".into())],
        "10.0.0.0/8",
    )
    .replace("log_level: info", "log_level: warn")
    .replace("shutdown_timeout: 5s", "shutdown_timeout: 3s");
    std::fs::write(&file, yaml)?;
    let envoy = switchboard_e2e::envoy_bin().display().to_string();
    let mut args = vec![
        "run",
        "-c",
        file.to_str().context("path")?,
        "--envoy",
        &envoy,
    ];
    let modules = switchboard_e2e::module_args();
    args.extend(modules.iter().map(String::as_str));
    let mut run = switchboard_e2e::Background::spawn(&args)?;
    // The harness sets SWITCHBOARD_LOG=info: the file's level applies only without it, so
    // judge Envoy's level, which nothing else sets: at `warning` its startup `info` lines
    // (`initializing epoch`) are not printed.
    run.line("MCP endpoint: ").await?;
    switchboard_e2e::signal(run.pid(), nix::sys::signal::Signal::SIGTERM);
    assert!(
        run.exits_within(Duration::from_secs(20)).await,
        "run did not stop"
    );
    let log = run.stderr.text();
    assert!(log.contains("draining envoy (up to 3s)"), "{log}");
    assert!(
        !log.contains("initializing epoch"),
        "Envoy logged at info:\n{log}"
    );
    Ok(())
}
