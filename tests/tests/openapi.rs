//! REST upstreams (OpenAPI): what `validate` reads from real documents — one FastAPI writes
//! for a real app (`tests/servers/rest_api.py`), and the specification's Petstore example
//! served over HTTP — the clear refusals, and the tools served through Envoy to real clients
//! (rmcp, the official Python SDK, the TypeScript SDK through inspector-cli) beside an MCP
//! upstream, with access rules and the audit log.

use anyhow::Context;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use switchboard_e2e::peers::RmcpServer;
use switchboard_e2e::{
    Gateway, call_text, inspector, python_client, python_modern_client, repo_root, ts_modern_client,
};

fn validate(dir: &std::path::Path, yaml: &str) -> (bool, String) {
    switchboard_e2e::validate_in(dir, "gateway.yaml", yaml)
}

/// Serves `text` at `/openapi.yaml` on loopback.
async fn serve_document(text: String) -> anyhow::Result<SocketAddr> {
    let app = axum::Router::new().route(
        "/openapi.yaml",
        axum::routing::get(move || {
            let text = text.clone();
            async move { text }
        }),
    );
    switchboard_e2e::peers::serve_app(app).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_lists_the_tools_of_real_documents_from_a_file_and_a_url() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // FastAPI writes the document of a real app (OpenAPI 3.1).
    let out = Command::new(repo_root().join(".tools/venv/bin/python"))
        .arg(repo_root().join("tests/servers/rest_api.py"))
        .arg("--openapi")
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.path().join("inventory.json"), &out.stdout)?;
    // The Petstore 3.0 example, fetched over HTTP at load.
    let petstore =
        std::fs::read_to_string(repo_root().join("xds-server/tests/openapi/petstore.yaml"))?;
    let addr = serve_document(petstore).await?;
    let yaml = format!(
        "upstreams:\n  - name: inventory\n    base_url: http://127.0.0.1:9/api\n    openapi: {{source: inventory.json}}\n  - name: pets\n    type: openapi\n    tool_prefix: petstore\n    base_url: http://{addr}/v1\n    openapi:\n      source: http://{addr}/openapi.yaml\n"
    );
    let dir_path = dir.path().to_path_buf();
    let (ok, said) = tokio::task::spawn_blocking(move || validate(&dir_path, &yaml)).await?;
    assert!(ok, "{said}");
    for line in [
        "inventory: 6 tools from",
        "inventory__get_item  (GET /items/{item_id})",
        "inventory__list_items  (GET /items)",
        "inventory__create_item  (POST /items)",
        "inventory__delete_item  (DELETE /items/{item_id})",
        "pets: 3 tools from http://",
        "petstore__listPets  (GET /pets)",
        "petstore__createPets  (POST /pets)",
        "petstore__showPetById  (GET /pets/{petId})",
    ] {
        assert!(said.contains(line), "no {line:?} in\n{said}");
    }
    Ok(())
}

#[test]
fn documents_that_cannot_be_read_are_refused_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        dir.path().join("swagger.yaml"),
        "swagger: '2.0'\ninfo: {title: t, version: '1'}\npaths: {}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let head = "upstreams:\n  - name: api\n    base_url: http://127.0.0.1:9\n";
    let (ok, said) = validate(
        dir.path(),
        &format!("{head}    openapi: {{source: swagger.yaml}}\n"),
    );
    assert!(!ok);
    assert!(
        said.contains("gateway.yaml:4:")
            && said.contains("Swagger 2.0")
            && said.contains("OpenAPI 3.0 and 3.1"),
        "{said}"
    );
    let (ok, said) = validate(
        dir.path(),
        &format!("{head}    openapi: {{source: \"http://127.0.0.1:9/openapi.json\"}}\n"),
    );
    assert!(!ok);
    assert!(
        said.contains("upstreams[0].openapi.source: cannot fetch"),
        "{said}"
    );
    let (ok, said) = validate(
        dir.path(),
        &format!("{head}    url: http://127.0.0.1:9/mcp\n"),
    );
    assert!(!ok);
    assert!(said.contains("REST upstream"), "{said}");
}

