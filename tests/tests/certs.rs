//! `switchboard certs`: the files `init` writes, read back by `openssl x509 -text` (not by our
//! own parser), and `renew-cert` both ways.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

fn switchboard(args: &[&str]) -> (bool, String) {
    switchboard_e2e::switchboard_said(args)
}

fn openssl_text(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("openssl: {e} (scripts/setup.sh system installs it)"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value lines after an extension's header line in `openssl x509 -text`.
fn extension<'a>(text: &'a str, name: &str) -> (&'a str, String) {
    let mut lines = text.lines();
    let header = lines
        .find(|l| l.trim_start().starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"));
    (header, lines.next().unwrap_or_default().trim().to_string())
}

/// `openssl x509 -checkend`: still valid `days` from now.
fn valid_for_days(cert: &Path, days: u64) -> bool {
    Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-checkend",
            &(days * 86400).to_string(),
            "-in",
        ])
        .arg(cert)
        .status()
        .unwrap_or_else(|e| panic!("{e}"))
        .success()
}

/// `openssl verify`: `dir`'s tls.crt chains to its ca.crt.
fn verifies_against_its_ca(dir: &Path) {
    let verify = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dir.join("ca.crt"))
        .arg(dir.join("tls.crt"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn init_makes_the_ca_and_server_certificate_the_tunnel_proxy_expects() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = format!("dir:{}", dir.path().display());
    let (ok, said) = switchboard(&[
        "certs",
        "init",
        "--domain",
        "tunnel.example.com",
        "--output",
        &out,
    ]);
    assert!(ok, "{said}");

    let ca = openssl_text(&dir.path().join("ca.crt"));
    assert!(
        ca.contains("Public Key Algorithm: id-ecPublicKey") && ca.contains("prime256v1"),
        "{ca}"
    );
    let (header, value) = extension(&ca, "X509v3 Basic Constraints");
    assert!(
        header.contains("critical") && value.contains("CA:TRUE"),
        "{ca}"
    );
    let (_, usage) = extension(&ca, "X509v3 Key Usage");
    assert!(usage.contains("Certificate Sign"), "{ca}");
    let (_, ca_ski) = extension(&ca, "X509v3 Subject Key Identifier");
    assert!(!ca_ski.is_empty());
    let years = |t: &str, label: &str| -> i32 {
        let line = t.lines().find(|l| l.contains(label)).unwrap_or_default();
        line.split_whitespace()
            .find_map(|w| w.parse::<i32>().ok().filter(|y| *y > 2000))
            .unwrap_or_default()
    };
    assert_eq!(
        years(&ca, "Not After") - years(&ca, "Not Before"),
        5,
        "{ca}"
    );

    let cert = openssl_text(&dir.path().join("tls.crt"));
    assert!(
        cert.contains("Public-Key: (4096 bit)") && cert.contains("rsaEncryption"),
        "{cert}"
    );
    assert!(
        cert.contains("Signature Algorithm: ecdsa-with-SHA256"),
        "{cert}"
    );
    let (_, san) = extension(&cert, "X509v3 Subject Alternative Name");
    assert!(
        san.contains("DNS:*.tunnel.example.com") && san.contains("DNS:tunnel.example.com"),
        "{cert}"
    );
    let (_, aki) = extension(&cert, "X509v3 Authority Key Identifier");
    assert!(
        aki.contains(&ca_ski),
        "AKI {aki} is not the CA's SKI {ca_ski}"
    );
    let (_, eku) = extension(&cert, "X509v3 Extended Key Usage");
    assert!(eku.contains("TLS Web Server Authentication"), "{cert}");
    let (_, bc) = extension(&cert, "X509v3 Basic Constraints");
    assert!(bc.contains("CA:FALSE"), "{cert}");
    // 90 days.
    let cert_file = dir.path().join("tls.crt");
    assert!(
        valid_for_days(&cert_file, 89),
        "valid for less than 89 days"
    );
    assert!(
        !valid_for_days(&cert_file, 91),
        "valid for more than 91 days"
    );
    // It verifies against the CA, and the keys are private.
    verifies_against_its_ca(dir.path());
    assert_eq!(mode(&dir.path().join("ca.key")), 0o600);
    assert_eq!(mode(&dir.path().join("tls.key")), 0o600);

    // A wrong domain or output is refused with a clear message.
    let (ok, said) = switchboard(&["certs", "init", "--domain", "no spaces", "--output", &out]);
    assert!(!ok && said.contains("invalid domain"), "{said}");
    let (ok, said) = switchboard(&["certs", "init", "--domain", "a.example", "--output", "s3:x"]);
    assert!(
        !ok && said.contains("dir:PATH or k8s-secret:NAME"),
        "{said}"
    );
}

#[test]
fn renew_cert_is_a_no_op_while_enough_remains_and_reissues_from_the_stored_ca_otherwise() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = format!("dir:{}", dir.path().display());
    let (ok, said) = switchboard(&[
        "certs",
        "init",
        "--domain",
        "t.example.org",
        "--output",
        &out,
    ]);
    assert!(ok, "{said}");
    let ca_before = std::fs::read(dir.path().join("ca.crt")).unwrap_or_default();
    let cert_before = std::fs::read(dir.path().join("tls.crt")).unwrap_or_default();

    let (ok, said) = switchboard(&["certs", "renew-cert", "--output", &out]);
    assert!(ok && said.contains("not renewed"), "{said}");
    assert_eq!(
        std::fs::read(dir.path().join("tls.crt")).unwrap_or_default(),
        cert_before
    );

    // Asking for renewal with more than the certificate has left: reissued, same CA.
    let (ok, said) = switchboard(&[
        "certs",
        "renew-cert",
        "--output",
        &out,
        "--renew-before",
        "2400h",
        "--cert-duration",
        "240h",
    ]);
    assert!(
        ok && said.contains("renewed the certificate for *.t.example.org"),
        "{said}"
    );
    assert_ne!(
        std::fs::read(dir.path().join("tls.crt")).unwrap_or_default(),
        cert_before
    );
    assert_eq!(
        std::fs::read(dir.path().join("ca.crt")).unwrap_or_default(),
        ca_before
    );
    verifies_against_its_ca(dir.path());
    assert_eq!(mode(&dir.path().join("tls.key")), 0o600);
}

#[test]
fn a_kubernetes_secret_manifest_carries_the_certificate_and_renews_from_itself() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let manifest = dir.path().join("secret.yaml");
    let m = manifest.display().to_string();
    let (ok, said) = switchboard(&[
        "certs",
        "init",
        "--domain",
        "k.example.net",
        "--output",
        "k8s-secret:tunnel-tls",
        "--manifest",
        &m,
    ]);
    assert!(ok, "{said}");
    let text = std::fs::read_to_string(&manifest).unwrap_or_default();
    assert!(
        text.contains("type: kubernetes.io/tls") && text.contains("name: tunnel-tls\n"),
        "{text}"
    );
    assert!(text.contains("tls.crt: ") && text.contains("tls.key: ") && text.contains("ca.crt: "));
    assert_eq!(mode(&manifest), 0o600);
    let (ok, said) = switchboard(&[
        "certs",
        "renew-cert",
        "--output",
        "k8s-secret:tunnel-tls",
        "--manifest",
        &m,
        "--renew-before",
        "9000h",
    ]);
    assert!(ok && said.contains("renewed"), "{said}");
    // To stdout when no file is named.
    let (ok, said) = switchboard(&[
        "certs",
        "init",
        "--domain",
        "k.example.net",
        "--output",
        "k8s-secret:x",
    ]);
    assert!(ok && said.contains("kind: Secret"), "{said}");
}
