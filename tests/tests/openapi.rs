//! REST upstreams (OpenAPI): what `validate` reads from real documents — one FastAPI writes
//! for a real app (`tests/servers/rest_api.py`), and the specification's Petstore example
//! served over HTTP — and the clear refusals. (Serving the tools on the data path is not
//! built yet: `run` says so.)

use std::net::SocketAddr;
use std::process::Command;
use switchboard_e2e::{Gateway, repo_root, switchboard_bin};

fn validate(dir: &std::path::Path, yaml: &str) -> (bool, String) {
    let file = dir.join("gateway.yaml");
    std::fs::write(&file, yaml).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(switchboard_bin())
        .args(["validate", "-c"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
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
        "inventory: 4 tools from",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_says_that_rest_upstreams_are_not_served_yet() -> anyhow::Result<()> {
    let petstore = repo_root().join("xds-server/tests/openapi/petstore.yaml");
    let refused = Gateway::start(&format!(
        "server:\n  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0\nupstreams:\n  - name: pets\n    base_url: http://127.0.0.1:9\n    openapi: {{source: {}}}\n",
        petstore.display()
    ))
    .await;
    let Err(e) = refused else {
        anyhow::bail!("run served a REST upstream it cannot call");
    };
    assert!(
        format!("{e:#}").contains("does not serve them yet"),
        "{e:#}"
    );
    Ok(())
}