/// The FastAPI app of `tests/servers/rest_api.py`, served by uvicorn on loopback.
struct RestApi {
    child: std::process::Child,
    addr: SocketAddr,
}

impl RestApi {
    fn start() -> anyhow::Result<RestApi> {
        use std::io::BufRead;
        let mut child = Command::new(repo_root().join(".tools/venv/bin/python"))
            .arg(repo_root().join("tests/servers/rest_api.py"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("the REST API (scripts/setup.sh installs fastapi)")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let port: u16 = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("the REST API said {line:?}"))?;
        Ok(RestApi {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }
}

impl Drop for RestApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const API_KEY: &str = "rest-upstream-test-key";

/// A gateway with the FastAPI app as REST upstream `inventory` (document fetched from the
/// app at load, a configured token) beside the MCP upstream `alpha`; the client `ci` may not
/// list items.
fn gateway_yaml(api: &RestApi, alpha: &RmcpServer) -> String {
    format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\naudit: {{stdout: true}}\nauth:\n  clients:\n    - name: ci\n      api_key: {{header: x-api-key, keys: [\"{API_KEY}\"]}}\n  rules:\n    - clients: [ci]\n      allow: {{upstreams: [\"*\"]}}\n      deny: {{tools: [inventory__list_items]}}\nupstreams:\n  - name: inventory\n    base_url: http://{addr}\n    openapi:\n      source: http://{addr}/openapi.json\n    headers: {{Authorization: \"Bearer upstream-token\"}}\n  - name: alpha\n    url: {alpha}\n",
        addr = api.addr,
        alpha = alpha.url()
    )
}

/// The REST upstream beside `alpha`, no clients or rules; `server` adds lines to `server:`.
fn plain_yaml(api: &RestApi, alpha: &RmcpServer, server: &str) -> String {
    format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\n{server}upstreams:\n  - name: inventory\n    base_url: http://{addr}\n    openapi: {{source: \"http://{addr}/openapi.json\"}}\n  - name: alpha\n    url: {alpha}\n",
        addr = api.addr,
        alpha = alpha.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_tools_are_served_beside_an_mcp_upstream_to_every_client() -> anyhow::Result<()> {
    let api = RestApi::start()?;
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&gateway_yaml(&api, &alpha)).await?;
    let http = reqwest::Client::builder()
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::HeaderName::from_static("x-api-key"),
            reqwest::header::HeaderValue::from_static(API_KEY),
        )]))
        .build()?;
    let transport = rmcp::transport::StreamableHttpClientTransport::with_client(
        http,
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            gw.endpoint.clone(),
        ),
    );
    let client = rmcp::ServiceExt::serve(rmcp::model::ClientConfig::default(), transport).await?;

