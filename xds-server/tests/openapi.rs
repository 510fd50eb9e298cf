//! OpenAPI documents → tools, as golden snapshots (`INSTA_UPDATE=always cargo test -p
//! switchboard --test openapi` after an intended change, then read the diff): the
//! specification's Petstore 3.0 example, and a 3.1 document that exercises every rule.

use std::path::Path;
use switchboard::openapi::{self, OpenApiError};

fn tools_of(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/openapi")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let doc = openapi::parse(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let tools = openapi::tools::tools(&openapi::operations(&doc));
    serde_json::to_string_pretty(&tools).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_petstore_example() {
    insta::with_settings!({snapshot_path => "openapi/snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("petstore", tools_of("petstore.yaml"));
    });
}

#[test]
fn every_rule() {
    insta::with_settings!({snapshot_path => "openapi/snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("rules", tools_of("rules.yaml"));
    });
}

#[test]
fn other_documents_are_refused_with_the_reason() {
    let swagger = openapi::parse("swagger: '2.0'\ninfo: {title: t, version: '1'}\npaths: {}\n");
    assert!(matches!(swagger, Err(OpenApiError::Swagger(v)) if v == "2.0"));
    let v4 = openapi::parse("openapi: 4.0.0\n");
    assert!(matches!(v4, Err(OpenApiError::Version(_))));
    let broken = openapi::parse("openapi: 3.0.3\ninfo: {title: t}\npaths: {}\n");
    assert!(
        matches!(&broken, Err(OpenApiError::Invalid { message, .. }) if message.contains("version")),
        "{broken:?}"
    );
    assert!(matches!(openapi::parse("{"), Err(OpenApiError::Syntax(_))));
}
