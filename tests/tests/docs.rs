//! The examples of the README and `docs/` run, as written, so the docs cannot drift from the
//! product: every gateway YAML example validates, the quick start's curl commands work
//! against the embedded default (`examples/default.yaml`), and the environment-variable,
//! desktop-file and bootstrap examples do what the text next to them says.

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use switchboard_e2e::peers::Everything;
use switchboard_e2e::{Gateway, output_within, repo_root, switchboard_bin};

/// The fenced blocks of one language in a markdown file, with their line numbers.
fn blocks(file: &Path, language: &str) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut out = Vec::new();
    let mut open: Option<(usize, String, usize)> = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None if trimmed == format!("```{language}") => {
                open = Some((n + 1, String::new(), line.len() - trimmed.len()));
            }
            Some((start, body, indent)) => {
                if trimmed == "```" {
                    out.push((*start, std::mem::take(body)));
                    open = None;
                } else {
                    body.push_str(line.get(*indent..).unwrap_or(line.trim_start()));
                    body.push('\n');
                }
            }
            None => {}
        }
    }
    out
}

fn docs() -> Vec<std::path::PathBuf> {
    let root = repo_root();
    let mut files = vec![root.join("README.md")];
    let mut more: Vec<_> = std::fs::read_dir(root.join("docs"))
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    more.sort();
    files.extend(
        more.into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "md")),
    );
    files
}

/// Files an example names (`/etc/switchboard/gw.key`), made for real in `dir`: a certificate
/// and its key (so a pair matches), a JWKS.
fn materialize(block: &str, dir: &Path) -> String {
    let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let cert = rcgen::CertificateParams::new(vec!["example.internal".to_string()])
        .and_then(|p| p.self_signed(&key))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = block.to_string();
    let paths: std::collections::BTreeSet<String> = block
        .split(|c: char| c.is_whitespace() || c == ',' || c == '}' || c == '{')
        .filter(|w| w.starts_with('/'))
        .filter(|w| {
            [".pem", ".crt", ".key", ".json"]
                .iter()
                .any(|e| w.ends_with(e))
        })
        .map(str::to_string)
        .collect();
    for (i, path) in paths.iter().enumerate() {
        let name = Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let made = dir.join(format!("{i}-{name}"));
        let content = if path.ends_with(".json") {
            r#"{"keys":[{"kty":"oct","alg":"HS256","kid":"k1","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTAxMjM"}]}"#.to_string()
        } else if path.ends_with(".key") {
            key.serialize_pem()
        } else {
            cert.pem()
        };
        std::fs::write(&made, content).unwrap_or_else(|e| panic!("{e}"));
        out = out.replace(path.as_str(), &made.display().to_string());
    }
    out
}

/// Every `${VAR}` of `text`, set to a value long enough for any field that has a minimum.
fn variables(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let name: String = rest[at + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push((name, "an-example-value-0123456789".to_string()));
        }
        rest = &rest[at + 2..];
    }
    out
}