    // One list: the REST operations (from configuration) and the MCP upstream's tools.
    let tools = client.list_all_tools().await?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for want in [
        "inventory__get_item",
        "inventory__delete_item",
        "inventory__create_item",
        "inventory__whoami",
        "inventory__item_label",
        "alpha__add",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    // The rule hides what it denies.
    assert!(!names.contains(&"inventory__list_items"), "{names:?}");
    let get_item = tools
        .iter()
        .find(|t| t.name == "inventory__get_item")
        .context("get_item")?;
    assert_eq!(get_item.input_schema["required"], json!(["item_id"]));
    assert!(
        get_item.output_schema.is_some(),
        "an object answer has an output schema"
    );

    let call = |name: &'static str, args: Value| {
        let client = &client;
        async move {
            let args = args.as_object().cloned().unwrap_or_default();
            client
                .call_tool(rmcp::model::CallToolRequestParams::new(name).with_arguments(args))
                .await
        }
    };
    // 200 with JSON: structured content and text.
    let got = call("inventory__get_item", json!({"item_id": 1})).await?;
    assert_ne!(got.is_error, Some(true), "{got:?}");
    let structured = got
        .structured_content
        .clone()
        .context("structured content")?;
    assert_eq!(structured["name"], "hammer", "{structured}");
    // 201: the body's fields are arguments beside the parameters.
    let made = call(
        "inventory__create_item",
        json!({"name": "saw", "price": 12.0, "tags": ["tools", "wood"]}),
    )
    .await?;
    let made = made.structured_content.context("the created item")?;
    assert_eq!(made["name"], "saw");
    let id = made["id"].as_i64().context("an id")?;
    // Query and header parameters, and the configured token (never the client's key).
    let who = call(
        "inventory__whoami",
        json!({"verbose": true, "x-request-id": "r-42"}),
    )
    .await?
    .structured_content
    .context("whoami")?;
    assert_eq!(
        who,
        json!({"request_id": "r-42", "verbose": true, "authorization": "Bearer upstream-token"})
    );
    // 404: a tool error with the API's message, not a protocol error.
    let missing = call("inventory__get_item", json!({"item_id": 99})).await?;
    assert_eq!(missing.is_error, Some(true));
    let text = serde_json::to_value(&missing.content)?;
    assert!(
        text[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("HTTP 404") && t.contains("item 99 not found")),
        "{text}"
    );
    // Binary answers come as an embedded resource.
    let label = serde_json::to_value(
        call("inventory__item_label", json!({"item_id": 7}))
            .await?
            .content,
    )?;
    assert_eq!(label[0]["type"], "resource", "{label}");
    assert_eq!(label[0]["resource"]["mimeType"], "image/png", "{label}");
    // A missing required argument: the client's mistake, said before any request.
    let e = call("inventory__get_item", json!({}))
        .await
        .expect_err("no item_id");
    assert!(format!("{e}").contains("item_id"), "{e}");
    // 204: done, nothing to say; the item is gone after it.
    let deleted = call("inventory__delete_item", json!({"item_id": id})).await?;
    assert_ne!(deleted.is_error, Some(true), "{deleted:?}");
    let text = serde_json::to_value(&deleted.content)?;
    assert_eq!(text[0]["text"], "HTTP 204: no content", "{text}");
    let again = call("inventory__get_item", json!({"item_id": id})).await?;
    assert_eq!(again.is_error, Some(true), "{again:?}");
    // Access rules apply to REST tools: `ci` may not list items.
    let e = call("inventory__list_items", json!({}))
        .await
        .expect_err("denied");
    assert!(format!("{e}").contains("Access denied"), "{e}");
    // And the MCP upstream is still there.
    assert_eq!(
        call_text(&client, "alpha__add", json!({"a": 40, "b": 2})).await?,
        "42"
    );
    client.cancel().await?;

    // The audit log names the REST tool and its upstream.
    switchboard_e2e::eventually(std::time::Duration::from_secs(10), "audit lines", || {
        let found = gw.logs().lines().any(|l| {
            l.contains("\"name\":\"inventory__get_item\"")
                && l.contains("\"upstream\":\"inventory\"")
        });
        async move { found.then_some(()) }
    })
    .await
    .with_context(|| gw.logs())?;

