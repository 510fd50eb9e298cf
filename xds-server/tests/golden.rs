//! Golden snapshots of `switchboard render`: every file in `examples/` and a gateway that uses
//! every feature (`tests/golden/every-feature.yaml`), translated with a fixed filter module
//! and rendered as the operator reads it. A change to what Envoy receives shows up here, in
//! review. After an intended change: `INSTA_UPDATE=always cargo test -p switchboard --test
//! golden` (or `cargo insta review`), and read the diff.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use switchboard::config::{self, env::Environment};
use switchboard::render;
use switchboard::resources::Snapshot;
use switchboard::translate::{self, FilterModule};

fn root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root)
}

/// What `switchboard render -c <path>` prints, with the bridge where `run` puts it (port 0)
/// and the fixed module, in a fixed environment: the system roots are the golden CA.
fn rendered(path: &Path) -> String {
    let golden = root().join("xds-server/tests/golden");
    let env = Environment::Fixed(HashMap::from([
        (
            "SSL_CERT_FILE".to_string(),
            golden.join("ca.pem").display().to_string(),
        ),
        // What the examples take from the environment (redacted in the render).
        (
            "GITHUB_TOKEN".to_string(),
            "golden-github-token".to_string(),
        ),
        ("HOME".to_string(), "/home/operator".to_string()),
    ]));
    let gateway = match config::load_file(path, &env) {
        Ok(g) => g,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    let bridge: SocketAddr = ([127, 0, 0, 1], 0).into();
    // What the names of host routes resolve to: one inside the allowed list and one
    // outside (the cluster gets only the first), one outside only (no endpoint at all).
    let resolved = [
        ("docs.internal", vec!["10.0.0.7", "8.8.8.8"]),
        ("build.internal", vec!["169.254.169.254"]),
    ]
    .into_iter()
    .map(|(name, ips)| {
        let ips = ips.iter().filter_map(|ip| ip.parse().ok()).collect();
        (name.to_string(), ips)
    })
    .collect();
    let module = FilterModule {
        bridge: Some(bridge),
        resolved,
        ..FilterModule::example()
    };
    // As `render` does: each proxied upstream's tunnel at port 0 of the bridge's address.
    let tunnels: BTreeMap<String, SocketAddr> = gateway
        .upstreams
        .iter()
        .filter(|u| u.proxy.is_some())
        .map(|u| (u.name.to_string(), bridge))
        .collect();
    let module = match translate::hosted_module(&gateway, &module, tunnels) {
        Ok(m) => m,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    let snapshot = Snapshot::new(&translate::translate(&gateway, &module));
    let yaml = match render::snapshot_yaml(&snapshot) {
        Ok(y) => y,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    // Paths differ between checkouts: the snapshot names them from the repository root.
    render::redact_values(&yaml, &gateway.secrets()).replace(&root().display().to_string(), "$REPO")
}

fn check(name: &str, relative: &str) {
    let yaml = rendered(&root().join(relative));
    insta::with_settings!({snapshot_path => "golden/snapshots", prepend_module_to_snapshot => false, description => relative}, {
        insta::assert_snapshot!(name, yaml);
    });
}

#[test]
fn the_default_example() {
    check("default", "examples/default.yaml");
}

#[test]
fn the_empty_example() {
    check("empty", "examples/empty.yaml");
}

#[test]
fn the_transport_seed_example() {
    check("transport-seed", "examples/transport-seed.yaml");
}

#[test]
fn the_desktop_example() {
    check("claude-desktop", "examples/claude_desktop_config.json");
}

#[test]
fn the_tunnel_file() {
    check("tunnel", "xds-server/tests/golden/tunnel.yaml");
}

#[test]
fn every_feature() {
    check(
        "every-feature",
        "xds-server/tests/golden/every-feature.yaml",
    );
}