fn validate(file: &Path, env: &[(String, String)]) -> std::process::Output {
    let mut cmd = Command::new(switchboard_bin());
    cmd.arg("validate")
        .arg("-c")
        .arg(file)
        .envs(env.iter().cloned());
    output_within(cmd, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_gateway_yaml_example_in_the_docs_validates() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut checked = 0;
    for doc in docs() {
        for (line, block) in blocks(&doc, "yaml") {
            let text = materialize(&block, dir.path());
            let file = dir.path().join("example.yaml");
            std::fs::write(&file, &text).unwrap_or_else(|e| panic!("{e}"));
            let out = validate(&file, &variables(&text));
            assert!(
                out.status.success(),
                "{}:{line}: the example does not validate: {}\n{text}",
                doc.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 8, "only {checked} YAML examples found");
}

#[test]
fn the_desktop_file_example_validates() {
    let readme = repo_root().join("README.md");
    let json = blocks(&readme, "json");
    let (line, example) = json
        .iter()
        .find(|(_, b)| b.contains("mcpServers"))
        .unwrap_or_else(|| panic!("no mcpServers example in the README"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("claude_desktop_config.json");
    std::fs::write(&file, example).unwrap_or_else(|e| panic!("{e}"));
    let out = validate(&file, &variables(example));
    assert!(
        out.status.success(),
        "README.md:{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The README's shell examples that run on their own, as a shell runs them (with
/// `switchboard` on the PATH, in the checkout).
fn shell(script: &str) -> std::process::Output {
    let bin_dir = switchboard_bin()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(script)
        .current_dir(repo_root())
        .env("PATH", path);
    output_within(cmd, Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_environment_and_bootstrap_examples_run() {
    let readme = repo_root().join("README.md");
    let sh = blocks(&readme, "sh");
    let (line, env_example) = sh
        .iter()
        .find(|(_, b)| b.contains("SWITCHBOARD_UPSTREAMS_MY_SERVER_URL"))
        .unwrap_or_else(|| panic!("no environment example in the README"));
    let out = shell(env_example);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("(1 upstream)"),
        "README.md:{line}: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The fleet example's bootstrap (its serve needs certificates, its envoy a fleet).
    let operations = blocks(&repo_root().join("docs/operations.md"), "sh");
    let (line, fleet) = operations
        .iter()
        .find(|(_, b)| b.contains("switchboard bootstrap"))
        .unwrap_or_else(|| panic!("no bootstrap example in docs/operations.md"));
    let joined = fleet.replace("\\\n", " ");
    let bootstrap = joined
        .lines()
        .find(|l| l.trim_start().starts_with("switchboard bootstrap"))
        .map(|l| l.split('>').next().unwrap_or(l).to_string())
        .unwrap_or_default();
    let out = shell(&bootstrap);
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && yaml.contains("id: edge-1") && yaml.contains("xds-ca.pem"),
        "docs/operations.md:{line}: {bootstrap}\n{yaml}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_curls_work_against_the_embedded_default() -> anyhow::Result<()> {
    let everything = Everything::start().await?;
    let default = std::fs::read_to_string(repo_root().join("examples/default.yaml"))?;
    let port = everything.addr.port().to_string();
    let gw = Gateway::start_with_env(
        &default,
        &[
            ("SWITCHBOARD_LISTEN", "127.0.0.1:0"),
            ("SWITCHBOARD_ADMIN", "127.0.0.1:0"),
            ("EVERYTHING_PORT", &port),
        ],
    )
    .await?;
    let readme = repo_root().join("README.md");
    let (line, quick) = blocks(&readme, "sh")
        .into_iter()
        .find(|(_, b)| b.contains("curl -si"))
        .ok_or_else(|| anyhow::anyhow!("no quick start curl in the README"))?;
    let quick = quick.replace("http://127.0.0.1:8080/mcp", &gw.endpoint);
    let (first, second) = quick
        .split_once("# take the mcp-session-id header from the answer, then:")
        .ok_or_else(|| anyhow::anyhow!("README.md:{line}: the two steps are not there"))?;
    let out = tokio::task::spawn_blocking({
        let first = first.to_string();
        move || shell(&first)
    })
    .await?;
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    let session = answer
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("mcp-session-id:")
                .then(|| l.split_once(':').map(|(_, v)| v.trim().to_string()))
                .flatten()
        })
        .ok_or_else(|| {
            anyhow::anyhow!("README.md:{line}: no session in {answer}\n{}", gw.logs())
        })?;
    let out = tokio::task::spawn_blocking({
        let second = format!("SESSION={session}\n{second}");
        move || shell(&second)
    })
    .await?;
    let called = String::from_utf8_lossy(&out.stdout);
    assert!(
        called.contains("Echo: hi"),
        "README.md:{line}: {called}\n{}",
        gw.logs()
    );
    Ok(())
}
