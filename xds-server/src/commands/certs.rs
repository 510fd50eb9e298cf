//! `switchboard certs`: the tunnel domain's CA and server certificate, made offline. Keys are
//! written 0600; `renew-cert` is a no-op while the certificate has long enough to run, so it
//! can run on a schedule.

use crate::gateway::write_whole;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use switchboard::certs::{self, Pair};
use time::OffsetDateTime;

#[derive(clap::Subcommand)]
pub enum Certs {
    /// Make a CA (ECDSA P-256, five years) and a server certificate for `*.DOMAIN` and
    /// `DOMAIN` (RSA 4096) signed by it.
    Init {
        #[arg(long)]
        domain: String,
        #[command(flatten)]
        out: Out,
        /// How long the server certificate is valid.
        #[arg(long, default_value = "2160h", value_parser = humantime::parse_duration)]
        cert_duration: Duration,
    },
    /// Reissue the server certificate from the stored CA, unless more than `--renew-before`
    /// of it remains.
    RenewCert {
        #[command(flatten)]
        out: Out,
        #[arg(long, default_value = "2160h", value_parser = humantime::parse_duration)]
        cert_duration: Duration,
        #[arg(long, default_value = "720h", value_parser = humantime::parse_duration)]
        renew_before: Duration,
    },
}

#[derive(clap::Args)]
pub struct Out {
    /// `dir:PATH` (ca.crt, ca.key, tls.crt, tls.key) or `k8s-secret:NAME` (a Secret manifest
    /// for `kubectl apply`; nothing talks to a cluster).
    #[arg(long)]
    output: String,
    /// With `k8s-secret:`: the manifest file to write (and, for `renew-cert`, to read the CA
    /// from). Default for `init`: stdout.
    #[arg(long)]
    manifest: Option<PathBuf>,
}

enum Target {
    Dir(PathBuf),
    Secret {
        name: String,
        manifest: Option<PathBuf>,
    },
}

impl Out {
    fn target(&self) -> anyhow::Result<Target> {
        if let Some(dir) = self.output.strip_prefix("dir:") {
            anyhow::ensure!(!dir.is_empty(), "--output dir:PATH needs a path");
            return Ok(Target::Dir(dir.into()));
        }
        if let Some(name) = self.output.strip_prefix("k8s-secret:") {
            let valid = !name.is_empty()
                && name.len() <= 253
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            anyhow::ensure!(valid, "--output k8s-secret:{name}: not a valid Secret name");
            return Ok(Target::Secret {
                name: name.into(),
                manifest: self.manifest.clone(),
            });
        }
        anyhow::bail!(
            "--output {}: expected dir:PATH or k8s-secret:NAME",
            self.output
        )
    }
}

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const CERT: &str = "tls.crt";
const KEY: &str = "tls.key";

pub fn run(command: Certs) -> anyhow::Result<ExitCode> {
    let now = OffsetDateTime::now_utc();
    match command {
        Certs::Init {
            domain,
            out,
            cert_duration,
        } => {
            let target = out.target()?;
            let ca = certs::new_ca(&domain, now)?;
            let server = certs::server_cert(&domain, &ca, now, cert_duration)?;
            write(&target, &ca, &server)?;
            eprintln!("certs: a CA and a certificate for *.{domain} and {domain}");
        }
        Certs::RenewCert {
            out,
            cert_duration,
            renew_before,
        } => {
            let target = out.target()?;
            let (ca, server) = read(&target)?;
            let left = certs::remaining(&server.cert_pem, now)?;
            if left > renew_before {
                eprintln!(
                    "certs: not renewed: {} of the certificate remain (more than --renew-before {})",
                    humantime::format_duration(Duration::from_secs(left.as_secs())),
                    humantime::format_duration(renew_before)
                );
                return Ok(ExitCode::SUCCESS);
            }
            let domain = certs::dns_names(&server.cert_pem)?
                .into_iter()
                .find(|n| !n.starts_with("*."))
                .context("the certificate names no domain")?;
            let server = certs::server_cert(&domain, &ca, now, cert_duration)?;
            write(&target, &ca, &server)?;
            eprintln!("certs: renewed the certificate for *.{domain} and {domain}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write(target: &Target, ca: &Pair, server: &Pair) -> anyhow::Result<()> {
    match target {
        Target::Dir(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            write_whole(&dir.join(CA_CERT), ca.cert_pem.as_bytes(), 0o644)?;
            write_whole(&dir.join(CA_KEY), ca.key_pem.as_bytes(), 0o600)?;
            write_whole(&dir.join(KEY), server.key_pem.as_bytes(), 0o600)?;
            write_whole(&dir.join(CERT), server.cert_pem.as_bytes(), 0o644)?;
        }
        Target::Secret { name, manifest } => {
            let text = certs::k8s_manifest(name, ca, server);
            match manifest {
                // It holds private keys: 0600 like the key files.
                Some(path) => write_whole(path, text.as_bytes(), 0o600)?,
                None => print!("{text}"),
            }
        }
    }
    Ok(())
}

fn read(target: &Target) -> anyhow::Result<(Pair, Pair)> {
    let text = |p: &Path| {
        std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
    };
    match target {
        Target::Dir(dir) => Ok((
            Pair {
                cert_pem: text(&dir.join(CA_CERT))?,
                key_pem: text(&dir.join(CA_KEY))?,
            },
            Pair {
                cert_pem: text(&dir.join(CERT))?,
                key_pem: text(&dir.join(KEY))?,
            },
        )),
        Target::Secret { manifest, .. } => {
            let path = manifest
                .as_ref()
                .context("renew-cert with k8s-secret: give --manifest FILE (the one init wrote)")?;
            Ok(certs::from_k8s_manifest(&text(path)?)?)
        }
    }
}