    // The official Python SDK client (which checks structured content against the output
    // schema) and the TypeScript SDK through inspector-cli (which checks the schemas).
    let url = gw.endpoint.clone();
    let plan = json!({
        "headers": {"x-api-key": API_KEY},
        "calls": [
            {"name": "inventory__get_item", "args": {"item_id": 1}},
            {"name": "inventory__whoami", "args": {"x-request-id": "py"}},
            {"name": "alpha__add", "args": {"a": 1, "b": 2}},
        ],
    });
    let (python, listed, called) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let header = format!("x-api-key: {API_KEY}");
        Ok((
            python_client(&url, &plan)?,
            inspector(&url, &["--header", &header, "--method", "tools/list"])?,
            inspector(
                &url,
                &[
                    "--header",
                    &header,
                    "--method",
                    "tools/call",
                    "--tool-name",
                    "inventory__get_item",
                    "--tool-arg",
                    "item_id=1",
                ],
            )?,
        ))
    })
    .await?
    .with_context(|| gw.logs())?;
    assert_eq!(python["calls"][0]["is_error"], false, "{python}");
    assert!(
        python["calls"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("hammer")),
        "{python}"
    );
    assert!(
        python["calls"][1]["text"]
            .as_str()
            .is_some_and(|t| t.contains("\"py\"")),
        "{python}"
    );
    assert_eq!(python["calls"][2]["text"], "3", "{python}");
    let listed_names: Vec<&str> = listed["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(listed_names.contains(&"inventory__create_item"), "{listed}");
    assert!(!listed_names.contains(&"inventory__list_items"), "{listed}");
    assert_eq!(called["structuredContent"]["name"], "hammer", "{called}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_the_2026_07_28_revision_call_rest_tools_too() -> anyhow::Result<()> {
    let api = RestApi::start()?;
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&plain_yaml(&api, &alpha, "  stateless_clients: true\n")).await?;
    let calls = json!([
        {"name": "inventory__get_item", "args": {"item_id": 1}},
        {"name": "alpha__add", "args": {"a": 40, "b": 2}},
    ]);
    for mode in ["2026-07-28", "auto"] {
        let (url, c) = (gw.endpoint.clone(), calls.clone());
        let python =
            tokio::task::spawn_blocking(move || python_modern_client(&url, mode, &c)).await??;
        let (url, c) = (gw.endpoint.clone(), calls.clone());
        let ts = tokio::task::spawn_blocking(move || ts_modern_client(&url, mode, &c)).await??;
        for (who, seen) in [("python", &python), ("typescript", &ts)] {
            assert!(
                seen.get("error").is_none(),
                "{who} {mode}: {seen}\n{}",
                gw.logs()
            );
            assert!(
                seen["calls"][0]["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("hammer")),
                "{who} {mode}: {seen}"
            );
            assert_eq!(seen["calls"][1]["text"], "42", "{who} {mode}: {seen}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_url_that_stops_answering_keeps_the_last_document() -> anyhow::Result<()> {
    let api = RestApi::start()?;
    let yaml = format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: inventory\n    base_url: http://{addr}\n    openapi: {{source: \"http://{addr}/openapi.json\"}}\n    timeout: 2s\n",
        addr = api.addr
    );
    let gw = Gateway::start(&yaml).await?;
    drop(api);
    // A reload (an edit of the file) fetches again, fails, and keeps what it had.
    gw.write_config(&format!("{yaml}# edited\n"))?;
    switchboard_e2e::eventually(std::time::Duration::from_secs(20), "the warning", || {
        let seen = gw.logs().contains("keeping the last one fetched");
        async move { seen.then_some(()) }
    })
    .await
    .with_context(|| gw.logs())?;
    let client = switchboard_e2e::connect(&gw.endpoint).await?;
    let tools = client.list_all_tools().await?;
    assert!(
        tools.iter().any(|t| t.name == "inventory__get_item"),
        "{tools:?}"
    );
    // The API is gone: a call says so, naming the upstream.
    let e = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("inventory__get_item").with_arguments(
                json!({"item_id": 1})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await
        .expect_err("the API is down");
    assert!(format!("{e}").contains("inventory"), "{e}");
    client.cancel().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_upstream_has_its_own_endpoint_too() -> anyhow::Result<()> {
    let api = RestApi::start()?;
    let alpha = RmcpServer::start("alpha").await?;
    let gw = Gateway::start(&plain_yaml(&api, &alpha, "")).await?;
    // `/upstreams/inventory/mcp`: that upstream alone, its tools unprefixed.
    let own = format!("{}/upstreams/inventory/mcp", gw.base());
    let client = switchboard_e2e::connect(&own).await?;
    let tools = client.list_all_tools().await?;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(
        names.contains(&"get_item") && !names.iter().any(|n| n.contains("__")),
        "{names:?}"
    );
    let text = call_text(&client, "get_item", json!({"item_id": 1})).await?;
    assert!(text.contains("hammer"), "{text}");
    // A GET (the 2025 event stream) in a session there: a REST API sends no events.
    let session = switchboard_e2e::raw::initialize(&own).await?;
    let r = reqwest::Client::new()
        .get(&own)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .send()
        .await?;
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await?;
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("REST API")),
        "{body}"
    );
    client.cancel().await?;
    Ok(())
}
